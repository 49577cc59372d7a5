//! One head of self-attention, and a language model built on it.
//!
//! Introduced in chapter 5. Chapter 4's causal average gives every past token
//! the same weight. A head lets each token choose: every token emits a query
//! ("what I am looking for") and a key ("what I contain"); their dot
//! products are the affinities, masked so that the future stays hidden,
//! scaled by `head_size^-0.5`, softmaxed into weights, and used to average
//! the tokens' values ("what I will tell you"). The language model adds
//! position embeddings (attention by itself has no notion of order) and a
//! linear map to the vocabulary.

use dfdx::nn::modules::Embedding as PositionTable;
use dfdx::nn::{Module, ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use num_traits::Float;
use rand::distributions::uniform::SampleUniform;
use rand::Rng;

use super::lm::{dev_err, normal, uniform, Embedding, LanguageModel, LmHead, Logits, ModelError};
use crate::ops::{self, Kernels};
use crate::torch_rng::Randn;

/// A batch of sequences of N-vectors: (B, T, N).
pub type Seq<const N: usize, D, T = NoneTape> = Tensor<(usize, usize, Const<N>), f32, D, T>;

/// Attention weights: (B, T, T), each row a distribution over the past.
pub type Weights<D> = Tensor<(usize, usize, usize), f32, D>;

// ANCHOR: head
/// One head of causal self-attention: C input channels, H = head size.
/// `nn.Linear(C, H, bias=False)` three times; here the (C, H) matrices
/// themselves, so that `x @ key` reads as the lecture's `key(x)`.
#[derive(Debug, Clone)]
pub struct Head<const C: usize, const H: usize, E: Dtype, D: Storage<E>> {
    /// (C, H): what each token contains.
    pub key: Tensor<Rank2<C, H>, E, D>,
    /// (C, H): what each token is looking for.
    pub query: Tensor<Rank2<C, H>, E, D>,
    /// (C, H): what each token will tell.
    pub value: Tensor<Rank2<C, H>, E, D>,
}
// ANCHOR_END: head

impl<const C: usize, const H: usize, E: Dtype + Float + SampleUniform, D: Device<E>>
    TensorCollection<E, D> for Head<C, H, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = Head<C, H, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        let reset = || {
            TensorOptions::reset_with(|t: &mut Tensor<Rank2<C, H>, E, D>| {
                let b: E = E::ONE / E::from_usize(C).unwrap_or(E::ONE).sqrt();
                t.try_fill_with_distr(rand_distr::Uniform::new(-b, b))
            })
        };
        visitor.visit_fields(
            (
                Self::tensor("key", |s| &s.key, |s| &mut s.key, reset()),
                Self::tensor("query", |s| &s.query, |s| &mut s.query, reset()),
                Self::tensor("value", |s| &s.value, |s| &mut s.value, reset()),
            ),
            |(key, query, value)| Head { key, query, value },
        )
    }
}

impl<const C: usize, const H: usize, D: Kernels> Head<C, H, f32, D> {
    /// A head initialised as PyTorch's `nn.Linear(C, H, bias=False)`, from `rng`.
    pub fn new<R: Rng>(dev: &D, rng: &mut R) -> Result<Self, ModelError> {
        Ok(Self {
            key: uniform(dev, (Const, Const), C, rng)?,
            query: uniform(dev, (Const, Const), C, rng)?,
            value: uniform(dev, (Const, Const), C, rng)?,
        })
    }

    // ANCHOR: head_forward
    /// (B, T, C) → (B, T, H), and the attention weights (B, T, T).
    pub fn forward_with_weights<T: Tape<f32, D> + Merge<T>>(
        &self,
        x: Tensor<(usize, usize, Const<C>), f32, D, T>, // (B, T, C)
    ) -> (Seq<H, D, T>, Weights<D>) {
        let (b, t, _) = *x.shape();
        let x = x.reshape_like(&(b * t, Const::<C>)); // (B·T, C): every token of every row
        let project = |w: &Tensor<Rank2<C, H>, f32, D>, x: Tensor<(usize, Const<C>), f32, D, T>| {
            x.matmul(w.retaped::<T>()).reshape_like(&(b, t, Const::<H>)) // (B·T, C) @ (C, H) -> (B, T, H)
        };
        let k = project(&self.key, x.retaped::<T>()); // (B, T, H): key(x)
        let q = project(&self.query, x.retaped::<T>()); // (B, T, H): query(x)
        let v = project(&self.value, x); // (B, T, H): value(x)
        ops::causal_attention(q, k, v, (H as f32).powf(-0.5)) // softmax(q @ kᵀ · H^-0.5, masked) @ v, and wei
    }
    // ANCHOR_END: head_forward
}

