//! The lectures' exercises, solved in the crate: makemore part 1 at the end
//! of chapter 2 (a trigram model by counting and as a neural net, the
//! train/dev/test split) and "Let's build GPT" at the end of chapter 8 (heads
//! as a batch dimension, a GPT that adds, pretraining then finetuning, GELU).

use charlm::models::bigram_counts::BigramCounts;
use charlm::models::trigram::{split_words, PairNet, TrigramCounts, TrigramExamples, TrigramNet};
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
    let fresh = crate::tempfile::tempdir().unwrap();
    render(&record, fresh.path()).unwrap();
    assert_eq!(crate::common::assert_files_current(ID, fresh.path()), 5);
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
    let drop = leaves_plateau(&ex2.evals, |e| e.val).unwrap();
    assert!(
        drop.step >= 5 * ex2.config.eval_interval,
        "the drop comes at step {}",
        drop.step
    );
    assert!(
        replay.correct < ex2.correct,
        "training on ends above where it starts"
    );
    // the run with the loss on the answers alone starts as the record says,
    // from the same weights (the same first estimate) ...
    let (masked, again) = (&ex2.answers_only, &replay.answers_only);
    assert_eq!(again.evals[..], masked.evals[..2]);
    assert_eq!(again.checks[..], masked.checks[..2]);
    assert_eq!(replay.checks[..], ex2.checks[..2]);
    assert_eq!(masked.evals[0], ex2.evals[0]);
    assert_eq!(ex2.checks.len(), ex2.evals.len());
    // ... and what the chapter says of it: it leaves the plateau later and
    // ends with fewer sums right, and its loss on every character (the
    // prompts it never trains on) ends above where it started
    let leaves = |c: &[Ex2Check]| leaves_plateau(c, |c| c.answer_val).map(|c| c.step);
    let every = leaves(&ex2.checks).unwrap();
    assert!(leaves(&masked.checks).is_none_or(|m| m > every));
    assert!(masked.correct < ex2.correct);
    assert!(masked.evals.last().unwrap().val > masked.evals[0].val);
}

#[test]
fn ex3_draws_disjoint_names_in_the_pretraining_vocabulary() {
    use charlm::data::vocab::Vocab;
    use charlm::stages::gpt_exercises::*;
    let data = crate::common::data();
    let names = data.names().unwrap();
    let vocab = Vocab::of_text(data.text().unwrap()).unwrap();
    let (corpus, _) = ex3_start(names, &vocab, EX3_TRAIN_NAMES).unwrap();
    assert_eq!(corpus.vocab, vocab);
    let lines = |ids: &[usize]| -> Vec<String> {
        corpus
            .vocab
            .decode(ids)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let (train, val) = (lines(&corpus.train), lines(&corpus.val));
    assert_eq!((train.len(), val.len()), (EX3_TRAIN_NAMES, EX3_VAL_NAMES));
    let known: std::collections::BTreeSet<&String> = names.iter().collect();
    assert!(train.iter().chain(&val).all(|n| known.contains(n)));
    // no name in both (names.txt lists some twice: EX3 draws distinct ones)
    let seen: std::collections::BTreeSet<&String> = train.iter().collect();
    assert!(val.iter().all(|n| !seen.contains(n)));
    // seeded: the same draw again; not the file's first names
    assert_eq!(
        ex3_start(names, &vocab, EX3_TRAIN_NAMES).unwrap().0.train,
        corpus.train
    );
    assert_ne!(train[..10], names[..10]);
    // every size: the same names to measure on, and nested names to learn from
    for n in EX3_SIZES {
        let (c, _) = ex3_start(names, &vocab, n).unwrap();
        assert_eq!(c.val, corpus.val);
        let (small, large) = match n < EX3_TRAIN_NAMES {
            true => (&c.train, &corpus.train),
            false => (&corpus.train, &c.train),
        };
        assert!(large.starts_with(small), "{n} names");
        assert_eq!(lines(&c.train).len(), n);
    }
    // too few names, too many asked for, or a vocabulary without their
    // letters: an error
    let few = names[..EX3_TRAIN_NAMES].to_vec();
    let e = ex3_start(&few, &vocab, EX3_TRAIN_NAMES)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("names.txt"), "{e}");
    let most = EX3_SIZES.into_iter().max().unwrap();
    assert!(ex3_start(names, &vocab, most + 1).is_err());
    let digits = Vocab::of_text("0123456789\n").unwrap();
    assert!(ex3_start(names, &digits, EX3_TRAIN_NAMES).is_err());
}

