//! The loss kernels: chapter 2's one-hot forward and its loss as one op, and
//! the cross-entropy of index targets (chapter 3 on).
//!
//! [`linear_nll`] does, for a few hundred rows at a time while they sit in
//! the L1 cache: (1) logits = x @ W for the rows (a tall, thin matrix
//! product); (2) the softmax of each row, with a branch-free `exp` the
//! compiler vectorises, and the row's loss, log-sum-exp minus the label's
//! logit; (3) when W is traced, `∂W += xᵀ @ (softmax - onehot(y))`, the
//! gradient of the summed loss, with its accumulators in registers. The
//! backward pass then only scales the finished ∂W by `1 / N`: nothing of
//! size (N, V) is allocated but one copy of x. [`index_nll`] does steps (2)
//! and, backward, `(softmax - onehot(y)) / N`, on logits from elsewhere.
//!
//! The vocabulary size V is known at run time. The kernels take it as a
//! `Width`: for the vocabularies of the book's two data sets (27 and 65
//! characters) it is a compile-time constant, so the loops over a row have a
//! known length and unroll; any other size runs the same code with the
//! length in a register. The arithmetic, and so every bit of the result, is
//! the same either way.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::{fast_exp, lanes, Scratch};

/// Rows per parallel block: fixed, so results do not depend on the thread count.
const BLOCK_ROWS: usize = 2048;

/// Rows per sub-block: their logits (and x rows) stay in the L1 cache.
const SUB_ROWS: usize = 128;

/// Width of the register-blocked ∂W kernel's rows: a gradient row of up to
/// this many values is held in four 8-wide registers.
const LANES: usize = 32;

/// The length of a row: a constant for the sizes the kernels are compiled
/// for ([`Fixed`]), else a run-time value ([`Dynamic`]).
trait Width: Copy + Send + Sync {
    fn get(self) -> usize;
}

/// A row length known at compile time.
#[derive(Clone, Copy)]
struct Fixed<const N: usize>;

impl<const N: usize> Width for Fixed<N> {
    #[inline(always)]
    fn get(self) -> usize {
        N
    }
}

/// A row length known at run time.
#[derive(Clone, Copy)]
struct Dynamic(usize);

impl Width for Dynamic {
    #[inline(always)]
    fn get(self) -> usize {
        self.0
    }
}

/// Calls `$f(width, args..)` with V as a [`Fixed`] width for the book's
/// vocabularies (names.txt: 27, tiny Shakespeare: 65) and [`Dynamic`] otherwise.
macro_rules! with_width {
    ($v:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $v {
            27 => $f(Fixed::<27>, $($arg),*),
            65 => $f(Fixed::<65>, $($arg),*),
            v => $f(Dynamic(v), $($arg),*),
        }
    };
}

