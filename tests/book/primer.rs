//! The primer, "Shapes, and reading dfdx": what each op's example prints,
//! the two-layer net's gradients against finite differences of its loss and
//! against the chain rule by hand, a run-time size mismatch that stops the
//! program, and the page's numbers file.

use charlm::dfdx::prelude::*;
use charlm::primer::{self, TwoLayer};

use super::common;

fn dev() -> Cpu {
    Cpu::default()
}

#[test]
fn book_numbers_are_current() {
    assert_eq!(common::assert_book_files_current(&primer::Primer), 1);
}

#[test]
fn reductions_and_broadcasts_go_along_the_axis_they_name() {
    let (row_sums, col_means, total) = primer::reduce(&dev());
    assert_eq!(row_sums.as_vec(), [6.0, 15.0]);
    assert_eq!(col_means.as_vec(), [2.5, 3.5, 4.5]);
    assert_eq!(total.array(), 21.0);
    let (p, rows, inferred) = primer::broadcast(&dev());
    let p = p.as_vec();
    for row in p.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{p:?}");
    }
    assert_eq!(rows.as_vec(), [0.1, 0.2, 0.3, 0.1, 0.2, 0.3]);
    assert_eq!(inferred.as_vec(), rows.as_vec());
}

#[test]
fn select_takes_an_entry_per_row_and_gather_takes_rows() {
    let (picked, rows, looked_up) = primer::select_gather(&dev());
    assert_eq!(picked.as_vec(), [0.2, 1.0, 2.1]);
    assert_eq!(rows.as_vec(), [2.0, 2.1, 2.2, 2.0, 2.1, 2.2, 0.0, 0.1, 0.2]);
    assert_eq!(*looked_up.shape(), (2, 2, 3));
    assert_eq!(&looked_up.as_vec()[9..], [1.0, 1.1, 1.2]); // idx[1][1] = 1
}

