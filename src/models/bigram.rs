//! The bigram language model of "Let's build GPT": an embedding table that
//! reads off the next token's logits.
//!
//! Introduced in chapter 3 (tiny Shakespeare). Row `i` of the (V, V) token
//! embedding table holds the logits of the token after token `i`: the same
//! model as chapter 2's `W`, now looked up with an [`Embedding`] (the lookup
//! path of chapter 2), trained on batches of blocks with AdamW, and sampled
//! to generate text. V is the text's vocabulary, known at run time (65 for
//! tiny Shakespeare).

use dfdx::nn::{Module, ModuleVisitor, TensorCollection};
use dfdx::prelude::*;
use num_traits::Float;
use rand::distributions::uniform::SampleUniform;
use rand::Rng;

use super::lm::{dev_err, normal, Embedding, LanguageModel, Logits, ModelError};
use crate::ops::Kernels;

// ANCHOR: model
/// `BigramLanguageModel` of the lecture: `logits = token_embedding_table(idx)`.
#[derive(Debug, Clone)]
pub struct BigramLanguageModel<E: Dtype, D: Storage<E>> {
    /// (V, V): row `i` holds the logits of the token after token `i`.
    pub token_embedding_table: Embedding<usize, E, D>,
}
// ANCHOR_END: model

impl<E: Dtype + Float + SampleUniform, D: Device<E>> TensorCollection<E, D>
    for BigramLanguageModel<E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = BigramLanguageModel<E2, D2>;

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

impl<D: Kernels> BigramLanguageModel<f32, D> {
    /// A model for `vocab` tokens whose table is drawn from N(0, std²) with
    /// `rng`. PyTorch's `nn.Embedding` uses std 1 (the lecture's initial
    /// loss, about 4.9); a small std starts near the uniform guess, −ln(1/V).
    pub fn new<R: Rng>(dev: &D, vocab: usize, std: f32, rng: &mut R) -> Result<Self, ModelError> {
        if vocab == 0 {
            return Err(ModelError::EmptyVocab);
        }
        let weight = normal(dev, (vocab, vocab), std, rng)?; // (V, V)
        Ok(Self {
            token_embedding_table: Embedding { weight },
        })
    }

    /// A model with the given row-major (V, V) table.
    pub fn from_table(dev: &D, vocab: usize, table: Vec<f32>) -> Result<Self, ModelError> {
        let weight = dev
            .try_tensor_from_vec(table, (vocab, vocab))
            .map_err(dev_err)?; // (V, V)
        Ok(Self {
            token_embedding_table: Embedding { weight },
        })
    }
}

impl<D: Kernels, T: Tape<f32, D>> Module<Tensor<(usize, usize), usize, D, T>>
    for BigramLanguageModel<f32, D>
{
    type Output = Logits<D, T>;
    type Error = D::Err;

    /// The logits of the next token at every position: (B, T) → (B, T, V).
    fn try_forward(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>,
    ) -> Result<Self::Output, D::Err> {
        self.token_embedding_table.try_forward(idx) // (B, T, V): row idx[b, t] of the table
    }
}

impl<D: Kernels> LanguageModel<D> for BigramLanguageModel<f32, D> {
    const KIND: &'static str = "bigram";

    fn init<R: Rng>(dev: &D, vocab: usize, rng: &mut R) -> Result<Self, ModelError> {
        Self::new(dev, vocab, 1.0, rng)
    }

    fn device(&self) -> &D {
        self.token_embedding_table.weight.device()
    }

    fn vocab(&self) -> usize {
        self.token_embedding_table.vocab()
    }

    /// The logits at the last position depend on the last token only.
    fn context_needed(&self) -> Option<usize> {
        Some(1)
    }

    // ANCHOR: forward
    /// The lecture's `forward`: `logits = self.token_embedding_table(idx)`.
    fn logits<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>, // (B, T)
    ) -> Result<Logits<D, T>, ModelError> {
        let logits = self.token_embedding_table.try_forward(idx); // (B, T, V): row idx[b, t]
        logits.map_err(dev_err)
    }
    // ANCHOR_END: forward
}
