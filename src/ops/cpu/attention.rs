//! The causal kernels of chapters 4 and 5: the triangular matmul of the
//! causal average, and causal self-attention forward and backward. Both work
//! on one sequence of the batch per task (in parallel) and split every
//! product into blocks of `TRIL_BLOCK` rows, so that nothing above the
//! diagonal, which the mask makes zero, is ever computed.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::{fast_exp, lanes, Scratch};

/// Rows per block of the triangular products: block `r` of rows only meets
/// the first `(r + 1) · TRIL_BLOCK` rows (or columns) of the other operand.
const TRIL_BLOCK: usize = 64;

/// A row-major view of a matrix inside a slice: (offset, row stride,
/// column stride). A transposed view swaps the strides.
#[derive(Clone, Copy)]
pub(crate) struct View {
    at: usize,
    rs: usize,
    cs: usize,
}

impl View {
    pub(crate) fn rows(at: usize, rs: usize) -> Self {
        Self { at, rs, cs: 1 }
    }
    pub(crate) fn transposed(at: usize, rs: usize) -> Self {
        Self { at, rs: 1, cs: rs }
    }
    /// Whether an (r, c) matrix seen this way lies inside `len` values.
    fn fits(self, (r, c): (usize, usize), len: usize) -> bool {
        r == 0 || c == 0 || self.at + (r - 1) * self.rs + (c - 1) * self.cs < len
    }
}

/// `dst (m, n) = a (m, k) @ b (k, n)`, single-threaded, with the gemm crate
/// (0.19, a later release than the 0.15 dfdx uses). Panics if a view reaches outside its slice.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_into(
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
pub(crate) fn row_blocks(t: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..t)
        .step_by(TRIL_BLOCK)
        .map(move |r0| (r0, (r0 + TRIL_BLOCK).min(t)))
}

/// [`Kernels::tril_matmul`](crate::ops::Kernels::tril_matmul) on the CPU: for each row of the batch (in
/// parallel), each block of rows of wei times the rows of x up to the
/// block's diagonal: 5/8 of a dense matmul's multiply-adds at T = 256, and
/// no threads waiting on each other inside one small matmul.
pub fn tril_matmul(
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

/// [`Kernels::causal_attention`](crate::ops::Kernels::causal_attention) on the CPU, one sequence of the batch per
/// task (in parallel), each product split in blocks of `TRIL_BLOCK` rows
/// so that nothing above the diagonal is computed: the affinities, the
/// softmax (only the visible part of each row), `wei @ v`; backward,
/// `∂wei = ∂out @ vᵀ`, `∂s = scale · wei ⊙ (∂wei − Σ ∂wei ⊙ wei)` row by row,
/// `∂q = ∂s @ k`, `∂k = ∂sᵀ @ q`, `∂v = weiᵀ @ ∂out`. dfdx's composed ops
/// compute every product in full, make about eight single-threaded passes
/// over the (B, T, T) affinities each way for the scale, mask and softmax,
/// and build a fresh −∞ mask every call.
#[allow(clippy::type_complexity)]
pub fn causal_attention<const H: usize, T: Tape<f32, Cpu> + Merge<T>>(
    q: Tensor<(usize, usize, Const<H>), f32, Cpu, T>,
    k: Tensor<(usize, usize, Const<H>), f32, Cpu, T>,
    v: Tensor<(usize, usize, Const<H>), f32, Cpu, T>,
    scale: f32,
) -> (
    Tensor<(usize, usize, Const<H>), f32, Cpu, T>,
    Tensor<(usize, usize, usize), f32, Cpu>,
) {
    let (q, tq) = q.contiguous().split_tape();
    let (k, tk) = k.contiguous().split_tape();
    let (v, tv) = v.contiguous().split_tape();
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
        let (q, k, v) = (q.ghost(), k.ghost(), v.ghost()); // the gradients' keys: the values are copied above
        let out_for_grad = out.ghost(); // its id, not its values
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
pub(crate) fn causal_softmax_row(row: &mut [f32], i: usize, scale: f32) {
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
