//! `charlm bigram`, `charlm head`, `charlm train --model` and `charlm
//! generate`: the language models of chapter 3 on, on any text, with
//! checkpoints, resume and Ctrl-C.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use dfdx::prelude::Cpu;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use charlm::data::{self, Dataset, Locator};
use charlm::fsutil;
use charlm::models::lm::Sampling;
use charlm::models::{Kind, LanguageModel, ModelJob};
use charlm::ops::Kernels;
use charlm::presets::{self, Preset};
use charlm::train::checkpoint;
use charlm::train::session::{self, Resume, Settings};
use charlm::train::{self, Eval, Finish, ScheduleKind, TrainConfig, TrainFlags};

use super::progress::{Bar, Log};
use super::signals::{self, Stopped};
use super::{
    count_in, limits, non_negative, on_device, positive, probability, DeviceArg, DeviceJob,
};

/// Training flags shared by the language models (chapter 3 on).
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The text file: any UTF-8 text; its characters are the vocabulary
    /// [default: tiny Shakespeare].
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Optimiser steps in all, counted from the start of the run (0 to
    /// 1,000,000,000) [default: 3000].
    #[arg(long, value_name = "N", value_parser = count_in(0, limits::STEPS))]
    steps: Option<usize>,
    /// AdamW's learning rate, a finite number > 0 [default: 0.01].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = positive)]
    lr: Option<f32>,
    /// Rows per batch (B), 1 to 1,000,000,000, within the free memory
    /// [default: 32].
    #[arg(long, value_name = "B", value_parser = count_in(1, limits::BATCH))]
    batch: Option<usize>,
    /// Tokens per row (T), 1 to 1,000,000, at most the model's block and
    /// shorter than the text [default: 8].
    #[arg(long, value_name = "T", value_parser = count_in(1, limits::BLOCK))]
    block: Option<usize>,
    /// Dropout's probability in training, at least 0 and below 1 (the
    /// blocks and layernorm models and the GPT presets) [default: 0; the
    /// dropout and lecture presets' 0.2].
    #[arg(long, value_name = "P", value_parser = probability)]
    dropout: Option<f32>,
    /// The learning rate over the run: constant, or cosine (linear warm-up
    /// over --warmup steps, then a cosine down to --min-lr at the last step)
    /// [default: constant; the cpu preset's cosine].
    #[arg(long, value_enum, value_name = "KIND")]
    lr_schedule: Option<ScheduleArg>,
    /// Warm-up steps of the cosine schedule (0 to 1,000,000,000) [default: 0;
    /// the cpu preset's 100].
    #[arg(long, value_name = "N", value_parser = count_in(0, limits::STEPS))]
    warmup: Option<usize>,
    /// The cosine schedule's rate at the last step, from 0 to --lr
    /// [default: --lr / 10].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = non_negative)]
    min_lr: Option<f32>,
    /// Clip the gradients' global norm to X (a finite number > 0) before
    /// each step [default: no clipping; the cpu preset's 1].
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = positive)]
    grad_clip: Option<f32>,
    /// Estimate the loss every N steps (1 to 1,000,000,000) [default: 300].
    #[arg(long, value_name = "N", value_parser = count_in(1, limits::EVAL_INTERVAL))]
    eval_interval: Option<usize>,
    /// Batches per split in each estimate (1 to 1,000,000) [default: 200].
    #[arg(long, value_name = "N", value_parser = count_in(1, limits::EVAL_ITERS))]
    eval_iters: Option<usize>,
    /// Seed of the random generator (bigram.py's is 1337).
    #[arg(long, value_name = "S", default_value_t = 1337)]
    seed: u64,
    /// Characters to generate after training (0 to 10,000,000), printed as
    /// they come.
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = count_in(0, limits::TOKENS))]
    tokens: usize,
    /// Keep the best model here: a checkpoint is written at every loss
    /// estimate whose validation loss is the lowest so far (the best, not
    /// the last; a resumed run that never beats its checkpoint's best writes
    /// its last step). A run stopped by a signal saves where it stands to a
    /// new NAME-interrupted.safetensors instead. Checked before training
    /// starts: it must be a regular file (or not exist yet) in a writable
    /// folder, and not the --data file, the --resume or the --init checkpoint. A
    /// symbolic link is followed.
    #[arg(long, value_name = "PATH")]
    save: Option<PathBuf>,
    /// Continue the run saved in this checkpoint.
    #[arg(long, value_name = "PATH")]
    resume: Option<PathBuf>,
    /// Start from the weights saved in this checkpoint, and its vocabulary,
    /// with this run's settings, a fresh optimiser and step 0: finetuning
    /// (chapter 8's EX3). The model must be the same kind, and the text
    /// written in the characters of the text it learnt.
    #[arg(long, value_name = "PATH", conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// Write one JSON object per loss estimate here, a line each (step,
    /// train_loss, val_loss, lr, tokens, seconds), as the run goes. Checked
    /// as --save is; an existing file is replaced.
    #[arg(long, value_name = "PATH")]
    json_log: Option<PathBuf>,
    /// Where tensors live.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Print only one JSON object of the key figures (the last stdout line).
    #[arg(long)]
    json: bool,
}

