//! Multi-head attention and the feed-forward layer: the first two rungs of
//! the lecture's ladder above one head.
//!
//! Introduced in chapter 6. Instead of one head of size 32, four heads of
//! size 8 run side by side, each free to look for something else (four
//! communication channels, as a group convolution splits its channels), and
//! their outputs are concatenated back to 32 channels. Then a feed-forward
//! layer lets each token think, on its own, about what it gathered.
//!
//! Sizes are compile-time `Const`s (C = n_embd, NH heads of HS channels,
//! C = NH·HS): dfdx 0.13's module visitors walk a model without an instance,
//! so a module's structure (how many heads, how many blocks) must be known
//! from its type; the presets of chapter 6 name the types.

use dfdx::nn::modules::Embedding as PositionTable;
use dfdx::nn::{Module, ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use num_traits::Float;
use rand::distributions::uniform::SampleUniform;
use rand::Rng;

use super::head::{Seq, Weights};
use super::lm::{
    dev_err, normal, uniform, Embedding, LanguageModel, Linear, LmHead, Logits, ModelError,
};
use crate::ops::{composed, Kernels};

// ANCHOR: multihead
/// Causal self-attention with NH heads of HS channels each, C = NH·HS:
/// the lecture's `MultiHeadAttention(num_heads, head_size)`, whose heads'
/// `key`, `query` and `value` maps (each (C, HS)) sit side by side here as
/// one (C, C) matrix apiece, head h in columns h·HS..(h+1)·HS.
#[derive(Debug, Clone)]
pub struct MultiHeadAttention<
    const C: usize,
    const NH: usize,
    const HS: usize,
    E: Dtype,
    D: Storage<E>,
> {
    /// (C, NH·HS): every head's key map.
    pub key: Tensor<Rank2<C, C>, E, D>,
    /// (C, NH·HS): every head's query map.
    pub query: Tensor<Rank2<C, C>, E, D>,
    /// (C, NH·HS): every head's value map.
    pub value: Tensor<Rank2<C, C>, E, D>,
}
// ANCHOR_END: multihead

impl<const C: usize, const NH: usize, const HS: usize, E, D> TensorCollection<E, D>
    for MultiHeadAttention<C, NH, HS, E, D>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = MultiHeadAttention<C, NH, HS, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        let reset = || {
            TensorOptions::reset_with(|t: &mut Tensor<Rank2<C, C>, E, D>| {
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
            |(key, query, value)| MultiHeadAttention { key, query, value },
        )
    }
}

impl<const C: usize, const NH: usize, const HS: usize, D: Kernels>
    MultiHeadAttention<C, NH, HS, f32, D>
{
    /// Heads initialised as PyTorch's `nn.Linear(C, HS, bias=False)`, head
    /// after head (key, query, value of head 0, then head 1, ...), from `rng`:
    /// the lecture's module list draws in that order.
    pub fn new<R: Rng>(dev: &D, rng: &mut R) -> Result<Self, ModelError> {
        const { assert!(C == NH * HS, "C must be NH heads times HS channels") };
        let mut maps = [
            vec![0.0f32; C * C],
            vec![0.0f32; C * C],
            vec![0.0f32; C * C],
        ];
        for h in 0..NH {
            for map in maps.iter_mut() {
                // nn.Linear(C, HS).weight is (HS, C); its transpose fills (C, HS)
                let w: Tensor<Rank2<HS, C>, f32, D> = uniform(dev, (Const, Const), C, rng)?;
                let w = w.as_vec();
                for o in 0..HS {
                    for i in 0..C {
                        map[i * C + h * HS + o] = w[o * C + i];
                    }
                }
            }
        }
        let [key, query, value] = maps;
        let tensor = |v: Vec<f32>| dev.try_tensor_from_vec(v, (Const, Const)).map_err(dev_err);
        Ok(Self {
            key: tensor(key)?,
            query: tensor(query)?,
            value: tensor(value)?,
        })
    }

    // ANCHOR: multihead_forward
    /// (B, T, C) → (B, T, C): every head attends over the past on its own
    /// HS channels; the heads' outputs, concatenated. Also each head's
    /// attention weights, (B·NH, T, T), head h of row b at b·NH + h.
    pub fn forward_with_weights<T: Tape<f32, D> + Merge<T>>(
        &self,
        x: Seq<C, D, T>, // (B, T, C)
    ) -> (Seq<C, D, T>, Weights<D>) {
        let b = x.shape().0;
        let (q, k, v) = self.split_heads(x); // (B·NH, T, HS) each
        let (out, wei) = D::causal_attention(q, k, v, (HS as f32).powf(-0.5)); // (B·NH, T, HS)
        (merge_heads::<C, NH, HS, D, T>(out, b), wei) // (B, T, C)
    }

    /// Queries, keys and values of every head: (B, T, C) → (B·NH, T, HS),
    /// x times each map, split into heads ([`Kernels::qkv_heads`]).
    pub fn split_heads<T: Tape<f32, D> + Merge<T>>(&self, x: Seq<C, D, T>) -> Qkv<HS, D, T> {
        D::qkv_heads::<C, NH, HS, T>(x, &self.query, &self.key, &self.value) // (B·NH, T, HS) each
    }
    // ANCHOR_END: multihead_forward

    /// The lecture's `MultiHeadAttention` as the video writes it, a list of
    /// heads run one after the other and
    /// `torch.cat([h(x) for h in self.heads], dim=-1)`: head h's maps are
    /// columns h·HS..(h+1)·HS of the (C, C) maps, and each head is chapter
    /// 5's attention on its own (B, T, HS). The same numbers as
    /// [`forward_batched`](Self::forward_batched) (chapter 8's EX1) and the
    /// fused kernels, in NH times as many operations.
    pub fn forward_head_by_head<T: Tape<f32, D> + Merge<T>>(
        &self,
        x: Seq<C, D, T>,
    ) -> Seq<C, D, T> {
        // ANCHOR: heads_one_by_one
        let (b, t, _) = *x.shape();
        let scale = (HS as f32).powf(-0.5);
        let mut inputs: Vec<Seq<C, D, T>> = (1..NH).map(|_| x.retaped::<T>()).collect();
        inputs.push(x); // the last head carries x's tape
        let mut heads = inputs.into_iter().enumerate().map(|(h, x)| {
            let x = x.reshape_like(&(b * t, Const::<C>)); // (B·T, C)
            let project = |x: Tensor<(usize, Const<C>), f32, D, T>,
                           w: &Tensor<Rank2<C, C>, f32, D>| {
                let w = w.retaped::<T>().slice((.., h * HS..(h + 1) * HS)); // (C, HS): head h's columns
                x.matmul(w).reshape_like(&(b, t, Const::<HS>)) // (B·T, C) @ (C, HS) -> (B, T, HS)
            };
            let q = project(x.retaped::<T>(), &self.query); // (B, T, HS)
            let k = project(x.retaped::<T>(), &self.key); // (B, T, HS)
            let v = project(x, &self.value); // (B, T, HS)
            let (out, _) = composed::causal_attention::<HS, D, T>(q, k, v, scale); // (B, T, HS): chapter 5's attention
            out.reshape_like(&(b, t, HS)) // (B, T, HS), its width a run-time size
        });
        let first = heads.next().expect("C = NH·HS, so NH > 0"); // (B, T, HS)
        let cat = heads.fold(first, |cat, head| (cat, head).concat_along(Axis::<2>)); // (B, T, h·HS)
        cat.reshape_like(&(b, t, Const::<C>)) // (B, T, C)
                                              // ANCHOR_END: heads_one_by_one
    }

    // ANCHOR: heads_batched
    /// Every head at once, in dfdx's own operations: the heads a batch
    /// dimension, (B, T, C) → (B·NH, T, HS), one attention over all of them,
    /// and back. What [`forward_with_weights`](Self::forward_with_weights)
    /// computes where a device has no fused kernels (CUDA).
    pub fn forward_batched<T: Tape<f32, D> + Merge<T>>(&self, x: Seq<C, D, T>) -> Seq<C, D, T> {
        let b = x.shape().0;
        let (q, k, v) =
            composed::qkv_heads::<C, NH, HS, D, T>(x, &self.query, &self.key, &self.value); // (B·NH, T, HS) each
        let (out, _) = composed::causal_attention(q, k, v, (HS as f32).powf(-0.5)); // (B·NH, T, HS)
        composed::merge_heads::<C, NH, HS, D, T>(out, b) // (B, T, C)
    }
    // ANCHOR_END: heads_batched
}

/// Queries, keys and values, one row per head: (B·NH, T, HS) each.
pub type Qkv<const HS: usize, D, T> = (Seq<HS, D, T>, Seq<HS, D, T>, Seq<HS, D, T>);

/// The heads' outputs side by side: (B·NH, T, HS) → (B, T, C), the lecture's
/// `torch.cat([h(x) for h in self.heads], dim=-1)` ([`Kernels::merge_heads`]).
pub fn merge_heads<
    const C: usize,
    const NH: usize,
    const HS: usize,
    D: Kernels,
    T: Tape<f32, D>,
>(
    out: Seq<HS, D, T>, // (B·NH, T, HS)
    b: usize,
) -> Seq<C, D, T> {
    D::merge_heads::<C, NH, HS, T>(out, b) // (B, T, C)
}

/// The rungs of chapter 6 train through this: the lecture's list of heads,
/// [`forward_head_by_head`](MultiHeadAttention::forward_head_by_head).
/// (Chapter 7's blocks run every head at once instead.)
impl<const C: usize, const NH: usize, const HS: usize, D: Kernels, T: Tape<f32, D> + Merge<T>>
    Module<Seq<C, D, T>> for MultiHeadAttention<C, NH, HS, f32, D>
{
    type Output = Seq<C, D, T>;
    type Error = D::Err;

    /// (B, T, C) → (B, T, C).
    fn try_forward(&self, x: Seq<C, D, T>) -> Result<Self::Output, D::Err> {
        Ok(self.forward_head_by_head(x))
    }
}

/// `nn.Linear(I, O)` initialised as PyTorch does (weight, then bias, both
/// U(±1/sqrt(I))), from `rng`.
pub fn linear<const I: usize, const O: usize, D: Kernels, R: Rng>(
    dev: &D,
    rng: &mut R,
) -> Result<Linear<I, O, f32, D>, ModelError> {
    Ok(Linear {
        weight: uniform(dev, (Const, Const), I, rng)?, // (O, I)
        bias: uniform(dev, (Const,), I, rng)?,         // (O,)
    })
}

// ANCHOR: embeddings
/// What every ladder model starts with: `nn.Embedding(vocab, C)` for the
/// tokens and `nn.Embedding(BLOCK, C)` for the positions, added.
#[derive(Debug, Clone)]
pub struct Embeddings<const C: usize, const BLOCK: usize, E: Dtype, D: Storage<E>> {
    /// (V, C).
    pub token_embedding_table: Embedding<Const<C>, E, D>,
    /// (BLOCK, C).
    pub position_embedding_table: PositionTable<BLOCK, C, E, D>,
}
// ANCHOR_END: embeddings

impl<const C: usize, const BLOCK: usize, E, D> TensorCollection<E, D> for Embeddings<C, BLOCK, E, D>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = Embeddings<C, BLOCK, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
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
            ),
            |(token_embedding_table, position_embedding_table)| Embeddings {
                token_embedding_table,
                position_embedding_table,
            },
        )
    }
}

