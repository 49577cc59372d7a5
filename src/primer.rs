//! The primer, "Shapes, and reading dfdx": every dfdx op the chapters use,
//! each on a tensor small enough to print, and a two-layer net's forward and
//! backward pass worked through, its gradients checked against the chain rule
//! written out by hand.
//!
//! The book's page shows these functions' listings and what they print:
//! [`numbers`] renders every printed value into
//! `chapters/figures/primer/numbers.md` (`charlm figures --stage primer`), and
//! a test checks that the committed file is what the code prints today. The
//! page's one listing that does not compile,
//! `chapters/figures/primer/shape_error.rs`, is compiled by `.ci/shape-error`,
//! which checks the compiler's message that the page quotes.

// The examples return the tensors they make, whose full types are the lesson.
#![allow(clippy::type_complexity)]

use std::fmt::Write as _;
use std::path::Path;

use dfdx::data::OneHotEncode;
use dfdx::prelude::*;
use serde::Serialize;

use crate::data::DataSets;
use crate::stages::{json, BookNumbers, Progress, Stage, StageError, Tour};

/// The stage's id: its book files are in `chapters/figures/primer`.
pub const ID: &str = "primer";

/// The page's tensors: `f32` on the CPU, of shape `S`, recording nothing.
pub type CpuTensor<S> = Tensor<S, f32, Cpu>;

/// Labels or indices: one `usize` per example.
pub type Indices = Tensor<(usize,), usize, Cpu>;

// ANCHOR: tensors
/// Two ways to make the same (2, 3) matrix, and how to read one back.
pub fn tensors(
    dev: &Cpu,
) -> (
    CpuTensor<Rank2<2, 3>>,
    CpuTensor<(usize, usize)>,
    (usize, usize),
    Vec<f32>,
) {
    let a: CpuTensor<Rank2<2, 3>> = dev.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]); // (2, 3)
    let b = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], (2, 3)); // (2, 3)
    let (rows, cols) = *b.shape(); // the sizes, two usizes
    let flat = b.as_vec(); // (6,): row after row, as the tensor stores them
    (a, b, (rows, cols), flat)
}
// ANCHOR_END: tensors

// ANCHOR: elementwise
/// Operations on every element: a tensor and a number, a tensor and a
/// tensor of the same shape, and the functions of one element.
pub fn elementwise(dev: &Cpu) -> [CpuTensor<Rank1<4>>; 5] {
    let x: CpuTensor<Rank1<4>> = dev.tensor([-1.0, 0.0, 1.0, 2.0]); // (4,)
    let affine = x.clone() * 0.5 + 1.0; // (4,): x · 0.5 + 1, element by element
    let sum = x.clone() + affine.clone(); // (4,): two tensors of one shape
    let relu = x.clone().relu(); // (4,): max(x, 0)
    let square = x.clone().square(); // (4,); and exp, ln, sqrt, tanh, negate...
    [x, affine, sum, relu, square]
}
// ANCHOR_END: elementwise

// ANCHOR: reduce
/// Reductions name the axis they remove (`Axis<1>`: the columns, so one
/// number per row) and the shape that is left.
pub fn reduce(dev: &Cpu) -> (CpuTensor<(usize,)>, CpuTensor<(usize,)>, CpuTensor<Rank0>) {
    let n = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], (2, 3)); // (2, 3)
    let row_sums = n.clone().sum::<(usize,), Axis<1>>(); // (2,): n.sum(1)
    let col_means = n.clone().mean::<(usize,), Axis<0>>(); // (3,): n.mean(0)
    let total: CpuTensor<Rank0> = n.sum(); // (): every element; `.mean()` likewise
    (row_sums, col_means, total)
}
// ANCHOR_END: reduce

