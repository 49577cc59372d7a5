//! Where a run stands and what it records: the loss estimates and history,
//! the events a [`Watch`] sees, the optimiser's state, and the report.

use std::time::Duration;

use dfdx::prelude::*;

use super::{AdamW, TrainConfig};

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

/// A watch for a run that follows `.0` steps of others under one progress
/// bar (chapter 8's exercises train several models in a row): its steps
/// and estimates are counted after theirs.
pub struct After<'a>(pub usize, pub &'a mut dyn Watch);

impl Watch for After<'_> {
    fn event(&mut self, event: Event) {
        let shifted = match event {
            Event::Step { step, loss } => Event::Step {
                step: step + self.0,
                loss,
            },
            Event::Eval(e) => Event::Eval(Eval {
                step: e.step + self.0,
                ..e
            }),
        };
        self.1.event(shifted);
    }

    fn stop(&self, next: usize) -> bool {
        self.1.stop(next + self.0)
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
