//! Blocks of communication and computation, with the two ideas that make deep
//! networks train: residual connections and LayerNorm. The rungs "residual",
//! "blocks" and "layernorm" of the lecture's ladder, and the GPT of chapter 8.
//!
//! Introduced in chapter 7. A block is multi-head attention then a
//! feed-forward layer, each added back onto the residual pathway through a
//! projection (`x = x + proj(sa(x))`, `x = x + ffwd(x)`); the gradient of the
//! loss flows straight down that pathway to the embeddings, however many
//! blocks there are. Pre-norm LayerNorm (before attention and feed-forward,
//! as in the lecture, not after as in the paper) normalises each token's row.
//!
//! The norm is a type parameter: `()` (dfdx's identity module) for the rung
//! without it, [`LayerNorm1D`] for the rung with it, so both rungs are the
//! same code.

use dfdx::nn::modules::{LayerNorm1D, Repeated};
use dfdx::nn::{Module, ModuleVisitor, TensorCollection, ZeroGrads};
use dfdx::prelude::*;
use num_traits::Float;
use rand::distributions::uniform::SampleUniform;
use rand::Rng;
use std::marker::PhantomData;

use super::head::Seq;
use super::lm::{dev_err, LanguageModel, Linear, LmHead, Logits, ModelError};
use super::multihead::{attention_floats, linear, Embeddings, MultiHeadAttention};
use crate::ops::composed::{again, Dropping};
use crate::ops::rng::MaskRng;
use crate::ops::{Activation, Kernels};

/// The tape of training.
type Train<D> = OwnedTape<f32, D>;

/// `nn.Dropout(p)` in training, from the run's one generator (chapter 7):
/// the composed op, which the kernels' defaults use.
pub use crate::ops::composed::dropout;

/// What can stand where a block normalises: `()` (no norm) or
/// [`LayerNorm1D`] (gamma 1, beta 0, eps 1e-5, as PyTorch's `nn.LayerNorm`).
pub trait Norm<const C: usize, D: Kernels>:
    TensorCollection<f32, D> + Clone + std::fmt::Debug
{
    /// The name of the rung it makes ("blocks", "layernorm").
    const NAME: &'static str;
    /// A fresh norm (nothing random: LayerNorm starts at gamma 1, beta 0).
    fn new(dev: &D) -> Result<Self, ModelError>;
    /// Normalises each token's row: (B, T, C) → (B, T, C).
    fn norm<T: Tape<f32, D>>(&self, x: Seq<C, D, T>) -> Seq<C, D, T>;
}

impl<const C: usize, D: Kernels> Norm<C, D> for () {
    const NAME: &'static str = "blocks";
    fn new(_: &D) -> Result<Self, ModelError> {
        Ok(())
    }
    fn norm<T: Tape<f32, D>>(&self, x: Seq<C, D, T>) -> Seq<C, D, T> {
        x // (B, T, C): no norm
    }
}

impl<const C: usize, D: Kernels> Norm<C, D> for LayerNorm1D<C, f32, D> {
    const NAME: &'static str = "layernorm";
    fn new(dev: &D) -> Result<Self, ModelError> {
        Ok(LayerNorm1D {
            gamma: dev.try_ones().map_err(dev_err)?,
            beta: dev.try_zeros().map_err(dev_err)?,
            epsilon: 1e-5,
        })
    }
    fn norm<T: Tape<f32, D>>(&self, x: Seq<C, D, T>) -> Seq<C, D, T> {
        let (gamma, beta) = (&self.gamma, &self.beta);
        D::layer_norm(x, gamma, beta, self.epsilon as f32) // (B, T, C): each row to mean 0, variance 1, then gamma, beta
    }
}

// ANCHOR: block
/// A Transformer block, gpt.py's `Block`: communication (`sa`), then
/// computation (`ffwd`), each a residual branch behind its norm.
#[derive(Debug, Clone)]
pub struct Block<
    const C: usize,
    const NH: usize,
    const HS: usize,
    const F: usize,
    N,
    E: Dtype,
    D: Storage<E>,
    A = ReLU,
