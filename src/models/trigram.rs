//! The exercises of makemore part 1 (chapter 2's end): a trigram model by
//! counting, and the data split into train, dev and test to compare models
//! and tune the smoothing honestly.
//!
//! Introduced in chapter 2 ("Exercises"). A trigram model predicts the next
//! character from the two before it: `P[a][b]` is a distribution over the
//! character after "ab". Names are padded with two start tokens, so "emma"
//! gives the examples `..→e`, `.e→m`, `em→m`, `mm→a`, `ma→.`.

use dfdx::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use rand_distr::StandardNormal;

use super::bigram_counts::{encode_word, BigramError};
use super::lm::{dev_err, ModelError};
use crate::data::vocab::Vocab;
use crate::ops::Kernels;

// ANCHOR: trigram
/// Calls `f` with the flat (V, V, V) index of every trigram of `words`, each
/// padded as `..word.`.
fn each_trigram<S: AsRef<str>>(
    vocab: &Vocab,
    words: &[S],
    mut f: impl FnMut(usize),
) -> Result<(), BigramError> {
    let v = vocab.len();
    let mut ids = Vec::new();
    for w in words {
        encode_word(vocab, w.as_ref(), &mut ids)?; // [0, ix.., 0]
        ids.insert(0, 0); // [0, 0, ix.., 0]: two start tokens
        for t in ids.windows(3) {
            f((t[0] * v + t[1]) * v + t[2]); // [a, b, c]
        }
    }
    Ok(())
}

/// The (V, V, V) trigram counts `N[a, b, c]` of a word list.
#[derive(Debug, Clone)]
pub struct TrigramCounts {
    vocab: Vocab,
    /// Row-major (V·V, V) counts.
    counts: Vec<u32>,
}

impl TrigramCounts {
    /// The characters counted.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Counts the trigrams of `words` over `vocab`.
    pub fn from_words<S: AsRef<str>>(vocab: &Vocab, words: &[S]) -> Result<Self, BigramError> {
        let v = vocab.len();
        super::bigram_counts::check_tables(v, 3)?;
        let mut counts = vec![0u32; v * v * v]; // (V, V, V)
        each_trigram(vocab, words, |i| counts[i] += 1)?; // N[a, b, c] += 1
        Ok(Self {
            vocab: vocab.clone(),
            counts,
        })
    }

    /// `P = (N + k) / (N + k).sum(-1)`: each (a, b) row normalised after
    /// adding `k` to every count.
    pub fn probabilities(&self, k: f64) -> Result<TrigramModel, BigramError> {
        if !(k.is_finite() && k >= 0.0) {
            return Err(BigramError::BadSmoothing(k));
        }
        let v = self.vocab.len();
        let mut log_probs = vec![0f64; v * v * v];
        for (row, out) in self
            .counts
            .chunks_exact(v)
            .zip(log_probs.chunks_exact_mut(v))
        {
            let sum: f64 = row.iter().map(|&c| c as f64 + k).sum(); // Σ_c (N[a, b, c] + k)
            for (lp, &c) in out.iter_mut().zip(row) {
                *lp = if sum > 0.0 {
                    ((c as f64 + k) / sum).ln() // ln P[a, b, c]: -inf for an unseen trigram when k = 0
                } else {
                    f64::NEG_INFINITY // a context never seen, with k = 0
                };
            }
        }
        Ok(TrigramModel {
            vocab: self.vocab.clone(),
            log_probs,
        })
    }
}

/// A trigram model: row `(a, b)` is the distribution of the character after
/// `a` then `b`.
#[derive(Debug, Clone)]
pub struct TrigramModel {
    vocab: Vocab,
    /// Row-major (V·V, V) log-probabilities.
    log_probs: Vec<f64>,
}

impl TrigramModel {
    /// The average negative log-likelihood of `words`' trigrams.
    pub fn nll<S: AsRef<str>>(&self, words: &[S]) -> Result<f64, BigramError> {
        let (mut sum, mut n) = (0f64, 0usize);
        each_trigram(&self.vocab, words, |i| {
            sum -= self.log_probs[i]; // -ln P[a, b, c]
            n += 1;
        })?;
        if n == 0 {
            return Err(BigramError::NoBigrams);
        }
        Ok(sum / n as f64)
    }
}
// ANCHOR_END: trigram

