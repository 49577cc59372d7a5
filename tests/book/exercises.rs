//! The lectures' exercises, solved in the crate: makemore part 1 at the end
//! of chapter 2 (a trigram model by counting and as a neural net, the
//! train/dev/test split) and "Let's build GPT" at the end of chapter 8 (heads
//! as a batch dimension, a GPT that adds).

use charlm::models::bigram_counts::BigramCounts;
use charlm::models::trigram::{split_words, TrigramCounts, TrigramExamples, TrigramNet};
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use crate::common::words;

#[test]
fn the_trigram_counting_model_beats_the_bigram() {
    let counts = BigramCounts::from_words(words()).unwrap();
    let vocab = counts.vocab();
    let bigram = counts.probabilities(1.0).unwrap().nll(words()).unwrap().nll;
    let trigrams = TrigramCounts::from_words(vocab, words()).unwrap();
    let nll = trigrams.probabilities(1.0).unwrap().nll(words()).unwrap();
    assert!(nll < bigram - 0.2, "trigram {nll} vs bigram {bigram}");
    // unsmoothed, a trigram never seen in training has probability 0
    let raw = trigrams.probabilities(0.0).unwrap();
    assert!(raw.nll(&["zzzq"]).unwrap().is_infinite());
    assert!(trigrams.probabilities(-1.0).is_err());
}

#[test]
fn the_split_is_80_10_10_disjoint_and_seeded() {
    let [train, dev, test] = split_words(words(), 42);
    let n = words().len();
    assert_eq!(train.len() + dev.len() + test.len(), n);
    assert_eq!(train.len(), n * 8 / 10);
    let mut all: Vec<&String> = train.iter().chain(&dev).chain(&test).collect();
    all.sort();
    let mut orig: Vec<&String> = words().iter().collect();
    orig.sort();
    assert_eq!(all, orig, "a permutation of the words");
    assert_eq!(split_words(words(), 42)[1], dev);
    assert_ne!(split_words(words(), 43)[1], dev);
}

// The net's loss, computed over the (a, b) contexts weighted by frequency,
// equals the mean over every example; training lowers it to between the
// bigram's and the counted trigram's (its logits are a sum of two lookups,
// so it cannot fit every pair of characters on its own).
#[test]
fn the_trigram_net_learns_and_its_lookup_loss_is_the_mean_over_examples() {
    let dev = Cpu::default();
    let counts = BigramCounts::from_words(words()).unwrap();
    let vocab = counts.vocab();
    let v = vocab.len();
    let few = &words()[..50];
    let mut net = TrigramNet::new(&dev, v, &mut ChaCha12Rng::seed_from_u64(1)).unwrap();
    let ex = TrigramExamples::new(&dev, &TrigramCounts::from_words(vocab, few).unwrap()).unwrap();
    let w = net.w.as_vec();
    let mut direct = 0f64;
    let mut n = 0;
    for word in few {
        let ids: Vec<usize> = std::iter::once(0)
            .chain(std::iter::once(0))
            .chain(word.chars().map(|c| vocab.index(c).unwrap()))
            .chain(std::iter::once(0))
            .collect();
        for t in ids.windows(3) {
            let logits: Vec<f64> = (0..v)
                .map(|j| (w[t[0] * v + j] + w[(v + t[1]) * v + j]) as f64)
                .collect();
            let max = logits.iter().cloned().fold(f64::MIN, f64::max);
            let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
            direct += lse - logits[t[2]];
            n += 1;
        }
    }
    let direct = direct / n as f64;
    assert!(
        (net.nll(&ex) as f64 - direct).abs() < 1e-4,
        "{} vs {direct}",
        net.nll(&ex)
    );

    let counted = TrigramCounts::from_words(vocab, words()).unwrap();
    let all = TrigramExamples::new(&dev, &counted).unwrap();
    let before = net.nll(&all);
    for _ in 0..100 {
        net.step(&all, 50.0, 0.01).unwrap();
    }
    let after = net.nll(&all);
    let bigram = counts.probabilities(1.0).unwrap().nll(words()).unwrap().nll as f32;
    let counted = counted.probabilities(1.0).unwrap().nll(words()).unwrap() as f32;
    assert!(
        after < before - 1.0 && after < bigram && after > counted,
        "{before} -> {after}"
    );
}

