//! Checkpoints written by charlm 0.1 (before the vocabulary became a
//! run-time size; `tests/fixtures/v1-*`, made with that version's binary)
//! still load, generate what that version generated, and resume exactly
//! where that version resumed; a checkpoint of another format says so.

use std::path::{Path, PathBuf};

use charlm::data::text::Split;
use charlm::models::bigram::BigramLanguageModel;
use charlm::models::head::LectureHead;
use charlm::models::LanguageModel;
use charlm::train::checkpoint::{self, CheckpointError};
use charlm::train::session::{self, Resume, Settings};
use charlm::train::{TrainConfig, TrainFlags};
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use crate::common::text;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// What `charlm generate --checkpoint v1-<kind>.safetensors --prompt ROMEO:
/// --tokens 80 --seed 5` printed in version 0.1, which first drew a model's
/// worth of throwaway weights from the generator (`init`), then sampled.
fn old_generate<M: LanguageModel<Cpu>>(
    kind: &str,
    init: impl FnOnce(&mut ChaCha12Rng) -> M,
) -> (String, String) {
    let path = fixture(&format!("v1-{kind}.safetensors"));
    let (_, vocab) = checkpoint::read_meta(&path).unwrap();
    let (model, _) = checkpoint::load_model::<Cpu, M>(&Cpu::default(), &path).unwrap();
    let mut rng = ChaCha12Rng::seed_from_u64(5);
    init(&mut rng);
    let context = vocab.encode("ROMEO:").unwrap();
    let out = model.generate(&[context], 80, &mut rng).unwrap();
    let expected = std::fs::read_to_string(fixture(&format!("v1-{kind}.generated.txt"))).unwrap();
    (
        vocab.decode(&out[0]),
        expected.strip_suffix('\n').unwrap().to_string(),
    )
}

#[test]
fn version_1_checkpoints_generate_what_version_1_generated() {
    let dev = Cpu::default();
    let (got, want) = old_generate::<BigramLanguageModel<f32, Cpu>>("bigram", |rng| {
        BigramLanguageModel::new(&dev, 65, 0.0, rng).unwrap()
    });
    assert_eq!(got, want);
    let (got, want) =
        old_generate::<LectureHead<Cpu>>("head", |rng| LectureHead::new(&dev, 65, rng).unwrap());
    assert_eq!(got, want);
}

/// Resumes a version-1 checkpoint to step 40, as that version did with
/// `--resume v1-<kind>.safetensors --steps 40 --eval-iters 2 --tokens 10`.
fn resume_to_40<M: LanguageModel<Cpu>>(kind: &str) {
    let path = fixture(&format!("v1-{kind}.safetensors"));
    let flags = TrainFlags {
        steps: Some(40),
        eval_iters: Some(2),
        ..TrainFlags::default()
    };
    let settings = Settings {
        config: charlm::train::resolve(TrainConfig::default(), Some(&path), &flags).unwrap(),
        sample_tokens: 10,
        ..Settings::default()
    };
    let resume = Resume {
        path: &path,
        weights_only: false,
    };
    let run =
        session::run::<Cpu, M>(&Cpu::default(), text(), &settings, Some(resume), &mut ()).unwrap();
    let old: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(&format!("v1-{kind}.resumed.json"))).unwrap(),
    )
    .unwrap();
    let f = |key: &str| old[key].as_f64().unwrap() as f32;
    assert_eq!(run.report.steps, 40);
    assert_eq!(run.report.initial_loss, f("initial_loss"), "{kind}");
    assert_eq!(run.report.train_loss, f("train_loss"), "{kind}");
    assert_eq!(run.report.val_loss, f("val_loss"), "{kind}");
    assert_eq!(run.report.sample, old["sample"].as_str().unwrap(), "{kind}");
}

#[test]
fn version_1_checkpoints_resume_bit_for_bit() {
    resume_to_40::<BigramLanguageModel<f32, Cpu>>("bigram");
    resume_to_40::<LectureHead<Cpu>>("head");
}

#[test]
fn a_checkpoint_of_another_format_says_so() {
    let bytes = std::fs::read(fixture("v1-bigram.safetensors")).unwrap();
    let (from, to) = (b"charlm-checkpoint/1", b"charlm-checkpoint/9");
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("the format tag is in the header");
    let mut other = bytes.clone();
    other[at..at + to.len()].copy_from_slice(to);
    let dir = crate::tempfile::tempdir().unwrap();
    let path = dir.path().join("v9.safetensors");
    std::fs::write(&path, other).unwrap();
    let err = checkpoint::read_meta(&path).unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains("another version of charlm"),
        "{err}"
    );
}

#[test]
fn loading_the_wrong_kind_names_both() {
    let path = fixture("v1-head.safetensors");
    let err = checkpoint::load_model::<Cpu, BigramLanguageModel<f32, Cpu>>(&Cpu::default(), &path)
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("holds a head model, not a bigram model"),
        "{err}"
    );
}

// The visitors that walk a model of run-time size (optimiser, gradients,
// safetensors) all reach every tensor: a round trip through a checkpoint
// keeps the weights and the optimiser's moments.
#[test]
fn a_run_time_sized_model_round_trips_with_its_optimiser() {
    let (dev, corpus) = (Cpu::default(), crate::common::corpus());
    let mut m = LectureHead::new(&dev, 65, &mut ChaCha12Rng::seed_from_u64(2)).unwrap();
    let cfg = TrainConfig::tiny();
    let mut state = charlm::train::TrainState::new(&cfg);
    let mut rng = ChaCha12Rng::seed_from_u64(2);
    charlm::train::run(&dev, &mut m, corpus, &cfg, &mut state, &mut rng, &mut ()).unwrap();
    let dir = crate::tempfile::tempdir().unwrap();
    let path = dir.path().join("h.safetensors");
    checkpoint::save(&path, &m, "head", &corpus.vocab, &cfg, &state, &rng).unwrap();
    let (back, loaded) = checkpoint::load_model::<Cpu, LectureHead<Cpu>>(&dev, &path).unwrap();
    let (t, slots) = loaded.state.opt.state();
    assert_eq!((t, slots.len()), (100, 7), "every tensor has its moments");
    assert_eq!(loaded.state.opt.state(), state.opt.state());
    let names: Vec<&str> = slots.iter().map(|(n, _, _)| n.as_str()).collect();
    assert!(names.contains(&"lm_head.weight") && names.contains(&"token_embedding_table.weight"));
    let batch = corpus
        .get_batch(Split::Val, 2, 8, &mut ChaCha12Rng::seed_from_u64(4))
        .unwrap();
    let (x, _) = charlm::models::lm::batch_tensors(&dev, &batch).unwrap();
    assert_eq!(
        back.logits(x.clone()).unwrap().as_vec(),
        m.logits(x).unwrap().as_vec()
    );
}
