//! The hot loop of each stage as a timed workload: what `charlm bench`
//! measures, what the criterion benches run, and what `parity/bench.py`
//! times side by side with the same workload in PyTorch.
//!
//! Introduced in the appendix "How fast is it?". Each workload is prepared
//! once (data loaded, tensors made, model initialised) and then run as a
//! closure, one iteration per call. [`time`] runs a closure in samples of
//! enough iterations to last a while and reports the best and the median
//! time per iteration; [`with_threads`] runs it on a thread pool of a given
//! size (dfdx's matrix multiplies and charlm's own kernels all use the
//! current rayon pool).

use std::time::{Duration, Instant};

use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde::Serialize;

use crate::attention_trick::{
    bag_of_words_loops, bag_of_words_matmul, bag_of_words_softmax, tril_average,
};
use crate::bigram_counts::BigramCounts;
use crate::bigram_embedding::{check_vocab, BigramLanguageModel, SHAKESPEARE_VOCAB};
use crate::bigram_onehot::{Batch, BigramNet, Forward, Pairs, NAMES_VOCAB};
use crate::fused::tril_matmul_composed;
use crate::self_attention::Head;
use crate::text::{Corpus, Split};
use crate::tour::TourError;
use crate::train::{opt_err, train_step, AdamW, TrainConfig};
use crate::vocab::Vocab;

/// The lecture's larger attention size: B=32, T=256, C=384.
pub const ATTENTION_SHAPE: (usize, usize, usize) = (32, 256, 384);

/// The head size of the head workload.
pub const HEAD_SIZE: usize = 64;

// ANCHOR: workloads
/// One stage's hot loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Chapter 1: from the 32,033 names to the count table, P and the NLL.
    Counts,
    /// Chapter 2: one full-batch step of the one-hot net (228,146 pairs):
    /// forward, backward, update.
    OnehotStep,
    /// Chapter 2: the same step by lookup (row-normalised W weighted by the
    /// pair frequencies).
    LookupStep,
    /// Chapter 3: one AdamW training step of the bigram language model at
    /// bigram.py's settings (batch 32, block 8): draw a batch, forward,
    /// backward, update.
    BigramStep,
    /// Chapter 4, version 1: the causal average by loops, at B=32, T=256, C=384.
    AttentionV1,
    /// Chapter 4, version 2: by a lower-triangular matmul.
    AttentionV2,
    /// Chapter 4, version 3: by softmax of a masked matrix, then a matmul.
    AttentionV3,
    /// Chapter 4, version 2 computed densely as PyTorch does (dfdx's batched
    /// matmul, zeros included): the two libraries' matrix multiplies compared.
    AttentionV2Dense,
    /// Chapter 5: one head (size 64) forward and backward at the same size.
    HeadStep,
}
// ANCHOR_END: workloads

/// A prepared workload: one iteration per call.
pub type Iteration<'a> = Box<dyn FnMut() -> Result<(), TourError> + 'a>;

impl Workload {
    /// Every workload, in chapter order.
    pub const ALL: [Workload; 9] = [
        Workload::Counts,
        Workload::OnehotStep,
        Workload::LookupStep,
        Workload::BigramStep,
        Workload::AttentionV1,
        Workload::AttentionV2,
        Workload::AttentionV3,
        Workload::AttentionV2Dense,
        Workload::HeadStep,
    ];

