//! A fused kernel for chapter 2's full-batch step: the one-hot forward and
//! its loss, `-mean_n log_softmax(x[n] @ W)[y[n]]`, as one op.
//!
//! Introduced in chapter 2. Composed from dfdx's ops (matmul, log_softmax,
//! select, mean), one step on all 228,146 pairs writes and reads several
//! (228,146, 27) tensors (the logits, their softmax, the gradients of both,
//! a gradient for the one-hot inputs that nobody reads) and spends its time
//! moving memory. The fused op does the same arithmetic (every one of the
//! 27 × 27 multiply-adds per example, zeros included) a few hundred rows at a
//! time, while they sit in the CPU's fastest cache:
//!
//! 1. logits = x @ W for the rows (a tall, thin matrix product);
//! 2. softmax of each row (with a branch-free `exp` the compiler vectorises),
//!    and the row's loss, log-sum-exp minus the label's logit;
//! 3. when W is being traced, `∂W += xᵀ @ (softmax - onehot(y))`, the
//!    gradient of the summed loss, with its accumulators in registers.
//!
//! The backward pass then only scales the finished ∂W by `1 / N`. Nothing of
//! size (N, 27) is allocated but one copy of x. Blocks of rows have a fixed
//! size and partial sums are added in block order, so results do not depend
//! on the number of threads. Other devices (CUDA) use the composed dfdx ops,
//! which are also the reference the CPU kernel is tested against.
//!
//! Later chapters add the same kind of op where dfdx's composition wastes
//! work: the cross-entropy of index targets (chapter 3), the causal
//! average's triangular matmul (chapter 4) and causal self-attention
//! (chapter 5), which skip what the mask makes zero.

use dfdx::prelude::*;
use rayon::prelude::*;

/// Devices with charlm's fused kernels.
pub trait Fused: Device<f32> + dfdx::tensor::Cache {
    /// `-mean_n log_softmax(x[n] @ w)[ys[n]]` for data x (N, K), weights
    /// w (K, V) and labels ys (N,): a linear layer and its loss in one op,
    /// with a backward pass for `w`.
    fn linear_nll<const K: usize, const V: usize, T: Tape<f32, Self> + Merge<T>>(
        x: &Tensor<(usize, Const<K>), f32, Self>,
        w: Tensor<Rank2<K, V>, f32, Self, T>,
        ys: &Tensor<(usize,), usize, Self>,
    ) -> Tensor<Rank0, f32, Self, T>;

    /// `-mean_n log_softmax(logits[n])[ys[n]]` for logits (N, V) and labels
    /// ys (N,): the cross-entropy of index targets, every language model's
    /// loss from chapter 3 on.
    fn index_nll<const V: usize, T: Tape<f32, Self> + Merge<T>>(
        logits: Tensor<(usize, Const<V>), f32, Self, T>,
        ys: &Tensor<(usize,), usize, Self>,
    ) -> Tensor<Rank0, f32, Self, T>;

    /// `tril(wei) @ x[b]` for every row `b` of x: wei (T, T), x (B, T, N) →
    /// (B, T, N). Only wei's entries on and below the diagonal are read: the
    /// causal average of chapter 4, whose weights above the diagonal are 0.
    /// Panics if wei is not (T, T) for x's T, as dfdx's matmul does.
    fn tril_matmul(
        wei: &Tensor<(usize, usize), f32, Self>,
        x: &Tensor<(usize, usize, usize), f32, Self>,
    ) -> Tensor<(usize, usize, usize), f32, Self>;

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
    );
}

// ANCHOR: matmul
/// `x @ w` for data x (N, K) and weights w (K, V), with dfdx's matmul. The
/// tape must ride on the left operand of a matmul, so it moves from `w` to
/// `x` (and dfdx's backward pass then computes a gradient for `x` as well).
pub fn matmul_fixed_lhs<const K: usize, const V: usize, D: Device<f32>, T: Tape<f32, D>>(
    x: &Tensor<(usize, Const<K>), f32, D>,
    w: Tensor<Rank2<K, V>, f32, D, T>,
) -> Tensor<(usize, Const<V>), f32, D, T> {
    let (w, tape) = w.split_tape();
    x.clone().put_tape(tape).matmul(w) // (N, K) @ (K, V) -> (N, V)
}
// ANCHOR_END: matmul

// ANCHOR: composed
/// The loss from logits, composed of dfdx ops: log_softmax, select, mean.
pub fn index_nll_composed<const V: usize, D: Device<f32>, T: Tape<f32, D> + Merge<T>>(
    logits: Tensor<(usize, Const<V>), f32, D, T>,
    ys: &Tensor<(usize,), usize, D>,
) -> Tensor<Rank0, f32, D, T> {
    logits
        .log_softmax::<Axis<1>>() // (N, V)
        .select(ys.clone()) // (N,)
        .mean() // ()
        .negate()
}

