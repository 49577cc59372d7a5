//! The bigram language model from counts.
//!
//! Introduced in chapter 1. A bigram model predicts the next character from
//! the current one alone. Counting how often each character follows each other
//! character in 32,033 names gives a 27×27 table `N`; normalising each row of
//! `N` gives the probabilities `P` of the next character, from which we sample
//! new names and measure how good the model is.

use std::collections::BTreeMap;

use dfdx::prelude::*;
use rand::distributions::{Distribution, WeightedIndex};
use rand::Rng;

use crate::torch_rng::TorchGenerator;

use crate::data::vocab::{UnknownChar, Vocab, BOUNDARY};

/// Errors of the counting model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BigramError {
    /// A word holds a character outside the model's vocabulary.
    #[error("word {word:?}: {source}")]
    UnknownChar {
        /// The word.
        word: String,
        /// The character and where it is.
        #[source]
        source: UnknownChar,
    },
    /// Smoothing must be a finite number ≥ 0.
    #[error("smoothing must be a finite number >= 0, got {0}")]
    BadSmoothing(f64),
    /// Smoothing so large that the lecture's float32 rows of `N + k` overflow.
    #[error("smoothing {k:e} is too large: the rows of N + k, in float32 as the lecture's, would overflow; use at most {most:.1e}")]
    SmoothingTooLarge {
        /// The smoothing asked for.
        k: f64,
        /// The largest that works for this vocabulary.
        most: f64,
    },
    /// A row of `N + k` that sums to zero cannot be normalised.
    #[error(
        "the row of {ch:?} has no counts, so its probabilities are undefined; use smoothing > 0"
    )]
    EmptyRow {
        /// The character whose row is empty.
        ch: char,
    },
    /// A word containing '.', the start/end token.
    #[error("word {word:?} contains '.', which is reserved as the start/end token")]
    ReservedChar {
        /// The word.
        word: String,
    },
    /// The NLL of no words at all is undefined.
    #[error("no bigrams to evaluate: the word list is empty")]
    NoBigrams,
    /// The (V, V) tables would not fit in the free memory.
    #[error(
        "the names hold {vocab} distinct characters: tables of {vocab}^{order} entries need about \
         {needed} of memory, more than the {available} free; use names in fewer characters"
    )]
    TooManyChars {
        /// V.
        vocab: usize,
        /// 2 for a bigram's (V, V) tables, 3 for a trigram's (V, V, V).
        order: u32,
        /// The estimate, in words.
        needed: String,
        /// What is free, in words.
        available: String,
    },
}

/// Smoothing `k` is a finite number >= 0, small enough that every row of
/// `N + k` (V entries) summed in float32, as the lecture does, stays finite.
fn check_smoothing(k: f64, v: usize) -> Result<(), BigramError> {
    if !(k.is_finite() && k >= 0.0) {
        return Err(BigramError::BadSmoothing(k));
    }
    let most = f64::from(f32::MAX) / (2.0 * v.max(1) as f64);
    if k > most {
        return Err(BigramError::SmoothingTooLarge { k, most });
    }
    Ok(())
}

/// Checks that tables of V^`order` entries (a bigram's (V, V), a
/// trigram's (V, V, V)) fit in memory before they are made: the counts N,
/// the probabilities P and a working copy, 4 bytes an entry each.
pub fn check_tables(vocab: usize, order: u32) -> Result<(), BigramError> {
    let entries = (vocab as u128).saturating_pow(order);
    crate::train::fits(entries.saturating_mul(12)).map_err(|(needed, available)| {
        BigramError::TooManyChars {
            vocab,
            order,
            needed,
            available,
        }
    })
}

// ANCHOR: bigrams
/// The bigrams of one word, with '.' marking its start and end:
/// "emma" gives ('.','e') ('e','m') ('m','m') ('m','a') ('a','.').
pub fn bigrams(word: &str) -> impl Iterator<Item = (char, char)> + '_ {
    let chs = std::iter::once(BOUNDARY)
        .chain(word.chars())
        .chain(std::iter::once(BOUNDARY));
    chs.clone().zip(chs.skip(1))
}
// ANCHOR_END: bigrams