impl<const C: usize, const BLOCK: usize, D: Kernels> Embeddings<C, BLOCK, f32, D> {
    /// Both tables drawn as PyTorch's `nn.Embedding`s, N(0, 1), tokens first.
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
        })
    }

    /// Vocabulary size (V).
    pub fn vocab(&self) -> usize {
        self.token_embedding_table.vocab()
    }

    // ANCHOR: embed
    /// (B, T) → (B, T, C) for T up to BLOCK: the lecture's `tok_emb + pos_emb`.
    pub fn forward<T: Tape<f32, D>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>, // (B, T)
    ) -> Result<Seq<C, D, T>, ModelError> {
        let (b, t) = *idx.shape();
        if t > BLOCK {
            return Err(ModelError::ContextTooLong { t, block: BLOCK });
        }
        let dev = idx.device().clone();
        let tok_emb = self
            .token_embedding_table
            .try_forward(idx)
            .map_err(dev_err)?; // (B, T, C)
        let arange = dev
            .try_tensor_from_vec((0..t).collect(), (t,))
            .map_err(dev_err)?; // (T,): torch.arange(T)
        let pos_emb = self
            .position_embedding_table
            .weight
            .retaped::<T>()
            .gather(arange); // (T, C)
        Ok(tok_emb + pos_emb.broadcast_like::<_, Axis<0>>(&(b, t, Const::<C>))) // (B, T, C)
    }
    // ANCHOR_END: embed
}

