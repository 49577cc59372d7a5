//! `charlm gpt` and `charlm ladder` (chapters 6 to 8): presets, the ladder,
//! `--save` and `--json-log`, finetuning with `--init`, EX4's preset.

use super::*;

// Chapter 8: --save keeps the best validation estimate's model (not the
// last), says so, and --json-log writes one line per estimate.
#[test]
fn save_keeps_the_best_and_json_log_writes_each_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // one batch per estimate: noisy, so some estimates are not the best
    let args = [
        "bigram",
        "--steps",
        "300",
        "--lr",
        "0.1",
        "--eval-interval",
        "10",
        "--eval-iters",
        "1",
        "--save",
        "best.safetensors",
        "--json-log",
        "log.jsonl",
        "--tokens",
        "5",
        "--json",
    ];
    let o = charlm(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_of(&o);
    let lines: Vec<serde_json::Value> = fs::read_to_string(d.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 31, "an estimate every 10 steps and at 0");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["step"].as_u64(), Some(10 * i as u64), "{l}");
        assert_eq!(l["tokens"].as_u64(), Some(10 * i as u64 * 32 * 8), "{l}");
        assert_eq!(l["lr"].as_f64(), Some(0.1f32 as f64), "{l}");
        assert!(l["train_loss"].as_f64().unwrap().is_finite() && l["seconds"].as_f64().is_some());
    }
    assert_eq!(lines[30]["val_loss"], v["val_loss"]);
    // the best after step 0, the earliest of equals
    let (best_step, best_val) = lines[1..]
        .iter()
        .map(|l| (l["step"].as_u64().unwrap(), l["val_loss"].as_f64().unwrap()))
        .fold((0, f64::INFINITY), |b, e| if e.1 < b.1 { e } else { b });
    assert!(
        best_step < 300,
        "this run's last estimate must not be its best: {best_step}"
    );
    assert_eq!(v["best_step"].as_u64(), Some(best_step), "{v}");
    assert_eq!(v["best_val_loss"].as_f64(), Some(best_val), "{v}");
    assert_eq!(v["checkpoint"], "best.safetensors");
    let (meta, _) = charlm::train::checkpoint::read_meta(&d.join("best.safetensors")).unwrap();
    assert_eq!(meta.step as u64, best_step);
    // said in words without --json
    let o = charlm(&args[..args.len() - 1], d);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = format!("the best validation estimate: val {best_val:.4} at step {best_step}");
    assert!(stdout(&o).contains(&want), "{}", stdout(&o));
    // resumed from the best, it replays the run exactly from there
    let o = charlm("bigram --resume best.safetensors --steps 300 --json", d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["val_loss"], v["val_loss"]);
    // the log is checked as --save is
    fails(
        "bigram --steps 10 --save x.safetensors --json-log x.safetensors",
        d,
        "the --save checkpoint",
    );
}

// Chapters 6 and 7: a rung by its preset, and the whole ladder.
#[test]
fn gpt_presets_and_the_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let quick = [
        "--steps",
        "40",
        "--eval-interval",
        "20",
        "--eval-iters",
        "2",
    ];
    let mut args = vec![
        "gpt",
        "--preset",
        "layernorm",
        "--tokens",
        "30",
        "--json",
        "--save",
        "ln.safetensors",
    ];
    args.extend(quick);
    let o = charlm(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_of(&o);
    assert_eq!(v["preset"], "layernorm");
    assert_eq!(v["steps"], 40);
    assert_eq!(
        v["config"]["learning_rate"].as_f64(),
        Some(1e-3_f32 as f64),
        "the ladder's rate"
    );
    assert!(v["params"].as_u64().unwrap() > 40_000, "{v}");
    for key in [
        "initial_loss",
        "train_loss",
        "val_loss",
        "tokens_per_second",
        "seconds",
    ] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}: {v}");
    }
    assert_eq!(v["sample"].as_str().unwrap().chars().count(), 31);
    let o = charlm("generate --checkpoint ln.safetensors --tokens 20", d);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = charlm("gpt --preset nope", d);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "choose from head, multihead, ffwd, plain-blocks, residual, blocks, layernorm, dropout, small, cpu, lecture, small-gelu"
        ),
        "{}",
        stderr(&o)
    );
    let mut args = vec!["ladder", "--json"];
    args.extend(quick);
    let o = charlm(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
    let rungs = json_of(&o)["rungs"].as_array().unwrap().clone();
    let names: Vec<&str> = rungs
        .iter()
        .map(|r| r["preset"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "head",
            "multihead",
            "ffwd",
            "plain-blocks",
            "residual",
            "blocks",
            "layernorm",
            "dropout"
        ]
    );
    assert_eq!(rungs[1]["lecture_val"].as_f64(), Some(2.28));
    assert!(rungs[1]["whole_val_loss"].as_f64().unwrap() > 0.0);
    let mut args = vec!["ladder"];
    args.extend(quick);
    let o = charlm(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with(
            "| rung | parameters | train loss | val loss | whole val split | lecture | steps/s |"
        ),
        "{out}"
    );
    assert_eq!(out.lines().count(), 10, "{out}");
}

