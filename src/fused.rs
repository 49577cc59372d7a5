//! A fused loss kernel: the average negative log-likelihood of index targets,
//! `-mean(log_softmax(logits)[n, y[n]])`, as one op with its own backward.
//!
//! Introduced in chapter 2, where composing dfdx's `log_softmax`, `select` and
//! `mean` on the (228,146, 27) logits spent most of a training step in generic
//! broadcast kernels. On the CPU this computes each row's log-sum-exp once,
//! keeps the softmax for the backward pass, and writes the gradient
//! `(softmax - onehot(y)) / N` in one sweep. Other devices (CUDA) use the
//! composed dfdx ops, which are the reference the CPU kernel is tested against.

use dfdx::prelude::*;
use rayon::prelude::*;

/// Devices that can compute the index-target NLL of a batch of logits.
pub trait IndexNll: Device<f32> {
    /// `-mean_n log_softmax(logits[n])[ys[n]]` for logits (N, V), ys (N,).
    fn index_nll<const V: usize, T: Tape<f32, Self> + Merge<T>>(
        logits: Tensor<(usize, Const<V>), f32, Self, T>,
        ys: &Tensor<(usize,), usize, Self>,
    ) -> Tensor<Rank0, f32, Self, T>;
}

// ANCHOR: composed
/// The composed form every device supports: log_softmax, select, mean.
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
// ANCHOR_END: composed

/// Rows per parallel block: fixed, so results do not depend on the thread count.
const BLOCK_ROWS: usize = 2048;

impl IndexNll for Cpu {
    fn index_nll<const V: usize, T: Tape<f32, Self> + Merge<T>>(
        logits: Tensor<(usize, Const<V>), f32, Self, T>,
        ys: &Tensor<(usize,), usize, Self>,
    ) -> Tensor<Rank0, f32, Self, T> {
        let (logits, mut tape) = logits.split_tape();
        let n = logits.shape().0;
        let mut x = vec![0f32; n * V]; // (N, V), row-major
        logits.copy_into(&mut x);
        let mut y = vec![0usize; n]; // (N,)
        ys.copy_into(&mut y);
        let mut probs = vec![0f32; n * V]; // softmax, kept for the backward pass
                                           // Each block of rows: softmax into `probs`, and its share of Σ (lse - x[y]) in f64.
        let partial: Vec<f64> = x
            .par_chunks(BLOCK_ROWS * V)
            .zip(probs.par_chunks_mut(BLOCK_ROWS * V))
            .zip(y.par_chunks(BLOCK_ROWS))
            .map(|((xb, pb), yb)| {
                let mut total = 0f64;
                for ((row, p), &label) in xb.chunks_exact(V).zip(pb.chunks_exact_mut(V)).zip(yb) {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0f32;
                    for (pj, &xj) in p.iter_mut().zip(row) {
                        *pj = (xj - max).exp();
                        sum += *pj;
                    }
                    let inv = 1.0 / sum;
                    p.iter_mut().for_each(|pj| *pj *= inv);
                    total += (max + sum.ln() - row[label]) as f64; // lse - x[y]
                }
                total
            })
            .collect();
        let mean = partial.iter().sum::<f64>() / n.max(1) as f64; // blocks summed in order
        let out = logits.device().clone().tensor(mean as f32); // ()
        let out_for_grad = out.clone();
        tape.add_backward_op(move |grads| {
            let g = grads.get(&out_for_grad).as_vec()[0] / n as f32;
            let grad = grads.get_or_alloc_mut(&logits)?; // (N, V)
            grad.par_chunks_mut(BLOCK_ROWS * V)
                .zip(probs.par_chunks(BLOCK_ROWS * V))
                .zip(y.par_chunks(BLOCK_ROWS))
                .for_each(|((gb, pb), yb)| {
                    for ((gr, p), &label) in gb.chunks_exact_mut(V).zip(pb.chunks_exact(V)).zip(yb)
                    {
                        for (gj, &pj) in gr.iter_mut().zip(p) {
                            *gj += g * pj; // d/dlogits = (softmax - onehot(y)) / N
                        }
                        gr[label] -= g;
                    }
                });
            Ok(())
        });
        out.put_tape(tape)
    }
}

#[cfg(feature = "cuda")]
impl IndexNll for Cuda {
    fn index_nll<const V: usize, T: Tape<f32, Self> + Merge<T>>(
        logits: Tensor<(usize, Const<V>), f32, Self, T>,
        ys: &Tensor<(usize,), usize, Self>,
    ) -> Tensor<Rank0, f32, Self, T> {
        index_nll_composed(logits, ys)
    }
}
