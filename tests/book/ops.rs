//! The kernel trait: each of the CPU's fused kernels against the composed
//! dfdx ops it replaces (the code the chapters list), at vocabulary sizes on
//! both sides of the kernels' register width. Chapters 2, 4 and 5 test the
//! same at their own sizes.

use charlm::models::attention_trick::randn;
use charlm::ops::cpu::fast_exp;
use charlm::ops::{composed, Activation, Kernels};
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

/// x (B, T, C) with rows of mean 3 and spread 2, gamma, beta (C,) and an
/// upstream gradient (B, T, C), from `seed`.
fn norm_inputs<const C: usize>(b: usize, t: usize, seed: u64) -> [Vec<f32>; 4] {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let mut normal = |n: usize, scale: f32, shift: f32| -> Vec<f32> {
        (0..n)
            .map(|_| shift + scale * rng.sample::<f32, _>(rand_distr::StandardNormal))
            .collect()
    };
    [
        normal(b * t * C, 2.0, 3.0),
        normal(C, 0.5, 1.0),
        normal(C, 0.5, 0.0),
        normal(b * t * C, 1.0, 0.0),
    ]
}

/// y, ∂x, ∂gamma, ∂beta of `sum(layer_norm(x) ⊙ up)`: the fused kernel, the
/// composed ops, or dfdx's `LayerNorm1D` module.
fn norm_run<const C: usize>(
    inputs: &[Vec<f32>; 4],
    (b, t): (usize, usize),
    how: &str,
) -> [Vec<f32>; 4] {
    let dev = Cpu::default();
    let x = dev.tensor_from_vec(inputs[0].clone(), (b, t, Const::<C>));
    let gamma = dev.tensor_from_vec(inputs[1].clone(), (Const::<C>,));
    let beta = dev.tensor_from_vec(inputs[2].clone(), (Const::<C>,));
    let up = dev.tensor_from_vec(inputs[3].clone(), (b, t, Const::<C>));
    let xt = x.trace(Gradients::leaky());
    let y = match how {
        "fused" => <Cpu as Kernels>::layer_norm(xt, &gamma, &beta, 1e-5),
        "composed" => composed::layer_norm(xt, &gamma, &beta, 1e-5),
        _ => dfdx::nn::modules::LayerNorm1D {
            gamma: gamma.clone(),
            beta: beta.clone(),
            epsilon: 1e-5,
        }
        .forward(xt),
    };
    let values = y.as_vec();
    let grads = (y * up).sum().backward();
    [
        values,
        grads.get(&x).as_vec(),
        grads.get(&gamma).as_vec(),
        grads.get(&beta).as_vec(),
    ]
}

fn fused_norm_matches<const C: usize>() {
    for (b, t) in [(1, 1), (2, 5), (3, 70), (4, 64)] {
        let inputs = norm_inputs::<C>(b, t, (b * t + C) as u64);
        let fused = norm_run::<C>(&inputs, (b, t), "fused");
        let composed = norm_run::<C>(&inputs, (b, t), "composed");
        for (name, (f, c)) in ["y", "∂x", "∂gamma", "∂beta"]
            .iter()
            .zip(fused.iter().zip(&composed))
        {
            let scale = c.iter().fold(1f32, |m, v| m.max(v.abs()));
            let diff = max_diff(f, c);
            assert!(
                diff <= 2e-6 * scale,
                "{name} differs at (B, T, C) = ({b}, {t}, {C}): {diff} (largest value {scale})"
            );
        }
        // with gamma 1 and beta 0, every row comes out with mean 0 and variance 1
        let plain = [
            inputs[0].clone(),
            vec![1.0; C],
            vec![0.0; C],
            inputs[3].clone(),
        ];
        let y = &norm_run::<C>(&plain, (b, t), "fused")[0];
        for row in y.chunks(C) {
            let mean = row.iter().sum::<f32>() / C as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / C as f32;
            assert!(
                mean.abs() < 1e-5 && (C == 1 || (var - 1.0).abs() < 1e-3),
                "row mean {mean}, variance {var}"
            );
        }
    }
}

#[test]
fn fused_layer_norm_equals_the_composed_ops_forward_and_backward() {
    fused_norm_matches::<32>(); // the ladder's n_embd
    fused_norm_matches::<13>(); // past one register, with a tail
    fused_norm_matches::<384>(); // chapter 8's n_embd
}

