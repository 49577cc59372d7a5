//! Queries, keys and values of every head from one matrix multiply.
//!
//! Composed (chapter 6's listing), the three maps are three products of the
//! same (B·T, C) input, each followed by a head split, and backward three
//! more pairs of products and three more copies, each product's gradient
//! for x added into x's gradient on its own. Here the three (C, C) maps sit
//! side by side as one (C, 3C) matrix: forward, one product
//! `[q | k | v] = x @ [Wq | Wk | Wv]` over all B·T tokens, whose columns are
//! copied straight into the heads' rows; backward, the heads' gradients
//! gathered back into one (B·T, 3C) matrix and two products,
//! `∂x += ∂[q | k | v] @ [Wq | Wk | Wv]ᵀ` and `∂[Wq | Wk | Wv] = xᵀ @ ∂[q | k | v]`.

use dfdx::prelude::*;

use super::linear::gemm_strided;
use super::read;

/// Moves rows of HS values between the (N, 3C) product, N = B·T tokens, and
/// one of its three parts in head layout, (B·NH, T, HS): `part` 0 is q,
/// 1 is k, 2 is v. `to_heads` copies the part out of `all` into `heads`;
/// otherwise `heads` is copied back into that part of `all`.
fn move_part(
    all: &mut [f32],
    heads: &mut [f32],
    part: usize,
    (b, t, nh, hs): (usize, usize, usize, usize),
    to_heads: bool,
) {
    let c = nh * hs;
    assert!(
        all.len() == b * t * 3 * c && heads.len() == b * t * c,
        "move_part: wrong lengths"
    );
    for bi in 0..b {
        for ti in 0..t {
            let row = (bi * t + ti) * 3 * c + part * c; // token (bi, ti)'s part
            for h in 0..nh {
                let from = row + h * hs;
                let to = ((bi * nh + h) * t + ti) * hs; // row (bi·NH + h, ti)
                if to_heads {
                    heads[to..to + hs].copy_from_slice(&all[from..from + hs]);
                } else {
                    all[from..from + hs].copy_from_slice(&heads[to..to + hs]);
                }
            }
        }
    }
}

/// The (C, C) maps' values side by side: row i of the (C, 3C) result is row
/// i of each map in turn.
pub(crate) fn side_by_side<const C: usize>(maps: [&Tensor<Rank2<C, C>, f32, Cpu>; 3]) -> Vec<f32> {
    let values = maps.map(|m| read(m.clone()).1); // (C, C) each
    let mut w = Vec::with_capacity(3 * C * C); // (C, 3C)
    for i in 0..C {
        for v in &values {
            w.extend_from_slice(&v[i * C..(i + 1) * C]);
        }
    }
    w
}

// ANCHOR: qkv_heads
/// [`Kernels::qkv_heads`](crate::ops::Kernels::qkv_heads) on the CPU.
#[allow(clippy::type_complexity)]
pub fn qkv_heads<const C: usize, const NH: usize, const HS: usize, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, usize, Const<C>), f32, Cpu, T>, // (B, T, C)
    query: &Tensor<Rank2<C, C>, f32, Cpu>,            // (C, NH·HS)
    key: &Tensor<Rank2<C, C>, f32, Cpu>,              // (C, NH·HS)
    value: &Tensor<Rank2<C, C>, f32, Cpu>,            // (C, NH·HS)
) -> (
    Tensor<(usize, usize, Const<HS>), f32, Cpu, T>,
    Tensor<(usize, usize, Const<HS>), f32, Cpu, T>,
    Tensor<(usize, usize, Const<HS>), f32, Cpu, T>,
) {
    assert_eq!(
        C,
        NH * HS,
        "qkv_heads: C must be NH heads times HS channels"
    );
    let (x, xs) = read(x); // (N, C)
    let (x, mut tape) = x.split_tape();
    let (b, t, _) = *x.shape();
    let (n, dims) = (b * t, (b, t, NH, HS));
    let w = side_by_side([query, key, value]); // (C, 3C)
    let mut all = vec![0f32; n * 3 * C]; // (N, 3C)
    gemm_strided(
        (n, 3 * C, C),
        false,
        &mut all,
        (3 * C, 1),
        &xs,
        (C, 1),
        &w,
        (3 * C, 1),
    ); // x @ [Wq | Wk | Wv]
    let dev = x.device().clone();
    let [q, k, v] = [0, 1, 2].map(|part| {
        let mut heads = vec![0f32; n * C];
        move_part(&mut all, &mut heads, part, dims, true);
        dev.tensor_from_vec(heads, (b * NH, t, Const::<HS>)) // (B·NH, T, HS)
    });
    if T::OWNS_TAPE {
        let x = x.ghost(); // the gradient's key: the values are not needed again
        let outs = [q.ghost(), k.ghost(), v.ghost()];
        let maps = [query.clone(), key.clone(), value.clone()];
        tape.add_backward_op(move |grads| {
            let mut dall = vec![0f32; n * 3 * C]; // (N, 3C): ∂[q | k | v]
            for (part, out) in outs.iter().enumerate() {
                // each head's gradient, taken out of `grads` (and put back), not copied
                let mut d = std::mem::take(&mut **grads.get_or_alloc_mut(out)?);
                move_part(&mut dall, &mut d, part, dims, false);
                **grads.get_or_alloc_mut(out)? = d;
            }
            let dx = grads.get_or_alloc_mut(&x)?; // (N, C)
            gemm_strided(
                (n, C, 3 * C),
                true,
                dx,
                (C, 1),
                &dall,
                (3 * C, 1),
                &w,
                (1, 3 * C),
            ); // += ∂[q | k | v] @ Wᵀ
            let mut dw = vec![0f32; 3 * C * C]; // (C, 3C)
            gemm_strided(
                (C, 3 * C, n),
                false,
                &mut dw,
                (3 * C, 1),
                &xs,
                (1, C),
                &dall,
                (3 * C, 1),
            ); // xᵀ @ ∂[q | k | v]
            for (part, map) in maps.iter().enumerate() {
                let g = grads.get_or_alloc_mut(map)?; // (C, C)
                for (i, row) in g.chunks_exact_mut(C).enumerate() {
                    let from = i * 3 * C + part * C;
                    row.iter_mut()
                        .zip(&dw[from..from + C])
                        .for_each(|(g, d)| *g += d);
                }
            }
            Ok(())
        });
    }
    (
        q.put_tape(tape),
        k.put_tape(T::default()),
        v.put_tape(T::default()),
    )
}
// ANCHOR_END: qkv_heads
