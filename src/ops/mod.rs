//! The operations the models share, behind one kernel trait.
//!
//! Every method of [`Kernels`] defaults to the plain computation composed of
//! dfdx's ops, in [`composed`]: the lecture's lines, which the chapters list
//! and every device runs. The CPU overrides some of them with fused kernels
//! ([`cpu`]) that compute the same numbers with less memory traffic, or skip
//! what a causal mask makes zero; the speed appendix introduces them, and the
//! tests check each against its composed twin. CUDA takes the defaults, so
//! it needs no copy of the signatures.
//!
//! | method | chapter | composed | what the CPU kernel saves |
//! |---|---|---|---|
//! | [`Kernels::embedding`] | 3 | `gather` | index arithmetic for every element, both ways |
//! | [`Kernels::linear_nll`] | 2 | one-hot matmul, log_softmax, select, mean | the (N, V) logits and their gradients |
//! | [`Kernels::index_nll`] | 3 | log_softmax, select, mean | passes over the (N, V) logits |
//! | [`Kernels::tril_matmul`] | 4 | broadcast `wei @ x` | the zeros above the diagonal |
//! | [`Kernels::causal_attention`] | 5 | `softmax(q @ kᵀ · scale + mask) @ v` | the masked half, eight passes over (B, T, T) |
//! | [`Kernels::linear`] | 3 | batched `x @ wᵀ`, broadcast `+ b` | one small product per sequence; the bias's broadcast indexing |
//! | [`Kernels::split_heads`], [`Kernels::merge_heads`] | 6 | reshape, permute, reshape | an index computed per element, both ways |
//! | [`Kernels::layer_norm`] | 7 | mean, centre, variance, `/ σ`, `· γ + β` | nine fresh tensors (five of them (B, T, C)) and their broadcast indexing |
//! | [`Kernels::qkv_heads`] | 6 | three `x @ w`, then `split_heads` each | two of three products' passes, the head split's index per element |
//! | [`Kernels::self_attention`] | 7 | `qkv_heads`, the causal softmax, dropout, `@ v`, `merge_heads`, `linear`, dropout | five (B, T, C) tensors and their gradients; the split and merge copies |
//! | [`Kernels::feed_forward`] | 7 | `linear`, `relu` (or `fast_gelu`), `linear`, dropout | the (B, T, F) hidden layer as a tensor, its gradient and copies |
//! | [`Kernels::grad_sum_squares`], [`Kernels::scale_grad`] | 8 | copies of every gradient; a traced product per parameter | every copy: the gradients are read and scaled where they lie |

use dfdx::prelude::*;

pub mod composed;
pub mod cpu;
pub mod rng;

