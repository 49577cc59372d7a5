//! Chapter 2: the bigram model as a one-hot neural net, trained with dfdx.

use std::sync::OnceLock;

use charlm::data::vocab::Vocab;
use charlm::models::bigram_counts::BigramCounts;
use charlm::models::bigram_onehot::{
    lecture_loss, logits, loss, train, Batch, BigramNet, Forward, OneHotConfig, OneHotError, Pairs,
    NAMES_VOCAB,
};
use charlm::ops::{composed, Kernels};
use charlm::stages::onehot::OneHot;
use dfdx::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::common::{self, max_diff};

type Net = BigramNet<Cpu>;

struct Data {
    words: Vec<String>,
    counts: BigramCounts,
    pairs: Pairs,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let words = common::words().to_vec();
        let counts = BigramCounts::from_words(&words).unwrap();
        let pairs = Pairs::new(&words, counts.vocab()).unwrap();
        Data {
            words,
            counts,
            pairs,
        }
    })
}

fn vocab() -> &'static Vocab {
    data().counts.vocab()
}

fn full_batch() -> &'static Batch<Cpu> {
    static BATCH: OnceLock<Batch<Cpu>> = OnceLock::new();
    BATCH.get_or_init(|| Batch::new(&Cpu::default(), &data().pairs).unwrap())
}

fn net(seed: u64) -> Net {
    BigramNet::new(
        &Cpu::default(),
        NAMES_VOCAB,
        &mut StdRng::seed_from_u64(seed),
    )
    .unwrap()
}

#[test]
fn training_pairs_of_names_and_of_emma() {
    assert_eq!(data().pairs.len(), 228_146);
    let emma = Pairs::new(&["emma"], vocab()).unwrap();
    assert_eq!(emma.xs, [0, 5, 13, 13, 1]);
    assert_eq!(emma.ys, [5, 13, 13, 1, 0]);
    assert_eq!(data().words.len(), 32_033);
}

#[test]
fn shapes() {
    let dev = Cpu::default();
    let emma = Batch::new(&dev, &Pairs::new(&["emma"], vocab()).unwrap()).unwrap();
    assert_eq!(emma.xenc.shape(), &(5, 27));
    assert_eq!(emma.xs.shape(), &(5,));
    let n = net(1);
    assert_eq!(n.w.shape(), &(27, 27));
    let probs = n.probs_explicit(&emma);
    assert_eq!(probs.shape(), &(5, 27));
    for row in probs.as_vec().chunks(27) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // one-hot rows: a single 1.0 at the input's index
    let xenc = emma.xenc.as_vec();
    assert_eq!(xenc[27 + 5], 1.0); // row 1 is "e", index 5
    assert_eq!(xenc[0], 1.0);
    assert_eq!(xenc.iter().sum::<f32>(), 5.0);
}

#[test]
fn one_neuron_on_one_input_is_a_dot_product_and_a_weight() {
    // the video's (xenc @ W)[3, 13] on "emma": the matmul's entry, the dot
    // product of xenc[3] with W[:, 13], and W[m, 13] are the same number,
    // bit for bit (the one-hot row adds exact zeros), for every entry
    let dev = Cpu::default();
    let emma = Batch::new(&dev, &Pairs::new(&["emma"], vocab()).unwrap()).unwrap();
    let n = net(3);
    let w = n.weights();
    for i in 0..5 {
        for j in [0, 13, 26] {
            let [out, dot, picked] = n.firing(&emma, i, j);
            assert_eq!(out, dot, "input {i}, neuron {j}");
            assert_eq!(dot, picked);
            assert_eq!(picked, w[emma.xs.as_vec()[i] * 27 + j]);
        }
    }
    let (i, j) = charlm::stages::onehot::FIRING;
    assert_eq!(emma.xs.as_vec()[i], 13, "input {i} of emma is m");
    assert_eq!((i, j), (3, 13), "the video's entry");
}

#[test]
fn onehot_and_lookup_forwards_agree() {
    let n = net(7);
    let a = logits(n.w.clone(), full_batch(), Forward::OneHot).as_vec();
    let b = logits(n.w.clone(), full_batch(), Forward::Lookup).as_vec();
    let max = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(max <= 1e-6, "max difference {max}");
    let (la, _) = n.evaluate(full_batch(), Forward::OneHot, 0.01);
    let (lb, _) = n.evaluate(full_batch(), Forward::Lookup, 0.01);
    assert!((la - lb).abs() <= 1e-6, "{la} vs {lb}");
}