> {
    /// NH heads of HS channels, then their projection: (B, T, C) → (B, T, C).
    pub sa: SelfAttention<C, NH, HS, E, D>,
    /// (B, T, C) → (B, T, F) → (B, T, C).
    pub ffwd: FeedForward<C, F, E, D, A>,
    /// Before attention.
    pub ln1: N,
    /// Before the feed-forward.
    pub ln2: N,
}

/// gpt.py's `MultiHeadAttention`: chapter 6's heads, then `proj`.
#[derive(Debug, Clone)]
pub struct SelfAttention<const C: usize, const NH: usize, const HS: usize, E: Dtype, D: Storage<E>>
{
    /// NH heads of HS channels, side by side: (B, T, C) → (B, T, C).
    pub heads: MultiHeadAttention<C, NH, HS, E, D>,
    /// (B, T, C) → (B, T, C).
    pub proj: Linear<C, C, E, D>,
}

/// gpt.py's `FeedFoward`, F = 4·C wide inside; `A` is its activation.
#[derive(Debug, Clone)]
pub struct FeedForward<const C: usize, const F: usize, E: Dtype, D: Storage<E>, A = ReLU> {
    /// `nn.Sequential(nn.Linear(C, F), nn.ReLU(), nn.Linear(F, C))`.
    pub net: (Linear<C, F, E, D>, A, Linear<F, C, E, D>),
}
// ANCHOR_END: block

// The block's weights keep the names they have always had in checkpoints
// (`sa.key`, `proj.weight`, `ffwd.0.weight`): the visitor names each
// field's path.
impl<const C: usize, const NH: usize, const HS: usize, const F: usize, N, E, D, A>
    TensorCollection<E, D> for Block<C, NH, HS, F, N, E, D, A>
where
    N: TensorCollection<E, D>,
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
    A: Activation,
{
    type To<E2: Dtype, D2: Device<E2>> = Block<C, NH, HS, F, N::To<E2, D2>, E2, D2, A>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("ln1", |s| &s.ln1, |s| &mut s.ln1),
                Self::module("sa", |s| &s.sa.heads, |s| &mut s.sa.heads),
                Self::module("proj", |s| &s.sa.proj, |s| &mut s.sa.proj),
                Self::module("ln2", |s| &s.ln2, |s| &mut s.ln2),
                Self::module("ffwd", |s| &s.ffwd.net, |s| &mut s.ffwd.net),
            ),
            |(ln1, heads, proj, ln2, net)| Block {
                sa: SelfAttention { heads, proj },
                ffwd: FeedForward { net },
                ln1,
                ln2,
            },
        )
    }
}

impl<const C: usize, const NH: usize, const HS: usize, const F: usize, N, D, A>
    Block<C, NH, HS, F, N, f32, D, A>
where
    N: Norm<C, D>,
    D: Kernels,
    A: Activation,
{
    /// A block drawn from `rng` in the lecture's order (heads, projection,
    /// feed-forward), PyTorch's default initialisation.
    pub fn new<R: Rng>(dev: &D, rng: &mut R) -> Result<Self, ModelError> {
        let heads = MultiHeadAttention::new(dev, rng)?;
        let proj = linear(dev, rng)?;
        let net = (linear(dev, rng)?, A::default(), linear(dev, rng)?);
        Ok(Self {
            sa: SelfAttention { heads, proj },
            ffwd: FeedForward { net },
            ln1: N::new(dev)?,
            ln2: N::new(dev)?,
        })
    }

    /// (B, T, C) → (B, T, C), gpt.py's `Block.forward`. In training
    /// (`dropout` set) each branch drops where gpt.py's does.
    // ANCHOR: block_forward
    pub fn forward<T: Tape<f32, D> + Merge<T>>(
        &self,
        x: Seq<C, D, T>, // (B, T, C)
        dropout: &mut Dropping,
    ) -> Seq<C, D, T> {
        let x = x.retaped::<T>() + self.sa.forward(self.ln1.norm(x), dropout); // (B, T, C): x + sa(ln1(x))
        x.retaped::<T>() + self.ffwd.forward(self.ln2.norm(x), dropout) // (B, T, C): x + ffwd(ln2(x))
    }
    // ANCHOR_END: block_forward
}

