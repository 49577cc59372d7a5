//! The training loop, one step of it, and the loss estimate: the lecture's
//! `for iter in range(max_iters)` and `estimate_loss`, for any
//! [`LanguageModel`].
//!
//! Introduced in chapter 3, which lists [`estimate_loss`], the lecture's
//! loop ([`lecture_loop`]) and [`train_step`]; the appendix "How charlm is
//! built" lists the loop of every command's run ([`run_keeping`]).

use std::time::Instant;

use dfdx::nn::ZeroGrads;
use dfdx::prelude::*;
use rand::Rng;

use super::{
    opt_err, AdamW, Eval, Finish, TrainConfig, TrainError, TrainReport, TrainState, Watch,
};
use crate::data::text::{batch_at, Corpus, Split, TokenBatch};
use crate::interrupt;
use crate::models::lm::{batch_tensors, check_vocab};
use crate::models::LanguageModel;
use crate::ops::rng::MaskRng;
use crate::ops::Kernels;

/// The mean loss over `eval_iters` random batches of each split, with no
/// tape (nothing recorded for gradients): the lecture's `estimate_loss`.
pub fn estimate_loss<D: Kernels, M: LanguageModel<D>, R: Rng>(
    dev: &D,
    model: &M,
    corpus: &Corpus,
    cfg: &TrainConfig,
    rng: &mut R,
) -> Result<(f32, f32), TrainError> {
    // ANCHOR: estimate_loss
    let mut out = [0f32; 2];
    for (mean, split) in out.iter_mut().zip([Split::Train, Split::Val]) {
        let mut total = 0f64;
        for _ in 0..cfg.eval_iters {
            interrupt::check()?; // Ctrl-C ends a long estimate too
            let batch = corpus.get_batch(split, cfg.batch_size, cfg.block_size, rng)?;
            let (x, y) = batch_tensors(dev, &batch)?; // (B, T), (B·T,)
            total += model.loss(x, &y)?.as_vec()[0] as f64; // no tape: forward only
        }
        *mean = (total / cfg.eval_iters as f64) as f32;
    }
    Ok((out[0], out[1]))
    // ANCHOR_END: estimate_loss
}

/// bigram.py's training loop, as the lecture writes it: an estimate every
/// `eval_interval` steps, then a random batch, forward, backward and AdamW.
/// Chapter 3 lists it; the commands run [`run_keeping`], the same steps
/// with what a command needs besides (a test checks that the two estimate
/// the same losses, bit for bit). Returns the estimates.
pub fn lecture_loop<D: Kernels, M: LanguageModel<D>, R: Rng>(
    dev: &D,
    model: &mut M,
    corpus: &Corpus,
    cfg: &TrainConfig,
    rng: &mut R,
) -> Result<Vec<Eval>, TrainError> {
    cfg.validate()?;
    check_vocab(model.vocab(), corpus)?;
    let mut grads = model.try_alloc_grads().map_err(opt_err)?;
    // ANCHOR: lecture_loop
    let mut optimizer = AdamW::new(cfg.adamw()); // torch.optim.AdamW
    let mut evals = Vec::new();
    for step in 0..cfg.max_iters {
        if step % cfg.eval_interval == 0 {
            let (train, val) = estimate_loss(dev, model, corpus, cfg, rng)?; // every once in a while
            evals.push(Eval { step, train, val }); // print(f"step {iter}: train loss ...")
        }
        let batch = corpus.get_batch(Split::Train, cfg.batch_size, cfg.block_size, rng)?; // xb, yb
        train_step(dev, model, &mut optimizer, &mut grads, &batch, step)?; // forward, backward, AdamW (grads: one buffer, allocated before the loop)
    }
    // ANCHOR_END: lecture_loop
    Ok(evals)
}

/// The mean loss over a whole split, cut into consecutive blocks of
/// `block_size` tokens (each token after the first predicted once, but for a
/// last stretch shorter than a block), in batches
/// of `batch_size` blocks, with no tape: the number `estimate_loss`
/// estimates from random batches, without its sampling noise. Introduced
/// in chapter 7, where two rungs differ by less than that noise.
pub fn split_loss<D: Kernels, M: LanguageModel<D>>(
    dev: &D,
    model: &M,
    corpus: &Corpus,
    split: Split,
    cfg: &TrainConfig,
) -> Result<f32, TrainError> {
    // ANCHOR: split_loss
    let data = corpus.split(split);
    let t = cfg.block_size.max(1);
    let offsets: Vec<usize> = (0..data.len().saturating_sub(1) / t)
        .map(|i| i * t)
        .collect();
    let (mut total, mut blocks) = (0f64, 0usize);
    for chunk in offsets.chunks(cfg.batch_size.max(1)) {
        let batch = batch_at(data, split, chunk, t)?;
        let (x, y) = batch_tensors(dev, &batch)?; // (B, T), (B·T,)
        total += model.loss(x, &y)?.as_vec()[0] as f64 * chunk.len() as f64; // mean over B·T tokens
        blocks += chunk.len();
    }
    Ok((total / blocks.max(1) as f64) as f32)
    // ANCHOR_END: split_loss
}

