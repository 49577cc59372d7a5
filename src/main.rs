//! `charlm`: run each stage of the book from the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use dfdx::prelude::Cpu;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use charlm::bigram_embedding::{BigramLanguageModel, ModelError, SHAKESPEARE_VOCAB};
use charlm::bigram_onehot::{Forward, OneHotConfig};
use charlm::checkpoint;
use charlm::data;
use charlm::fused::Fused;
use charlm::self_attention::ShakespeareHead;
use charlm::tour::{self, BigramSettings, CountsSettings, OneHotRun, OneHotSettings};
use charlm::train::{Event, Finish, LanguageModel, TrainConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DeviceArg {
    /// The CPU (always available).
    Cpu,
    /// An NVIDIA GPU (needs a build with `--features cuda`).
    Cuda,
}

/// Which forward pass computes the logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ForwardArg {
    /// One-hot inputs times W, as in the lecture.
    Onehot,
    /// Look up rows of W: the same numbers, much faster.
    Lookup,
}

/// Character-level language models, built step by step (the charlm book).
///
/// Each subcommand runs one stage of the book on its data set. Data files are
/// found at --data, else in $CHARLM_DATA_DIR, else in ./data, else downloaded
/// into ./data and checked against their published SHA-256.
#[derive(Debug, Parser)]
#[command(name = "charlm", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Chapter 1: the bigram model from counts on names.txt.
    ///
    /// Counts how often each character follows each other one in 32,033 names,
    /// normalises the counts into next-character probabilities, scores the model
    /// with the average negative log-likelihood (lower is better; 2.4546 with
    /// the default smoothing) and samples new names from it.
    Counts {
        /// The names file (one name per line).
        #[arg(long, value_name = "PATH")]
        data: Option<PathBuf>,
        /// Pseudo-count k added to every bigram count before normalising.
        /// 0 makes unseen bigrams impossible (infinite loss on them); large k
        /// pulls the model towards uniform.
        #[arg(
            long,
            value_name = "K",
            default_value_t = 1.0,
            allow_negative_numbers = true
        )]
        smoothing: f64,
        /// How many names to sample.
        #[arg(long, value_name = "N", default_value_t = 10)]
        samples: usize,
        /// Seed of the random generator (the lecture's is 2147483647).
        #[arg(long, value_name = "S", default_value_t = tour::LECTURE_SEED)]
        seed: u64,
        /// Also draw the annotated 27×27 count heatmap to PATH (.svg or .png).
        #[arg(long, value_name = "PATH")]
        figure: Option<PathBuf>,
        /// Print only one JSON object of the key figures (the last stdout line).
        #[arg(long)]
        json: bool,
    },
    /// Chapter 2: the same bigram model as a one-hot neural net, trained by
    /// gradient descent with dfdx.
    ///
    /// W (27×27) starts from a standard normal; each step computes the logits
    /// of all 228,146 training pairs, their softmax, the average negative
    /// log-likelihood plus reg·mean(W²), the gradient by backpropagation, and
    /// W -= lr·grad. The loss falls from about 3.8 towards the counting model's
    /// 2.45, and softmax(W) approaches chapter 1's table P.
    Onehot {
        /// The names file (one name per line).
        #[arg(long, value_name = "PATH")]
        data: Option<PathBuf>,
        /// Full-batch gradient-descent steps.
        #[arg(long, value_name = "N", default_value_t = 100)]
        steps: usize,
        /// Learning rate (the lecture's is 50: this loss is very flat).
        #[arg(
            long,
            value_name = "X",
            default_value_t = 50.0,
            allow_negative_numbers = true
        )]
        lr: f32,
        /// Regularisation strength: reg·mean(W²) pulls softmax(W) towards
        /// uniform, as smoothing does for counts.
        #[arg(
            long,
            value_name = "X",
            default_value_t = 0.01,
            allow_negative_numbers = true
        )]
        reg: f32,
        /// Seed of the random generator that draws W and the samples.
        #[arg(long, value_name = "S", default_value_t = tour::LECTURE_SEED)]
        seed: u64,
        /// How many names to sample from the trained net.
        #[arg(long, value_name = "N", default_value_t = 10)]
        samples: usize,
        /// Forward pass: the lecture's one-hot matmul, or the row lookup.
        #[arg(long, value_enum, default_value_t = ForwardArg::Onehot)]
        forward: ForwardArg,
        /// Where the tensors live.
        #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
        device: DeviceArg,
        /// Print only one JSON object of the key figures (the last stdout line).
        #[arg(long)]
        json: bool,
    },
    /// Chapter 3: the bigram language model on tiny Shakespeare.
    ///
    /// Tokenizes the text character by character (65 characters), keeps 90%
    /// for training, and trains a (65, 65) embedding table of next-token
    /// logits with AdamW on random batches of blocks, estimating the loss on
    /// both splits every --eval-interval steps. Then generates text.
    ///
    /// With --save, the run ends by writing a checkpoint (weights, optimiser,
    /// generator, loss history); Ctrl-C stops training and writes one too (to
    /// --save, or bigram-interrupted.safetensors). --resume continues a saved
    /// run exactly where it stopped; flags given with it replace the saved
    /// settings (e.g. --steps for a longer run).
    Bigram(TrainArgs),
    /// Chapter 5: a language model with one head of self-attention.
    ///
    /// Token and position embeddings (32 channels), one causal self-attention
    /// head (size 32), and a linear map to the 65 characters, trained like
    /// `charlm bigram` (same flags, same checkpoints). Each character now
    /// looks at up to 8 before it, with weights it learns.
    Head(TrainArgs),
    /// Chapter 4: the mathematical trick in self-attention.
    ///
    /// The causal average of the past computed three ways (loops; a
    /// lower-triangular matrix multiply; softmax of a masked matrix) at
    /// B=32, T=256, C=384: how far apart they are, and how long each takes.
    Attention {
        /// Seed of the random input.
        #[arg(long, value_name = "S", default_value_t = 1337)]
        seed: u64,
        /// Print only one JSON object (the last stdout line).
        #[arg(long)]
        json: bool,
    },
    /// Generate text from a saved checkpoint (see `bigram --save`, `head --save`).
    ///
    /// Feeds the prompt (a newline by default), then samples one character
    /// at a time from the model's softmax.
    Generate {
        /// The checkpoint.
        #[arg(long, value_name = "PATH")]
        checkpoint: PathBuf,
        /// Characters to generate.
        #[arg(long, value_name = "N", default_value_t = 500)]
        tokens: usize,
        /// Text to continue; every character must be in the model's vocabulary.
        #[arg(long, value_name = "TEXT")]
        prompt: Option<String>,
        /// Seed of the random generator.
        #[arg(long, value_name = "S", default_value_t = 1337)]
        seed: u64,
    },
    /// Appendix: time each stage's hot loop.
    ///
    /// Workloads: counts (names → N, P, NLL), onehot-step and lookup-step (one
    /// full-batch step of chapter 2), bigram-step (one AdamW step of chapter
    /// 3), attention-v1/v2/v3 (chapter 4 at B=32, T=256, C=384) and head-step
    /// (one head of size 64 forward and backward, same size). Each is warmed
    /// up, then timed in samples; the best and median seconds per iteration
    /// are reported. `python3 parity/bench.py` runs this side by side with
    /// PyTorch.
    Bench {
        /// Only these workloads (repeat the flag); all by default.
        #[arg(long = "workload", value_name = "NAME", value_parser = workload_name)]
        workloads: Vec<charlm::bench::Workload>,
        /// Threads for dfdx's matrix multiplies and charlm's kernels.
        #[arg(long, value_name = "N", default_value_t = 1)]
        threads: usize,
        /// Timed samples per workload.
        #[arg(long, value_name = "N", default_value_t = 5)]
        samples: usize,
        /// Shortest sample, in milliseconds (iterations are added to fill it).
        #[arg(long, value_name = "MS", default_value_t = 200)]
        sample_ms: u64,
        /// Print only one JSON object (the last stdout line).
        #[arg(long)]
        json: bool,
    },
    /// Appendix: check charlm against the lecture's PyTorch code.
    ///
    /// Runs every stage from the inputs PyTorch started from (its initial
    /// weights, its batches, its random tensors; see parity/) and compares
    /// with the values PyTorch computed: counts and the float32 loss bit for
    /// bit, training trajectories to 1e-4, attention outputs and gradients
    /// to 1e-5. Exits with 1 if any comparison fails.
    Parity {
        /// Print only one JSON object (the last stdout line).
        #[arg(long)]
        json: bool,
    },
    /// Run every chapter implemented so far, print its key figures and write
    /// its figures (SVG and PNG) to DIR. The main job: start here.
    Tour {
        /// Where to write the figures.
        #[arg(long, value_name = "DIR", default_value = "target/figures")]
        out: PathBuf,
        /// Print only one JSON object, keyed by stage (the last stdout line).
        #[arg(long)]
        json: bool,
    },
    /// Regenerate the book's figures and quoted numbers (SVG + numbers.md per
    /// stage). Run `charlm figures --out chapters/figures` after changing the
    /// library; a test fails while the committed files are stale.
    Figures {
        /// The book's figures folder.
        #[arg(long, value_name = "DIR", default_value = "chapters/figures")]
        out: PathBuf,
    },
}