// ANCHOR: multihead_model
/// Rung "multihead": chapter 5's model with NH heads of HS channels in place
/// of one head of C: embeddings, `sa_heads`, `lm_head`.
#[derive(Debug, Clone)]
pub struct MultiHeadLanguageModel<
    const C: usize,
    const NH: usize,
    const HS: usize,
    const BLOCK: usize,
    E: Dtype,
    D: Storage<E>,
> {
    /// (B, T) → (B, T, C): tokens and positions.
    pub embeddings: Embeddings<C, BLOCK, E, D>,
    /// (B, T, C) → (B, T, C).
    pub sa_heads: MultiHeadAttention<C, NH, HS, E, D>,
    /// (B, T, C) → (B, T, V).
    pub lm_head: LmHead<C, E, D>,
}
// ANCHOR_END: multihead_model

// ANCHOR: ffwd_model
/// Rung "ffwd": then a feed-forward layer per token, `Linear(C, C)` and
/// ReLU: the heads gather (communication), the layer thinks (computation).
#[derive(Debug, Clone)]
pub struct FeedForwardLanguageModel<
    const C: usize,
    const NH: usize,
    const HS: usize,
    const BLOCK: usize,
    E: Dtype,
    D: Storage<E>,
> {
    /// (B, T) → (B, T, C): tokens and positions.
    pub embeddings: Embeddings<C, BLOCK, E, D>,
    /// (B, T, C) → (B, T, C).
    pub sa_heads: MultiHeadAttention<C, NH, HS, E, D>,
    /// (B, T, C) → (B, T, C), then ReLU.
    pub ffwd: Linear<C, C, E, D>,
    /// (B, T, C) → (B, T, V).
    pub lm_head: LmHead<C, E, D>,
}
// ANCHOR_END: ffwd_model

