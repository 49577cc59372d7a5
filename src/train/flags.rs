//! The training flags as a value, and the one place they meet a run's
//! settings.
//!
//! A run's settings are resolved once, in this order: the preset's defaults
//! (or, on `--resume`, the settings its checkpoint saved), then the flags
//! given ([`TrainFlags::apply`]). The progress bar, the JSON log, the
//! checkpoint and the loop all read the one [`TrainConfig`] that comes out
//! ([`resolve`]).

use std::path::Path;

use super::{checkpoint, LrSchedule, TrainConfig, TrainError};

/// The schedules a flag can name (`--lr-schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    /// The same rate at every step.
    Constant,
    /// Linear warm-up, then a cosine down to the floor.
    Cosine,
}

/// The training flags of `charlm bigram`, `head`, `train` and `gpt`: each
/// one given replaces its setting, each `None` keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrainFlags {
    /// `--steps`: optimiser steps in all, counted from the run's start.
    pub steps: Option<usize>,
    /// `--lr`: AdamW's learning rate (the cosine's peak).
    pub lr: Option<f32>,
    /// `--batch`: rows per batch.
    pub batch: Option<usize>,
    /// `--block`: tokens per row.
    pub block: Option<usize>,
    /// `--dropout`: dropout's probability in training.
    pub dropout: Option<f32>,
    /// `--lr-schedule`.
    pub lr_schedule: Option<ScheduleKind>,
    /// `--warmup`: the cosine's warm-up steps.
    pub warmup: Option<usize>,
    /// `--min-lr`: the cosine's rate at the last step.
    pub min_lr: Option<f32>,
    /// `--grad-clip`: the gradients' largest global norm.
    pub grad_clip: Option<f32>,
    /// `--eval-interval`.
    pub eval_interval: Option<usize>,
    /// `--eval-iters`.
    pub eval_iters: Option<usize>,
}

impl TrainFlags {
    /// `base` with these flags applied. The schedule is cosine when
    /// `--lr-schedule cosine` is given, or when none is given and `base`'s
    /// is; `--warmup` and `--min-lr` shape a cosine, so with a constant
    /// schedule they are refused. A cosine turned on by the flag alone warms
    /// up for 0 steps and ends at a tenth of the rate, unless told otherwise.
    pub fn apply(&self, base: TrainConfig) -> Result<TrainConfig, TrainError> {
        let lr = self.lr.unwrap_or(base.learning_rate);
        let cosine = match self.lr_schedule {
            Some(kind) => kind == ScheduleKind::Cosine,
            None => base.lr_schedule != LrSchedule::Constant,
        };
        let lr_schedule = match (cosine, base.lr_schedule) {
            (false, _) if self.warmup.is_some() || self.min_lr.is_some() => {
                return Err(TrainError::CosineOnly)
            }
            (false, _) => LrSchedule::Constant,
            (true, LrSchedule::Cosine { warmup, min_lr }) => LrSchedule::Cosine {
                warmup: self.warmup.unwrap_or(warmup),
                min_lr: self.min_lr.unwrap_or(min_lr),
            },
            (true, LrSchedule::Constant) => LrSchedule::Cosine {
                warmup: self.warmup.unwrap_or(0),
                min_lr: self.min_lr.unwrap_or(lr / 10.0),
            },
        };
        Ok(TrainConfig {
            batch_size: self.batch.unwrap_or(base.batch_size),
            block_size: self.block.unwrap_or(base.block_size),
            max_iters: self.steps.unwrap_or(base.max_iters),
            eval_interval: self.eval_interval.unwrap_or(base.eval_interval),
            learning_rate: lr,
            eval_iters: self.eval_iters.unwrap_or(base.eval_iters),
            dropout: self.dropout.unwrap_or(base.dropout),
            lr_schedule,
            grad_clip: self.grad_clip.or(base.grad_clip),
            ..base
        })
    }
}

/// The settings a run trains with, resolved once: `defaults` (a preset's),
/// or the settings saved in the `resume` checkpoint, then `flags`.
pub fn resolve(
    defaults: TrainConfig,
    resume: Option<&Path>,
    flags: &TrainFlags,
) -> Result<TrainConfig, TrainError> {
    let base = match resume {
        Some(path) => checkpoint::read_meta(path)?.0.config,
        None => defaults,
    };
    flags.apply(base)
}