/// Trains `model` with AdamW on random training batches for `cfg.max_iters`
/// steps, estimating the loss every `eval_interval` steps and after the last.
/// Every random draw (batch offsets) comes from `rng`; `on_event` sees every
/// step and estimate; a NaN or infinite loss stops with an error naming the
/// step.
pub fn train<D: Kernels, M: LanguageModel<D>, R: MaskRng + Clone>(
    dev: &D,
    model: &mut M,
    corpus: &Corpus,
    cfg: &TrainConfig,
    rng: &mut R,
    mut on_event: impl FnMut(super::Event),
) -> Result<TrainReport, TrainError> {
    let mut state = TrainState::new(cfg);
    run(dev, model, corpus, cfg, &mut state, rng, &mut on_event)?;
    Ok(state.report())
}

/// The loop behind [`train`], from wherever `state` stands (a fresh state, or
/// one restored from a checkpoint). `watch` sees every event and is asked
/// before every step whether to stop; a run stopped and resumed with the same
/// state and generator continues exactly as if it had never stopped.
pub fn run<D: Kernels, M: LanguageModel<D>, R: MaskRng + Clone>(
    dev: &D,
    model: &mut M,
    corpus: &Corpus,
    cfg: &TrainConfig,
    state: &mut TrainState<D>,
    rng: &mut R,
    watch: &mut (impl Watch + ?Sized),
) -> Result<Finish, TrainError> {
    let mut keep = |_: &M, _: &TrainState<D>, _: &R| Ok(());
    run_keeping(dev, model, corpus, cfg, state, rng, watch, &mut keep)
}

/// What a run does beyond the lecture's loop, which [`run_keeping`] asks
/// at two points: after each estimate, and for each step. A closure
/// `FnMut(&M, &TrainState<D>, &R)` is the usual hooks: it is handed each
/// state whose validation estimate is the best so far (`--save` writes a
/// checkpoint), and the steps are [`train_step`]'s. Chapter 8's EX2 has
/// hooks of its own: its held-out sums at every estimate, and steps that
/// train on the answers' loss alone.
pub trait Hooks<D: Kernels, M: LanguageModel<D>, R: MaskRng> {
    /// Called after each estimate, with the estimate recorded in `state`.
    fn estimated(&mut self, model: &M, state: &TrainState<D>, rng: &R) -> Result<(), TrainError>;

    /// One step on `batch`, numbered `n`, at the learning rate `opt`
    /// holds: [`train_step`], or with dropout [`train_step_dropout`]
    /// (chapter 7); the batch's loss before the update.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        dev: &D,
        model: &mut M,
        opt: &mut AdamW<D>,
        grads: &mut Gradients<f32, D>,
        batch: &TokenBatch,
        n: usize,
        cfg: &TrainConfig,
        rng: &mut R,
    ) -> Result<f32, TrainError> {
        match cfg.dropout {
            0.0 => train_step(dev, model, opt, grads, batch, n),
            p => train_step_dropout(dev, model, opt, grads, batch, n, p, rng),
        }
    }
}

/// A closure keeps the best: it is called at each new best validation
/// estimate (after the first step), as nanoGPT saves its checkpoint when
/// the validation loss improves.
impl<D, M, R, F> Hooks<D, M, R> for F
where
    D: Kernels,
    M: LanguageModel<D>,
    R: MaskRng,
    F: FnMut(&M, &TrainState<D>, &R) -> Result<(), TrainError>,
{
    fn estimated(&mut self, model: &M, state: &TrainState<D>, rng: &R) -> Result<(), TrainError> {
        if state.at_best() {
            self(model, state, rng)?; // the best so far: --save writes it
        }
        Ok(())
    }
}

