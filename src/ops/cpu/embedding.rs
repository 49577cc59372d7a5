//! The embedding lookup: row copies forward, row additions backward.
//!
//! dfdx's `gather` computes a multi-dimensional index for every element it
//! copies, and its backward does the same for every element it adds: in a
//! step of the bigram model (a (256, 65) lookup) that was about 70% of the
//! time. Here each position copies its token's row in one slice copy, and
//! backward adds each position's gradient row into its token's row, in the
//! same order as `gather`'s backward (so the sums, and every bit, agree).

use dfdx::prelude::*;

// ANCHOR: embedding
/// [`Kernels::embedding`](crate::ops::Kernels::embedding) on the CPU.
pub fn embedding<C: Dim, T: Tape<f32, Cpu>>(
    weight: Tensor<(usize, C), f32, Cpu, T>,
    idx: Tensor<(usize, usize), usize, Cpu>,
) -> Tensor<(usize, usize, C), f32, Cpu, T> {
    let (weight, mut tape) = weight.split_tape();
    let (v, c_dim) = *weight.shape();
    let c = c_dim.size();
    let (b, t) = *idx.shape();
    let ids = idx.as_vec(); // (B·T,)
    if let Some(&id) = ids.iter().find(|&&id| id >= v) {
        panic!("embedding: token id {id} is outside the table of {v} rows");
    }
    let mut table = vec![0f32; v * c]; // (V, C)
    weight.copy_into(&mut table);
    let mut out = vec![0f32; b * t * c]; // (B, T, C)
    for (row, &id) in out.chunks_exact_mut(c.max(1)).zip(&ids) {
        row.copy_from_slice(&table[id * c..(id + 1) * c]); // out[b, t] = weight[idx[b, t]]
    }
    let out = weight.device().tensor_from_vec(out, (b, t, c_dim)); // (B, T, C)
    if T::OWNS_TAPE {
        let out_for_grad = out.clone();
        tape.add_backward_op(move |grads| {
            // ∂out, taken out of `grads` for the pass (and put back), not copied
            let dout = std::mem::take(&mut **grads.get_or_alloc_mut(&out_for_grad)?);
            let dw = grads.get_or_alloc_mut(&weight)?; // (V, C)
            for (g, &id) in dout.chunks_exact(c.max(1)).zip(&ids) {
                for (d, &x) in dw[id * c..(id + 1) * c].iter_mut().zip(g) {
                    *d += x; // ∂weight[idx[b, t]] += ∂out[b, t]
                }
            }
            **grads.get_or_alloc_mut(&out_for_grad)? = dout;
            Ok(())
        });
    }
    out.put_tape(tape)
}
// ANCHOR_END: embedding