/// The lecture's sizes: n_embd 32, 4 heads of 8, block 8.
pub type LectureMultiHead<D> = MultiHeadLanguageModel<32, 4, 8, 8, f32, D>;

/// The lecture's sizes: n_embd 32, 4 heads of 8, feed-forward 32 → 32, block 8.
pub type LectureFeedForward<D> = FeedForwardLanguageModel<32, 4, 8, 8, f32, D>;

impl<const C: usize, const NH: usize, const HS: usize, const BLOCK: usize, E, D>
    TensorCollection<E, D> for MultiHeadLanguageModel<C, NH, HS, BLOCK, E, D>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = MultiHeadLanguageModel<C, NH, HS, BLOCK, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("embeddings", |s| &s.embeddings, |s| &mut s.embeddings),
                Self::module("sa_heads", |s| &s.sa_heads, |s| &mut s.sa_heads),
                Self::module("lm_head", |s| &s.lm_head, |s| &mut s.lm_head),
            ),
            |(embeddings, sa_heads, lm_head)| MultiHeadLanguageModel {
                embeddings,
                sa_heads,
                lm_head,
            },
        )
    }
}

impl<const C: usize, const NH: usize, const HS: usize, const BLOCK: usize, E, D>
    TensorCollection<E, D> for FeedForwardLanguageModel<C, NH, HS, BLOCK, E, D>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = FeedForwardLanguageModel<C, NH, HS, BLOCK, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("embeddings", |s| &s.embeddings, |s| &mut s.embeddings),
                Self::module("sa_heads", |s| &s.sa_heads, |s| &mut s.sa_heads),
                Self::module("ffwd", |s| &s.ffwd, |s| &mut s.ffwd),
                Self::module("lm_head", |s| &s.lm_head, |s| &mut s.lm_head),
            ),
            |(embeddings, sa_heads, ffwd, lm_head)| FeedForwardLanguageModel {
                embeddings,
                sa_heads,
                ffwd,
                lm_head,
            },
        )
    }
}