// ANCHOR: broadcast
/// Broadcasts name the axis they add, too: the row sums repeated along each
/// row (what PyTorch's `keepdim=True` gives), a bias repeated on every row.
pub fn broadcast(
    dev: &Cpu,
) -> (
    CpuTensor<(usize, usize)>,
    CpuTensor<(usize, Const<3>)>,
    CpuTensor<Rank2<2, 3>>,
) {
    let n = dev.tensor_from_vec(vec![1.0, 1.0, 2.0, 3.0, 3.0, 4.0], (2, 3)); // (2, 3)
    let sums = n.clone().sum::<(usize,), Axis<1>>(); // (2,): 4 and 10
    let along = sums.broadcast_like::<_, Axis<1>>(n.shape()); // (2, 3): row i is sums[i]
    let p = n / along; // (2, 3): each row divided by its sum
    let bias: CpuTensor<Rank1<3>> = dev.tensor([0.1, 0.2, 0.3]); // (3,)
    let rows = bias.clone().broadcast_like::<_, Axis<0>>(&(2, Const::<3>)); // (2, 3)
    let inferred: CpuTensor<Rank2<2, 3>> = bias.broadcast(); // (2, 3): the axis inferred
    (p, rows, inferred)
}
// ANCHOR_END: broadcast

// ANCHOR: select_gather
/// `select` takes one entry per row (the row's label, `probs[arange(N), ys]`);
/// `gather` takes whole rows of a table, one per index, in the shape of the
/// indices (an embedding lookup, `table[idx]`).
pub fn select_gather(
    dev: &Cpu,
) -> (
    CpuTensor<(usize,)>,
    CpuTensor<(usize, usize)>,
    CpuTensor<(usize, usize, usize)>,
) {
    let table = vec![0.0, 0.1, 0.2, 1.0, 1.1, 1.2, 2.0, 2.1, 2.2]; // row i is i.0, i.1, i.2
    let table = dev.tensor_from_vec(table, (3, 3)); // (3, 3)
    let ys = dev.tensor_from_vec(vec![2, 0, 1], (3,)); // (3,): a column for each row
    let picked = table.clone().select(ys); // (3,): table[0][2], table[1][0], table[2][1]
    let ids = dev.tensor_from_vec(vec![2, 2, 0], (3,)); // (3,)
    let rows = table.clone().gather(ids); // (3, 3): rows 2, 2 and 0
    let idx = dev.tensor_from_vec(vec![0, 1, 2, 1], (2, 2)); // (B, T) = (2, 2)
    let looked_up = table.gather(idx); // (B, T, C) = (2, 2, 3): a row per position
    (picked, rows, looked_up)
}
// ANCHOR_END: select_gather

// ANCHOR: softmax
/// Softmax along a named axis: along `Axis<1>`, each row becomes a
/// probability distribution. `log_softmax` is its logarithm, computed in one
/// stable step.
pub fn softmax(dev: &Cpu) -> (CpuTensor<(usize, usize)>, CpuTensor<(usize, usize)>) {
    let logits = dev.tensor_from_vec(vec![0.0, 1.0, 2.0, 0.0, 0.0, 0.0], (2, 3)); // (2, 3)
    let probs = logits.clone().softmax::<Axis<1>>(); // (2, 3): exp, then each row / its sum
    let logp = logits.log_softmax::<Axis<1>>(); // (2, 3): ln(probs), without overflow
    (probs, logp)
}
// ANCHOR_END: softmax

// ANCHOR: matmul
/// Matrix multiplication: a (2, 3) by a (3, 2); a batch of matrices by one
/// matrix (every (T, C) of the batch times the same (C, H)); a batch by a
/// batch.
pub fn matmul(dev: &Cpu) -> (CpuTensor<(usize, Const<2>)>, [usize; 3], [usize; 3]) {
    let a = vec![1.0, 0.0, 2.0, 0.0, 1.0, 1.0];
    let a: CpuTensor<(usize, Const<3>)> = dev.tensor_from_vec(a, (2, Const)); // (2, 3)
    let w: CpuTensor<Rank2<3, 2>> = dev.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]); // (3, 2)
    let y = a.matmul(w); // (2, 3) @ (3, 2) -> (2, 2): the inner 3s must agree
    let x: CpuTensor<(usize, usize, Const<4>)> = dev.ones_like(&(2, 5, Const)); // (B, T, C)
    let proj: CpuTensor<Rank2<4, 3>> = dev.ones(); // (C, H)
    let q = x.clone().matmul(proj); // (B, T, C) @ (C, H) -> (B, T, H)
    let k = q.clone(); // (B, T, H)
    let wei = q.matmul(k.permute::<_, Axes3<0, 2, 1>>()); // (B, T, H) @ (B, H, T) -> (B, T, T)
    (y, x.shape().concrete(), wei.shape().concrete())
}
// ANCHOR_END: matmul