impl<const C: usize, const NH: usize, const HS: usize, const F: usize, D, A>
    Block<C, NH, HS, F, (), f32, D, A>
where
    D: Kernels,
    A: Activation,
{
    /// (B, T, C) → (B, T, C): the residual rung's block as gpt.py first
    /// writes it, before LayerNorm. [`Block::forward`] with `()` for the
    /// norm (what the rung runs) computes exactly this; the tests check it.
    pub fn forward_residual<T: Tape<f32, D> + Merge<T>>(
        &self,
        x: Seq<C, D, T>, // (B, T, C)
        dropout: &mut Dropping,
    ) -> Seq<C, D, T> {
        // ANCHOR: residual_forward
        let x = x.retaped::<T>() + self.sa.forward(x, dropout); // (B, T, C): x = x + self.sa(x)
        let x = x.retaped::<T>() + self.ffwd.forward(x, dropout); // (B, T, C): x = x + self.ffwd(x)
                                                                  // ANCHOR_END: residual_forward
        x
    }
}

// ANCHOR: dispatch
impl<const C: usize, const NH: usize, const HS: usize, D: Kernels>
    SelfAttention<C, NH, HS, f32, D>
{
    /// (B, T, C) → (B, T, C): every head's attention (its weights dropped
    /// in training), the heads side by side, `proj`, dropout. The plain
    /// computation is [`composed::self_attention`](crate::ops::composed::self_attention);
    /// the CPU runs it as one fused kernel.
    pub fn forward<T: Tape<f32, D> + Merge<T>>(
        &self,
        x: Seq<C, D, T>,
        dropout: &mut Dropping,
    ) -> Seq<C, D, T> {
        let (h, proj) = (&self.heads, &self.proj);
        let qkv = [&h.query, &h.key, &h.value];
        D::self_attention::<C, NH, HS, T>(x, qkv, &proj.weight, &proj.bias, again(dropout))
    }
}

impl<const C: usize, const F: usize, D: Kernels, A: Activation> FeedForward<C, F, f32, D, A> {
    /// (B, T, C) → (B, T, C): `net`, then dropout in training. The plain
    /// computation is [`composed::feed_forward`](crate::ops::composed::feed_forward);
    /// the CPU runs it as one fused kernel.
    pub fn forward<T: Tape<f32, D> + Merge<T>>(
        &self,
        x: Seq<C, D, T>,
        dropout: &mut Dropping,
    ) -> Seq<C, D, T> {
        let (l1, l2) = (&self.net.0, &self.net.2);
        let (first, second) = ((&l1.weight, &l1.bias), (&l2.weight, &l2.bias));
        D::feed_forward::<C, F, A, T>(x, first, second, again(dropout))
    }
}
// ANCHOR_END: dispatch

impl<const C: usize, const NH: usize, const HS: usize, const F: usize, N, D, A, T>
    Module<Seq<C, D, T>> for Block<C, NH, HS, F, N, f32, D, A>
where
    N: Norm<C, D>,
    D: Kernels,
    A: Activation,
    T: Tape<f32, D> + Merge<T>,
{
    type Output = Seq<C, D, T>;
    type Error = D::Err;

    /// (B, T, C) → (B, T, C), nothing dropped.
    fn try_forward(&self, x: Seq<C, D, T>) -> Result<Self::Output, D::Err> {
        Ok(self.forward(x, &mut None))
    }
}

