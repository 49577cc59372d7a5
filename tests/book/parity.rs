//! Appendix: parity with PyTorch. charlm runs every stage from the inputs
//! the lecture's PyTorch code started from (parity/ref/*.safetensors) and
//! must match what PyTorch computed (parity/ref/*.json) within the stated
//! tolerances. Needs names.txt and tinyshakespeare.txt (CHARLM_DATA_DIR or
//! ./data); never Python.

use charlm::parity::{markdown_table, Comparison};
use charlm::stages::attention_trick::{check_attention_trick, TrickInputs};
use charlm::stages::bigram::{check_embedding, EmbeddingInputs};
use charlm::stages::counts::check_counts;
use charlm::stages::head::{check_head, HeadInputs};
use charlm::stages::onehot::{check_onehot, OneHotInputs};
use charlm::stages::parity::Parity;
use dfdx::prelude::*;

use crate::common::{self, text, words};

/// Every comparison passes, and the expected quantities are all there.
fn assert_all_pass(comparisons: &[Comparison], expected: &[&str]) {
    let failed: Vec<_> = comparisons.iter().filter(|c| !c.passes()).collect();
    assert!(failed.is_empty(), "{}", markdown_table(comparisons));
    for name in expected {
        assert!(
            comparisons.iter().any(|c| c.quantity.contains(name)),
            "no comparison of {name:?}:\n{}",
            markdown_table(comparisons)
        );
    }
}

fn find<'a>(comparisons: &'a [Comparison], quantity: &str) -> &'a Comparison {
    comparisons
        .iter()
        .find(|c| c.quantity == quantity)
        .unwrap_or_else(|| panic!("no comparison {quantity:?}"))
}

#[test]
fn counts_and_the_float32_loss_match_pytorch_bit_for_bit() {
    let all = check_counts(words()).unwrap();
    assert_all_pass(&all, &["N, the 27×27 counts", "NLL, summed in float32"]);
    let nll = find(&all, "NLL, summed in float32 as the lecture does");
    assert_eq!(nll.tolerance, 0.0);
    assert_eq!(format!("{:.4}", nll.torch[0]), "2.4544"); // the lecture's number
    assert_eq!(find(&all, "N, the 27×27 counts").torch.len(), 729);
}

#[test]
fn onehot_training_follows_pytorch_for_100_steps() {
    let dev = Cpu::default();
    let all = check_onehot(&dev, words(), &OneHotInputs::reference().unwrap()).unwrap();
    let mut expected = Vec::new();
    for forward in ["one-hot", "lookup"] {
        for what in [
            "loss before training",
            "loss after 1 step",
            "loss after 10 steps",
            "loss after 100 steps",
            "∂loss/∂W before training",
            "W after 100 steps",
        ] {
            expected.push(format!("{forward}: {what}"));
        }
    }
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_all_pass(&all, &expected);
    for c in all.iter().filter(|c| c.quantity.contains("loss")) {
        assert!(
            c.tolerance <= 1e-4,
            "{}: tolerance {}",
            c.quantity,
            c.tolerance
        );
    }
    // the lecture's code: 3.7686 at the start, 2.4900 after 100 updates
    let start = find(&all, "one-hot: loss before training");
    assert_eq!(format!("{:.4}", start.charlm[0]), "3.7686");
    let end = find(&all, "one-hot: loss after 100 steps");
    assert_eq!(format!("{:.4}", end.charlm[0]), "2.4900");
}

#[test]
fn onehot_check_fails_from_other_weights() {
    // The check is only as good as its power to fail: start from a W that
    // differs in one weight by 0.01 and the trajectories part.
    let dev = Cpu::default();
    let mut inputs = OneHotInputs::reference().unwrap();
    inputs.w[5] += 0.01;
    let all = check_onehot(&dev, words(), &inputs).unwrap();
    let first = find(&all, "one-hot: ∂loss/∂W before training");
    assert!(!first.passes(), "max diff {}", first.max_abs_diff());
    assert!(!find(&all, "lookup: W after 100 steps").passes());
}

#[test]
fn embedding_bigram_follows_pytorch_through_100_adamw_steps() {
    let dev = Cpu::default();
    let inputs = EmbeddingInputs::reference().unwrap();
    assert_eq!(inputs.offsets.len(), 100);
    assert!(inputs.offsets.iter().all(|row| row.len() == 32));
    let all = check_embedding(&dev, text(), &inputs).unwrap();
    assert_all_pass(
        &all,
        &[
            "loss of batch 1 (after 0 AdamW steps)",
            "loss of batch 100 (after 99 AdamW steps)",
            "all 100 batch losses",
            "loss of batch 1 after 100 steps",
            "the table after 100 steps",
        ],
    );
    let losses = find(&all, "all 100 batch losses");
    assert_eq!(losses.charlm.len(), 100);
    // training really moves: the first batch's loss falls
    let after = find(&all, "loss of batch 1 after 100 steps").charlm[0];
    assert!(
        after < losses.charlm[0] - 0.5,
        "{} -> {after}",
        losses.charlm[0]
    );
}

