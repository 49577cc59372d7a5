//! A block's multi-head self-attention, projection and dropout included, in
//! one kernel.
//!
//! Composed (chapter 7's listing), a block's attention is a dozen dfdx
//! tensors: three products and three head splits for q, k and v, the
//! affinities, the softmax, the weighted sums, the merge, the projection,
//! and in training three dropout masks and products. Every one of them is a
//! fresh buffer, and backward a fresh, zeroed gradient, each written and read
//! on one thread. At chapter 8's `cpu` preset that bookkeeping cost about as
//! much as the arithmetic. Here the work lives in buffers of the kernel's
//! own:
//!
//! - `[q | k | v] = x @ [Wq | Wk | Wv]`, one product over all B·T tokens
//!   into a (B·T, 3C) buffer;
//! - each sequence's heads (in parallel over sequences) read their queries,
//!   keys and values where that product wrote them, compute the weights a
//!   block of rows at a time without ever reaching above the diagonal, and
//!   write their outputs side by side into a (B·T, C) buffer: no head is
//!   copied, split or merged;
//! - the projection is one more product; dropout's masks are drawn from the
//!   run's generator in the composed code's order (every weight, then every
//!   output), so the two compute the same numbers;
//! - backward retraces the same path with the weights the forward kept.
//!
//! Tasks write disjoint rows and products split only their outputs, so the
//! result does not depend on the number of threads.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::attention::{causal_softmax_row, gemm_into, row_blocks, View};
use super::linear::{both, gemm_strided};
use super::qkv::side_by_side;
use super::{add_row_sums, apply_mask, read, rows_of, zeros};
use crate::ops::composed::Dropping;
use crate::ops::rng::keep_mask;

/// Dropout's probability and masks for one call: the weights' (B·NH, T, T)
/// and the output's (B, T, C).
struct Masks {
    p: f32,
    weights: Vec<bool>,
    out: Vec<bool>,
}

