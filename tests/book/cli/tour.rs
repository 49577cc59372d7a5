//! `charlm tour`, `--help`, and what every command does with bad input or
//! missing data.

use super::*;

#[test]
fn human_output_names_the_key_figures() {
    let o = charlm("counts", Path::new("."));
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
    assert_eq!(v["ladder"]["rungs"].as_array().map(Vec::len), Some(8));
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
    let o = charlm("counts --data dots.txt --figure keep.svg", dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(fs::read_to_string(&fig).unwrap(), "old figure");
}

#[test]
fn help_teaches() {
    let o = charlm("counts --help", Path::new("."));
    let out = stdout(&o);
    assert!(o.status.success());
    assert!(
        out.contains("negative log-likelihood") && out.contains("--smoothing"),
        "{out}"
    );
}