#[test]
fn finetuning_starts_from_the_weights_it_is_given() {
    use charlm::models::gpt::GptSmall;
    use charlm::models::LanguageModel;
    use charlm::train::run::estimate_loss;
    use charlm::train::{StopAt, TrainConfig};
    let data = crate::common::data();
    let vocab = charlm::data::vocab::Vocab::of_text(data.text().unwrap()).unwrap();
    let (corpus, fresh) = charlm::stages::gpt_exercises::ex3_start(
        data.names().unwrap(),
        &vocab,
        charlm::stages::gpt_exercises::EX3_TRAIN_NAMES,
    )
    .unwrap();
    let dev = Cpu::default();
    let other =
        GptSmall::<Cpu>::init(&dev, vocab.len(), &mut ChaCha12Rng::seed_from_u64(9)).unwrap();
    let cfg = TrainConfig {
        max_iters: 20,
        eval_interval: 10,
        eval_iters: 4,
        ..charlm::presets::SMALL.config
    };
    let run = |m: &GptSmall<Cpu>| {
        charlm::stages::gpt_exercises::finetune(
            m.clone(),
            &corpus,
            &cfg,
            5,
            &mut StopAt(usize::MAX),
        )
        .unwrap()
    };
    let (last, best, state) = run(&fresh);
    // step 0's estimate is the given model's, with the seed's draws
    let mut rng = ChaCha12Rng::seed_from_u64(5);
    let (train, val) = estimate_loss(&dev, &fresh, &corpus, &cfg, &mut rng).unwrap();
    let first = state.history.evals[0];
    assert_eq!((first.train, first.val), (train, val));
    assert_ne!(
        run(&other).2.history.evals[0].val,
        val,
        "other weights, another start"
    );
    // it trained: the weights moved, the loss fell; the best is one of the estimates'
    assert_ne!(last.lm_head.weight.as_vec(), fresh.lm_head.weight.as_vec());
    assert!(state.history.evals.last().unwrap().val < val);
    assert_eq!(state.history.evals.len(), 3);
    // the best model is the one of the lowest estimate: the last, if that is it
    let at_end = state.best_eval().unwrap().step == cfg.max_iters;
    let same = best.lm_head.weight.as_vec() == last.lm_head.weight.as_vec();
    assert_eq!(same, at_end);
    // the same seed, the same run
    assert_eq!(run(&fresh).2.history.evals, state.history.evals);
}