#[test]
fn composed_layer_norm_is_dfdx_layer_norm_bit_for_bit() {
    let inputs = norm_inputs::<32>(3, 70, 5);
    assert_eq!(
        norm_run::<32>(&inputs, (3, 70), "composed"),
        norm_run::<32>(&inputs, (3, 70), "dfdx")
    );
}

#[test]
fn fused_layer_norm_is_the_same_on_any_number_of_threads_and_keeps_nan() {
    let inputs = norm_inputs::<32>(8, 100, 11); // 800 rows: 13 blocks of 64
    let run = |threads: usize| {
        charlm::bench::with_threads(threads, || norm_run::<32>(&inputs, (8, 100), "fused")).unwrap()
    };
    assert_eq!(run(1), run(2));
    let mut bad = inputs.clone();
    bad[0][5 * 32 + 7] = f32::NAN; // one value of row 5
    let [y, ..] = norm_run::<32>(&bad, (8, 100), "fused");
    for (r, row) in y.chunks(32).enumerate() {
        assert_eq!(row.iter().all(|v| v.is_nan()), r == 5, "row {r}");
    }
}

/// out, ∂x, ∂weight, ∂bias of `sum(linear(x) ⊙ up)` for x (B, T, I) and a
/// weight of O rows (O at run time, as lm_head's vocabulary).
fn linear_run<const I: usize>(
    (b, t, o): (usize, usize, usize),
    seed: u64,
    fused: bool,
) -> [Vec<f32>; 4] {
    let dev = Cpu::default();
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let mut normal = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal))
            .collect()
    };
    let x = dev.tensor_from_vec(normal(b * t * I), (b, t, Const::<I>));
    let w = dev.tensor_from_vec(normal(o * I), (o, Const::<I>));
    let bias = dev.tensor_from_vec(normal(o), (o,));
    let up = dev.tensor_from_vec(normal(b * t * o), (b, t, o));
    let xt = x.trace(Gradients::leaky());
    let y = if fused {
        <Cpu as Kernels>::linear(xt, &w, &bias)
    } else {
        composed::linear(xt, &w, &bias)
    };
    let values = y.as_vec();
    let grads = (y * up).sum().backward();
    [
        values,
        grads.get(&x).as_vec(),
        grads.get(&w).as_vec(),
        grads.get(&bias).as_vec(),
    ]
}

fn fused_linear_matches<const I: usize>() {
    // one token, a few sequences, past gemm's register tiles, chapter 8's widths
    for (b, t, o) in [
        (1, 1, 1),
        (2, 5, 7),
        (32, 8, 128),
        (3, 70, 65),
        (2, 64, 1536),
    ] {
        let fused = linear_run::<I>((b, t, o), (b + t + o) as u64, true);
        let composed = linear_run::<I>((b, t, o), (b + t + o) as u64, false);
        for (name, (f, c)) in ["out", "∂x", "∂weight", "∂bias"]
            .iter()
            .zip(fused.iter().zip(&composed))
        {
            let scale = c.iter().fold(1f32, |m, v| m.max(v.abs()));
            let diff = max_diff(f, c);
            assert!(
                diff <= 1e-5 * scale,
                "{name} differs at (B, T, I, O) = ({b}, {t}, {I}, {o}): {diff} (largest value {scale})"
            );
        }
    }
}

#[test]
fn fused_linear_equals_the_composed_ops_forward_and_backward() {
    fused_linear_matches::<32>();
    fused_linear_matches::<13>();
    fused_linear_matches::<384>();
}

#[test]
fn fused_linear_is_the_same_on_any_number_of_threads() {
    // big enough for gemm to split the products across threads
    let run = |threads: usize| {
        charlm::bench::with_threads(threads, || linear_run::<128>((12, 64, 512), 3, true)).unwrap()
    };
    assert_eq!(run(1), run(2));
}

