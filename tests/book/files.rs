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
    assert!(!d.join("deep").exists(), "checking makes no folder");
    assert_eq!(fs::read_to_string(&data).unwrap(), "text");
    let names: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| !n.to_string_lossy().contains("probe")),
        "{names:?}"
    );
    // the temporary name must fit in 255 bytes too
    let long = d.join(format!("{}.safetensors", "x".repeat(230)));
    let err = check_output(&long, &inputs).unwrap_err();
    assert!(
        err.to_string().contains("the file name is too long"),
        "{err}"
    );
    assert!(check_output(&d.join(format!("{}.bin", "x".repeat(200))), &inputs).is_ok());
    // a file where a folder should be
    let err = check_output(&d.join("data.txt/out.bin"), &inputs).unwrap_err();
    assert!(
        err.to_string().contains("a part of the path is a file")
            || err.to_string().contains("it is a file, not a folder"),
        "{err}"
    );
}

// Only regular files are read (a FIFO would block, a device never end),
// and only one that fits in memory.
#[cfg(unix)]
#[test]
fn only_regular_files_are_read() {
    let dir = crate::tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for path in [fifo.as_path(), std::path::Path::new("/dev/zero")] {
        let err = fsutil::read(path).unwrap_err();
        assert!(
            err.to_string().contains("it is not a regular file"),
            "{err}"
        );
        let err = checkpoint::read_meta(path).unwrap_err();
        assert!(
            err.to_string().contains("it is not a regular file"),
            "{err}"
        );
    }
}

// A checkpoint is checked against what it declares before anything it
// declares is allocated: a vocabulary too big for its tensors, a tensor
// larger than the model's (in a sparse file of a terabyte), Adam moments
// no training writes, invalid saved settings (the error names the file).
#[test]
fn a_checkpoint_is_bounded_before_it_is_believed() {
    let dev = Cpu::default();
    let (_dir, bad) = damaged(
        |_, v| v,
        |mut m| {
            let vocab: String = (0x100..0x100 + 100_000u32)
                .filter_map(char::from_u32)
                .collect();
            m["vocab"] = serde_json::Value::String(vocab);
            m
        },
    );
    let err = checkpoint::load_model::<Cpu, Model>(&dev, &bad).unwrap_err();
    assert!(
        err.to_string()
            .contains("characters makes a bigram model whose weights take"),
        "{err}"
    );
    let (_dir, bad) = damaged(
        |name, mut v| {
            if name.starts_with("adamw.v.") {
                v[0] = -1.0;
            }
            v
        },
        |m| m,
    );
    let err = checkpoint::load_model::<Cpu, Model>(&dev, &bad).unwrap_err();
    assert!(
        err.to_string()
            .contains("which no training run writes there"),
        "{err}"
    );
    let (_dir, bad) = damaged(
        |_, v| v,
        |mut m| {
            m["config"]["learning_rate"] = serde_json::json!(-1.0);
            m
        },
    );
    let err = checkpoint::read_meta(&bad).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "{} is not a valid charlm checkpoint: its saved settings are invalid",
            bad.display()
        )),
        "{err}"
    );
    // a terabyte declared, a few bytes on disk: refused from the header
    let (dir, good) = damaged(|_, v| v, |m| m);
    let bytes = fs::read(&good).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let end = header["token_embedding_table.weight"]["data_offsets"][1]
        .as_u64()
        .unwrap();
    let tera: u64 = 500_000 * 500_000 * 4;
    let data_end = bytes.len() as u64 - 8 - n as u64;
    header["huge"] = serde_json::json!({"dtype": "F32", "shape": [500_000, 500_000], "data_offsets": [data_end, data_end + tera]});
    let _ = end;
    let text = header.to_string();
    let sparse = dir.path().join("sparse.safetensors");
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    fs::write(&sparse, &out).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&sparse).unwrap();
    f.set_len(out.len() as u64 + tera).unwrap();
    drop(f);
    let err = checkpoint::load_model::<Cpu, Model>(&dev, &sparse).unwrap_err();
    assert!(err.to_string().contains("more than the"), "{err}");
    fs::remove_file(&sparse).unwrap();
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
    let mut m = Model::new(&dev, c.vocab.len(), 1.0, &mut StdRng::seed_from_u64(0)).unwrap();
    let cfg = TrainConfig::tiny();
    let (mut state, mut rng) = (TrainState::new(&cfg), ChaCha12Rng::seed_from_u64(1));
    // one step, so that AdamW's moments are in the file too
    let batch = c
        .get_batch(charlm::data::text::Split::Train, 4, 8, &mut rng)
        .unwrap();
    let mut grads = m.alloc_grads();
    charlm::train::train_step(&dev, &mut m, &mut state.opt, &mut grads, &batch, 0).unwrap();
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