/// [`Fused::linear_nll`] composed of dfdx ops: what every device supports.
pub fn linear_nll_composed<
    const K: usize,
    const V: usize,
    D: Device<f32>,
    T: Tape<f32, D> + Merge<T>,
>(
    x: &Tensor<(usize, Const<K>), f32, D>,
    w: Tensor<Rank2<K, V>, f32, D, T>,
    ys: &Tensor<(usize,), usize, D>,
) -> Tensor<Rank0, f32, D, T> {
    index_nll_composed(matmul_fixed_lhs(x, w), ys) // (N, K) @ (K, V) -> (N, V) -> ()
}
// ANCHOR_END: composed

// ANCHOR: tril_matmul_composed
/// [`Fused::tril_matmul`] composed of dfdx ops: zero the upper triangle,
/// broadcast wei over the batch, one batched matmul. The CPU's version
/// computes the same, block by block, leaving out the zero blocks.
pub fn tril_matmul_composed<D: Device<f32>>(
    wei: &Tensor<(usize, usize), f32, D>,      // (T, T)
    x: &Tensor<(usize, usize, usize), f32, D>, // (B, T, N)
) -> Tensor<(usize, usize, usize), f32, D> {
    let (b, t, _) = *x.shape();
    wei.clone()
        .lower_tri(0) // (T, T): zero above the diagonal
        .broadcast_like::<_, Axis<0>>(&(b, t, t)) // (B, T, T)
        .matmul(x.clone()) // (B, T, T) @ (B, T, N) -> (B, T, N)
}
// ANCHOR_END: tril_matmul_composed

// ANCHOR: causal_softmax_composed
/// The causal softmax composed of dfdx ops, as the lecture writes it:
/// scale, add −∞ above the diagonal, softmax along the rows.
pub fn causal_softmax_composed<D: Device<f32>, T: Tape<f32, D> + Merge<T>>(
    scores: Tensor<(usize, usize, usize), f32, D, T>, // (B, T, T)
    scale: f32,
) -> Tensor<(usize, usize, usize), f32, D, T> {
    let shape = *scores.shape();
    let future = scores.device().upper_tri_like(&shape, f32::NEG_INFINITY, 1); // (B, T, T): −∞ above the diagonal
    (scores * scale + future).softmax::<Axis<2>>() // (B, T, T): exp(−∞) = 0, rows sum to 1
}
// ANCHOR_END: causal_softmax_composed

// ANCHOR: causal_attention_composed
/// [`Fused::causal_attention`] composed of dfdx ops: affinities, causal
/// softmax, weighted sum of the values.
#[allow(clippy::type_complexity)]
pub fn causal_attention_composed<const H: usize, D: Device<f32>, T: Tape<f32, D> + Merge<T>>(
    q: Tensor<(usize, usize, Const<H>), f32, D, T>, // (B, T, H)
    k: Tensor<(usize, usize, Const<H>), f32, D, T>, // (B, T, H)
    v: Tensor<(usize, usize, Const<H>), f32, D, T>, // (B, T, H)
    scale: f32,
) -> (
    Tensor<(usize, usize, Const<H>), f32, D, T>,
    Tensor<(usize, usize, usize), f32, D>,
) {
    let wei = q.matmul(k.permute::<_, Axes3<0, 2, 1>>()); // (B, T, H) @ (B, H, T) -> (B, T, T): affinities
    let wei = causal_softmax_composed(wei, scale); // (B, T, T): scaled, no future, rows sum to 1
    let (wei, tape) = wei.split_tape(); // keep a copy of the weights, to look at
    (wei.clone().put_tape(tape).matmul(v), wei) // (B, T, T) @ (B, T, H) -> (B, T, H)
}
// ANCHOR_END: causal_attention_composed

/// Rows per parallel block: fixed, so results do not depend on the thread count.
const BLOCK_ROWS: usize = 2048;

/// Rows per sub-block: their logits (and x rows) stay in the L1 cache.
const SUB_ROWS: usize = 128;

/// `e^x`, branch-free so that loops over slices vectorise: Cephes' `expf`
/// (range reduction by ln 2, degree-5 polynomial, exponent bits), relative
/// error within 2 ulp of `f32::exp` on [-87, 88]. Inputs below -87 give
/// about 1.6e-38 instead of a denormal or 0; NaN stays NaN.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    // Comparisons written so that NaN passes through (a NaN loss must show).
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let t = x * std::f32::consts::LOG2_E + ROUND; // its low bits hold n = round(x / ln 2)
    let n = t - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4; // x - n ln 2, in two parts
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * (r * r) + r + 1.0; // e^r
                                   // 2^n from the bits: t's bits are those of 1.5 * 2^23 plus n, so subtracting
                                   // them but 127 leaves n + 127, the biased exponent of 2^n (integer ops only,
                                   // which vectorise; a float-to-int cast would not).
    let two_n = f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits() - 127) << 23);
    y * two_n
}

