//! `charlm counts` (chapter 1): JSON, the figure, seeds, torch's generator.

use super::*;

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
        "counts --rng torch --seed 2147483647 --samples 5 --json",
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
    let o = charlm("counts --rng mt", Path::new("."));
    assert!(!o.status.success(), "an unknown generator is refused");
}
