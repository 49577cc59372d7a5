//! Chapter 4: the mathematical trick in self-attention. Needs no data.

use charlm::models::attention_trick::*;
use charlm::ops::{composed, Kernels};
use charlm::stages::attention_trick::AttentionTrick;
use charlm::torch_rng::TorchGenerator;
use dfdx::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

#[test]
fn the_three_versions_agree() {
    let dev = Cpu::default();
    let mut rng = StdRng::seed_from_u64(1337);
    for shape in [(4, 8, 2), (3, 33, 17), (2, 64, 5)] {
        let x = randn(&dev, shape, &mut rng);
        let v1 = bag_of_words_loops(&x).unwrap();
        let v2 = bag_of_words_matmul(&x);
        let v3 = bag_of_words_softmax(&x);
        assert_eq!(*v1.shape(), shape);
        assert!(max_abs_diff(&v1, &v2) < 1e-6, "{shape:?}: v1 vs v2");
        assert!(max_abs_diff(&v1, &v3) < 1e-6, "{shape:?}: v1 vs v3");
        // row 0 is x's first row itself, the last row the mean of all of them
        let (xs, out) = (x.as_vec(), v1.as_vec());
        let (_, t, c) = shape;
        assert_eq!(&out[..c], &xs[..c]);
        let mean0: f32 = (0..t).map(|i| xs[i * c]).sum::<f32>() / t as f32;
        assert!((out[(t - 1) * c] - mean0).abs() < 1e-6);
    }
}

#[test]
fn each_row_of_the_weights_sums_to_one_and_ignores_the_future() {
    let dev = Cpu::default();
    for t in [1, 2, 8, 50] {
        for wei in [tril_average(&dev, t), softmax_average(&dev, t)] {
            let w = wei.as_vec();
            for row in 0..t {
                let sum: f32 = w[row * t..(row + 1) * t].iter().sum();
                assert!((sum - 1.0).abs() < 1e-6, "row {row} sums to {sum}");
                assert!(w[row * t + row + 1..(row + 1) * t]
                    .iter()
                    .all(|&v| v == 0.0));
                assert!(w[row * t..=row * t + row]
                    .iter()
                    .all(|&v| (v - 1.0 / (row + 1) as f32).abs() < 1e-6));
            }
        }
    }
}

#[test]
fn masking_hides_the_future() {
    let dev = Cpu::default();
    let mut rng = StdRng::seed_from_u64(3);
    let (b, t, c) = (2, 8, 3);
    let x = randn(&dev, (b, t, c), &mut rng);
    for at in 0..t - 1 {
        // change every value at time at + 1 and later
        let mut changed = x.as_vec();
        for bi in 0..b {
            for ti in at + 1..t {
                for ci in 0..c {
                    changed[(bi * t + ti) * c + ci] += 100.0;
                }
            }
        }
        let y = dev.tensor_from_vec(changed, (b, t, c));
        for f in [bag_of_words_matmul::<Cpu>, bag_of_words_softmax::<Cpu>] {
            let (before, after) = (f(&x).as_vec(), f(&y).as_vec());
            for bi in 0..b {
                for ti in 0..t {
                    let row = (bi * t + ti) * c;
                    let same = before[row..row + c] == after[row..row + c];
                    assert_eq!(same, ti <= at, "b {bi}, t {ti}, changed from {}", at + 1);
                }
            }
        }
    }
}

#[test]
fn the_lectures_small_demo() {
    let d = demo(&Cpu::default(), &mut TorchGenerator::new(42));
    // torch.manual_seed(42); torch.randint(0, 10, (3, 2)), as the video prints it
    assert_eq!(d.b, [[2.0, 7.0], [6.0, 4.0], [6.0, 5.0]]);
    assert_eq!(d.a, [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]);
    for col in 0..2 {
        let b: Vec<f32> = d.b.iter().map(|r| r[col]).collect();
        assert!(b
            .iter()
            .all(|&v| (0.0..10.0).contains(&v) && v.fract() == 0.0));
        assert_eq!(d.sums[0][col], b[0]);
        assert_eq!(d.sums[1][col], b[0] + b[1]);
        assert_eq!(d.sums[2][col], b[0] + b[1] + b[2]);
        assert!((d.means[2][col] - (b[0] + b[1] + b[2]) / 3.0).abs() < 1e-6);
    }
    assert!((d.a_mean[1][0] - 0.5).abs() < 1e-7);
}

// Chapter 4 quotes numbers and shows a figure written by `charlm figures`.
#[test]
fn book_figures_and_numbers_are_current() {
    let n = crate::common::assert_book_files_current(&AttentionTrick);
    assert_eq!(n, 2, "tril.svg, numbers.md");
}

// The step the lecture prints: zeros on and below the diagonal, −∞ above.
#[test]
fn the_masked_affinities_are_zero_in_the_past_and_minus_infinity_in_the_future() {
    let t = 8;
    let m = masked_affinities(&Cpu::default(), t).as_vec();
    for i in 0..t {
        for j in 0..t {
            let v = m[i * t + j];
            if j <= i {
                assert_eq!(v, 0.0, "({i}, {j})");
            } else {
                assert_eq!(v, f32::NEG_INFINITY, "({i}, {j})");
            }
        }
    }
}

#[test]
fn tril_matmul_equals_the_dense_batched_matmul_of_the_lower_triangle() {
    let dev = Cpu::default();
    let mut rng = StdRng::seed_from_u64(11);
    for (b, t, n) in [(1, 1, 1), (2, 3, 5), (3, 64, 7), (2, 65, 33), (1, 200, 9)] {
        let x = randn(&dev, (b, t, n), &mut rng); // (B, T, N)
                                                  // a full (T, T) matrix: the entries above the diagonal must be ignored
        let wei = randn(&dev, (1, t, t), &mut rng).reshape_like(&(t, t));
        let fused = <Cpu as Kernels>::tril_matmul(&wei, &x).as_vec();
        let dense = composed::tril_matmul(&wei, &x).as_vec();
        let diff = fused
            .iter()
            .zip(&dense)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-4, "(B, T, N) = ({b}, {t}, {n}): max diff {diff}");
        // row 0 of every sequence is wei[0, 0] * x[b, 0]
        let (w, xs) = (wei.as_vec(), x.as_vec());
        for bi in 0..b {
            let i = bi * t * n;
            assert!((fused[i] - w[0] * xs[i]).abs() < 1e-5);
        }
    }
}

// The video's toy x: torch.manual_seed(1337); x = torch.randn(4, 8, 2), and
// the first row of its running mean, as the video prints them.
#[test]
fn the_videos_toy_x_and_its_running_mean() {
    let x = TorchGenerator::new(1337).randn(4 * 8 * 2);
    let x = Cpu::default().tensor_from_vec(x, (4, 8, 2));
    let xbow = bag_of_words_loops(&x).unwrap().as_vec();
    let video_x = [0.1808, -0.0700, -0.3596, -0.9152, 0.6258, 0.0255];
    let video_xbow = [0.1808, -0.0700, -0.0894, -0.4926, 0.1490, -0.3199];
    let xs = x.as_vec();
    for i in 0..6 {
        assert!((xs[i] - video_x[i]).abs() < 1e-4, "x[0]: {:?}", &xs[..6]);
        assert!(
            (xbow[i] - video_xbow[i]).abs() < 1e-4,
            "xbow[0]: {:?}",
            &xbow[..6]
        );
    }
}
