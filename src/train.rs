//! The training machinery every language model from chapter 3 on shares:
//! settings, AdamW, the loop, and the loss estimate on both splits.
//!
//! Introduced in chapter 3 with the bigram language model; the self-attention
//! models of later chapters plug in through [`LanguageModel`].

use std::time::Instant;

use dfdx::nn::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
    ZeroGrads,
};
use dfdx::optim::{AdamConfig, WeightDecay};
use dfdx::prelude::*;
use rand::Rng;

use crate::bigram_embedding::{batch_tensors, check_vocab, BigramLanguageModel, ModelError};
use crate::fused::Fused;
use crate::self_attention::HeadLanguageModel;
use crate::text::{Corpus, Split, TextError, TokenBatch};

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
}

// ANCHOR: config
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
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            block_size: 8,
            max_iters: 3000,
            eval_interval: 300,
            learning_rate: 1e-2,
            eval_iters: 200,
            weight_decay: 0.01,
        }
    }
}
// ANCHOR_END: config

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
            weight_decay: 0.01,
        }
    }

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
        Ok(())
    }

    // ANCHOR: adamw
    /// AdamW as PyTorch's `torch.optim.AdamW(lr=...)` defaults it: dfdx's
    /// Adam with decoupled weight decay.
    pub fn adamw(&self) -> AdamConfig {
        AdamConfig {
            lr: self.learning_rate as f64,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: Some(WeightDecay::Decoupled(self.weight_decay as f64)),
        }
    }
    // ANCHOR_END: adamw
}

/// A model that maps a batch of token ids to a loss: what [`train`] needs.
pub trait LanguageModel<D: Device<f32>>: TensorCollection<f32, D> {
    /// The name checkpoints record ("bigram", "head").
    const KIND: &'static str;
    /// Vocabulary size.
    const VOCAB: usize;
    /// The longest context the model takes, if it has a limit (a position
    /// table has as many rows as positions).
    const BLOCK: Option<usize>;

    /// The mean cross-entropy of next-token predictions: idx (B, T),
    /// targets (B·T,).
    fn loss<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>,
        targets: &Tensor<(usize,), usize, D>,
    ) -> Result<Tensor<Rank0, f32, D, T>, ModelError>;

    /// Appends `max_new_tokens` sampled tokens to each row of `idx`.
    fn generate<R: Rng>(
        &self,
        idx: &[Vec<usize>],
        max_new_tokens: usize,
        rng: &mut R,
    ) -> Result<Vec<Vec<usize>>, ModelError>;
}

impl<const V: usize, D: Fused> LanguageModel<D> for BigramLanguageModel<V, f32, D> {
    const KIND: &'static str = "bigram";
    const VOCAB: usize = V;
    const BLOCK: Option<usize> = None;

    fn generate<R: Rng>(
        &self,
        idx: &[Vec<usize>],
        n: usize,
        rng: &mut R,
    ) -> Result<Vec<Vec<usize>>, ModelError> {
        BigramLanguageModel::generate(self, idx, n, rng)
    }

    fn loss<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>,
        targets: &Tensor<(usize,), usize, D>,
    ) -> Result<Tensor<Rank0, f32, D, T>, ModelError> {
        Ok(BigramLanguageModel::loss(self, idx, targets))
    }
}

impl<const V: usize, const C: usize, const H: usize, const BLOCK: usize, D: Fused> LanguageModel<D>
    for HeadLanguageModel<V, C, H, BLOCK, f32, D>
{
    const KIND: &'static str = "head";
    const VOCAB: usize = V;
    const BLOCK: Option<usize> = Some(BLOCK);

    fn generate<R: Rng>(
        &self,
        idx: &[Vec<usize>],
        n: usize,
        rng: &mut R,
    ) -> Result<Vec<Vec<usize>>, ModelError> {
        HeadLanguageModel::generate(self, idx, n, rng)
    }

    fn loss<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>,
        targets: &Tensor<(usize,), usize, D>,
    ) -> Result<Tensor<Rank0, f32, D, T>, ModelError> {
        HeadLanguageModel::loss(self, idx, targets)
    }
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

// ANCHOR: estimate_loss
/// The mean loss over `eval_iters` random batches of each split, with no
/// tape (nothing recorded for gradients): the lecture's `estimate_loss`.
pub fn estimate_loss<D: Fused, M: LanguageModel<D>, R: Rng>(
    dev: &D,
    model: &M,
    corpus: &Corpus,
    cfg: &TrainConfig,
    rng: &mut R,
) -> Result<(f32, f32), TrainError> {
    let mut out = [0f32; 2];
    for (mean, split) in out.iter_mut().zip([Split::Train, Split::Val]) {
        let mut total = 0f64;
        for _ in 0..cfg.eval_iters {
            let batch = corpus.get_batch(split, cfg.batch_size, cfg.block_size, rng)?;
            let (x, y) = batch_tensors(dev, &batch)?; // (B, T), (B·T,)
            total += model.loss(x, &y)?.as_vec()[0] as f64; // no tape: forward only
        }
        *mean = (total / cfg.eval_iters as f64) as f32;
    }
    Ok((out[0], out[1]))
}
// ANCHOR_END: estimate_loss

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
            opt: AdamW::new(cfg.adamw()),
            step_seconds: 0.0,
        }
    }

    /// The record of the run so far, for a run of `cfg.max_iters` steps.
    pub fn report(&self) -> TrainReport {
        TrainReport {
            history: self.history.clone(),
            steps: self.step,
            step_seconds: self.step_seconds,
        }
    }
}