// EX3 and EX4 are quoted from the same record: their runs start as it says
// (to the bit), and what the chapter says of them holds.
#[test]
fn ex3_and_ex4_are_drawn_from_a_current_record() {
    use charlm::data::vocab::Vocab;
    use charlm::models::gpt::SmallGelu;
    use charlm::ops::ActivationKind;
    use charlm::stages::gpt_exercises::*;
    use charlm::train::{StopAt, TrainConfig};
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("chapters/figures/gpt_exercises");
    let record = read_record(&dir).unwrap();
    let data = crate::common::data();
    let stale = format!("the record is stale: run `cargo run --release -- figures --stage {ID}`");
    // EX4: ReLU then GELU for every seed; GELU's first run replayed to its first estimate
    assert_eq!(record.ex4_config, ex4_config());
    let kinds: Vec<(ActivationKind, u64)> =
        record.ex4.iter().map(|r| (r.activation, r.seed)).collect();
    let want: Vec<(ActivationKind, u64)> = EX4_SEEDS
        .iter()
        .flat_map(|&s| [(ActivationKind::Relu, s), (ActivationKind::Gelu, s)])
        .collect();
    assert_eq!(kinds, want);
    let every = ex4_config().eval_interval;
    let start = TrainConfig {
        max_iters: every,
        ..ex4_config()
    };
    let (gelu, ..) = train_preset::<SmallGelu>(
        data.text().unwrap(),
        start,
        EX4_SEEDS[0],
        &mut StopAt(usize::MAX),
    )
    .unwrap();
    assert_eq!(gelu.evals[..], record.ex4[1].evals[..2], "{stale}");
    // the first ReLU run is chapter 8's small run: the model EX3 pretrains with
    let small = std::fs::read_to_string(dir.join("../gpt/numbers.md")).unwrap();
    assert!(small.contains(&format!(
        "ANCHOR: small_whole_val\n{:.4}\n",
        record.ex4[0].whole_val
    )));
    // EX3: every size; the chapter's size's scratch run replayed to its
    // second estimate
    let x = &record.ex3;
    assert_eq!(x.configs, ex3_configs());
    let sizes: Vec<usize> = x.sizes.iter().map(|s| s.names).collect();
    assert_eq!(sizes, EX3_SIZES);
    let vocab = Vocab::of_text(data.text().unwrap()).unwrap();
    assert_eq!(x.vocab, vocab.len());
    let main = x.main().unwrap();
    let (corpus, fresh) = ex3_start(data.names().unwrap(), &vocab, EX3_TRAIN_NAMES).unwrap();
    assert_eq!(main.train_chars, corpus.train.len());
    let short = TrainConfig {
        max_iters: 2 * x.configs.0.eval_interval,
        ..x.configs.0
    };
    let replay = ex3_run(fresh, &corpus, &short, &mut StopAt(usize::MAX)).unwrap();
    assert_eq!(replay.evals[..], main.scratch.evals[..3], "{stale}");
    // what the chapter says: pretraining alone is worse than a uniform guess;
    // finetuned, it beats the model from scratch, sooner; both overfit after
    assert!(f64::from(x.pretrained_whole_val) > (x.vocab as f64).ln());
    // pretraining wins at every size, sooner, by a small margin; the fewest
    // names finetuned are still worse than more names from scratch
    let gains: Vec<f32> = x
        .sizes
        .iter()
        .map(|s| s.scratch.best_whole_val - s.finetuned.best_whole_val)
        .collect();
    for s in &x.sizes {
        assert!(
            s.finetuned.best_whole_val < s.scratch.best_whole_val,
            "{} names",
            s.names
        );
        assert!(
            s.finetuned.best_step < s.scratch.best_step,
            "{} names",
            s.names
        );
    }
    assert!(
        gains.iter().all(|&g| g > 0.0 && g < 0.1),
        "small gains: {gains:?}"
    );
    assert!(x.sizes[0].finetuned.best_whole_val > x.sizes[1].scratch.best_whole_val);
    // EX4: GELU is worse with every seed, by more than either spread, at every estimate
    let of = |a: ActivationKind| -> Vec<&Ex4Run> {
        record.ex4.iter().filter(|r| r.activation == a).collect()
    };
    let (relu, gelu) = (of(ActivationKind::Relu), of(ActivationKind::Gelu));
    let spread = |v: &[&Ex4Run]| {
        let w: Vec<f32> = v.iter().map(|r| r.whole_val).collect();
        w.iter().cloned().fold(f32::MIN, f32::max) - w.iter().cloned().fold(f32::MAX, f32::min)
    };
    let gap = relu
        .iter()
        .zip(&gelu)
        .map(|(r, g)| g.whole_val - r.whole_val)
        .fold(f32::MAX, f32::min);
    assert!(gap > spread(&relu).max(spread(&gelu)), "gap {gap}");
    for (r, g) in relu.iter().zip(&gelu) {
        for (a, b) in r.evals.iter().zip(&g.evals).skip(1) {
            assert!(b.val > a.val, "seed {} step {}", r.seed, a.step);
        }
    }
    for run in [&main.scratch, &main.finetuned] {
        assert!(run.last_whole_val > run.best_whole_val + 0.3);
        assert!(run.evals.last().unwrap().train < run.evals.last().unwrap().val - 1.0);
        assert!(!run.samples.is_empty());
    }
    // EX4's speed: GELU is slower
    let sps = |a: ActivationKind| {
        record
            .ex4
            .iter()
            .filter(|r| r.activation == a)
            .map(|r| r.steps_per_second)
            .sum::<f64>()
    };
    assert!(sps(ActivationKind::Gelu) < sps(ActivationKind::Relu));
}

