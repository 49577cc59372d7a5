//! The layout the chapters rely on: the stage registry and the book's
//! folders agree, the model registry finds every model by its checkpoint
//! name, the workloads are named once, and files are written atomically.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;

use charlm::fsutil::{temp_path_for, write_atomic, write_atomic_with};
use charlm::models::Kind;
use charlm::stages::ALL;

#[test]
fn every_stage_has_its_book_folder_and_every_folder_a_stage() {
    let ids: Vec<&str> = ALL.iter().map(|s| s.id()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "stage ids are unique: {ids:?}");
    let figures = Path::new(env!("CARGO_MANIFEST_DIR")).join("chapters/figures");
    let folders: BTreeSet<String> = fs::read_dir(&figures)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for id in &ids {
        assert!(folders.contains(*id), "chapters/figures/{id} is missing");
    }
    // speed/ is written by parity/bench.py, not by a stage
    for folder in &folders {
        assert!(
            folder == "speed" || unique.contains(folder.as_str()),
            "chapters/figures/{folder} belongs to no stage"
        );
    }
}

#[test]
fn every_model_kind_is_found_by_the_name_its_checkpoints_record() {
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        [
            "bigram",
            "head",
            "multihead",
            "ffwd",
            "plain-blocks",
            "residual",
            "blocks",
            "layernorm",
            "gpt-small",
            "gpt-cpu",
            "gpt-lecture",
            "gpt-small-gelu"
        ]
    );
    for &kind in Kind::ALL {
        assert_eq!(Kind::from_name(kind.name()), Some(kind));
    }
    assert_eq!(Kind::from_name("gpt-7"), None);
}

#[test]
fn every_workload_is_named_once_and_prepares() {
    let all = charlm::bench::all();
    let names: BTreeSet<&str> = all.iter().map(|w| w.name).collect();
    assert_eq!(names.len(), all.len());
    assert_eq!(all.len(), 15);
    assert_eq!(charlm::bench::find("head-step").unwrap().name, "head-step");
    assert!(charlm::bench::find("nope").is_none());
    // the cheapest one runs, and a ladder step (the shared training-step workload)
    let data = crate::common::data();
    for name in ["lookup-step", "multihead-step", "gpt-small-step"] {
        let mut iteration = (charlm::bench::find(name).unwrap().prepare)(data).unwrap();
        iteration().unwrap();
    }
}

// `runtime_options` writes dfdx's TensorOptions field by field; that is only
// sound while it has exactly those fields. A struct of the same three fields
// must have its size (a new field in another dfdx version would change it).
#[test]
fn tensor_options_has_the_three_fields_runtime_options_writes() {
    use dfdx::nn::TensorOptions;
    use dfdx::prelude::*;
    #[allow(dead_code)]
    struct Same {
        do_gradient_update: bool,
        reset: charlm::models::lm::Reset<(usize, usize), f32, Cpu>,
        shape: (usize, usize),
    }
    assert_eq!(
        std::mem::size_of::<TensorOptions<(usize, usize), f32, Cpu>>(),
        std::mem::size_of::<Same>()
    );
    let o: TensorOptions<(usize, usize), f32, Cpu> =
        charlm::models::lm::runtime_options((3, 4), |t| t.try_fill_with_zeros());
    assert!(o.do_gradient_update);
    assert_eq!(o.shape, (3, 4));
}

#[test]
fn temp_path_keeps_folder_and_extension() {
    let t = temp_path_for(Path::new("out/fig.png"));
    assert_eq!(t.parent(), Some(Path::new("out")));
    assert_eq!(t.extension().unwrap(), "png");
    assert_ne!(t, temp_path_for(Path::new("out/fig.png")));
}

#[test]
fn a_failed_write_leaves_the_old_file_and_no_temp() {
    let dir = crate::tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.txt");
    write_atomic(&dest, b"old").unwrap();
    let err = write_atomic_with(&dest, |tmp| {
        fs::write(tmp, b"half")?;
        Err(io::Error::other("boom"))
    });
    assert!(err.is_err());
    assert_eq!(fs::read(&dest).unwrap(), b"old");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}
