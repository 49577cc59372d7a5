//! The plain computations, composed of dfdx's ops: what the chapters list,
//! what [`Kernels`](super::Kernels)' methods default to, and the reference
//! the CPU's fused kernels are tested against.

use dfdx::prelude::*;
use rand::Rng;

use super::rng::MaskRng;
use super::Activation;

// ANCHOR: matmul
/// `x @ w` for data x (N, K) and weights w (K, V), with dfdx's matmul. The
/// tape must ride on the left operand of a matmul, so it moves from `w` to
/// `x` (and dfdx's backward pass then computes a gradient for `x` as well).
pub fn matmul_fixed_lhs<D: Device<f32>, T: Tape<f32, D>>(
    x: &Tensor<(usize, usize), f32, D>,
    w: Tensor<(usize, usize), f32, D, T>,
) -> Tensor<(usize, usize), f32, D, T> {
    let (w, tape) = w.split_tape();
    x.clone().put_tape(tape).matmul(w) // (N, K) @ (K, V) -> (N, V)
}
// ANCHOR_END: matmul

// ANCHOR: embedding
/// The embedding lookup: row `idx[b, t]` of the table for every position,
/// dfdx's `gather` (`nn.Embedding`'s forward in PyTorch).
pub fn embedding<C: Dim, D: Device<f32>, T: Tape<f32, D>>(
    weight: Tensor<(usize, C), f32, D, T>, // (V, C)
    idx: Tensor<(usize, usize), usize, D>, // (B, T)
) -> Tensor<(usize, usize, C), f32, D, T> {
    weight.gather(idx) // (B, T, C)
}
// ANCHOR_END: embedding

// ANCHOR: index_nll
/// The loss of index targets, from logits (N, V) and labels (N,): the log of
/// the softmax (in one stable op), each row's entry at its label, the mean,
/// negated. `F.cross_entropy(logits, ys)` in PyTorch.
pub fn index_nll<D: Device<f32>, T: Tape<f32, D> + Merge<T>>(
    logits: Tensor<(usize, usize), f32, D, T>,
    ys: &Tensor<(usize,), usize, D>,
) -> Tensor<Rank0, f32, D, T> {
    logits
        .log_softmax::<Axis<1>>() // (N, V)
        .select(ys.clone()) // (N,): log p[n, ys[n]]
        .mean() // ()
        .negate()
}
// ANCHOR_END: index_nll

/// [`Kernels::linear_nll`](super::Kernels::linear_nll): the one-hot matmul,
/// then [`index_nll`].
pub fn linear_nll<D: Device<f32>, T: Tape<f32, D> + Merge<T>>(
    x: &Tensor<(usize, usize), f32, D>,
    w: Tensor<(usize, usize), f32, D, T>,
    ys: &Tensor<(usize,), usize, D>,
) -> Tensor<Rank0, f32, D, T> {
    index_nll(matmul_fixed_lhs(x, w), ys) // (N, K) @ (K, V) -> (N, V) -> ()
}

// ANCHOR: tril_matmul
/// `wei @ x` for every sequence of the batch: zero wei above the diagonal,
/// broadcast it to (B, T, T) (a batched matmul wants the batch on both
/// sides), one batched matmul. The lecture's `wei @ x`, broadcast by PyTorch.
pub fn tril_matmul<D: Device<f32>>(
    wei: &Tensor<(usize, usize), f32, D>,      // (T, T)
    x: &Tensor<(usize, usize, usize), f32, D>, // (B, T, C)
) -> Tensor<(usize, usize, usize), f32, D> {
    let (b, t, _) = *x.shape();
    wei.clone()
        .lower_tri(0) // (T, T): zero above the diagonal
        .broadcast_like::<_, Axis<0>>(&(b, t, t)) // (B, T, T)
        .matmul(x.clone()) // (B, T, T) @ (B, T, C) -> (B, T, C)
}
// ANCHOR_END: tril_matmul

// ANCHOR: causal_softmax
/// The causal softmax, as the lecture writes it: scale, add −∞ above the
/// diagonal (`masked_fill(tril == 0, float('-inf'))`), softmax along rows.
pub fn causal_softmax<D: Device<f32>, T: Tape<f32, D> + Merge<T>>(
    scores: Tensor<(usize, usize, usize), f32, D, T>, // (B, T, T)
    scale: f32,
) -> Tensor<(usize, usize, usize), f32, D, T> {
    let shape = *scores.shape();
    let future = scores.device().upper_tri_like(&shape, f32::NEG_INFINITY, 1); // (B, T, T): −∞ above the diagonal
    (scores * scale + future).softmax::<Axis<2>>() // (B, T, T): exp(−∞) = 0, rows sum to 1
}
// ANCHOR_END: causal_softmax

