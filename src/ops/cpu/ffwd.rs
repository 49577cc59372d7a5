//! A block's feed-forward layer, `Linear(C, F)`, ReLU (or GELU),
//! `Linear(F, C)` and dropout, in one kernel.
//!
//! Composed, the hidden layer is a (B, T, F) tensor, four times wider than
//! the block's stream, made twice (before and after the ReLU), copied into
//! the second product, and given two fresh zeroed gradients on the way back.
//! Here it stays inside the kernel: one product writes it, the ReLU runs on
//! it in place (the zeros it leaves say where it did not pass), a second
//! product reads it;
//! backward, its gradient is one buffer that the second product writes and
//! the first reads. GELU's derivative needs the values before it, so with
//! GELU the kernel keeps those too (one more (N, F) buffer).

use dfdx::prelude::*;

use super::linear::{both, gemm_strided};
use rayon::prelude::*;

use super::{add_row_sums, apply_mask, fast_exp, read, rows_of, zeros};
use crate::ops::composed::Dropping;
use crate::ops::rng::keep_mask;
use crate::ops::ActivationKind;

/// `tanh y = 1 − 2 / (e^{2y} + 1)`, with the branch-free [`fast_exp`] so
/// that loops over slices vectorise (libm's `tanhf`, which dfdx's
/// `fast_gelu` calls, does not). GELU from it is tested within 1e-6 of
/// dfdx's.
#[inline(always)]
pub fn fast_tanh(y: f32) -> f32 {
    1.0 - 2.0 / (fast_exp(2.0 * y) + 1.0)
}

/// √(2/π), GELU's scale inside the tanh.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

// ANCHOR: gelu
/// GELU as GPT-2 and dfdx's `fast_gelu` compute it:
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    let inner = SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x));
    0.5 * x * (1.0 + fast_tanh(inner))
}
// ANCHOR_END: gelu

/// The derivative of [`gelu`] at x: `0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)`,
/// t the tanh above.
#[inline(always)]
pub fn gelu_derivative(x: f32) -> f32 {
    let x_sq = x * x;
    let t = fast_tanh(SQRT_2_OVER_PI * (x + 0.044715 * (x_sq * x)));
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x_sq)
}

