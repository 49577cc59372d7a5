//! Vocabularies, and the language models on a text the test writes itself:
//! the vocabulary comes from the data, so the bigram model and the head
//! train on any UTF-8 text, save it in their checkpoints, resume, and
//! generate from prompts in it.

use charlm::data::text::Corpus;
use charlm::data::vocab::Vocab;
use charlm::models::bigram::BigramLanguageModel;
use charlm::models::head::LectureHead;
use charlm::models::lm::batch_tensors;
use charlm::models::{LanguageModel, ModelError};
use charlm::train::checkpoint;
use charlm::train::session::{self, Resume, Session, Settings};
use charlm::train::{Finish, StopAt, TrainConfig};
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use crate::shared::any_text;

#[test]
fn names_vocab_puts_the_boundary_first_then_sorted() {
    let v = Vocab::for_names(&["emma", "ava"]);
    assert_eq!(v.chars(), &['.', 'a', 'e', 'm', 'v']);
    assert_eq!(v.encode("mave").unwrap(), vec![3, 1, 4, 2]);
    assert_eq!(v.decode(&[3, 1, 4, 2]), "mave");
}

#[test]
fn an_unknown_char_is_named_with_its_position() {
    let v = Vocab::for_names(&["emma"]);
    let e = v.encode("emz").unwrap_err();
    assert_eq!((e.ch, e.position), ('z', 2));
    assert!(e.to_string().contains("'z'"), "{e}");
}

#[test]
fn from_chars_rejects_duplicates_and_empty() {
    assert!(Vocab::from_chars(vec!['a', 'a']).is_none());
    assert!(Vocab::from_chars(vec![]).is_none());
    assert_eq!(
        Vocab::from_chars(vec!['b', 'a']).unwrap().index('a'),
        Some(1)
    );
}

#[test]
fn the_test_text_has_a_vocabulary_larger_than_shakespeares() {
    let corpus = Corpus::new(&any_text()).unwrap();
    let v = &corpus.vocab;
    assert!(v.len() > 80, "{} characters", v.len());
    for c in ['é', 'ß', 'Ω', '—', '–', '“', '”', '’', '…', '\n'] {
        assert!(v.index(c).is_some(), "{c:?} is in the vocabulary");
    }
    let s = "Zoë’s café — “déjà vu”…";
    assert_eq!(v.decode(&v.encode(s).unwrap()), s);
}

fn settings() -> Settings {
    Settings {
        config: TrainConfig {
            max_iters: 300,
            eval_interval: 100,
            eval_iters: 20,
            ..TrainConfig::default()
        },
        seed: 7,
        sample_tokens: 50,
    }
}