impl<const C: usize, const NH: usize, const HS: usize, const BLOCK: usize, D: Kernels>
    MultiHeadLanguageModel<C, NH, HS, BLOCK, f32, D>
{
    /// A model for `vocab` tokens, drawn from `rng` in the lecture's order
    /// (embeddings, heads, lm_head) with PyTorch's default initialisation.
    pub fn new<R: Rng>(dev: &D, vocab: usize, rng: &mut R) -> Result<Self, ModelError> {
        Ok(Self {
            embeddings: Embeddings::new(dev, vocab, rng)?,
            sa_heads: MultiHeadAttention::new(dev, rng)?,
            lm_head: LmHead::new(dev, vocab, rng)?,
        })
    }

    // ANCHOR: multihead_model_forward
    /// (B, T) → (B, T, V): the forward the rung trains.
    pub fn forward<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>, // (B, T)
    ) -> Result<Logits<D, T>, ModelError> {
        let x = self.embeddings.forward(idx)?; // (B, T, C)
        let x = self.sa_heads.try_forward(x).map_err(dev_err)?; // (B, T, C): the heads, one by one
        self.lm_head.try_forward(x).map_err(dev_err) // (B, T, V)
    }
    // ANCHOR_END: multihead_model_forward

    /// (B, T) → (B, T, V) with every head at once, and each head's attention
    /// weights, (B·NH, T, T), for the figures.
    pub fn forward_with_weights<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>, // (B, T)
    ) -> Result<(Logits<D, T>, Weights<D>), ModelError> {
        let x = self.embeddings.forward(idx)?; // (B, T, C)
        let (x, wei) = self.sa_heads.forward_with_weights(x); // (B, T, C), (B·NH, T, T)
        let logits = self.lm_head.try_forward(x).map_err(dev_err)?; // (B, T, V)
        Ok((logits, wei))
    }
}

impl<const C: usize, const NH: usize, const HS: usize, const BLOCK: usize, D: Kernels>
    FeedForwardLanguageModel<C, NH, HS, BLOCK, f32, D>
{
    /// A model for `vocab` tokens, drawn from `rng` in the lecture's order
    /// (embeddings, heads, feed-forward, lm_head).
    pub fn new<R: Rng>(dev: &D, vocab: usize, rng: &mut R) -> Result<Self, ModelError> {
        Ok(Self {
            embeddings: Embeddings::new(dev, vocab, rng)?,
            sa_heads: MultiHeadAttention::new(dev, rng)?,
            ffwd: linear(dev, rng)?,
            lm_head: LmHead::new(dev, vocab, rng)?,
        })
    }

    // ANCHOR: ffwd_model_forward
    /// (B, T) → (B, T, V): gather, then think, then predict.
    pub fn forward<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>, // (B, T)
    ) -> Result<Logits<D, T>, ModelError> {
        let x = self.embeddings.forward(idx)?; // (B, T, C)
        let x = self.sa_heads.try_forward(x).map_err(dev_err)?; // (B, T, C): communication
        let x = self.ffwd.try_forward(x).map_err(dev_err)?.relu(); // (B, T, C): computation
        self.lm_head.try_forward(x).map_err(dev_err) // (B, T, V)
    }
    // ANCHOR_END: ffwd_model_forward
}

impl<const C: usize, const NH: usize, const HS: usize, const BLOCK: usize, D: Kernels>
    LanguageModel<D> for MultiHeadLanguageModel<C, NH, HS, BLOCK, f32, D>
{
    const KIND: &'static str = "multihead";

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
        attention_floats(batch, block, C, NH, self.vocab(), 1)
    }

    fn logits<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>,
    ) -> Result<Logits<D, T>, ModelError> {
        self.forward(idx)
    }
}

impl<const C: usize, const NH: usize, const HS: usize, const BLOCK: usize, D: Kernels>
    LanguageModel<D> for FeedForwardLanguageModel<C, NH, HS, BLOCK, f32, D>
{
    const KIND: &'static str = "ffwd";

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
        attention_floats(batch, block, C, NH, self.vocab(), 1)
    }

    fn logits<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>,
    ) -> Result<Logits<D, T>, ModelError> {
        self.forward(idx)
    }
}

/// About how many floats a training step of `layers` attention layers keeps
/// alive: per layer the activations of C channels and their gradients (about
/// 24 copies with the feed-forward's 4·C), each head's (T, T) weights; then
/// the logits.
pub fn attention_floats(
    batch: usize,
    block: usize,
    c: usize,
    heads: usize,
    vocab: usize,
    layers: usize,
) -> u128 {
    let (b, t) = (batch as u128, block as u128);
    let per_layer = 24 * c as u128 + 8 * heads as u128 * t;
    b * t * (layers as u128 * per_layer + 8 * vocab as u128)
}
