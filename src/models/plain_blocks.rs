//! The lecture's first blocks: chapter 6's heads and feed-forward layer as a
//! block, three of them one after another, with no residual pathway. The
//! rung "plain-blocks" of the ladder.
//!
//! Introduced in chapter 7. In the video, stacking the blocks this way,
//! `x = self.sa(x)` then `x = self.ffwd(x)`, is the step before residual
//! connections: the network is deeper but hard to optimise. Each block is
//! chapter 6's communication (the list of heads, concatenated, no projection)
//! and computation (`Linear(C, C)` and ReLU); [`super::gpt`]'s blocks add
//! the residual pathway, the projections and LayerNorm.

use dfdx::nn::modules::Repeated;
use dfdx::nn::{Module, ModuleVisitor, TensorCollection};
use dfdx::prelude::*;
use num_traits::Float;
use rand::distributions::uniform::SampleUniform;
use rand::Rng;

use super::head::Seq;
use super::lm::{dev_err, LanguageModel, Linear, LmHead, Logits, ModelError};
use super::multihead::{attention_floats, linear, Embeddings, MultiHeadAttention};
use crate::ops::Kernels;

#[derive(Debug, Clone)]
// ANCHOR: plain_block
/// gpt.py's first `Block`: chapter 6's heads, then its feed-forward layer.
pub struct PlainBlock<const C: usize, const NH: usize, const HS: usize, E: Dtype, D: Storage<E>> {
    /// (B, T, C) → (B, T, C): NH heads of HS channels, concatenated (no `proj` yet).
    pub sa: MultiHeadAttention<C, NH, HS, E, D>,
    /// (B, T, C) → (B, T, C), then ReLU: `Linear(C, C)`, as in chapter 6.
    pub ffwd: Linear<C, C, E, D>,
}
// ANCHOR_END: plain_block

impl<const C: usize, const NH: usize, const HS: usize, E, D> TensorCollection<E, D>
    for PlainBlock<C, NH, HS, E, D>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = PlainBlock<C, NH, HS, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("sa", |s| &s.sa, |s| &mut s.sa),
                Self::module("ffwd", |s| &s.ffwd, |s| &mut s.ffwd),
            ),
            |(sa, ffwd)| PlainBlock { sa, ffwd },
        )
    }
}

impl<const C: usize, const NH: usize, const HS: usize, D: Kernels> PlainBlock<C, NH, HS, f32, D> {
    /// A block drawn from `rng` in the lecture's order (heads, feed-forward),
    /// PyTorch's default initialisation.
    pub fn new<R: Rng>(dev: &D, rng: &mut R) -> Result<Self, ModelError> {
        Ok(Self {
            sa: MultiHeadAttention::new(dev, rng)?,
            ffwd: linear(dev, rng)?,
        })
    }

    // ANCHOR: plain_block_forward
    /// (B, T, C) → (B, T, C): each layer replaces x, nothing is added back.
    pub fn forward<T: Tape<f32, D> + Merge<T>>(
        &self,
        x: Seq<C, D, T>, // (B, T, C)
    ) -> Result<Seq<C, D, T>, ModelError> {
        let x = self.sa.try_forward(x).map_err(dev_err)?; // (B, T, C): x = self.sa(x)
        Ok(self.ffwd.try_forward(x).map_err(dev_err)?.relu()) // (B, T, C): x = self.ffwd(x)
    }
    // ANCHOR_END: plain_block_forward
}

/// The rung "plain-blocks": embeddings, L plain blocks one after another,
/// `lm_head`.
#[derive(Debug, Clone)]
pub struct PlainBlocksLanguageModel<
    const C: usize,
    const NH: usize,
    const HS: usize,
    const L: usize,
    const BLOCK: usize,
    E: Dtype,
    D: Storage<E>,
> {
    /// (B, T) → (B, T, C): tokens and positions.
    pub embeddings: Embeddings<C, BLOCK, E, D>,
    /// L blocks: (B, T, C) → (B, T, C).
    pub blocks: Repeated<PlainBlock<C, NH, HS, E, D>, L>,
    /// (B, T, C) → (B, T, V).
    pub lm_head: LmHead<C, E, D>,
}

/// The lecture's sizes: n_embd 32, 3 blocks of 4 heads of 8, feed-forward
/// 32 → 32, block 8.
pub type LecturePlainBlocks<D> = PlainBlocksLanguageModel<32, 4, 8, 3, 8, f32, D>;

impl<
        const C: usize,
        const NH: usize,
        const HS: usize,
        const L: usize,
        const BLOCK: usize,
        E,
        D,
    > TensorCollection<E, D> for PlainBlocksLanguageModel<C, NH, HS, L, BLOCK, E, D>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = PlainBlocksLanguageModel<C, NH, HS, L, BLOCK, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("embeddings", |s| &s.embeddings, |s| &mut s.embeddings),
                Self::module("blocks", |s| &s.blocks, |s| &mut s.blocks),
                Self::module("lm_head", |s| &s.lm_head, |s| &mut s.lm_head),
            ),
            |(embeddings, blocks, lm_head)| PlainBlocksLanguageModel {
                embeddings,
                blocks,
                lm_head,
            },
        )
    }
}

impl<
        const C: usize,
        const NH: usize,
        const HS: usize,
        const L: usize,
        const BLOCK: usize,
        D: Kernels,
    > PlainBlocksLanguageModel<C, NH, HS, L, BLOCK, f32, D>
{
    /// A model for `vocab` tokens, drawn from `rng` in the lecture's order
    /// (embeddings, blocks, lm_head), PyTorch's default initialisation.
    pub fn new<R: Rng>(dev: &D, vocab: usize, rng: &mut R) -> Result<Self, ModelError> {
        let embeddings = Embeddings::new(dev, vocab, rng)?;
        let modules = (0..L)
            .map(|_| PlainBlock::new(dev, rng))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            embeddings,
            blocks: Repeated { modules },
            lm_head: LmHead::new(dev, vocab, rng)?,
        })
    }

    /// (B, T) → (B, T, V): the embeddings, every block in turn, `lm_head`.
    pub fn forward<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>, // (B, T)
    ) -> Result<Logits<D, T>, ModelError> {
        let mut x = self.embeddings.forward(idx)?; // (B, T, C)
        for block in &self.blocks.modules {
            x = block.forward(x)?; // (B, T, C)
        }
        self.lm_head.try_forward(x).map_err(dev_err) // (B, T, V)
    }
}

impl<
        const C: usize,
        const NH: usize,
        const HS: usize,
        const L: usize,
        const BLOCK: usize,
        D: Kernels,
    > LanguageModel<D> for PlainBlocksLanguageModel<C, NH, HS, L, BLOCK, f32, D>
{
    const KIND: &'static str = "plain-blocks";

    fn init<R: Rng>(dev: &D, vocab: usize, rng: &mut R) -> Result<Self, ModelError> {
        Self::new(dev, vocab, rng)
    }

    fn device(&self) -> &D {
        self.lm_head.bias.device()
    }

    fn vocab(&self) -> usize {
        self.embeddings.vocab()
    }

    fn block(&self) -> Option<usize> {
        Some(BLOCK)
    }

    fn step_floats(&self, batch: usize, block: usize) -> u128 {
        attention_floats(batch, block, C, NH, self.vocab(), L)
    }

    fn logits<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>,
    ) -> Result<Logits<D, T>, ModelError> {
        self.forward(idx)
    }
}
