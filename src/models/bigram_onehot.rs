//! The bigram model as a one-hot neural network, trained with dfdx.
//!
//! Introduced in chapter 2. The same model as chapter 1, learned instead of
//! counted: 27 neurons without bias read a one-hot encoded character and
//! output 27 numbers, the logits of the next character. Their exponentials
//! play the role of counts; normalised, they are the probabilities. Gradient
//! descent on the average negative log-likelihood recovers the count table.
//!
//! Everything is generic over the dfdx device `D` (the CPU, or with the `cuda`
//! feature an NVIDIA GPU). The vocabulary size V is the data's, known at run
//! time: 27 for names.txt ([`NAMES_VOCAB`]), more for names in other scripts.

use std::time::Instant;

use dfdx::data::OneHotEncode;
use dfdx::prelude::*;
use rand::Rng;
use rand_distr::StandardNormal;

use super::bigram_counts::{encode_word, BigramError, RowSampler};
use crate::data::vocab::Vocab;
use crate::ops::composed::matmul_fixed_lhs;
use crate::ops::{self, Kernels};

/// The vocabulary size of names.txt: '.' and a..z.
pub const NAMES_VOCAB: usize = 27;

/// Errors of the neural bigram model.
#[derive(Debug, thiserror::Error)]
pub enum OneHotError {
    /// A word could not be encoded.
    #[error(transparent)]
    Bigram(#[from] BigramError),
    /// The network's size does not match the vocabulary.
    #[error(
        "the network has {expected} inputs and outputs, but the vocabulary has {got} characters"
    )]
    VocabSize {
        /// V of the network.
        expected: usize,
        /// The vocabulary's size.
        got: usize,
    },
    /// The (N, V) one-hot inputs and the (V, V) tables would not fit in memory.
    #[error(
        "{n} examples of {vocab} characters need about {needed} of memory for the one-hot inputs \
         and the (V, V) tables, more than the {available} free; use names in fewer characters"
    )]
    TooBig {
        /// Examples.
        n: usize,
        /// V.
        vocab: usize,
        /// The estimate, in words.
        needed: String,
        /// What is free, in words.
        available: String,
    },
    /// A pair holds an index outside the vocabulary.
    #[error("character index {index} is outside the vocabulary of {size} characters")]
    Index {
        /// The index.
        index: usize,
        /// The vocabulary size.
        size: usize,
    },
    /// The learning rate is not a finite number > 0.
    #[error("the learning rate must be a finite number > 0, got {0}")]
    BadLearningRate(f32),
    /// The regularisation strength is negative, NaN or infinite.
    #[error("the regularisation strength must be a finite number >= 0, got {0}")]
    BadRegularisation(f32),
    /// Training diverged.
    #[error(
        "the loss became {value} at step {step}; training stopped (try a smaller --lr or --reg)"
    )]
    NonFiniteLoss {
        /// The step (0-based) whose forward pass gave the loss.
        step: usize,
        /// The loss.
        value: f32,
    },
    /// No examples to train on.
    #[error("no training examples")]
    Empty,
    /// A weight vector of the wrong length.
    #[error("expected {expected} weights, got {got}")]
    WeightCount {
        /// V × V.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// The device reported an error (allocation, CUDA).
    #[error("device error: {0}")]
    Device(String),
}

/// The value of a scalar tensor, on any device.
fn scalar<D: Kernels, T>(t: &Tensor<Rank0, f32, D, T>) -> f32 {
    t.as_vec()[0]
}

fn dev_err<E: std::fmt::Debug>(e: E) -> OneHotError {
    OneHotError::Device(format!("{e:?}"))
}

// ANCHOR: pairs
/// The training set: every bigram of every word as an (input, label) pair of
/// indices: every pair of names.txt, or for "emma" alone, five:
/// `.→e, e→m, m→m, m→a, a→.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairs {
    /// The current character of each bigram.
    pub xs: Vec<usize>,
    /// The character that follows it: what the net must predict.
    pub ys: Vec<usize>,
    /// The vocabulary size: every index is below it.
    pub vocab: usize,
}

impl Pairs {
    /// The pairs of `words` over `vocab`.
    pub fn new<S: AsRef<str>>(words: &[S], vocab: &Vocab) -> Result<Self, BigramError> {
        let (mut xs, mut ys, mut ids) = (Vec::new(), Vec::new(), Vec::new());
        for w in words {
            encode_word(vocab, w.as_ref(), &mut ids)?; // [0, ix.., 0]
            for pair in ids.windows(2) {
                xs.push(pair[0]);
                ys.push(pair[1]);
            }
        }
        let vocab = vocab.len();
        Ok(Self { xs, ys, vocab })
    }
    // ANCHOR_END: pairs

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.xs.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.xs.is_empty()
    }
}