/// One head's attention, as the lecture writes it: affinities `q @ kᵀ`,
/// scaled, the future masked, softmax, and the weighted sum of the values.
/// Returns the output and the weights.
#[allow(clippy::type_complexity)]
pub fn causal_attention<const H: usize, D: Device<f32>, T: Tape<f32, D> + Merge<T>>(
    q: Tensor<(usize, usize, Const<H>), f32, D, T>, // (B, T, H)
    k: Tensor<(usize, usize, Const<H>), f32, D, T>, // (B, T, H)
    v: Tensor<(usize, usize, Const<H>), f32, D, T>, // (B, T, H)
    scale: f32,
) -> (
    Tensor<(usize, usize, Const<H>), f32, D, T>,
    Tensor<(usize, usize, usize), f32, D>,
) {
    // ANCHOR: causal_attention
    let wei = q.matmul(k.permute::<_, Axes3<0, 2, 1>>()); // (B, T, H) @ (B, H, T) -> (B, T, T): affinities
    let wei = causal_softmax(wei, scale); // (B, T, T): scaled, no future, rows sum to 1
    let (wei, tape) = wei.split_tape(); // keep a copy of the weights, to look at
    (wei.clone().put_tape(tape).matmul(v), wei) // (B, T, T) @ (B, T, H) -> (B, T, H)
                                                // ANCHOR_END: causal_attention
}

/// LayerNorm over each token's row of C channels, as dfdx's `LayerNorm1D`
/// computes it (`nn.LayerNorm(C)` in PyTorch): subtract the row's mean,
/// divide by its standard deviation (the variance plus `epsilon`, square
/// rooted), then scale by gamma and shift by beta, both learned.
pub fn layer_norm<const C: usize, D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<(usize, usize, Const<C>), f32, D, T>, // (B, T, C)
    gamma: &Tensor<(Const<C>,), f32, D>,            // (C,)
    beta: &Tensor<(Const<C>,), f32, D>,             // (C,)
    epsilon: f32,
) -> Tensor<(usize, usize, Const<C>), f32, D, T> {
    // ANCHOR: layer_norm
    let shape = *x.shape();
    let mean = x.retaped::<T>().mean::<_, Axis<2>>(); // (B, T): each row's mean
    let centred = x - mean.broadcast_like(&shape); // (B, T, C)
    let var = centred.retaped::<T>().square().mean::<_, Axis<2>>(); // (B, T): each row's variance
    let std = (var + epsilon).sqrt(); // (B, T)
    let xhat = centred / std.broadcast_like(&shape); // (B, T, C): mean 0, variance 1
    let gamma = gamma.retaped::<T>().broadcast_like(&shape); // (B, T, C)
    let beta = beta.retaped::<T>().broadcast_like(&shape); // (B, T, C)
    xhat * gamma + beta
    // ANCHOR_END: layer_norm
}

// ANCHOR: linear
/// `nn.Linear` on every token: `x @ weightᵀ + bias` for x (B, T, I), weight
/// (O, I) and bias (O,), as dfdx's `Linear` computes it on a (B, T, I) batch:
/// a batched matmul (one (T, I) by (I, O) product per sequence), then the
/// bias broadcast over every token and added.
pub fn linear<const I: usize, O: Dim, D: Device<f32>, T: Tape<f32, D> + Merge<T>>(
    x: Tensor<(usize, usize, Const<I>), f32, D, T>, // (B, T, I)
    weight: &Tensor<(O, Const<I>), f32, D>,         // (O, I)
    bias: &Tensor<(O,), f32, D>,                    // (O,)
) -> Tensor<(usize, usize, O), f32, D, T> {
    let out = x.matmul(weight.retaped::<T>().permute()); // (B, T, I) @ (I, O) -> (B, T, O)
    let shape = *out.shape();
    out + bias.retaped::<T>().broadcast_like::<_, Axes2<0, 1>>(&shape) // (B, T, O)
}
// ANCHOR_END: linear

// ANCHOR: heads
/// (B, T, NH·HS) → (B·NH, T, HS): split the channels into NH heads of HS,
/// move the heads next to the batch, and treat each (sequence, head) as a
/// sequence of its own. The lecture's heads each have their own
/// `nn.Linear`; side by side in one (C, C) map, their outputs are these
/// column blocks.
pub fn split_heads<
    const C: usize,
    const NH: usize,
    const HS: usize,
    D: Device<f32>,
    T: Tape<f32, D>,
>(
    x: Tensor<(usize, usize, Const<C>), f32, D, T>, // (B, T, C)
) -> Tensor<(usize, usize, Const<HS>), f32, D, T> {
    // ANCHOR: split_heads
    let (b, t, _) = *x.shape();
    x.reshape_like(&(b, t, Const::<NH>, Const::<HS>)) // (B, T, NH, HS)
        .permute::<_, Axes4<0, 2, 1, 3>>() // (B, NH, T, HS)
        .reshape_like(&(b * NH, t, Const::<HS>)) // (B·NH, T, HS): one row per head
                                                 // ANCHOR_END: split_heads
}