// A model's size at any vocabulary, from three tiny models: exact for every
// kind (so a text of very many distinct characters is refused before its
// model is built, as the next test checks).
#[test]
fn weights_for_is_exact_for_every_kind() {
    use charlm::models::{Kind, ModelJob};
    use dfdx::nn::NumParams;
    struct Exact(usize);
    impl ModelJob<Cpu> for Exact {
        type Output = (u128, usize);
        fn run<M: LanguageModel<Cpu>>(self) -> (u128, usize) {
            let dev = Cpu::default();
            let m = M::init(&dev, self.0, &mut StdRng::seed_from_u64(0)).unwrap();
            let predicted = charlm::train::weights_for::<Cpu, M>(&dev, self.0).unwrap();
            (predicted, m.num_trainable_params())
        }
    }
    for &kind in Kind::ALL {
        for v in [1, 5, 65] {
            let (predicted, actual) = kind.with(Exact(v));
            assert_eq!(predicted, actual as u128, "{kind:?} at {v} tokens");
        }
    }
}

// Sizes that come from a file's distinct characters are checked against the
// free memory before anything is allocated: the bigram's V × V table, the
// counts' (V, V) tables. Smoothing that overflows float32 is refused; a
// message never prints a huge vocabulary whole.
#[test]
fn a_text_of_very_many_characters_is_refused_before_allocating() {
    use charlm::models::bigram_counts::{BigramCounts, BigramError};
    use charlm::train::session::{self, Settings};
    let many: String = (0x100..0x100 + 150_000u32)
        .filter_map(char::from_u32)
        .collect();
    let text = format!("{many}{many}");
    let settings = Settings {
        config: TrainConfig::tiny(),
        seed: 0,
        sample_tokens: 0,
    };
    let err = session::start::<Cpu, Model>(&Cpu::default(), &text, &settings, None, &mut ())
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("use a text with fewer distinct characters"),
        "{err}"
    );
    let words: Vec<String> = many
        .chars()
        .collect::<Vec<_>>()
        .chunks(5)
        .map(|c| c.iter().collect())
        .collect();
    let err = BigramCounts::from_words(&words).unwrap_err();
    assert!(
        matches!(err, BigramError::TooManyChars { order: 2, .. }),
        "{err}"
    );
    // a trigram's (V, V, V) counts, at 5,000 characters: 1.5 TB
    let few: Vec<String> = words.iter().take(1000).cloned().collect();
    let vocab = charlm::data::vocab::Vocab::for_names(&few);
    let err = charlm::models::trigram::TrigramCounts::from_words(&vocab, &few).unwrap_err();
    assert!(
        matches!(err, BigramError::TooManyChars { order: 3, .. }),
        "{err}"
    );
    let counts = BigramCounts::from_words(&["emma", "olivia"]).unwrap();
    let err = counts.probabilities(1e300).unwrap_err();
    assert!(
        matches!(err, BigramError::SmoothingTooLarge { .. }),
        "{err}"
    );
    assert!(counts.probabilities(1e30).is_ok());
    let n = many.chars().count();
    let unknown = charlm::data::vocab::UnknownChar {
        ch: 'x',
        position: 0,
        size: n,
        chars: many,
    };
    let line = unknown.to_string();
    let more = format!("and {} more", n - 100);
    assert!(
        line.len() < 1000 && line.contains(&more),
        "{}",
        &line[..200.min(line.len())]
    );
}