/// Training flags shared by the language models (chapter 3 on).
#[derive(Debug, clap::Args)]
struct TrainArgs {
    /// The text file.
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Optimiser steps in all [default: 3000].
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// AdamW's learning rate [default: 0.01].
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    lr: Option<f32>,
    /// Rows per batch (B) [default: 32].
    #[arg(long, value_name = "B")]
    batch: Option<usize>,
    /// Tokens per row (T) [default: 8].
    #[arg(long, value_name = "T")]
    block: Option<usize>,
    /// Estimate the loss every N steps [default: 300].
    #[arg(long, value_name = "N")]
    eval_interval: Option<usize>,
    /// Batches per split in each estimate [default: 200].
    #[arg(long, value_name = "N")]
    eval_iters: Option<usize>,
    /// Seed of the random generator (bigram.py's is 1337).
    #[arg(long, value_name = "S", default_value_t = 1337)]
    seed: u64,
    /// Tokens to generate after training.
    #[arg(long, value_name = "N", default_value_t = 500)]
    tokens: usize,
    /// Write a checkpoint here when training ends (or is interrupted).
    #[arg(long, value_name = "PATH")]
    save: Option<PathBuf>,
    /// Continue the run saved in this checkpoint.
    #[arg(long, value_name = "PATH")]
    resume: Option<PathBuf>,
    /// Where tensors live.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Print only one JSON object of the key figures (the last stdout line).
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.is::<Interrupted>() {
                ExitCode::from(130) // the shell's code for Ctrl-C
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Counts {
            data,
            smoothing,
            samples,
            seed,
            figure,
            json,
        } => {
            let words = data::load_names(data.as_deref())?;
            let settings = CountsSettings {
                smoothing,
                samples,
                seed,
            };
            let run = tour::run_counts(&words, &settings)?;
            if let Some(path) = &figure {
                use charlm::plot::Figure;
                charlm::plot::CountHeatmap(run.model.counts())
                    .save(path)
                    .with_context(|| format!("writing the figure {}", path.display()))?;
            }
            if json {
                println!("{}", serde_json::to_string(&run.report)?);
            } else {
                print!("{}", run.summary());
                if let Some(path) = figure {
                    println!("figure           {}", path.display());
                }
            }
        }
        Command::Onehot {
            data,
            steps,
            lr,
            reg,
            seed,
            samples,
            forward,
            device,
            json,
        } => {
            let words = data::load_names(data.as_deref())?;
            let settings = OneHotSettings {
                config: OneHotConfig {
                    steps,
                    lr,
                    reg,
                    forward: match forward {
                        ForwardArg::Onehot => Forward::OneHot,
                        ForwardArg::Lookup => Forward::Lookup,
                    },
                },
                seed,
                samples,
            };
            match device {
                DeviceArg::Cpu => onehot(&Cpu::default(), &words, &settings, json)?,
                DeviceArg::Cuda => onehot_cuda(&words, &settings, json)?,
            }
        }
        Command::Bigram(args) => train_lm(Lm::Bigram, args)?,
        Command::Head(args) => train_lm(Lm::Head, args)?,
        Command::Attention { seed, json } => {
            let report = tour::run_attention(&Cpu::default(), (32, 256, 384), seed)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.summary());
            }
        }
        Command::Generate {
            checkpoint,
            tokens,
            prompt,
            seed,
        } => generate(&checkpoint, tokens, prompt.as_deref(), seed)?,
        Command::Parity { json } => parity(json)?,
        Command::Bench {
            workloads,
            threads,
            samples,
            sample_ms,
            json,
        } => bench(&workloads, threads, samples, sample_ms, json)?,
        Command::Tour { out, json } => {
            let words = data::load_names(None)?;
            if !json {
                println!("== Chapter 1: the bigram model from counts (names.txt)");
            }
            let counts = tour::run_counts(&words, &CountsSettings::default())?;
            let mut written = counts.save_figures(&out.join(tour::COUNTS_DIR), &["svg", "png"])?;
            if !json {
                print!("{}", counts.summary());
                println!("\n== Chapter 2: the bigram model as a one-hot neural net (names.txt)");
            }
            let net = train_onehot(&Cpu::default(), &words, &OneHotSettings::default(), json)?;
            written.extend(net.save_figures(&out.join(tour::ONEHOT_DIR), &["svg", "png"])?);
            if !json {
                print!("{}", net.summary());
                println!("\n== Chapter 3: the bigram language model (tiny Shakespeare)");
            }
            let text = data::load_text(data::Dataset::TinyShakespeare, None)?;
            let lm = tour_bigram(&Cpu::default(), &text, json)?;
            written.extend(lm.save_figures(&out.join(tour::BIGRAM_LM_DIR), &["svg", "png"])?);
            if !json {
                print!("{}", lm.summary());
                println!("\n== Chapter 4: the mathematical trick in self-attention");
            }
            let trick = tour::run_attention(&Cpu::default(), (32, 256, 384), 1337)?;
            let dir = out.join(tour::ATTENTION_TRICK_DIR);
            written.extend(tour::save_attention_figures(&dir, &["svg", "png"])?);
            if !json {
                print!("{}", trick.summary());
                println!("\n== Chapter 5: one head of self-attention (tiny Shakespeare)");
            }
            let dev = Cpu::default();
            let settings = BigramSettings::default();
            let init = |rng: &mut ChaCha12Rng| ShakespeareHead::new(&dev, rng);
            let head = train_lm_with_bar(&dev, &text, &settings, init, None, json)?;
            let dir = out.join(tour::HEAD_DIR);
            tour::save_head_figures(&head, &lm, &dir, &["svg", "png"])?;
            for name in ["loss", "weights"] {
                written.extend(["svg", "png"].map(|ext| dir.join(format!("{name}.{ext}"))));
            }
            if !json {
                print!("{}", head.summary());
                println!("\n== Appendix: parity with the lecture's PyTorch code");
            }
            let checks = charlm::parity::check_all(&dev, &words, &text)?;
            let passed = checks.iter().filter(|c| c.passes()).count();
            if json {
                let all = serde_json::json!({
                    "bigram_counts": counts.report,
                    "bigram_onehot": net.report,
                    "bigram_embedding": lm.report,
                    "attention_trick": trick,
                    "self_attention_head": head.report,
                    "parity": { "passed": passed, "comparisons": checks.len() },
                });
                println!("{all}");
            } else {
                println!(
                    "parity           {passed} of {} comparisons within tolerance (details: charlm parity)",
                    checks.len()
                );
                println!();
                print_written(&written);
            }
            if passed != checks.len() {
                anyhow::bail!("charlm differs from PyTorch: run `charlm parity` for the table");
            }
        }
        Command::Figures { out } => {
            let words = data::load_names(None)?;
            let dir = out.join(tour::COUNTS_DIR);
            let run = tour::run_counts(&words, &CountsSettings::default())?;
            run.write_book_files(&words, &dir)?;
            println!(
                "wrote the book's files for the bigram model from counts to {}",
                dir.display()
            );
            let dir = out.join(tour::ONEHOT_DIR);
            tour::write_onehot_book_files(&words, &dir)?;
            println!(
                "wrote the book's files for the one-hot bigram net to {}",
                dir.display()
            );
            let dir = out.join(tour::BIGRAM_LM_DIR);
            let text = data::load_text(data::Dataset::TinyShakespeare, None)?;
            tour::write_bigram_book_files(&text, &dir)?;
            println!(
                "wrote the book's files for the bigram language model to {}",
                dir.display()
            );
            let dir = out.join(tour::ATTENTION_TRICK_DIR);
            tour::write_attention_book_files(&dir)?;
            println!(
                "wrote the book's files for the attention trick to {}",
                dir.display()
            );
            let dir = out.join(tour::HEAD_DIR);
            tour::write_head_book_files(&text, &dir)?;
            println!(
                "wrote the book's files for the self-attention head to {}",
                dir.display()
            );
            let dir = out.join(tour::PARITY_DIR);
            tour::write_parity_book_files(&words, &text, &dir)?;
            println!("wrote the book's parity table to {}", dir.display());
        }
    }
    Ok(())
}