/// The schedules of `--lr-schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleArg {
    /// The same rate at every step.
    Constant,
    /// Linear warm-up, then a cosine down to --min-lr.
    Cosine,
}

impl TrainArgs {
    /// The training flags given, as the library takes them.
    fn flags(&self) -> TrainFlags {
        TrainFlags {
            steps: self.steps,
            lr: self.lr,
            batch: self.batch,
            block: self.block,
            dropout: self.dropout,
            lr_schedule: self.lr_schedule.map(|s| match s {
                ScheduleArg::Constant => ScheduleKind::Constant,
                ScheduleArg::Cosine => ScheduleKind::Cosine,
            }),
            warmup: self.warmup,
            min_lr: self.min_lr,
            grad_clip: self.grad_clip,
            eval_interval: self.eval_interval,
            eval_iters: self.eval_iters,
        }
    }
}

/// Flags of `charlm gpt`: a rung of the lecture's ladder or a preset of
/// chapter 8, then the training flags (which replace the preset's settings).
#[derive(Debug, Args)]
pub struct GptArgs {
    /// A named run from `presets::PRESETS`: a rung of the ladder (chapters 6
    /// and 7) or a GPT of chapter 8.
    #[arg(long, value_name = "NAME", value_parser = PresetParser)]
    pub preset: &'static Preset,
    /// The training flags [defaults: the preset's; the ladder's are 5000
    /// steps, lr 1e-3, estimates every 500 steps].
    #[command(flatten)]
    pub train: TrainArgs,
}

/// Parses `--preset NAME` from [`presets::PRESETS`]: `--help` lists the
/// table with each preset's line, and an unknown name is refused with the list.
#[derive(Debug, Clone, Copy)]
struct PresetParser;

impl clap::builder::TypedValueParser for PresetParser {
    type Value = &'static Preset;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let name = value.to_string_lossy();
        presets::get(&name).ok_or_else(|| {
            let choose = presets::names();
            let message = format!(
                "invalid value '{name}' for '--preset <NAME>': unknown preset; choose from {choose}\n"
            );
            clap::Error::raw(clap::error::ErrorKind::InvalidValue, message).with_cmd(cmd)
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        let values = presets::PRESETS.iter();
        Some(Box::new(values.map(|p| {
            clap::builder::PossibleValue::new(p.name).help(p.about)
        })))
    }
}

/// Flags of `charlm train`: the model, then the training flags.
#[derive(Debug, Args)]
pub struct TrainModelArgs {
    /// Which model: a name from the registry of language models.
    #[arg(long, value_name = "NAME", value_parser = kind_name)]
    pub model: Kind,
    /// The training flags.
    #[command(flatten)]
    pub train: TrainArgs,
}

/// A model kind by its name, for clap.
fn kind_name(name: &str) -> Result<Kind, String> {
    Kind::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown model; choose from {}", names.join(", "))
    })
}