// ANCHOR: reshape_permute
/// `reshape_like` reads the elements in order into a new shape (PyTorch's
/// `.view`); `permute` reorders the axes (`.transpose`), so the same
/// elements come out in a different order.
pub fn reshape_permute(dev: &Cpu) -> [CpuTensor<(usize, usize)>; 3] {
    let a = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], (2, 3)); // (2, 3)
    let reshaped = a.clone().reshape_like(&(3, 2)); // (3, 2): 1 2 | 3 4 | 5 6
    let transposed = a.clone().permute::<_, Axes2<1, 0>>(); // (3, 2): 1 4 | 2 5 | 3 6
    [a, reshaped, transposed]
}
// ANCHOR_END: reshape_permute

// ANCHOR: slice_concat
/// `slice` cuts out a range along each axis; `concat_along` puts two tensors
/// side by side along a named axis (`torch.cat(..., dim=1)`).
pub fn slice_concat(dev: &Cpu) -> (CpuTensor<(usize, usize)>, CpuTensor<(usize, usize)>) {
    let a = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], (2, 3)); // (2, 3)
    let right = a.clone().slice((.., 1..3)); // (2, 2): every row, columns 1 and 2
    let both = (a, right.clone()).concat_along(Axis::<1>); // (2, 3) and (2, 2) -> (2, 5)
    (right, both)
}
// ANCHOR_END: slice_concat

// ANCHOR: tri
/// The triangles: keep the lower triangle of a matrix (`torch.tril`), or make
/// a matrix that holds a value above the diagonal and zero elsewhere; its
/// softmax by rows averages each row's past (chapter 4's trick).
pub fn tri(dev: &Cpu) -> [CpuTensor<(usize, usize)>; 3] {
    let lower = dev.ones_like(&(3, 3)).lower_tri(0); // (3, 3): ones on and below the diagonal
    let future = dev.upper_tri_like(&(3, 3), f32::NEG_INFINITY, 1); // (3, 3): −∞ above it
    let average = future.clone().softmax::<Axis<1>>(); // (3, 3): row t averages 0..=t
    [lower, future, average]
}
// ANCHOR_END: tri

// ANCHOR: realize
/// `realize` changes which sizes the type knows, not the data: a run-time
/// width of 3 becomes `Const<3>` (checked when it runs), and back.
/// `try_realize` gives the tensor back, unchanged, when the sizes disagree.
pub fn realize(dev: &Cpu) -> (CpuTensor<(usize, Const<3>)>, bool) {
    let a = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], (2, 3)); // (usize, usize)
    let fixed = a.realize::<(usize, Const<3>)>(); // (usize, Const<3>): the 3 now in the type
    let back = fixed.clone().realize::<(usize, usize)>(); // (usize, usize) again
    let refused = back.try_realize::<(usize, Const<4>)>().is_err(); // 3 is not 4: Err(back)
    (fixed, refused)
}
// ANCHOR_END: realize

