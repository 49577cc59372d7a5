//! `nn.Linear` on every token: one matrix multiply over all B·T tokens.
//!
//! dfdx's `Linear` on a (B, T, I) batch is a batched matmul: one (T, I) by
//! (I, O) product per sequence, each too small to keep the CPU busy (at the
//! ladder's sizes, 32 products of 8 rows), and the bias broadcast over every
//! token with a multi-dimensional index per element, both ways. The tokens
//! of a batch are independent, so the kernel sees x as one (B·T, I) matrix:
//!
//! - forward: `out = x @ Wᵀ`, written over rows that start as the bias;
//! - backward: `∂x += ∂out @ W`, `∂W += ∂outᵀ @ x` (both added straight into
//!   the gradients, no temporary), `∂b += Σ_rows ∂out`.
//!
//! The products are the `gemm` crate's (dfdx multiplies with it too, at an
//! older release: see Cargo.toml); it splits the output, never the sum over
//! k, so the result does not depend on the number of threads.

use dfdx::prelude::*;

use super::read;

/// Below this many multiply-adds a product runs on one thread: splitting
/// it costs more than it saves.
const PARALLEL_FROM: usize = 1 << 18;

thread_local! {
    /// Threads a product on this thread may use, when [`both`] set it.
    static BUDGET: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs two independent pieces of work (two products of a backward pass,
/// say) side by side, each with half the threads for its products: two
/// products of half the threads each waste less on splitting than one after
/// the other on all of them. Products split their outputs only, so the
/// results are the same either way.
pub(crate) fn both<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    let half = (rayon::current_num_threads() / 2).max(1);
    let budgeted = |f: Box<dyn FnOnce() + Send + '_>| {
        let before = BUDGET.replace(Some(half));
        f();
        BUDGET.set(before);
    };
    let (mut ra, mut rb) = (None, None);
    rayon::join(
        || budgeted(Box::new(|| ra = Some(a()))),
        || budgeted(Box::new(|| rb = Some(b()))),
    );
    match (ra, rb) {
        (Some(a), Some(b)) => (a, b),
        _ => unreachable!("rayon::join ran both"),
    }
}

/// A matrix inside a slice: (row stride, column stride).
pub(crate) type Strides = (usize, usize);

/// `dst (m, n) = [dst +] a (m, k) @ b (k, n)`, with the given strides;
/// `add` keeps what `dst` holds. Panics if a matrix reaches outside its slice.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_strided(
    (m, n, k): (usize, usize, usize),
    add: bool,
    dst: &mut [f32],
    ds: Strides,
    a: &[f32],
    as_: Strides,
    b: &[f32],
    bs: Strides,
) {
    let last = |(r, c): (usize, usize), (rs, cs): Strides| (r - 1) * rs + (c - 1) * cs;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !add {
            (0..m).for_each(|i| (0..n).for_each(|j| dst[i * ds.0 + j * ds.1] = 0.0));
        }
        return;
    }
    assert!(
        last((m, n), ds) < dst.len() && last((m, k), as_) < a.len() && last((k, n), bs) < b.len(),
        "gemm_strided: a matrix reaches outside its slice"
    );
    let threads = BUDGET.get().unwrap_or_else(rayon::current_num_threads);
    let parallelism = if m * n * k >= PARALLEL_FROM && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assert above keeps every element gemm touches inside its slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            ds.1 as isize,
            ds.0 as isize,
            add,
            a.as_ptr(),
            as_.1 as isize,
            as_.0 as isize,
            b.as_ptr(),
            bs.1 as isize,
            bs.0 as isize,
            if add { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

// ANCHOR: linear
/// [`Kernels::linear`](crate::ops::Kernels::linear) on the CPU.
pub fn linear<const I: usize, O: Dim, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, usize, Const<I>), f32, Cpu, T>, // (B, T, I)
    weight: &Tensor<(O, Const<I>), f32, Cpu>,         // (O, I)
    bias: &Tensor<(O,), f32, Cpu>,                    // (O,)
) -> Tensor<(usize, usize, O), f32, Cpu, T> {
    let (x, xs) = read(x); // (N, I)
    let (x, mut tape) = x.split_tape();
    let (b, t, _) = *x.shape();
    let (o_dim,) = *bias.shape();
    let (n, o) = (b * t, o_dim.size());
    assert_eq!(
        weight.shape().0.size(),
        o,
        "linear: weight and bias disagree on O"
    );
    let (w, bs) = (read(weight.clone()).1, read(bias.clone()).1); // (O, I), (O,)
    let mut out = Vec::with_capacity(n * o); // (N, O), each row starting as the bias
    (0..n).for_each(|_| out.extend_from_slice(&bs));
    gemm_strided((n, o, I), true, &mut out, (o, 1), &xs, (I, 1), &w, (1, I)); // += x @ Wᵀ
    let out = x.device().tensor_from_vec(out, (b, t, o_dim)); // (B, T, O)
    if T::OWNS_TAPE {
        let x = x.ghost(); // the gradient's key: the values are not needed again
        let (out_for_grad, weight, bias) = (out.ghost(), weight.clone(), bias.clone());
        tape.add_backward_op(move |grads| {
            // ∂out, taken out of `grads` for the pass (and put back), not copied
            let dout = std::mem::take(&mut **grads.get_or_alloc_mut(&out_for_grad)?);
            // both gradients taken out of `grads` (and put back), to fill them side by side
            let mut dx = std::mem::take(&mut **grads.get_or_alloc_mut(&x)?); // (N, I)
            let mut dw = std::mem::take(&mut **grads.get_or_alloc_mut(&weight)?); // (O, I)
            both(
                || gemm_strided((n, I, o), true, &mut dx, (I, 1), &dout, (o, 1), &w, (I, 1)), // += ∂out @ W
                || gemm_strided((o, I, n), true, &mut dw, (I, 1), &dout, (1, o), &xs, (I, 1)), // += ∂outᵀ @ x
            );
            **grads.get_or_alloc_mut(&x)? = dx;
            **grads.get_or_alloc_mut(&weight)? = dw;
            let db = grads.get_or_alloc_mut(&bias)?; // (O,)
            for row in dout.chunks_exact(o.max(1)) {
                db.iter_mut().zip(row).for_each(|(d, g)| *d += g); // += Σ_rows ∂out
            }
            **grads.get_or_alloc_mut(&out_for_grad)? = dout;
            Ok(())
        });
    }
    out.put_tape(tape)
}
// ANCHOR_END: linear
