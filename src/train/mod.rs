//! The training machinery every language model from chapter 3 on shares:
//! settings and their presets, AdamW, the loop, the loss estimate on both
//! splits, checkpoints, and the wrapper that runs a whole session.
//!
//! Introduced in chapter 3 with the bigram language model; the models of
//! later chapters plug in through [`LanguageModel`](crate::models::LanguageModel).
//!
//! | module | what |
//! |---|---|
//! | `config` | [`TrainConfig`], bigram.py's settings as its `Default`, the schedule |
//! | `state` | where a run stands: [`TrainState`], the history, [`Watch`], the report |
//! | `memory` | whether a run fits in memory, checked before it allocates |
//! | [`run`](mod@run) | the loop, one training step, the loss estimate (what chapter 3 lists) |
//! | [`adamw`] | AdamW with a state that can be saved |
//! | [`checkpoint`] | saving and resuming runs (safetensors) |
//! | [`flags`] | the training flags, and a run's settings resolved once from them |
//! | [`session`] | a whole run as the CLI and the book make it: resume, stop, samples, report |

use crate::data::text::TextError;
use crate::models::ModelError;

pub mod adamw;
pub mod checkpoint;
mod config;
pub mod flags;
mod memory;
pub mod run;
pub mod session;
mod state;

pub use adamw::AdamW;
pub use config::{LrSchedule, TrainConfig, BIGRAM_PY};
pub use flags::{resolve, ScheduleKind, TrainFlags};
pub use memory::{
    available_memory, bytes_in_words, check_fits, check_memory, check_weights_fit, fits,
    peak_memory, weights_for,
};
pub use run::{estimate_loss, run, run_keeping, split_loss, train, train_step, Hooks};
pub use state::{After, Eval, Event, Finish, LossHistory, StopAt, TrainReport, TrainState, Watch};

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
    /// A stop was requested (a signal) while a loss estimate ran.
    #[error(transparent)]
    Interrupted(#[from] crate::interrupt::Interrupted),
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
    /// A model too big for the free memory at the text's vocabulary.
    #[error(
        "a {model} model of {vocab} tokens needs about {needed} of memory for its weights and \
         AdamW's state, more than the {available} free; use a text with fewer distinct characters"
    )]
    ModelTooBig {
        /// The model kind.
        model: &'static str,
        /// Its vocabulary.
        vocab: usize,
        /// The estimate, in words.
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

pub(crate) fn opt_err<E: std::fmt::Debug>(e: E) -> TrainError {
    TrainError::Optimizer(format!("{e:?}"))
}
