//! charlm's fused CPU kernels: the same numbers as [`composed`](super::composed),
//! computed with less memory traffic.
//!
//! Introduced in the appendix "How fast is it?". Composed from dfdx's ops,
//! chapter 2's full-batch step writes and reads several (228,146, 27)
//! tensors (the logits, their softmax, the gradients of both, a gradient for
//! the one-hot inputs that nobody reads) and spends its time moving memory;
//! the attention of chapters 4 and 5 computes, then masks, the half of every
//! (T, T) product that lies in the future. The kernels here do the same
//! arithmetic a few hundred rows at a time, while they sit in the CPU's
//! fastest cache, and skip what the mask makes zero:
//!
//! - [`embedding`]: the embedding lookup as row copies, and its backward as
//!   row additions;
//! - [`nll`]: the one-hot forward and its loss, `-mean_n log_softmax(x[n] @ W)[y[n]]`,
//!   and the cross-entropy of index targets, with the softmax computed by a
//!   branch-free `exp` the compiler vectorises;
//! - [`attention`]: the causal average's triangular matmul and causal
//!   self-attention, forward and backward, one sequence per thread, in
//!   blocks of rows that never reach above the diagonal;
//! - [`heads`]: the heads' channels to sequences of their own and back, as
//!   row copies;
//! - [`linear`]: `nn.Linear` on every token as one matrix multiply over
//!   all B·T tokens, the bias added in place, and its backward as two;
//! - [`norm`]: LayerNorm, each row normalised in one pass, and its backward
//!   from the normalised rows the forward kept;
//! - [`qkv`]: every head's queries, keys and values from one product over
//!   all B·T tokens, copied straight into the heads' rows;
//! - [`mha`]: a block's whole multi-head attention, projection and dropout
//!   included, on buffers of its own: the heads read their queries, keys and
//!   values where one product wrote them, and write their outputs side by
//!   side, so no head is ever copied;
//! - [`ffwd`]: a block's feed-forward layer, its hidden layer kept inside;
//! - [`clip`]: gradient clipping's norm and scaling, in place.
//!
//! Blocks of rows have a fixed size and partial sums are added in block
//! order, so results do not depend on the number of threads. Each kernel is
//! tested against its composed twin (`tests/book/ops.rs`).

use dfdx::prelude::*;
use rayon::prelude::*;

use super::Kernels;

pub mod attention;
pub mod clip;
pub mod embedding;
pub mod ffwd;
pub mod heads;
pub mod linear;
pub mod mha;
pub mod nll;
pub mod norm;
pub mod qkv;

// ANCHOR: cpu
// ANCHOR: cpu_head
impl Kernels for Cpu {
    fn embedding<C: Dim, T: Tape<f32, Self>>(
        weight: Tensor<(usize, C), f32, Self, T>,
        idx: Tensor<(usize, usize), usize, Self>,
    ) -> Tensor<(usize, usize, C), f32, Self, T> {
        embedding::embedding(weight, idx)
    }
    // ANCHOR_END: cpu_head

    fn linear_nll<T: Tape<f32, Self> + Merge<T>>(
        x: &Tensor<(usize, usize), f32, Self>,
        w: Tensor<(usize, usize), f32, Self, T>,
        ys: &Tensor<(usize,), usize, Self>,
    ) -> Tensor<Rank0, f32, Self, T> {
        nll::linear_nll(x, w, ys)
    }

    fn index_nll<T: Tape<f32, Self> + Merge<T>>(
        logits: Tensor<(usize, usize), f32, Self, T>,
        ys: &Tensor<(usize,), usize, Self>,
    ) -> Tensor<Rank0, f32, Self, T> {
        nll::index_nll(logits, ys)
    }

    fn tril_matmul(
        wei: &Tensor<(usize, usize), f32, Self>,
        x: &Tensor<(usize, usize, usize), f32, Self>,
    ) -> Tensor<(usize, usize, usize), f32, Self> {
        attention::tril_matmul(wei, x)
    }

    fn causal_attention<const H: usize, T: Tape<f32, Self> + Merge<T>>(
        q: Tensor<(usize, usize, Const<H>), f32, Self, T>,
        k: Tensor<(usize, usize, Const<H>), f32, Self, T>,
        v: Tensor<(usize, usize, Const<H>), f32, Self, T>,
        scale: f32,
    ) -> (
        Tensor<(usize, usize, Const<H>), f32, Self, T>,
        Tensor<(usize, usize, usize), f32, Self>,
    ) {
        attention::causal_attention(q, k, v, scale)
    }

    fn layer_norm<const C: usize, T: Tape<f32, Self>>(
        x: Tensor<(usize, usize, Const<C>), f32, Self, T>,
        gamma: &Tensor<(Const<C>,), f32, Self>,
        beta: &Tensor<(Const<C>,), f32, Self>,
        epsilon: f32,
    ) -> Tensor<(usize, usize, Const<C>), f32, Self, T> {
        norm::layer_norm(x, gamma, beta, epsilon)
    }