/// Trains `M` on the test text, saves, loads, resumes and generates.
fn any_text_round_trip<M: LanguageModel<Cpu>>() {
    let (dev, text) = (Cpu::default(), any_text());
    let whole: Session<Cpu, M> = session::run(&dev, &text, &settings(), None, &mut ()).unwrap();
    let r = &whole.report;
    assert_eq!(r.vocab, whole.corpus.vocab.len());
    assert!(r.vocab > 80);
    assert!(
        r.val_loss < r.initial_loss - 0.8,
        "{} -> {}",
        r.initial_loss,
        r.val_loss
    );
    assert_eq!(r.sample.chars().count(), 51);

    // the checkpoint keeps the vocabulary's characters themselves
    let dir = crate::tempfile::tempdir().unwrap();
    let path = dir.path().join("any.safetensors");
    whole.save(&path).unwrap();
    let (meta, vocab) = checkpoint::read_meta(&path).unwrap();
    assert_eq!(vocab, whole.corpus.vocab);
    assert_eq!(meta.model, M::KIND);
    let (loaded, _) = checkpoint::load_model::<Cpu, M>(&dev, &path).unwrap();
    let batch = whole
        .corpus
        .get_batch(
            charlm::data::text::Split::Val,
            4,
            8,
            &mut ChaCha12Rng::seed_from_u64(1),
        )
        .unwrap();
    let (x, _) = batch_tensors(&dev, &batch).unwrap();
    let logits = |m: &M| m.logits(x.clone()).unwrap().as_vec();
    assert_eq!(logits(&loaded), logits(&whole.model), "the same weights");

    // a prompt of characters only this text has
    let prompt = vocab.encode("Ωμέγα “café” — ").unwrap();
    let out = loaded
        .generate(
            std::slice::from_ref(&prompt),
            40,
            &mut ChaCha12Rng::seed_from_u64(3),
        )
        .unwrap();
    assert_eq!(&out[0][..prompt.len()], &prompt[..]);
    assert_eq!(out[0].len(), prompt.len() + 40);
    assert!(out[0].iter().all(|&id| id < vocab.len()));
    let err = vocab.encode("日本").unwrap_err();
    assert_eq!(err.ch, '日');
    assert!(matches!(
        loaded.generate(&[vec![vocab.len()]], 1, &mut ChaCha12Rng::seed_from_u64(3)),
        Err(ModelError::TokenId { .. })
    ));

    // stopped at step 120 and resumed: the run that never stopped
    let mut stop = StopAt(120);
    let half: Session<Cpu, M> = session::run(&dev, &text, &settings(), None, &mut stop).unwrap();
    assert_eq!((half.finish, half.state.step), (Finish::Stopped, 120));
    let half_path = dir.path().join("half.safetensors");
    half.save(&half_path).unwrap();
    let resume = Resume {
        path: &half_path,
        weights_only: false,
    };
    let resumed: Session<Cpu, M> =
        session::run(&dev, &text, &settings(), Some(resume), &mut ()).unwrap();
    assert_eq!(
        resumed.train.history, whole.train.history,
        "the same losses"
    );
    assert_eq!(logits(&resumed.model), logits(&whole.model), "bit for bit");

    // resuming on another text is a clear error
    let resume = Resume {
        path: &half_path,
        weights_only: false,
    };
    let other = "a different text, with other characters entirely".repeat(50);
    let err = session::run::<Cpu, M>(&dev, &other, &settings(), Some(resume), &mut ())
        .err()
        .unwrap();
    assert!(err.to_string().contains("vocabulary differs"), "{err}");

    // its weights only (--init): a new run on a text in (some of) its
    // characters, from step 0, the checkpoint's vocabulary kept
    let finetune = |t: &str| {
        let init = Resume {
            path: &half_path,
            weights_only: true,
        };
        session::run::<Cpu, M>(&dev, t, &settings(), Some(init), &mut ())
    };
    let part: String = text.chars().rev().collect(); // the same characters, another text
    let tuned = finetune(&part).unwrap();
    assert_eq!(tuned.corpus.vocab, half.corpus.vocab);
    assert_eq!(tuned.state.step, settings().config.max_iters);
    assert_eq!(tuned.report.untrained_sample, None);
    let corpus = Corpus::in_vocab(&part, &half.corpus.vocab).unwrap();
    let (train, val) = charlm::train::run::estimate_loss(
        &dev,
        &half.model,
        &corpus,
        &settings().config,
        &mut ChaCha12Rng::seed_from_u64(settings().seed),
    )
    .unwrap();
    let first = tuned.train.history.evals[0];
    assert_eq!(
        (first.train, first.val),
        (train, val),
        "it starts from the checkpoint's weights"
    );
    let fresh: Session<Cpu, M> = session::run(&dev, &part, &settings(), None, &mut ()).unwrap();
    assert_ne!(fresh.train.history.evals[0], first);
    // a character the checkpoint's vocabulary lacks: a clear error
    let err = finetune(&format!("{part}☃")).err().unwrap().to_string();
    assert!(err.contains("'☃'") && err.contains("finetune"), "{err}");
}

#[test]
fn the_bigram_model_trains_on_any_text() {
    any_text_round_trip::<BigramLanguageModel<f32, Cpu>>();
}

#[test]
fn the_head_trains_on_any_text() {
    any_text_round_trip::<LectureHead<Cpu>>();
}

#[test]
fn a_model_needs_a_vocabulary() {
    let dev = Cpu::default();
    let rng = &mut ChaCha12Rng::seed_from_u64(0);
    assert!(matches!(
        BigramLanguageModel::new(&dev, 0, 1.0, rng),
        Err(ModelError::EmptyVocab)
    ));
    assert!(matches!(
        LectureHead::new(&dev, 0, rng),
        Err(ModelError::EmptyVocab)
    ));
}