/// The heads of x (B, T, C), split then merged back, with the gradient of
/// `sum(split(x) ⊙ up)`: fused or composed.
fn heads_run(b: usize, t: usize, fused: bool) -> [Vec<f32>; 3] {
    let dev = Cpu::default();
    let mut rng = ChaCha12Rng::seed_from_u64((b * t) as u64);
    let x = randn(&dev, (b, t, 24), &mut rng).reshape_like(&(b, t, Const::<24>)); // (B, T, 24)
    let up = randn(&dev, (b * 4, t, 6), &mut rng).reshape_like(&(b * 4, t, Const::<6>)); // (B·4, T, 6)
    let xt = x.trace(Gradients::leaky());
    let heads = if fused {
        <Cpu as Kernels>::split_heads::<24, 4, 6, _>(xt)
    } else {
        composed::split_heads::<24, 4, 6, _, _>(xt)
    }; // (B·4, T, 6)
    let split = heads.as_vec();
    let merged = if fused {
        <Cpu as Kernels>::merge_heads::<24, 4, 6, _>(heads.retaped::<NoneTape>(), b)
    } else {
        composed::merge_heads::<24, 4, 6, _, _>(heads.retaped::<NoneTape>(), b)
    }; // (B, T, 24)
    let grads = (heads * up).sum().backward();
    [split, merged.as_vec(), grads.get(&x).as_vec()]
}

#[test]
fn fused_heads_split_and_merge_as_the_composed_ops_do_bit_for_bit() {
    for (b, t) in [(1, 1), (2, 5), (3, 17)] {
        let (fused, composed) = (heads_run(b, t, true), heads_run(b, t, false));
        assert_eq!(fused, composed, "(B, T) = ({b}, {t})");
        let dev = Cpu::default();
        let mut rng = ChaCha12Rng::seed_from_u64((b * t) as u64);
        let x = randn(&dev, (b, t, 24), &mut rng).as_vec();
        assert_eq!(fused[1], x, "merge undoes split");
        // head h of sequence s, token i, channel c is x[s, i, h·6 + c]
        let (s, i, h, c) = (b - 1, t - 1, 3, 5);
        assert_eq!(
            fused[0][((s * 4 + h) * t + i) * 6 + c],
            x[(s * t + i) * 24 + h * 6 + c]
        );
    }
}

/// Normal values from `rng`, times `scale`.
fn normals(rng: &mut ChaCha12Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| scale * rng.sample::<f32, _>(rand_distr::StandardNormal))
        .collect()
}

/// Asserts every pair of vectors agrees to `tol` times the larger values'
/// scale, naming the quantity.
fn assert_close(names: &[&str], fused: &[Vec<f32>], composed: &[Vec<f32>], tol: f32, at: &str) {
    for ((name, f), c) in names.iter().zip(fused).zip(composed) {
        let scale = c.iter().fold(1f32, |m, v| m.max(v.abs()));
        let diff = max_diff(f, c);
        assert!(
            diff <= tol * scale,
            "{name} differs {at}: {diff} (largest value {scale})"
        );
    }
}

type Map<const R: usize, const K: usize> = Tensor<Rank2<R, K>, f32, Cpu>;

/// out, ∂x and every weight's gradient of `sum(self_attention(x) ⊙ up)`
/// with NH = 4 heads of 6 (C = 24), fused or composed, dropping with `p`
/// from a generator seeded `seed` (none at p = 0).
fn attention_run(b: usize, t: usize, p: f32, seed: u64, fused: bool) -> Vec<Vec<f32>> {
    const C: usize = 24;
    let dev = Cpu::default();
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let x = dev.tensor_from_vec(normals(&mut rng, b * t * C, 1.0), (b, t, Const::<C>));
    let mut map =
        || -> Map<C, C> { dev.tensor_from_vec(normals(&mut rng, C * C, 0.3), (Const, Const)) };
    let (q, k, v, pw) = (map(), map(), map(), map());
    let pb: Tensor<Rank1<C>, f32, Cpu> = dev.tensor_from_vec(normals(&mut rng, C, 0.5), (Const,));
    let up = dev.tensor_from_vec(normals(&mut rng, b * t * C, 1.0), (b, t, Const::<C>));
    let mut drops = ChaCha12Rng::seed_from_u64(seed + 1);
    let dropping: composed::Dropping =
        (p > 0.0).then_some((p, &mut drops as &mut dyn charlm::ops::rng::MaskRng));
    let xt = x.trace(Gradients::leaky());
    let y = if fused {
        <Cpu as Kernels>::self_attention::<C, 4, 6, _>(xt, [&q, &k, &v], &pw, &pb, dropping)
    } else {
        composed::self_attention::<C, 4, 6, _, _>(xt, [&q, &k, &v], &pw, &pb, dropping)
    }; // (B, T, C)
    let values = y.as_vec();
    let grads = (y * up).sum().backward();
    let mut out = vec![values, grads.get(&x).as_vec()];
    out.extend([&q, &k, &v, &pw].map(|m| grads.get(m).as_vec()));
    out.push(grads.get(&pb).as_vec());
    out.push(vec![drops.gen::<f32>()]); // where the generator stands afterwards
    out
}