// ANCHOR: bigram_dict
/// The lecture's first attempt: count bigrams in a dictionary (a `BTreeMap`
/// keyed by the character pair).
pub fn count_in_map<S: AsRef<str>>(words: &[S]) -> BTreeMap<(char, char), u32> {
    let mut b = BTreeMap::new();
    for w in words {
        for pair in bigrams(w.as_ref()) {
            *b.entry(pair).or_insert(0) += 1;
        }
    }
    b
}
// ANCHOR_END: bigram_dict

/// The count table `N`: `N[i][j]` is how often character `j` follows
/// character `i`, with '.' standing for the start (row 0) and end (column 0).
#[derive(Debug, Clone, PartialEq)]
pub struct BigramCounts {
    vocab: Vocab,
    /// Row-major `V × V` counts.
    counts: Vec<u32>,
}

impl BigramCounts {
    /// Counts the bigrams of `words` over the names vocabulary built from them.
    /// The only possible error is a word containing '.'.
    pub fn from_words<S: AsRef<str>>(words: &[S]) -> Result<Self, BigramError> {
        let vocab = Vocab::for_names(words);
        check_tables(vocab.len(), 2)?;
        Self::with_vocab(vocab, words)
    }

    // ANCHOR: count_array
    /// Counts the bigrams of `words` into a `V × V` array over `vocab`.
    /// A character outside `vocab` is an error naming the word.
    pub fn with_vocab<S: AsRef<str>>(vocab: Vocab, words: &[S]) -> Result<Self, BigramError> {
        let v = vocab.len();
        let mut counts = vec![0u32; v * v]; // (V, V)
        let mut ids = Vec::new();
        for w in words {
            encode_word(&vocab, w.as_ref(), &mut ids)?; // [0, ix.., 0]
            for pair in ids.windows(2) {
                counts[pair[0] * v + pair[1]] += 1; // N[ix1, ix2] += 1
            }
        }
        Ok(Self { vocab, counts })
    }
    // ANCHOR_END: count_array

    /// The vocabulary (rows and columns of `N`).
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Number of rows (and columns): 27 for names.txt.
    pub fn size(&self) -> usize {
        self.vocab.len()
    }

    /// `N[i][j]` by index. Panics when out of range, like slice indexing.
    pub fn get(&self, i: usize, j: usize) -> u32 {
        self.counts[i * self.size() + j]
    }

    /// `N[a][b]` by character; `None` when either is outside the vocabulary.
    pub fn count(&self, a: char, b: char) -> Option<u32> {
        Some(self.get(self.vocab.index(a)?, self.vocab.index(b)?))
    }

    /// Row `i` of `N`.
    pub fn row(&self, i: usize) -> &[u32] {
        let v = self.size();
        &self.counts[i * v..(i + 1) * v]
    }

    /// All counts, row-major `(V, V)`.
    pub fn as_slice(&self) -> &[u32] {
        &self.counts
    }

    /// The number of bigrams counted (228,146 for names.txt).
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| c as u64).sum()
    }

    /// The number of cells that are zero (102 for names.txt): bigrams that
    /// never occur, and that an unsmoothed model calls impossible.
    pub fn zero_cells(&self) -> usize {
        self.counts.iter().filter(|&&c| c == 0).count()
    }

    /// The largest count.
    pub fn max(&self) -> u32 {
        self.counts.iter().copied().max().unwrap_or(0)
    }

    /// The `n` most common bigrams, most common first (ties in vocabulary order).
    pub fn most_common(&self, n: usize) -> Vec<(char, char, u32)> {
        let v = self.size();
        let chars = self.vocab.chars();
        let mut all: Vec<(char, char, u32)> = (0..v * v)
            .map(|k| (chars[k / v], chars[k % v], self.counts[k]))
            .collect();
        all.sort_by_key(|&(_, _, c)| std::cmp::Reverse(c));
        all.truncate(n);
        all
    }

    /// The model `P = (N + k)` with each row normalised to sum to 1.
    pub fn probabilities(&self, smoothing: f64) -> Result<BigramModel, BigramError> {
        BigramModel::new(self.clone(), smoothing)
    }
}