// ANCHOR: gpt
/// The lecture's GPT: embeddings, L blocks, a final norm, `lm_head`. With
/// `N = ()` it is the rung "blocks", with `LayerNorm1D` the rung "layernorm".
#[derive(Debug, Clone)]
pub struct Gpt<
    const C: usize,
    const NH: usize,
    const HS: usize,
    const F: usize,
    const L: usize,
    const BLOCK: usize,
    N,
    E: Dtype,
    D: Storage<E>,
    P: Variant = Ladder,
> {
    /// (B, T) → (B, T, C): tokens and positions.
    pub embeddings: Embeddings<C, BLOCK, E, D>,
    /// L blocks, one after another (their activation is the variant's).
    pub blocks: Repeated<Block<C, NH, HS, F, N, E, D, P::Act>, L>,
    /// The final norm, before `lm_head`.
    pub ln_f: N,
    /// (B, T, C) → (B, T, V).
    pub lm_head: LmHead<C, E, D>,
    /// Which variant this is: its name, initialisation and activation (no weights).
    pub variant: PhantomData<P>,
}
// ANCHOR_END: gpt

/// What a GPT type is called and how it starts: a rung of the ladder
/// (chapter 7, named by its norm, PyTorch's default initialisation) or a
/// model of chapter 8 (its preset in [`crate::presets`]).
pub trait Variant: Copy + Clone + Default + std::fmt::Debug + Send + Sync + 'static {
    /// The model kind's name; `None` takes the norm's ("blocks",
    /// "layernorm").
    const NAME: Option<&'static str>;
    /// gpt.py's `_init_weights`: every linear map's and embedding's weights
    /// drawn from N(0, 0.02), every bias 0 (LayerNorm keeps gamma 1, beta 0).
    const GPT_INIT: bool;
    /// The feed-forward's activation: the lecture's ReLU, or GELU (EX4).
    type Act: Activation;
}

/// The ladder's rungs (chapter 7): named by their norm.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ladder;

impl Variant for Ladder {
    const NAME: Option<&'static str> = None;
    const GPT_INIT: bool = false;
    type Act = ReLU;
}

