//! The heads' channels to sequences of their own, and back, as row copies.
//!
//! Composed from dfdx's ops, splitting (B, T, NH·HS) into (B·NH, T, HS) is a
//! reshape, a permute and a reshape, and the last one copies through a
//! multi-dimensional index per element (its backward, another); merging is
//! the same in reverse. Both are one swap of two axes, (A, M, N, HS) →
//! (A, N, M, HS), which moves whole rows of HS values: here a slice copy
//! each, forward, and the inverse swap added into the gradient, backward.

use dfdx::prelude::*;

use super::read;

/// `dst[a, n, m] = src[a, m, n]` for rows of `d` values: (A, M, N, d) → (A, N, M, d).
/// With `add`, the rows are added into `dst` instead.
fn swap_axes(src: &[f32], dst: &mut [f32], (a, m, n, d): (usize, usize, usize, usize), add: bool) {
    assert!(
        src.len() == a * m * n * d && dst.len() == src.len(),
        "swap_axes: wrong lengths"
    );
    for ai in 0..a {
        for mi in 0..m {
            for ni in 0..n {
                let from = ((ai * m + mi) * n + ni) * d;
                let to = ((ai * n + ni) * m + mi) * d;
                let (s, o) = (&src[from..from + d], &mut dst[to..to + d]);
                if add {
                    o.iter_mut().zip(s).for_each(|(o, s)| *o += s);
                } else {
                    o.copy_from_slice(s);
                }
            }
        }
    }
}

/// Swaps axes 1 and 2 of x viewed as (A, M, N, d), into a tensor of `shape`,
/// with the inverse swap as its backward pass.
fn swapped<S1: Shape, S2: Shape, T: Tape<f32, Cpu>>(
    x: Tensor<S1, f32, Cpu, T>,
    dims: (usize, usize, usize, usize),
    shape: S2,
) -> Tensor<S2, f32, Cpu, T> {
    let (x, values) = read(x);
    let (x, mut tape) = x.split_tape();
    let mut out = vec![0f32; values.len()];
    swap_axes(&values, &mut out, dims, false);
    let out = x.device().tensor_from_vec(out, shape);
    if T::OWNS_TAPE {
        let x = x.ghost(); // the gradient's key: the values are not needed again
        let out_for_grad = out.ghost(); // its id, not its values
        let (a, m, n, d) = dims;
        tape.add_backward_op(move |grads| {
            let dout = std::mem::take(&mut **grads.get_or_alloc_mut(&out_for_grad)?);
            let dx = grads.get_or_alloc_mut(&x)?;
            swap_axes(&dout, dx, (a, n, m, d), true);
            **grads.get_or_alloc_mut(&out_for_grad)? = dout;
            Ok(())
        });
    }
    out.put_tape(tape)
}

// ANCHOR: heads
/// [`Kernels::split_heads`](crate::ops::Kernels::split_heads) on the CPU:
/// (B, T, NH, HS) → (B, NH, T, HS).
pub fn split_heads<const C: usize, const NH: usize, const HS: usize, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, usize, Const<C>), f32, Cpu, T>, // (B, T, C)
) -> Tensor<(usize, usize, Const<HS>), f32, Cpu, T> {
    assert_eq!(
        C,
        NH * HS,
        "split_heads: C must be NH heads times HS channels"
    );
    let (b, t, _) = *x.shape();
    swapped(x, (b, t, NH, HS), (b * NH, t, Const::<HS>)) // (B·NH, T, HS)
}

/// [`Kernels::merge_heads`](crate::ops::Kernels::merge_heads) on the CPU:
/// (B, NH, T, HS) → (B, T, NH, HS).
pub fn merge_heads<const C: usize, const NH: usize, const HS: usize, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, usize, Const<HS>), f32, Cpu, T>, // (B·NH, T, HS)
    b: usize,
) -> Tensor<(usize, usize, Const<C>), f32, Cpu, T> {
    assert_eq!(
        C,
        NH * HS,
        "merge_heads: C must be NH heads times HS channels"
    );
    let (bn, t, _) = *x.shape();
    assert_eq!(
        bn,
        b * NH,
        "merge_heads: {bn} rows are not {b} sequences of {NH} heads"
    );
    swapped(x, (b, NH, t, HS), (b, t, Const::<C>)) // (B, T, C)
}
// ANCHOR_END: heads
