//! The training machinery every language model from chapter 3 on shares:
//! settings and their presets, AdamW, the loop, the loss estimate on both
//! splits, checkpoints, and the wrapper that runs a whole session.
//!
//! Introduced in chapter 3 with the bigram language model; the models of
//! later chapters plug in through [`LanguageModel`](crate::models::LanguageModel).
//!
//! | module | what |
//! |---|---|
//! | [`run`](mod@run) | the loop, one training step, the loss estimate (what chapter 3 lists) |
//! | [`adamw`] | AdamW with a state that can be saved |
//! | [`checkpoint`] | saving and resuming runs (safetensors) |
//! | [`flags`] | the training flags, and a run's settings resolved once from them |
//! | [`session`] | a whole run as the CLI and the book make it: resume, stop, samples, report |

use std::time::Duration;

use dfdx::optim::{AdamConfig, WeightDecay};
use dfdx::prelude::*;

use crate::data::text::TextError;
use crate::models::ModelError;

pub mod adamw;
pub mod checkpoint;
pub mod flags;
pub mod run;
pub mod session;

pub use adamw::AdamW;
pub use flags::{resolve, ScheduleKind, TrainFlags};
pub use run::{estimate_loss, run, run_keeping, split_loss, train, train_step, Keep};

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Batches could not be made.
    #[error(transparent)]
    Text(#[from] TextError),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The learning rate is not a finite number > 0.
    #[error("the learning rate must be a finite number > 0, got {0}")]
    BadLearningRate(f32),
    /// The dropout probability is not in [0, 1).
    #[error("the dropout probability must be at least 0 and below 1, got {0}")]
    BadDropout(f32),
    /// Dropout asked of a model that has none.
    #[error("the {0} model has no dropout; --dropout needs the blocks or layernorm preset")]
    NoDropout(&'static str),
    /// The cosine schedule's floor is not in [0, lr].
    #[error("--min-lr must be a finite number from 0 to the learning rate {lr}, got {min_lr}")]
    BadMinLr {
        /// The floor asked for.
        min_lr: f32,
        /// The learning rate.
        lr: f32,
    },
    /// `--warmup` or `--min-lr` for a run whose schedule is constant.
    #[error("--warmup and --min-lr shape the cosine schedule: add --lr-schedule cosine")]
    CosineOnly,
    /// The gradient clip is not a finite number > 0.
    #[error("--grad-clip must be a finite number > 0, got {0}")]
    BadGradClip(f32),
    /// AdamW's beta2 is not in (0, 1).
    #[error("AdamW's beta2 must be above 0 and below 1, got {0}")]
    BadBeta2(f32),
    /// The weight decay is not a finite number >= 0.
    #[error("the weight decay must be a finite number >= 0, got {0}")]
    BadWeightDecay(f32),
    /// A count that must be positive is 0.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// Training diverged.
    #[error("the loss became {value} at step {step}; training stopped (try a smaller --lr)")]
    NonFiniteLoss {
        /// The step (0-based) whose forward pass gave the loss.
        step: usize,
        /// The loss.
        value: f32,
    },
    /// The optimiser failed.
    #[error("optimiser error: {0}")]
    Optimizer(String),
    /// A checkpoint could not be saved or loaded.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// The block is longer than the model's position table.
    #[error(
        "--block {asked} is longer than the {model} model's position table, which has {block} rows \
         (fixed by the model's type when it is built); use --block {block} or less"
    )]
    BlockTooLong {
        /// The model kind.
        model: &'static str,
        /// The block asked for.
        asked: usize,
        /// The longest the model takes.
        block: usize,
    },
    /// A training step would need more memory than the machine has free.
    #[error(
        "a training step of batch {batch} x block {block} needs about {needed} of memory, more than \
         the {available} free; use a smaller --batch or --block"
    )]
    TooBig {
        /// Rows per batch.
        batch: usize,
        /// Tokens per row.
        block: usize,
        /// The estimate, in words ("12.3 GB").
        needed: String,
        /// What the machine has free, in words.
        available: String,
    },
    /// A resumed run that asks for no more steps than the checkpoint took.
    #[error(
        "the checkpoint is already at step {step}, and --steps {steps} counts from the start of the run: \
         pass --steps above {step} to train more, or use `charlm generate --checkpoint` to sample from it"
    )]
    NothingToTrain {
        /// Steps the checkpoint took.
        step: usize,
        /// Steps asked for in all.
        steps: usize,
    },
}