impl<const C: usize, const H: usize, D: Kernels, T: Tape<f32, D> + Merge<T>>
    Module<Tensor<(usize, usize, Const<C>), f32, D, T>> for Head<C, H, f32, D>
{
    type Output = Seq<H, D, T>;
    type Error = D::Err;

    /// (B, T, C) → (B, T, H).
    fn try_forward(
        &self,
        x: Tensor<(usize, usize, Const<C>), f32, D, T>,
    ) -> Result<Self::Output, D::Err> {
        Ok(self.forward_with_weights(x).0)
    }
}

// ANCHOR: model
/// The lecture's model with one head: token embedding (V, C) + position
/// embedding (BLOCK, C), one head of size H, and a linear map to V logits.
#[derive(Debug, Clone)]
pub struct HeadLanguageModel<
    const C: usize,
    const H: usize,
    const BLOCK: usize,
    E: Dtype,
    D: Storage<E>,
> {
    /// (V, C): each token's embedding.
    pub token_embedding_table: Embedding<Const<C>, E, D>,
    /// (BLOCK, C): each position's embedding.
    pub position_embedding_table: PositionTable<BLOCK, C, E, D>,
    /// The head: (B, T, C) → (B, T, H).
    pub sa_head: Head<C, H, E, D>,
    /// (B, T, H) → (B, T, V).
    pub lm_head: LmHead<H, E, D>,
}
// ANCHOR_END: model

/// The lecture's sizes for chapter 5: n_embd 32, head size 32, block size 8
/// (and the vocabulary of whatever text it trains on).
pub type LectureHead<D> = HeadLanguageModel<32, 32, 8, f32, D>;

impl<const C: usize, const H: usize, const BLOCK: usize, E: Dtype, D: Device<E>>
    HeadLanguageModel<C, H, BLOCK, E, D>
{
    /// The sizes this type fixes: (n_embd, head size, block size).
    pub const SIZES: (usize, usize, usize) = (C, H, BLOCK);
}

impl<
        const C: usize,
        const H: usize,
        const BLOCK: usize,
        E: Dtype + Float + SampleUniform,
        D: Device<E>,
    > TensorCollection<E, D> for HeadLanguageModel<C, H, BLOCK, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = HeadLanguageModel<C, H, BLOCK, E2, D2>;

    fn iter_tensors<Vis: ModuleVisitor<Self, E, D>>(
        visitor: &mut Vis,
    ) -> Result<Option<Self::To<Vis::E2, Vis::D2>>, Vis::Err> {
        visitor.visit_fields(
            (
                Self::module(
                    "token_embedding_table",
                    |s| &s.token_embedding_table,
                    |s| &mut s.token_embedding_table,
                ),
                Self::module(
                    "position_embedding_table",
                    |s| &s.position_embedding_table,
                    |s| &mut s.position_embedding_table,
                ),
                Self::module("sa_head", |s| &s.sa_head, |s| &mut s.sa_head),
                Self::module("lm_head", |s| &s.lm_head, |s| &mut s.lm_head),
            ),
            |(token_embedding_table, position_embedding_table, sa_head, lm_head)| {
                HeadLanguageModel {
                    token_embedding_table,
                    position_embedding_table,
                    sa_head,
                    lm_head,
                }
            },
        )
    }
}

impl<const C: usize, const H: usize, const BLOCK: usize, D: Kernels>
    HeadLanguageModel<C, H, BLOCK, f32, D>
{
    /// A model for `vocab` tokens, initialised as PyTorch initialises the
    /// lecture's: embeddings from N(0, 1), linear maps from U(±1/sqrt(fan_in)),
    /// all from `rng`.
    pub fn new<R: Rng>(dev: &D, vocab: usize, rng: &mut R) -> Result<Self, ModelError> {
        if vocab == 0 {
            return Err(ModelError::EmptyVocab);
        }
        Ok(Self {
            token_embedding_table: Embedding {
                weight: normal(dev, (vocab, Const::<C>), 1.0, rng)?, // (V, C)
            },
            position_embedding_table: PositionTable {
                weight: normal(dev, (Const::<BLOCK>, Const::<C>), 1.0, rng)?, // (BLOCK, C)
            },
            sa_head: Head::new(dev, rng)?,
            lm_head: LmHead::new(dev, vocab, rng)?,
        })
    }

    /// The logits of the next token at every position: (B, T) → (B, T, V),
    /// for T up to BLOCK; also the head's attention weights (B, T, T).
    pub fn forward_with_weights<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>, // (B, T)
    ) -> Result<(Logits<D, T>, Weights<D>), ModelError> {
        // ANCHOR: forward
        let (b, t) = *idx.shape();
        if t > BLOCK {
            return Err(ModelError::ContextTooLong { t, block: BLOCK });
        }
        let dev = idx.device().clone();
        let tok_emb = self
            .token_embedding_table
            .try_forward(idx)
            .map_err(dev_err)?; // (B, T, C)
        let positions = dev
            .try_tensor_from_vec((0..t).collect(), (t,))
            .map_err(dev_err)?; // (T,): torch.arange(T)
        let pos_emb = self
            .position_embedding_table
            .weight
            .retaped::<T>()
            .gather(positions); // (T, C)
        let x = tok_emb + pos_emb.broadcast_like::<_, Axis<0>>(&(b, t, Const::<C>)); // (B, T, C)
        let (x, wei) = self.sa_head.forward_with_weights(x); // (B, T, H), (B, T, T)
        let logits = self.lm_head.try_forward(x).map_err(dev_err)?; // (B, T, V)
        Ok((logits, wei))
        // ANCHOR_END: forward
    }
}