// ANCHOR: split
/// The words shuffled by a generator seeded with `seed`, then cut 80/10/10
/// into train, dev and test: fit on train, choose on dev, report on test.
pub fn split_words<S: AsRef<str>>(words: &[S], seed: u64) -> [Vec<String>; 3] {
    let mut all: Vec<String> = words.iter().map(|w| w.as_ref().to_string()).collect();
    all.shuffle(&mut ChaCha12Rng::seed_from_u64(seed));
    let (n1, n2) = (all.len() * 8 / 10, all.len() * 9 / 10);
    let test = all.split_off(n2);
    let dev = all.split_off(n1);
    [all, dev, test]
}
// ANCHOR_END: split

/// The trigram examples of `words`, gathered by context: every (a, b) pair
/// of the vocabulary as indices into W's rows (`a` and `V + b`), and how
/// often each (a, b, c) occurs, divided by the number of examples, (V·V, V).
/// The NLL's mean over the examples is the sum over this table of
/// `frequency · -ln p` (chapter 2's lookup, for two characters).
#[derive(Debug, Clone)]
pub struct TrigramExamples<D: Device<f32>> {
    first: Tensor<(usize,), usize, D>,
    second: Tensor<(usize,), usize, D>,
    freq: Tensor<(usize, usize), f32, D>,
}

impl<D: Device<f32>> TrigramExamples<D> {
    /// The examples `counts` counted, on `dev` (an error if there are none).
    pub fn new(dev: &D, counts: &TrigramCounts) -> Result<Self, TrigramError> {
        let v = counts.vocab.len();
        let n: f64 = counts.counts.iter().map(|&c| c as f64).sum();
        if n == 0.0 {
            return Err(BigramError::NoBigrams.into());
        }
        let freq: Vec<f32> = counts
            .counts
            .iter()
            .map(|&c| (c as f64 / n) as f32)
            .collect();
        let first: Vec<usize> = (0..v * v).map(|ab| ab / v).collect(); // a
        let second: Vec<usize> = (0..v * v).map(|ab| v + ab % v).collect(); // V + b
        let dev_err = |e| TrigramError::Model(dev_err(e));
        Ok(Self {
            first: dev.try_tensor_from_vec(first, (v * v,)).map_err(dev_err)?,
            second: dev.try_tensor_from_vec(second, (v * v,)).map_err(dev_err)?,
            freq: dev.try_tensor_from_vec(freq, (v * v, v)).map_err(dev_err)?,
        })
    }
}