// E01's second form: a row of W per pair of characters. Its loss is the
// mean over every example of -ln softmax(W[a·V + b])[c]; trained at the
// chapter's lr and reg for PAIR_STEPS, it comes within 0.01 of the counted
// trigram model (k = 1), where the additive net stays well above.
#[test]
fn the_pair_indexed_trigram_net_reaches_the_counting_model() {
    use charlm::models::bigram_onehot::OneHotConfig;
    use charlm::stages::onehot::PAIR_STEPS;
    let dev = Cpu::default();
    let counts = BigramCounts::from_words(words()).unwrap();
    let vocab = counts.vocab();
    let v = vocab.len();
    let trigrams = TrigramCounts::from_words(vocab, words()).unwrap();
    let ex = TrigramExamples::new(&dev, &trigrams).unwrap();
    let mut net = PairNet::new(&dev, v, &mut ChaCha12Rng::seed_from_u64(1)).unwrap();
    // the loss by the definition, over the first 50 names
    let w = net.w.as_vec();
    let (mut direct, mut n) = (0f64, 0);
    for word in &words()[..50] {
        let ids: Vec<usize> = [0, 0]
            .into_iter()
            .chain(word.chars().map(|c| vocab.index(c).unwrap()))
            .chain(std::iter::once(0))
            .collect();
        for t in ids.windows(3) {
            let row = &w[(t[0] * v + t[1]) * v..][..v];
            let max = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
            let lse = max
                + row
                    .iter()
                    .map(|&l| (l as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            direct += lse - row[t[2]] as f64;
            n += 1;
        }
    }
    let few = TrigramExamples::new(
        &dev,
        &TrigramCounts::from_words(vocab, &words()[..50]).unwrap(),
    )
    .unwrap();
    assert!((net.nll(&few) as f64 - direct / n as f64).abs() < 1e-4);
    let OneHotConfig { lr, reg, .. } = OneHotConfig::default();
    for _ in 0..PAIR_STEPS {
        net.step(&ex, lr, reg).unwrap();
    }
    let counted = trigrams.probabilities(1.0).unwrap().nll(words()).unwrap();
    let nll = net.nll(&ex) as f64;
    assert!(
        (nll - counted).abs() < 0.01,
        "pair net {nll:.4} vs counting {counted:.4}"
    );
}

// EX2's second way: the mask keeps exactly the answers' characters whose
// whole prompt the window holds, and the masked loss is the cross-entropy
// of the kept targets alone (all kept, it is chapter 3's cross-entropy).
#[test]
fn ex2s_mask_keeps_the_answers_and_its_loss_is_their_cross_entropy() {
    use charlm::data::addition::{Addition, Problem};
    use charlm::data::vocab::Vocab;
    use charlm::models::lm::cross_entropy;
    use charlm::stages::gpt_exercises::{answer_loss, answer_mask};
    let task = Addition::new(2).unwrap();
    let text = task.text(&[Problem { a: 7, b: 35 }, Problem { a: 99, b: 1 }]);
    assert_eq!(text, "07+35=240\n99+01=001\n");
    let vocab = Vocab::of_text(&text).unwrap();
    let ids = vocab.encode(&text).unwrap();
    let eq = vocab.encode("=").unwrap()[0];
    // two windows of 8: "07+35=24" and "0\n99+01="; targets "7+35=240", "\n99+01=0"
    let t = 8;
    let x: Vec<usize> = [&ids[0..8], &ids[8..16]].concat();
    let y: Vec<usize> = [&ids[1..9], &ids[9..17]].concat();
    let mask = answer_mask(&x, t, eq, 2);
    // the first window's '=' is at position 5: targets 5, 6, 7 are "240";
    // the second window's '=' is at its last position (7), its whole prompt
    // before it: target 7 is the answer's first character, cut at the end
    let kept: Vec<usize> = (0..16).filter(|&i| mask[i] == 1.0).collect();
    assert_eq!(kept, vec![5, 6, 7, 15]);
    let picked: String = kept.iter().map(|&i| vocab.decode(&[y[i]])).collect();
    assert_eq!(picked, "2400");
    // a window that cuts the prompt keeps nothing of that answer
    assert!(answer_mask(&ids[2..10], 8, eq, 2).iter().all(|&m| m == 0.0));
    // the loss: random logits, checked against the mean by hand
    let dev = Cpu::default();
    let v = vocab.len();
    let mut rng = ChaCha12Rng::seed_from_u64(7);
    let logits: Vec<f32> = (0..16 * v)
        .map(|_| rand::Rng::gen_range(&mut rng, -2.0..2.0))
        .collect();
    let lt = dev.tensor_from_vec(logits.clone(), (2, t, v));
    let yt = dev.tensor_from_vec(y.clone(), (16,));
    let got = answer_loss(&dev, lt.clone(), &yt, &mask).as_vec()[0];
    let nll = |i: usize| {
        let row = &logits[i * v..(i + 1) * v];
        let max = row.iter().cloned().fold(f32::MIN, f32::max);
        let lse = max + row.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
        lse - row[y[i]]
    };
    let want = kept.iter().map(|&i| nll(i)).sum::<f32>() / kept.len() as f32;
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    let all = answer_loss(&dev, lt.clone(), &yt, &[1.0; 16]).as_vec()[0];
    let ce = cross_entropy(lt, &yt).as_vec()[0];
    assert!((all - ce).abs() < 1e-5, "{all} vs {ce}");
}