/// Reduces a row with `f` in 8 independent lanes (one vector register), then
/// folds the lanes: no long chain of dependent scalar operations. A fixed
/// order, so the result is the same every run.
#[inline(always)]
fn lanes(row: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = f(*a, v);
        }
    }
    let folded = acc.iter().fold(init, |a, &v| f(a, v));
    tail.iter().fold(folded, |a, &v| f(a, v))
}

impl Fused for Cpu {
    fn linear_nll<const K: usize, const V: usize, T: Tape<f32, Self> + Merge<T>>(
        x: &Tensor<(usize, Const<K>), f32, Self>,
        w: Tensor<Rank2<K, V>, f32, Self, T>,
        ys: &Tensor<(usize,), usize, Self>,
    ) -> Tensor<Rank0, f32, Self, T> {
        let (w, mut tape) = w.split_tape();
        let n = x.shape().0;
        let mut xs = Scratch::take(n * K); // (N, K), row-major
        x.copy_into(&mut xs);
        let mut y = vec![0usize; n]; // (N,)
        ys.copy_into(&mut y);
        let mut ws = [0f32; 1].repeat(K * V); // (K, V)
        w.copy_into(&mut ws);
        let want_grad = T::OWNS_TAPE;
        // Each block: its share of Σ (lse - logit[y]) in f64, and of ∂W.
        let partials: Vec<(f64, Vec<f32>)> = xs
            .par_chunks(BLOCK_ROWS * K)
            .zip(y.par_chunks(BLOCK_ROWS))
            .map(|(xb, yb)| block_kernel::<K, V>(xb, yb, &ws, want_grad))
            .collect();
        let mut total = 0f64;
        let mut grad = [0f32; 1].repeat(K * V); // Σ_n x[n]ᵀ (softmax - onehot(y)), (K, V)
        for (loss, dw) in &partials {
            total += loss; // in block order
            grad.iter_mut().zip(dw).for_each(|(g, d)| *g += d);
        }
        let out = w.device().clone().tensor((total / n.max(1) as f64) as f32); // ()
        if want_grad {
            let out_for_grad = out.clone();
            tape.add_backward_op(move |grads| {
                let scale = grads.get(&out_for_grad).as_vec()[0] / n as f32;
                let grad_w = grads.get_or_alloc_mut(&w)?; // (K, V)
                grad_w
                    .iter_mut()
                    .zip(&grad)
                    .for_each(|(a, d)| *a += scale * d);
                Ok(())
            });
        }
        out.put_tape(tape)
    }

    fn index_nll<const V: usize, T: Tape<f32, Self> + Merge<T>>(
        logits: Tensor<(usize, Const<V>), f32, Self, T>,
        ys: &Tensor<(usize,), usize, Self>,
    ) -> Tensor<Rank0, f32, Self, T> {
        index_nll_cpu(logits, ys)
    }

    fn tril_matmul(
        wei: &Tensor<(usize, usize), f32, Self>,
        x: &Tensor<(usize, usize, usize), f32, Self>,
    ) -> Tensor<(usize, usize, usize), f32, Self> {
        tril_matmul_cpu(wei, x)
    }

    fn causal_attention<const H: usize, T: Tape<f32, Self> + Merge<T>>(
        q: Tensor<(usize, usize, Const<H>), f32, Self, T>,
        k: Tensor<(usize, usize, Const<H>), f32, Self, T>,
        v: Tensor<(usize, usize, Const<H>), f32, Self, T>,
        scale: f32,
    ) -> (
        Tensor<(usize, usize, Const<H>), f32, Self, T>,
        Tensor<(usize, usize, usize), f32, Self>,
    ) {
        causal_attention_cpu(q, k, v, scale)
    }
}

/// Rows per block of the triangular products: block `r` of rows only meets
/// the first `(r + 1) · TRIL_BLOCK` rows (or columns) of the other operand.
const TRIL_BLOCK: usize = 64;

/// A row-major view of a matrix inside a slice: (offset, row stride,
/// column stride). A transposed view swaps the strides.
#[derive(Clone, Copy)]
struct View {
    at: usize,
    rs: usize,
    cs: usize,
}

impl View {
    fn rows(at: usize, rs: usize) -> Self {
        Self { at, rs, cs: 1 }
    }
    fn transposed(at: usize, rs: usize) -> Self {
        Self { at, rs: 1, cs: rs }
    }
    /// Whether an (r, c) matrix seen this way lies inside `len` values.
    fn fits(self, (r, c): (usize, usize), len: usize) -> bool {
        r == 0 || c == 0 || self.at + (r - 1) * self.rs + (c - 1) * self.cs < len
    }
}