// ANCHOR: self_attention
// ANCHOR: self_attention_forward
/// [`Kernels::self_attention`](crate::ops::Kernels::self_attention) on the CPU.
#[allow(clippy::too_many_arguments)]
pub fn self_attention<const C: usize, const NH: usize, const HS: usize, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, usize, Const<C>), f32, Cpu, T>, // (B, T, C)
    [query, key, value]: [&Tensor<Rank2<C, C>, f32, Cpu>; 3], // (C, NH·HS) each
    proj_weight: &Tensor<Rank2<C, C>, f32, Cpu>,      // (C, C)
    proj_bias: &Tensor<Rank1<C>, f32, Cpu>,           // (C,)
    dropping: Dropping,
) -> Tensor<(usize, usize, Const<C>), f32, Cpu, T> {
    assert_eq!(
        C,
        NH * HS,
        "self_attention: C must be NH heads times HS channels"
    );
    let (x, xs) = read(x); // (N, C), N = B·T
    let (x, mut tape) = x.split_tape();
    let (b, t, _) = *x.shape();
    let (n, c3, sq) = (b * t, 3 * C, t * t);
    let scale = (HS as f32).powf(-0.5);
    let w = side_by_side([query, key, value]); // (C, 3C)
    let mut qkv = zeros(n * c3); // (N, 3C): [q | k | v] of every token
    gemm_strided(
        (n, c3, C),
        false,
        &mut qkv,
        (c3, 1),
        &xs,
        (C, 1),
        &w,
        (c3, 1),
    ); // x @ [Wq | Wk | Wv]
    let masks = dropping.filter(|(p, _)| *p > 0.0).map(|(p, rng)| {
        let weights = keep_mask(rng, b * NH * sq, p); // drawn first, as the composed code does
        let out = keep_mask(rng, n * C, p);
        Masks { p, weights, out }
    });
    let mut weights = zeros(b * NH * sq); // (B·NH, T, T): softmax, not dropped
    let mut heads = zeros(n * C); // (N, C): the heads' outputs side by side
    heads
        .par_chunks_mut(t * C)
        .zip(weights.par_chunks_mut(NH * sq))
        .enumerate()
        .for_each(|(bi, (heads_b, w_b))| {
            let base = bi * t * c3; // this sequence's rows of [q | k | v]
            let mut dropped = vec![0f32; if masks.is_some() { sq } else { 0 }];
            for (h, w_h) in w_b.chunks_exact_mut(sq).enumerate() {
                let (q, k, v) = (base + h * HS, base + C + h * HS, base + 2 * C + h * HS);
                for (r0, r1) in row_blocks(t) {
                    let (s, qv, kt) = (
                        View::rows(r0 * t, t),
                        View::rows(q + r0 * c3, c3),
                        View::transposed(k, c3),
                    );
                    gemm_into((r1 - r0, r1, HS), w_h, s, &qkv, qv, &qkv, kt); // q @ kᵀ, the past only
                }
                for (i, row) in w_h.chunks_exact_mut(t).enumerate() {
                    causal_softmax_row(row, i, scale); // scaled, columns 0..=i; the rest 0
                }
                let p_h: &[f32] = match &masks {
                    Some(m) => {
                        dropped.copy_from_slice(w_h);
                        let at = (bi * NH + h) * sq;
                        apply_mask(&mut dropped, &m.weights[at..at + sq], m.p);
                        &dropped
                    }
                    None => w_h,
                };
                for (r0, r1) in row_blocks(t) {
                    let (o, pv, vv) = (
                        View::rows(r0 * C + h * HS, C),
                        View::rows(r0 * t, t),
                        View::rows(v, c3),
                    );
                    gemm_into((r1 - r0, HS, r1), heads_b, o, p_h, pv, &qkv, vv);
                    // wei @ v, into head h's columns
                }
            }
        });
    let (pw, pb) = (read(proj_weight.clone()).1, read(proj_bias.clone()).1); // (C, C), (C,)
    let mut out = rows_of(&pb, n); // (N, C), each row starting as the bias
    gemm_strided(
        (n, C, C),
        true,
        &mut out,
        (C, 1),
        &heads,
        (C, 1),
        &pw,
        (1, C),
    ); // += heads @ Wᵀ
    if let Some(m) = &masks {
        apply_mask(&mut out, &m.out, m.p);
    }
    let out = x.device().tensor_from_vec(out, (b, t, Const::<C>)); // (B, T, C)
                                                                   // ANCHOR_END: self_attention_forward
    if T::OWNS_TAPE {
        let x = x.ghost(); // the gradient's key: the values are not needed again
        let out_for_grad = out.ghost(); // its id, not its values
        let maps = [query.clone(), key.clone(), value.clone()];
        let (proj_weight, proj_bias) = (proj_weight.clone(), proj_bias.clone());
        tape.add_backward_op(move |grads| {
            // ∂out, taken out of `grads` for the pass (and put back), not copied
            let mut dout = std::mem::take(&mut **grads.get_or_alloc_mut(&out_for_grad)?);
            if let Some(m) = &masks {
                apply_mask(&mut dout, &m.out, m.p); // through the output's dropout, in place
            }
            add_row_sums(grads.get_or_alloc_mut(&proj_bias)?, &dout); // ∂b += Σ_rows ∂out
            let mut dpw = std::mem::take(&mut **grads.get_or_alloc_mut(&proj_weight)?); // (C, C)
            let mut dheads = zeros(n * C); // (N, C)
            both(
                || {
                    gemm_strided(
                        (C, C, n),
                        true,
                        &mut dpw,
                        (C, 1),
                        &dout,
                        (1, C),
                        &heads,
                        (C, 1),
                    )
                }, // ∂W += ∂outᵀ @ heads
                || {
                    gemm_strided(
                        (n, C, C),
                        false,
                        &mut dheads,
                        (C, 1),
                        &dout,
                        (C, 1),
                        &pw,
                        (C, 1),
                    )
                }, // ∂out @ W
            );
            **grads.get_or_alloc_mut(&proj_weight)? = dpw;
            **grads.get_or_alloc_mut(&out_for_grad)? = dout;
            let mut dqkv = zeros(n * c3); // (N, 3C): ∂[q | k | v]
            dqkv.par_chunks_mut(t * c3)
                .enumerate()
                .for_each(|(bi, dqkv_b)| {
                    let (base, hb) = (bi * t * c3, bi * t * C); // this sequence in [q | k | v], in the heads
                    let mut ds = vec![0f32; sq]; // (T, T): ∂wei, then ∂s
                    let mut dropped = vec![0f32; if masks.is_some() { sq } else { 0 }];
                    for h in 0..NH {
                        // ANCHOR: self_attention_ds
                        let at = (bi * NH + h) * sq;
                        let w_h = &weights[at..at + sq];
                        let (q, k, v) = (base + h * HS, base + C + h * HS, base + 2 * C + h * HS);
                        let dh = hb + h * HS; // head h's gradient, (T, HS) with row stride C
                        for (r0, r1) in row_blocks(t) {
                            let (d, gv, vt) = (
                                View::rows(r0 * t, t),
                                View::rows(dh + r0 * C, C),
                                View::transposed(v, c3),
                            );
                            gemm_into((r1 - r0, r1, HS), &mut ds, d, &dheads, gv, &qkv, vt);
                            // ∂wei = ∂head @ vᵀ
                        }
                        if let Some(m) = &masks {
                            apply_mask(&mut ds, &m.weights[at..at + sq], m.p); // through the weights' dropout
                        }
                        for (i, (d, w)) in
                            ds.chunks_exact_mut(t).zip(w_h.chunks_exact(t)).enumerate()
                        {
                            let (d, w) = (&mut d[..=i], &w[..=i]); // the visible columns
                            let dot: f32 = d.iter().zip(w).map(|(g, w)| g * w).sum(); // Σ ∂wei ⊙ wei
                            for (g, &w) in d.iter_mut().zip(w) {
                                *g = scale * w * (*g - dot); // ∂s
                            }
                        }
                        for (i, row) in ds.chunks_exact_mut(t).enumerate() {
                            row[i + 1..].fill(0.0); // nothing flows from the future
                        }
                        // ANCHOR_END: self_attention_ds
                        let p_h: &[f32] = match &masks {
                            Some(m) => {
                                dropped.copy_from_slice(w_h);
                                apply_mask(&mut dropped, &m.weights[at..at + sq], m.p);
                                &dropped
                            }
                            None => w_h,
                        };
                        let (q_, k_, v_) = (h * HS, C + h * HS, 2 * C + h * HS); // head h's columns in ∂[q | k | v]
                        for (r0, r1) in row_blocks(t) {
                            let (o, sv) = (View::rows(r0 * c3 + q_, c3), View::rows(r0 * t, t));
                            gemm_into(
                                (r1 - r0, HS, r1),
                                dqkv_b,
                                o,
                                &ds,
                                sv,
                                &qkv,
                                View::rows(k, c3),
                            ); // ∂q = ∂s @ k
                            let st = View::transposed(r0 * t + r0, t); // (∂s)ᵀ, rows r0..r1, columns r0..T
                            let o = View::rows(r0 * c3 + k_, c3);
                            gemm_into(
                                (r1 - r0, HS, t - r0),
                                dqkv_b,
                                o,
                                &ds,
                                st,
                                &qkv,
                                View::rows(q + r0 * c3, c3),
                            ); // ∂k = ∂sᵀ @ q
                            let o = View::rows(r0 * c3 + v_, c3);
                            let later = View::rows(dh + r0 * C, C);
                            gemm_into((r1 - r0, HS, t - r0), dqkv_b, o, p_h, st, &dheads, later);
                            // ∂v = weiᵀ @ ∂head
                        }
                    }
                });
            let mut dx = std::mem::take(&mut **grads.get_or_alloc_mut(&x)?); // (N, C)
            let mut dw = vec![0f32; C * c3]; // (C, 3C)
            both(
                || {
                    gemm_strided(
                        (n, C, c3),
                        true,
                        &mut dx,
                        (C, 1),
                        &dqkv,
                        (c3, 1),
                        &w,
                        (1, c3),
                    )
                }, // += ∂[q | k | v] @ Wᵀ
                || {
                    gemm_strided(
                        (C, c3, n),
                        false,
                        &mut dw,
                        (c3, 1),
                        &xs,
                        (1, C),
                        &dqkv,
                        (c3, 1),
                    )
                }, // xᵀ @ ∂[q | k | v]
            );
            **grads.get_or_alloc_mut(&x)? = dx;
            for (part, map) in maps.iter().enumerate() {
                let g = grads.get_or_alloc_mut(map)?; // (C, C)
                for (i, row) in g.chunks_exact_mut(C).enumerate() {
                    let from = i * c3 + part * C;
                    row.iter_mut()
                        .zip(&dw[from..from + C])
                        .for_each(|(g, d)| *g += d);
                }
            }
            Ok(())
        });
    }
    out.put_tape(tape)
}
// ANCHOR_END: self_attention