    fn linear<const I: usize, O: Dim, T: Tape<f32, Self> + Merge<T>>(
        x: Tensor<(usize, usize, Const<I>), f32, Self, T>,
        weight: &Tensor<(O, Const<I>), f32, Self>,
        bias: &Tensor<(O,), f32, Self>,
    ) -> Tensor<(usize, usize, O), f32, Self, T> {
        linear::linear(x, weight, bias)
    }

    fn split_heads<const C: usize, const NH: usize, const HS: usize, T: Tape<f32, Self>>(
        x: Tensor<(usize, usize, Const<C>), f32, Self, T>,
    ) -> Tensor<(usize, usize, Const<HS>), f32, Self, T> {
        heads::split_heads::<C, NH, HS, T>(x)
    }

    fn merge_heads<const C: usize, const NH: usize, const HS: usize, T: Tape<f32, Self>>(
        x: Tensor<(usize, usize, Const<HS>), f32, Self, T>,
        b: usize,
    ) -> Tensor<(usize, usize, Const<C>), f32, Self, T> {
        heads::merge_heads::<C, NH, HS, T>(x, b)
    }

    fn qkv_heads<
        const C: usize,
        const NH: usize,
        const HS: usize,
        T: Tape<f32, Self> + Merge<T>,
    >(
        x: Tensor<(usize, usize, Const<C>), f32, Self, T>,
        query: &Tensor<Rank2<C, C>, f32, Self>,
        key: &Tensor<Rank2<C, C>, f32, Self>,
        value: &Tensor<Rank2<C, C>, f32, Self>,
    ) -> (
        Tensor<(usize, usize, Const<HS>), f32, Self, T>,
        Tensor<(usize, usize, Const<HS>), f32, Self, T>,
        Tensor<(usize, usize, Const<HS>), f32, Self, T>,
    ) {
        qkv::qkv_heads::<C, NH, HS, T>(x, query, key, value)
    }

    fn self_attention<
        const C: usize,
        const NH: usize,
        const HS: usize,
        T: Tape<f32, Self> + Merge<T>,
    >(
        x: Tensor<(usize, usize, Const<C>), f32, Self, T>,
        qkv: [&Tensor<Rank2<C, C>, f32, Self>; 3],
        proj_weight: &Tensor<Rank2<C, C>, f32, Self>,
        proj_bias: &Tensor<Rank1<C>, f32, Self>,
        dropping: super::composed::Dropping,
    ) -> Tensor<(usize, usize, Const<C>), f32, Self, T> {
        mha::self_attention::<C, NH, HS, T>(x, qkv, proj_weight, proj_bias, dropping)
    }

    fn feed_forward<
        const C: usize,
        const F: usize,
        A: super::Activation,
        T: Tape<f32, Self> + Merge<T>,
    >(
        x: Tensor<(usize, usize, Const<C>), f32, Self, T>,
        first: (
            &Tensor<Rank2<F, C>, f32, Self>,
            &Tensor<Rank1<F>, f32, Self>,
        ),
        second: (
            &Tensor<Rank2<C, F>, f32, Self>,
            &Tensor<Rank1<C>, f32, Self>,
        ),
        dropping: super::composed::Dropping,
    ) -> Tensor<(usize, usize, Const<C>), f32, Self, T> {
        ffwd::feed_forward::<C, F, T>(x, first, second, A::KIND, dropping)
    }

    fn grad_sum_squares<S: Shape>(
        grads: &mut Gradients<f32, Self>,
        p: &Tensor<S, f32, Self>,
    ) -> Result<f64, Self::Err> {
        clip::grad_sum_squares(grads, p)
    }

    fn scale_grad<S: Shape>(
        grads: &mut Gradients<f32, Self>,
        p: &Tensor<S, f32, Self>,
        s: f32,
    ) -> Result<(), Self::Err> {
        clip::scale_grad(grads, p, s)
    }
}
// ANCHOR_END: cpu

/// x's values in row-major order, and x itself, made contiguous first (dfdx
/// copies a permuted or broadcast view, tape and all; a contiguous tensor
/// passes through untouched). One `memcpy`, where `as_vec` walks every
/// index.
pub(crate) fn read<S: Shape, T: Tape<f32, Cpu>>(
    x: Tensor<S, f32, Cpu, T>,
) -> (Tensor<S, f32, Cpu, T>, Vec<f32>) {
    let x = x.contiguous();
    let mut values = zeros(x.shape().num_elements());
    x.copy_into(&mut values);
    (x, values)
}

/// Elements per task of the elementwise passes below.
const CHUNK: usize = 1 << 14;

