//! `charlm attention` and `charlm head` (chapters 4 and 5).

use super::*;

#[test]
fn attention_json_reports_agreement_and_timings() {
    let o = charlm("attention --json", Path::new("."));
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
    let o = charlm("generate --checkpoint h.safetensors --tokens 30", d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim_end_matches('\n').chars().count(), 31);
    fails(
        "head --block 9",
        d,
        "--block 9 is longer than the head model's position table, which has 8 rows",
    );
    fails(
        "bigram --resume h.safetensors",
        d,
        "holds a head model, not a bigram model",
    );
}