// ANCHOR: retaped
/// A recording tensor used twice needs a second handle on the tape:
/// `retaped`. `y = Σ w + Σ w²`, so `∂y/∂w = 1 + 2w`.
pub fn retaped(dev: &Cpu) -> CpuTensor<Rank1<3>> {
    let w: CpuTensor<Rank1<3>> = dev.tensor([1.0, 2.0, 3.0]); // (3,)
    let wt = w.trace(Gradients::leaky()); // (3,): the same tensor, recording
    let first = wt.retaped::<OwnedTape<f32, Cpu>>().sum::<Rank0, _>(); // (): Σ w
    let y = first + wt.square().sum(); // (): Σ w + Σ w², the two tapes merged
    let grads = y.backward(); // ∂y/∂(every tensor on the tape)
    grads.get(&w) // (3,): 1 + 2w
}
// ANCHOR_END: retaped

// ANCHOR: tape_left
/// In `a.matmul(b)` the tape rides on `a`. To record a matmul of data by
/// weights, move the weights' tape onto the data (chapter 2's
/// `matmul_fixed_lhs`).
pub fn tape_left(dev: &Cpu) -> CpuTensor<Rank2<3, 2>> {
    let x: CpuTensor<Rank2<2, 3>> = dev.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]); // (2, 3)
    let w: CpuTensor<Rank2<3, 2>> = dev.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]); // (3, 2)
    let (wt, tape) = w.trace(Gradients::leaky()).split_tape(); // (3, 2), and its tape
    let y = x.put_tape(tape).matmul(wt).sum::<Rank0, _>(); // (2, 3) @ (3, 2) -> (2, 2) -> ()
    y.backward().get(&w) // (3, 2): ones in the rows x picked, zeros in the other
}
// ANCHOR_END: tape_left

// ANCHOR: two_layer
/// A net of two layers, as in the lectures' MLP: `h = tanh(x @ W1 + b1)`,
/// `logits = h @ W2 + b2`, with 3 inputs, 4 hidden units and 2 classes.
#[derive(Clone, Debug)]
pub struct TwoLayer {
    /// The first layer's weights, (3, 4): inputs by hidden units.
    pub w1: CpuTensor<Rank2<3, 4>>,
    /// Its biases, (4,).
    pub b1: CpuTensor<Rank1<4>>,
    /// The second layer's weights, (4, 2): hidden units by classes.
    pub w2: CpuTensor<Rank2<4, 2>>,
    /// Its biases, (2,).
    pub b2: CpuTensor<Rank1<2>>,
}

impl TwoLayer {
    /// The net's starting weights: numbers small enough to follow by hand.
    pub fn new(dev: &Cpu) -> Self {
        let w1 = [
            [0.5, -0.3, 0.8, 0.1],
            [0.2, 0.7, -0.5, 0.4],
            [-0.6, 0.1, 0.3, 0.9],
        ];
        let w2 = [[0.7, -0.4], [-0.2, 0.6], [0.5, 0.3], [-0.8, 0.9]];
        Self {
            w1: dev.tensor(w1),                    // (3, 4)
            b1: dev.tensor([0.1, -0.1, 0.0, 0.2]), // (4,)
            w2: dev.tensor(w2),                    // (4, 2)
            b2: dev.tensor([0.0, 0.1]),            // (2,)
        }
    }

    /// The hidden layer, `tanh(x @ W1 + b1)`.
    pub fn hidden<T: Tape<f32, Cpu>>(
        &self,
        x: Tensor<(usize, Const<3>), f32, Cpu, T>, // (N, 3)
    ) -> Tensor<(usize, Const<4>), f32, Cpu, T> {
        let n = x.shape().0; // N, the number of examples
        let b1 = self.b1.clone(); // (4,)
        let b1 = b1.broadcast_like::<_, Axis<0>>(&(n, Const::<4>)); // (N, 4): on every row
        (x.matmul(self.w1.clone()) + b1).tanh() // (N, 3) @ (3, 4) -> (N, 4)
    }

