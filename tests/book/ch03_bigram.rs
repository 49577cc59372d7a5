//! Chapter 3: the bigram language model on tiny Shakespeare.

use charlm::data::text::{batch_at, block_examples, get_batch, Corpus, Split, TextError};
use charlm::models::bigram::BigramLanguageModel;
use charlm::models::lm::batch_tensors;
use charlm::models::{LanguageModel, ModelError};
use charlm::stages::bigram::{Bigram, SHAKESPEARE_VOCAB};
use charlm::train::run::lecture_loop;
use charlm::train::{estimate_loss, train, TrainConfig, TrainError};
use dfdx::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{self, corpus};

type Model = BigramLanguageModel<f32, Cpu>;

fn model(seed: u64, std: f32) -> Model {
    let rng = &mut StdRng::seed_from_u64(seed);
    Model::new(&Cpu::default(), SHAKESPEARE_VOCAB, std, rng).unwrap()
}

#[test]
fn vocabulary_and_split_sizes() {
    let c = corpus();
    assert_eq!(c.vocab.len(), 65);
    assert_eq!(
        c.vocab.chars().iter().collect::<String>(),
        "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    );
    assert_eq!(c.train.len(), 1_003_854);
    assert_eq!(c.val.len(), 111_540);
    // the lecture's first encoded characters, "First Citizen:"
    assert_eq!(&c.train[..5], &[18, 47, 56, 57, 58]);
}

#[test]
fn encode_decode_round_trip() {
    let v = &corpus().vocab;
    assert_eq!(
        v.encode("hii there").unwrap(),
        vec![46, 47, 47, 1, 58, 46, 43, 56, 43]
    );
    assert_eq!(v.decode(&v.encode("hii there").unwrap()), "hii there");
    // property: any string of vocabulary characters survives the round trip
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..1000 {
        let len = rng.gen_range(0..64);
        let s: String = (0..len)
            .map(|_| v.chars()[rng.gen_range(0..v.len())])
            .collect();
        let ids = v.encode(&s).unwrap();
        assert_eq!(ids.len(), s.chars().count());
        assert!(ids.iter().all(|&i| i < 65));
        assert_eq!(v.decode(&ids), s);
    }
    let err = v.encode("to be é").unwrap_err();
    assert_eq!((err.ch, err.position), ('é', 6));
}

#[test]
fn the_examples_inside_one_block() {
    let block = &corpus().train[..9]; // block_size + 1 tokens
    let ex = block_examples(block);
    assert_eq!(ex.len(), 8);
    assert_eq!(ex[0], (&block[..1], block[1]));
    assert_eq!(ex[7], (&block[..8], block[8]));
}

#[test]
fn batches_have_their_shape_and_are_shifted_by_one() {
    let c = corpus();
    let mut rng = StdRng::seed_from_u64(1337);
    let b = c.get_batch(Split::Train, 4, 8, &mut rng).unwrap();
    assert_eq!((b.x.len(), b.y.len()), (32, 32));
    for row in 0..4 {
        let (x, y) = (&b.x[row * 8..row * 8 + 8], &b.y[row * 8..row * 8 + 8]);
        assert_eq!(&x[1..], &y[..7], "y is x shifted by one");
        // the row is a real stretch of the data
        let start = c
            .train
            .windows(9)
            .position(|w| w[..8] == *x && w[8] == y[7]);
        assert!(start.is_some());
    }
    let (xt, yt) = batch_tensors(&Cpu::default(), &b).unwrap();
    assert_eq!(*xt.shape(), (4, 8));
    assert_eq!(*yt.shape(), (32,));
    let logits = model(0, 1.0).logits(xt).unwrap();
    assert_eq!(*logits.shape(), (4, 8, 65));
}

#[test]
fn batches_at_given_offsets() {
    let data: Vec<usize> = (10..20).collect();
    let b = batch_at(&data, Split::Train, &[0, 6], 3).unwrap();
    assert_eq!((b.batch_size, b.block_size), (2, 3));
    assert_eq!(b.x, [10, 11, 12, 16, 17, 18]);
    assert_eq!(b.y, [11, 12, 13, 17, 18, 19]);
    // the last offset that fits is len - block - 1; one more is an error
    let err = batch_at(&data, Split::Val, &[7], 3).unwrap_err();
    assert!(matches!(
        err,
        TextError::OffsetOutOfRange {
            offset: 7,
            len: 10,
            ..
        }
    ));
    assert!(err.to_string().contains("out of range"), "{err}");
    assert!(matches!(
        batch_at(&data, Split::Val, &[], 3),
        Err(TextError::ZeroBatch)
    ));
    // get_batch draws its offsets, then cuts the same blocks as batch_at
    let mut rng = StdRng::seed_from_u64(3);
    let drawn = get_batch(&data, Split::Train, 4, 3, &mut rng).unwrap();
    let offsets: Vec<usize> = drawn.x.chunks(3).map(|r| r[0] - 10).collect();
    assert_eq!(batch_at(&data, Split::Train, &offsets, 3).unwrap(), drawn);
}

#[test]
fn bad_batches_are_errors() {
    let data = [1usize, 2, 3, 4];
    let mut rng = StdRng::seed_from_u64(0);
    assert!(matches!(
        get_batch(&data, Split::Val, 0, 2, &mut rng),
        Err(TextError::ZeroBatch)
    ));
    assert!(matches!(
        get_batch(&data, Split::Val, 1, 0, &mut rng),
        Err(TextError::ZeroBlock)
    ));
    let err = get_batch(&data, Split::Val, 1, 4, &mut rng).unwrap_err();
    assert!(matches!(
        err,
        TextError::BlockTooLarge {
            block_size: 4,
            len: 4,
            ..
        }
    ));
    assert!(err.to_string().contains("val split of 4 tokens"), "{err}");
    assert!(get_batch(&data, Split::Val, 1, 3, &mut rng).is_ok());
    assert!(matches!(Corpus::new(""), Err(TextError::Empty)));
    assert!(matches!(
        Corpus::with_fraction("abc", 1.0),
        Err(TextError::BadFraction(_))
    ));
}

#[test]
fn initial_loss_is_near_uniform_for_a_small_init() {
    let (c, dev) = (corpus(), Cpu::default());
    let cfg = TrainConfig {
        eval_iters: 20,
        ..TrainConfig::default()
    };
    let (train, val) = estimate_loss(
        &dev,
        &model(3, 0.01),
        c,
        &cfg,
        &mut StdRng::seed_from_u64(3),
    )
    .unwrap();
    let uniform = (65f32).ln(); // -ln(1/65) = 4.17
    assert!(
        (train - uniform).abs() < 0.3 && (val - uniform).abs() < 0.3,
        "{train} {val}"
    );
    // PyTorch's N(0, 1) init starts higher, near the lecture's 4.88
    let (train, _) =
        estimate_loss(&dev, &model(3, 1.0), c, &cfg, &mut StdRng::seed_from_u64(3)).unwrap();
    assert!(train > 4.5 && train < 5.3, "{train}");
}

#[test]
fn tiny_training_lowers_the_loss_and_is_deterministic() {
    let (c, dev) = (corpus(), Cpu::default());
    let run = || {
        let mut m = model(5, 1.0);
        let report = train(
            &dev,
            &mut m,
            c,
            &TrainConfig::tiny(),
            &mut StdRng::seed_from_u64(5),
            |_| {},
        )
        .unwrap();
        (m.token_embedding_table.weight.as_vec(), report)
    };
    let ((w1, r1), (w2, r2)) = (run(), run());
    assert_eq!(w1, w2, "same seed, bit-identical weights");
    assert_eq!(r1.history, r2.history);
    let evals = &r1.history.evals;
    assert_eq!(
        evals.iter().map(|e| e.step).collect::<Vec<_>>(),
        vec![0, 50, 100]
    );
    assert!(evals[2].train < evals[0].train - 0.1, "{evals:?}");
    assert_eq!(r1.history.step_losses.len(), 100);
}

#[test]
fn the_lectures_loop_and_every_commands_run_train_alike() {
    // chapter 3 lists the lecture's loop; the commands run `run_keeping`:
    // from the same weights and seed they estimate the same losses and end
    // with the same weights, bit for bit (the run adds one estimate after
    // the last step, which the lecture's loop does not make)
    let (c, dev, cfg) = (corpus(), Cpu::default(), TrainConfig::tiny());
    let mut lecture = model(7, 1.0);
    let evals = lecture_loop(&dev, &mut lecture, c, &cfg, &mut StdRng::seed_from_u64(7)).unwrap();
    let mut run = model(7, 1.0);
    let report = train(
        &dev,
        &mut run,
        c,
        &cfg,
        &mut StdRng::seed_from_u64(7),
        |_| {},
    )
    .unwrap();
    let steps: Vec<_> = evals.iter().map(|e| e.step).collect();
    assert_eq!(steps, vec![0, 50]);
    assert_eq!(evals[..], report.history.evals[..evals.len()]);
    assert_eq!(report.history.evals.last().unwrap().step, cfg.max_iters);
    let weights = |m: &Model| m.token_embedding_table.weight.as_vec();
    assert_eq!(weights(&lecture), weights(&run));
    assert_ne!(weights(&lecture), weights(&model(7, 1.0)), "it trained");
}

#[test]
fn default_config_reaches_the_lectures_validation_loss() {
    let (c, dev) = (corpus(), Cpu::default());
    let mut m = model(1337, 1.0);
    let report = train(
        &dev,
        &mut m,
        c,
        &TrainConfig::default(),
        &mut StdRng::seed_from_u64(1337),
        |_| {},
    )
    .unwrap();
    let last = report.last_eval().unwrap();
    assert_eq!(last.step, 3000);
    assert!(last.val <= 2.52, "val loss {}", last.val); // PyTorch's bigram.py: 2.49
    assert!(last.train <= 2.52, "train loss {}", last.train);
}

#[test]
fn bad_settings_are_errors() {
    let (c, dev) = (corpus(), Cpu::default());
    let mut m = model(0, 1.0);
    let mut rng = StdRng::seed_from_u64(0);
    for (cfg, want) in [
        (
            TrainConfig {
                learning_rate: f32::NAN,
                ..TrainConfig::tiny()
            },
            "learning rate",
        ),
        (
            TrainConfig {
                learning_rate: 0.0,
                ..TrainConfig::tiny()
            },
            "learning rate",
        ),
        (
            TrainConfig {
                batch_size: 0,
                ..TrainConfig::tiny()
            },
            "batch size",
        ),
        (
            TrainConfig {
                block_size: 200_000,
                ..TrainConfig::tiny()
            },
            "too large for the val split",
        ),
        (
            TrainConfig {
                eval_iters: 0,
                ..TrainConfig::tiny()
            },
            "evaluation batches",
        ),
    ] {
        let err = train(&dev, &mut m, c, &cfg, &mut rng, |_| {}).unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
    // a model for another vocabulary
    let names = Corpus::new("abc\nab\n").unwrap();
    let err = train(&dev, &mut m, &names, &TrainConfig::tiny(), &mut rng, |_| {}).unwrap_err();
    assert!(matches!(
        err,
        TrainError::Model(ModelError::VocabSize {
            expected: 65,
            got: 4
        })
    ));
}

#[test]
fn generation_appends_tokens_from_the_vocabulary() {
    let m = model(9, 1.0);
    let mut rng = StdRng::seed_from_u64(9);
    let out = m.generate(&[vec![0], vec![5]], 50, &mut rng).unwrap();
    assert_eq!(out.len(), 2);
    assert!(out
        .iter()
        .all(|r| r.len() == 51 && r.iter().all(|&t| t < 65)));
    assert_eq!((out[0][0], out[1][0]), (0, 5));
    let again = m
        .generate(&[vec![0], vec![5]], 50, &mut StdRng::seed_from_u64(9))
        .unwrap();
    assert_eq!(out, again, "same seed, same text");
    assert!(matches!(
        m.generate(&[vec![]], 5, &mut rng),
        Err(ModelError::EmptyContext)
    ));
    assert!(matches!(
        m.generate(&[vec![65]], 5, &mut rng),
        Err(ModelError::TokenId { id: 65, .. })
    ));
    assert!(matches!(
        m.generate(&[vec![1], vec![1, 2]], 5, &mut rng),
        Err(ModelError::RaggedContext)
    ));
}

// The book's chapter 3 quotes numbers and shows a figure written by
// `charlm figures`; they must be what the code produces today.
#[test]
fn book_figures_and_numbers_are_current() {
    let n = common::assert_book_files_current(&Bigram);
    assert_eq!(n, 2, "loss.svg, numbers.md");
}

mod checkpoints {
    use super::*;
    use charlm::train::checkpoint::{self, CheckpointError};
    use charlm::train::{run, Finish, StopAt, TrainState};
    use rand_chacha::ChaCha12Rng;

    const KIND: &str = "bigram";

    fn cfg() -> TrainConfig {
        TrainConfig {
            max_iters: 120,
            eval_interval: 40,
            ..TrainConfig::tiny()
        }
    }

    #[test]
    fn round_trip_gives_identical_logits() {
        let (c, dev) = (corpus(), Cpu::default());
        let mut rng = ChaCha12Rng::seed_from_u64(11);
        let mut m = model(11, 1.0);
        let mut state = TrainState::new(&cfg());
        run(&dev, &mut m, c, &cfg(), &mut state, &mut rng, &mut ()).unwrap();
        let dir = crate::tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/bigram.safetensors");
        checkpoint::save(&path, &m, KIND, &c.vocab, &cfg(), &state, &rng).unwrap();
        let mut fresh = model(99, 1.0);
        let loaded = checkpoint::load(&dev, &path, &mut fresh, KIND).unwrap();
        assert_eq!(loaded.vocab, c.vocab);
        assert_eq!(loaded.meta.step, 120);
        assert_eq!(loaded.state.history, state.history);
        assert_eq!(loaded.rng.get_word_pos(), rng.get_word_pos());
        let batch = c
            .get_batch(Split::Val, 4, 8, &mut StdRng::seed_from_u64(1))
            .unwrap();
        let (x, _) = batch_tensors(&dev, &batch).unwrap();
        let logits = |m: &Model, x| m.logits(x).unwrap().as_vec();
        assert_eq!(logits(&m, x.clone()), logits(&fresh, x));
        assert_eq!(loaded.state.opt.state(), state.opt.state());
    }

    #[test]
    fn resume_continues_exactly_as_an_uninterrupted_run() {
        let (c, dev) = (corpus(), Cpu::default());
        // uninterrupted
        let mut whole = model(21, 1.0);
        let mut rng = ChaCha12Rng::seed_from_u64(21);
        let mut state = TrainState::new(&cfg());
        run(&dev, &mut whole, c, &cfg(), &mut state, &mut rng, &mut ()).unwrap();
        // stopped before step 70, saved, loaded into another model, resumed
        let mut part = model(21, 1.0);
        let mut rng2 = ChaCha12Rng::seed_from_u64(21);
        let mut state2 = TrainState::new(&cfg());
        let mut stop = StopAt(70);
        let finish = run(
            &dev,
            &mut part,
            c,
            &cfg(),
            &mut state2,
            &mut rng2,
            &mut stop,
        )
        .unwrap();
        assert_eq!((finish, state2.step), (Finish::Stopped, 70));
        let dir = crate::tempfile::tempdir().unwrap();
        let path = dir.path().join("half.safetensors");
        checkpoint::save(&path, &part, KIND, &c.vocab, &cfg(), &state2, &rng2).unwrap();
        let mut resumed = model(0, 1.0);
        let mut loaded = checkpoint::load(&dev, &path, &mut resumed, KIND).unwrap();
        let (cfg2, state2, rng2) = (&loaded.meta.config, &mut loaded.state, &mut loaded.rng);
        let finish = run(&dev, &mut resumed, c, cfg2, state2, rng2, &mut ()).unwrap();
        assert_eq!(finish, Finish::Done);
        assert_eq!(loaded.state.history, state.history, "the same loss curve");
        let w = |m: &Model| m.token_embedding_table.weight.as_vec();
        assert_eq!(w(&resumed), w(&whole), "bit-identical weights");
    }

    #[test]
    fn bad_checkpoints_are_clear_errors() {
        let (c, dev) = (corpus(), Cpu::default());
        let dir = crate::tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut m = model(1, 1.0);
        let err = checkpoint::load(&dev, &d.join("missing.safetensors"), &mut m, KIND).unwrap_err();
        assert!(matches!(err, CheckpointError::Io(_)), "{err}");
        std::fs::write(d.join("garbage"), b"not a checkpoint at all").unwrap();
        let err = checkpoint::load(&dev, &d.join("garbage"), &mut m, KIND).unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
        // a real checkpoint, then damaged copies of it
        let good = d.join("good.safetensors");
        let state = TrainState::new(&cfg());
        let rng = ChaCha12Rng::seed_from_u64(1);
        checkpoint::save(&good, &m, KIND, &c.vocab, &cfg(), &state, &rng).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        std::fs::write(d.join("truncated"), &bytes[..bytes.len() - 100]).unwrap();
        let err = checkpoint::load(&dev, &d.join("truncated"), &mut m, KIND).unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
        let err = checkpoint::load(&dev, &good, &mut m, "head").unwrap_err();
        assert!(
            err.to_string()
                .contains("holds a bigram model, not a head model"),
            "{err}"
        );
        // a model of another size
        let mut small = Model::new(&dev, 27, 1.0, &mut StdRng::seed_from_u64(0)).unwrap();
        let err = checkpoint::load(&dev, &good, &mut small, KIND).unwrap_err();
        assert!(
            err.to_string()
                .contains("has shape [65, 65], the model [27, 27]"),
            "{err}"
        );
        // the metadata alone, as `charlm generate` reads it first
        let (meta, vocab) = checkpoint::read_meta(&good).unwrap();
        assert_eq!((meta.model.as_str(), meta.step, vocab.len()), (KIND, 0, 65));
    }
}

// charlm's AdamW (dfdx's Adam kernel with the moments kept where a checkpoint
// can reach them) trains exactly as dfdx's own `Adam` does.
#[test]
fn adamw_matches_dfdx_adam() {
    use charlm::train::AdamW;
    use dfdx::nn::ZeroGrads;
    use dfdx::optim::{Adam, Optimizer};
    let (c, dev) = (corpus(), Cpu::default());
    let cfg = TrainConfig::default();
    let (mut ours, mut theirs) = (model(4, 1.0), model(4, 1.0));
    let mut opt_ours = AdamW::new(cfg.adamw());
    let mut opt_theirs = Adam::new(&theirs, cfg.adamw());
    let mut rng = StdRng::seed_from_u64(4);
    for _ in 0..50 {
        let batch = c.get_batch(Split::Train, 32, 8, &mut rng).unwrap();
        let (x, y) = batch_tensors(&dev, &batch).unwrap();
        let mut g = LanguageModel::loss(&ours, x.clone().traced(ours.alloc_grads()), &y)
            .unwrap()
            .backward();
        opt_ours.update(&mut ours, &mut g).unwrap();
        let g = LanguageModel::loss(&theirs, x.traced(theirs.alloc_grads()), &y)
            .unwrap()
            .backward();
        opt_theirs.update(&mut theirs, &g).unwrap();
    }
    let w = |m: &Model| m.token_embedding_table.weight.as_vec();
    assert_eq!(w(&ours), w(&theirs));
    assert_ne!(
        w(&ours),
        w(&model(4, 1.0)),
        "and training moved the weights"
    );
}