/// [`Kernels::linear_nll`](crate::ops::Kernels::linear_nll) on the CPU.
pub fn linear_nll<T: Tape<f32, Cpu> + Merge<T>>(
    x: &Tensor<(usize, usize), f32, Cpu>,
    w: Tensor<(usize, usize), f32, Cpu, T>,
    ys: &Tensor<(usize,), usize, Cpu>,
) -> Tensor<Rank0, f32, Cpu, T> {
    let (w, mut tape) = w.contiguous().split_tape();
    let (n, k) = *x.shape();
    let (wk, v) = *w.shape();
    assert_eq!(k, wk, "linear_nll: x is (N, {k}) but w is ({wk}, {v})");
    let mut xs = Scratch::take(n * k); // (N, K), row-major
    x.copy_into(&mut xs);
    let mut y = vec![0usize; n]; // (N,)
    ys.copy_into(&mut y);
    let mut ws = vec![0f32; k * v]; // (K, V)
    w.copy_into(&mut ws);
    let want_grad = T::OWNS_TAPE;
    // Each block: its share of Σ (lse - logit[y]) in f64, and of ∂W.
    let (k1, v1) = (k.max(1), v.max(1));
    let partials: Vec<(f64, Vec<f32>)> = xs
        .par_chunks(BLOCK_ROWS * k1)
        .zip(y.par_chunks(BLOCK_ROWS))
        .map(|(xb, yb)| with_width!(v1, block_kernel(xb, yb, &ws, k1, want_grad)))
        .collect();
    let mut total = 0f64;
    let mut grad = vec![0f32; k * v]; // Σ_n x[n]ᵀ (softmax - onehot(y)), (K, V)
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

/// [`Kernels::index_nll`](crate::ops::Kernels::index_nll) on the CPU: softmax
/// in place of a copy of the logits, kept for the backward pass, which adds
/// `(softmax - onehot(y)) / N`.
pub fn index_nll<T: Tape<f32, Cpu> + Merge<T>>(
    logits: Tensor<(usize, usize), f32, Cpu, T>,
    ys: &Tensor<(usize,), usize, Cpu>,
) -> Tensor<Rank0, f32, Cpu, T> {
    let (logits, mut tape) = logits.contiguous().split_tape();
    let (n, v) = *logits.shape();
    let v1 = v.max(1);
    let mut probs = Scratch::take(n * v); // (N, V): the logits, then their softmax
    logits.copy_into(&mut probs);
    let mut y = vec![0usize; n]; // (N,)
    ys.copy_into(&mut y);
    let partial: Vec<f64> = probs
        .par_chunks_mut(BLOCK_ROWS * v1)
        .zip(y.par_chunks(BLOCK_ROWS))
        .map(|(block, yb)| with_width!(v1, softmax_block(block, yb)))
        .collect();
    let mean = partial.iter().sum::<f64>() / n.max(1) as f64; // blocks in order
    let out = logits.device().clone().tensor(mean as f32); // ()
    if T::OWNS_TAPE {
        let out_for_grad = out.clone();
        tape.add_backward_op(move |grads| {
            let g = grads.get(&out_for_grad).as_vec()[0] / n as f32;
            let grad = grads.get_or_alloc_mut(&logits)?; // (N, V)
            grad.par_chunks_mut(BLOCK_ROWS * v1)
                .zip(probs.par_chunks(BLOCK_ROWS * v1))
                .zip(y.par_chunks(BLOCK_ROWS))
                .for_each(|((gb, pb), yb)| {
                    gb.iter_mut().zip(pb).for_each(|(gj, &pj)| *gj += g * pj);
                    for (gr, &label) in gb.chunks_exact_mut(v1).zip(yb) {
                        gr[label] -= g; // d/dlogits = (softmax - onehot(y)) / N
                    }
                });
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// Softmax in place of a block of rows of V values, in sub-blocks of
/// [`SUB_ROWS`]; returns the block's Σ (lse - x[y]). With AVX2 where the CPU
/// has it.
fn softmax_block<V: Width>(v: V, block: &mut [f32], labels: &[usize]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { softmax_block_avx2(v, block, labels) };
    }
    softmax_block_with(v, block, labels)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn softmax_block_avx2<V: Width>(v: V, block: &mut [f32], labels: &[usize]) -> f64 {
    softmax_block_with(v, block, labels)
}

#[inline(always)]
fn softmax_block_with<V: Width>(v: V, block: &mut [f32], labels: &[usize]) -> f64 {
    block
        .chunks_mut(SUB_ROWS * v.get())
        .zip(labels.chunks(SUB_ROWS))
        .map(|(rows, ys)| softmax_rows(v, rows, ys))
        .sum()
}

/// One block of rows: the loss sum and (if `want_grad`) its ∂W, in
/// sub-blocks of [`SUB_ROWS`]. Compiled twice: with AVX2 and FMA where the
/// CPU has them (checked once, at run time), and portable SSE2 otherwise.
fn block_kernel<V: Width>(
    v: V,
    x: &[f32],
    y: &[usize],
    w: &[f32],
    k: usize,
    want_grad: bool,
) -> (f64, Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { block_kernel_avx2(v, x, y, w, k, want_grad) };
    }
    block_kernel_with(v, x, y, w, k, want_grad, |a, b, c| a * b + c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_kernel_avx2<V: Width>(
    v: V,
    x: &[f32],
    y: &[usize],
    w: &[f32],
    k: usize,
    want_grad: bool,
) -> (f64, Vec<f32>) {
    block_kernel_with(v, x, y, w, k, want_grad, f32::mul_add)
}

#[inline(always)]
fn block_kernel_with<V: Width>(
    width: V,
    x: &[f32],
    y: &[usize],
    w: &[f32],
    k: usize,
    want_grad: bool,
    madd: impl Fn(f32, f32, f32) -> f32 + Copy,
) -> (f64, Vec<f32>) {
    let v = width.get();
    let mut total = 0f64;
    let mut dw = if want_grad {
        vec![0f32; k * v]
    } else {
        Vec::new()
    }; // (K, V)
    let mut logits = vec![0f32; SUB_ROWS * v]; // (rows, V), reused
    let mut acc = vec![0f32; v]; // (V,): one row's logits, for V > LANES
    let mut padded = vec![0f32; SUB_ROWS * LANES]; // (rows, LANES): gradient rows, for V <= LANES
    for (xs, ys) in x.chunks(SUB_ROWS * k).zip(y.chunks(SUB_ROWS)) {
        let l = &mut logits[..ys.len() * v];
        rows_times_w(width, xs, w, k, l, &mut acc, madd); // (rows, K) @ (K, V) -> (rows, V)
        total += softmax_rows(width, l, ys); // l is now softmax(logits), (rows, V)
        if want_grad {
            for (row, &label) in l.chunks_exact_mut(v).zip(ys) {
                row[label] -= 1.0; // softmax - onehot(y): ∂(lse - logit[y])/∂logits
            }
            if v <= LANES {
                let g = &mut padded[..ys.len() * LANES];
                for (p, row) in g.chunks_exact_mut(LANES).zip(l.chunks_exact(v)) {
                    p[..v].copy_from_slice(row); // zero beyond V, from the start
                }
                add_rows_t_times_padded(width, xs, g, k, &mut dw, madd); // dw += xᵀ @ l
            } else {
                add_rows_t_times_grad(width, xs, l, k, &mut dw, madd); // dw += xᵀ @ l
            }
        }
    }
    (total, dw)
}

/// `out = x @ w` for a few rows: x (rows, K), w (K, V), out (rows, V). Each
/// output row is K scaled rows of w added up, in an accumulator of V values
/// (a register-sized array when V fits in [`LANES`]; `acc` otherwise).
#[inline(always)]
fn rows_times_w<V: Width>(
    width: V,
    x: &[f32],
    w: &[f32],
    k: usize,
    out: &mut [f32],
    acc: &mut [f32],
    madd: impl Fn(f32, f32, f32) -> f32,
) {
    let v = width.get();
    let mut small = [0f32; LANES];
    let acc = if v <= LANES {
        &mut small[..v]
    } else {
        &mut acc[..v]
    }; // (V,)
    for (x_row, out_row) in x.chunks_exact(k).zip(out.chunks_exact_mut(v)) {
        acc.fill(0.0);
        for (&a, w_row) in x_row.iter().zip(w.chunks_exact(v)) {
            for (s, &b) in acc.iter_mut().zip(w_row) {
                *s = madd(a, b, *s); // acc += x[n, k] * w[k, :]
            }
        }
        out_row.copy_from_slice(acc);
    }
}

/// Softmax in place of a few rows (V values each), in three sweeps so that
/// the costly one, `exp`, runs over all of them as one flat loop the
/// compiler vectorises. Returns Σ (lse - x[y]) over the rows.
#[inline(always)]
fn softmax_rows<V: Width>(width: V, rows: &mut [f32], labels: &[usize]) -> f64 {
    let v = width.get();
    let mut total = 0f64;
    let mut lse = [0f32; SUB_ROWS]; // per row: log-sum-exp, minus the row's max
    for (row, &label) in rows.chunks_exact_mut(v).zip(labels) {
        let max = lanes(row, f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
        row.iter_mut().for_each(|v| *v -= max); // now every value is <= 0
        total -= row[label] as f64; // -(x[y] - max)
    }
    rows.iter_mut().for_each(|v| *v = fast_exp(*v)); // the flat, vectorised sweep
    for (row, lse) in rows.chunks_exact_mut(v).zip(&mut lse) {
        let sum = lanes(row, 0.0, |a, v| a + v);
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
        *lse = sum.ln();
    }
    total + lse[..labels.len()].iter().map(|&l| l as f64).sum::<f64>()
}

/// `dw += xᵀ @ g` for a few rows: x (rows, K), g (rows, V), dw (K, V): one
/// row of dW at a time.
#[inline(always)]
fn add_rows_t_times_grad<V: Width>(
    width: V,
    x: &[f32],
    g: &[f32],
    k: usize,
    dw: &mut [f32],
    madd: impl Fn(f32, f32, f32) -> f32,
) {
    let v = width.get();
    for (x_row, g_row) in x.chunks_exact(k).zip(g.chunks_exact(v)) {
        for (&a, dw_row) in x_row.iter().zip(dw.chunks_exact_mut(v)) {
            for (s, &b) in dw_row.iter_mut().zip(g_row) {
                *s = madd(a, b, *s); // dw[k, :] += x[n, k] * g[n, :]
            }
        }
    }
}

/// `dw += xᵀ @ g` for a few rows whose gradient rows `g` are padded with
/// zeros to [`LANES`] values (V <= 32): a row of g fits four 8-wide
/// registers, and two rows of dW at a time stay in registers (8 of them)
/// while the rows stream past. x (rows, K), g (rows, LANES), dw (K, V).
#[inline(always)]
fn add_rows_t_times_padded<V: Width>(
    width: V,
    x: &[f32],
    g: &[f32],
    k: usize,
    dw: &mut [f32],
    madd: impl Fn(f32, f32, f32) -> f32,
) {
    let v = width.get();
    for i in (0..k).step_by(2) {
        let i2 = (i + 1).min(k - 1); // an odd K repeats its last row, added once
        let mut acc = [[0f32; LANES]; 2]; // dw[i, :], dw[i2, :] for these rows
        for (x_row, gn) in x.chunks_exact(k).zip(g.chunks_exact(LANES)) {
            let (a0, a1) = (x_row[i], x_row[i2]);
            for j in 0..LANES {
                acc[0][j] = madd(a0, gn[j], acc[0][j]); // dw[i, j] += x[n, i] * g[n, j]
                acc[1][j] = madd(a1, gn[j], acc[1][j]);
            }
        }
        for (d, a) in dw[i * v..(i + 1) * v].iter_mut().zip(&acc[0]) {
            *d += a;
        }
        if i2 != i {
            for (d, a) in dw[i2 * v..(i2 + 1) * v].iter_mut().zip(&acc[1]) {
                *d += a;
            }
        }
    }
}