/// Trains the one-hot net on `dev` with a progress bar on stderr (hidden
/// under --json, and by indicatif when stderr is not a terminal).
fn train_onehot<D: Fused>(
    dev: &D,
    words: &[String],
    settings: &OneHotSettings,
    json: bool,
) -> Result<OneHotRun<D>> {
    let bar = progress_bar(settings.config.steps, json);
    let run = tour::run_onehot(dev, words, settings, |_, loss| {
        bar.set_message(format!("loss {loss:.4}"));
        bar.inc(1);
    });
    bar.finish_and_clear();
    Ok(run?)
}

/// Set by Ctrl-C: training stops before its next step.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ctrl-C was pressed during training; a checkpoint was saved.
#[derive(Debug, thiserror::Error)]
#[error("interrupted at step {step}; checkpoint saved to {path} (continue with --resume {path})")]
struct Interrupted {
    step: usize,
    path: String,
}

/// Which language model a training command trains.
#[derive(Debug, Clone, Copy)]
enum Lm {
    Bigram,
    Head,
}

/// `charlm bigram` and `charlm head`: settings from the flags, then train.
fn train_lm(lm: Lm, a: TrainArgs) -> Result<()> {
    let text = data::load_text(data::Dataset::TinyShakespeare, a.data.as_deref())?;
    let TrainArgs {
        steps,
        lr,
        batch,
        block,
        eval_interval,
        eval_iters,
        ..
    } = a;
    let overrides = move |c: TrainConfig| TrainConfig {
        max_iters: steps.unwrap_or(c.max_iters),
        learning_rate: lr.unwrap_or(c.learning_rate),
        batch_size: batch.unwrap_or(c.batch_size),
        block_size: block.unwrap_or(c.block_size),
        eval_interval: eval_interval.unwrap_or(c.eval_interval),
        eval_iters: eval_iters.unwrap_or(c.eval_iters),
        ..c
    };
    let settings = BigramSettings {
        config: overrides(TrainConfig::default()),
        seed: a.seed,
        sample_tokens: a.tokens,
        ..BigramSettings::default()
    };
    let job = LmJob {
        text: &text,
        settings: &settings,
        resume: a.resume.as_deref(),
        overrides: &overrides,
        save: a.save.as_deref(),
        json: a.json,
    };
    match a.device {
        DeviceArg::Cpu => lm_on(&Cpu::default(), lm, &job),
        DeviceArg::Cuda => lm_cuda(lm, &job, a.seed),
    }
}

