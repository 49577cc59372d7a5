//! A block's feed-forward layer, `Linear(C, F)`, ReLU, `Linear(F, C)` and
//! dropout, in one kernel.
//!
//! Composed, the hidden layer is a (B, T, F) tensor, four times wider than
//! the block's stream, made twice (before and after the ReLU), copied into
//! the second product, and given two fresh zeroed gradients on the way back.
//! Here it stays inside the kernel: one product writes it, the ReLU runs on
//! it in place (the zeros it leaves say where it did not pass), a second
//! product reads it;
//! backward, its gradient is one buffer that the second product writes and
//! the first reads.

use dfdx::prelude::*;

use super::linear::{both, gemm_strided};
use rayon::prelude::*;

use super::{add_row_sums, apply_mask, read, rows_of, zeros};
use crate::ops::composed::Dropping;
use crate::ops::rng::keep_mask;

// ANCHOR: feed_forward
/// [`Kernels::feed_forward`](crate::ops::Kernels::feed_forward) on the CPU.
pub fn feed_forward<const C: usize, const F: usize, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, usize, Const<C>), f32, Cpu, T>, // (B, T, C)
    (w1, b1): (&Tensor<Rank2<F, C>, f32, Cpu>, &Tensor<Rank1<F>, f32, Cpu>), // (F, C), (F,)
    (w2, b2): (&Tensor<Rank2<C, F>, f32, Cpu>, &Tensor<Rank1<C>, f32, Cpu>), // (C, F), (C,)
    dropping: Dropping,
) -> Tensor<(usize, usize, Const<C>), f32, Cpu, T> {
    let (x, xs) = read(x); // (N, C), N = B·T
    let (x, mut tape) = x.split_tape();
    let (b, t, _) = *x.shape();
    let n = b * t;
    let (w1v, w2v) = (read(w1.clone()).1, read(w2.clone()).1); // (F, C), (C, F)
    let mut h = rows_of(&read(b1.clone()).1, n); // (N, F), each row starting as the bias
    gemm_strided((n, F, C), true, &mut h, (F, 1), &xs, (C, 1), &w1v, (1, C)); // += x @ W1ᵀ
    h.par_chunks_mut(1 << 14)
        .for_each(|c| c.iter_mut().for_each(|v| *v = v.max(0.0))); // ReLU, in place
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
            // through the ReLU: 0 where it did not pass (where h is 0)
            dh.par_chunks_mut(1 << 14)
                .zip(h.par_chunks(1 << 14))
                .for_each(|(d, h)| {
                    d.iter_mut()
                        .zip(h)
                        .for_each(|(d, &h)| *d *= f32::from(u8::from(h > 0.0)))
                });
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