/// Encodes `word` into `ids` as `[0, ix.., 0]`: '.' (index 0) before and
/// after the word's own characters. Chapter 2 builds its training pairs with it.
pub fn encode_word(vocab: &Vocab, word: &str, ids: &mut Vec<usize>) -> Result<(), BigramError> {
    ids.clear();
    ids.push(0);
    for (position, ch) in word.chars().enumerate() {
        let ix = match vocab.index(ch) {
            Some(0) => {
                return Err(BigramError::ReservedChar {
                    word: word.to_string(),
                })
            }
            Some(ix) => ix,
            None => {
                return Err(BigramError::UnknownChar {
                    word: word.to_string(),
                    source: UnknownChar {
                        ch,
                        position,
                        size: vocab.len(),
                        chars: vocab.chars().iter().collect(),
                    },
                })
            }
        };
        ids.push(ix);
    }
    ids.push(0);
    Ok(())
}

/// The negative log-likelihood of a word list under a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nll {
    /// The sum of `ln P[a][b]` over every bigram (a large negative number).
    pub log_likelihood: f64,
    /// How many bigrams were scored.
    pub count: usize,
    /// `-log_likelihood / count`: the loss, lower is better.
    pub nll: f64,
}

/// The bigram model `P`: row `i` is the distribution of the character that
/// follows character `i`.
#[derive(Debug, Clone)]
pub struct BigramModel {
    counts: BigramCounts,
    smoothing: f64,
    /// Row-major `(V, V)` probabilities, in f64.
    probs: Vec<f64>,
    /// Their natural logarithms, computed once for the loss.
    log_probs: Vec<f64>,
    /// Draws from the rows of `P`.
    sampler: RowSampler,
}

impl BigramModel {
    // ANCHOR: normalise
    /// `P = (N + k) / (N + k).sum(1, keepdim)`: add `k` to every count (model
    /// smoothing, so that no bigram is impossible) and normalise each row.
    pub fn new(counts: BigramCounts, smoothing: f64) -> Result<Self, BigramError> {
        let v = counts.size();
        check_smoothing(smoothing, v)?; // a number >= 0, not so large that float32 overflows
        let mut probs = vec![0f64; v * v]; // (V, V)
        for i in 0..v {
            let row: Vec<f64> = counts
                .row(i)
                .iter()
                .map(|&c| c as f64 + smoothing)
                .collect();
            let sum: f64 = row.iter().sum(); // (V, V).sum(1) -> (V,)
            if sum <= 0.0 {
                return Err(BigramError::EmptyRow {
                    ch: counts.vocab().chars()[i],
                });
            }
            for (p, c) in probs[i * v..(i + 1) * v].iter_mut().zip(&row) {
                *p = c / sum; // P[i, j] = (N[i, j] + k) / sum_j (N[i, j] + k)
            }
        }
        let log_probs = probs.iter().map(|p| p.ln()).collect(); // (V, V)
        let sampler = RowSampler::new(counts.vocab().clone(), &probs)?;
        Ok(Self {
            counts,
            smoothing,
            probs,
            log_probs,
            sampler,
        })
    }
    // ANCHOR_END: normalise

    /// The counts the model was built from.
    pub fn counts(&self) -> &BigramCounts {
        &self.counts
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        self.counts.vocab()
    }

    /// The smoothing `k` added to every count.
    pub fn smoothing(&self) -> f64 {
        self.smoothing
    }