/// How [`run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// All `max_iters` steps are done.
    Done,
    /// `stop()` said so, before the step `TrainState::step`.
    Stopped,
}

// ANCHOR: train
/// Trains `model` with AdamW on random training batches for `cfg.max_iters`
/// steps, estimating the loss every `eval_interval` steps and after the last.
/// Every random draw (batch offsets) comes from `rng`; a NaN or infinite loss
/// stops with an error naming the step.
pub fn train<D: Fused, M: LanguageModel<D>, R: Rng>(
    dev: &D,
    model: &mut M,
    corpus: &Corpus,
    cfg: &TrainConfig,
    rng: &mut R,
    on_event: impl FnMut(Event),
) -> Result<TrainReport, TrainError> {
    let mut state = TrainState::new(cfg);
    run(dev, model, corpus, cfg, &mut state, rng, on_event, || false)?;
    Ok(state.report())
}

/// The loop behind [`train`], from wherever `state` stands (a fresh state, or
/// one restored from a checkpoint). `stop()` is asked before every step; a
/// run stopped and resumed with the same state and generator continues
/// exactly as if it had never stopped.
#[allow(clippy::too_many_arguments)]
pub fn run<D: Fused, M: LanguageModel<D>, R: Rng>(
    dev: &D,
    model: &mut M,
    corpus: &Corpus,
    cfg: &TrainConfig,
    state: &mut TrainState<D>,
    rng: &mut R,
    mut on_event: impl FnMut(Event),
    stop: impl Fn() -> bool,
) -> Result<Finish, TrainError> {
    cfg.validate()?;
    check_vocab(M::VOCAB, corpus)?;
    if let Some(block) = M::BLOCK.filter(|&b| cfg.block_size > b) {
        let t = cfg.block_size;
        return Err(ModelError::ContextTooLong { t, block }.into());
    }
    let mut grads = model.try_alloc_grads().map_err(opt_err)?;
    while state.step <= cfg.max_iters {
        let step = state.step;
        if stop() {
            return Ok(Finish::Stopped);
        }
        // (a run resumed after it finished has estimated this step already)
        let estimated = state.history.evals.last().is_some_and(|e| e.step == step);
        if (step.is_multiple_of(cfg.eval_interval) || step == cfg.max_iters) && !estimated {
            let (train, val) = estimate_loss(dev, model, corpus, cfg, rng)?;
            let eval = Eval { step, train, val };
            state.history.evals.push(eval);
            on_event(Event::Eval(eval));
        }
        if step == cfg.max_iters {
            break;
        }
        let start = Instant::now();
        let batch = corpus.get_batch(Split::Train, cfg.batch_size, cfg.block_size, rng)?;
        let value = train_step(dev, model, &mut state.opt, &mut grads, &batch, step)?;
        state.step_seconds += start.elapsed().as_secs_f64();
        state.history.step_losses.push(value);
        state.step += 1;
        on_event(Event::Step {
            step: state.step,
            loss: value,
        });
    }
    Ok(Finish::Done)
}
// ANCHOR_END: train

// ANCHOR: train_step
/// One optimiser step on one batch: forward (recording on the tape),
/// backward, AdamW, and the gradients zeroed for the next step. Returns the
/// batch's loss before the update; a NaN or infinite loss is an error
/// naming `step`. `grads` is the buffer the steps reuse
/// (`model.try_alloc_grads()` before the first).
pub fn train_step<D: Fused, M: LanguageModel<D>>(
    dev: &D,
    model: &mut M,
    opt: &mut AdamW<D>,
    grads: &mut Gradients<f32, D>,
    batch: &TokenBatch,
    step: usize,
) -> Result<f32, TrainError> {
    let (x, y) = batch_tensors(dev, batch)?; // (B, T), (B·T,)
    let tape = std::mem::replace(grads, Gradients::leaky());
    let loss = model.loss(x.traced(tape), &y)?; // forward, recording on the tape
    let value = loss.as_vec()[0];
    if !value.is_finite() {
        return Err(TrainError::NonFiniteLoss { step, value });
    }
    *grads = loss.backward(); // backward
    opt.update(model, grads).map_err(opt_err)?; // AdamW step
    model.zero_grads(grads);
    Ok(value)
}
// ANCHOR_END: train_step