    /// The name on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Counts => "counts",
            Workload::OnehotStep => "onehot-step",
            Workload::LookupStep => "lookup-step",
            Workload::BigramStep => "bigram-step",
            Workload::AttentionV1 => "attention-v1",
            Workload::AttentionV2 => "attention-v2",
            Workload::AttentionV3 => "attention-v3",
            Workload::AttentionV2Dense => "attention-v2-dense",
            Workload::HeadStep => "head-step",
        }
    }

    /// The workload called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == name)
    }

    /// Whether it needs names.txt (else tinyshakespeare.txt, or no data).
    pub fn needs_names(self) -> bool {
        matches!(
            self,
            Workload::Counts | Workload::OnehotStep | Workload::LookupStep
        )
    }

    /// Whether it needs tinyshakespeare.txt.
    pub fn needs_text(self) -> bool {
        self == Workload::BigramStep
    }

    /// Makes the data, tensors and model the workload needs, and returns
    /// one iteration. `words` (names.txt) and `text` (tinyshakespeare.txt)
    /// are only read by the workloads that need them.
    pub fn prepare<'a>(self, words: &'a [String], text: &str) -> Result<Iteration<'a>, TourError> {
        let dev = Cpu::default();
        let mut rng = ChaCha12Rng::seed_from_u64(1337);
        Ok(match self {
            Workload::Counts => {
                let vocab = Vocab::for_names(words);
                Box::new(move || {
                    let counts = BigramCounts::with_vocab(vocab.clone(), words)?; // N
                    let model = counts.probabilities(1.0)?; // P
                    std::hint::black_box(model.nll(words)?.nll);
                    Ok(())
                })
            }
            Workload::OnehotStep | Workload::LookupStep => {
                let forward = if self == Workload::OnehotStep {
                    Forward::OneHot
                } else {
                    Forward::Lookup
                };
                let counts = BigramCounts::from_words(words)?;
                let pairs = Pairs::new(words, counts.vocab())?;
                let batch: Batch<NAMES_VOCAB, Cpu> = Batch::new(&dev, &pairs)?;
                let mut net = BigramNet::<NAMES_VOCAB, Cpu>::new(&dev, &mut rng)?;
                // lr 0.1: the weights stay sane however many steps are timed
                Box::new(move || {
                    net.step(&batch, forward, 0.1, 0.01)?;
                    Ok(())
                })
            }
            Workload::BigramStep => {
                let corpus = Corpus::new(text)?;
                check_vocab(SHAKESPEARE_VOCAB, &corpus)?;
                let mut model: BigramLanguageModel<SHAKESPEARE_VOCAB, f32, Cpu> =
                    BigramLanguageModel::new(&dev, &mut rng, 1.0)?;
                let cfg = TrainConfig::default();
                let mut opt = AdamW::new(cfg.adamw());
                let mut grads = model.try_alloc_grads().map_err(opt_err)?;
                Box::new(move || {
                    let batch =
                        corpus.get_batch(Split::Train, cfg.batch_size, cfg.block_size, &mut rng)?;
                    train_step(&dev, &mut model, &mut opt, &mut grads, &batch, 0)?;
                    Ok(())
                })
            }
            Workload::AttentionV1
            | Workload::AttentionV2
            | Workload::AttentionV3
            | Workload::AttentionV2Dense => {
                let x = crate::attention_trick::randn(&dev, ATTENTION_SHAPE, &mut rng); // (B, T, C)
                Box::new(move || {
                    let out = match self {
                        Workload::AttentionV1 => bag_of_words_loops(&x)?,
                        Workload::AttentionV2 => bag_of_words_matmul(&x),
                        Workload::AttentionV3 => bag_of_words_softmax(&x),
                        _ => tril_matmul_composed(&tril_average(&dev, x.shape().1), &x),
                    }; // (B, T, C)
                    std::hint::black_box(out);
                    Ok(())
                })
            }
            Workload::HeadStep => {
                let (b, t, c) = ATTENTION_SHAPE;
                let head: Head<384, HEAD_SIZE, f32, Cpu> = Head::new(&dev, &mut rng)?;
                let x = crate::attention_trick::randn(&dev, (b, t, c), &mut rng).as_vec();
                let x = dev
                    .try_tensor_from_vec(x, (b, t, Const::<384>))
                    .map_err(crate::bigram_embedding::dev_err)?; // (B, T, C)
                Box::new(move || {
                    let out = head.forward(x.clone().traced(Gradients::leaky())); // (B, T, 64)
                    std::hint::black_box(out.sum().backward()); // ∂/∂x, key, query, value
                    Ok(())
                })
            }
        })
    }
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
    workload: Workload,
    iteration: &mut Iteration,
    samples: usize,
    min_sample: Duration,
) -> Result<Timing, TourError> {
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
        workload: workload.name(),
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
