//! `charlm bigram` (chapter 3): JSON, errors, save, resume, generate, Ctrl-C.

use super::*;

#[test]
fn bigram_json_and_errors() {
    let o = charlm(
        "bigram --json --steps 300 --eval-iters 20 --tokens 100",
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
    rejected("bigram --batch 0", d, "from 1 to 1000000000");
    rejected("bigram --lr nan", d, "must be a finite number > 0");
    rejected("bigram --lr -1", d, "must be a finite number > 0");
    rejected("bigram --eval-interval 0", d, "from 1 to");
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
        "generate --checkpoint end.safetensors --tokens 50 --prompt ROMEO:",
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("ROMEO:"), "{text}");
    assert_eq!(text.trim_end_matches('\n').chars().count(), 56, "{text:?}");
    let again = charlm(
        "generate --checkpoint end.safetensors --tokens 50 --prompt ROMEO:",
        d,
    );
    assert_eq!(stdout(&again), text, "same seed, same text");

    fs::write(d.join("junk.safetensors"), "junk").unwrap();
    fails(
        "generate --checkpoint end.safetensors --prompt café",
        d,
        "'é' at position 3",
    );
    fails(
        "generate --checkpoint nope.safetensors",
        d,
        "nope.safetensors",
    );
    fails(
        "generate --checkpoint junk.safetensors",
        d,
        "not a valid charlm checkpoint",
    );
    fails(
        "bigram --resume junk.safetensors",
        d,
        "not a valid charlm checkpoint",
    );
    // a failed run leaves an existing checkpoint as it was
    let before = fs::read(d.join("end.safetensors")).unwrap();
    fails(
        "bigram --data nope.txt --save end.safetensors",
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