macro_rules! variant {
    ($(#[$doc:meta])* $ty:ident, $name:literal) => {
        variant!($(#[$doc])* $ty, $name, ReLU);
    };
    ($(#[$doc:meta])* $ty:ident, $name:literal, $act:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $ty;

        impl Variant for $ty {
            const NAME: Option<&'static str> = Some($name);
            const GPT_INIT: bool = true;
            type Act = $act;
        }
    };
}

variant!(
    /// Chapter 8's `small` preset: the ladder's model scaled to train in
    /// about a minute on a laptop's CPU.
    Small,
    "gpt-small"
);
variant!(
    /// Chapter 8's `cpu` preset: nanoGPT's configuration for a laptop.
    Laptop,
    "gpt-cpu"
);
variant!(
    /// Chapter 8's `lecture` preset: gpt.py's full configuration.
    Lecture,
    "gpt-lecture"
);
variant!(
    /// Chapter 8's exercise EX4: the `small` preset with GELU in place of
    /// ReLU.
    SmallGelu,
    "gpt-small-gelu",
    FastGeLU
);

// ANCHOR: presets
/// `small`: n_embd 64, 4 heads of 16, 4 layers, block 32.
pub type GptSmall<D> = Gpt<64, 4, 16, 256, 4, 32, LayerNorm1D<64, f32, D>, f32, D, Small>;

/// `cpu`: nanoGPT's laptop run, n_embd 128, 4 heads of 32, 4 layers, block 64.
pub type GptCpu<D> = Gpt<128, 4, 32, 512, 4, 64, LayerNorm1D<128, f32, D>, f32, D, Laptop>;

/// `lecture`: gpt.py, n_embd 384, 6 heads of 64, 6 layers, block 256.
pub type GptLecture<D> = Gpt<384, 6, 64, 1536, 6, 256, LayerNorm1D<384, f32, D>, f32, D, Lecture>;
// ANCHOR_END: presets

// ANCHOR: small_gelu
/// EX4's model: [`GptSmall`]'s sizes, GELU in every feed-forward layer.
pub type GptSmallGelu<D> = Gpt<64, 4, 16, 256, 4, 32, LayerNorm1D<64, f32, D>, f32, D, SmallGelu>;
// ANCHOR_END: small_gelu

/// The sizes a GPT's type fixes: what chapter 8 counts its parameters from
/// by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// n_embd (C).
    pub embd: usize,
    /// Heads per block (NH).
    pub heads: usize,
    /// Channels per head (HS = C / NH).
    pub head_size: usize,
    /// The feed-forward layer's inner width (F = 4·C).
    pub ffwd: usize,
    /// Blocks (L).
    pub layers: usize,
    /// The longest context (the position table's rows).
    pub block: usize,
}

impl<
        const C: usize,
        const NH: usize,
        const HS: usize,
        const F: usize,
        const L: usize,
        const BLOCK: usize,
        N,
        E: Dtype,
        D: Storage<E>,
        P: Variant,
    > Gpt<C, NH, HS, F, L, BLOCK, N, E, D, P>
{
    /// The sizes this type fixes.
    pub const SIZES: Sizes = Sizes {
        embd: C,
        heads: NH,
        head_size: HS,
        ffwd: F,
        layers: L,
        block: BLOCK,
    };
}

impl Sizes {
    // ANCHOR: params_by_hand
    /// The parameters of a GPT of these sizes (with LayerNorm) for a
    /// vocabulary of `v` characters, counted by hand.
    pub fn params(&self, v: usize) -> usize {
        let (c, f) = (self.embd, self.ffwd);
        let block = 2 * c // ln1: gamma and beta
            + 3 * c * c // key, query, value: every head's (C, HS) map side by side
            + c * c + c // proj: weight and bias
            + 2 * c // ln2
            + c * f + f // ffwd.0: Linear(C, F)
            + f * c + c; // ffwd.2: Linear(F, C)
        v * c // token_embedding_table
            + self.block * c // position_embedding_table
            + self.layers * block
            + 2 * c // ln_f
            + c * v + v // lm_head: Linear(C, V)
    }
    // ANCHOR_END: params_by_hand

    /// Random numbers dropout draws in one training step of `batch`
    /// sequences of the full block: in every block, one per attention weight
    /// (B·NH·T·T) and one per output of the projection and of the
    /// feed-forward layer (B·T·C each), as gpt.py's three `nn.Dropout`s.
    pub fn dropout_draws(&self, batch: usize) -> usize {
        let (c, nh, l, t) = (self.embd, self.heads, self.layers, self.block);
        l * (batch * nh * t * t + 2 * batch * t * c)
    }

    /// [`params`](Self::params) written out with these sizes' numbers.
    pub fn params_sum(&self, v: usize) -> String {
        let (c, f, l, t) = (self.embd, self.ffwd, self.layers, self.block);
        let count = self.params(v).to_string();
        let mut digits = String::new();
        for (i, d) in count.chars().enumerate() {
            if i > 0 && (count.len() - i).is_multiple_of(3) {
                digits.push(',');
            }
            digits.push(d);
        }
        format!(
            "{v}·{c} + {t}·{c} + {l}·(2·{c} + 3·{c}² + ({c}² + {c}) + 2·{c} + ({c}·{f} + {f}) + ({f}·{c} + {c})) + 2·{c} + ({c}·{v} + {v}) = {digits}"
        )
    }
}

// ANCHOR: rung_types
/// The rung "residual": n_embd 32, 4 heads of 8, feed-forward 32 → 32 → 32, 3 blocks, block 8.
pub type LectureResidual<D> = Gpt<32, 4, 8, 32, 3, 8, (), f32, D, Residual>;
/// The rung "blocks": the feed-forward 4 × 32 = 128 wide inside.
pub type LectureBlocks<D> = Gpt<32, 4, 8, 128, 3, 8, (), f32, D>;
/// The rung "layernorm": pre-norm LayerNorm in every block and before `lm_head`.
pub type LectureLayerNorm<D> = Gpt<32, 4, 8, 128, 3, 8, LayerNorm1D<32, f32, D>, f32, D>;
// ANCHOR_END: rung_types

/// The rung "residual" (chapter 7): a ladder rung, named for itself because
/// its norm, `()`, is the "blocks" rung's too.
#[derive(Debug, Clone, Copy, Default)]
pub struct Residual;

impl Variant for Residual {
    const NAME: Option<&'static str> = Some("residual");
    const GPT_INIT: bool = false;
    type Act = ReLU;
}

impl<
        const C: usize,
        const NH: usize,
        const HS: usize,
        const F: usize,
        const L: usize,
        const BLOCK: usize,
        N,
        E,
        D,
        P: Variant,
    > TensorCollection<E, D> for Gpt<C, NH, HS, F, L, BLOCK, N, E, D, P>
where
    N: TensorCollection<E, D>,
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = Gpt<C, NH, HS, F, L, BLOCK, N::To<E2, D2>, E2, D2, P>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("embeddings", |s| &s.embeddings, |s| &mut s.embeddings),
                Self::module("blocks", |s| &s.blocks, |s| &mut s.blocks),
                Self::module("ln_f", |s| &s.ln_f, |s| &mut s.ln_f),
                Self::module("lm_head", |s| &s.lm_head, |s| &mut s.lm_head),
            ),
            |(embeddings, blocks, ln_f, lm_head)| Gpt {
                embeddings,
                blocks,
                ln_f,
                lm_head,
                variant: PhantomData,
            },
        )
    }
}