/// `dst (m, n) = a (m, k) @ b (k, n)`, single-threaded, with the gemm crate
/// dfdx itself uses. Panics if a view reaches outside its slice.
#[allow(clippy::too_many_arguments)]
fn gemm_into(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    d: View,
    a: &[f32],
    av: View,
    b: &[f32],
    bv: View,
) {
    assert!(
        d.fits((m, n), dst.len()) && av.fits((m, k), a.len()) && bv.fits((k, n), b.len()),
        "gemm_into: a view reaches outside its slice"
    );
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // SAFETY: the assert above keeps every element gemm touches inside its slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst[d.at..].as_mut_ptr(),
            d.cs as isize,
            d.rs as isize,
            false,
            a[av.at..].as_ptr(),
            av.cs as isize,
            av.rs as isize,
            b[bv.at..].as_ptr(),
            bv.cs as isize,
            bv.rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The row blocks `(r0, r1)` of a T-row matrix.
fn row_blocks(t: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..t)
        .step_by(TRIL_BLOCK)
        .map(move |r0| (r0, (r0 + TRIL_BLOCK).min(t)))
}

/// [`Fused::tril_matmul`] on the CPU: for each row of the batch (in
/// parallel), each block of rows of wei times the rows of x up to the
/// block's diagonal: 5/8 of a dense matmul's multiply-adds at T = 256, and
/// no threads waiting on each other inside one small matmul.
fn tril_matmul_cpu(
    wei: &Tensor<(usize, usize), f32, Cpu>,
    x: &Tensor<(usize, usize, usize), f32, Cpu>,
) -> Tensor<(usize, usize, usize), f32, Cpu> {
    let (b, t, n) = *x.shape();
    assert_eq!(
        *wei.shape(),
        (t, t),
        "tril_matmul: wei must be (T, T) for x (B, T, N)"
    );
    let mut w = vec![0f32; t * t]; // (T, T), with the upper triangle zeroed
    wei.copy_into(&mut w);
    for (i, row) in w.chunks_exact_mut(t.max(1)).enumerate() {
        row[i + 1..].fill(0.0);
    }
    let mut xs = Scratch::take(b * t * n); // (B, T, N)
    x.copy_into(&mut xs);
    let mut out = vec![0f32; b * t * n]; // (B, T, N)
    let per_row = (t * n).max(1);
    out.par_chunks_mut(per_row)
        .zip(xs.par_chunks(per_row))
        .for_each(|(out_b, x_b)| {
            for (r0, r1) in row_blocks(t) {
                // out[r0..r1, :] = w[r0..r1, 0..r1] @ x[0..r1, :]
                let (o, wv, xv) = (
                    View::rows(r0 * n, n),
                    View::rows(r0 * t, t),
                    View::rows(0, n),
                );
                gemm_into((r1 - r0, n, r1), out_b, o, &w, wv, x_b, xv);
            }
        });
    x.device().tensor_from_vec(out, (b, t, n))
}