/// One language model training invocation.
struct LmJob<'a> {
    text: &'a str,
    settings: &'a BigramSettings,
    resume: Option<&'a Path>,
    overrides: &'a dyn Fn(TrainConfig) -> TrainConfig,
    save: Option<&'a Path>,
    json: bool,
}

fn lm_on<D: Fused>(dev: &D, lm: Lm, job: &LmJob) -> Result<()> {
    match lm {
        Lm::Bigram => {
            let init = |rng: &mut ChaCha12Rng| {
                BigramLanguageModel::<SHAKESPEARE_VOCAB, f32, D>::new(
                    dev,
                    rng,
                    job.settings.init_std,
                )
            };
            train_and_report(dev, job, init)
        }
        Lm::Head => train_and_report(dev, job, |rng: &mut ChaCha12Rng| {
            ShakespeareHead::new(dev, rng)
        }),
    }
}

/// Train (or resume), save, report.
fn train_and_report<D: Fused, M: LanguageModel<D>>(
    dev: &D,
    job: &LmJob,
    init: impl Fn(&mut ChaCha12Rng) -> Result<M, ModelError>,
) -> Result<()> {
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    let resume = job.resume.map(|p| (p, job.overrides));
    let run = train_lm_with_bar(dev, job.text, job.settings, init, resume, job.json)?;
    if run.finish == Finish::Stopped {
        let default = format!("{}-interrupted.safetensors", M::KIND);
        let path = job
            .save
            .map_or_else(|| PathBuf::from(default), Path::to_path_buf);
        run.save(&path)?;
        let (step, path) = (run.state.step, path.display().to_string());
        return Err(Interrupted { step, path }.into());
    }
    if let Some(path) = job.save {
        run.save(path)?;
    }
    if job.json {
        println!("{}", serde_json::to_string(&run.report)?);
    } else {
        print!("{}", run.summary());
        if let Some(path) = job.save {
            println!("checkpoint       {}", path.display());
        }
    }
    Ok(())
}

