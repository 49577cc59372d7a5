//! What charlm promises about files and runs, at the library's level:
//! `fsutil`'s writes (never half a file, never over a non-file or a taken
//! name, stale temporary files removed), checkpoints that refuse non-finite
//! weights and a vocabulary that does not fit their tables, and generation
//! that feeds each model only the context it needs.

use std::collections::HashMap;
use std::fs;

use ::safetensors::tensor::{serialize, SafeTensors, TensorView};
use charlm::fsutil::{self, check_output, write_atomic, write_new};
use charlm::models::bigram::BigramLanguageModel;
use charlm::models::lm::generate_with;
use charlm::models::LanguageModel;
use charlm::train::checkpoint::{self, CheckpointError};
use charlm::train::{TrainConfig, TrainState};
use dfdx::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use crate::common::corpus;

type Model = BigramLanguageModel<f32, Cpu>;

#[test]
fn write_new_never_replaces_a_file() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = d.join("run-interrupted.safetensors");
    let first = write_new(&base, b"one").unwrap();
    let second = write_new(&base, b"two").unwrap();
    assert_eq!(first, base);
    assert_eq!(second, d.join("run-interrupted-2.safetensors"));
    assert_eq!(fs::read(&first).unwrap(), b"one");
    assert_eq!(fs::read(&second).unwrap(), b"two");
    let names: Vec<_> = fs::read_dir(d)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
}

#[test]
fn writes_refuse_folders_and_keep_the_old_file_on_failure() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("folder")).unwrap();
    let err = write_atomic(&d.join("folder"), b"x").unwrap_err();
    assert!(
        err.to_string()
            .ends_with("it is a folder, not a file; give a file name"),
        "{err}"
    );
    let file = d.join("kept.txt");
    fs::write(&file, "old").unwrap();
    let err = fsutil::write_atomic_with(&file, |_| Err(std::io::Error::other("the disk broke")))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot write {}: the disk broke", file.display())
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), "old");
    assert_eq!(
        fs::read_dir(d).unwrap().count(),
        2,
        "no temporary file left"
    );
}

#[test]
fn check_output_compares_the_files_paths_name() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data.txt");
    fs::write(&data, "text").unwrap();
    let inputs = [("the --data file", data.as_path())];
    for same in [
        d.join("data.txt"),
        d.join("new/../data.txt"),
        d.join("./data.txt"),
    ] {
        let err = check_output(&same, &inputs).unwrap_err();
        assert!(
            err.to_string()
                .contains("it is the --data file of this run"),
            "{err}"
        );
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&data, d.join("link")).unwrap();
        let err = check_output(&d.join("link"), &inputs).unwrap_err();
        assert!(err.to_string().contains("--data file"), "{err}");
        std::os::unix::fs::symlink("out.bin", d.join("to-out")).unwrap();
        assert_eq!(
            check_output(&d.join("to-out"), &inputs).unwrap(),
            d.join("out.bin")
        );
    }
    assert_eq!(
        check_output(&d.join("deep/er/out.bin"), &inputs).unwrap(),
        d.join("deep/er/out.bin")
    );
    assert!(d.join("deep/er").is_dir(), "the folder is made");
    assert_eq!(
        fs::read_dir(d.join("deep/er")).unwrap().count(),
        0,
        "the probe is removed"
    );
    assert_eq!(fs::read_to_string(&data).unwrap(), "text");
}