/// `n` zeros, written by every thread (a zeroed allocation is otherwise one
/// thread's `memset`, which the others wait for).
pub(crate) fn zeros(n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(n);
    v.spare_capacity_mut().par_chunks_mut(CHUNK).for_each(|c| {
        c.iter_mut().for_each(|x| {
            x.write(0.0);
        })
    });
    // SAFETY: every one of the n elements was written just above.
    unsafe { v.set_len(n) };
    v
}

/// `n` rows, each a copy of `row`: where a product that adds starts, as
/// `nn.Linear` adds its bias.
pub(crate) fn rows_of(row: &[f32], n: usize) -> Vec<f32> {
    let mut v = zeros(n * row.len());
    if let Some(len) = std::num::NonZeroUsize::new(row.len()) {
        let per_task = (CHUNK / len.get()).max(1) * len.get();
        v.par_chunks_mut(per_task).for_each(|c| {
            c.chunks_exact_mut(len.get())
                .for_each(|r| r.copy_from_slice(row))
        });
    }
    v
}

/// `dst += src`, in chunks across threads.
pub(crate) fn add_into(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "add_into: lengths differ");
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, s)| *d += s));
}

/// `dst[j] += Σ_rows src[row][j]` for rows of `dst.len()` values (a bias's
/// gradient): fixed blocks of rows summed across threads, the blocks' sums
/// then added in order, so the result does not depend on the thread count.
pub(crate) fn add_row_sums(dst: &mut [f32], src: &[f32]) {
    let Some(len) = std::num::NonZeroUsize::new(dst.len()) else {
        return;
    };
    let o = len.get();
    let partial: Vec<Vec<f32>> = src
        .par_chunks((CHUNK / o).max(1) * o)
        .map(|block| {
            let mut sum = vec![0f32; o];
            for row in block.chunks_exact(o) {
                sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            }
            sum
        })
        .collect();
    for sum in partial {
        dst.iter_mut().zip(&sum).for_each(|(d, s)| *d += s);
    }
}

/// `x ⊙ keep / (1 − p)`, across threads: dropout's mask applied (with
/// `p = 0`, the ReLU's). A product, not a branch: the mask is as
/// unpredictable as the data; the product is the one the composed ops
/// compute.
pub(crate) fn apply_mask(x: &mut [f32], keep: &[bool], p: f32) {
    assert_eq!(x.len(), keep.len(), "apply_mask: lengths differ");
    let scale = 1.0 / (1.0 - p);
    x.par_chunks_mut(CHUNK)
        .zip(keep.par_chunks(CHUNK))
        .for_each(|(x, k)| {
            x.iter_mut()
                .zip(k)
                .for_each(|(v, &k)| *v *= f32::from(u8::from(k)) * scale)
        });
}

/// `e^x`, branch-free so that loops over slices vectorise: Cephes' `expf`
/// (range reduction by ln 2, degree-5 polynomial, exponent bits), relative
/// error within 2 ulp of `f32::exp` on [-87, 88]. Inputs below -87 give
/// about 1.6e-38 instead of a denormal or 0; NaN stays NaN.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    // Comparisons written so that NaN passes through (a NaN loss must show).
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let t = x * std::f32::consts::LOG2_E + ROUND; // its low bits hold n = round(x / ln 2)
    let n = t - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4; // x - n ln 2, in two parts
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * (r * r) + r + 1.0; // e^r
                                   // 2^n from the bits: t's bits are those of 1.5 * 2^23 plus n, so
                                   // subtracting them but 127 leaves n + 127, the biased exponent of 2^n
                                   // (integer ops only, which vectorise; a float-to-int cast would not).
    let two_n = f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits() - 127) << 23);
    y * two_n
}

/// Reduces a row with `f` in 8 independent lanes (one vector register), then
/// folds the lanes: no long chain of dependent scalar operations. A fixed
/// order, so the result is the same every run.
#[inline(always)]
fn lanes(row: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = f(*a, v);
        }
    }
    let folded = acc.iter().fold(init, |a, &v| f(a, v));
    tail.iter().fold(folded, |a, &v| f(a, v))
}

/// Reusable `f32` buffers. A full-batch step needs the same large buffers
/// every time; taking them from here skips both the allocator's fresh,
/// page-faulting memory and zero-filling what is about to be overwritten.
static SCRATCH: std::sync::Mutex<Vec<Vec<f32>>> = std::sync::Mutex::new(Vec::new());

/// A buffer from [`SCRATCH`] of a given length, with unspecified contents;
/// it goes back on drop.
struct Scratch(Vec<f32>);

impl Scratch {
    fn take(len: usize) -> Self {
        let mut pool = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
        let found = pool.iter().position(|v| v.len() == len);
        let buf = match found {
            Some(i) => pool.swap_remove(i),
            None => vec![0f32; len],
        };
        Self(buf)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let mut pool = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < 8 {
            pool.push(std::mem::take(&mut self.0));
        }
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}