// Chapter 8's exercises EX3 and EX4 from the command line: --init starts a
// new run on another text from a checkpoint's weights (refusing what does not
// fit, and never writing over it), and EX4's GELU preset trains.
#[test]
fn gpt_finetunes_from_a_checkpoint_and_small_gelu_trains() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names = "emma\nolivia\nava\nisabella\nsophia\n".repeat(40);
    fs::write(d.join("names.txt"), &names).unwrap();
    let quick = [
        "--steps",
        "20",
        "--eval-interval",
        "10",
        "--eval-iters",
        "2",
        "--tokens",
        "10",
        "--json",
    ];
    let run = |extra: &[&str]| {
        let mut args = vec!["gpt", "--preset"];
        args.extend(extra);
        args.extend(quick);
        charlm(&args, d)
    };
    let o = run(&["small", "--save", "pre.safetensors"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pre = fs::read(d.join("pre.safetensors")).unwrap();
    let o = run(&[
        "small",
        "--data",
        "names.txt",
        "--init",
        "pre.safetensors",
        "--lr",
        "3e-4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tuned = json_of(&o);
    assert_eq!(tuned["vocab"], 65, "the checkpoint's vocabulary: {tuned}");
    assert_eq!(tuned["steps"], 20);
    assert_eq!(
        tuned["config"]["learning_rate"].as_f64(),
        Some(3e-4_f32 as f64)
    );
    assert!(tuned["untrained_sample"].is_null());
    let o = run(&["small", "--data", "names.txt"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let fresh = json_of(&o);
    let letters: std::collections::BTreeSet<char> = names.chars().collect();
    assert_eq!(fresh["vocab"], letters.len());
    assert_ne!(fresh["initial_loss"], tuned["initial_loss"]);
    // what does not fit is refused, in a line; the checkpoint is untouched
    fs::write(d.join("snow.txt"), "☃ let it snow\n".repeat(100)).unwrap();
    let init = ["--init", "pre.safetensors"];
    let args = |extra: &[&'static str]| {
        let mut a = vec!["gpt", "--preset"];
        a.extend(extra);
        a
    };
    let mut a = args(&["small", "--data", "snow.txt"]);
    a.extend(init);
    fails(&a, d, "finetune on must be written in the characters");
    let mut a = args(&["cpu", "--data", "names.txt"]);
    a.extend(init);
    fails(&a, d, "it holds a gpt-small model, not a gpt-cpu model");
    let mut a = args(&["small", "--data", "names.txt", "--save", "pre.safetensors"]);
    a.extend(init);
    fails(&a, d, "--init checkpoint");
    let mut a = args(&["small", "--resume", "pre.safetensors"]);
    a.extend(init);
    let o = charlm(&a, d);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    assert_eq!(fs::read(d.join("pre.safetensors")).unwrap(), pre);
    // EX4: the small preset with GELU
    let o = run(&["small-gelu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_of(&o);
    assert_eq!(v["preset"], "small-gelu");
    assert_eq!(v["params"], 209_729);
    assert!(v["val_loss"].as_f64().unwrap() < v["initial_loss"].as_f64().unwrap());
}

// Chapter 8's presets: their sizes, their settings in the JSON, the schedule
// and clipping flags, bad values refused with a line that says what to do.
#[test]
fn gpt_presets_at_scale() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let quick = ["--eval-interval", "10", "--eval-iters", "2", "--json"];
    let mut args = vec![
        "gpt", "--preset", "small", "--steps", "20", "--tokens", "10",
    ];
    args.extend(quick);
    args.extend(["--save", "small.safetensors"]);
    let o = charlm(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_of(&o);
    assert_eq!(v["preset"], "small");
    assert_eq!(v["params"], 209_729);
    assert_eq!(v["config"]["lr_schedule"]["kind"], "constant");
    assert!(v["val_loss"].as_f64().unwrap() < v["initial_loss"].as_f64().unwrap());
    let mut args = vec!["gpt", "--preset", "small", "--steps", "30", "--tokens", "5"];
    args.extend(quick);
    args.extend(["--resume", "small.safetensors"]);
    let o = charlm(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["steps"], 30);
    let gen = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--checkpoint",
            "small.safetensors",
            "--tokens",
            "30",
        ];
        args.extend(extra);
        charlm(&args, d)
    };
    let o = gen(&["--temperature", "0.5", "--top-k", "5", "--prompt", "ROMEO:"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("ROMEO:"), "{}", stdout(&o));
    assert_eq!(stdout(&o).trim_end_matches('\n').chars().count(), 36);
    let again = gen(&["--temperature", "0.5", "--top-k", "5", "--prompt", "ROMEO:"]);
    assert_eq!(stdout(&o), stdout(&again), "the same seed, the same text");
    for (bad, says) in [
        (vec!["--temperature", "0"], "--temperature"),
        (vec!["--temperature", "-1"], "--temperature"),
        (vec!["--temperature", "inf"], "--temperature"),
        (vec!["--top-k", "0"], "--top-k"),
    ] {
        let o = gen(&bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(stderr(&o).contains(says), "{bad:?}: {}", stderr(&o));
    }
    // cpu: nanoGPT's settings, overridable
    let mut args = vec![
        "gpt", "--preset", "cpu", "--steps", "3", "--batch", "2", "--tokens", "0",
    ];
    args.extend(quick);
    args.extend(["--warmup", "1"]);
    let o = charlm(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
    let c = &json_of(&o)["config"];
    assert_eq!(c["lr_schedule"]["kind"], "cosine");
    assert_eq!(c["lr_schedule"]["warmup"], 1);
    assert_eq!(c["lr_schedule"]["min_lr"].as_f64(), Some(1e-4_f32 as f64));
    assert_eq!(c["grad_clip"].as_f64(), Some(1.0));
    assert_eq!(c["beta2"].as_f64(), Some(0.99_f32 as f64));
    // lecture: gpt.py's size, on a batch small enough for a test
    let mut args = vec!["gpt", "--preset", "lecture", "--steps", "1", "--batch", "1"];
    args.extend([
        "--block",
        "16",
        "--tokens",
        "5",
        "--eval-iters",
        "1",
        "--json",
    ]);
    let o = charlm(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_of(&o);
    assert_eq!(v["params"], 10_788_929);
    assert_eq!(v["config"]["dropout"].as_f64(), Some(0.2_f32 as f64));
    // on a CPU it reports its time a step and the process's peak memory:
    // at least the weights, their gradients and AdamW's two moments
    let per_step = v["seconds_per_step"].as_f64().unwrap();
    assert!(per_step > 0.0, "{v}");
    assert!(
        v["peak_memory"].as_u64().unwrap() > 4 * 4 * 10_788_929,
        "{v}"
    );
    let o = charlm(&args[..args.len() - 1], d); // the same run, for people
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("parameters       10788929"), "{out}");
    assert!(
        out.contains(" s a step)") && out.contains("memory           peak "),
        "{out}"
    );
    // bad values
    for (bad, says) in [
        (vec!["--min-lr", "1e-5"], "add --lr-schedule cosine"),
        (
            vec!["--lr-schedule", "cosine", "--min-lr", "1"],
            "--min-lr must be",
        ),
        (vec!["--grad-clip", "0"], "--grad-clip"),
        (vec!["--grad-clip", "nan"], "--grad-clip"),
        (vec!["--lr-schedule", "linear"], "--lr-schedule"),
    ] {
        let mut args = vec!["gpt", "--preset", "small", "--steps", "1"];
        args.extend(bad.iter().copied());
        let o = charlm(&args, d);
        assert!(!o.status.success(), "{bad:?} was accepted");
        let err = stderr(&o);
        assert!(err.contains(says), "{bad:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