#[test]
fn reshape_keeps_the_order_and_permute_changes_it() {
    let [a, reshaped, transposed] = primer::reshape_permute(&dev());
    assert_eq!(reshaped.as_vec(), a.as_vec());
    assert_eq!(*transposed.shape(), (3, 2));
    assert_eq!(transposed.as_vec(), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let (right, both) = primer::slice_concat(&dev());
    assert_eq!(right.as_vec(), [2.0, 3.0, 5.0, 6.0]);
    assert_eq!(
        both.as_vec(),
        [1.0, 2.0, 3.0, 2.0, 3.0, 4.0, 5.0, 6.0, 5.0, 6.0]
    );
    let (y, x_shape, wei_shape) = primer::matmul(&dev());
    assert_eq!(y.as_vec(), [11.0, 14.0, 8.0, 10.0]);
    assert_eq!((x_shape, wei_shape), ([2, 5, 4], [2, 5, 5]));
}

#[test]
fn the_masked_softmax_averages_the_past() {
    let [lower, future, average] = primer::tri(&dev());
    assert_eq!(
        lower.as_vec(),
        [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    );
    assert_eq!(future.as_vec()[1], f32::NEG_INFINITY);
    let expect = [
        1.0,
        0.0,
        0.0,
        0.5,
        0.5,
        0.0,
        1.0 / 3.0,
        1.0 / 3.0,
        1.0 / 3.0,
    ];
    assert!(common::max_diff(&average.as_vec(), &expect) < 1e-6);
    let (fixed, refused) = primer::realize(&dev());
    assert_eq!(fixed.shape().0, 2);
    assert!(refused, "a width of 3 is not Const<4>");
}

// The tape examples: Σ w·w has gradient 2w; a matmul's weights get, row by
// row, the sum of the data's columns that met them.
#[test]
fn the_tape_examples_give_the_gradients_of_calculus() {
    assert_eq!(primer::retaped(&dev()).as_vec(), [3.0, 5.0, 7.0]);
    assert_eq!(
        primer::tape_left(&dev()).as_vec(),
        [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    );
}

/// The loss at the net's weights with one weight moved by `delta`:
/// `which` picks the tensor (W1, b1, W2, b2), `i` the element.
fn loss_moved(which: usize, i: usize, delta: f32) -> f64 {
    let dev = dev();
    let mut net = TwoLayer::new(&dev);
    let bump = |v: Vec<f32>| {
        let mut v = v;
        v[i] += delta;
        v
    };
    match which {
        0 => net.w1 = dev.tensor_from_vec(bump(net.w1.as_vec()), (Const, Const)),
        1 => net.b1 = dev.tensor_from_vec(bump(net.b1.as_vec()), (Const,)),
        2 => net.w2 = dev.tensor_from_vec(bump(net.w2.as_vec()), (Const, Const)),
        _ => net.b2 = dev.tensor_from_vec(bump(net.b2.as_vec()), (Const,)),
    }
    let (x, ys) = primer::two_layer_data(&dev);
    net.loss(x, &ys).array() as f64
}

// The tape's gradients are the slopes of the loss: moving each of the 30
// weights by ±h changes the loss by (gradient · 2h), to O(h²).
#[test]
fn two_layer_gradients_match_finite_differences() {
    let dev = dev();
    let net = TwoLayer::new(&dev);
    let (x, ys) = primer::two_layer_data(&dev);
    let (loss, grads) = primer::backward(&net, &x, &ys);
    assert!((loss - net.loss(x.clone(), &ys).array()).abs() < 1e-7);
    let h = 1e-2;
    let mut checked = 0;
    for (which, g) in grads.iter().enumerate() {
        for (i, &g) in g.iter().enumerate() {
            let slope = (loss_moved(which, i, h) - loss_moved(which, i, -h)) / (2.0 * h as f64);
            assert!(
                (slope - g as f64).abs() < 2e-4,
                "tensor {which}, element {i}: tape {g}, finite difference {slope}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12 + 4 + 8 + 2);
    // and the gradients are not all tiny (the check above would pass on zeros)
    let largest = grads.iter().flatten().fold(0f32, |m, g| m.max(g.abs()));
    assert!(largest > 0.05, "{largest}");
}

#[test]
fn the_chain_rule_by_hand_gives_the_tapes_gradients() {
    let dev = dev();
    let net = TwoLayer::new(&dev);
    let (x, ys) = primer::two_layer_data(&dev);
    let (_, tape) = primer::backward(&net, &x, &ys);
    let hand = primer::by_hand(&net, &x, &ys.as_vec());
    assert!(primer::max_diff(&tape, &hand) < 1e-6);
    // with another label, by hand differs: the comparison can fail
    let other = primer::by_hand(&net, &x, &[1, 1, 1, 0]);
    assert!(primer::max_diff(&tape, &other) > 1e-2);
}

#[test]
fn one_step_of_gradient_descent_lowers_the_loss() {
    let r = primer::NetReport::run(&dev());
    assert!(r.loss_after_step < r.loss - 0.01, "{r:?}");
    assert!(r.max_diff_by_hand < 1e-6);
}

// What the book contrasts with the compile-time error: with run-time sizes
// the same mismatched multiply compiles, and stops the program when it runs.
#[test]
fn a_run_time_size_mismatch_stops_the_program() {
    let dev = dev();
    let x: Tensor<(usize, usize), f32, Cpu> = dev.zeros_like(&(4, 32));
    let w: Tensor<(usize, usize), f32, Cpu> = dev.zeros_like(&(16, 8));
    let result = std::panic::catch_unwind(|| x.matmul(w));
    assert!(
        result.is_err(),
        "32 columns times 16 rows must not multiply"
    );
}

// The page quotes the compiler's message from a file `.ci/shape-error`
// writes and checks; the snippet it compiles is the one the page shows.
#[test]
fn the_shape_error_file_is_the_compilers_message_about_the_snippet() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("chapters/figures/primer");
    let snippet = std::fs::read_to_string(dir.join("shape_error.rs")).unwrap();
    let message = std::fs::read_to_string(dir.join("shape_error.txt")).unwrap();
    let first = message.lines().next().unwrap();
    assert!(first.starts_with("error[E0277]"), "{first}");
    assert!(
        first.contains("Tensor<(usize, dfdx::shapes::Const<32>)"),
        "{first}"
    );
    assert!(
        first.contains("(dfdx::shapes::Const<16>, dfdx::shapes::Const<8>)"),
        "{first}"
    );
    // it points at the snippet's line, as the snippet is today
    let at = message
        .lines()
        .find_map(|l| l.trim().strip_prefix("--> shape_error.rs:"))
        .unwrap();
    let line: usize = at.split(':').next().unwrap().parse().unwrap();
    let quoted = snippet.lines().nth(line - 1).unwrap();
    assert!(quoted.contains(".matmul(w)"), "line {line}: {quoted}");
    assert!(message.contains(quoted), "the message quotes line {line}");
    assert!(!message.contains("/root") && !message.contains("/home"));
}

// `charlm tour` runs the primer first: the net's losses and the check.
#[test]
fn the_tour_reports_the_net_and_passes_its_check() {
    use charlm::stages::Stage;
    let out = crate::tempfile::tempdir().unwrap();
    let none = |_: &str, _: usize| -> Box<dyn charlm::train::Watch> { Box::new(()) };
    let tour = primer::Primer
        .tour(common::data(), out.path(), &none)
        .unwrap();
    assert!(tour.failure.is_none(), "{:?}", tour.failure);
    assert!(
        tour.summary.starts_with("two-layer net    loss "),
        "{}",
        tour.summary
    );
    let r = primer::NetReport::run(&dev());
    assert_eq!(tour.report["loss"].as_f64().unwrap() as f32, r.loss);
    assert!(tour.figures.is_empty());
}