// The whole attention of a block in one kernel: the same numbers as the
// composed ops (chapter 7's listing), with and without dropout, at T below,
// at and past the kernel's blocks of 64 rows.
#[test]
fn fused_self_attention_equals_the_composed_ops_with_and_without_dropout() {
    let names = [
        "out",
        "∂x",
        "∂query",
        "∂key",
        "∂value",
        "∂proj.weight",
        "∂proj.bias",
        "next draw",
    ];
    for (b, t) in [(1, 1), (2, 7), (3, 64), (2, 100)] {
        for p in [0.0, 0.2] {
            let seed = (b * t) as u64;
            let (f, c) = (
                attention_run(b, t, p, seed, true),
                attention_run(b, t, p, seed, false),
            );
            assert_close(
                &names,
                &f,
                &c,
                1e-5,
                &format!("at (B, T) = ({b}, {t}), p = {p}"),
            );
            assert_eq!(f[7], c[7], "both drew as many numbers");
        }
    }
    // dropout drops: another generator, other numbers
    let (a, b) = (
        attention_run(2, 7, 0.2, 1, true),
        attention_run(2, 7, 0.2, 2, true),
    );
    assert_ne!(a[0], b[0]);
}

/// out, ∂x and every weight's gradient of `sum(feed_forward(x) ⊙ up)` with
/// C = 12, F = 48, fused or composed, with ReLU.
fn ffwd_run(b: usize, t: usize, p: f32, seed: u64, fused: bool) -> Vec<Vec<f32>> {
    ffwd_run_with::<ReLU>(b, t, p, seed, fused)
}

/// [`ffwd_run`] with the activation `A`.
fn ffwd_run_with<A: Activation>(
    b: usize,
    t: usize,
    p: f32,
    seed: u64,
    fused: bool,
) -> Vec<Vec<f32>> {
    const C: usize = 12;
    const F: usize = 48;
    let dev = Cpu::default();
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let x = dev.tensor_from_vec(normals(&mut rng, b * t * C, 1.0), (b, t, Const::<C>));
    let w1: Map<F, C> = dev.tensor_from_vec(normals(&mut rng, F * C, 0.3), (Const, Const));
    let b1: Tensor<Rank1<F>, f32, Cpu> = dev.tensor_from_vec(normals(&mut rng, F, 0.3), (Const,));
    let w2: Map<C, F> = dev.tensor_from_vec(normals(&mut rng, C * F, 0.3), (Const, Const));
    let b2: Tensor<Rank1<C>, f32, Cpu> = dev.tensor_from_vec(normals(&mut rng, C, 0.3), (Const,));
    let up = dev.tensor_from_vec(normals(&mut rng, b * t * C, 1.0), (b, t, Const::<C>));
    let mut drops = ChaCha12Rng::seed_from_u64(seed + 1);
    let dropping: composed::Dropping =
        (p > 0.0).then_some((p, &mut drops as &mut dyn charlm::ops::rng::MaskRng));
    let xt = x.trace(Gradients::leaky());
    let y = if fused {
        <Cpu as Kernels>::feed_forward::<C, F, A, _>(xt, (&w1, &b1), (&w2, &b2), dropping)
    } else {
        composed::feed_forward::<C, F, A, _, _>(xt, (&w1, &b1), (&w2, &b2), dropping)
    }; // (B, T, C)
    let values = y.as_vec();
    let grads = (y * up).sum().backward();
    vec![
        values,
        grads.get(&x).as_vec(),
        grads.get(&w1).as_vec(),
        grads.get(&b1).as_vec(),
        grads.get(&w2).as_vec(),
        grads.get(&b2).as_vec(),
        vec![drops.gen::<f32>()],
    ]
}

#[test]
fn fused_feed_forward_equals_the_composed_ops_with_and_without_dropout() {
    let names = ["out", "∂x", "∂w1", "∂b1", "∂w2", "∂b2", "next draw"];
    for (b, t) in [(1, 1), (2, 7), (5, 130)] {
        for p in [0.0, 0.2] {
            let seed = (b + t) as u64;
            let at = format!("at (B, T) = ({b}, {t}), p = {p}");
            let (f, c) = (
                ffwd_run(b, t, p, seed, true),
                ffwd_run(b, t, p, seed, false),
            );
            assert_close(&names, &f, &c, 1e-5, &format!("ReLU {at}"));
            assert_eq!(f[6], c[6], "both drew as many numbers");
            let (g, h) = (
                ffwd_run_with::<FastGeLU>(b, t, p, seed, true),
                ffwd_run_with::<FastGeLU>(b, t, p, seed, false),
            );
            assert_close(&names, &g, &h, 1e-5, &format!("GELU {at}"));
            assert_eq!(g[6], h[6], "both drew as many numbers");
            assert_ne!(f[0], g[0], "GELU is not ReLU");
        }
    }
}