/// [`run`](fn@run), with `hooks` asked after each estimate and for each
/// step: a closure is handed every state whose validation estimate is the
/// best so far. Introduced in chapter 8.
#[allow(clippy::too_many_arguments)]
pub fn run_keeping<D: Kernels, M: LanguageModel<D>, R: MaskRng + Clone>(
    dev: &D,
    model: &mut M,
    corpus: &Corpus,
    cfg: &TrainConfig,
    state: &mut TrainState<D>,
    rng: &mut R,
    watch: &mut (impl Watch + ?Sized),
    hooks: &mut (impl Hooks<D, M, R> + ?Sized),
) -> Result<Finish, TrainError> {
    cfg.validate()?;
    check_vocab(model.vocab(), corpus)?;
    super::check_fits(model, corpus, cfg)?;
    let mut grads = model.try_alloc_grads().map_err(opt_err)?;
    // ANCHOR: loop
    while state.step <= cfg.max_iters {
        if watch.stop(state.step) {
            return Ok(Finish::Stopped); // Ctrl-C: stop before the next step
        }
        if state.eval_due(cfg) {
            let Some((train, val)) = estimate_or_stop(dev, model, corpus, cfg, rng)? else {
                return Ok(Finish::Stopped); // Ctrl-C during the estimate
            };
            watch.event(state.record_eval(train, val));
            hooks.estimated(model, state, rng)?; // --save keeps the best so far
        }
        if state.step == cfg.max_iters {
            break;
        }
        let start = Instant::now();
        let batch = corpus.get_batch(Split::Train, cfg.batch_size, cfg.block_size, rng)?; // xb, yb
        state.opt.cfg.lr = cfg.lr_at(state.step) as f64; // constant until chapter 8
        let (opt, n) = (&mut state.opt, state.step);
        let loss = hooks.step(dev, model, opt, &mut grads, &batch, n, cfg, rng)?; // forward, backward, AdamW
        watch.event(state.record_step(loss, start.elapsed()));
    }
    // ANCHOR_END: loop
    Ok(Finish::Done)
}

/// [`estimate_loss`], or `None` when a stop request (a signal) ended it:
/// the generator is then put back where it was, so that the run, saved and
/// resumed, draws the same batches as one that never stopped.
fn estimate_or_stop<D: Kernels, M: LanguageModel<D>, R: MaskRng + Clone>(
    dev: &D,
    model: &M,
    corpus: &Corpus,
    cfg: &TrainConfig,
    rng: &mut R,
) -> Result<Option<(f32, f32)>, TrainError> {
    let before = rng.clone();
    match estimate_loss(dev, model, corpus, cfg, rng) {
        Ok(losses) => Ok(Some(losses)),
        Err(TrainError::Interrupted(_)) => {
            *rng = before;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// One optimiser step on one batch; returns the batch's loss before the
/// update (a NaN or infinite loss is an error naming `step`).
pub fn train_step<D: Kernels, M: LanguageModel<D>>(
    dev: &D,
    model: &mut M,
    opt: &mut AdamW<D>,
    grads: &mut Gradients<f32, D>, // reused from step to step
    batch: &TokenBatch,
    step: usize,
) -> Result<f32, TrainError> {
    // ANCHOR: train_step
    let (x, y) = batch_tensors(dev, batch)?; // (B, T), (B·T,)
    let tape = std::mem::replace(grads, Gradients::leaky());
    let loss = model.loss(x.traced(tape), &y)?; // forward, recording on the tape
    update(model, opt, grads, loss, step)
    // ANCHOR_END: train_step
}

/// The rest of a step: the loss checked, backward, AdamW, zero_grad; also
/// the end of a step whose loss is a run's own (chapter 8's EX2).
pub fn update<D: Kernels, M: LanguageModel<D>>(
    model: &mut M,
    opt: &mut AdamW<D>,
    grads: &mut Gradients<f32, D>,
    loss: Tensor<Rank0, f32, D, OwnedTape<f32, D>>,
    step: usize,
) -> Result<f32, TrainError> {
    // ANCHOR: update
    let value = loss.as_vec()[0];
    if !value.is_finite() {
        return Err(TrainError::NonFiniteLoss { step, value });
    }
    *grads = loss.backward(); // loss.backward()
    opt.update(model, grads).map_err(opt_err)?; // optimizer.step()
    model.zero_grads(grads); // optimizer.zero_grad()
    Ok(value)
    // ANCHOR_END: update
}

/// [`train_step`] in training mode with dropout: the forward pass zeroes
/// activations with probability `p`, the masks drawn from `rng` (chapter 7).
#[allow(clippy::too_many_arguments)]
pub fn train_step_dropout<D: Kernels, M: LanguageModel<D>, R: MaskRng>(
    dev: &D,
    model: &mut M,
    opt: &mut AdamW<D>,
    grads: &mut Gradients<f32, D>,
    batch: &TokenBatch,
    step: usize,
    p: f32,
    rng: &mut R,
) -> Result<f32, TrainError> {
    let (x, y) = batch_tensors(dev, batch)?; // (B, T), (B·T,)
    let tape = std::mem::replace(grads, Gradients::leaky());
    let loss = model.train_loss(x.traced(tape), &y, p, rng)?; // forward, dropping
    update(model, opt, grads, loss, step)
}