/// Which forward pass computes the logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Forward {
    /// The lecture's: one-hot encode the inputs, (N, V) @ (V, V).
    #[default]
    OneHot,
    /// The same numbers without the matmul: row `x` of `W` is the logits of
    /// input `x`, so just gather the rows. This is what an embedding is.
    Lookup,
}

/// The pairs on a device, in the forms both forward passes need.
pub struct Batch<D: Kernels> {
    /// Input indices, (N,).
    pub xs: Tensor<(usize,), usize, D>,
    /// Label indices, (N,).
    pub ys: Tensor<(usize,), usize, D>,
    /// One-hot inputs, (N, V) floats: `F.one_hot(xs, num_classes=V).float()`.
    pub xenc: Tensor<(usize, usize), f32, D>,
    /// How often each (x, y) pair occurs, divided by N: (V, V). The lookup
    /// loss weights each entry of the (V, V) log-probability table by it.
    pub pair_freq: Tensor<(usize, usize), f32, D>,
}

impl<D: Kernels> Batch<D> {
    /// Moves `pairs` to `dev`. Every index must be below `pairs.vocab`.
    ///
    /// Also turns on the device's allocation cache (dfdx's `enable_cache`):
    /// a full-batch step allocates the same (N, V) buffers every time, and
    /// reusing them instead of taking fresh pages from the operating system
    /// makes a CPU step about four times faster.
    pub fn new(dev: &D, pairs: &Pairs) -> Result<Self, OneHotError> {
        dev.try_enable_cache().map_err(dev_err)?;
        if pairs.is_empty() {
            return Err(OneHotError::Empty);
        }
        let v = pairs.vocab;
        if let Some(&bad) = pairs.xs.iter().chain(&pairs.ys).find(|&&i| i >= v) {
            return Err(OneHotError::Index {
                index: bad,
                size: v,
            });
        }
        let n = pairs.len();
        // xenc, the logits, the probabilities and their gradients (N, V);
        // W, its gradient and the pair frequencies (V, V): 4 bytes each.
        let floats = (n as u128 * 6 + v as u128 * 4) * v as u128;
        crate::train::fits(floats * 4).map_err(|(needed, available)| OneHotError::TooBig {
            n,
            vocab: v,
            needed,
            available,
        })?;
        let xs = dev
            .try_tensor_from_vec(pairs.xs.clone(), (n,))
            .map_err(dev_err)?; // (N,)
        let ys = dev
            .try_tensor_from_vec(pairs.ys.clone(), (n,))
            .map_err(dev_err)?; // (N,)
        let xenc = dev.one_hot_encode(v, pairs.xs.clone()); // (N, V)
        let mut freq = vec![0f32; v * v];
        for (x, y) in pairs.xs.iter().zip(&pairs.ys) {
            freq[x * v + y] += 1.0;
        }
        freq.iter_mut().for_each(|f| *f /= n as f32);
        let pair_freq = dev.try_tensor_from_vec(freq, (v, v)).map_err(dev_err)?; // (V, V)
        Ok(Self {
            xs,
            ys,
            xenc,
            pair_freq,
        })
    }

    /// Number of examples N.
    pub fn len(&self) -> usize {
        self.xs.shape().0
    }

    /// Never true: a batch holds at least one example.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The vocabulary size V.
    pub fn vocab(&self) -> usize {
        self.xenc.shape().1
    }
}

/// One example of the walk-through: what the net says about one bigram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Example {
    /// The input character.
    pub input: char,
    /// The character that actually follows.
    pub label: char,
    /// The probability the net gives the label.
    pub prob: f32,
    /// Its natural log.
    pub log_likelihood: f32,
    /// Minus that: the example's loss.
    pub nll: f32,
}

// ANCHOR: net
/// The network: one (V, V) weight matrix, 27 neurons of 27 inputs each for
/// names.txt.
#[derive(Debug, Clone)]
pub struct BigramNet<D: Kernels> {
    /// W, (V, V). Row `i` holds the log-counts of the characters after `i`.
    pub w: Tensor<(usize, usize), f32, D>,
}