/// The memory the operating system can give a process now, in bytes
/// (`MemAvailable` on Linux; `None` where it cannot tell).
pub fn available_memory() -> Option<u64> {
    proc_kb("/proc/meminfo", "MemAvailable:")
}

/// The process's peak resident memory so far, in bytes: `VmHWM` in
/// `/proc/self/status` on Linux (`None` elsewhere). Chapter 8 reports it.
pub fn peak_memory() -> Option<u64> {
    proc_kb("/proc/self/status", "VmHWM:")
}

/// The line of a `/proc` file that starts with `key`, its value in kB, as
/// bytes.
fn proc_kb(path: &str, key: &str) -> Option<u64> {
    let info = std::fs::read_to_string(path).ok()?;
    let line = info.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// Bytes in words: "12.3 GB", "512 MB".
pub fn bytes_in_words(bytes: u128) -> String {
    let gb = bytes as f64 / 1e9;
    if gb >= 1.0 {
        format!("{gb:.1} GB")
    } else {
        format!("{:.0} MB", bytes as f64 / 1e6)
    }
}

/// The batches, the block and the memory a run needs, checked before its
/// first step: blocks that fit in both splits, a block no longer than the
/// model's position table, a step that fits in the free memory.
pub fn check_fits<D: crate::ops::Kernels, M: crate::models::LanguageModel<D>>(
    model: &M,
    corpus: &crate::data::text::Corpus,
    cfg: &TrainConfig,
) -> Result<(), TrainError> {
    corpus.check_batches(cfg.batch_size, cfg.block_size)?;
    if cfg.dropout > 0.0 && !M::DROPOUT {
        return Err(TrainError::NoDropout(M::KIND));
    }
    if let Some(block) = model.block().filter(|&b| cfg.block_size > b) {
        let (model, asked) = (M::KIND, cfg.block_size);
        return Err(TrainError::BlockTooLong {
            model,
            asked,
            block,
        });
    }
    check_memory(model, cfg)
}

/// Refuses a run whose training step would need more memory than is free,
/// before anything is allocated (dfdx would abort, or the kernel kill it).
pub fn check_memory<D: crate::ops::Kernels, M: crate::models::LanguageModel<D>>(
    model: &M,
    cfg: &TrainConfig,
) -> Result<(), TrainError> {
    let needed = model.step_floats(cfg.batch_size, cfg.block_size) * 4;
    // Without a reading, still refuse what no machine has (1 TB).
    let available = available_memory().map_or(1u128 << 40, u128::from);
    if needed > available {
        return Err(TrainError::TooBig {
            batch: cfg.batch_size,
            block: cfg.block_size,
            needed: bytes_in_words(needed),
            available: bytes_in_words(available),
        });
    }
    Ok(())
}

pub(crate) fn opt_err<E: std::fmt::Debug>(e: E) -> TrainError {
    TrainError::Optimizer(format!("{e:?}"))
}

/// Training settings. `Default` is the lecture's bigram.py: batches of 32
/// blocks of 8 tokens, 3,000 steps of AdamW at learning rate 1e-2, the loss
/// estimated on 200 batches of each split every 300 steps.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Rows per batch (B).
    pub batch_size: usize,
    /// Tokens per row (T): the longest context the model sees.
    pub block_size: usize,
    /// Optimiser steps.
    pub max_iters: usize,
    /// Estimate the loss every this many steps.
    pub eval_interval: usize,
    /// AdamW's learning rate.
    pub learning_rate: f32,
    /// Batches per split in each estimate.
    pub eval_iters: usize,
    /// AdamW's decoupled weight decay (PyTorch's default, 0.01).
    pub weight_decay: f32,
    /// Dropout's probability in training (chapter 7's GPT; 0: none).
    #[serde(default)]
    pub dropout: f32,
    /// The learning rate over the run (chapter 8; constant by default).
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Clip the gradients' global norm to this before each step (chapter 8;
    /// `None`: never).
    #[serde(default)]
    pub grad_clip: Option<f32>,
    /// AdamW's second-moment decay (PyTorch's default 0.999; nanoGPT's small
    /// models use 0.99).
    #[serde(default = "default_beta2")]
    pub beta2: f32,
}

fn default_beta2() -> f32 {
    0.999
}

// ANCHOR: lr_schedule
/// How the learning rate moves over a run.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LrSchedule {
    /// The same rate at every step (the lecture's).
    #[default]
    Constant,
    /// nanoGPT's: a linear warm-up over `warmup` steps, then a cosine from
    /// the learning rate down to `min_lr` at the last step.
    Cosine {
        /// Steps of linear warm-up.
        warmup: usize,
        /// The rate at the last step.
        min_lr: f32,
    },
}
// ANCHOR_END: lr_schedule

