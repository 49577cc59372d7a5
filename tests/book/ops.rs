//! The kernel trait: each of the CPU's fused kernels against the composed
//! dfdx ops it replaces (the code the chapters list), at vocabulary sizes on
//! both sides of the kernels' register width. Chapters 2, 4 and 5 test the
//! same at their own sizes.

use charlm::models::attention_trick::randn;
use charlm::ops::cpu::fast_exp;
use charlm::ops::{composed, Kernels};
use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

use crate::common::max_diff;

#[test]
fn fast_exp_is_within_two_ulp_of_std() {
    let mut worst = 0f32;
    for i in 0..=1_750_000 {
        let x = -87.0 + i as f32 * 1e-4; // [-87, 88]
        let (a, b) = (fast_exp(x), x.exp());
        worst = worst.max(((a - b) / b).abs() / f32::EPSILON);
    }
    assert!(worst <= 2.0, "worst relative error {worst} ulp");
    assert!(fast_exp(f32::NAN).is_nan());
    assert_eq!(fast_exp(0.0), 1.0);
    assert!(fast_exp(f32::NEG_INFINITY) < 1e-37);
}

type Labelled = (
    Tensor<(usize, usize), f32, Cpu>,
    Tensor<(usize,), usize, Cpu>,
);

/// Logits (N, V) and labels (N,) from `seed`.
fn logits_and_labels(n: usize, v: usize, seed: u64) -> Labelled {
    let dev = Cpu::default();
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let logits = randn(&dev, (1, n, v), &mut rng).reshape_like(&(n, v)); // (N, V)
    let labels: Vec<usize> = (0..n).map(|_| rng.gen_range(0..v)).collect();
    (logits * 3.0, dev.tensor_from_vec(labels, (n,)))
}

#[test]
fn fused_index_nll_equals_the_composed_ops_at_any_vocabulary_size() {
    for (n, v) in [(1, 1), (7, 27), (300, 65), (2500, 95), (130, 200)] {
        let (logits, ys) = logits_and_labels(n, v, v as u64);
        let run = |fused: bool| {
            let x = logits.trace(Gradients::leaky());
            let loss = if fused {
                <Cpu as Kernels>::index_nll(x, &ys)
            } else {
                composed::index_nll(x, &ys)
            };
            let value = loss.as_vec()[0];
            (value, loss.backward().get(&logits).as_vec())
        };
        let ((a, ga), (b, gb)) = (run(true), run(false));
        assert!((a - b).abs() < 1e-4, "(N, V) = ({n}, {v}): {a} vs {b}");
        assert!(
            max_diff(&ga, &gb) < 1e-6,
            "(N, V) = ({n}, {v}): {}",
            max_diff(&ga, &gb)
        );
    }
}

#[test]
fn fused_linear_nll_equals_the_composed_ops_past_the_register_width() {
    let dev = Cpu::default();
    for (n, k, v) in [(500, 40, 40), (300, 7, 33), (129, 27, 27), (50, 3, 100)] {
        let mut rng = ChaCha12Rng::seed_from_u64(n as u64);
        let xs: Vec<usize> = (0..n).map(|_| rng.gen_range(0..k)).collect();
        let ys: Vec<usize> = (0..n).map(|_| rng.gen_range(0..v)).collect();
        let x = dfdx::data::OneHotEncode::one_hot_encode(&dev, k, xs); // (N, K)
        let ys = dev.tensor_from_vec(ys, (n,));
        let w = randn(&dev, (1, k, v), &mut rng).reshape_like(&(k, v)); // (K, V)
        let run = |fused: bool| {
            let wt = w.trace(Gradients::leaky());
            let loss = if fused {
                <Cpu as Kernels>::linear_nll(&x, wt, &ys)
            } else {
                composed::linear_nll(&x, wt, &ys)
            };
            let value = loss.as_vec()[0];
            (value, loss.backward().get(&w).as_vec())
        };
        let ((a, ga), (b, gb)) = (run(true), run(false));
        assert!(
            (a - b).abs() < 1e-4,
            "(N, K, V) = ({n}, {k}, {v}): {a} vs {b}"
        );
        assert!(
            max_diff(&ga, &gb) < 1e-5,
            "(N, K, V) = ({n}, {k}, {v}): {}",
            max_diff(&ga, &gb)
        );
    }
}