impl<D: Kernels> BigramNet<D> {
    /// W drawn from a standard normal with the caller's generator
    /// (`torch.randn((27, 27), generator=g)`).
    pub fn new<R: Rng + ?Sized>(dev: &D, vocab: usize, rng: &mut R) -> Result<Self, OneHotError> {
        let w: Vec<f32> = (0..vocab * vocab)
            .map(|_| rng.sample(StandardNormal))
            .collect();
        Self::from_weights(dev, vocab, w)
    }
    // ANCHOR_END: net

    /// A net with the given row-major (V, V) weights.
    pub fn from_weights(dev: &D, vocab: usize, w: Vec<f32>) -> Result<Self, OneHotError> {
        if w.len() != vocab * vocab {
            return Err(OneHotError::WeightCount {
                expected: vocab * vocab,
                got: w.len(),
            });
        }
        let w = dev
            .try_tensor_from_vec(w, (vocab, vocab))
            .map_err(dev_err)?; // (V, V)
        Ok(Self { w })
    }

    /// The vocabulary size V.
    pub fn vocab(&self) -> usize {
        self.w.shape().0
    }

    /// W as a row-major vector.
    pub fn weights(&self) -> Vec<f32> {
        self.w.as_vec()
    }

    /// softmax(W) row by row: the net's probability table, to compare with P
    /// of chapter 1. Row-major (V, V).
    pub fn probabilities(&self) -> Vec<f32> {
        self.w.clone().softmax::<Axis<1>>().as_vec() // (V, V)
    }

    /// A sampler over softmax(W), to generate names.
    pub fn sampler(&self, vocab: &Vocab) -> Result<RowSampler, OneHotError> {
        if vocab.len() != self.vocab() {
            return Err(OneHotError::VocabSize {
                expected: self.vocab(),
                got: vocab.len(),
            });
        }
        let p: Vec<f64> = self.probabilities().iter().map(|&p| p as f64).collect();
        Ok(RowSampler::new(vocab.clone(), &p)?)
    }

    /// One neuron on one input, three ways, as the lecture reads the layer:
    /// `(xenc @ W)[i, j]` is neuron `j`'s output on input `i`, the dot
    /// product of the input with the neuron's weights, column `j` of W; and
    /// the input being one-hot, it is row `xs[i]` of W, column `j`.
    pub fn firing(&self, batch: &Batch<D>, i: usize, j: usize) -> [f32; 3] {
        let (dev, v, w) = (self.w.device().clone(), self.vocab(), self.w.clone());
        // ANCHOR: firing
        let out = batch.xenc.clone().matmul(w.clone()); // (N, V): xenc @ W
        let xenc_i = batch.xenc.clone().select(dev.tensor(i)); // (V,): xenc[i]
        let w_j = w.clone().permute::<_, Axes2<1, 0>>().select(dev.tensor(j)); // (V,): W[:, j]
        let dot = (xenc_i * w_j).sum::<Rank0, _>(); // (): (xenc[i] * W[:, j]).sum()
        let x = batch.xs.as_vec()[i]; // the input: xenc[i] is 1 at x, 0 elsewhere
        let row = w.select(dev.tensor(x)); // (V,): W[x]
        let same = [out.as_vec()[i * v + j], dot.as_vec()[0], row.as_vec()[j]];
        // ANCHOR_END: firing
        same
    }

    /// The lecture's forward pass spelled out, without gradients: logits,
    /// counts = exp(logits), probs = counts / counts.sum(1), (N, V).
    pub fn probs_explicit(&self, batch: &Batch<D>) -> Tensor<(usize, usize), f32, D> {
        lecture_probs(self.w.clone(), batch)
    }

    /// The walk-through of the lecture: for every pair, the probability the
    /// net gives the correct next character, its log, and the loss.
    pub fn walk_through(&self, batch: &Batch<D>, vocab: &Vocab) -> Vec<Example> {
        let v = self.vocab();
        let probs = self.probs_explicit(batch).as_vec(); // (N, V)
        let (xs, ys) = (batch.xs.as_vec(), batch.ys.as_vec());
        xs.iter()
            .zip(&ys)
            .enumerate()
            .map(|(i, (&x, &y))| {
                let prob = probs[i * v + y];
                Example {
                    input: vocab.char(x).unwrap_or('?'),
                    label: vocab.char(y).unwrap_or('?'),
                    prob,
                    log_likelihood: prob.ln(),
                    nll: -prob.ln(),
                }
            })
            .collect()
    }