    /// The logits, `h @ W2 + b2`.
    pub fn logits<T: Tape<f32, Cpu>>(
        &self,
        x: Tensor<(usize, Const<3>), f32, Cpu, T>, // (N, 3)
    ) -> Tensor<(usize, Const<2>), f32, Cpu, T> {
        let h = self.hidden(x); // (N, 4)
        let n = h.shape().0;
        let b2 = self.b2.clone(); // (2,)
        let b2 = b2.broadcast_like::<_, Axis<0>>(&(n, Const::<2>)); // (N, 2): on every row
        h.matmul(self.w2.clone()) + b2 // (N, 4) @ (4, 2) -> (N, 2)
    }

    /// The loss: cross-entropy of the logits against the labels `ys`.
    pub fn loss<T: Tape<f32, Cpu>>(
        &self,
        x: Tensor<(usize, Const<3>), f32, Cpu, T>, // (N, 3)
        ys: &Indices,                              // (N,)
    ) -> Tensor<Rank0, f32, Cpu, T> {
        self.logits(x) // (N, 2)
            .log_softmax::<Axis<1>>() // (N, 2): ln p
            .select(ys.clone()) // (N,): ln p[n, ys[n]]
            .mean() // ()
            .negate() // (): −mean ln p of the right class
    }
}
// ANCHOR_END: two_layer

// ANCHOR: two_layer_data
/// Four examples of 3 inputs, and their classes.
pub fn two_layer_data(dev: &Cpu) -> (CpuTensor<(usize, Const<3>)>, Indices) {
    let x = [
        [1.0, 0.5, -1.0],
        [0.0, 1.0, 2.0],
        [-1.0, -0.5, 0.5],
        [2.0, 0.0, 1.0],
    ];
    let x: CpuTensor<Rank2<4, 3>> = dev.tensor(x); // (4, 3)
    let x = x.realize::<(usize, Const<3>)>(); // (N, 3): N, the data's, at run time
    let ys = dev.tensor_from_vec(vec![0, 1, 1, 0], (4,)); // (N,): each example's class
    (x, ys)
}
// ANCHOR_END: two_layer_data

/// The gradients of the loss with respect to each of the net's tensors, in
/// its order: W1 (3, 4), b1 (4,), W2 (4, 2), b2 (2,), each flattened.
pub type NetGrads = [Vec<f32>; 4];

// ANCHOR: backward
/// The loss and its gradients, by the tape: forward with the tape on the
/// input, then `backward`.
pub fn backward(
    net: &TwoLayer,
    x: &CpuTensor<(usize, Const<3>)>, // (N, 3)
    ys: &Indices,                     // (N,)
) -> (f32, NetGrads) {
    let x = x.clone().traced(Gradients::leaky()); // (N, 3): the tape starts here
    let loss = net.loss(x, ys); // (): the forward pass; the loss now holds the tape
    let value = loss.array(); // the loss, as a number
    let grads = loss.backward(); // ∂loss/∂(every tensor the ops touched), weights included
    let dw1 = grads.get(&net.w1); // (3, 4): the shape of W1
    let db1 = grads.get(&net.b1); // (4,)
    let dw2 = grads.get(&net.w2); // (4, 2)
    let db2 = grads.get(&net.b2); // (2,)
    let flat = [dw1.as_vec(), db1.as_vec(), dw2.as_vec(), db2.as_vec()];
    (value, flat)
}
// ANCHOR_END: backward