#[test]
fn log_softmax_loss_equals_the_explicit_lecture_forward() {
    let n = net(3);
    let probs = n.probs_explicit(full_batch()).as_vec();
    let ys = &data().pairs.ys;
    let nll: f64 = ys
        .iter()
        .enumerate()
        .map(|(i, &y)| -(probs[i * 27 + y] as f64).ln())
        .sum::<f64>()
        / ys.len() as f64;
    let (_, nll_ls) = n.evaluate(full_batch(), Forward::OneHot, 0.0);
    // dfdx's mean accumulates 228,146 terms in f32: agreement to 1e-3.
    assert!((nll - nll_ls as f64).abs() < 1e-3, "{nll} vs {nll_ls}");
}

/// The loss computed independently on the host, in f64: the mean over the
/// pairs of -ln softmax(W[x])[y], plus reg * mean(W^2).
fn host_loss(w: &[f64], pairs: &Pairs, reg: f64) -> f64 {
    let v = 27;
    let mut total = 0.0;
    for (&x, &y) in pairs.xs.iter().zip(&pairs.ys) {
        let row = &w[x * v..(x + 1) * v];
        let max = row.iter().cloned().fold(f64::MIN, f64::max);
        let lse = max + row.iter().map(|r| (r - max).exp()).sum::<f64>().ln();
        total += lse - row[y];
    }
    total / pairs.len() as f64 + reg * w.iter().map(|a| a * a).sum::<f64>() / w.len() as f64
}