impl<
        const C: usize,
        const NH: usize,
        const HS: usize,
        const F: usize,
        const L: usize,
        const BLOCK: usize,
        N,
        D,
        P: Variant,
    > Gpt<C, NH, HS, F, L, BLOCK, N, f32, D, P>
where
    N: Norm<C, D>,
    D: Kernels,
{
    /// A model for `vocab` tokens, drawn from `rng` in the lecture's order
    /// (embeddings, blocks, lm_head), PyTorch's default initialisation; then,
    /// for chapter 8's presets, gpt.py's `_init_weights` ([`init_weights`](Self::init_weights)).
    pub fn new<R: Rng>(dev: &D, vocab: usize, rng: &mut R) -> Result<Self, ModelError> {
        let embeddings = Embeddings::new(dev, vocab, rng)?;
        let modules = (0..L)
            .map(|_| Block::new(dev, rng))
            .collect::<Result<Vec<_>, _>>()?;
        let mut model = Self {
            embeddings,
            blocks: Repeated { modules },
            ln_f: N::new(dev)?,
            lm_head: LmHead::new(dev, vocab, rng)?,
            variant: PhantomData,
        };
        if P::GPT_INIT {
            model.init_weights(rng)?;
        }
        Ok(model)
    }

    // ANCHOR: gpt_forward
    /// (B, T) → (B, T, V), gpt.py's `GPTLanguageModel.forward`; in
    /// training (`dropout` set) every block drops.
    pub fn forward<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>, // (B, T)
        dropout: &mut Dropping,
    ) -> Result<Logits<D, T>, ModelError> {
        let mut x = self.embeddings.forward(idx)?; // (B, T, C): tok_emb + pos_emb
        for block in &self.blocks.modules {
            x = block.forward(x, dropout); // (B, T, C)
        }
        let x = self.ln_f.norm(x); // (B, T, C)
        self.lm_head.try_forward(x).map_err(dev_err) // (B, T, V)
    }
    // ANCHOR_END: gpt_forward

    // ANCHOR: gpt_init
    /// gpt.py's `_init_weights`: every `nn.Linear`'s and `nn.Embedding`'s
    /// weight drawn from N(0, 0.02), every bias set to 0, LayerNorm left at
    /// gamma 1, beta 0. Draws from `rng` in the model's order.
    pub fn init_weights<R: Rng>(&mut self, rng: &mut R) -> Result<(), ModelError> {
        normal_(&mut self.embeddings.token_embedding_table.weight, rng)?;
        normal_(&mut self.embeddings.position_embedding_table.weight, rng)?;
        for block in &mut self.blocks.modules {
            let heads = &mut block.sa.heads;
            for w in [&mut heads.key, &mut heads.query, &mut heads.value] {
                normal_(w, rng)?; // every head's nn.Linear(C, HS, bias=False)
            }
            let proj = &mut block.sa.proj;
            normal_(&mut proj.weight, rng)?;
            zeros_(&mut proj.bias)?;
            let (first, second) = (&mut block.ffwd.net.0, &mut block.ffwd.net.2);
            normal_(&mut first.weight, rng)?;
            zeros_(&mut first.bias)?;
            normal_(&mut second.weight, rng)?;
            zeros_(&mut second.bias)?;
        }
        normal_(&mut self.lm_head.weight, rng)?;
        zeros_(&mut self.lm_head.bias)
    }
    // ANCHOR_END: gpt_init
}

