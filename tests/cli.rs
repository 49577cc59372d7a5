//! The `charlm` command line: JSON output, figures, and bad input giving a
//! one-line error and a non-zero exit, never a panic.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn charlm(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_charlm"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the charlm binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs charlm expecting failure: exit code 1, one line on stderr, no panic.
fn fails(args: &[&str], cwd: &Path, needle: &str) {
    let o = charlm(args, cwd);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: one line: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in {err}"
    );
}

/// Runs charlm expecting clap to refuse a flag's value: exit code 2, an
/// `error: invalid value` line naming `needle` (the accepted range), no panic.
fn rejected(args: &[&str], cwd: &Path, needle: &str) {
    let o = charlm(args, cwd);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: invalid value"), "{args:?}: {err}");
    assert!(
        first.contains(needle),
        "{args:?}: expected {needle:?} in {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn counts_json_is_the_last_line_and_figure_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let fig = dir.path().join("figs/heatmap.png");
    let o = charlm(
        &[
            "counts",
            "--json",
            "--samples",
            "5",
            "--figure",
            fig.to_str().unwrap(),
        ],
        Path::new("."),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let last = out.trim_end().lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["words"], 32_033);
    assert_eq!(v["bigrams"], 228_146);
    assert_eq!(v["vocab_size"], 27);
    assert_eq!(format!("{:.4}", v["nll"].as_f64().unwrap()), "2.4546");
    assert_eq!(v["samples"].as_array().unwrap().len(), 5);
    let png = fs::read(&fig).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 10_000, "a real image, {} bytes", png.len());
}

#[test]
fn counts_seed_controls_samples() {
    let run = |seed: &str| {
        let o = charlm(&["counts", "--json", "--seed", seed], Path::new("."));
        let v: serde_json::Value =
            serde_json::from_str(stdout(&o).trim_end().lines().last().unwrap()).unwrap();
        v["samples"].clone()
    };
    assert_eq!(run("1"), run("1"));
    assert_ne!(run("1"), run("2"));
}

// `--rng torch` replays torch's generator: the lecture's seed samples the
// names the video printed.
#[test]
fn counts_on_torchs_generator_prints_the_videos_names() {
    let o = charlm(
        &[
            "counts",
            "--rng",
            "torch",
            "--seed",
            "2147483647",
            "--samples",
            "5",
            "--json",
        ],
        Path::new("."),
    );
    assert!(o.status.success());
    let v: serde_json::Value =
        serde_json::from_str(stdout(&o).trim_end().lines().last().unwrap()).unwrap();
    assert_eq!(v["rng"], "torch");
    assert_eq!(
        v["samples"],
        serde_json::json!(["mor", "axx", "minaymoryles", "kondlaisah", "anchshizarie"])
    );
    let o = charlm(&["counts", "--rng", "mt"], Path::new("."));
    assert!(!o.status.success(), "an unknown generator is refused");
}

#[test]
fn human_output_names_the_key_figures() {
    let o = charlm(&["counts"], Path::new("."));
    assert!(o.status.success());
    let out = stdout(&o);
    for needle in [
        "words            32033",
        "bigrams          228146",
        "nll (k = 1)      2.4546",
    ] {
        assert!(out.contains(needle), "{needle:?} in\n{out}");
    }
}