/// (B·NH, T, HS) → (B, T, NH·HS): the heads' outputs side by side, the
/// lecture's `torch.cat([h(x) for h in self.heads], dim=-1)`.
pub fn merge_heads<
    const C: usize,
    const NH: usize,
    const HS: usize,
    D: Device<f32>,
    T: Tape<f32, D>,
>(
    x: Tensor<(usize, usize, Const<HS>), f32, D, T>, // (B·NH, T, HS)
    b: usize,
) -> Tensor<(usize, usize, Const<C>), f32, D, T> {
    let (_, t, _) = *x.shape();
    x.reshape_like(&(b, Const::<NH>, t, Const::<HS>)) // (B, NH, T, HS)
        .permute::<_, Axes4<0, 2, 1, 3>>() // (B, T, NH, HS)
        .reshape_like(&(b, t, Const::<C>)) // (B, T, C)
}
// ANCHOR_END: heads

// ANCHOR: qkv_heads
/// Queries, keys and values of NH heads of HS channels, one row per
/// (sequence, head): x (B, T, C) times each (C, C) map (every head's map side
/// by side), then [`split_heads`]. Returns (q, k, v), (B·NH, T, HS) each.
#[allow(clippy::type_complexity)]
pub fn qkv_heads<
    const C: usize,
    const NH: usize,
    const HS: usize,
    D: Device<f32>,
    T: Tape<f32, D> + Merge<T>,
>(
    x: Tensor<(usize, usize, Const<C>), f32, D, T>, // (B, T, C)
    query: &Tensor<Rank2<C, C>, f32, D>,            // (C, NH·HS)
    key: &Tensor<Rank2<C, C>, f32, D>,              // (C, NH·HS)
    value: &Tensor<Rank2<C, C>, f32, D>,            // (C, NH·HS)
) -> (
    Tensor<(usize, usize, Const<HS>), f32, D, T>,
    Tensor<(usize, usize, Const<HS>), f32, D, T>,
    Tensor<(usize, usize, Const<HS>), f32, D, T>,
) {
    let (b, t, _) = *x.shape();
    let x = x.reshape_like(&(b * t, Const::<C>)); // (B·T, C)
    let heads = |w: &Tensor<Rank2<C, C>, f32, D>, x: Tensor<(usize, Const<C>), f32, D, T>| {
        let all = x.matmul(w.retaped::<T>()).reshape_like(&(b, t, Const::<C>)); // (B·T, C) @ (C, NH·HS) -> (B, T, C)
        split_heads::<C, NH, HS, D, T>(all) // (B·NH, T, HS): one row per head
    };
    let q = heads(query, x.retaped::<T>()); // (B·NH, T, HS)
    let k = heads(key, x.retaped::<T>()); // (B·NH, T, HS)
    let v = heads(value, x); // (B·NH, T, HS)
    (q, k, v)
}
// ANCHOR_END: qkv_heads

// ANCHOR: grad_sum_squares
/// Σ g² over the gradient of `p` (read as a host vector): one parameter's
/// share of the global norm that chapter 8's clipping measures.
pub fn grad_sum_squares<S: Shape, D: Device<f32>>(
    grads: &Gradients<f32, D>,
    p: &Tensor<S, f32, D>,
) -> f64 {
    let g = grads.get(p).as_vec();
    g.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}
// ANCHOR_END: grad_sum_squares

/// Multiplies the gradient of `p` by `s`: the product is made as the
/// gradient of `Σ p ⊙ (g · s)` with respect to `p` (the only way to put
/// values into a `Gradients` on any device), then swapped in.
pub fn scale_grad<S: Shape, D: Device<f32>>(
    grads: &mut Gradients<f32, D>,
    p: &Tensor<S, f32, D>,
    s: f32,
) -> Result<(), D::Err> {
    let n = p.shape().num_elements();
    let scaled = grads.get(p).try_reshape_like(&(n,))? * s; // (n,)
    let mut held = (p
        .clone()
        .traced(Gradients::leaky())
        .try_reshape_like(&(n,))?
        * scaled)
        .try_sum::<Rank0, _>()?
        .try_backward()?;
    std::mem::swap(grads.get_or_alloc_mut(p)?, held.get_or_alloc_mut(p)?);
    Ok(())
}