/// `charlm bigram`, `charlm head`, `charlm train`: settings from the flags,
/// every input and output checked, then train (or resume), save, report,
/// generate.
pub fn train(kind: Kind, a: TrainArgs) -> Result<()> {
    train_from(kind, TrainConfig::default(), None, a)
}

/// `charlm gpt --preset NAME`: a rung of the ladder or a GPT of chapter 8,
/// with its settings.
pub fn gpt(a: GptArgs) -> Result<()> {
    let p = a.preset;
    train_from(p.kind, p.config, Some(p.name), a.train)
}

/// Trains `kind` from the `defaults` that the flags override; `preset`
/// names the rung in the JSON.
fn train_from(
    kind: Kind,
    defaults: TrainConfig,
    preset: Option<&'static str>,
    a: TrainArgs,
) -> Result<()> {
    signals::catch()?;
    let data_path = Locator::from_env().resolve(Dataset::TinyShakespeare, a.data.as_deref())?;
    // Outputs are checked before training: none may be an input.
    let mut inputs = vec![("the --data file", data_path.as_path())];
    if let Some(resume) = &a.resume {
        inputs.push(("the --resume checkpoint", resume.as_path()));
    }
    if let Some(init) = &a.init {
        inputs.push(("the --init checkpoint", init.as_path()));
    }
    let save = match &a.save {
        Some(path) => {
            fsutil::check_output(path, &inputs)?;
            inputs.push(("the --save checkpoint", path.as_path()));
            Some(path.as_path())
        }
        None => None,
    };
    if let Some(log) = &a.json_log {
        fsutil::check_output(log, &inputs)?;
    }
    // Where a stopped run's checkpoint will go, decided now: beside --save,
    // else here, else (a read-only folder) the temporary folder.
    let interrupted_dir = match save {
        Some(path) => path.parent().unwrap_or(Path::new("")).to_path_buf(),
        None if fsutil::check_folder(Path::new(".")).is_ok() => PathBuf::new(),
        None => std::env::temp_dir(),
    };
    let text = data::read_text(&data_path)?;
    // The run's settings, resolved once: the preset's (or the checkpoint's), then the flags.
    let config = train::resolve(defaults, a.resume.as_deref(), &a.flags())?;
    let settings = Settings {
        config,
        seed: a.seed,
        sample_tokens: a.tokens,
    };
    let job = TrainJob {
        kind,
        text: &text,
        settings: &settings,
        resume: a.resume.as_deref(),
        init: a.init.as_deref(),
        save,
        interrupted_dir,
        json_log: a.json_log.as_deref(),
        json: a.json,
        preset,
    };
    on_device(a.device, a.seed, job)
}

/// One training invocation: on a device, then with a model type.
struct TrainJob<'a> {
    kind: Kind,
    text: &'a str,
    settings: &'a Settings,
    resume: Option<&'a Path>,
    init: Option<&'a Path>,
    save: Option<&'a Path>,
    interrupted_dir: PathBuf,
    json_log: Option<&'a Path>,
    json: bool,
    preset: Option<&'static str>,
}

impl DeviceJob for TrainJob<'_> {
    type Output = ();

    fn run<D: Kernels>(self, dev: &D) -> Result<()> {
        self.kind.with(OnModel { job: self, dev })
    }
}

struct OnModel<'a, 'd, D> {
    job: TrainJob<'a>,
    dev: &'d D,
}

impl<D: Kernels> ModelJob<D> for OnModel<'_, '_, D> {
    type Output = Result<()>;