    /// Row `i` of `P`: the distribution of the character after character `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        let v = self.counts.size();
        &self.probs[i * v..(i + 1) * v]
    }

    /// `P[i][j]` by index.
    pub fn prob(&self, i: usize, j: usize) -> f64 {
        self.probs[i * self.counts.size() + j]
    }

    /// All probabilities, row-major `(V, V)`.
    pub fn as_slice(&self) -> &[f64] {
        &self.probs
    }

    // ANCHOR: nll
    /// The quality of the model on `words` as one number.
    ///
    /// The *likelihood* of the data is the product of the probabilities the
    /// model gives to every bigram in it: the higher, the better the model.
    /// With hundreds of thousands of factors below 1 that product underflows
    /// to zero, so we use its logarithm, the *log-likelihood* `Σ ln P[a][b]`,
    /// a sum instead of a product (ln is monotonic, so maximising one
    /// maximises the other). It is ≤ 0; negated it is ≥ 0, and averaged over
    /// the bigrams it is the *average negative log-likelihood*, the loss: 0
    /// for a perfect model (every probability 1), larger the worse the model.
    /// A bigram the model calls impossible (`P = 0`) makes it infinite: what
    /// smoothing prevents.
    ///
    /// Computed in f64 throughout.
    pub fn nll<S: AsRef<str>>(&self, words: &[S]) -> Result<Nll, BigramError> {
        let mut log_likelihood = 0f64;
        let mut count = 0usize;
        let (v, mut ids) = (self.counts.size(), Vec::new());
        for w in words {
            encode_word(self.vocab(), w.as_ref(), &mut ids)?;
            for pair in ids.windows(2) {
                log_likelihood += self.log_probs[pair[0] * v + pair[1]]; // ln P[ix1, ix2]
                count += 1;
            }
        }
        if count == 0 {
            return Err(BigramError::NoBigrams);
        }
        Ok(Nll {
            log_likelihood,
            count,
            nll: -log_likelihood / count as f64,
        })
    }
    // ANCHOR_END: nll

    /// The same loss computed as the lecture's PyTorch code does: `P` in
    /// float32, `torch.log` in float32, and the log-likelihood accumulated one
    /// bigram at a time in a float32 scalar. Rounding in that long sum moves
    /// the result in the fourth decimal (2.4544 instead of 2.4546 on names.txt).
    pub fn nll_f32<S: AsRef<str>>(&self, words: &[S]) -> Result<f32, BigramError> {
        let v = self.counts.size();
        let k = self.smoothing as f32;
        let probs32: Vec<f32> = (0..v)
            .flat_map(|i| {
                let row = self.counts.row(i);
                let sum: f32 = row.iter().map(|&c| c as f32 + k).sum();
                row.iter().map(move |&c| (c as f32 + k) / sum)
            })
            .collect();
        let mut log_likelihood = 0f32;
        let mut count = 0u32;
        let mut ids = Vec::new();
        for w in words {
            encode_word(self.vocab(), w.as_ref(), &mut ids)?;
            for pair in ids.windows(2) {
                log_likelihood += probs32[pair[0] * v + pair[1]].ln();
                count += 1;
            }
        }
        if count == 0 {
            return Err(BigramError::NoBigrams);
        }
        Ok(-log_likelihood / count as f32)
    }

    /// Samples one name (see [`RowSampler::sample`]).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, max_len: usize) -> String {
        self.sampler.sample(rng, max_len)
    }

    /// Samples `n` names with [`BigramModel::sample`] (at most 100 characters each).
    pub fn sample_names<R: Rng + ?Sized>(&self, rng: &mut R, n: usize) -> Vec<String> {
        self.sampler.sample_names(rng, n)
    }

    /// The lecture's sampling loop on torch's generator (`--rng torch`), from
    /// `P` made as the lecture makes it, in float32: `P = (N + k).float()`,
    /// `P /= P.sum(1, keepdims=True)`. With seed 2147483647 and k = 1 these
    /// are the video's names.
    pub fn sample_names_torch(&self, g: &mut TorchGenerator, n: usize) -> Vec<String> {
        let v = self.counts.size();
        let k = self.smoothing as f32;
        let mut p = vec![0f32; v * v]; // (V, V), float32
        for (i, row) in p.chunks_exact_mut(v.max(1)).enumerate() {
            row.iter_mut()
                .zip(self.counts.row(i))
                .for_each(|(p, &c)| *p = c as f32 + k); // (N + k).float()
            let sum: f32 = row.iter().sum(); // P.sum(1, keepdims=True)
            row.iter_mut().for_each(|p| *p /= sum); // P /= ...
        }
        sample_names_torch(&p, self.vocab(), g, n)
    }
}

/// Draws names from a row-stochastic `(V, V)` matrix: row `i` is the
/// distribution of the character after character `i`. Shared by the counting
/// model and the neural net of chapter 2.
#[derive(Debug, Clone)]
pub struct RowSampler {
    vocab: Vocab,
    rows: Vec<WeightedIndex<f64>>,
}