/// bigram.py's hyperparameters: [`TrainConfig`]'s `Default`, and what
/// every preset changes ([`presets`](crate::presets)).
pub const BIGRAM_PY: TrainConfig = TrainConfig {
    // ANCHOR: config
    batch_size: 32,      // how many independent sequences in parallel (B)
    block_size: 8,       // the longest context for predictions (T)
    max_iters: 3000,     // optimiser steps
    eval_interval: 300,  // estimate the loss every this many steps
    learning_rate: 1e-2, // AdamW's
    eval_iters: 200,     // batches per split in each estimate
    // ANCHOR_END: config
    weight_decay: 0.01,
    dropout: 0.0,
    lr_schedule: LrSchedule::Constant,
    grad_clip: None,
    beta2: 0.999,
};

impl Default for TrainConfig {
    fn default() -> Self {
        BIGRAM_PY
    }
}

impl TrainConfig {
    /// The variant in the lecture's notes: a smaller learning rate, 1e-3,
    /// for 10,000 steps.
    pub fn seed_notes() -> Self {
        Self {
            learning_rate: 1e-3,
            max_iters: 10_000,
            ..Self::default()
        }
    }

    /// A few quick steps, for tests.
    pub fn tiny() -> Self {
        Self {
            batch_size: 4,
            block_size: 8,
            max_iters: 100,
            eval_interval: 50,
            learning_rate: 1e-2,
            eval_iters: 4,
            ..Self::default()
        }
    }

    // ANCHOR: lr_at
    /// The learning rate of step `step` (0-based) under the schedule.
    pub fn lr_at(&self, step: usize) -> f32 {
        let lr = self.learning_rate;
        match self.lr_schedule {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine { warmup, min_lr } => {
                if step < warmup {
                    return lr * (step + 1) as f32 / (warmup + 1) as f32; // linear warm-up
                }
                if step >= self.max_iters || self.max_iters <= warmup {
                    return min_lr;
                }
                let ratio = (step - warmup) as f64 / (self.max_iters - warmup) as f64; // 0 → 1
                let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos()); // 1 → 0
                min_lr + (coeff as f32) * (lr - min_lr)
            }
        }
    }
    // ANCHOR_END: lr_at

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.batch_size == 0 {
            return Err(TextError::ZeroBatch.into());
        }
        if self.block_size == 0 {
            return Err(TextError::ZeroBlock.into());
        }
        if self.eval_interval == 0 {
            return Err(TrainError::Zero("the evaluation interval"));
        }
        if self.eval_iters == 0 {
            return Err(TrainError::Zero("the number of evaluation batches"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(TrainError::BadLearningRate(self.learning_rate));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(TrainError::BadWeightDecay(self.weight_decay));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(TrainError::BadDropout(self.dropout));
        }
        if let LrSchedule::Cosine { min_lr, .. } = self.lr_schedule {
            if !(min_lr.is_finite() && min_lr >= 0.0 && min_lr <= self.learning_rate) {
                return Err(TrainError::BadMinLr {
                    min_lr,
                    lr: self.learning_rate,
                });
            }
        }
        if let Some(clip) = self.grad_clip.filter(|c| !(c.is_finite() && *c > 0.0)) {
            return Err(TrainError::BadGradClip(clip));
        }
        if !(self.beta2 > 0.0 && self.beta2 < 1.0) {
            return Err(TrainError::BadBeta2(self.beta2));
        }
        Ok(())
    }

    // ANCHOR: adamw
    /// AdamW as PyTorch's `torch.optim.AdamW(lr=...)` defaults it: dfdx's
    /// Adam with decoupled weight decay.
    pub fn adamw(&self) -> AdamConfig {
        AdamConfig {
            lr: self.learning_rate as f64,
            betas: [0.9, self.beta2 as f64],
            eps: 1e-8,
            weight_decay: Some(WeightDecay::Decoupled(self.weight_decay as f64)),
        }
    }
    // ANCHOR_END: adamw
}

/// The loss estimated on both splits at one step.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Eval {
    /// Steps taken before the estimate.
    pub step: usize,
    /// Mean loss over `eval_iters` training batches.
    pub train: f32,
    /// Mean loss over `eval_iters` validation batches.
    pub val: f32,
}

/// What a training run records: the estimates, and every step's batch loss.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossHistory {
    /// One per `eval_interval` steps, and one after the last step.
    pub evals: Vec<Eval>,
    /// The loss of each step's batch.
    pub step_losses: Vec<f32>,
}

