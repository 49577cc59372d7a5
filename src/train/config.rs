//! A run's settings: [`TrainConfig`], whose `Default` is bigram.py's
//! ([`BIGRAM_PY`]), the learning-rate schedule, and AdamW's settings from them.
//! The named presets built on it are in [`crate::presets`].

use dfdx::optim::{AdamConfig, WeightDecay};

use super::TrainError;
use crate::data::text::TextError;

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