pub(crate) fn opt_err<E: std::fmt::Debug>(e: E) -> TrainError {
    TrainError::Optimizer(format!("{e:?}"))
}

/// One parameter tensor's AdamW moments, flat, keyed by a tensor of the same
/// length (dfdx keeps per-tensor buffers in `Gradients`, found by tensor).
#[derive(Debug)]
struct Moments<D: Device<f32>> {
    name: String,
    key: Tensor<(usize,), f32, D>,
    m: Gradients<f32, D>,
    v: Gradients<f32, D>,
}

impl<D: Device<f32>> Moments<D> {
    /// Moments holding the given values (zeros for a fresh run).
    fn with_values(dev: &D, name: String, m: Vec<f32>, v: Vec<f32>) -> Result<Self, D::Err> {
        let n = m.len();
        let key: Tensor<(usize,), f32, D> = dev.try_zeros_like(&(n,))?;
        // The gradient of Σ key ⊙ values with respect to key is the values:
        // that puts them into a `Gradients`, on any device.
        let holding = |values: Vec<f32>| -> Result<Gradients<f32, D>, D::Err> {
            let values = dev.try_tensor_from_vec(values, (n,))?;
            (key.clone().traced(Gradients::leaky()) * values)
                .try_sum::<Rank0, _>()?
                .try_backward()
        };
        Ok(Self {
            m: holding(m)?,
            v: holding(v)?,
            key,
            name,
        })
    }
}

// ANCHOR: adamw_state
/// AdamW whose state can be saved and restored: dfdx's own Adam update
/// (`AdamConfig::try_update`, the kernel behind `dfdx::optim::Adam`), with
/// the step count and the two moments of each parameter kept here instead
/// of inside dfdx's `Adam`, which has no way to read them out.
#[derive(Debug)]
pub struct AdamW<D: Device<f32>> {
    /// Learning rate, betas, epsilon, weight decay.
    pub cfg: AdamConfig,
    t: i32,
    moments: Vec<Moments<D>>,
}
// ANCHOR_END: adamw_state

/// Saved AdamW state: the step count, and per parameter (in the model's
/// order) its name and first and second moments.
pub type AdamWState = (i32, Vec<(String, Vec<f32>, Vec<f32>)>);

impl<D: Device<f32>> AdamW<D> {
    /// A fresh optimiser.
    pub fn new(cfg: AdamConfig) -> Self {
        Self {
            cfg,
            t: 0,
            moments: Vec::new(),
        }
    }

    /// One AdamW step on every parameter of `model`.
    pub fn update<M: TensorCollection<f32, D>>(
        &mut self,
        model: &mut M,
        grads: &mut Gradients<f32, D>,
    ) -> Result<(), D::Err> {
        self.t = self.t.saturating_add(1);
        let mut visit = UpdateVisitor {
            opt: self,
            grads,
            index: 0,
        };
        M::iter_tensors(&mut RecursiveWalker {
            m: (model, String::new()),
            f: &mut visit,
        })?;
        Ok(())
    }

    /// The state, to save.
    pub fn state(&self) -> AdamWState {
        let slots = self
            .moments
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.m.get(&s.key).as_vec(),
                    s.v.get(&s.key).as_vec(),
                )
            })
            .collect();
        (self.t, slots)
    }

    /// An optimiser continuing from a saved state.
    pub fn restore(dev: &D, cfg: AdamConfig, state: AdamWState) -> Result<Self, D::Err> {
        let (t, slots) = state;
        let moments = slots
            .into_iter()
            .map(|(name, m, v)| Moments::with_values(dev, name, m, v))
            .collect::<Result<_, _>>()?;
        Ok(Self { cfg, t, moments })
    }
}

struct UpdateVisitor<'a, D: Device<f32>> {
    opt: &'a mut AdamW<D>,
    grads: &'a mut Gradients<f32, D>,
    index: usize,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for UpdateVisitor<'_, D> {
    type Viewer = (ViewTensorMut, ViewTensorName);
    type Err = D::Err;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, D>,
        (p, name): (&mut Tensor<S, f32, D>, String),
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        let AdamW { cfg, t, moments } = &mut *self.opt;
        if moments.len() == self.index {
            let n = p.shape().num_elements();
            let zeros = vec![0f32; n];
            moments.push(Moments::with_values(
                p.device(),
                name,
                zeros.clone(),
                zeros,
            )?);
        }
        let Moments { key, m, v, .. } = &mut moments[self.index];
        self.index += 1;
        let g = self.grads.get_or_alloc_mut(&*p)?; // ∂loss/∂p
        let (m, v) = (m.get_or_alloc_mut(key)?, v.get_or_alloc_mut(key)?);
        cfg.try_update(*t, p, m, v, g)?; // dfdx's Adam kernel, decoupled weight decay
        Ok(None)
    }
}
