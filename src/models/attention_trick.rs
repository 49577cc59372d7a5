//! The mathematical trick in self-attention: a causal average of the past,
//! computed three ways that are one computation.
//!
//! Introduced in chapter 4. Token `t` may look at tokens `0..=t` and not at
//! the future. The weakest way to let it is to average them (a "bag of
//! words"): version 1 does that with loops; version 2 as one matrix multiply
//! by a lower-triangular matrix whose rows sum to 1; version 3 builds that
//! matrix from zeros and −∞ with a softmax, the form self-attention uses,
//! where the zeros become learned, data-dependent affinities (chapter 5).

use dfdx::prelude::*;

use crate::ops::Kernels;
use crate::torch_rng::{Randn, TorchGenerator};

/// Errors of the attention trick.
#[derive(Debug, thiserror::Error)]
pub enum TrickError {
    /// An input of the wrong size.
    #[error("expected {expected} values for shape {shape:?}, got {got}")]
    Shape {
        /// (B, T, C).
        shape: (usize, usize, usize),
        /// B·T·C.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// The device reported an error.
    #[error("device error: {0}")]
    Device(String),
}

fn dev_err<E: std::fmt::Debug>(e: E) -> TrickError {
    TrickError::Device(format!("{e:?}"))
}

/// A (B, T, C) tensor on a device.
pub type Btc<D> = Tensor<(usize, usize, usize), f32, D>;

// ANCHOR: v1
/// Version 1: `xbow[b, t] = mean(x[b, 0..=t])`, by explicit loops.
pub fn bag_of_words_loops<D: Device<f32>>(x: &Btc<D>) -> Result<Btc<D>, TrickError> {
    let (b, t, c) = *x.shape();
    let xs = x.as_vec(); // (B, T, C), row-major
    let mut out = vec![0f32; b * t * c]; // (B, T, C)
    for bi in 0..b {
        for ti in 0..t {
            let sum = &mut out[(bi * t + ti) * c..(bi * t + ti + 1) * c]; // xbow[b, t], (C,)
            for prev in 0..=ti {
                let x_prev = &xs[(bi * t + prev) * c..(bi * t + prev + 1) * c]; // x[b, prev], (C,)
                for (s, &v) in sum.iter_mut().zip(x_prev) {
                    *s += v;
                }
            }
            sum.iter_mut().for_each(|s| *s /= (ti + 1) as f32); // the mean
        }
    }
    x.device()
        .try_tensor_from_vec(out, (b, t, c))
        .map_err(dev_err)
}
// ANCHOR_END: v1

// ANCHOR: v2
/// The (T, T) averaging matrix: lower-triangular ones, each row divided by
/// its sum, so row `t` holds `1/(t+1)` in columns `0..=t`.
pub fn tril_average<D: Device<f32>>(dev: &D, t: usize) -> Tensor<(usize, usize), f32, D> {
    let wei = dev.ones_like(&(t, t)).lower_tri(0); // (T, T): torch.tril(torch.ones(T, T))
    let rows = wei.clone().sum::<(usize,), Axis<1>>(); // (T,): t + 1
    wei / rows.broadcast_like::<_, Axis<1>>(&(t, t)) // (T, T): wei / wei.sum(1, keepdim=True)
}
// ANCHOR_END: v2

/// Version 2: `wei @ x` with the averaging matrix, for every sequence of the
/// batch ([`Kernels::tril_matmul`]).
pub fn bag_of_words_matmul<D: Kernels>(x: &Btc<D>) -> Btc<D> {
    let (_, t, _) = *x.shape();
    let wei = tril_average(x.device(), t); // (T, T)
    D::tril_matmul(&wei, x) // (T, T) @ (B, T, C) -> (B, T, C)
}

// ANCHOR: v3
/// The affinities of version 3 before the softmax: all zero (every token
/// finds every other equally interesting), and −∞ above the diagonal so that
/// the future cannot be seen: `wei.masked_fill(tril == 0, float('-inf'))`.
pub fn masked_affinities<D: Device<f32>>(dev: &D, t: usize) -> Tensor<(usize, usize), f32, D> {
    let affinities = dev.zeros_like(&(t, t)); // (T, T): torch.zeros((T, T))
    let future = dev.upper_tri_like(&(t, t), f32::NEG_INFINITY, 1); // (T, T): −∞ above the diagonal
    affinities + future // (T, T)
}

/// The same averaging matrix, built as attention builds it: the softmax of
/// each row of the masked affinities. exp(−∞) = 0, so the future gets weight
/// 0, and the equal affinities of the past share the rest equally.
pub fn softmax_average<D: Device<f32>>(dev: &D, t: usize) -> Tensor<(usize, usize), f32, D> {
    masked_affinities(dev, t).softmax::<Axis<1>>() // (T, T): F.softmax(wei, dim=-1)
}
// ANCHOR_END: v3

/// Version 3: `softmax(masked zeros) @ x`.
pub fn bag_of_words_softmax<D: Kernels>(x: &Btc<D>) -> Btc<D> {
    let (_, t, _) = *x.shape();
    let wei = softmax_average(x.device(), t); // (T, T)
    D::tril_matmul(&wei, x) // (T, T) @ (B, T, C) -> (B, T, C)
}

/// A (B, T, C) tensor of standard normal draws from `rng` (torch's
/// generator replayed, or charlm's own).
pub fn randn<D: Device<f32>, R: Randn + ?Sized>(
    dev: &D,
    shape: (usize, usize, usize),
    rng: &mut R,
) -> Btc<D> {
    let (b, t, c) = shape;
    dev.tensor_from_vec(rng.randn(b * t * c), shape)
}

/// Largest |a − b| over two tensors of the same shape.
pub fn max_abs_diff<D: Device<f32>>(a: &Btc<D>, b: &Btc<D>) -> f32 {
    a.as_vec()
        .iter()
        .zip(b.as_vec())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The lecture's small demo: `a` (3, 3) lower-triangular ones, `b` (3, 2) of
/// random integers 0..10, and `a @ b`: running sums of `b`'s rows; then `a`
/// with rows normalised, and `a @ b`: running means.
pub struct Demo {
    /// `tril(ones(3, 3))`.
    pub a: [[f32; 3]; 3],
    /// Random integers, (3, 2).
    pub b: [[f32; 2]; 3],
    /// `a @ b`: running sums.
    pub sums: [[f32; 2]; 3],
    /// `a` with rows summing to 1.
    pub a_mean: [[f32; 3]; 3],
    /// `a_mean @ b`: running means.
    pub means: [[f32; 2]; 3],
}

/// Runs the demo on `dev` with `b`'s integers drawn from `g`, torch's
/// generator replayed (the lecture seeds it with `torch.manual_seed(42)`).
pub fn demo<D: Device<f32>>(dev: &D, g: &mut TorchGenerator) -> Demo {
    // ANCHOR: demo
    let a: Tensor<Rank2<3, 3>, f32, D> = dev.ones().lower_tri(0); // (3, 3)
    let b_values = g.randint_floats(10, 6); // torch.randint(0, 10, (3, 2)).float()
    let b: Tensor<Rank2<3, 2>, f32, D> = dev.tensor_from_vec(b_values, (Const, Const)); // (3, 2)
    let sums = a.clone().matmul(b.clone()); // (3, 2): row t = b[0] + ... + b[t]
    let a_mean = a.clone()
        / a.clone()
            .sum::<Rank1<3>, Axis<1>>()
            .broadcast::<Rank2<3, 3>, Axis<1>>(); // rows sum to 1
    let means = a_mean.clone().matmul(b.clone()); // (3, 2): row t = mean(b[0..=t])
                                                  // ANCHOR_END: demo
    Demo {
        a: grid(a.as_vec()),
        b: grid(b.as_vec()),
        sums: grid(sums.as_vec()),
        a_mean: grid(a_mean.as_vec()),
        means: grid(means.as_vec()),
    }
}

/// R rows of C values from a row-major vector of R·C.
fn grid<const R: usize, const C: usize>(v: Vec<f32>) -> [[f32; C]; R] {
    let mut out = [[0f32; C]; R];
    for (row, chunk) in out.iter_mut().zip(v.chunks_exact(C)) {
        row.copy_from_slice(chunk);
    }
    out
}