/// The feed-forward layer's nonlinearity, a type: dfdx's [`ReLU`] (the
/// lecture's) or [`FastGeLU`], GELU as GPT-2 computes it,
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`. Introduced in chapter 8's
/// exercise EX4. Neither holds a weight (dfdx's `ZeroSizedModule`), so the
/// choice changes no parameter's name or shape.
pub trait Activation:
    dfdx::nn::ZeroSizedModule + Copy + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// Which one: what the CPU kernel computes.
    const KIND: ActivationKind;

    /// The composed op, elementwise: `x.relu()` or `x.fast_gelu()`.
    fn apply<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
        x: Tensor<S, f32, D, T>,
    ) -> Tensor<S, f32, D, T>;
}

/// The activations there are, as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationKind {
    /// `max(x, 0)`.
    Relu,
    /// GELU, tanh approximation.
    Gelu,
}

impl Activation for ReLU {
    const KIND: ActivationKind = ActivationKind::Relu;
    fn apply<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
        x: Tensor<S, f32, D, T>,
    ) -> Tensor<S, f32, D, T> {
        x.relu()
    }
}

// ANCHOR: activation
impl Activation for FastGeLU {
    const KIND: ActivationKind = ActivationKind::Gelu;
    fn apply<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
        x: Tensor<S, f32, D, T>,
    ) -> Tensor<S, f32, D, T> {
        x.fast_gelu()
    }
}
// ANCHOR_END: activation

/// The loss of chapter 2's one-hot model, `-mean log_softmax(x @ w)[ys]`:
/// [`Kernels::linear_nll`] on this device (a fused kernel on the CPU,
/// [`composed::linear_nll`] elsewhere).
pub fn linear_nll<D: Kernels, T: Tape<f32, D> + Merge<T>>(
    x: &Tensor<(usize, usize), f32, D>,
    w: Tensor<(usize, usize), f32, D, T>,
    ys: &Tensor<(usize,), usize, D>,
) -> Tensor<Rank0, f32, D, T> {
    D::linear_nll(x, w, ys)
}

/// The cross-entropy of index targets, `-mean log_softmax(logits)[ys]`:
/// [`Kernels::index_nll`] on this device.
pub fn index_nll<D: Kernels, T: Tape<f32, D> + Merge<T>>(
    logits: Tensor<(usize, usize), f32, D, T>,
    ys: &Tensor<(usize,), usize, D>,
) -> Tensor<Rank0, f32, D, T> {
    D::index_nll(logits, ys)
}

/// One head's causal attention, `softmax(q @ kᵀ · scale, masked) @ v`, and
/// the weights: [`Kernels::causal_attention`] on this device.
#[allow(clippy::type_complexity)]
pub fn causal_attention<const H: usize, D: Kernels, T: Tape<f32, D> + Merge<T>>(
    q: Tensor<(usize, usize, Const<H>), f32, D, T>,
    k: Tensor<(usize, usize, Const<H>), f32, D, T>,
    v: Tensor<(usize, usize, Const<H>), f32, D, T>,
    scale: f32,
) -> (
    Tensor<(usize, usize, Const<H>), f32, D, T>,
    Tensor<(usize, usize, usize), f32, D>,
) {
    D::causal_attention(q, k, v, scale)
}

// ANCHOR: kernels
// ANCHOR: kernels_head
/// Devices with charlm's kernels: every method defaults to [`composed`].
pub trait Kernels: Device<f32> + dfdx::tensor::Cache {
    /// `-mean_n log_softmax(x[n] @ w)[ys[n]]` for data x (N, K), weights
    /// w (K, V) and labels ys (N,): a linear layer and its loss in one op,
    /// with a backward pass for `w` (chapter 2).
    fn linear_nll<T: Tape<f32, Self> + Merge<T>>(
        x: &Tensor<(usize, usize), f32, Self>,
        w: Tensor<(usize, usize), f32, Self, T>,
        ys: &Tensor<(usize,), usize, Self>,
    ) -> Tensor<Rank0, f32, Self, T> {
        composed::linear_nll(x, w, ys)
    }
    // ANCHOR_END: kernels_head

    /// `weight[idx]`: row `idx[b, t]` of weight (V, C) for every position,
    /// (B, T) → (B, T, C), with a backward pass that adds each position's
    /// gradient into its token's row: an embedding lookup (chapter 3 on).
    /// The tape rides on `weight`. Panics on an id past V, as dfdx's gather does.
    fn embedding<C: Dim, T: Tape<f32, Self>>(
        weight: Tensor<(usize, C), f32, Self, T>,
        idx: Tensor<(usize, usize), usize, Self>,
    ) -> Tensor<(usize, usize, C), f32, Self, T> {
        composed::embedding(weight, idx)
    }

    /// `-mean_n log_softmax(logits[n])[ys[n]]` for logits (N, V) and labels
    /// ys (N,): the cross-entropy of index targets, every language model's
    /// loss from chapter 3 on.
    fn index_nll<T: Tape<f32, Self> + Merge<T>>(
        logits: Tensor<(usize, usize), f32, Self, T>,
        ys: &Tensor<(usize,), usize, Self>,
    ) -> Tensor<Rank0, f32, Self, T> {
        composed::index_nll(logits, ys)
    }

    /// `wei @ x[b]` for every row `b` of x, with wei's entries above the
    /// diagonal taken as 0: wei (T, T), x (B, T, N) → (B, T, N). The causal
    /// average of chapter 4. Panics if wei is not (T, T) for x's T, as
    /// dfdx's matmul does.
    fn tril_matmul(
        wei: &Tensor<(usize, usize), f32, Self>,
        x: &Tensor<(usize, usize, usize), f32, Self>,
    ) -> Tensor<(usize, usize, usize), f32, Self> {
        composed::tril_matmul(wei, x)
    }

    /// Causal self-attention for q, k, v (B, T, H): the weights
    /// `wei = softmax(q @ kᵀ · scale)` with the future masked (row `t` keeps
    /// columns `0..=t`), and `wei @ v`. Returns the output (B, T, H), with a
    /// backward pass for q, k and v, and the weights (B, T, T) to look at.
    /// From chapter 5 on. Panics if the shapes differ, as dfdx's matmul does.
    #[allow(clippy::type_complexity)]
    fn causal_attention<const H: usize, T: Tape<f32, Self> + Merge<T>>(
        q: Tensor<(usize, usize, Const<H>), f32, Self, T>,
        k: Tensor<(usize, usize, Const<H>), f32, Self, T>,
        v: Tensor<(usize, usize, Const<H>), f32, Self, T>,
        scale: f32,
    ) -> (
        Tensor<(usize, usize, Const<H>), f32, Self, T>,
        Tensor<(usize, usize, usize), f32, Self>,
    ) {
        composed::causal_attention(q, k, v, scale)
    }

    /// LayerNorm over the last axis of x (B, T, C) with gamma and beta
    /// (C,): each row to mean 0 and variance 1 (plus `epsilon`), then
    /// `gamma * x̂ + beta`, with a backward pass for x, gamma and beta
    /// (gamma's and beta's gradients ride on x's tape). From chapter 7 on.
    fn layer_norm<const C: usize, T: Tape<f32, Self>>(
        x: Tensor<(usize, usize, Const<C>), f32, Self, T>,
        gamma: &Tensor<(Const<C>,), f32, Self>,
        beta: &Tensor<(Const<C>,), f32, Self>,
        epsilon: f32,
    ) -> Tensor<(usize, usize, Const<C>), f32, Self, T> {
        composed::layer_norm(x, gamma, beta, epsilon)
    }

    /// `x @ weightᵀ + bias` for every token of x (B, T, I), weight (O, I),
    /// bias (O,): `nn.Linear(I, O)` on a batch of sequences, with a
    /// backward pass for x, weight and bias (the weights' gradients ride on
    /// x's tape). From chapter 3 on (lm_head), and every projection and
    /// feed-forward layer of chapters 6 to 8.
    fn linear<const I: usize, O: Dim, T: Tape<f32, Self> + Merge<T>>(
        x: Tensor<(usize, usize, Const<I>), f32, Self, T>,
        weight: &Tensor<(O, Const<I>), f32, Self>,
        bias: &Tensor<(O,), f32, Self>,
    ) -> Tensor<(usize, usize, O), f32, Self, T> {
        composed::linear(x, weight, bias)
    }

    /// (B, T, NH·HS) → (B·NH, T, HS): each head's HS channels as a batch row
    /// of its own (head h of sequence b at row b·NH + h), so that one
    /// batched attention runs every head. From chapter 6 on.
    fn split_heads<const C: usize, const NH: usize, const HS: usize, T: Tape<f32, Self>>(
        x: Tensor<(usize, usize, Const<C>), f32, Self, T>,
    ) -> Tensor<(usize, usize, Const<HS>), f32, Self, T> {
        composed::split_heads::<C, NH, HS, Self, T>(x)
    }

    /// The inverse of [`split_heads`](Kernels::split_heads):
    /// (B·NH, T, HS) → (B, T, NH·HS), the heads' outputs side by side, for a
    /// batch of `b` sequences.
    fn merge_heads<const C: usize, const NH: usize, const HS: usize, T: Tape<f32, Self>>(
        x: Tensor<(usize, usize, Const<HS>), f32, Self, T>,
        b: usize,
    ) -> Tensor<(usize, usize, Const<C>), f32, Self, T> {
        composed::merge_heads::<C, NH, HS, Self, T>(x, b)
    }

    /// Queries, keys and values of NH heads of HS channels for x (B, T, C)
    /// and the (C, C) maps `query`, `key`, `value` (every head's map side by
    /// side): (q, k, v), each (B·NH, T, HS), head h of sequence b at row
    /// b·NH + h, with a backward pass for x and the three maps (their
    /// gradients ride on q's tape). From chapter 6 on.
    #[allow(clippy::type_complexity)]
    fn qkv_heads<
        const C: usize,
        const NH: usize,
        const HS: usize,
        T: Tape<f32, Self> + Merge<T>,
    >(
        x: Tensor<(usize, usize, Const<C>), f32, Self, T>,
        query: &Tensor<Rank2<C, C>, f32, Self>,
        key: &Tensor<Rank2<C, C>, f32, Self>,
        value: &Tensor<Rank2<C, C>, f32, Self>,
    ) -> (
        Tensor<(usize, usize, Const<HS>), f32, Self, T>,
        Tensor<(usize, usize, Const<HS>), f32, Self, T>,
        Tensor<(usize, usize, Const<HS>), f32, Self, T>,
    ) {
        composed::qkv_heads::<C, NH, HS, Self, T>(x, query, key, value)
    }

    /// Multi-head causal self-attention and its projection, with dropout
    /// in training: (B, T, C) → (B, T, C), the lecture's
    /// `MultiHeadAttention` (see [`composed::self_attention`]), with a
    /// backward pass for x and every weight. Chapter 7 on (every block).
    #[allow(clippy::too_many_arguments)]
    fn self_attention<
        const C: usize,
        const NH: usize,
        const HS: usize,
        T: Tape<f32, Self> + Merge<T>,
    >(
        x: Tensor<(usize, usize, Const<C>), f32, Self, T>,
        qkv: [&Tensor<Rank2<C, C>, f32, Self>; 3],
        proj_weight: &Tensor<Rank2<C, C>, f32, Self>,
        proj_bias: &Tensor<Rank1<C>, f32, Self>,
        dropping: composed::Dropping,
    ) -> Tensor<(usize, usize, Const<C>), f32, Self, T> {
        composed::self_attention::<C, NH, HS, Self, T>(x, qkv, proj_weight, proj_bias, dropping)
    }

    /// The feed-forward layer, `Linear(C, F)`, the activation `A` (ReLU in
    /// the lecture), `Linear(F, C)`, with dropout in training:
    /// (B, T, C) → (B, T, C), with a backward pass for x and every weight.
    /// Chapter 7 on (every block); `A` from chapter 8's EX4.
    fn feed_forward<
        const C: usize,
        const F: usize,
        A: Activation,
        T: Tape<f32, Self> + Merge<T>,
    >(
        x: Tensor<(usize, usize, Const<C>), f32, Self, T>,
        first: (
            &Tensor<Rank2<F, C>, f32, Self>,
            &Tensor<Rank1<F>, f32, Self>,
        ),
        second: (
            &Tensor<Rank2<C, F>, f32, Self>,
            &Tensor<Rank1<C>, f32, Self>,
        ),
        dropping: composed::Dropping,
    ) -> Tensor<(usize, usize, Const<C>), f32, Self, T> {
        composed::feed_forward::<C, F, A, Self, T>(x, first, second, dropping)
    }

    /// Σ g² over the gradient `g` of parameter `p`: its share of the global
    /// norm that gradient clipping measures (chapter 8). `grads` is mutable
    /// only so that a device can read the buffer where it lies.
    fn grad_sum_squares<S: Shape>(
        grads: &mut Gradients<f32, Self>,
        p: &Tensor<S, f32, Self>,
    ) -> Result<f64, Self::Err> {
        Ok(composed::grad_sum_squares(grads, p))
    }

    /// Multiplies the gradient of parameter `p` by `s` (clipping, chapter 8).
    fn scale_grad<S: Shape>(
        grads: &mut Gradients<f32, Self>,
        p: &Tensor<S, f32, Self>,
        s: f32,
    ) -> Result<(), Self::Err> {
        composed::scale_grad(grads, p, s)
    }
}

// ANCHOR: kernels_cuda
/// CUDA runs the composed ops: the defaults.
#[cfg(feature = "cuda")]
impl Kernels for Cuda {}
// ANCHOR_END: kernels_cuda
// ANCHOR_END: kernels