impl<
        const C: usize,
        const H: usize,
        const BLOCK: usize,
        D: Kernels,
        T: Tape<f32, D> + Merge<T>,
    > Module<Tensor<(usize, usize), usize, D, T>> for HeadLanguageModel<C, H, BLOCK, f32, D>
{
    type Output = Logits<D, T>;
    type Error = ModelError;

    /// The logits (B, T, V); an error for a context longer than BLOCK.
    fn try_forward(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>,
    ) -> Result<Self::Output, ModelError> {
        Ok(self.forward_with_weights(idx)?.0)
    }
}

impl<const C: usize, const H: usize, const BLOCK: usize, D: Kernels> LanguageModel<D>
    for HeadLanguageModel<C, H, BLOCK, f32, D>
{
    const KIND: &'static str = "head";

    fn init<R: Rng>(dev: &D, vocab: usize, rng: &mut R) -> Result<Self, ModelError> {
        Self::new(dev, vocab, rng)
    }

    fn device(&self) -> &D {
        self.lm_head.bias.device()
    }

    fn vocab(&self) -> usize {
        self.token_embedding_table.vocab()
    }

    fn block(&self) -> Option<usize> {
        Some(BLOCK)
    }

    fn step_floats(&self, batch: usize, block: usize) -> u128 {
        let (b, t) = (batch as u128, block as u128);
        // x, q, k, v, out and their gradients; the (T, T) weights; the logits
        b * t * (16 * C as u128 + 12 * H as u128 + 8 * self.vocab() as u128 + 8 * t)
    }

    fn logits<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>,
    ) -> Result<Logits<D, T>, ModelError> {
        self.try_forward(idx)
    }
}

/// Variances of the lecture's scaling experiment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalingStats {
    /// Variance of k's entries (about 1).
    pub k: f32,
    /// Variance of q's entries (about 1).
    pub q: f32,
    /// Variance of q·kᵀ without scaling (about head_size).
    pub raw: f32,
    /// Variance of q·kᵀ · head_size^-0.5 (about 1).
    pub scaled: f32,
}

fn variance(v: &[f32]) -> f32 {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0)) as f32
}

/// Why the scale `head_size^-0.5`: with unit-variance k and q of shape
/// (B, T, head_size), the entries of q·kᵀ sum head_size products, so their
/// variance is about head_size; scaled, about 1.
pub fn scaling_stats<D: Device<f32>, R: Randn + ?Sized>(
    dev: &D,
    rng: &mut R,
    (b, t, head_size): (usize, usize, usize),
) -> ScalingStats {
    // ANCHOR: scaling
    let mut randn = || super::attention_trick::randn(dev, (b, t, head_size), rng);
    let (k, q) = (randn(), randn()); // (B, T, hs) each
    let raw = q.clone().matmul(k.clone().permute::<_, Axes3<0, 2, 1>>()); // (B, T, T)
    let scaled = raw.clone() * (head_size as f32).powf(-0.5); // (B, T, T)
    ScalingStats {
        k: variance(&k.as_vec()),
        q: variance(&q.as_vec()),
        raw: variance(&raw.as_vec()),
        scaled: variance(&scaled.as_vec()),
    }
    // ANCHOR_END: scaling
}

/// Softmax of a vector, and of the same vector times `factor`: large values
/// make softmax approach one-hot (the lecture's `[0.1, -0.2, 0.3, -0.2, 0.5]`,
/// times 8).
pub fn softmax_sharpening(values: &[f32], factor: f32) -> (Vec<f32>, Vec<f32>) {
    let softmax = |f: f32| {
        let max = values
            .iter()
            .map(|v| v * f)
            .fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = values.iter().map(|v| (v * f - max).exp()).collect();
        let sum: f32 = e.iter().sum();
        e.into_iter().map(|x| x / sum).collect::<Vec<f32>>()
    };
    (softmax(1.0), softmax(factor))
}