#[test]
fn tour_writes_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let o = charlm(
        &["tour", "--json", "--out", dir.path().to_str().unwrap()],
        Path::new("."),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(stdout(&o).trim_end().lines().last().unwrap()).unwrap();
    assert_eq!(v["bigram_counts"]["words"], 32_033);
    assert!(v["bigram_onehot"]["loss"].as_f64().unwrap() < 2.50);
    assert!(v["bigram_embedding"]["val_loss"].as_f64().unwrap() <= 2.52);
    assert_eq!(v["parity"]["passed"], v["parity"]["comparisons"]);
    assert_eq!(v["parity"]["comparisons"], 54);
    assert_eq!(v["ladder"]["rungs"].as_array().map(Vec::len), Some(6));
    // chapter 8: a short run of the small preset learns
    assert_eq!(v["gpt"]["steps"], 500);
    assert!(
        v["gpt"]["val_loss"].as_f64().unwrap() < v["gpt"]["initial_loss"].as_f64().unwrap() - 1.0
    );
    // chapter 8's exercises: the heads agree, a short run on sums trains
    let ex = &v["gpt_exercises"];
    assert!(ex["ex1_out_diff"].as_f64().unwrap() < 1e-5);
    assert!(ex["ex1_grad_diff"].as_f64().unwrap() < 1e-4);
    assert_eq!(ex["ex2_steps"], 300);
    let evals = ex["ex2_evals"].as_array().unwrap();
    assert!(evals[1]["val"].as_f64().unwrap() < evals[0]["val"].as_f64().unwrap() - 0.5);
    // EX3 and EX4, short: every run's loss falls from its start
    for key in [
        "ex3_scratch_evals",
        "ex3_finetuned_evals",
        "ex4_relu_evals",
        "ex4_gelu_evals",
    ] {
        let e = ex[key].as_array().unwrap();
        let (first, last) = (&e[0]["val"], &e[e.len() - 1]["val"]);
        assert!(
            last.as_f64().unwrap() < first.as_f64().unwrap() - 0.3,
            "{key}: {e:?}"
        );
    }
    assert!(ex["ex3_pretrained_val"].as_f64().unwrap() > 0.0);
    for f in ["heads.png", "loss-ch6.svg", "loss-ch7.png"] {
        let p = dir.path().join("ladder").join(f);
        assert!(
            fs::metadata(&p).map(|m| m.len() > 1000).unwrap_or(false),
            "{}",
            p.display()
        );
    }
    for f in [
        "heatmap.svg",
        "heatmap.png",
        "heatmap-corner.svg",
        "heatmap-corner.png",
        "first-row.svg",
        "first-row.png",
    ] {
        let p = dir.path().join("bigram_counts").join(f);
        assert!(
            fs::metadata(&p).map(|m| m.len() > 1000).unwrap_or(false),
            "{}",
            p.display()
        );
    }
}

#[test]
fn bad_input_gives_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("empty.txt"), "").unwrap();
    fs::write(d.join("latin1.txt"), b"emma\nzo\xeb\n").unwrap();
    fs::write(d.join("dots.txt"), "emma\nj.r\n").unwrap();
    fs::write(d.join("ok.txt"), "emma\nava\n").unwrap();
    let p = |n: &str| d.join(n).to_string_lossy().into_owned();
    fails(&["counts", "--data", &p("nope.txt")], d, "no such file");
    fails(&["counts", "--data", &p("empty.txt")], d, "empty");
    fails(&["counts", "--data", &p("latin1.txt")], d, "not UTF-8 text");
    fails(&["counts", "--data", &p("dots.txt")], d, "reserved");
    fails(
        &["counts", "--data", &p("ok.txt"), "--smoothing", "-1"],
        d,
        "smoothing",
    );
    fails(
        &["counts", "--data", &p("ok.txt"), "--smoothing", "NaN"],
        d,
        "smoothing",
    );
    fails(
        &["counts", "--data", &p("ok.txt"), "--figure", &p("fig.jpg")],
        d,
        "unknown figure format",
    );
    assert!(!d.join("fig.jpg").exists());
}

#[test]
fn missing_data_says_where_to_put_it() {
    // An empty working folder, no CHARLM_DATA_DIR, and a download mirror that
    // does not answer: the download fails and the message says what to do.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_charlm"))
        .args(["counts"])
        .current_dir(dir.path())
        .env_remove("CHARLM_DATA_DIR")
        .env("CHARLM_DATA_URL", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Put names.txt in ./data or set CHARLM_DATA_DIR"),
        "{err}"
    );
    assert!(!dir.path().join("data/names.txt").exists());
}