/// `nn.Dropout(p)` in training: every entry zeroed with probability `p`,
/// the others scaled by 1/(1−p) so that the expected value is unchanged.
/// The mask comes from `rng`, the run's one generator (dfdx's `Dropout`
/// draws from the device's own, which a checkpoint cannot save).
pub fn dropout<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
    p: f32,
    rng: &mut dyn MaskRng,
) -> Tensor<S, f32, D, T> {
    // ANCHOR: dropout
    if p == 0.0 {
        return x;
    }
    let keep = 1.0 / (1.0 - p);
    let n = x.shape().num_elements();
    let mask: Vec<f32> = (0..n)
        .map(|_| if rng.gen::<f32>() < p { 0.0 } else { keep })
        .collect();
    let mask = x.device().tensor_from_vec(mask, *x.shape());
    x * mask
    // ANCHOR_END: dropout
}

/// Dropout in training: its probability and the generator that draws the
/// masks; `None` in evaluation (nothing is dropped).
pub type Dropping<'a> = Option<(f32, &'a mut dyn MaskRng)>;

/// `self.dropout(x)`: [`dropout`] in training, `x` itself in evaluation.
pub fn drop_some<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
    dropping: &mut Dropping,
) -> Tensor<S, f32, D, T> {
    match dropping {
        Some((p, rng)) => dropout(x, *p, &mut **rng),
        None => x,
    }
}

/// `dropping` lent out for one op, to be used again after it.
pub fn again<'a>(dropping: &'a mut Dropping<'_>) -> Dropping<'a> {
    dropping
        .as_mut()
        .map(|(p, rng)| (*p, &mut **rng as &mut dyn MaskRng))
}

/// The lecture's `MultiHeadAttention.forward`, dropout included: every
/// head's queries, keys and values ([`qkv_heads`]); the affinities
/// `q @ kᵀ`, scaled by HS^-0.5, the future masked, softmax; dropout on the
/// weights; the weighted sum of the values; the heads side by side
/// ([`merge_heads`]); the projection `Linear(C, C)`; dropout on its output.
#[allow(clippy::too_many_arguments)]
pub fn self_attention<
    const C: usize,
    const NH: usize,
    const HS: usize,
    D: Device<f32>,
    T: Tape<f32, D> + Merge<T>,
>(
    x: Tensor<(usize, usize, Const<C>), f32, D, T>, // (B, T, C)
    [query, key, value]: [&Tensor<Rank2<C, C>, f32, D>; 3], // (C, NH·HS) each
    proj_weight: &Tensor<Rank2<C, C>, f32, D>,      // (C, C)
    proj_bias: &Tensor<Rank1<C>, f32, D>,           // (C,)
    mut dropping: Dropping,
) -> Tensor<(usize, usize, Const<C>), f32, D, T> {
    // ANCHOR: self_attention
    let b = x.shape().0;
    let (q, k, v) = qkv_heads::<C, NH, HS, D, T>(x, query, key, value); // (B·NH, T, HS): every head's
    let wei = q.matmul(k.permute::<_, Axes3<0, 2, 1>>()); // (B·NH, T, T): affinities
    let wei = causal_softmax(wei, (HS as f32).powf(-0.5)); // (B·NH, T, T): scaled, no future
    let wei = drop_some(wei, &mut dropping); // (B·NH, T, T): self.dropout(wei)
    let out = wei.matmul(v); // (B·NH, T, HS): each head's weighted values
    let heads = merge_heads::<C, NH, HS, D, T>(out, b); // (B, T, C): torch.cat(heads)
    let out = linear(heads, proj_weight, proj_bias); // (B, T, C): self.proj(out)
    drop_some(out, &mut dropping) // (B, T, C): self.dropout(...)
                                  // ANCHOR_END: self_attention
}

/// The lecture's `FeedFoward`: `Linear(C, F)`, ReLU (the activation `A`),
/// `Linear(F, C)` on every token, then dropout.
pub fn feed_forward<
    const C: usize,
    const F: usize,
    A: Activation,
    D: Device<f32>,
    T: Tape<f32, D> + Merge<T>,
>(
    x: Tensor<(usize, usize, Const<C>), f32, D, T>, // (B, T, C)
    (w1, b1): (&Tensor<Rank2<F, C>, f32, D>, &Tensor<Rank1<F>, f32, D>), // (F, C), (F,)
    (w2, b2): (&Tensor<Rank2<C, F>, f32, D>, &Tensor<Rank1<C>, f32, D>), // (C, F), (C,)
    mut dropping: Dropping,
) -> Tensor<(usize, usize, Const<C>), f32, D, T> {
    // ANCHOR: feed_forward
    let h = A::apply(linear(x, w1, b1)); // (B, T, F): nn.Linear(C, 4 * C), nn.ReLU()
    let out = linear(h, w2, b2); // (B, T, C): nn.Linear(4 * C, C)
    drop_some(out, &mut dropping) // (B, T, C): nn.Dropout(dropout)
                                  // ANCHOR_END: feed_forward
}