    fn run<M: LanguageModel<D>>(self) -> Result<()> {
        let OnModel { job, dev } = self;
        let from = |path, weights_only| Resume { path, weights_only };
        let resume = match (job.resume, job.init) {
            (Some(path), _) => Some(from(path, false)),
            (None, Some(path)) => Some(from(path, true)),
            (None, None) => None,
        };
        let c = &job.settings.config;
        let log = job.json_log.map(|path| Log::create(path, *c));
        let mut bar = Bar::new(c.max_iters, job.json)
            .with_tokens(c.batch_size * c.block_size)
            .with_log(log);
        let mut run =
            session::start_saving::<D, M>(dev, job.text, job.settings, resume, job.save, &mut bar)?;
        if let Some(e) = bar.log_error() {
            anyhow::bail!("{e}; training stopped at step {}", run.state.step);
        }
        drop(bar);
        // ANCHOR: stopped
        if let (Finish::Stopped, Some(signal)) = (run.finish, signals::received()) {
            // To a new file beside --save: never over its best model, nor an earlier one.
            let default = job
                .interrupted_dir
                .join(format!("{}-interrupted.safetensors", M::KIND));
            let saved = fsutil::write_new(&default, &run.checkpoint_bytes(&default)?)?;
            let (step, path) = (run.state.step, saved.display());
            let mut what = format!(
                "stopped training at step {step}; checkpoint saved to {path} (continue with --resume {path})"
            );
            if let (Some(save), Some(best)) = (job.save, run.saved_best) {
                what += &format!(
                    "; the best model so far (val {:.4}, step {}) is in {}",
                    best.val,
                    best.step,
                    save.display()
                );
            }
            return Err(Stopped { signal, what }.into());
        }
        // ANCHOR_END: stopped
        // The best model was written as training went; a resumed run that
        // never beat its checkpoint's best writes its last state.
        let kept = match (job.save, run.saved_best) {
            (Some(path), Some(best)) => Some((path, best_note(best))),
            (Some(path), None) => {
                run.save(path)?;
                let note = match run.state.best_eval() {
                    Some(b) => format!(
                        "the last step's: no estimate of this run beat val {:.4} at step {}",
                        b.val, b.step
                    ),
                    None => "the last step's".to_string(),
                };
                Some((path, note))
            }
            (None, _) => None,
        };
        let tokens = job.settings.sample_tokens;
        let stopped_generating = |signal| Stopped {
            signal,
            what: match job.save {
                Some(path) => format!(
                    "stopped generating; the checkpoint {} was saved before",
                    path.display()
                ),
                None => "stopped generating".to_string(),
            },
        };
        if job.json {
            run.sample(tokens, &mut |_| signals::received().is_none())?;
            if let Some(signal) = signals::received() {
                return Err(stopped_generating(signal).into());
            }
            let mut json = serde_json::to_value(&run.report)?;
            if let Some(map) = json.as_object_mut() {
                if let Some(preset) = job.preset {
                    map.insert("preset".to_string(), preset.into());
                }
                if let Some((path, note)) = &kept {
                    map.insert("checkpoint".to_string(), path.display().to_string().into());
                    map.insert("checkpoint_holds".to_string(), note.clone().into());
                }
            }
            println!("{json}");
            return Ok(());
        }
        print!("{}", run.summary());
        if let Some((path, note)) = &kept {
            println!("checkpoint       {} ({note})", path.display());
        }
        println!("sample");
        let mut out = Streamed::new();
        run.sample(tokens, &mut |c| out.put(c))?;
        out.end()?;
        match signals::received() {
            Some(signal) => Err(stopped_generating(signal).into()),
            None => Ok(()),
        }
    }
}

/// What `--save`'s file holds when the run wrote its best.
fn best_note(best: Eval) -> String {
    format!(
        "the best validation estimate: val {:.4} at step {}",
        best.val, best.step
    )
}

/// Characters written to stdout as they are generated, each flushed (so a
/// pipe or a stopped run shows everything made); `put` says whether to go on.
struct Streamed {
    out: std::io::StdoutLock<'static>,
    error: Option<std::io::Error>,
}

impl Streamed {
    fn new() -> Self {
        Self {
            out: std::io::stdout().lock(),
            error: None,
        }
    }

    /// Writes `c`; `false` (stop) once a signal came or stdout failed.
    fn put(&mut self, c: char) -> bool {
        let mut buf = [0u8; 4];
        let written = self
            .out
            .write_all(c.encode_utf8(&mut buf).as_bytes())
            .and_then(|()| self.out.flush());
        if let Err(e) = written {
            self.error = Some(e);
            return false;
        }
        signals::received().is_none()
    }