// ANCHOR: by_hand
/// The same gradients by the chain rule written out, layer by layer from the
/// loss back, in dfdx ops on tensors that record nothing.
pub fn by_hand(net: &TwoLayer, x: &CpuTensor<(usize, Const<3>)>, ys: &[usize]) -> NetGrads {
    let n = x.shape().0 as f32; // N
    let h = net.hidden(x.clone()); // (N, 4)
    let probs = net.logits(x.clone()).softmax::<Axis<1>>(); // (N, 2)
    let dev = x.device();
    let onehot: CpuTensor<(usize, Const<2>)> = dev.one_hot_encode(Const, ys.to_vec()); // (N, 2)
    let dlogits = (probs - onehot) / n; // (N, 2): ∂loss/∂logits = (p − onehot) / N

    // the second layer, logits = h @ W2 + b2
    let ht = h.clone().permute::<_, Axes2<1, 0>>(); // (4, N): hᵀ
    let dw2 = ht.matmul(dlogits.clone()); // (4, N) @ (N, 2) -> (4, 2)
    let db2 = dlogits.clone().sum::<Rank1<2>, Axis<0>>(); // (2,): over the examples
    let w2t = net.w2.clone().permute::<_, Axes2<1, 0>>(); // (2, 4): W2ᵀ
    let dh = dlogits.matmul(w2t); // (N, 2) @ (2, 4) -> (N, 4)

    // through tanh, whose slope is 1 − tanh²
    let dpre = dh * (h.square().negate() + 1.0); // (N, 4)

    // the first layer, pre = x @ W1 + b1
    let xt = x.clone().permute::<_, Axes2<1, 0>>(); // (3, N): xᵀ
    let dw1 = xt.matmul(dpre.clone()); // (3, N) @ (N, 4) -> (3, 4)
    let db1 = dpre.sum::<Rank1<4>, Axis<0>>(); // (4,)
    [dw1.as_vec(), db1.as_vec(), dw2.as_vec(), db2.as_vec()]
}
// ANCHOR_END: by_hand

// ANCHOR: sgd_step
/// One step of gradient descent: every weight moves a little against its
/// gradient, `w ← w − lr · ∂loss/∂w` (PyTorch's `p.data += -lr * p.grad`).
/// Returns the loss after the step.
pub fn sgd_step(
    net: &mut TwoLayer,
    x: &CpuTensor<(usize, Const<3>)>, // (N, 3)
    ys: &Indices,                     // (N,)
    lr: f32,
) -> f32 {
    let loss = net.loss(x.clone().traced(Gradients::leaky()), ys); // (): recorded
    let grads = loss.backward();
    net.w1.axpy(1.0, &grads.get(&net.w1), -lr); // (3, 4): W1 ← 1 · W1 + (−lr) · ∂loss/∂W1
    net.b1.axpy(1.0, &grads.get(&net.b1), -lr); // (4,)
    net.w2.axpy(1.0, &grads.get(&net.w2), -lr); // (4, 2)
    net.b2.axpy(1.0, &grads.get(&net.b2), -lr); // (2,)
    net.loss(x.clone(), ys).array() // the loss again, nothing recorded
}
// ANCHOR_END: sgd_step

/// The learning rate of the page's one step of gradient descent.
pub const LR: f32 = 1.0;

/// The largest difference between two sets of gradients.
pub fn max_diff(a: &NetGrads, b: &NetGrads) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f32::max)
}

/// The two-layer net, checked: its loss, and how far the tape's gradients
/// are from the chain rule's by hand. What `charlm tour` reports for the
/// primer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetReport {
    /// The loss at the starting weights.
    pub loss: f32,
    /// The loss after one step of gradient descent at [`LR`].
    pub loss_after_step: f32,
    /// The largest |tape − by hand| over every gradient.
    pub max_diff_by_hand: f32,
}

impl NetReport {
    /// Runs the net: the loss, the gradients both ways, one step.
    pub fn run(dev: &Cpu) -> Self {
        let mut net = TwoLayer::new(dev);
        let (x, ys) = two_layer_data(dev);
        let (loss, grads) = backward(&net, &x, &ys);
        let max_diff_by_hand = max_diff(&grads, &by_hand(&net, &x, &ys.as_vec()));
        let loss_after_step = sgd_step(&mut net, &x, &ys, LR);
        Self {
            loss,
            loss_after_step,
            max_diff_by_hand,
        }
    }

    /// What `charlm tour` prints.
    pub fn summary(&self) -> String {
        format!(
            "two-layer net    loss {:.4}, {:.4} after one step\n\
             backward         largest |tape − chain rule by hand| {}\n",
            self.loss,
            self.loss_after_step,
            small(self.max_diff_by_hand)
        )
    }
}