#[test]
fn existing_figure_survives_a_failed_run() {
    let dir = tempfile::tempdir().unwrap();
    let fig = dir.path().join("keep.svg");
    fs::write(&fig, "old figure").unwrap();
    fs::write(dir.path().join("dots.txt"), "a.b\n").unwrap();
    let o = charlm(
        &["counts", "--data", "dots.txt", "--figure", "keep.svg"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(fs::read_to_string(&fig).unwrap(), "old figure");
}

#[test]
fn help_teaches() {
    let o = charlm(&["counts", "--help"], Path::new("."));
    let out = stdout(&o);
    assert!(o.status.success());
    assert!(
        out.contains("negative log-likelihood") && out.contains("--smoothing"),
        "{out}"
    );
}

#[test]
fn onehot_json_and_errors() {
    let o = charlm(
        &[
            "onehot",
            "--json",
            "--forward",
            "lookup",
            "--steps",
            "100",
            "--samples",
            "3",
        ],
        Path::new("."),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(stdout(&o).trim_end().lines().last().unwrap()).unwrap();
    assert_eq!(v["steps"], 100);
    assert_eq!(v["pairs"], 228_146);
    assert!(v["loss"].as_f64().unwrap() < 2.50, "{v}");
    assert!(v["nll"].as_f64().unwrap() < v["loss"].as_f64().unwrap());
    assert!(v["seconds_per_step"].as_f64().unwrap() > 0.0);
    assert_eq!(v["samples"].as_array().unwrap().len(), 3);
    let here = Path::new(".");
    rejected(
        &["onehot", "--lr", "nan"],
        here,
        "must be a finite number > 0",
    );
    rejected(
        &["onehot", "--lr", "inf"],
        here,
        "must be a finite number > 0",
    );
    rejected(
        &["onehot", "--lr", "-50"],
        here,
        "must be a finite number > 0",
    );
    rejected(
        &["onehot", "--lr", "0"],
        here,
        "must be a finite number > 0",
    );
    fails(&["onehot", "--reg", "-1"], here, "regularisation strength");
    fails(
        &["onehot", "--forward", "lookup", "--lr", "1e30"],
        here,
        "at step 1",
    );
    #[cfg(not(feature = "cuda"))]
    fails(
        &["onehot", "--device", "cuda"],
        here,
        "built without CUDA support",
    );
}

#[test]
fn bigram_json_and_errors() {
    let o = charlm(
        &[
            "bigram",
            "--json",
            "--steps",
            "300",
            "--eval-iters",
            "20",
            "--tokens",
            "100",
        ],
        Path::new("."),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(stdout(&o).trim_end().lines().last().unwrap()).unwrap();
    assert_eq!(v["steps"], 300);
    assert_eq!(v["vocab"], 65);
    let (initial, train, val) = (
        v["initial_loss"].as_f64().unwrap(),
        v["train_loss"].as_f64().unwrap(),
        v["val_loss"].as_f64().unwrap(),
    );
    assert!(train < initial - 0.5 && val < initial - 0.5, "{v}");
    assert!(v["steps_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(v["sample"].as_str().unwrap().chars().count(), 101);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("empty.txt"), "").unwrap();
    fs::write(d.join("latin1.txt"), b"to be or not to b\xe9\n").unwrap();
    fs::write(d.join("other.txt"), "to be or not to be\n").unwrap();
    let all65 = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    fs::write(d.join("short.txt"), all65).unwrap();
    let p = |n: &str| d.join(n).to_string_lossy().into_owned();
    fails(&["bigram", "--data", &p("empty.txt")], d, "empty");
    fails(&["bigram", "--data", &p("latin1.txt")], d, "not UTF-8 text");
    // 19 characters leave 2 tokens of validation data (any vocabulary is fine)
    fails(
        &["bigram", "--data", &p("other.txt")],
        d,
        "block size 8 is too large for the val split of 2 tokens",
    );
    // 65 characters leave 7 tokens of validation data: a block of 8 cannot fit
    fails(
        &["bigram", "--data", &p("short.txt")],
        d,
        "block size 8 is too large",
    );
    rejected(&["bigram", "--batch", "0"], d, "from 1 to 1000000000");
    rejected(&["bigram", "--lr", "nan"], d, "must be a finite number > 0");
    rejected(&["bigram", "--lr", "-1"], d, "must be a finite number > 0");
    rejected(&["bigram", "--eval-interval", "0"], d, "from 1 to");
}

fn json_of(o: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(o).trim_end().lines().last().unwrap()).unwrap()
}

#[test]
fn bigram_save_resume_and_generate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let quick = [
        "--eval-iters",
        "10",
        "--eval-interval",
        "100",
        "--tokens",
        "20",
        "--json",
    ];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = ["bigram"]
            .iter()
            .chain(extra)
            .chain(&quick)
            .copied()
            .collect();
        let o = charlm(&args, d);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        json_of(&o)
    };
    let whole = run(&["--steps", "400"]);
    let half = run(&["--steps", "200", "--save", "half.safetensors"]);
    assert_eq!(half["steps"], 200);
    let resumed = run(&[
        "--resume",
        "half.safetensors",
        "--steps",
        "400",
        "--save",
        "end.safetensors",
    ]);
    assert_eq!(resumed["steps"], 400);
    assert_eq!(
        resumed["train_loss"], whole["train_loss"],
        "resume = one run"
    );
    assert_eq!(resumed["val_loss"], whole["val_loss"]);
    assert!(resumed["untrained_sample"].is_null());

    let o = charlm(
        &[
            "generate",
            "--checkpoint",
            "end.safetensors",
            "--tokens",
            "50",
            "--prompt",
            "ROMEO:",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("ROMEO:"), "{text}");
    assert_eq!(text.trim_end_matches('\n').chars().count(), 56, "{text:?}");
    let again = charlm(
        &[
            "generate",
            "--checkpoint",
            "end.safetensors",
            "--tokens",
            "50",
            "--prompt",
            "ROMEO:",
        ],
        d,
    );
    assert_eq!(stdout(&again), text, "same seed, same text");

    fs::write(d.join("junk.safetensors"), "junk").unwrap();
    fails(
        &[
            "generate",
            "--checkpoint",
            "end.safetensors",
            "--prompt",
            "café",
        ],
        d,
        "'é' at position 3",
    );
    fails(
        &["generate", "--checkpoint", "nope.safetensors"],
        d,
        "nope.safetensors",
    );
    fails(
        &["generate", "--checkpoint", "junk.safetensors"],
        d,
        "not a valid charlm checkpoint",
    );
    fails(
        &["bigram", "--resume", "junk.safetensors"],
        d,
        "not a valid charlm checkpoint",
    );
    // a failed run leaves an existing checkpoint as it was
    let before = fs::read(d.join("end.safetensors")).unwrap();
    fails(
        &["bigram", "--data", "nope.txt", "--save", "end.safetensors"],
        d,
        "nope.txt: no such file",
    );
    assert_eq!(fs::read(d.join("end.safetensors")).unwrap(), before);
}

#[cfg(unix)]
#[test]
fn ctrl_c_saves_a_checkpoint_that_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let child = Command::new(env!("CARGO_BIN_EXE_charlm"))
        .args([
            "bigram",
            "--steps",
            "100000000",
            "--eval-iters",
            "5",
            "--save",
            "cut.safetensors",
        ])
        .current_dir(d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    // where it stands goes to a new file; --save keeps the best estimate's model
    assert!(
        err.contains("SIGINT (Ctrl-C) stopped training at step")
            && err.contains("--resume bigram-interrupted.safetensors")
            && err.contains("the best model so far (val ")
            && err.contains(") is in cut.safetensors"),
        "{err}"
    );
    let read = |name: &str| charlm::train::checkpoint::read_meta(&d.join(name)).unwrap();
    let (meta, vocab) = read("bigram-interrupted.safetensors");
    assert!(meta.step > 0 && meta.step < 100_000_000);
    assert_eq!(vocab.len(), 65);
    let (best, _) = read("cut.safetensors");
    assert!(
        best.step > 0 && best.step <= meta.step && best.step % 300 == 0,
        "{}",
        best.step
    );
    for name in ["cut.safetensors", "bigram-interrupted.safetensors"] {
        let o = charlm(&["generate", "--checkpoint", name, "--tokens", "10"], d);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let more = (meta.step + 10).to_string();
    let args = [
        "bigram",
        "--resume",
        "bigram-interrupted.safetensors",
        "--steps",
        &more,
        "--json",
    ];
    let o = charlm(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["steps"].as_u64(), Some(meta.step as u64 + 10));
}

#[test]
fn attention_json_reports_agreement_and_timings() {
    let o = charlm(&["attention", "--json"], Path::new("."));
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_of(&o);
    assert_eq!(v["shape"], serde_json::json!([32, 256, 384]));
    for key in ["max_abs_diff_v1_v2", "max_abs_diff_v1_v3"] {
        assert!(v[key].as_f64().unwrap() < 1e-5, "{key}: {v}");
    }
    for key in ["seconds_v1", "seconds_v2", "seconds_v3"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}: {v}");
    }
}

#[test]
fn head_trains_saves_and_generates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = [
        "head",
        "--steps",
        "300",
        "--eval-iters",
        "10",
        "--tokens",
        "20",
        "--save",
        "h.safetensors",
        "--json",
    ];
    let o = charlm(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_of(&o);
    assert_eq!(v["steps"], 300);
    assert!(
        v["val_loss"].as_f64().unwrap() < v["initial_loss"].as_f64().unwrap() - 0.5,
        "{v}"
    );
    let o = charlm(
        &[
            "generate",
            "--checkpoint",
            "h.safetensors",
            "--tokens",
            "30",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim_end_matches('\n').chars().count(), 31);
    fails(
        &["head", "--block", "9"],
        d,
        "--block 9 is longer than the head model's position table, which has 8 rows",
    );
    fails(
        &["bigram", "--resume", "h.safetensors"],
        d,
        "holds a head model, not a bigram model",
    );
}

#[test]
fn parity_prints_every_comparison_and_all_pass() {
    let o = charlm(&["parity", "--json"], Path::new("."));
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_of(&o);
    assert_eq!(v["failed"], 0, "{v}");
    let rows = v["comparisons"].as_array().unwrap();
    assert_eq!(rows.len(), 54);
    assert!(rows.iter().all(|r| r["passes"] == true));
    assert!(v["torch"].as_str().unwrap().starts_with('2'), "{v}");
    let o = charlm(&["parity"], Path::new("."));
    let out = stdout(&o);
    assert!(out.contains("| bigram_counts | NLL, summed in float32 as the lecture does | 1 | 0 | bit for bit | ✓ |"), "{out}");
    assert!(
        out.contains("54 of 54 comparisons within tolerance"),
        "{out}"
    );
}

#[test]
fn bench_times_a_workload_and_rejects_bad_flags() {
    let o = charlm(
        &[
            "bench",
            "--workload",
            "lookup-step",
            "--workload",
            "counts",
            "--samples",
            "2",
            "--sample-ms",
            "1",
            "--threads",
            "2",
            "--json",
        ],
        Path::new("."),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_of(&o);
    assert_eq!(v["threads"], 2);
    let timings = v["timings"].as_array().unwrap();
    assert_eq!(timings.len(), 2);
    assert_eq!(timings[0]["workload"], "lookup-step");
    assert_eq!(timings[1]["workload"], "counts");
    for t in timings {
        assert_eq!(t["threads"], 2);
        assert_eq!(t["seconds"].as_array().unwrap().len(), 2);
        let (best, median) = (
            t["best_s"].as_f64().unwrap(),
            t["median_s"].as_f64().unwrap(),
        );
        assert!(best > 0.0 && best <= median, "{t}");
    }
    rejected(
        &["bench", "--threads", "0"],
        Path::new("."),
        "from 1 to 1024",
    );
    rejected(
        &["bench", "--samples", "0"],
        Path::new("."),
        "from 1 to 1000",
    );
    // an unknown workload is clap's usage error (exit 2), naming the choices
    let o = charlm(&["bench", "--workload", "nope"], Path::new("."));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("head-step"), "{}", stderr(&o));
}

#[path = "shared/any_text.rs"]
mod shared;

#[path = "shared/tempfile.rs"]
mod tempfile;

#[cfg(unix)]
#[path = "cli/promises.rs"]
mod promises;

#[path = "cli/resume.rs"]
mod resume;

// The vocabulary comes from the data: the language models (bigram, head and
// chapter 8's small GPT) train on a text of 90 characters (accents, Greek,
// dashes, curly quotes), save it in their checkpoints, resume, and generate
// from prompts in it.
#[test]
fn any_text_trains_saves_resumes_and_generates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("any.txt"), shared::any_text()).unwrap();
    let commands: [&[&str]; 3] = [&["bigram"], &["head"], &["gpt", "--preset", "small"]];
    for command in commands {
        let model = command.last().copied().unwrap();
        let save = format!("{model}.safetensors");
        let quick = [
            "--data",
            "any.txt",
            "--eval-iters",
            "20",
            "--tokens",
            "30",
            "--json",
        ];
        let mut args = command.to_vec();
        args.extend(["--steps", "400", "--save", &save]);
        args.extend(quick);
        let o = charlm(&args, d);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        let v = json_of(&o);
        assert!(v["vocab"].as_u64().unwrap() > 80, "{v}");
        let (initial, val) = (
            v["initial_loss"].as_f64().unwrap(),
            v["val_loss"].as_f64().unwrap(),
        );
        assert!(val < initial - 0.8, "{model}: {initial} -> {val}");
        if command.len() == 1 {
            // `train --model` is the same command
            let mut args = vec!["train", "--model", model, "--steps", "400"];
            args.extend(quick);
            let o = charlm(&args, d);
            assert!(o.status.success(), "{model}: {}", stderr(&o));
            assert_eq!(json_of(&o)["val_loss"], v["val_loss"], "{model}");
        }
        // resumed for 100 more steps
        let mut args = command.to_vec();
        args.extend(["--resume", &save, "--steps", "500"]);
        args.extend(quick);
        let o = charlm(&args, d);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        assert_eq!(json_of(&o)["steps"], 500);
        // generated from a prompt of characters only this text has
        let prompt = "Ωμέγα “café” — ";
        let args = [
            "generate",
            "--checkpoint",
            &save,
            "--prompt",
            prompt,
            "--tokens",
            "40",
        ];
        let o = charlm(&args, d);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        let text = stdout(&o);
        assert!(text.starts_with(prompt), "{text}");
        let n = text.trim_end_matches('\n').chars().count();
        assert!(n >= prompt.chars().count() + 39, "{model}: {text:?}");
        fails(
            &["generate", "--checkpoint", &save, "--prompt", "日本"],
            d,
            "character '日' at position 0 is not in the vocabulary",
        );
    }
    // an unknown model is clap's usage error (exit 2), naming the choices
    let o = charlm(&["train", "--model", "gpt-7"], d);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown model; choose from bigram, head"),
        "{}",
        stderr(&o)
    );
}

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
    let o = charlm(
        &[
            "bigram",
            "--resume",
            "best.safetensors",
            "--steps",
            "300",
            "--json",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["val_loss"], v["val_loss"]);
    // the log is checked as --save is
    fails(
        &[
            "bigram",
            "--steps",
            "10",
            "--save",
            "x.safetensors",
            "--json-log",
            "x.safetensors",
        ],
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
    let o = charlm(
        &[
            "generate",
            "--checkpoint",
            "ln.safetensors",
            "--tokens",
            "20",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = charlm(&["gpt", "--preset", "nope"], d);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "choose from head, multihead, ffwd, blocks, layernorm, dropout, small, cpu, lecture, small-gelu"
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
    assert_eq!(out.lines().count(), 8, "{out}");
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