    /// The loss of the current weights without gradients: (loss, nll).
    pub fn evaluate(&self, batch: &Batch<D>, forward: Forward, reg: f32) -> (f32, f32) {
        let (loss, nll) = loss(self.w.clone(), batch, forward, reg);
        (scalar(&loss), nll)
    }

    // ANCHOR: step
    /// One step of gradient descent on the whole batch: forward, backward,
    /// and the update `W ← W − lr · ∂loss/∂W`, by hand, as in the lecture.
    /// Returns the loss and its NLL part, both before the update.
    pub fn step(
        &mut self,
        batch: &Batch<D>,
        forward: Forward,
        lr: f32,
        reg: f32,
    ) -> Result<(f32, f32), OneHotError> {
        let w = self.w.trace(Gradients::leaky()); // record the ops on W
        let (loss, nll) = loss(w, batch, forward, reg); // forward pass
        let value = scalar(&loss);
        let grads = loss.backward(); // backward pass: ∂loss/∂W, (V, V)
        self.w
            .try_axpy(1.0, &grads.get(&self.w), -lr)
            .map_err(dev_err)?; // W += -lr * grad
        Ok((value, nll))
    }
    // ANCHOR_END: step
}

/// The lecture's forward pass, recording on `w`'s tape: the one-hot inputs
/// times W, then softmax written out as exponentials divided by their sums.
pub fn lecture_probs<D: Kernels, T: Tape<f32, D> + Merge<T>>(
    w: Tensor<(usize, usize), f32, D, T>,
    batch: &Batch<D>,
) -> Tensor<(usize, usize), f32, D, T> {
    // ANCHOR: forward_explicit
    let logits = matmul_fixed_lhs(&batch.xenc, w); // (N, V) @ (V, V) -> (N, V): log-counts
    let counts = logits.exp(); // (N, V): counts, like chapter 1's table N
    let sums = counts.retaped::<T>().sum::<(usize,), Axis<1>>(); // (N,): counts.sum(1)
    let probs = counts / sums.broadcast_like::<_, Axis<1>>(batch.xenc.shape()); // (N, V): rows sum to 1
                                                                                // ANCHOR_END: forward_explicit
    probs
}

// ANCHOR: lecture_loss
/// The lecture's loss, spelled out: the average negative log-likelihood of
/// the correct next characters, `-probs[torch.arange(num), ys].log().mean()`,
/// plus `reg · (W**2).mean()`, which pulls W towards 0 (that is, softmax(W)
/// towards uniform: smoothing).
pub fn lecture_loss<D: Kernels, T: Tape<f32, D> + Merge<T>>(
    w: Tensor<(usize, usize), f32, D, T>,
    batch: &Batch<D>,
    reg: f32,
) -> Tensor<Rank0, f32, D, T> {
    let w_again = w.retaped::<T>(); // W is used twice: once more for the regulariser
    let probs = lecture_probs(w, batch); // (N, V)
    let nll = probs.select(batch.ys.clone()).ln().mean().negate(); // (): -probs[arange(N), ys].log().mean()
    nll + w_again.square().mean() * reg // (): + reg * (W**2).mean()
}
// ANCHOR_END: lecture_loss

/// The logits (N, V) of the batch's inputs, by either forward pass.
pub fn logits<D: Kernels, T: Tape<f32, D>>(
    w: Tensor<(usize, usize), f32, D, T>,
    batch: &Batch<D>,
    forward: Forward,
) -> Tensor<(usize, usize), f32, D, T> {
    // ANCHOR: logits
    match forward {
        Forward::OneHot => matmul_fixed_lhs(&batch.xenc, w), // (N, V) @ (V, V) -> (N, V)
        Forward::Lookup => w.gather(batch.xs.clone()),       // W[xs]: (N, V)
    }
    // ANCHOR_END: logits
}