/// The primer in the registry: no figures, one file of numbers.
pub struct Primer;

impl Stage for Primer {
    fn id(&self) -> &'static str {
        ID
    }

    fn heading(&self) -> &'static str {
        "Shapes, and reading dfdx: a two-layer net, forward and backward"
    }

    fn tour(&self, _: &DataSets, _: &Path, _: Progress) -> Result<Tour, StageError> {
        let report = NetReport::run(&Cpu::default());
        // the gradients are a few hundredths: by hand they agree to float rounding
        let failure = (report.max_diff_by_hand > 1e-5).then(|| {
            format!(
                "the primer's gradients by the tape and by hand differ by {:e}",
                report.max_diff_by_hand
            )
        });
        Ok(Tour {
            summary: report.summary(),
            report: json(&report),
            figures: Vec::new(),
            failure,
        })
    }

    fn write_book_files(&self, _: &DataSets, dir: &Path) -> Result<(), StageError> {
        numbers(&Cpu::default()).write(dir)
    }
}

/// A difference that should be tiny: 0, or its order of magnitude.
fn small(d: f32) -> String {
    if d == 0.0 {
        "0".to_string()
    } else {
        format!("{d:.0e}")
    }
}

/// `name (shape) = values`, nested by rows as the tensor's shape says, the
/// values right-aligned in columns: whole numbers without decimals when
/// every value is one, otherwise four decimals each.
pub fn show(name: &str, dims: &[usize], values: &[f32]) -> String {
    let whole = values.iter().all(|v| !v.is_finite() || v.fract() == 0.0);
    let cells: Vec<String> = values
        .iter()
        .map(|&v| match (whole, v.is_finite()) {
            (true, true) => format!("{}", v + 0.0), // + 0.0: no "-0"
            (false, true) => format!("{v:.4}"),
            (_, false) => format!("{v}"),
        })
        .collect();
    let width = cells.iter().map(|c| c.chars().count()).max().unwrap_or(0);
    let padded: Vec<String> = cells.iter().map(|c| format!("{c:>width$}")).collect();
    let shape = match dims {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let head = format!("{name} {shape} = ");
    let indent = " ".repeat(head.chars().count());
    let r = dims.len();
    match r {
        0 => format!("{head}{}", cells[0]),
        1 => format!("{head}[{}]", padded.join(", ")),
        _ => {
            // the bracket of level j (0: the whole tensor) spans this many rows
            let span = |j: usize| dims[j..r - 1].iter().product::<usize>();
            let mut s = head;
            for (i, row) in padded.chunks(dims[r - 1]).enumerate() {
                let opens = (0..r).filter(|&j| i % span(j) == 0).count();
                let closes = (0..r).filter(|&j| (i + 1) % span(j) == 0).count();
                if i > 0 {
                    // a blank line before each new matrix of a batch
                    s.push_str(if opens > 1 { ",\n\n" } else { ",\n" });
                    s.push_str(&indent);
                    s.push_str(&" ".repeat(r - opens));
                }
                let _ = write!(
                    s,
                    "{}{}{}",
                    "[".repeat(opens),
                    row.join(", "),
                    "]".repeat(closes)
                );
            }
            s
        }
    }
}

/// [`show`] for a tensor.
fn shown<S: Shape>(name: &str, t: &CpuTensor<S>) -> String {
    let dims: Vec<usize> = t.shape().concrete().into_iter().collect();
    show(name, &dims, &t.as_vec())
}

/// Lines as a text block.
fn block(lines: &[String]) -> String {
    format!("```text\n{}\n```", lines.join("\n"))
}

/// Every value the primer's page prints, each under the anchor of the
/// listing that prints it.
pub fn numbers(dev: &Cpu) -> BookNumbers {
    let mut nb = BookNumbers::default();
    let (a, b, (rows, cols), flat) = tensors(dev);
    nb.put(
        "tensors",
        block(&[
            shown("a", &a),
            shown("b", &b),
            format!("(rows, cols) = ({rows}, {cols})"),
            show("flat", &[flat.len()], &flat),
        ]),
    );
    let [x, affine, sum, relu, square] = elementwise(dev);
    nb.put(
        "elementwise",
        block(&[
            shown("x", &x),
            shown("affine", &affine),
            shown("sum", &sum),
            shown("relu", &relu),
            shown("square", &square),
        ]),
    );
    let (row_sums, col_means, total) = reduce(dev);
    nb.put(
        "reduce",
        block(&[
            shown("row_sums", &row_sums),
            shown("col_means", &col_means),
            shown("total", &total),
        ]),
    );
    let (p, rows, inferred) = broadcast(dev);
    nb.put(
        "broadcast",
        block(&[
            shown("p", &p),
            shown("rows", &rows),
            shown("inferred", &inferred),
        ]),
    );
    let (picked, rows, looked_up) = select_gather(dev);
    nb.put(
        "select_gather",
        block(&[
            shown("picked", &picked),
            shown("rows", &rows),
            shown("looked_up", &looked_up),
        ]),
    );
    let (probs, logp) = softmax(dev);
    nb.put(
        "softmax",
        block(&[shown("probs", &probs), shown("logp", &logp)]),
    );
    let (y, x_shape, wei_shape) = matmul(dev);
    nb.put(
        "matmul",
        block(&[
            shown("y", &y),
            format!("x   {:?}", (x_shape[0], x_shape[1], x_shape[2])),
            format!("wei {:?}", (wei_shape[0], wei_shape[1], wei_shape[2])),
        ]),
    );
    let [a, reshaped, transposed] = reshape_permute(dev);
    nb.put(
        "reshape_permute",
        block(&[
            shown("a", &a),
            shown("reshaped", &reshaped),
            shown("transposed", &transposed),
        ]),
    );
    let (right, both) = slice_concat(dev);
    nb.put(
        "slice_concat",
        block(&[shown("right", &right), shown("both", &both)]),
    );
    let [lower, future, average] = tri(dev);
    nb.put(
        "tri",
        block(&[
            shown("lower", &lower),
            shown("future", &future),
            shown("average", &average),
        ]),
    );
    let (fixed, refused) = realize(dev);
    nb.put(
        "realize",
        block(&[shown("fixed", &fixed), format!("refused = {refused}")]),
    );
    nb.put("retaped", block(&[shown("grad", &retaped(dev))]));
    nb.put("tape_left", block(&[shown("grad", &tape_left(dev))]));

    let mut net = TwoLayer::new(dev);
    let (x, ys) = two_layer_data(dev);
    let h = net.hidden(x.clone());
    let logits = net.logits(x.clone());
    let probs = logits.clone().softmax::<Axis<1>>();
    let (loss, grads) = backward(&net, &x, &ys);
    nb.put(
        "forward",
        block(&[
            shown("x", &x),
            format!("ys (4,) = {:?}", ys.as_vec()),
            shown("h", &h),
            shown("logits", &logits),
            shown("probs", &probs),
            show("loss", &[], &[loss]),
        ]),
    );
    let shapes: [&[usize]; 4] = [&[3, 4], &[4], &[4, 2], &[2]];
    let names = ["dW1", "db1", "dW2", "db2"];
    let lines: Vec<String> = (0..4)
        .map(|i| show(names[i], shapes[i], &grads[i]))
        .collect();
    nb.put("gradients", block(&lines));
    let hand = by_hand(&net, &x, &ys.as_vec());
    let diff = max_diff(&grads, &hand);
    let diff = if diff == 0.0 {
        "0".to_string()
    } else {
        format!("{diff:.0e}")
    };
    nb.put("by_hand_diff", diff);
    nb.put("loss", format!("{loss:.4}"));
    nb.put("lr", format!("{LR}"));
    nb.put(
        "loss_after_step",
        format!("{:.4}", sgd_step(&mut net, &x, &ys, LR)),
    );
    nb
}
