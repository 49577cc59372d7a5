//! `charlm bigram`, `charlm head`, `charlm train --model` and `charlm
//! generate`: the language models of chapter 3 on, on any text, with
//! checkpoints, resume and Ctrl-C.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use dfdx::prelude::Cpu;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use charlm::data::{self, Dataset};
use charlm::models::{Kind, LanguageModel, ModelJob};
use charlm::ops::Kernels;
use charlm::train::checkpoint;
use charlm::train::session::{self, Resume, Settings};
use charlm::train::{Finish, TrainConfig};

use super::progress::{stop_on_ctrl_c, Bar};
use super::{on_device, DeviceArg, DeviceJob};

/// Training flags shared by the language models (chapter 3 on).
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The text file: any UTF-8 text; its characters are the vocabulary
    /// [default: tiny Shakespeare].
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

/// Training was stopped by Ctrl-C; a checkpoint was saved.
#[derive(Debug, thiserror::Error)]
#[error("interrupted at step {step}; checkpoint saved to {path} (continue with --resume {path})")]
pub struct Interrupted {
    step: usize,
    path: String,
}

/// `charlm bigram`, `charlm head`, `charlm train`: settings from the flags,
/// then train (or resume), save, report.
pub fn train(kind: Kind, a: TrainArgs) -> Result<()> {
    let text = data::load_text(Dataset::TinyShakespeare, a.data.as_deref())?;
    let overrides = |c: TrainConfig| TrainConfig {
        max_iters: a.steps.unwrap_or(c.max_iters),
        learning_rate: a.lr.unwrap_or(c.learning_rate),
        batch_size: a.batch.unwrap_or(c.batch_size),
        block_size: a.block.unwrap_or(c.block_size),
        eval_interval: a.eval_interval.unwrap_or(c.eval_interval),
        eval_iters: a.eval_iters.unwrap_or(c.eval_iters),
        ..c
    };
    let settings = Settings {
        config: overrides(TrainConfig::default()),
        seed: a.seed,
        sample_tokens: a.tokens,
    };
    let job = TrainJob {
        kind,
        text: &text,
        settings: &settings,
        resume: a.resume.as_deref(),
        overrides: &overrides,
        save: a.save.as_deref(),
        json: a.json,
    };
    on_device(a.device, a.seed, job)
}

/// One training invocation: on a device, then with a model type.
struct TrainJob<'a> {
    kind: Kind,
    text: &'a str,
    settings: &'a Settings,
    resume: Option<&'a Path>,
    overrides: &'a dyn Fn(TrainConfig) -> TrainConfig,
    save: Option<&'a Path>,
    json: bool,
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
        stop_on_ctrl_c()?;
        let resume = job.resume.map(|path| Resume {
            path,
            overrides: job.overrides,
        });
        let mut bar = Bar::new(job.settings.config.max_iters, job.json);
        let run = session::run::<D, M>(dev, job.text, job.settings, resume, &mut bar)?;
        drop(bar);
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
}

/// Flags of `charlm generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The checkpoint.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// Characters to generate.
    #[arg(long, value_name = "N", default_value_t = 500)]
    tokens: usize,
    /// Text to continue; every character must be in the model's vocabulary
    /// [default: a newline, or the vocabulary's first character].
    #[arg(long, value_name = "TEXT")]
    prompt: Option<String>,
    /// Seed of the random generator.
    #[arg(long, value_name = "S", default_value_t = 1337)]
    seed: u64,
}

/// `charlm generate`: text from a checkpoint, decoded with its vocabulary.
pub fn generate(a: GenerateArgs) -> Result<()> {
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
    let job = Generate {
        path,
        context,
        tokens: a.tokens,
        seed: a.seed,
    };
    let out = kind.with::<Cpu, _>(job)?;
    println!("{}", vocab.decode(&out));
    Ok(())
}

/// Loads a checkpoint into its model type and continues the context.
struct Generate<'a> {
    path: &'a Path,
    context: Vec<usize>,
    tokens: usize,
    seed: u64,
}

impl ModelJob<Cpu> for Generate<'_> {
    type Output = Result<Vec<usize>>;

    fn run<M: LanguageModel<Cpu>>(self) -> Result<Vec<usize>> {
        let (model, _) = checkpoint::load_model::<Cpu, M>(&Cpu::default(), self.path)?;
        let mut rng = ChaCha12Rng::seed_from_u64(self.seed);
        let mut out = model.generate(&[self.context], self.tokens, &mut rng)?;
        Ok(out.remove(0))
    }
}