#[test]
fn gelu_and_its_derivative_match_dfdx_and_finite_differences() {
    use charlm::ops::cpu::ffwd::{gelu, gelu_derivative};
    let dev = Cpu::default();
    let xs: Vec<f32> = (-800..=800).map(|i| i as f32 / 100.0).collect(); // -8 to 8
    let n = xs.len();
    let x = dev.tensor_from_vec(xs.clone(), (n,));
    let y = x.clone().trace(Gradients::leaky()).fast_gelu();
    let values = y.as_vec();
    let grads = y.sum().backward();
    let slopes = grads.get(&x).as_vec();
    for (i, &v) in xs.iter().enumerate() {
        assert!((gelu(v) - values[i]).abs() < 1e-6, "gelu({v})");
        assert!((gelu_derivative(v) - slopes[i]).abs() < 1e-5, "gelu'({v})");
        let h = 1e-3f64;
        let f = |x: f64| {
            0.5 * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
        };
        let numeric = (f(v as f64 + h) - f(v as f64 - h)) / (2.0 * h);
        let slope = gelu_derivative(v) as f64;
        assert!(
            (slope - numeric).abs() < 1e-5,
            "gelu'({v}) = {slope}, numerically {numeric}"
        );
    }
    // GELU lets a little of the negative side through, unlike ReLU
    assert!(gelu(-1.0) < -0.15 && gelu(-1.0) > -0.17);
    assert_eq!(gelu(0.0), 0.0);
    assert!((gelu(8.0) - 8.0).abs() < 1e-6 && gelu(-8.0).abs() < 1e-6);
}

#[test]
fn fused_attention_and_feed_forward_are_the_same_on_any_number_of_threads() {
    let run = |threads: usize| {
        charlm::bench::with_threads(threads, || {
            (
                attention_run(12, 64, 0.2, 9, true),
                ffwd_run(12, 64, 0.2, 9, true),
            )
        })
        .unwrap()
    };
    assert_eq!(run(1), run(2));
}

/// out, ∂x, ∂query, ∂key, ∂value of `sum((q + 2k + 3v) ⊙ up)` for the heads
/// of x (B, T, 24), 4 heads of 6: fused or composed.
fn qkv_run(b: usize, t: usize, fused: bool) -> Vec<Vec<f32>> {
    const C: usize = 24;
    let dev = Cpu::default();
    let mut rng = ChaCha12Rng::seed_from_u64((b * t) as u64);
    let x = dev.tensor_from_vec(normals(&mut rng, b * t * C, 1.0), (b, t, Const::<C>));
    let mut map =
        || -> Map<C, C> { dev.tensor_from_vec(normals(&mut rng, C * C, 0.3), (Const, Const)) };
    let (wq, wk, wv) = (map(), map(), map());
    let up = dev.tensor_from_vec(normals(&mut rng, b * t * C, 1.0), (b * 4, t, Const::<6>));
    let xt = x.trace(Gradients::leaky());
    let (q, k, v) = if fused {
        <Cpu as Kernels>::qkv_heads::<C, 4, 6, _>(xt, &wq, &wk, &wv)
    } else {
        composed::qkv_heads::<C, 4, 6, _, _>(xt, &wq, &wk, &wv)
    }; // (B·4, T, 6) each
    let mut out = vec![q.as_vec(), k.as_vec(), v.as_vec()];
    let grads = ((q + k * 2.0 + v * 3.0) * up).sum().backward();
    out.extend([
        grads.get(&x).as_vec(),
        grads.get(&wq).as_vec(),
        grads.get(&wk).as_vec(),
        grads.get(&wv).as_vec(),
    ]);
    out
}

#[test]
fn fused_qkv_heads_equal_the_composed_ops_forward_and_backward() {
    let names = ["q", "k", "v", "∂x", "∂query", "∂key", "∂value"];
    for (b, t) in [(1, 1), (2, 5), (3, 17)] {
        assert_close(
            &names,
            &qkv_run(b, t, true),
            &qkv_run(b, t, false),
            1e-5,
            &format!("at (B, T) = ({b}, {t})"),
        );
    }
}