#[test]
fn embedding_check_fails_on_other_batches() {
    let dev = Cpu::default();
    let mut inputs = EmbeddingInputs::reference().unwrap();
    inputs.offsets[0][0] += 1; // one block of the first batch shifted by a character
    let all = check_embedding(&dev, text(), &inputs).unwrap();
    assert!(!find(&all, "loss of batch 1 (after 0 AdamW steps)").passes());
    // and an offset past the end of the split is an error, not a panic
    inputs.offsets[0][0] = usize::MAX / 2;
    let err = check_embedding(&dev, text(), &inputs).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

#[test]
fn attention_trick_matches_pytorch_to_1e_5() {
    let dev = Cpu::default();
    let inputs = TrickInputs::reference().unwrap();
    assert_eq!(inputs.shape, (4, 8, 32));
    let all = check_attention_trick(&dev, &inputs).unwrap();
    assert_all_pass(
        &all,
        &["v1, loops", "v2, tril matmul", "v3, masked softmax"],
    );
    assert!(all
        .iter()
        .all(|c| c.tolerance == 1e-5 && c.torch.len() == 4 * 8 * 32));
    let mut moved = inputs.clone();
    moved.x[8 * 32 - 1] += 1e-3; // the last token of the first row
    let all = check_attention_trick(&dev, &moved).unwrap();
    assert!(all.iter().all(|c| !c.passes()));
}

#[test]
fn one_head_forward_and_gradients_match_pytorch_to_1e_5() {
    let dev = Cpu::default();
    let inputs = HeadInputs::reference().unwrap();
    let all = check_head(&dev, &inputs).unwrap();
    assert_all_pass(
        &all,
        &[
            "out = wei @ v",
            "wei",
            "∂loss/∂key",
            "∂loss/∂query",
            "∂loss/∂value",
            "∂loss/∂x",
        ],
    );
    assert!(all.iter().all(|c| c.tolerance == 1e-5));
    // a head whose key and query are swapped computes other weights
    let swapped = HeadInputs {
        key: inputs.query.clone(),
        query: inputs.key.clone(),
        ..inputs
    };
    let all = check_head(&dev, &swapped).unwrap();
    assert!(!find(&all, "wei, the attention weights").passes());
}

#[test]
fn comparisons_fail_on_nan_length_and_bits() {
    let c = |torch: Vec<f32>, charlm: Vec<f32>, tolerance: f32| Comparison {
        stage: "test",
        quantity: "x".into(),
        torch,
        charlm,
        tolerance,
    };
    assert!(c(vec![1.0, 2.0], vec![1.0, 2.0 + 1e-6], 1e-5).passes());
    assert!(!c(vec![1.0, 2.0], vec![1.0, 2.0 + 1e-4], 1e-5).passes());
    assert!(!c(vec![1.0], vec![f32::NAN], 1e-5).passes());
    assert!(!c(vec![1.0], vec![1.0, 1.0], 1e-5).passes());
    assert!(!c(vec![1.0], vec![1.0 + f32::EPSILON], 0.0).passes()); // bit for bit
    assert!(c(vec![f32::INFINITY], vec![f32::INFINITY], 0.0).passes());
}

#[test]
fn book_parity_table_is_current() {
    assert_eq!(common::assert_book_files_current(&Parity), 1);
}

#[test]
fn every_stage_checks_in_and_all_54_pass() {
    let all = charlm::parity::check_all(common::data()).unwrap();
    assert_eq!(all.len(), 54);
    assert!(all.iter().all(|c| c.passes()), "{}", markdown_table(&all));
    let stages: Vec<&str> = charlm::stages::ALL.iter().map(|s| s.id()).collect();
    for c in &all {
        assert!(stages.contains(&c.stage), "{} names no stage", c.stage);
    }
}

#[test]
fn speed_table_is_the_output_of_one_side_by_side_run() {
    // chapters/figures/speed/ is written by `python3 parity/bench.py` from one
    // run; the table quoted by the book must be that run's, not hand edits.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("chapters/figures/speed");
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bench.json")).unwrap()).unwrap();
    let numbers = std::fs::read_to_string(dir.join("numbers.md")).unwrap();
    let rows = raw["rows"].as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["workload"].as_str().unwrap())
        .collect();
    let all: Vec<&str> = charlm::bench::all().iter().map(|w| w.name).collect();
    assert_eq!(names, all, "every workload, in order");
    for r in rows {
        let (torch, charlm) = (
            r["torch_s"].as_f64().unwrap(),
            r["charlm_s"].as_f64().unwrap(),
        );
        let ratio = r["ratio"].as_f64().unwrap();
        assert!((ratio - charlm / torch).abs() < 1e-9, "{r}");
        // the best time is the smallest of that side's samples, at its thread count
        for (side, best) in [("torch", torch), ("charlm", charlm)] {
            let threads = &r[format!("{side}_threads")];
            let samples: Vec<f64> = raw["samples"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| {
                    s["side"] == side && s["workload"] == r["workload"] && &s["threads"] == threads
                })
                .flat_map(|s| {
                    s["seconds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap())
                })
                .collect();
            assert!(!samples.is_empty());
            assert_eq!(
                samples.iter().copied().fold(f64::INFINITY, f64::min),
                best,
                "{r}"
            );
        }
        let row = format!("(`{}`)", r["workload"].as_str().unwrap());
        let line = numbers
            .lines()
            .find(|l| l.contains(&row))
            .unwrap_or_else(|| panic!("{row} not in the table"));
        assert!(line.contains(&format!("| {ratio:.3} |")), "{line}");
    }
    for anchor in ["table", "date", "machine", "versions", "method"] {
        assert!(numbers.contains(&format!("ANCHOR: {anchor}\n")), "{anchor}");
    }
}

#[test]
fn the_ladder_matches_pytorch_and_fails_when_moved() {
    use charlm::stages::ladder::parity::{check_ladder, LadderInputs};
    let dev = Cpu::default();
    let inputs = LadderInputs::reference().unwrap();
    let all = check_ladder(&dev, text(), &inputs).unwrap();
    assert_all_pass(
        &all,
        &[
            "layernorm rung: all 100 batch losses",
            "block: out",
            "block: ∂loss/∂x",
            "block: ∂loss/∂sa.query",
            "block: ∂loss/∂ffwd.0.weight",
            "LayerNorm: out",
            "LayerNorm: ∂loss/∂x",
            "LayerNorm: ∂loss/∂gamma",
            "LayerNorm: ∂loss/∂beta",
        ],
    );
    assert_eq!(all.len(), 19);
    // other weights: the losses and the block's numbers move
    let mut moved = inputs.clone();
    moved.weights.get_mut("blocks.0.sa.query").unwrap()[5] += 0.05;
    let all = check_ladder(&dev, text(), &moved).unwrap();
    assert!(!find(&all, "layernorm rung: all 100 batch losses").passes());
    assert!(!find(&all, "block: ∂loss/∂sa.key").passes());
    assert!(
        find(&all, "LayerNorm: out").passes(),
        "LayerNorm alone is unaffected"
    );
    // another LayerNorm input: its four comparisons fail
    let mut moved = inputs.clone();
    moved.ln[2][7] += 1e-2;
    let all = check_ladder(&dev, text(), &moved).unwrap();
    assert!(!find(&all, "LayerNorm: out").passes());
    assert!(!find(&all, "LayerNorm: ∂loss/∂x").passes());
    // a missing weight is an error that names it
    let mut missing = inputs;
    missing.weights.remove("ln_f.gamma");
    let err = check_ladder(&dev, text(), &missing).unwrap_err();
    assert!(
        err.to_string().contains("no tensor \"ln_f.gamma\""),
        "{err}"
    );
}

#[test]
fn the_small_gpt_matches_pytorch_and_fails_when_moved() {
    use charlm::stages::gpt::parity::{check_gpt, GptInputs};
    let dev = Cpu::default();
    let inputs = GptInputs::reference().unwrap();
    let all = check_gpt(&dev, text(), &inputs).unwrap();
    let (logits, first, every) = (
        "small preset: logits of the initial model, 2 rows of batch 1",
        "small preset: batch losses 1 to 20 (AdamW from PyTorch's weights)",
        "small preset: all 100 batch losses, to twice PyTorch's own spread on 1 and 2 threads",
    );
    assert_all_pass(&all, &[logits, first, every]);
    assert_eq!(all.len(), 3);
    assert_eq!(find(&all, first).tolerance, 1e-4);
    let spread = find(&all, every).tolerance;
    assert!(
        spread > 1e-4 && spread < 1e-2,
        "PyTorch's own spread: {spread}"
    );
    // another weight: the logits and the losses move
    let mut moved = inputs.clone();
    moved.weights.get_mut("blocks.2.ffwd.0.weight").unwrap()[9] += 0.05;
    let all = check_gpt(&dev, text(), &moved).unwrap();
    assert!(!find(&all, logits).passes());
    assert!(!find(&all, first).passes());
    // another batch: the losses move, the logits of batch 1's first rows do not
    let mut moved = inputs.clone();
    moved.offsets[0][3] += 1;
    let all = check_gpt(&dev, text(), &moved).unwrap();
    assert!(find(&all, logits).passes());
    assert!(!find(&all, first).passes());
    // a missing weight is an error that names it
    let mut missing = inputs;
    missing.weights.remove("blocks.3.sa.value");
    let err = check_gpt(&dev, text(), &missing).unwrap_err();
    assert!(
        err.to_string().contains("no tensor \"blocks.3.sa.value\""),
        "{err}"
    );
}