/// A saved bigram checkpoint's bytes, its tensors rewritten by `edit`, and
/// its metadata by `edit_meta`.
fn damaged(
    edit: impl Fn(&str, Vec<f32>) -> Vec<f32>,
    edit_meta: impl Fn(serde_json::Value) -> serde_json::Value,
) -> (crate::tempfile::TempDir, std::path::PathBuf) {
    let (c, dev) = (corpus(), Cpu::default());
    let dir = crate::tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    let m = Model::new(&dev, c.vocab.len(), 1.0, &mut StdRng::seed_from_u64(0)).unwrap();
    let cfg = TrainConfig::tiny();
    let (state, rng) = (TrainState::new(&cfg), ChaCha12Rng::seed_from_u64(1));
    checkpoint::save(&good, &m, "bigram", &c.vocab, &cfg, &state, &rng).unwrap();
    let bytes = fs::read(&good).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().as_ref().unwrap()["charlm"].clone();
    let meta = edit_meta(serde_json::from_str(&meta).unwrap()).to_string();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            let values: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let values = edit(&name, values);
            (
                name,
                t.shape().to_vec(),
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(::safetensors::tensor::Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let info = Some(HashMap::from([("charlm".to_string(), meta)]));
    let bad = dir.path().join("bad.safetensors");
    fs::write(&bad, serialize(views, &info).unwrap()).unwrap();
    (dir, bad)
}

#[test]
fn checkpoints_with_non_finite_weights_are_refused() {
    let (_dir, bad) = damaged(
        |name, mut v| {
            if name == "token_embedding_table.weight" {
                v[7] = f32::NAN;
            }
            v
        },
        |m| m,
    );
    let err = checkpoint::load_model::<Cpu, Model>(&Cpu::default(), &bad).unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("\"token_embedding_table.weight\" holds NaN (the run that wrote it diverged"),
        "{err}"
    );
    let (_dir, bad) = damaged(|_, v| vec![f32::INFINITY; v.len()], |m| m);
    let err = checkpoint::load_model::<Cpu, Model>(&Cpu::default(), &bad).unwrap_err();
    assert!(err.to_string().contains("holds inf"), "{err}");
}

#[test]
fn a_vocabulary_that_does_not_fit_the_tables_is_refused() {
    let (_dir, bad) = damaged(
        |_, v| v,
        |mut m| {
            let vocab: String = m["vocab"].as_str().unwrap().chars().skip(1).collect();
            m["vocab"] = serde_json::Value::String(vocab);
            m
        },
    );
    let err = checkpoint::load_model::<Cpu, Model>(&Cpu::default(), &bad).unwrap_err();
    assert!(matches!(err, CheckpointError::Mismatch { .. }), "{err}");
    assert!(
        err.to_string().contains("has shape [65, 65], the model [64, 64] (the checkpoint's vocabulary has 64 characters)"),
        "{err}"
    );
}

// The bigram's logits at the last position depend only on the last token:
// generation feeds it one token per step (linear in the tokens made), and
// draws exactly what feeding the whole context draws.
#[test]
fn bigram_generation_feeds_one_token_and_draws_the_same() {
    let dev = Cpu::default();
    let m = Model::new(&dev, 65, 1.0, &mut StdRng::seed_from_u64(3)).unwrap();
    assert_eq!(m.context_needed(), Some(1));
    let context = vec![vec![0usize, 5, 9]];
    let fast = m
        .generate(&context, 300, &mut StdRng::seed_from_u64(4))
        .unwrap();
    let mut longest = 0;
    let whole = generate_with(
        &context,
        300,
        65,
        None,
        Default::default(),
        &mut StdRng::seed_from_u64(4),
        |flat, b, t| {
            longest = longest.max(t);
            let idx = dev.tensor_from_vec(flat, (b, t));
            Ok(m.logits(idx)?.as_vec())
        },
        &mut |_| true,
    )
    .unwrap();
    assert_eq!(longest, 302, "the whole context, uncropped");
    assert_eq!(fast, whole);
    // streaming sees every token, and stops when told
    let mut seen = Vec::new();
    let stopped = m
        .generate_streaming(&context, 300, &mut StdRng::seed_from_u64(4), &mut |new| {
            seen.push(new[0]);
            seen.len() < 10
        })
        .unwrap();
    assert_eq!(seen, fast[0][3..13]);
    assert_eq!(stopped[0], fast[0][..13]);
}