#[cfg(feature = "cuda")]
fn lm_cuda(lm: Lm, job: &LmJob, seed: u64) -> Result<()> {
    let dev = dfdx::tensor::Cuda::try_build(0, seed)
        .map_err(|e| anyhow::anyhow!("no usable CUDA device: {e:?}"))?;
    lm_on(&dev, lm, job)
}

#[cfg(not(feature = "cuda"))]
fn lm_cuda(_: Lm, _: &LmJob, _: u64) -> Result<()> {
    anyhow::bail!("this charlm was built without CUDA support; rebuild with `cargo build --release --features cuda`")
}

/// `charlm generate`: text from a checkpoint.
fn generate(path: &Path, tokens: usize, prompt: Option<&str>, seed: u64) -> Result<()> {
    let (meta, vocab) = checkpoint::read_meta(path)?;
    let dev = Cpu::default();
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let context = vocab.encode(prompt.unwrap_or("\n")).context("the prompt")?;
    let out = match meta.model.as_str() {
        "bigram" => {
            let init =
                BigramLanguageModel::<SHAKESPEARE_VOCAB, f32, Cpu>::new(&dev, &mut rng, 0.0)?;
            generate_from(&dev, path, init, context, tokens, &mut rng)?
        }
        "head" => {
            let init: ShakespeareHead<Cpu> = ShakespeareHead::new(&dev, &mut rng)?;
            generate_from(&dev, path, init, context, tokens, &mut rng)?
        }
        other => anyhow::bail!(
            "{}: charlm cannot generate from a {other:?} model",
            path.display()
        ),
    };
    println!("{}", vocab.decode(&out));
    Ok(())
}

