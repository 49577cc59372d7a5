//! `charlm parity` and `charlm bench`.

use super::*;

#[test]
fn parity_prints_every_comparison_and_all_pass() {
    let o = charlm("parity --json", Path::new("."));
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_of(&o);
    assert_eq!(v["failed"], 0, "{v}");
    let rows = v["comparisons"].as_array().unwrap();
    assert_eq!(rows.len(), 54);
    assert!(rows.iter().all(|r| r["passes"] == true));
    assert!(v["torch"].as_str().unwrap().starts_with('2'), "{v}");
    let o = charlm("parity", Path::new("."));
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
        "bench --workload lookup-step --workload counts --samples 2 --sample-ms 1 --threads 2 --json",
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
    rejected("bench --threads 0", Path::new("."), "from 1 to 1024");
    rejected("bench --samples 0", Path::new("."), "from 1 to 1000");
    // an unknown workload is clap's usage error (exit 2), naming the choices
    let o = charlm("bench --workload nope", Path::new("."));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("head-step"), "{}", stderr(&o));
}