/// Chapter 7's measurements of one batch through a stack: the norm of the
/// loss's gradient at each layer, and the spread of what each block sees.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DepthProfile {
    /// ‖∂loss/∂W‖ for the token embedding, then each block's query map
    /// (bottom block first), then `lm_head`.
    pub grad_norms: Vec<f32>,
    /// The standard deviation of each block's attention input (after its
    /// norm), bottom block first.
    pub input_stds: Vec<f32>,
}

impl<
        const C: usize,
        const NH: usize,
        const HS: usize,
        const F: usize,
        const L: usize,
        const BLOCK: usize,
        N,
        D,
        P: Variant,
    > Gpt<C, NH, HS, F, L, BLOCK, N, f32, D, P>
where
    N: Norm<C, D>,
    D: Kernels,
    P::Act: Module<Seq<F, D, Train<D>>, Output = Seq<F, D, Train<D>>, Error = D::Err>,
{
    /// One forward and backward pass of `idx` against `targets`, with the
    /// residual pathway (`x = x + block(x)`) or without it (`x = block(x)`,
    /// the same weights): the gradient's norm at every layer and the spread
    /// of every block's input.
    pub fn depth_profile(
        &self,
        idx: Tensor<(usize, usize), usize, D>,
        targets: &Tensor<(usize,), usize, D>,
        residual: bool,
    ) -> Result<DepthProfile, ModelError> {
        let std = |v: Vec<f32>| {
            let n = v.len().max(1) as f32;
            let mean = v.iter().sum::<f32>() / n;
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n).sqrt()
        };
        let mut input_stds = Vec::new();
        let tape = self.try_alloc_grads().map_err(dev_err)?; // a gradient for every weight
        let mut x = self.embeddings.forward(idx.traced(tape))?; // (B, T, C)

        // A branch's input: a copy of the stream (with a residual pathway to
        // add back onto) or the stream itself, its tape and all (without).
        let branch = |x: Seq<C, D, Train<D>>| match residual {
            true => (Some(x.retaped()), x),
            false => (None, x),
        };
        let join = |stream: Option<Seq<C, D, Train<D>>>, out| match stream {
            Some(x) => x + out, // x + block(x)
            None => out,        // block(x)
        };
        // ANCHOR: depth_profile
        for block in &self.blocks.modules {
            let (stream, a) = branch(x); // (B, T, C): a copy of x to add back (None without), the branch input
            let a = block.ln1.norm(a); // (B, T, C)
            input_stds.push(std(a.as_vec()));
            let a = block.sa.heads.try_forward(a).map_err(dev_err)?; // (B, T, C)
            let a = block.sa.proj.try_forward(a).map_err(dev_err)?; // (B, T, C)
            let h = join(stream, a); // (B, T, C)
            let (stream, f) = branch(h); // (B, T, C): a copy of h to add back (None without), the branch input
            let f = block.ln2.norm(f); // (B, T, C)
            let f = block.ffwd.net.try_forward(f).map_err(dev_err)?; // (B, T, C)
            x = join(stream, f); // (B, T, C)
        }
        // ANCHOR_END: depth_profile
        let x = self.ln_f.norm(x); // (B, T, C)
        let logits = self.lm_head.try_forward(x).map_err(dev_err)?; // (B, T, V)
        let grads = super::lm::cross_entropy(logits, targets).backward();
        // summed in f64: squares of entries near 1e-23 underflow f32
        let norm = |g: Vec<f32>| g.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt() as f32;
        let mut grad_norms = vec![norm(
            grads
                .get(&self.embeddings.token_embedding_table.weight)
                .as_vec(),
        )];
        for block in &self.blocks.modules {
            grad_norms.push(norm(grads.get(&block.sa.heads.query).as_vec()));
        }
        grad_norms.push(norm(grads.get(&self.lm_head.weight).as_vec()));
        Ok(DepthProfile {
            grad_norms,
            input_stds,
        })
    }
}