    /// Ends the text with a newline; a closed pipe is not an error.
    fn end(mut self) -> Result<()> {
        let result = match self.error.take() {
            Some(e) => Err(e),
            None => writeln!(self.out).and_then(|()| self.out.flush()),
        };
        match result {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow::anyhow!(
                "writing the sample to stdout: {}",
                fsutil::plain(&e)
            )),
            _ => Ok(()),
        }
    }
}

/// Flags of `charlm generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The checkpoint.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// Characters to generate (0 to 10,000,000), printed as they come.
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = count_in(0, limits::TOKENS))]
    tokens: usize,
    /// Text to continue; every character must be in the model's vocabulary
    /// [default: a newline, or the vocabulary's first character].
    #[arg(long, value_name = "TEXT")]
    prompt: Option<String>,
    /// Seed of the random generator.
    #[arg(long, value_name = "S", default_value_t = 1337)]
    seed: u64,
    /// Divide the logits by this, a finite number > 0: 1 samples the model's
    /// own distribution, less is surer, more is wilder.
    #[arg(long, value_name = "X", default_value_t = 1.0, allow_negative_numbers = true, value_parser = positive)]
    temperature: f32,
    /// Sample only from the K most likely characters (1 to 1,000,000,000;
    /// 1 always takes the most likely) [default: all].
    #[arg(long, value_name = "K", value_parser = count_in(1, limits::STEPS))]
    top_k: Option<usize>,
}

/// `charlm generate`: text from a checkpoint, decoded with its vocabulary,
/// streamed to stdout; a signal stops it (exit 128 + the signal's number).
pub fn generate(a: GenerateArgs) -> Result<()> {
    signals::catch()?;
    let path = a.checkpoint.as_path();
    let (meta, vocab) = checkpoint::read_meta(path)?;
    let kind = Kind::from_name(&meta.model).with_context(|| {
        format!(
            "{}: charlm cannot generate from a {:?} model",
            path.display(),
            meta.model
        )
    })?;
    let prompt = match &a.prompt {
        Some(p) => p.clone(),
        None if vocab.index('\n').is_some() => "\n".to_string(),
        None => vocab.chars()[0].to_string(),
    };
    let context = vocab.encode(&prompt).context("the prompt")?;
    let mut out = Streamed::new();
    let prompt_shown = prompt.chars().all(|c| out.put(c));
    let job = Generate {
        path,
        context,
        tokens: if prompt_shown { a.tokens } else { 0 },
        seed: a.seed,
        sampling: Sampling {
            temperature: a.temperature,
            top_k: a.top_k,
        },
        on_char: &mut |id| out.put(vocab.chars()[id]),
    };
    kind.with::<Cpu, _>(job)?;
    out.end()?;
    match signals::received() {
        Some(signal) => Err(Stopped {
            signal,
            what: "stopped generating".to_string(),
        }
        .into()),
        None => Ok(()),
    }
}

/// Loads a checkpoint into its model type and continues the context.
struct Generate<'a> {
    path: &'a Path,
    context: Vec<usize>,
    tokens: usize,
    seed: u64,
    sampling: Sampling,
    on_char: &'a mut dyn FnMut(usize) -> bool,
}

impl ModelJob<Cpu> for Generate<'_> {
    type Output = Result<()>;

    fn run<M: LanguageModel<Cpu>>(self) -> Result<()> {
        let (model, _) = checkpoint::load_model::<Cpu, M>(&Cpu::default(), self.path)?;
        let mut rng = ChaCha12Rng::seed_from_u64(self.seed);
        let on_char = self.on_char;
        let mut on_tokens = |new: &[usize]| on_char(new[0]);
        let (context, sampling) = (&[self.context], self.sampling);
        model.generate_sampled(context, self.tokens, sampling, &mut rng, &mut on_tokens)?;
        Ok(())
    }
}