/// What happens during training, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// A step finished with this batch loss.
    Step {
        /// Steps taken so far.
        step: usize,
        /// The batch's loss.
        loss: f32,
    },
    /// The loss was estimated on both splits.
    Eval(Eval),
}

/// Watches a training run: sees its events, and may stop it before the next
/// step (the CLI's progress bar and Ctrl-C; a notebook's printout). `()`
/// watches nothing; a closure `FnMut(Event)` sees the events; [`StopAt`]
/// stops a run at a given step.
pub trait Watch {
    /// Something happened.
    fn event(&mut self, _event: Event) {}
    /// Whether to stop before step `next` (the number of steps taken so far).
    fn stop(&self, _next: usize) -> bool {
        false
    }
}

impl Watch for () {}

impl<F: FnMut(Event)> Watch for F {
    fn event(&mut self, event: Event) {
        self(event)
    }
}

/// Stops a run before step `.0`: to try out resuming, since a run stopped,
/// saved and resumed continues exactly as one that never stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopAt(pub usize);

impl Watch for StopAt {
    fn stop(&self, next: usize) -> bool {
        next >= self.0
    }
}

/// The result of [`train`].
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// The losses.
    pub history: LossHistory,
    /// Steps taken.
    pub steps: usize,
    /// Wall time of the optimiser steps (batches, forward, backward,
    /// update), without the estimates.
    pub step_seconds: f64,
}

impl TrainReport {
    /// Steps per second, estimates excluded.
    pub fn steps_per_second(&self) -> f64 {
        self.steps as f64 / self.step_seconds.max(1e-12)
    }

    /// The last estimate.
    pub fn last_eval(&self) -> Option<Eval> {
        self.history.evals.last().copied()
    }
}

/// Where a training run stands: what a checkpoint saves (with the model's
/// weights and the random generator) and what `--resume` restores.
#[derive(Debug)]
pub struct TrainState<D: Device<f32>> {
    /// Steps taken.
    pub step: usize,
    /// The losses so far.
    pub history: LossHistory,
    /// The optimiser and its moments.
    pub opt: AdamW<D>,
    /// Wall time of the steps so far (estimates excluded).
    pub step_seconds: f64,
}

impl<D: Device<f32>> TrainState<D> {
    /// The state before the first step.
    pub fn new(cfg: &TrainConfig) -> Self {
        Self {
            step: 0,
            history: LossHistory::default(),
            opt: AdamW::new(cfg.adamw()).with_clip(cfg.grad_clip),
            step_seconds: 0.0,
        }
    }

    /// The record of the run so far.
    pub fn report(&self) -> TrainReport {
        TrainReport {
            history: self.history.clone(),
            steps: self.step,
            step_seconds: self.step_seconds,
        }
    }

    /// Whether the loss is to be estimated before the next step: every
    /// `eval_interval` steps and after the last, once (a run resumed after
    /// it finished has estimated its last step already).
    pub fn eval_due(&self, cfg: &TrainConfig) -> bool {
        let step = self.step;
        let done = self.history.evals.last().is_some_and(|e| e.step == step);
        (step.is_multiple_of(cfg.eval_interval) || step == cfg.max_iters) && !done
    }

    /// The lowest validation estimate after the first step (the earliest of
    /// equal ones): what `--save` keeps (chapter 8).
    pub fn best_eval(&self) -> Option<Eval> {
        let evals = self.history.evals.iter().filter(|e| e.step > 0).copied();
        evals.min_by(|a, b| a.val.total_cmp(&b.val))
    }

    /// Whether the estimate just recorded is the best so far ([`best_eval`](Self::best_eval)).
    pub fn at_best(&self) -> bool {
        self.best_eval().is_some_and(|e| e.step == self.step)
    }

    /// Records an estimate made now.
    pub fn record_eval(&mut self, train: f32, val: f32) -> Event {
        let eval = Eval {
            step: self.step,
            train,
            val,
        };
        self.history.evals.push(eval);
        Event::Eval(eval)
    }

    /// Records a step that took `elapsed` and ended with batch loss `loss`.
    pub fn record_step(&mut self, loss: f32, elapsed: Duration) -> Event {
        self.step_seconds += elapsed.as_secs_f64();
        self.history.step_losses.push(loss);
        self.step += 1;
        Event::Step {
            step: self.step,
            loss,
        }
    }
}

/// How [`run`](fn@run) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// All `max_iters` steps are done.
    Done,
    /// The watch said stop, before the step `TrainState::step`.
    Stopped,
}
