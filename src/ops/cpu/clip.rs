//! Gradient clipping's two passes over the gradients, where they lie.
//!
//! Composed, measuring a gradient's norm copies it out of the `Gradients`
//! (twice: a tensor, then a vector), and scaling it builds a traced product
//! whose backward pass computes the scaled values into a fresh `Gradients`,
//! for every parameter, every step: at the `cpu` preset of chapter 8, that
//! was about a tenth of a step. Here both read and write the gradient's
//! buffer in place, in fixed chunks across threads (the partial sums are
//! added in chunk order, so the norm does not depend on the thread count).

use dfdx::prelude::*;
use rayon::prelude::*;

/// Elements per task.
const CHUNK: usize = 1 << 14;

// ANCHOR: clip
/// [`Kernels::grad_sum_squares`](crate::ops::Kernels::grad_sum_squares) on the CPU.
pub fn grad_sum_squares<S: Shape>(
    grads: &mut Gradients<f32, Cpu>,
    p: &Tensor<S, f32, Cpu>,
) -> Result<f64, CpuError> {
    let g = grads.get_or_alloc_mut(p)?;
    let partial: Vec<f64> = g
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>())
        .collect();
    Ok(partial.iter().sum())
}

/// [`Kernels::scale_grad`](crate::ops::Kernels::scale_grad) on the CPU.
pub fn scale_grad<S: Shape>(
    grads: &mut Gradients<f32, Cpu>,
    p: &Tensor<S, f32, Cpu>,
    s: f32,
) -> Result<(), CpuError> {
    let g = grads.get_or_alloc_mut(p)?;
    g.par_chunks_mut(CHUNK)
        .for_each(|c| c.iter_mut().for_each(|v| *v *= s));
    Ok(())
}
// ANCHOR_END: clip
