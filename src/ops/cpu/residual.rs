//! The residual connection, `x + f`, in one pass each way.
//!
//! dfdx's addition of two tensors is fast forward, but its backward pass is
//! the generic one of every elementwise operation: for each element a
//! multi-dimensional index into each operand and the derivative of `+`
//! evaluated (it is 1), on one thread. A block of chapter 7 adds twice, so a
//! GPT step adds twice per layer. Here the forward pass adds slices, and the
//! backward pass adds the output's gradient into both operands' gradients,
//! in chunks across threads; every sum is the one dfdx computes, so the
//! results are the same to the bit.

use super::{add_into, read};
use dfdx::prelude::*;

// ANCHOR: residual_add
/// [`Kernels::residual_add`](crate::ops::Kernels::residual_add) on the CPU.
pub fn residual_add<S: Shape, T: Tape<f32, Cpu> + Merge<T>>(
    x: Tensor<S, f32, Cpu, T>, // the residual pathway
    f: Tensor<S, f32, Cpu, T>, // what a branch adds to it
) -> Tensor<S, f32, Cpu, T> {
    assert_eq!(
        x.shape().concrete(),
        f.shape().concrete(),
        "residual_add: shapes differ"
    );
    let (x, mut out) = read(x); // starts as x
    let (f, fs) = read(f);
    let (x, tx) = x.split_tape();
    let (f, tf) = f.split_tape();
    let mut tape = tx.merge(tf);
    add_into(&mut out, &fs); // x + f
    let out = x.device().tensor_from_vec(out, *x.shape());
    if T::OWNS_TAPE {
        let (x, f) = (x.ghost(), f.ghost()); // the gradients' keys: the values are not needed again
        let out_for_grad = out.ghost(); // its id, not its values
        tape.add_backward_op(move |grads| {
            // ∂out, taken out of `grads` for the pass (and put back), not copied
            let dout = std::mem::take(&mut **grads.get_or_alloc_mut(&out_for_grad)?);
            add_into(grads.get_or_alloc_mut(&x)?, &dout); // ∂x += ∂out
            add_into(grads.get_or_alloc_mut(&f)?, &dout); // ∂f += ∂out
            **grads.get_or_alloc_mut(&out_for_grad)? = dout;
            Ok(())
        });
    }
    out.put_tape(tape)
}
// ANCHOR_END: residual_add