// EX1: the lecture's heads one by one, the heads as a batch dimension in
// dfdx's operations, and the fused kernels compute the same output and the
// same gradients; a pass from other weights does not.
#[test]
fn heads_one_by_one_batched_and_fused_agree() {
    use charlm::stages::gpt_exercises::{ex1_diff, ex1_pass, HeadsWay};
    let one = ex1_pass(HeadsWay::OneByOne, 1).unwrap();
    assert_eq!(one[0].len(), 12 * 64 * 128);
    for way in [HeadsWay::Batched, HeadsWay::Fused] {
        let (out, grad) = ex1_diff(&one, &ex1_pass(way, 1).unwrap());
        assert!(out < 1e-5 && grad < 1e-4, "{way:?}: {out} {grad}");
    }
    let (out, grad) = ex1_diff(&one, &ex1_pass(HeadsWay::Batched, 2).unwrap());
    assert!(out > 1e-2 && grad > 1e-2, "other weights: {out} {grad}");
}

// EX2's generator: the lines, the reversed answers, a split that holds out
// what it says and never trains on it, the same for the same seed.
#[test]
fn the_addition_task_writes_reversed_sums_and_holds_some_out() {
    use charlm::data::addition::{Addition, Problem};
    let task = Addition::new(2).unwrap();
    let p = Problem { a: 7, b: 35 };
    assert_eq!(task.line(p), "07+35=240\n");
    assert_eq!(task.line(Problem { a: 99, b: 99 }), "99+99=891\n");
    assert_eq!(task.read_answer("240"), Some(42));
    assert_eq!(task.read_answer("24"), None);
    assert_eq!(task.read_answer("2x0"), None);
    let split = |seed| {
        task.split(1000, &mut ChaCha12Rng::seed_from_u64(seed))
            .unwrap()
    };
    let (train, held) = split(5);
    assert_eq!((train.len(), held.len()), (9000, 1000));
    let text = task.text(&train);
    assert_eq!(text.lines().count(), 9000);
    for p in &held {
        assert!(!train.contains(p));
        assert!(!text.contains(&format!("\n{}", task.line(*p))));
    }
    assert_eq!(split(5), (train.clone(), held.clone()));
    assert_ne!(split(6).1, held);
    assert!(Addition::new(0).is_err() && Addition::new(5).is_err());
    assert!(task.split(0, &mut ChaCha12Rng::seed_from_u64(1)).is_err());
    assert!(task
        .split(10_000, &mut ChaCha12Rng::seed_from_u64(1))
        .is_err());
}

// Chapter 8's exercises are quoted from one record: the committed numbers
// are what it renders to, EX1's differences are today's, EX2's run starts
// as the record says (to the bit), and it met its target.
#[test]
fn the_exercises_book_files_are_drawn_from_a_current_record() {
    use charlm::stages::gpt_exercises::*;
    use charlm::train::{StopAt, TrainConfig};
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("chapters/figures/gpt_exercises");
    let record = read_record(&dir).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    render(&record, fresh.path()).unwrap();
    assert_eq!(crate::common::assert_files_current(ID, fresh.path()), 2);
    let one = ex1_pass(HeadsWay::OneByOne, 1).unwrap();
    let ex1 = &record.ex1;
    assert_eq!(
        ex1_diff(&one, &ex1_pass(HeadsWay::Batched, 1).unwrap()),
        (ex1.batched_out, ex1.batched_grad)
    );
    assert_eq!(
        ex1_diff(&one, &ex1_pass(HeadsWay::Fused, 1).unwrap()),
        (ex1.fused_out, ex1.fused_grad)
    );
    // what the chapter says of the timings: batching alone does not pay (the
    // batched pass takes longer than the loop), the fused kernels beat both
    let ratio = ex1.ms[1] / ex1.ms[0];
    assert!(ratio > 1.0, "batched / one by one = {ratio}");
    assert!(ex1.ms[2] < ex1.ms[0].min(ex1.ms[1]));
    let ex2 = &record.ex2;
    assert_eq!(ex2.config, ex2_config());
    let every = ex2.config.eval_interval;
    let start = TrainConfig {
        max_iters: every,
        ..ex2_config()
    };
    let replay = run_ex2(start, &mut StopAt(usize::MAX)).unwrap();
    assert_eq!(
        replay.evals[..],
        ex2.evals[..2],
        "the record is stale: run `cargo run --release -- figures --stage {ID}`"
    );
    assert_eq!(ex2.evals.last().unwrap().step, ex2.config.max_iters);
    assert!(ex2.correct as f64 >= EX2_TARGET * ex2.held_out as f64);
    // the chapter's plateau: the loss stays within 0.1 of its first estimate
    // after step 0 for at least three more estimates, then falls below
    let plateau = ex2.evals[1].val;
    let drop = ex2
        .evals
        .iter()
        .position(|e| e.val < plateau - 0.1)
        .unwrap();
    assert!(drop >= 5, "the drop comes at estimate {drop}");
    assert!(
        replay.correct < ex2.correct,
        "training on ends above where it starts"
    );
}
