//! `--resume`: a run's settings are resolved once, the checkpoint's then the
//! flags, and everything the run shows or writes uses them.

use std::path::Path;

use charlm::data::{self, Dataset, Locator};
use charlm::models::bigram::BigramLanguageModel;
use charlm::train::session::{self, Settings};
use charlm::train::{checkpoint, LrSchedule, StopAt, TrainConfig};
use dfdx::prelude::Cpu;

use super::{charlm, fails, json_of, stderr};

/// A bigram run of 60 steps on a cosine schedule, stopped at step 20 and
/// saved to `path`: what Ctrl-C leaves behind.
fn stopped_at_20(path: &Path) -> TrainConfig {
    let text_path = Locator::from_env()
        .resolve(Dataset::TinyShakespeare, None)
        .unwrap();
    let text = data::read_text(&text_path).unwrap();
    let config = TrainConfig {
        max_iters: 60,
        eval_interval: 20,
        eval_iters: 2,
        lr_schedule: LrSchedule::Cosine {
            warmup: 5,
            min_lr: 2e-3,
        },
        ..TrainConfig::default()
    };
    let settings = Settings {
        config,
        ..Settings::default()
    };
    let run = session::start::<Cpu, BigramLanguageModel<f32, Cpu>>(
        &Cpu::default(),
        &text,
        &settings,
        None,
        &mut StopAt(20),
    )
    .unwrap();
    assert_eq!(run.state.step, 20);
    run.save(path).unwrap();
    config
}

// Resumed without --steps, a run goes on to its own last step: the
// progress counts to the checkpoint's 60, not bigram's default 3000.
#[test]
fn a_resumed_run_counts_to_its_own_steps() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    stopped_at_20(&d.join("cut.safetensors"));
    let o = charlm("bigram --resume cut.safetensors --tokens 0", d);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    for step in ["step     40/60:", "step     60/60:"] {
        assert!(err.contains(step), "{step:?} in {err}");
    }
    assert!(!err.contains("/3000"), "{err}");
    let o = charlm("bigram --resume cut.safetensors --tokens 0 --json", d);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_of(&o);
    assert_eq!(v["steps"], 60);
    assert_eq!(v["config"]["max_iters"], 60);
}

// Every training flag replaces the checkpoint's setting on resume; on a
// cosine run --warmup alone reshapes the schedule; a flag that contradicts
// the schedule is refused in one line.
#[test]
fn every_flag_applies_on_resume() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    let saved = stopped_at_20(&d.join("cut.safetensors"));
    let base = ["bigram", "--resume", "cut.safetensors", "--tokens", "0"];
    let run = |flags: &[&str]| {
        let mut args = base.to_vec();
        args.extend(flags);
        args.extend(["--json", "--save", "end.safetensors"]);
        let o = charlm(&args, d);
        assert!(o.status.success(), "{flags:?}: {}", stderr(&o));
        let config = json_of(&o)["config"].clone();
        let (meta, _) = checkpoint::read_meta(&d.join("end.safetensors")).unwrap();
        let used: TrainConfig = serde_json::from_value(config.clone()).unwrap();
        assert_eq!(
            meta.config, used,
            "the checkpoint saves the settings the run used"
        );
        config
    };
    // --warmup alone, on a run whose schedule is cosine: the rest is the checkpoint's
    let c = run(&["--warmup", "7"]);
    assert_eq!(c["lr_schedule"]["kind"], "cosine");
    assert_eq!(c["lr_schedule"]["warmup"], 7);
    assert_eq!(c["lr_schedule"]["min_lr"].as_f64(), Some(2e-3_f32 as f64));
    assert_eq!(c["max_iters"], saved.max_iters);
    assert_eq!(c["eval_iters"], saved.eval_iters);
    // every flag at once
    let c = run(&[
        "--steps",
        "30",
        "--lr",
        "0.02",
        "--batch",
        "8",
        "--block",
        "4",
        "--dropout",
        "0",
        "--min-lr",
        "1e-3",
        "--grad-clip",
        "0.5",
        "--eval-interval",
        "5",
        "--eval-iters",
        "1",
    ]);
    assert_eq!(c["max_iters"], 30);
    assert_eq!(c["learning_rate"].as_f64(), Some(0.02_f32 as f64));
    assert_eq!(c["batch_size"], 8);
    assert_eq!(c["block_size"], 4);
    assert_eq!(c["dropout"].as_f64(), Some(0.0));
    assert_eq!(c["lr_schedule"]["warmup"], 5);
    assert_eq!(c["lr_schedule"]["min_lr"].as_f64(), Some(1e-3_f32 as f64));
    assert_eq!(c["grad_clip"].as_f64(), Some(0.5));
    assert_eq!(c["eval_interval"], 5);
    assert_eq!(c["eval_iters"], 1);
    // the schedule itself, turned off
    let c = run(&["--lr-schedule", "constant"]);
    assert_eq!(c["lr_schedule"]["kind"], "constant");
    // a cosine's flag on a constant schedule contradicts it
    let mut args = base.to_vec();
    args.extend(["--lr-schedule", "constant", "--warmup", "3"]);
    fails(&args, d, "--warmup and --min-lr shape the cosine schedule");
}
