//! The bigram language model of "Let's build GPT": an embedding table that
//! reads off the next token's logits.
//!
//! Introduced in chapter 3 (tiny Shakespeare). Row `i` of the (V, V) token
//! embedding table holds the logits of the token after token `i`: the same
//! model as chapter 2's `W`, now looked up with `Embedding` (the lookup path
//! of chapter 2), trained on batches of blocks with AdamW, and sampled to
//! generate text. Generic over the dfdx device and the vocabulary size `V`
//! (65 for tiny Shakespeare: [`SHAKESPEARE_VOCAB`]).

use dfdx::nn::modules::Embedding;
use dfdx::nn::{Module, ModuleVisitor, TensorCollection};
use dfdx::prelude::*;
use num_traits::Float;
use rand::distributions::{uniform::SampleUniform, WeightedIndex};
use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::fused::Fused;
use crate::text::{Corpus, TokenBatch};

/// The vocabulary size of tiny Shakespeare.
pub const SHAKESPEARE_VOCAB: usize = 65;

/// Errors of the language models.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model's vocabulary size does not match the data's.
    #[error("the model has a vocabulary of {expected} tokens, but the data has {got}")]
    VocabSize {
        /// `V` of the model.
        expected: usize,
        /// The data's vocabulary size.
        got: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {size} tokens")]
    TokenId {
        /// The id.
        id: usize,
        /// The vocabulary size.
        size: usize,
    },
    /// The prompt is empty (generation needs at least one token to start from).
    #[error("the context to generate from is empty")]
    EmptyContext,
    /// The rows of a batch of contexts differ in length.
    #[error("the contexts to generate from must all have the same length")]
    RaggedContext,
    /// The initial weights' spread is not a finite number >= 0.
    #[error("the initial standard deviation must be a finite number >= 0, got {0}")]
    BadInitStd(f32),
    /// A context longer than the model's position table.
    #[error("a context of {t} tokens is longer than the model's block size {block}")]
    ContextTooLong {
        /// The context length.
        t: usize,
        /// The longest the model takes.
        block: usize,
    },
    /// The device reported an error (allocation, CUDA).
    #[error("device error: {0}")]
    Device(String),
}

/// Checks that `corpus` has the `expected` tokens a model was built for
/// (a token id past the model's table would otherwise index out of it).
pub fn check_vocab(expected: usize, corpus: &Corpus) -> Result<(), ModelError> {
    let got = corpus.vocab.len();
    if got != expected {
        return Err(ModelError::VocabSize { expected, got });
    }
    Ok(())
}

pub(crate) fn dev_err<E: std::fmt::Debug>(e: E) -> ModelError {
    ModelError::Device(format!("{e:?}"))
}

// ANCHOR: model
/// `BigramLanguageModel` of the lecture: `logits = token_embedding_table(idx)`.
#[derive(Debug, Clone)]
pub struct BigramLanguageModel<const V: usize, E: Dtype, D: Storage<E>> {
    /// (V, V): row `i` holds the logits of the token after token `i`.
    pub token_embedding_table: Embedding<V, V, E, D>,
}
// ANCHOR_END: model

impl<const V: usize, E: Dtype + Float + SampleUniform, D: Device<E>> TensorCollection<E, D>
    for BigramLanguageModel<V, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = BigramLanguageModel<V, E2, D2>;

    fn iter_tensors<Vis: ModuleVisitor<Self, E, D>>(
        visitor: &mut Vis,
    ) -> Result<Option<Self::To<Vis::E2, Vis::D2>>, Vis::Err> {
        visitor.visit_fields(
            Self::module(
                "token_embedding_table",
                |s| &s.token_embedding_table,
                |s| &mut s.token_embedding_table,
            ),
            |token_embedding_table| BigramLanguageModel {
                token_embedding_table,
            },
        )
    }
}

/// Fills a (V, V) table with N(0, std²) draws from `rng`, row by row.
pub(crate) fn normal_table<const R: usize, const C: usize, D: Device<f32>, G: Rng>(
    dev: &D,
    rng: &mut G,
    std: f32,
) -> Result<Tensor<Rank2<R, C>, f32, D>, ModelError> {
    if !(std.is_finite() && std >= 0.0) {
        return Err(ModelError::BadInitStd(std));
    }
    let normal = Normal::new(0.0, std).map_err(|_| ModelError::BadInitStd(std))?;
    let values: Vec<f32> = (0..R * C).map(|_| normal.sample(rng)).collect();
    dev.try_tensor_from_vec(values, (Const::<R>, Const::<C>))
        .map_err(dev_err)
}

impl<const V: usize, D: Fused> BigramLanguageModel<V, f32, D> {
    /// A model whose table is drawn from N(0, std²) with `rng`. PyTorch's
    /// `nn.Embedding` uses std 1 (the lecture's initial loss, about 4.9);
    /// a small std starts near the uniform guess, −ln(1/V).
    pub fn new<R: Rng>(dev: &D, rng: &mut R, std: f32) -> Result<Self, ModelError> {
        let weight = normal_table::<V, V, D, R>(dev, rng, std)?; // (V, V)
        Ok(Self {
            token_embedding_table: Embedding { weight },
        })
    }