impl RowSampler {
    /// A sampler over the rows of `weights` (row-major `(V, V)`, each row
    /// non-negative with a positive sum; it need not be normalised).
    pub fn new(vocab: Vocab, weights: &[f64]) -> Result<Self, BigramError> {
        let v = vocab.len();
        assert_eq!(weights.len(), v * v, "weights must be (V, V)");
        let rows = (0..v)
            .map(|i| {
                WeightedIndex::new(&weights[i * v..(i + 1) * v]).map_err(|_| {
                    BigramError::EmptyRow {
                        ch: vocab.chars()[i],
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { vocab, rows })
    }

    // ANCHOR: sample
    /// Samples one name: start at '.', draw the next character from that
    /// character's row, and stop when '.' is drawn again (or after `max_len`
    /// characters, which only a degenerate model reaches).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, max_len: usize) -> String {
        let mut out = String::new();
        let mut ix = 0;
        for _ in 0..max_len {
            ix = self.rows[ix].sample(rng); // torch.multinomial(P[ix], 1)
            if ix == 0 {
                break;
            }
            out.push(self.vocab.chars()[ix]);
        }
        out
    }
    // ANCHOR_END: sample

    /// Samples `n` names (at most [`MAX_SAMPLE_LEN`] characters each).
    pub fn sample_names<R: Rng + ?Sized>(&self, rng: &mut R, n: usize) -> Vec<String> {
        (0..n).map(|_| self.sample(rng, MAX_SAMPLE_LEN)).collect()
    }
}

// ANCHOR: normalise_rows
/// `P = N / N.sum(1, keepdim=True)` as a dfdx tensor op: the sum names the
/// axis it removes and the broadcast names the axis it puts back, so "each
/// row by its own sum" is spelled out rather than inferred from the shapes.
pub fn normalise_rows<D: Device<f32>>(
    n: Tensor<(usize, usize), f32, D>, // (V, V)
) -> Tensor<(usize, usize), f32, D> {
    let sums = n.clone().sum::<(usize,), Axis<1>>(); // (V,): row i's sum
    let sums = sums.broadcast_like::<_, Axis<1>>(n.shape()); // (V, V): along each row
    n / sums // (V, V): every row sums to 1
}
// ANCHOR_END: normalise_rows

// ANCHOR: normalise_mistake
/// The lecture's broadcasting bug, `N / N.sum(1)` without `keepdim`: the
/// (V,) sums line up with the last dimension, so cell (i, j) is divided by
/// row j's sum. In dfdx the wrong axis has to be written out.
pub fn normalise_mistake<D: Device<f32>>(
    n: Tensor<(usize, usize), f32, D>, // (V, V)
) -> Tensor<(usize, usize), f32, D> {
    let sums = n.clone().sum::<(usize,), Axis<1>>(); // (V,): row i's sum
    let sums = sums.broadcast_like::<_, Axis<0>>(n.shape()); // (V, V): down each column
    n / sums // (V, V): cell (i, j) / (row j's sum)
}
// ANCHOR_END: normalise_mistake

// ANCHOR: sample_torch
/// The lecture's sampling loop, drawn from torch's generator: start at '.',
/// `ix = torch.multinomial(p[ix], 1, replacement=True, generator=g)` until
/// '.' comes again. `p` is row-major `(V, V)` float32, as the lecture's
/// tensors are (chapters 1 and 2, `--rng torch`).
pub fn sample_names_torch(
    p: &[f32],
    vocab: &Vocab,
    g: &mut TorchGenerator,
    n: usize,
) -> Vec<String> {
    let v = vocab.len();
    assert_eq!(p.len(), v * v, "p must be (V, V)");
    (0..n)
        .map(|_| {
            let mut out = String::new();
            let mut ix = 0;
            for _ in 0..MAX_SAMPLE_LEN {
                ix = g.multinomial(&p[ix * v..(ix + 1) * v]); // torch.multinomial(p, 1, ...)
                if ix == 0 {
                    break;
                }
                out.push(vocab.chars()[ix]);
            }
            out
        })
        .collect()
}
// ANCHOR_END: sample_torch

/// The length at which [`BigramModel::sample_names`] cuts a name off.
pub const MAX_SAMPLE_LEN: usize = 100;