/// A deep stack for chapter 7's measurements: 12 of the ladder's blocks,
/// without norms.
pub type DeepBlocks<D> = Gpt<32, 4, 8, 128, 12, 8, (), f32, D>;

/// [`DeepBlocks`] with pre-norm LayerNorm.
pub type DeepLayerNorm<D> = Gpt<32, 4, 8, 128, 12, 8, LayerNorm1D<32, f32, D>, f32, D>;

impl<
        const C: usize,
        const NH: usize,
        const HS: usize,
        const F: usize,
        const L: usize,
        const BLOCK: usize,
        N,
        D,
        P: Variant,
    > LanguageModel<D> for Gpt<C, NH, HS, F, L, BLOCK, N, f32, D, P>
where
    N: Norm<C, D>,
    D: Kernels,
{
    const KIND: &'static str = match P::NAME {
        Some(name) => name,
        None => N::NAME,
    };
    const DROPOUT: bool = true;

    fn train_loss<R: MaskRng>(
        &self,
        idx: Tensor<(usize, usize), usize, D, Train<D>>,
        targets: &Tensor<(usize,), usize, D>,
        p: f32,
        rng: &mut R,
    ) -> Result<Tensor<Rank0, f32, D, Train<D>>, ModelError> {
        let logits = self.forward(idx, &mut Some((p, rng as &mut dyn MaskRng)))?; // (B, T, V)
        Ok(super::lm::cross_entropy(logits, targets))
    }

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
        self.forward(idx, &mut None)
    }
}

/// `torch.nn.init.normal_(t, mean=0.0, std=0.02)`, from `rng`.
fn normal_<S: Shape, D: Kernels, R: Rng>(
    t: &mut Tensor<S, f32, D>,
    rng: &mut R,
) -> Result<(), ModelError> {
    let normal = rand_distr::Normal::new(0.0f32, 0.02).expect("0.02 is a valid spread");
    let values = (0..t.shape().num_elements()).map(|_| rng.sample(normal));
    *t = t
        .device()
        .try_tensor_from_vec(values.collect(), *t.shape())
        .map_err(dev_err)?;
    Ok(())
}

/// `torch.nn.init.zeros_(t)`.
fn zeros_<S: Shape, D: Kernels>(t: &mut Tensor<S, f32, D>) -> Result<(), ModelError> {
    t.try_fill_with_zeros().map_err(dev_err)
}