// Clipping's norm and scaling read and write the gradients in place; the
// composed versions copy them out: the same norm, the same scaled values.
#[test]
fn fused_clipping_passes_equal_the_composed_ones() {
    let dev = Cpu::default();
    let mut rng = ChaCha12Rng::seed_from_u64(4);
    let p: Tensor<Rank1<70_000>, f32, Cpu> =
        dev.tensor_from_vec(normals(&mut rng, 70_000, 1.0), (Const,));
    let up: Tensor<Rank1<70_000>, f32, Cpu> =
        dev.tensor_from_vec(normals(&mut rng, 70_000, 1.0), (Const,));
    let grads = (p.trace(Gradients::leaky()) * up.clone()).sum().backward(); // ∂p = up
    let (mut a, mut b) = (grads.clone(), grads.clone());
    let fused = <Cpu as Kernels>::grad_sum_squares(&mut a, &p).unwrap();
    let plain = composed::grad_sum_squares(&b, &p);
    let exact: f64 = up
        .as_vec()
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum();
    assert!((fused - exact).abs() < 1e-9 * exact && (plain - exact).abs() < 1e-9 * exact);
    <Cpu as Kernels>::scale_grad(&mut a, &p, 0.25).unwrap();
    composed::scale_grad(&mut b, &p, 0.25).unwrap();
    assert_eq!(a.get(&p).as_vec(), b.get(&p).as_vec());
    assert_eq!(a.get(&p).as_vec()[7], up.as_vec()[7] * 0.25);
}

// Dropout's draws, many at once: ChaCha's stream split across threads gives
// exactly the numbers one thread drawing them in order gets, and leaves the
// generator where that thread would.
#[test]
fn chacha_fills_dropout_draws_across_threads_as_one_thread_draws_them() {
    use charlm::ops::rng::{keep_mask, MaskRng};
    use rand::RngCore;
    let mut a = ChaCha12Rng::seed_from_u64(5);
    a.next_u32(); // start inside a block
    let mut b = a.clone();
    let n = 200_003; // several threads' stretches, and a ragged end
    let mut filled = vec![0u32; n];
    charlm::bench::with_threads(2, || a.fill_u32(&mut filled)).unwrap();
    let drawn: Vec<u32> = (0..n).map(|_| b.next_u32()).collect();
    assert_eq!(filled, drawn);
    assert_eq!(a.next_u32(), b.next_u32(), "both stand at the same place");
    // keep_mask's decisions are the composed dropout's `gen::<f32>() < p`
    let (mut c, mut d) = (ChaCha12Rng::seed_from_u64(6), ChaCha12Rng::seed_from_u64(6));
    let keep = keep_mask(&mut c, n, 0.2);
    let plain: Vec<bool> = (0..n).map(|_| d.gen::<f32>() >= 0.2).collect();
    assert_eq!(keep, plain);
    let kept = keep.iter().filter(|&&k| k).count() as f64 / n as f64;
    assert!((kept - 0.8).abs() < 0.01, "{kept}");
}

#[test]
fn dfdx_accurate_gelu_backward_is_off_by_root_two_in_its_second_term() {
    // why EX4 uses the tanh form: dfdx 0.13's erf form has the right values
    // but a slope whose x·φ(x) term is √2 too large
    let dev = Cpu::default();
    let xs = [-2.0f32, -1.0, -0.5, 0.5, 1.0, 2.0];
    let x = dev.tensor_from_vec(xs.to_vec(), (xs.len(),));
    let y = x.clone().trace(Gradients::leaky()).accurate_gelu();
    let values = y.as_vec();
    let slopes = y.sum().backward().get(&x).as_vec();
    for (i, &v) in xs.iter().enumerate() {
        let v = v as f64;
        let phi = (-v * v / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let cdf = values[i] as f64 / v; // Φ(x), from the values (x·Φ(x))
        assert!((0.0..1.0).contains(&cdf) && (cdf > 0.5) == (v > 0.0));
        let right = cdf + v * phi;
        let dfdx_says = cdf + std::f64::consts::SQRT_2 * v * phi;
        assert!(
            (slopes[i] as f64 - dfdx_says).abs() < 1e-5,
            "at {v}: {}",
            slopes[i]
        );
        assert!((slopes[i] as f64 - right).abs() > 1e-2, "at {v}");
    }
}