// The gradient dfdx's tape computes equals a central finite difference of an
// independent f64 implementation of the loss, on a few entries of W.
#[test]
fn gradient_matches_finite_differences() {
    let dev = Cpu::default();
    let sub = Pairs {
        xs: data().pairs.xs[..2000].to_vec(),
        ys: data().pairs.ys[..2000].to_vec(),
        vocab: 27,
    };
    let batch = Batch::new(&dev, &sub).unwrap();
    let n = net(11);
    let weights: Vec<f64> = n.weights().iter().map(|&w| w as f64).collect();
    for forward in [Forward::OneHot, Forward::Lookup] {
        let w = n.w.trace(Gradients::leaky());
        let (l, _) = loss(w, &batch, forward, 0.01);
        assert!((l.as_vec()[0] as f64 - host_loss(&weights, &sub, 0.01)).abs() < 1e-5);
        let grad = l.backward().get(&n.w).as_vec();
        let eps = 1e-4;
        for &(i, j) in &[(0usize, 1usize), (0, 0), (1, 14), (5, 13), (13, 1), (26, 0)] {
            let k = i * 27 + j;
            let at = |delta: f64| {
                let mut w = weights.clone();
                w[k] += delta;
                host_loss(&w, &sub, 0.01)
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            let tape = grad[k] as f64;
            assert!(
                (numeric - tape).abs() <= 1e-6 + 1e-3 * numeric.abs(),
                "{forward:?} W[{i}][{j}]: numeric {numeric}, tape {tape}"
            );
        }
    }
}

// The lecture's code (PyTorch) reaches 2.4900 after 100 updates and 2.4830
// after 200; a different random init lands close by.
#[test]
fn loss_after_100_and_200_steps() {
    let mut n = net(2147483647);
    let h = train(
        &mut n,
        full_batch(),
        &OneHotConfig {
            steps: 200,
            forward: Forward::Lookup,
            ..OneHotConfig::default()
        },
    )
    .unwrap();
    assert!(
        h.losses[0] > 3.0,
        "random init starts high: {}",
        h.losses[0]
    );
    assert!(h.losses[100] < 2.50, "after 100 steps {}", h.losses[100]);
    assert!(h.final_loss < 2.485, "after 200 steps {}", h.final_loss);
    assert!(
        h.losses[199] < h.losses[100] && h.losses[100] < h.losses[10],
        "the loss falls"
    );
    assert!(h.final_nll < h.final_loss);
}

// Without regularisation, long training converges to the counting model.
#[test]
fn long_training_recovers_the_counting_model() {
    let mut n = net(5);
    let cfg = OneHotConfig {
        steps: 1500,
        reg: 0.0,
        forward: Forward::Lookup,
        ..OneHotConfig::default()
    };
    let h = train(&mut n, full_batch(), &cfg).unwrap();
    let counting = data()
        .counts
        .probabilities(0.0)
        .unwrap()
        .nll(&data().words)
        .unwrap()
        .nll;
    assert!(
        (h.final_nll as f64 - counting).abs() < 0.01,
        "net {} vs counts {counting}",
        h.final_nll
    );
    // softmax(W) approaches P on rows with many examples
    let p = data().counts.probabilities(0.0).unwrap();
    let q = n.probabilities();
    for i in 0..27 {
        if data().counts.row(i).iter().sum::<u32>() > 1000 {
            for j in 0..27 {
                assert!(
                    (q[i * 27 + j] as f64 - p.prob(i, j)).abs() < 0.01,
                    "row {i} col {j}"
                );
            }
        }
    }
}

#[test]
fn same_seed_gives_bit_identical_weights() {
    let cfg = OneHotConfig::tiny();
    let (mut a, mut b, mut c) = (net(9), net(9), net(10));
    train(&mut a, full_batch(), &cfg).unwrap();
    train(&mut b, full_batch(), &cfg).unwrap();
    train(&mut c, full_batch(), &cfg).unwrap();
    let bits = |n: &Net| n.weights().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    assert_ne!(bits(&a), bits(&c));
}

#[test]
fn divergence_and_bad_settings_are_errors() {
    let mut n = net(1);
    let err = train(
        &mut n,
        full_batch(),
        &OneHotConfig {
            lr: 1e30,
            steps: 10,
            ..OneHotConfig::default()
        },
    )
    .unwrap_err();
    match err {
        OneHotError::NonFiniteLoss { step, value } => {
            assert!((1..=10).contains(&step), "step {step}");
            assert!(!value.is_finite());
        }
        other => panic!("unexpected {other}"),
    }
    for lr in [f32::NAN, f32::INFINITY] {
        let e = train(
            &mut net(1),
            full_batch(),
            &OneHotConfig {
                lr,
                ..OneHotConfig::tiny()
            },
        )
        .unwrap_err();
        assert!(matches!(e, OneHotError::BadLearningRate(_)), "{e}");
    }
    let e = train(
        &mut net(1),
        full_batch(),
        &OneHotConfig {
            reg: -1.0,
            ..OneHotConfig::tiny()
        },
    )
    .unwrap_err();
    assert!(matches!(e, OneHotError::BadRegularisation(_)), "{e}");
    let dev = Cpu::default();
    let empty = Pairs {
        xs: vec![],
        ys: vec![],
        vocab: 27,
    };
    assert!(matches!(Batch::new(&dev, &empty), Err(OneHotError::Empty)));
    let outside = Pairs {
        xs: vec![0, 9],
        ys: vec![1, 2],
        vocab: 4,
    };
    let err = Batch::new(&dev, &outside).err().unwrap();
    assert!(
        matches!(err, OneHotError::Index { index: 9, size: 4 }),
        "{err}"
    );
    assert!(matches!(
        Net::from_weights(&dev, 27, vec![0.0; 5]),
        Err(OneHotError::WeightCount { .. })
    ));
}

#[test]
fn emma_walk_through() {
    let dev = Cpu::default();
    let batch = Batch::new(&dev, &Pairs::new(&["emma"], vocab()).unwrap()).unwrap();
    let n = net(2147483647);
    let ex = n.walk_through(&batch, vocab());
    let pairs: Vec<String> = ex
        .iter()
        .map(|e| format!("{}{}", e.input, e.label))
        .collect();
    assert_eq!(pairs, [".e", "em", "mm", "ma", "a."]);
    let mean = ex.iter().map(|e| e.nll).sum::<f32>() / 5.0;
    let (_, nll) = n.evaluate(&batch, Forward::OneHot, 0.0);
    assert!((mean - nll).abs() < 1e-5, "{mean} vs {nll}");
    for e in &ex {
        assert!(e.prob > 0.0 && e.prob < 1.0 && (e.log_likelihood + e.nll).abs() < 1e-6);
    }
}

// The video's walk-through: its W (torch's generator replayed) gives the
// probabilities and the loss the video prints for "emma".
#[test]
fn emma_walk_through_with_the_videos_w() {
    let dev = Cpu::default();
    let batch = Batch::new(&dev, &Pairs::new(&["emma"], vocab()).unwrap()).unwrap();
    let w = charlm::torch_rng::TorchGenerator::new(2147483647).randn(27 * 27);
    let n = Net::from_weights(&dev, 27, w).unwrap();
    let ex = n.walk_through(&batch, vocab());
    let probs: Vec<f32> = ex.iter().map(|e| e.prob).collect();
    // printed by the video: 0.012286, 0.018050, 0.026691, 0.073677, 0.014977
    for (p, video) in probs
        .iter()
        .zip([0.012286, 0.018050, 0.026691, 0.073677, 0.014977])
    {
        assert!((p - video).abs() < 1e-6, "{probs:?}");
    }
    let mean = ex.iter().map(|e| e.nll).sum::<f32>() / 5.0;
    assert!(
        (mean - 3.7693).abs() < 1e-4,
        "the video's loss is 3.7693: {mean}"
    );
}

#[test]
fn trained_net_samples_names() {
    let mut n = net(4);
    train(
        &mut n,
        full_batch(),
        &OneHotConfig {
            forward: Forward::Lookup,
            ..OneHotConfig::default()
        },
    )
    .unwrap();
    let s = n.sampler(vocab()).unwrap();
    let a = s.sample_names(&mut StdRng::seed_from_u64(1), 20);
    assert_eq!(a, s.sample_names(&mut StdRng::seed_from_u64(1), 20));
    assert!(a.iter().all(|w| w.chars().all(|c| c.is_ascii_lowercase())));
    assert!(matches!(
        n.sampler(&Vocab::for_names(&["ab"])),
        Err(OneHotError::VocabSize { .. })
    ));
}

// The book's chapter 2 figures and numbers are what the code produces now;
// regenerate with `cargo run --release -- figures`.
#[test]
fn book_figures_and_numbers_are_current() {
    let n = common::assert_book_files_current(&OneHot);
    assert_eq!(n, 4, "loss.svg, p-vs-softmax.svg, reg.svg, numbers.md");
}

// The CPU's fused kernel equals the composed dfdx ops, value and gradient,
// traced or not, on a block count that is not a whole number of blocks.
#[test]
fn fused_linear_nll_matches_composed_ops() {
    let dev = Cpu::default();
    let sub = Pairs {
        xs: data().pairs.xs[..5000].to_vec(),
        ys: data().pairs.ys[..5000].to_vec(),
        vocab: 27,
    };
    let batch = Batch::new(&dev, &sub).unwrap();
    let n = net(13);
    let run = |fused: bool| {
        let w = n.w.trace(Gradients::leaky());
        let l = if fused {
            <Cpu as Kernels>::linear_nll(&batch.xenc, w, &batch.ys)
        } else {
            composed::linear_nll(&batch.xenc, w, &batch.ys)
        };
        let value = l.as_vec()[0];
        (value, l.backward().get(&n.w).as_vec())
    };
    let ((a, ga), (b, gb)) = (run(true), run(false));
    // dfdx's mean accumulates in f32, the fused kernel in f64: 1e-4.
    assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    let max = max_diff(&ga, &gb);
    assert!(max < 1e-6, "gradients differ by {max}");
    let untraced = <Cpu as Kernels>::linear_nll(&batch.xenc, n.w.clone(), &batch.ys).array();
    assert_eq!(untraced, a, "the untraced forward gives the same loss");
}

// The lecture's loss as the chapter lists it (exp, divide by the row sums,
// pick, log, mean) is the number the fused loss computes, with the same
// gradient: what training uses is what the chapter shows.
#[test]
fn the_listed_lecture_loss_equals_the_loss_training_uses() {
    let dev = Cpu::default();
    let sub = Pairs {
        xs: data().pairs.xs[..20_000].to_vec(),
        ys: data().pairs.ys[..20_000].to_vec(),
        vocab: 27,
    };
    let batch = Batch::new(&dev, &sub).unwrap();
    let n = net(17);
    let listed = lecture_loss(n.w.trace(Gradients::leaky()), &batch, 0.01);
    let (trained, _) = loss(n.w.trace(Gradients::leaky()), &batch, Forward::OneHot, 0.01);
    let (a, b) = (listed.as_vec()[0], trained.as_vec()[0]);
    assert!((a - b).abs() < 1e-4, "listed {a} vs trained {b}");
    let (ga, gb) = (
        listed.backward().get(&n.w).as_vec(),
        trained.backward().get(&n.w).as_vec(),
    );
    assert!(max_diff(&ga, &gb) < 1e-5, "{}", max_diff(&ga, &gb));
}

// Any names file: its own characters are the vocabulary, and the net is that size.
#[test]
fn names_in_another_alphabet_train_a_net_of_their_size() {
    let words = [
        "zoë", "chloé", "ingrid", "åsa", "jürgen", "ana", "éva", "ørjan",
    ];
    let vocab = Vocab::for_names(&words);
    assert!(vocab.len() > 20, "{}", vocab.len());
    let dev = Cpu::default();
    let pairs = Pairs::new(&words, &vocab).unwrap();
    let batch = Batch::new(&dev, &pairs).unwrap();
    let mut n = BigramNet::new(&dev, vocab.len(), &mut StdRng::seed_from_u64(3)).unwrap();
    let h = train(
        &mut n,
        &batch,
        &OneHotConfig {
            steps: 50,
            ..OneHotConfig::default()
        },
    )
    .unwrap();
    assert!(
        h.final_loss < h.losses[0] - 0.5,
        "{} -> {}",
        h.losses[0],
        h.final_loss
    );
    let names = n
        .sampler(&vocab)
        .unwrap()
        .sample_names(&mut StdRng::seed_from_u64(1), 5);
    assert!(names
        .iter()
        .flat_map(|w| w.chars())
        .all(|c| vocab.index(c).is_some()));
}