// ANCHOR: loss
/// The loss training uses: the same number as [`lecture_loss`], computed
/// stably and with less work. Returns the loss tensor and, as a plain
/// number, its NLL part.
///
/// `log_softmax` is `ln(exp(l) / Σ exp(l))` computed stably in one op; the
/// lecture's `counts / counts.sum(1)` then `.log()` is the same number. The
/// one-hot path does the matmul, the log_softmax, the selection and the mean
/// as one op, [`Kernels::linear_nll`] (fused on the CPU).
///
/// The lookup path uses that example `n`'s logits are row `x[n]` of W, so
/// `log_softmax(W[x[n]]) = log_softmax(W)[x[n]]`: it normalises the V rows of
/// W once instead of N copies of them. And since every example with the same
/// pair (x, y) looks up the same entry, the mean over the N examples is the
/// sum over the (V, V) table weighted by how often each pair occurs.
pub fn loss<D: Kernels, T: Tape<f32, D> + Merge<T>>(
    w: Tensor<(usize, usize), f32, D, T>,
    batch: &Batch<D>,
    forward: Forward,
    reg: f32,
) -> (Tensor<Rank0, f32, D, T>, f32) {
    let w_again = w.retaped::<T>(); // W is used twice: once more for the regulariser
    let nll = match forward {
        // xenc @ W, log_softmax, select the label's entry, mean, negate: one op
        Forward::OneHot => ops::linear_nll(&batch.xenc, w, &batch.ys), // ()
        Forward::Lookup => (w.log_softmax::<Axis<1>>() // (V, V): ln softmax(W), row by row
            * batch.pair_freq.clone()) // (V, V): weighted by pair frequency
        .sum() // (): mean over the examples of ln p[y]
        .negate(),
    };
    let nll_value = scalar(&nll);
    let penalty = w_again.square().mean() * reg; // (): reg * (W**2).mean()
    (nll + penalty, nll_value)
}
// ANCHOR_END: loss

// ANCHOR: config
/// Training settings. `Default` is the lecture's: learning rate 50,
/// regularisation 0.01, 100 steps of full-batch gradient descent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneHotConfig {
    /// Gradient-descent steps.
    pub steps: usize,
    /// Learning rate.
    pub lr: f32,
    /// Regularisation strength (0 for none).
    pub reg: f32,
    /// Which forward pass to use.
    pub forward: Forward,
}

impl Default for OneHotConfig {
    fn default() -> Self {
        Self {
            steps: 100,
            lr: 50.0,
            reg: 0.01,
            forward: Forward::OneHot,
        }
    }
}
// ANCHOR_END: config

impl OneHotConfig {
    /// A few steps, for tests.
    pub fn tiny() -> Self {
        Self {
            steps: 5,
            ..Self::default()
        }
    }

    /// Checks the settings before any work is done.
    pub fn validate(&self) -> Result<(), OneHotError> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(OneHotError::BadLearningRate(self.lr));
        }
        if !(self.reg.is_finite() && self.reg >= 0.0) {
            return Err(OneHotError::BadRegularisation(self.reg));
        }
        Ok(())
    }
}

/// What a training run recorded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    /// The loss (with the regulariser) before each step.
    pub losses: Vec<f32>,
    /// Its NLL part.
    pub nlls: Vec<f32>,
    /// The loss and NLL after the last step.
    pub final_loss: f32,
    /// See `final_loss`.
    pub final_nll: f32,
    /// Wall-clock seconds per step, averaged.
    pub seconds_per_step: f64,
}

// ANCHOR: train
/// Trains `net` on `batch` for `cfg.steps` full-batch steps. Stops with an
/// error naming the step as soon as the loss is not finite.
pub fn train<D: Kernels>(
    net: &mut BigramNet<D>,
    batch: &Batch<D>,
    cfg: &OneHotConfig,
) -> Result<History, OneHotError> {
    train_with(net, batch, cfg, |_, _| {})
}

/// [`train`], calling `on_step(step, loss)` after every step (for progress bars).
pub fn train_with<D: Kernels, F: FnMut(usize, f32)>(
    net: &mut BigramNet<D>,
    batch: &Batch<D>,
    cfg: &OneHotConfig,
    mut on_step: F,
) -> Result<History, OneHotError> {
    cfg.validate()?;
    let mut h = History::default();
    let start = Instant::now();
    for step in 0..cfg.steps {
        let (loss, nll) = net.step(batch, cfg.forward, cfg.lr, cfg.reg)?;
        if !loss.is_finite() {
            return Err(OneHotError::NonFiniteLoss { step, value: loss });
        }
        h.losses.push(loss);
        h.nlls.push(nll);
        on_step(step, loss);
    }
    h.seconds_per_step = start.elapsed().as_secs_f64() / cfg.steps.max(1) as f64;
    let (loss, nll) = net.evaluate(batch, cfg.forward, cfg.reg);
    if !loss.is_finite() {
        return Err(OneHotError::NonFiniteLoss {
            step: cfg.steps,
            value: loss,
        });
    }
    (h.final_loss, h.final_nll) = (loss, nll);
    Ok(h)
}
// ANCHOR_END: train