/// [`Fused::causal_attention`] on the CPU, one sequence of the batch per
/// task (in parallel), each product split in blocks of [`TRIL_BLOCK`] rows
/// so that nothing above the diagonal is computed: the affinities, the
/// softmax (only the visible part of each row), `wei @ v`; backward,
/// `∂wei = ∂out @ vᵀ`, `∂s = scale · wei ⊙ (∂wei − Σ ∂wei ⊙ wei)` row by row,
/// `∂q = ∂s @ k`, `∂k = ∂sᵀ @ q`, `∂v = weiᵀ @ ∂out`. dfdx's composed ops
/// compute every product in full, make about eight single-threaded passes
/// over the (B, T, T) affinities each way for the scale, mask and softmax,
/// and build a fresh −∞ mask every call.
#[allow(clippy::type_complexity)]
fn causal_attention_cpu<const H: usize, T: Tape<f32, Cpu> + Merge<T>>(
    q: Tensor<(usize, usize, Const<H>), f32, Cpu, T>,
    k: Tensor<(usize, usize, Const<H>), f32, Cpu, T>,
    v: Tensor<(usize, usize, Const<H>), f32, Cpu, T>,
    scale: f32,
) -> (
    Tensor<(usize, usize, Const<H>), f32, Cpu, T>,
    Tensor<(usize, usize, usize), f32, Cpu>,
) {
    let (q, tq) = q.split_tape();
    let (k, tk) = k.split_tape();
    let (v, tv) = v.split_tape();
    let mut tape = tq.merge(tk).merge(tv);
    let (b, t, _) = *q.shape();
    assert!(
        k.shape() == q.shape() && v.shape() == q.shape(),
        "causal_attention: q, k and v must have the same shape"
    );
    let (seq, sq) = ((t * H).max(1), (t * t).max(1)); // values per sequence: (T, H), (T, T)
    let read = |x: &Tensor<(usize, usize, Const<H>), f32, Cpu>| {
        let mut buf = vec![0f32; b * t * H];
        x.copy_into(&mut buf);
        buf
    };
    let (qs, ks, vs) = (read(&q), read(&k), read(&v)); // (B, T, H) each
    let mut p = vec![0f32; b * t * t]; // (B, T, T): the affinities, then the weights
    let mut out = vec![0f32; b * t * H]; // (B, T, H)
    p.par_chunks_mut(sq)
        .zip(out.par_chunks_mut(seq))
        .enumerate()
        .for_each(|(bi, (p_b, out_b))| {
            let at = bi * seq; // this sequence's q, k, v
            for (r0, r1) in row_blocks(t) {
                // s[r0..r1, 0..r1] = q[r0..r1] @ k[0..r1]ᵀ
                let (sv, qv, kv) = (
                    View::rows(r0 * t, t),
                    View::rows(at + r0 * H, H),
                    View::transposed(at, H),
                );
                gemm_into((r1 - r0, r1, H), p_b, sv, &qs, qv, &ks, kv);
            }
            for (i, row) in p_b.chunks_exact_mut(t.max(1)).enumerate() {
                causal_softmax_row(row, i, scale); // columns 0..=i; the rest 0
            }
            for (r0, r1) in row_blocks(t) {
                // out[r0..r1] = wei[r0..r1, 0..r1] @ v[0..r1]
                let (ov, pv, vv) = (
                    View::rows(r0 * H, H),
                    View::rows(r0 * t, t),
                    View::rows(at, H),
                );
                gemm_into((r1 - r0, H, r1), out_b, ov, p_b, pv, &vs, vv);
            }
        });
    let dev = q.device().clone();
    // the weights to return; the backward pass keeps its own copy only when there is one
    let wei_values = if T::OWNS_TAPE {
        p.clone()
    } else {
        std::mem::take(&mut p)
    };
    let wei = dev.tensor_from_vec(wei_values, (b, t, t)); // (B, T, T)
    let out = dev.tensor_from_vec(out, (b, t, Const::<H>)); // (B, T, H)
    if T::OWNS_TAPE {
        let out_for_grad = out.clone();
        tape.add_backward_op(move |grads| {
            // ∂out, taken out of `grads` for the pass (and put back), not copied
            let dout = std::mem::take(&mut **grads.get_or_alloc_mut(&out_for_grad)?);
            let (mut dq, mut dk, mut dv) = (
                vec![0f32; b * t * H],
                vec![0f32; b * t * H],
                vec![0f32; b * t * H],
            );
            dq.par_chunks_mut(seq)
                .zip(dk.par_chunks_mut(seq))
                .zip(dv.par_chunks_mut(seq))
                .enumerate()
                .for_each(|(bi, ((dq_b, dk_b), dv_b))| {
                    let (at, p_b) = (bi * seq, &p[bi * sq..(bi + 1) * sq]);
                    let mut ds = vec![0f32; sq]; // (T, T): ∂wei, then ∂s
                    for (r0, r1) in row_blocks(t) {
                        // ∂wei[r0..r1, 0..r1] = ∂out[r0..r1] @ v[0..r1]ᵀ
                        let (dv_, gv, vv) = (
                            View::rows(r0 * t, t),
                            View::rows(at + r0 * H, H),
                            View::transposed(at, H),
                        );
                        gemm_into((r1 - r0, r1, H), &mut ds, dv_, &dout, gv, &vs, vv);
                    }
                    for (i, (d, w)) in ds.chunks_exact_mut(t).zip(p_b.chunks_exact(t)).enumerate() {
                        let (d, w) = (&mut d[..=i], &w[..=i]); // the visible columns
                        let dot: f32 = d.iter().zip(w).map(|(g, w)| g * w).sum(); // Σ ∂wei ⊙ wei
                        for (g, &w) in d.iter_mut().zip(w) {
                            *g = scale * w * (*g - dot); // ∂s
                        }
                    }
                    for (i, row) in ds.chunks_exact_mut(t).enumerate() {
                        row[i + 1..].fill(0.0); // nothing flows from the future
                    }
                    for (r0, r1) in row_blocks(t) {
                        // ∂q[r0..r1] = ∂s[r0..r1, 0..r1] @ k[0..r1]
                        let (o, sv, kv) = (
                            View::rows(r0 * H, H),
                            View::rows(r0 * t, t),
                            View::rows(at, H),
                        );
                        gemm_into((r1 - r0, H, r1), dq_b, o, &ds, sv, &ks, kv);
                        // ∂k[r0..r1] = ∂s[r0.., r0..r1]ᵀ @ q[r0..]; ∂v[r0..r1] = wei[r0.., r0..r1]ᵀ @ ∂out[r0..]
                        let (o, st) = (View::rows(r0 * H, H), View::transposed(r0 * t + r0, t));
                        let later = View::rows(at + r0 * H, H); // rows r0.. of this sequence
                        gemm_into((r1 - r0, H, t - r0), dk_b, o, &ds, st, &qs, later);
                        gemm_into((r1 - r0, H, t - r0), dv_b, o, p_b, st, &dout, later);
                    }
                });
            for (x, d) in [(&q, dq), (&k, dk), (&v, dv)] {
                let g = grads.get_or_alloc_mut(x)?; // (B, T, H)
                g.iter_mut().zip(&d).for_each(|(g, d)| *g += d);
            }
            **grads.get_or_alloc_mut(&out_for_grad)? = dout;
            Ok(())
        });
    }
    (out.put_tape(tape), wei)
}