/// Errors of the trigram net's examples.
#[derive(Debug, thiserror::Error)]
pub enum TrigramError {
    /// No trigrams to learn from.
    #[error(transparent)]
    Data(#[from] BigramError),
    /// The device failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

// ANCHOR: trigram_net
/// The trigram model as a neural net (exercise E01): both characters one-hot
/// encoded side by side, (N, 2V), times W, (2V, V). A one-hot vector times W
/// picks a row, so the logits are `W[a] + W[V + b]`: two lookups, added.
#[derive(Debug, Clone)]
pub struct TrigramNet<D: Kernels> {
    /// (2V, V): the first character's rows, then the second's.
    pub w: Tensor<(usize, usize), f32, D>,
}

impl<D: Kernels> TrigramNet<D> {
    /// W drawn from a standard normal.
    pub fn new<R: Rng>(dev: &D, vocab: usize, rng: &mut R) -> Result<Self, ModelError> {
        let w = standard_normal(dev, (2 * vocab, vocab), rng)?; // (2V, V)
        Ok(Self { w })
    }

    /// The mean NLL over the examples, recording on `w`'s tape.
    fn nll_of<T: Tape<f32, D> + Merge<T>>(
        w: Tensor<(usize, usize), f32, D, T>,
        ex: &TrigramExamples<D>,
    ) -> Tensor<Rank0, f32, D, T> {
        let w2 = w.retaped::<T>(); // W is read twice
        let logits = w.gather(ex.first.clone()) + w2.gather(ex.second.clone()); // (V·V, V): W[a] + W[V + b]
        freq_nll(logits, ex) // (): mean of -ln p[c]
    }

    /// One step of full-batch gradient descent on the mean NLL plus
    /// `reg · mean(W²)`; returns the loss before the step.
    pub fn step(&mut self, ex: &TrigramExamples<D>, lr: f32, reg: f32) -> Result<f32, ModelError> {
        descend(&mut self.w, lr, reg, |w| Self::nll_of(w, ex))
    }

    /// The mean NLL of the examples (no regulariser).
    pub fn nll(&self, ex: &TrigramExamples<D>) -> f32 {
        Self::nll_of(self.w.clone(), ex).as_vec()[0]
    }
}

/// The mean NLL of the examples from the logits of every pair (a, b), row
/// `a·V + b`: each (pair, next) weighted by its share of all trigrams.
fn freq_nll<D: Kernels, T: Tape<f32, D>>(
    logits: Tensor<(usize, usize), f32, D, T>, // (V·V, V)
    ex: &TrigramExamples<D>,
) -> Tensor<Rank0, f32, D, T> {
    (logits.log_softmax::<Axis<1>>() * ex.freq.clone()) // (V·V, V): share · ln p
        .sum()
        .negate() // (): mean of -ln p[c]
}

/// One step of gradient descent on `nll(W) + reg · mean(W²)`: the
/// chapter's update, for either trigram net; returns the loss before it.
fn descend<D: Kernels>(
    w: &mut Tensor<(usize, usize), f32, D>,
    lr: f32,
    reg: f32,
    nll: impl FnOnce(
        Tensor<(usize, usize), f32, D, OwnedTape<f32, D>>,
    ) -> Tensor<Rank0, f32, D, OwnedTape<f32, D>>,
) -> Result<f32, ModelError> {
    let traced = w.trace(Gradients::leaky()); // record the ops on W
    let penalty = traced.retaped::<OwnedTape<f32, D>>().square().mean() * reg; // (): reg · mean(W²)
    let loss = nll(traced) + penalty; // ()
    let value = loss.as_vec()[0];
    let grads = loss.backward(); // ∂loss/∂W
    w.try_axpy(1.0, &grads.get(w), -lr).map_err(dev_err)?; // W -= lr · grad
    Ok(value)
}
// ANCHOR_END: trigram_net

// ANCHOR: pair_net
/// The trigram net with one row per pair of characters (exercise E01, the
/// second form): the pair (a, b) one-hot encoded over V·V inputs, times W,
/// (V·V, V), picks row `a·V + b`. The examples list every pair in that
/// order, so the logits of all the pairs at once are W itself.
#[derive(Debug, Clone)]
pub struct PairNet<D: Kernels> {
    /// (V·V, V): a row of logits for each pair (a, b).
    pub w: Tensor<(usize, usize), f32, D>,
}

impl<D: Kernels> PairNet<D> {
    /// W drawn from a standard normal.
    pub fn new<R: Rng>(dev: &D, vocab: usize, rng: &mut R) -> Result<Self, ModelError> {
        let w = standard_normal(dev, (vocab * vocab, vocab), rng)?; // (V·V, V)
        Ok(Self { w })
    }

    /// The mean NLL over the examples, recording on `w`'s tape.
    fn nll_of<T: Tape<f32, D>>(
        w: Tensor<(usize, usize), f32, D, T>,
        ex: &TrigramExamples<D>,
    ) -> Tensor<Rank0, f32, D, T> {
        freq_nll(w, ex) // (): W's row a·V + b is the pair's logits
    }

    /// One step of gradient descent, as for the additive net.
    pub fn step(&mut self, ex: &TrigramExamples<D>, lr: f32, reg: f32) -> Result<f32, ModelError> {
        descend(&mut self.w, lr, reg, |w| Self::nll_of(w, ex))
    }

    /// The mean NLL of the examples (no regulariser).
    pub fn nll(&self, ex: &TrigramExamples<D>) -> f32 {
        Self::nll_of(self.w.clone(), ex).as_vec()[0]
    }
}
// ANCHOR_END: pair_net

/// A (rows, cols) matrix of standard normal draws from `rng`, row-major:
/// both nets' initial W, as `torch.randn`.
fn standard_normal<D: Kernels, R: Rng>(
    dev: &D,
    (rows, cols): (usize, usize),
    rng: &mut R,
) -> Result<Tensor<(usize, usize), f32, D>, ModelError> {
    let w: Vec<f32> = (0..rows * cols)
        .map(|_| rng.sample(StandardNormal))
        .collect();
    dev.try_tensor_from_vec(w, (rows, cols)).map_err(dev_err)
}
