//! LayerNorm in one pass per row, forward and backward.
//!
//! Composed from dfdx's ops (chapter 7's listing), one LayerNorm over
//! (B, T, C) is a mean, a broadcast subtraction, a square, another mean, an
//! addition, a square root, a broadcast division, and a broadcast multiply
//! and add for gamma and beta: nine tensors written and read again, and
//! dfdx's broadcasting kernels compute a multi-dimensional index for every
//! element, both ways. In a step of the rung "layernorm" the seven norms took
//! about as long as everything else together. Here each row of C values is
//! normalised while it sits in a register or two, and the backward pass needs
//! only what the forward kept: the normalised rows x̂ and each row's 1/σ.
//!
//! For a row x of C values, with x̂ = (x − mean) / σ, σ = √(var + ε) and
//! y = γ ⊙ x̂ + β, the backward pass is
//! ∂x = (g − mean(g) − x̂ · mean(g ⊙ x̂)) / σ with g = γ ⊙ ∂y,
//! ∂γ = Σ_rows ∂y ⊙ x̂ and ∂β = Σ_rows ∂y.
//!
//! Rows go to threads in blocks of [`ROWS`]; each block sums its own ∂γ and
//! ∂β, and the blocks' sums are added in block order, so the result does not
//! depend on the number of threads.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::{add_into, lanes, read, zeros};

/// Rows per task, in both passes.
const ROWS: usize = 64;

/// `Σ a ⊙ b` in 8 independent lanes, then the lanes in order: the same
/// result every run, and no long chain of dependent additions.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

// ANCHOR: layer_norm
/// [`Kernels::layer_norm`](crate::ops::Kernels::layer_norm) on the CPU.
pub fn layer_norm<const C: usize, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, usize, Const<C>), f32, Cpu, T>, // (B, T, C)
    gamma: &Tensor<(Const<C>,), f32, Cpu>,            // (C,)
    beta: &Tensor<(Const<C>,), f32, Cpu>,             // (C,)
    epsilon: f32,
) -> Tensor<(usize, usize, Const<C>), f32, Cpu, T> {
    let (x, xs) = read(x); // (B·T, C)
    let (x, mut tape) = x.split_tape();
    let (b, t, _) = *x.shape();
    let rows = b * t;
    let (g, be) = (read(gamma.clone()).1, read(beta.clone()).1); // (C,)
    let mut xhat = zeros(rows * C); // (B·T, C): the normalised rows
    let mut rstd = vec![0f32; rows]; // (B·T,): 1/σ of each row
    let mut out = zeros(rows * C); // (B, T, C)
    let c = C.max(1);
    xhat.par_chunks_mut(ROWS * c)
        .zip(rstd.par_chunks_mut(ROWS))
        .zip(out.par_chunks_mut(ROWS * c))
        .zip(xs.par_chunks(ROWS * c))
        .for_each(|(((xh, rs), o), xr)| {
            for (((xh, r), o), xr) in xh
                .chunks_exact_mut(c)
                .zip(rs.iter_mut())
                .zip(o.chunks_exact_mut(c))
                .zip(xr.chunks_exact(c))
            {
                let mean = lanes(xr, 0.0, |a, v| a + v) / C as f32;
                xh.iter_mut().zip(xr).for_each(|(h, &v)| *h = v - mean); // centred
                let var = dot(xh, xh) / C as f32;
                *r = 1.0 / (var + epsilon).sqrt();
                for (((h, o), &g), &be) in xh.iter_mut().zip(o.iter_mut()).zip(&g).zip(&be) {
                    *h *= *r; // x̂
                    *o = g * *h + be; // y = γ x̂ + β
                }
            }
        });
    let out = x.device().tensor_from_vec(out, (b, t, Const::<C>)); // (B, T, C)
    if T::OWNS_TAPE {
        let x = x.ghost(); // the gradient's key: the values are not needed again
        let (out_for_grad, gamma, beta) = (out.ghost(), gamma.clone(), beta.clone());
        tape.add_backward_op(move |grads| {
            // ∂out, taken out of `grads` for the pass (and put back), not copied
            let dout = std::mem::take(&mut **grads.get_or_alloc_mut(&out_for_grad)?);
            let mut dx = zeros(rows * C); // (B·T, C)
            let blocks = rows.div_ceil(ROWS);
            let mut partial = vec![0f32; blocks * 2 * C]; // per block: ∂γ (C,), then ∂β (C,)
            dx.par_chunks_mut(ROWS * c)
                .zip(partial.par_chunks_mut(2 * c))
                .zip(dout.par_chunks(ROWS * c))
                .zip(xhat.par_chunks(ROWS * c).zip(rstd.par_chunks(ROWS)))
                .for_each(|(((dx, part), dy), (xh, rs))| {
                    let (dg, db) = part.split_at_mut(C);
                    let mut gy = [0f32; C]; // γ ⊙ ∂y of one row
                    for (((dx, dy), xh), &r) in dx
                        .chunks_exact_mut(c)
                        .zip(dy.chunks_exact(c))
                        .zip(xh.chunks_exact(c))
                        .zip(rs)
                    {
                        for i in 0..C {
                            dg[i] += dy[i] * xh[i];
                            db[i] += dy[i];
                            gy[i] = g[i] * dy[i];
                        }
                        let mean_g = lanes(&gy, 0.0, |a, v| a + v) / C as f32;
                        let mean_gx = dot(&gy, xh) / C as f32;
                        for ((d, &gv), &h) in dx.iter_mut().zip(&gy).zip(xh) {
                            *d = (gv - mean_g - h * mean_gx) * r;
                        }
                    }
                });
            add_into(grads.get_or_alloc_mut(&x)?, &dx); // (B, T, C)
            for (param, at) in [(&gamma, 0), (&beta, C)] {
                let gp = grads.get_or_alloc_mut(param)?; // (C,)
                for part in partial.chunks_exact(2 * c) {
                    gp.iter_mut()
                        .zip(&part[at..at + C])
                        .for_each(|(g, d)| *g += d);
                }
            }
            **grads.get_or_alloc_mut(&out_for_grad)? = dout;
            Ok(())
        });
    }
    out.put_tape(tape)
}
// ANCHOR_END: layer_norm