/// Row `i` of a causal softmax, in place: the first `i + 1` values become
/// `softmax(values · scale)`, the rest 0.
#[inline]
fn causal_softmax_row(row: &mut [f32], i: usize, scale: f32) {
    let (past, future) = row.split_at_mut((i + 1).min(row.len()));
    let max = past.iter().fold(
        f32::NEG_INFINITY,
        |m, &v| if v * scale > m { v * scale } else { m },
    );
    past.iter_mut()
        .for_each(|v| *v = fast_exp(*v * scale - max)); // NaN stays NaN
    let inv = 1.0 / lanes(past, 0.0, |a, v| a + v);
    past.iter_mut().for_each(|v| *v *= inv);
    future.fill(0.0);
}

/// [`Fused::index_nll`] on the CPU: softmax in place of a copy of the
/// logits, kept for the backward pass, which adds `(softmax - onehot(y)) / N`.
fn index_nll_cpu<const V: usize, T: Tape<f32, Cpu> + Merge<T>>(
    logits: Tensor<(usize, Const<V>), f32, Cpu, T>,
    ys: &Tensor<(usize,), usize, Cpu>,
) -> Tensor<Rank0, f32, Cpu, T> {
    let (logits, mut tape) = logits.split_tape();
    let n = logits.shape().0;
    let mut probs = Scratch::take(n * V); // (N, V): the logits, then their softmax
    logits.copy_into(&mut probs);
    let mut y = vec![0usize; n]; // (N,)
    ys.copy_into(&mut y);
    let partial: Vec<f64> = probs
        .par_chunks_mut(BLOCK_ROWS * V)
        .zip(y.par_chunks(BLOCK_ROWS))
        .map(|(block, yb)| softmax_block::<V>(block, yb))
        .collect();
    let mean = partial.iter().sum::<f64>() / n.max(1) as f64; // blocks in order
    let out = logits.device().clone().tensor(mean as f32); // ()
    if T::OWNS_TAPE {
        let out_for_grad = out.clone();
        tape.add_backward_op(move |grads| {
            let g = grads.get(&out_for_grad).as_vec()[0] / n as f32;
            let grad = grads.get_or_alloc_mut(&logits)?; // (N, V)
            grad.par_chunks_mut(BLOCK_ROWS * V)
                .zip(probs.par_chunks(BLOCK_ROWS * V))
                .zip(y.par_chunks(BLOCK_ROWS))
                .for_each(|((gb, pb), yb)| {
                    gb.iter_mut().zip(pb).for_each(|(gj, &pj)| *gj += g * pj);
                    for (gr, &label) in gb.chunks_exact_mut(V).zip(yb) {
                        gr[label] -= g; // d/dlogits = (softmax - onehot(y)) / N
                    }
                });
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// Softmax in place of a block of rows, in sub-blocks of [`SUB_ROWS`];
/// returns the block's Σ (lse - x[y]). With AVX2 where the CPU has it.
fn softmax_block<const V: usize>(block: &mut [f32], labels: &[usize]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { softmax_block_avx2::<V>(block, labels) };
    }
    softmax_block_with::<V>(block, labels)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn softmax_block_avx2<const V: usize>(block: &mut [f32], labels: &[usize]) -> f64 {
    softmax_block_with::<V>(block, labels)
}

#[inline(always)]
fn softmax_block_with<const V: usize>(block: &mut [f32], labels: &[usize]) -> f64 {
    block
        .chunks_mut(SUB_ROWS * V)
        .zip(labels.chunks(SUB_ROWS))
        .map(|(rows, ys)| softmax_rows::<V>(rows, ys))
        .sum()
}

/// One block of rows: the loss sum and (if `want_grad`) its ∂W, in
/// sub-blocks of [`SUB_ROWS`]. Compiled twice: with AVX2 and FMA where the
/// CPU has them (checked once, at run time), and portable SSE2 otherwise.
fn block_kernel<const K: usize, const V: usize>(
    x: &[f32],
    y: &[usize],
    w: &[f32],
    want_grad: bool,
) -> (f64, Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { block_kernel_avx2::<K, V>(x, y, w, want_grad) };
    }
    block_kernel_with::<K, V>(x, y, w, want_grad, |a, b, c| a * b + c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_kernel_avx2<const K: usize, const V: usize>(
    x: &[f32],
    y: &[usize],
    w: &[f32],
    want_grad: bool,
) -> (f64, Vec<f32>) {
    block_kernel_with::<K, V>(x, y, w, want_grad, f32::mul_add)
}

#[inline(always)]
fn block_kernel_with<const K: usize, const V: usize>(
    x: &[f32],
    y: &[usize],
    w: &[f32],
    want_grad: bool,
    madd: impl Fn(f32, f32, f32) -> f32 + Copy,
) -> (f64, Vec<f32>) {
    let mut total = 0f64;
    let mut dw = if want_grad {
        [0f32; 1].repeat(K * V)
    } else {
        Vec::new()
    }; // (K, V)
    let mut logits = [0f32; 1].repeat(SUB_ROWS * V); // (rows, V), reused
    for (xs, ys) in x.chunks(SUB_ROWS * K).zip(y.chunks(SUB_ROWS)) {
        let l = &mut logits[..ys.len() * V];
        rows_times_w::<K, V>(xs, w, l, madd); // (rows, K) @ (K, V) -> (rows, V)
        total += softmax_rows::<V>(l, ys); // l is now softmax(logits), (rows, V)
        if want_grad {
            for (row, &label) in l.chunks_exact_mut(V).zip(ys) {
                row[label] -= 1.0; // softmax - onehot(y): ∂(lse - logit[y])/∂logits
            }
            add_rows_t_times_grad::<K, V>(xs, l, &mut dw, madd); // dw += xᵀ @ l
        }
    }
    (total, dw)
}

/// `out = x @ w` for a few rows: x (rows, K), w (K, V), out (rows, V). Each
/// output row is K scaled rows of w added up, in an accumulator of V values.
#[inline(always)]
fn rows_times_w<const K: usize, const V: usize>(
    x: &[f32],
    w: &[f32],
    out: &mut [f32],
    madd: impl Fn(f32, f32, f32) -> f32,
) {
    for (x_row, out_row) in x.chunks_exact(K).zip(out.chunks_exact_mut(V)) {
        let mut acc = [0f32; V]; // (V,)
        for (&a, w_row) in x_row.iter().zip(w.chunks_exact(V)) {
            for (s, &b) in acc.iter_mut().zip(w_row) {
                *s = madd(a, b, *s); // acc += x[n, k] * w[k, :]
            }
        }
        out_row.copy_from_slice(&acc);
    }
}

/// Softmax in place of a few rows (V values each), in three sweeps so that
/// the costly one, `exp`, runs over all of them as one flat loop the
/// compiler vectorises. Returns Σ (lse - x[y]) over the rows.
#[inline(always)]
fn softmax_rows<const V: usize>(rows: &mut [f32], labels: &[usize]) -> f64 {
    let mut total = 0f64;
    let mut lse = [0f32; SUB_ROWS]; // per row: log-sum-exp, minus the row's max
    for (row, &label) in rows.chunks_exact_mut(V).zip(labels) {
        let max = lanes(row, f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
        row.iter_mut().for_each(|v| *v -= max); // now every value is <= 0
        total -= row[label] as f64; // -(x[y] - max)
    }
    rows.iter_mut().for_each(|v| *v = fast_exp(*v)); // the flat, vectorised sweep
    for (row, lse) in rows.chunks_exact_mut(V).zip(&mut lse) {
        let sum = lanes(row, 0.0, |a, v| a + v);
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
        *lse = sum.ln();
    }
    total + lse[..labels.len()].iter().map(|&l| l as f64).sum::<f64>()
}

/// `dw += xᵀ @ g` for a few rows: x (rows, K), g (rows, V), dw (K, V).
#[inline(always)]
fn add_rows_t_times_grad<const K: usize, const V: usize>(
    x: &[f32],
    g: &[f32],
    dw: &mut [f32],
    madd: impl Fn(f32, f32, f32) -> f32,
) {
    if V > LANES {
        // General V: one row of dW at a time.
        for (x_row, g_row) in x.chunks_exact(K).zip(g.chunks_exact(V)) {
            for (&a, dw_row) in x_row.iter().zip(dw.chunks_exact_mut(V)) {
                for (s, &b) in dw_row.iter_mut().zip(g_row) {
                    *s = madd(a, b, *s); // dw[k, :] += x[n, k] * g[n, :]
                }
            }
        }
        return;
    }
    // V <= 32: a row of g fits four 8-wide registers, and two rows of dW
    // at a time stay in registers (8 of them) while the rows stream past.
    let g_row = |n: usize| -> [f32; LANES] {
        let mut padded = [0f32; LANES]; // g[n, :], zero beyond V
        padded[..V].copy_from_slice(&g[n * V..(n + 1) * V]);
        padded
    };
    for k in (0..K).step_by(2) {
        let k2 = (k + 1).min(K - 1); // an odd K repeats its last row, added once
        let mut acc = [[0f32; LANES]; 2]; // dw[k, :], dw[k2, :] for these rows
        for n in 0..x.len() / K {
            let gn = g_row(n);
            let (a0, a1) = (x[n * K + k], x[n * K + k2]);
            for j in 0..LANES {
                acc[0][j] = madd(a0, gn[j], acc[0][j]); // dw[k, j] += x[n, k] * g[n, j]
                acc[1][j] = madd(a1, gn[j], acc[1][j]);
            }
        }
        for (d, a) in dw[k * V..(k + 1) * V].iter_mut().zip(&acc[0]) {
            *d += a;
        }
        if k2 != k {
            for (d, a) in dw[k2 * V..(k2 + 1) * V].iter_mut().zip(&acc[1]) {
                *d += a;
            }
        }
    }
}

/// Width of the register-blocked ∂W kernel's rows.
const LANES: usize = 32;

/// Reusable `f32` buffers. A full-batch step needs the same large buffers
/// every time; taking them from here skips both the allocator's fresh,
/// page-faulting memory and zero-filling what is about to be overwritten.
static SCRATCH: std::sync::Mutex<Vec<Vec<f32>>> = std::sync::Mutex::new(Vec::new());

/// A buffer from [`SCRATCH`] of a given length, with unspecified contents;
/// it goes back on drop.
struct Scratch(Vec<f32>);

impl Scratch {
    fn take(len: usize) -> Self {
        let mut pool = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
        let found = pool.iter().position(|v| v.len() == len);
        let buf = match found {
            Some(i) => pool.swap_remove(i),
            None => vec![0f32; len],
        };
        Self(buf)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let mut pool = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < 8 {
            pool.push(std::mem::take(&mut self.0));
        }
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

#[cfg(feature = "cuda")]
impl Fused for Cuda {
    fn linear_nll<const K: usize, const V: usize, T: Tape<f32, Self> + Merge<T>>(
        x: &Tensor<(usize, Const<K>), f32, Self>,
        w: Tensor<Rank2<K, V>, f32, Self, T>,
        ys: &Tensor<(usize,), usize, Self>,
    ) -> Tensor<Rank0, f32, Self, T> {
        linear_nll_composed(x, w, ys)
    }

    fn index_nll<const V: usize, T: Tape<f32, Self> + Merge<T>>(
        logits: Tensor<(usize, Const<V>), f32, Self, T>,
        ys: &Tensor<(usize,), usize, Self>,
    ) -> Tensor<Rank0, f32, Self, T> {
        index_nll_composed(logits, ys)
    }

    fn tril_matmul(
        wei: &Tensor<(usize, usize), f32, Self>,
        x: &Tensor<(usize, usize, usize), f32, Self>,
    ) -> Tensor<(usize, usize, usize), f32, Self> {
        tril_matmul_composed(wei, x)
    }

    fn causal_attention<const H: usize, T: Tape<f32, Self> + Merge<T>>(
        q: Tensor<(usize, usize, Const<H>), f32, Self, T>,
        k: Tensor<(usize, usize, Const<H>), f32, Self, T>,
        v: Tensor<(usize, usize, Const<H>), f32, Self, T>,
        scale: f32,
    ) -> (
        Tensor<(usize, usize, Const<H>), f32, Self, T>,
        Tensor<(usize, usize, usize), f32, Self>,
    ) {
        causal_attention_composed(q, k, v, scale)
    }
}

#[cfg(test)]
mod tests {
    use super::fast_exp;

    #[test]
    fn fast_exp_is_within_two_ulp_of_std() {
        let mut worst = 0f32;
        for i in 0..=1_750_000 {
            let x = -87.0 + i as f32 * 1e-4; // [-87, 88]
            let (a, b) = (fast_exp(x), x.exp());
            worst = worst.max(((a - b) / b).abs() / f32::EPSILON);
        }
        assert!(worst <= 2.0, "worst relative error {worst} ulp");
        assert!(fast_exp(f32::NAN).is_nan());
        assert_eq!(fast_exp(0.0), 1.0);
        assert!(fast_exp(f32::NEG_INFINITY) < 1e-37);
    }
}