    // ANCHOR: forward
    /// The logits of the next token at every position: (B, T) → (B, T, V).
    pub fn forward<T: Tape<f32, D>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>, // (B, T)
    ) -> Tensor<(usize, usize, Const<V>), f32, D, T> {
        self.token_embedding_table.forward(idx) // (B, T, V): row idx[b, t] of the table
    }
    // ANCHOR_END: forward

    /// The average cross-entropy of a batch: forward, then the loss of
    /// [`cross_entropy`] against the targets.
    pub fn loss<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>, // (B, T)
        targets: &Tensor<(usize,), usize, D>,     // (B·T,)
    ) -> Tensor<Rank0, f32, D, T> {
        cross_entropy(self.forward(idx), targets) // ()
    }

    /// Generates `max_new_tokens` tokens after each row of `idx` (each row a
    /// context of the same length), sampling from the softmax of the last
    /// position's logits with `rng`. The bigram only looks at the last token;
    /// the whole context is fed anyway, the interface later models share.
    pub fn generate<R: Rng>(
        &self,
        idx: &[Vec<usize>],
        max_new_tokens: usize,
        rng: &mut R,
    ) -> Result<Vec<Vec<usize>>, ModelError> {
        generate_with(idx, max_new_tokens, V, None, rng, |flat, b, t| {
            let dev = self.token_embedding_table.weight.device().clone();
            let idx = dev.try_tensor_from_vec(flat, (b, t)).map_err(dev_err)?; // (B, T)
            Ok(self.forward(idx).as_vec()) // (B, T, V)
        })
    }
}

// ANCHOR: cross_entropy
/// `F.cross_entropy(logits.view(B*T, C), targets.view(B*T))`: the mean
/// negative log-likelihood of index targets, over every position of every row.
pub fn cross_entropy<const V: usize, D: Fused, T: Tape<f32, D> + Merge<T>>(
    logits: Tensor<(usize, usize, Const<V>), f32, D, T>, // (B, T, V)
    targets: &Tensor<(usize,), usize, D>,                // (B·T,)
) -> Tensor<Rank0, f32, D, T> {
    let (b, t, _) = *logits.shape();
    let logits = logits.reshape_like(&(b * t, Const::<V>)); // (B·T, V)
    D::index_nll(logits, targets) // (): log_softmax, select, mean, negate; fused on the CPU
}
// ANCHOR_END: cross_entropy

// ANCHOR: generate
/// The generation loop every language model shares: feed the contexts
/// (cropped to the last `crop` tokens if given), take the logits of the last
/// position, softmax, sample one token per row, append, repeat.
/// `forward(flat (B·T), B, T)` returns the logits (B, T, V) flattened.
pub fn generate_with<R: Rng>(
    idx: &[Vec<usize>],
    max_new_tokens: usize,
    vocab: usize,
    crop: Option<usize>,
    rng: &mut R,
    mut forward: impl FnMut(Vec<usize>, usize, usize) -> Result<Vec<f32>, ModelError>,
) -> Result<Vec<Vec<usize>>, ModelError> {
    let mut rows: Vec<Vec<usize>> = idx.to_vec();
    let len = rows.first().map_or(0, Vec::len);
    if len == 0 {
        return Err(ModelError::EmptyContext);
    }
    if rows.iter().any(|r| r.len() != len) {
        return Err(ModelError::RaggedContext);
    }
    if let Some(&id) = rows.iter().flatten().find(|&&id| id >= vocab) {
        return Err(ModelError::TokenId { id, size: vocab });
    }
    for _ in 0..max_new_tokens {
        let total = rows[0].len();
        let start = crop.map_or(0, |c| total.saturating_sub(c)); // idx[:, -block_size:]
        let t = total - start;
        let flat: Vec<usize> = rows
            .iter()
            .flat_map(|r| r[start..].iter().copied())
            .collect();
        let logits = forward(flat, rows.len(), t)?; // (B, T, V)
        for (b, row) in rows.iter_mut().enumerate() {
            let last = &logits[(b * t + t - 1) * vocab..(b * t + t) * vocab]; // (V,)
            let max = last.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let weights: Vec<f64> = last.iter().map(|&l| ((l - max) as f64).exp()).collect();
            let dist = WeightedIndex::new(&weights).map_err(|e| dev_err(format!("{e}")))?;
            row.push(dist.sample(rng)); // softmax, then torch.multinomial
        }
    }
    Ok(rows)
}
// ANCHOR_END: generate

/// Inputs (B, T) and flattened targets (B·T,) on a device.
pub type TokenTensors<D> = (Tensor<(usize, usize), usize, D>, Tensor<(usize,), usize, D>);

/// A batch of token ids moved to a device: inputs (B, T) and flattened
/// targets (B·T,).
pub fn batch_tensors<D: Device<f32>>(
    dev: &D,
    batch: &TokenBatch,
) -> Result<TokenTensors<D>, ModelError> {
    let (b, t) = (batch.batch_size, batch.block_size);
    let x = dev
        .try_tensor_from_vec(batch.x.clone(), (b, t))
        .map_err(dev_err)?; // (B, T)
    let y = dev
        .try_tensor_from_vec(batch.y.clone(), (b * t,))
        .map_err(dev_err)?; // (B·T,)
    Ok((x, y))
}
