//! `charlm onehot` (chapter 2): JSON and errors.

use super::*;

#[test]
fn onehot_json_and_errors() {
    let o = charlm(
        "onehot --json --forward lookup --steps 100 --samples 3",
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
    rejected("onehot --lr nan", here, "must be a finite number > 0");
    rejected("onehot --lr inf", here, "must be a finite number > 0");
    rejected("onehot --lr -50", here, "must be a finite number > 0");
    rejected("onehot --lr 0", here, "must be a finite number > 0");
    fails("onehot --reg -1", here, "regularisation strength");
    fails("onehot --forward lookup --lr 1e30", here, "at step 1");
    #[cfg(not(feature = "cuda"))]
    fails("onehot --device cuda", here, "built without CUDA support");
}