// ANCHOR: feed_forward
/// [`Kernels::feed_forward`](crate::ops::Kernels::feed_forward) on the CPU.
pub fn feed_forward<const C: usize, const F: usize, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, usize, Const<C>), f32, Cpu, T>, // (B, T, C)
    (w1, b1): (&Tensor<Rank2<F, C>, f32, Cpu>, &Tensor<Rank1<F>, f32, Cpu>), // (F, C), (F,)
    (w2, b2): (&Tensor<Rank2<C, F>, f32, Cpu>, &Tensor<Rank1<C>, f32, Cpu>), // (C, F), (C,)
    activation: ActivationKind,
    dropping: Dropping,
) -> Tensor<(usize, usize, Const<C>), f32, Cpu, T> {
    let (x, xs) = read(x); // (N, C), N = B·T
    let (x, mut tape) = x.split_tape();
    let (b, t, _) = *x.shape();
    let n = b * t;
    let (w1v, w2v) = (read(w1.clone()).1, read(w2.clone()).1); // (F, C), (C, F)
    let mut h = rows_of(&read(b1.clone()).1, n); // (N, F), each row starting as the bias
    gemm_strided((n, F, C), true, &mut h, (F, 1), &xs, (C, 1), &w1v, (1, C)); // += x @ W1ᵀ
    let pre = match activation {
        ActivationKind::Gelu if T::OWNS_TAPE => Some(h.clone()), // (N, F): GELU's derivative reads them
        _ => None, // ReLU's zeros say where it did not pass; no tape, no backward
    };
    match activation {
        ActivationKind::Relu => h
            .par_chunks_mut(1 << 14)
            .for_each(|c| c.iter_mut().for_each(|v| *v = v.max(0.0))), // ReLU, in place
        ActivationKind::Gelu => h
            .par_chunks_mut(1 << 14)
            .for_each(|c| c.iter_mut().for_each(|v| *v = gelu(*v))), // GELU, in place
    }
    let mut out = rows_of(&read(b2.clone()).1, n); // (N, C)
    gemm_strided((n, C, F), true, &mut out, (C, 1), &h, (F, 1), &w2v, (1, F)); // += h @ W2ᵀ
    let dropped = dropping
        .filter(|(p, _)| *p > 0.0)
        .map(|(p, rng)| (p, keep_mask(rng, n * C, p)));
    if let Some((p, keep)) = &dropped {
        apply_mask(&mut out, keep, *p);
    }
    let out = x.device().tensor_from_vec(out, (b, t, Const::<C>)); // (B, T, C)
    if T::OWNS_TAPE {
        let x = x.ghost(); // the gradient's key: the values are not needed again
        let out_for_grad = out.ghost(); // its id, not its values
        let (w1, b1, w2, b2) = (w1.clone(), b1.clone(), w2.clone(), b2.clone());
        tape.add_backward_op(move |grads| {
            // ∂out, taken out of `grads` for the pass (and put back), not copied
            let mut dout = std::mem::take(&mut **grads.get_or_alloc_mut(&out_for_grad)?);
            if let Some((p, keep)) = &dropped {
                apply_mask(&mut dout, keep, *p); // through the dropout, in place
            }
            add_row_sums(grads.get_or_alloc_mut(&b2)?, &dout); // ∂b2 += Σ_rows ∂out
            let mut dw2 = std::mem::take(&mut **grads.get_or_alloc_mut(&w2)?); // (C, F)
            let mut dh = zeros(n * F); // (N, F)
            both(
                || gemm_strided((C, F, n), true, &mut dw2, (F, 1), &dout, (1, C), &h, (F, 1)), // ∂W2 += ∂outᵀ @ h
                || {
                    gemm_strided(
                        (n, F, C),
                        false,
                        &mut dh,
                        (F, 1),
                        &dout,
                        (C, 1),
                        &w2v,
                        (F, 1),
                    )
                }, // ∂out @ W2
            );
            **grads.get_or_alloc_mut(&w2)? = dw2;
            **grads.get_or_alloc_mut(&out_for_grad)? = dout;
            match &pre {
                // through the ReLU: 0 where it did not pass (where h is 0)
                None => dh
                    .par_chunks_mut(1 << 14)
                    .zip(h.par_chunks(1 << 14))
                    .for_each(|(d, h)| {
                        d.iter_mut()
                            .zip(h)
                            .for_each(|(d, &h)| *d *= f32::from(u8::from(h > 0.0)))
                    }),
                // through the GELU: times its derivative at the values before it
                Some(pre) => dh
                    .par_chunks_mut(1 << 14)
                    .zip(pre.par_chunks(1 << 14))
                    .for_each(|(d, x)| {
                        d.iter_mut()
                            .zip(x)
                            .for_each(|(d, &x)| *d *= gelu_derivative(x))
                    }),
            }
            add_row_sums(grads.get_or_alloc_mut(&b1)?, &dh); // ∂b1 += Σ_rows ∂h
            let mut dw1 = std::mem::take(&mut **grads.get_or_alloc_mut(&w1)?); // (F, C)
            let mut dx = std::mem::take(&mut **grads.get_or_alloc_mut(&x)?); // (N, C)
            both(
                || gemm_strided((F, C, n), true, &mut dw1, (C, 1), &dh, (1, F), &xs, (C, 1)), // ∂W1 += ∂hᵀ @ x
                || gemm_strided((n, C, F), true, &mut dx, (C, 1), &dh, (F, 1), &w1v, (C, 1)), // ∂x += ∂h @ W1
            );
            **grads.get_or_alloc_mut(&w1)? = dw1;
            **grads.get_or_alloc_mut(&x)? = dx;
            Ok(())
        });
    }
    out.put_tape(tape)
}
// ANCHOR_END: feed_forward