/// Loads the checkpoint into `model` and continues `context`.
fn generate_from<M: LanguageModel<Cpu>>(
    dev: &Cpu,
    path: &Path,
    mut model: M,
    context: Vec<usize>,
    tokens: usize,
    rng: &mut ChaCha12Rng,
) -> Result<Vec<usize>> {
    checkpoint::load(dev, path, &mut model, M::KIND)?;
    let mut out = model.generate(&[context], tokens, rng)?;
    Ok(out.remove(0))
}

/// Chapter 3 in the tour: the bigram language model with the defaults.
fn tour_bigram(dev: &Cpu, text: &str, json: bool) -> Result<tour::BigramRun<Cpu>> {
    let settings = BigramSettings::default();
    let init = |rng: &mut ChaCha12Rng| BigramLanguageModel::new(dev, rng, settings.init_std);
    train_lm_with_bar(dev, text, &settings, init, None, json)
}

/// Trains a language model with a progress bar on stderr (hidden under
/// --json, and by indicatif when stderr is not a terminal).
fn train_lm_with_bar<D: Fused, M: LanguageModel<D>>(
    dev: &D,
    text: &str,
    settings: &BigramSettings,
    init: impl Fn(&mut ChaCha12Rng) -> Result<M, ModelError>,
    resume: Option<(&Path, &dyn Fn(TrainConfig) -> TrainConfig)>,
    json: bool,
) -> Result<tour::LmRun<D, M>> {
    let bar = progress_bar(settings.config.max_iters, json);
    let stop = || INTERRUPTED.load(Ordering::SeqCst);
    let on_event = |event| match event {
        Event::Step { loss, .. } => {
            bar.set_message(format!("loss {loss:.4}"));
            bar.inc(1);
        }
        Event::Eval(e) => bar.println(format!(
            "step {:>6}: train loss {:.4}, val loss {:.4}",
            e.step, e.train, e.val
        )),
    };
    let run = tour::run_lm_until(dev, text, settings, init, resume, on_event, stop);
    bar.finish_and_clear();
    Ok(run?)
}

/// A progress bar of `steps` steps on stderr: step, loss, steps/s. Hidden
/// under --json; indicatif hides it too when stderr is not a terminal.
fn progress_bar(steps: usize, json: bool) -> ProgressBar {
    let target = if json {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(steps as u64), target);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} step {pos}/{len} {msg} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Trains and reports the one-hot net on `dev`.
fn onehot<D: Fused>(
    dev: &D,
    words: &[String],
    settings: &OneHotSettings,
    json: bool,
) -> Result<()> {
    let run = train_onehot(dev, words, settings, json)?;
    if json {
        println!("{}", serde_json::to_string(&run.report)?);
    } else {
        print!("{}", run.summary());
    }
    Ok(())
}

