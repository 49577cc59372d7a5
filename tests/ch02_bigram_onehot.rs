//! Chapter 2: the bigram model as a one-hot neural net, trained with dfdx.
//! Needs names.txt (CHARLM_DATA_DIR or ./data).

mod common;

use std::sync::OnceLock;

use charlm::bigram_counts::BigramCounts;
use charlm::bigram_onehot::{
    loss, train, Batch, BigramNet, Forward, OneHotConfig, OneHotError, Pairs, NAMES_VOCAB,
};
use charlm::vocab::Vocab;
use dfdx::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

type Net = BigramNet<NAMES_VOCAB, Cpu>;

struct Data {
    words: Vec<String>,
    counts: BigramCounts,
    pairs: Pairs,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let words = charlm::data::load_names(None)
            .unwrap_or_else(|e| panic!("names.txt is needed for these tests: {e}"));
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

fn full_batch() -> &'static Batch<NAMES_VOCAB, Cpu> {
    static BATCH: OnceLock<Batch<NAMES_VOCAB, Cpu>> = OnceLock::new();
    BATCH.get_or_init(|| Batch::new(&Cpu::default(), &data().pairs).unwrap())
}

fn net(seed: u64) -> Net {
    BigramNet::new(&Cpu::default(), &mut StdRng::seed_from_u64(seed)).unwrap()
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
    let emma =
        Batch::<NAMES_VOCAB, Cpu>::new(&dev, &Pairs::new(&["emma"], vocab()).unwrap()).unwrap();
    assert_eq!(emma.xenc.shape(), &(5, Const::<27>));
    assert_eq!(emma.xs.shape(), &(5,));
    let n = net(1);
    assert_eq!(n.w.shape(), &(Const::<27>, Const::<27>));
    let probs = n.probs_explicit(&emma);
    assert_eq!(probs.shape(), &(5, Const::<27>));
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
fn onehot_and_lookup_forwards_agree() {
    let n = net(7);
    let a = charlm::bigram_onehot::logits(n.w.clone(), full_batch(), Forward::OneHot).as_vec();
    let b = charlm::bigram_onehot::logits(n.w.clone(), full_batch(), Forward::Lookup).as_vec();
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
    };
    let batch = Batch::<NAMES_VOCAB, Cpu>::new(&dev, &sub).unwrap();
    let n = net(11);
    let weights: Vec<f64> = n.weights().iter().map(|&w| w as f64).collect();
    for forward in [Forward::OneHot, Forward::Lookup] {
        let w = n.w.trace(dfdx::nn::ZeroGrads::alloc_grads(&n.w));
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

// The lecture (PyTorch) reaches 2.4900 after 100 updates and 2.4830 after
// 200; a different random init lands close by.
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
    assert!(matches!(
        Batch::<NAMES_VOCAB, Cpu>::new(
            &dev,
            &Pairs {
                xs: vec![],
                ys: vec![]
            }
        ),
        Err(OneHotError::Empty)
    ));
    assert!(matches!(
        Batch::<4, Cpu>::new(
            &dev,
            &Pairs {
                xs: vec![0, 9],
                ys: vec![1, 2]
            }
        ),
        Err(OneHotError::VocabSize { .. })
    ));
    assert!(matches!(
        Net::from_weights(&dev, vec![0.0; 5]),
        Err(OneHotError::WeightCount { .. })
    ));
}

#[test]
fn emma_walk_through() {
    let dev = Cpu::default();
    let batch =
        Batch::<NAMES_VOCAB, Cpu>::new(&dev, &Pairs::new(&["emma"], vocab()).unwrap()).unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    charlm::tour::write_onehot_book_files(&data().words, dir.path()).unwrap();
    let n = common::assert_book_files_current(dir.path(), charlm::tour::ONEHOT_DIR);
    assert_eq!(n, 4, "loss.svg, p-vs-softmax.svg, reg.svg, numbers.md");
}

// The CPU's fused kernel equals the composed dfdx ops, value and gradient,
// traced or not, on a block count that is not a whole number of blocks.
#[test]
fn fused_linear_nll_matches_composed_ops() {
    use charlm::fused::{linear_nll_composed, Fused};
    let dev = Cpu::default();
    let sub = Pairs {
        xs: data().pairs.xs[..5000].to_vec(),
        ys: data().pairs.ys[..5000].to_vec(),
    };
    let batch = Batch::<NAMES_VOCAB, Cpu>::new(&dev, &sub).unwrap();
    let n = net(13);
    let run = |fused: bool| {
        let w = n.w.trace(dfdx::nn::ZeroGrads::alloc_grads(&n.w));
        let l = if fused {
            Cpu::linear_nll(&batch.xenc, w, &batch.ys)
        } else {
            linear_nll_composed(&batch.xenc, w, &batch.ys)
        };
        let value = l.as_vec()[0];
        (value, l.backward().get(&n.w).as_vec())
    };
    let ((a, ga), (b, gb)) = (run(true), run(false));
    // dfdx's mean accumulates in f32, the fused kernel in f64: 1e-4.
    assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    let max = ga
        .iter()
        .zip(&gb)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(max < 1e-6, "gradients differ by {max}");
    let untraced = Cpu::linear_nll(&batch.xenc, n.w.clone(), &batch.ys).array();
    assert_eq!(untraced, a, "the untraced forward gives the same loss");
}
