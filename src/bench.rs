//! The hot loop of each stage as a timed workload: what `charlm bench`
//! measures, what the criterion bench runs, and what `parity/bench.py`
//! times side by side with the same workload in PyTorch.
//!
//! Introduced in the appendix "How fast is it?". Each stage lists its
//! workloads ([`Stage::workloads`](crate::stages::Stage::workloads)); each is
//! prepared once (data loaded, tensors made, model initialised) and then run
//! as a closure, one iteration per call. [`time`] runs a closure in samples
//! of enough iterations to last a while and reports the best and the median
//! time per iteration; [`with_threads`] runs it on a thread pool of a given
//! size (dfdx's matrix multiplies and charlm's own kernels all use the
//! current rayon pool).

use std::time::{Duration, Instant};

use serde::Serialize;

use dfdx::nn::ZeroGrads;
use dfdx::prelude::Cpu;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use crate::data::text::{Corpus, Split};
use crate::data::DataSets;
use crate::models::LanguageModel;
use crate::stages::{StageError, ALL};
use crate::train::run::train_step_dropout;
use crate::train::{train_step, AdamW, TrainConfig};

// ANCHOR: workload
/// One stage's hot loop.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// The name on the command line and in tables (`onehot-step`).
    pub name: &'static str,
    /// What one iteration does.
    pub about: &'static str,
    /// Makes the data, tensors and model it needs, and returns one iteration.
    pub prepare: for<'a> fn(&'a DataSets) -> Result<Iteration<'a>, StageError>,
}

/// A prepared workload: one iteration per call.
pub type Iteration<'a> = Box<dyn FnMut() -> Result<(), StageError> + 'a>;
// ANCHOR_END: workload

/// One training step of model `M` at `cfg`'s batch and block (from the
/// training split of tiny Shakespeare, the generator seeded 1337): draw a
/// batch, forward (dropping, where `cfg` has dropout), backward, AdamW
/// (clipping, where `cfg` clips). The `*-step` workloads of chapter 3 on.
pub fn training_step<M: LanguageModel<Cpu> + 'static>(
    data: &DataSets,
    cfg: TrainConfig,
) -> Result<Iteration<'_>, StageError> {
    let dev = Cpu::default();
    let corpus = Corpus::new(data.text()?)?;
    let mut rng = ChaCha12Rng::seed_from_u64(1337);
    let mut model = M::init(&dev, corpus.vocab.len(), &mut rng)?;
    let mut opt = AdamW::new(cfg.adamw()).with_clip(cfg.grad_clip);
    let mut grads = model
        .try_alloc_grads()
        .map_err(|e| StageError::Device(format!("{e:?}")))?;
    Ok(Box::new(move || {
        let batch = corpus.get_batch(Split::Train, cfg.batch_size, cfg.block_size, &mut rng)?;
        match cfg.dropout {
            0.0 => train_step(&dev, &mut model, &mut opt, &mut grads, &batch, 0)?,
            p => train_step_dropout(
                &dev, &mut model, &mut opt, &mut grads, &batch, 0, p, &mut rng,
            )?,
        };
        Ok(())
    }))
}

/// Every stage's workloads, in chapter order.
pub fn all() -> Vec<Workload> {
    ALL.iter().flat_map(|stage| stage.workloads()).collect()
}

/// The workload called `name`.
pub fn find(name: &str) -> Option<Workload> {
    all().into_iter().find(|w| w.name == name)
}

/// Timings of one workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timing {
    /// The workload's name.
    pub workload: &'static str,
    /// Threads it ran on.
    pub threads: usize,
    /// Iterations in each sample.
    pub iterations: usize,
    /// Seconds per iteration, one value per sample.
    pub seconds: Vec<f64>,
}

impl Timing {
    /// The fastest sample's seconds per iteration.
    pub fn best(&self) -> f64 {
        self.seconds.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// The median sample's seconds per iteration.
    pub fn median(&self) -> f64 {
        let mut s = self.seconds.clone();
        s.sort_by(f64::total_cmp);
        match s.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => s[n / 2],
            n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
        }
    }
}

// ANCHOR: time
/// Times `iteration`: a warm-up call, then `samples` samples of as many
/// iterations as fill `min_sample` (at least one); seconds per iteration.
pub fn time(
    workload: &Workload,
    iteration: &mut Iteration,
    samples: usize,
    min_sample: Duration,
) -> Result<Timing, StageError> {
    let start = Instant::now();
    iteration()?; // warm-up: caches, allocator, lazily built kernels
    let once = start.elapsed().as_secs_f64().max(1e-9);
    let iterations = ((min_sample.as_secs_f64() / once).ceil() as usize).clamp(1, 1_000_000);
    let mut seconds = Vec::with_capacity(samples);
    for _ in 0..samples.max(1) {
        let start = Instant::now();
        for _ in 0..iterations {
            iteration()?;
        }
        seconds.push(start.elapsed().as_secs_f64() / iterations as f64);
    }
    Ok(Timing {
        workload: workload.name,
        threads: rayon::current_num_threads(),
        iterations,
        seconds,
    })
}
// ANCHOR_END: time

/// Runs `f` on a rayon pool of `threads` threads: dfdx's matrix multiplies
/// (gemm) and charlm's kernels then use that many.
pub fn with_threads<T: Send>(
    threads: usize,
    f: impl FnOnce() -> T + Send,
) -> Result<T, rayon::ThreadPoolBuildError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    Ok(pool.install(f))
}