#[cfg(feature = "cuda")]
fn onehot_cuda(words: &[String], settings: &OneHotSettings, json: bool) -> Result<()> {
    let dev = dfdx::tensor::Cuda::try_build(0, settings.seed)
        .map_err(|e| anyhow::anyhow!("no usable CUDA device: {e:?}"))?;
    onehot(&dev, words, settings, json)
}

#[cfg(not(feature = "cuda"))]
fn onehot_cuda(_: &[String], _: &OneHotSettings, _: bool) -> Result<()> {
    anyhow::bail!("this charlm was built without CUDA support; rebuild with `cargo build --release --features cuda`")
}

/// A workload by its name, for clap.
fn workload_name(name: &str) -> Result<charlm::bench::Workload, String> {
    use charlm::bench::Workload;
    Workload::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
        format!("unknown workload; choose from {}", names.join(", "))
    })
}

/// `charlm bench`: times the workloads on a pool of `threads` threads.
fn bench(
    workloads: &[charlm::bench::Workload],
    threads: usize,
    samples: usize,
    sample_ms: u64,
    json: bool,
) -> Result<()> {
    use charlm::bench::{time, with_threads, Workload};
    anyhow::ensure!(threads >= 1, "--threads must be at least 1");
    anyhow::ensure!(samples >= 1, "--samples must be at least 1");
    let workloads = if workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        workloads.to_vec()
    };
    let words = match workloads.iter().any(|w| w.needs_names()) {
        true => data::load_names(None)?,
        false => Vec::new(),
    };
    let text = match workloads.iter().any(|w| w.needs_text()) {
        true => data::load_text(data::Dataset::TinyShakespeare, None)?,
        false => String::new(),
    };
    let min_sample = std::time::Duration::from_millis(sample_ms);
    let timings = with_threads(threads, || {
        workloads
            .iter()
            .map(|&w| {
                let mut iteration = w.prepare(&words, &text)?;
                time(w, &mut iteration, samples, min_sample)
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .context("starting the thread pool")??;
    if json {
        let rows: Vec<_> = timings
            .iter()
            .map(|t| {
                serde_json::json!({
                    "workload": t.workload,
                    "threads": t.threads,
                    "iterations": t.iterations,
                    "best_s": t.best(),
                    "median_s": t.median(),
                    "seconds": t.seconds,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "threads": threads, "timings": rows })
        );
    } else {
        println!(
            "{:<14} {:>7} {:>12} {:>12}",
            "workload", "threads", "best", "median"
        );
        for t in &timings {
            println!(
                "{:<14} {:>7} {:>9.3} ms {:>9.3} ms",
                t.workload,
                t.threads,
                t.best() * 1e3,
                t.median() * 1e3
            );
        }
    }
    Ok(())
}

/// `charlm parity`: every comparison, as a table or as JSON; an error when
/// any fails.
fn parity(json: bool) -> Result<()> {
    let words = data::load_names(None)?;
    let text = data::load_text(data::Dataset::TinyShakespeare, None)?;
    let all = charlm::parity::check_all(&Cpu::default(), &words, &text)?;
    let failed: Vec<&str> = all
        .iter()
        .filter(|c| !c.passes())
        .map(|c| c.quantity.as_str())
        .collect();
    if json {
        let rows: Vec<_> = all
            .iter()
            .map(|c| {
                serde_json::json!({
                    "stage": c.stage,
                    "quantity": c.quantity,
                    "values": c.torch.len(),
                    "max_abs_diff": c.max_abs_diff(),
                    "tolerance": c.tolerance,
                    "passes": c.passes(),
                })
            })
            .collect();
        let torch = charlm::parity::torch_version()?;
        println!(
            "{}",
            serde_json::json!({ "torch": torch, "comparisons": rows, "failed": failed.len() })
        );
    } else {
        print!("{}", charlm::parity::markdown_table(&all));
        println!(
            "{} of {} comparisons within tolerance",
            all.len() - failed.len(),
            all.len()
        );
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "charlm differs from PyTorch beyond tolerance: {}",
            failed.join("; ")
        );
    }
    Ok(())
}

fn print_written(paths: &[impl AsRef<Path>]) {
    for p in paths {
        println!("figure           {}", p.as_ref().display());
    }
}
