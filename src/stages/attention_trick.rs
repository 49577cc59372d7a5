//! Chapter 4: the mathematical trick in self-attention. The causal average
//! three ways at the size of gpt.py's attention (what `charlm attention` runs),
//! the chapter's figure and numbers, the check against the lecture's three
//! versions, and the four workloads that time them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};

use super::{dev_err, json, matrix_block, BookNumbers, Progress, Stage, StageError, Tour};
use crate::bench::{Iteration, Workload};
use crate::data::DataSets;
use crate::models::attention_trick::{
    bag_of_words_loops, bag_of_words_matmul, bag_of_words_softmax, demo, masked_affinities,
    max_abs_diff, randn, softmax_average, tril_average, Btc,
};
use crate::ops::{composed, Kernels};
use crate::parity::{compare, ref_file, Comparison, RefError};
use crate::plot::{Figure, ProbMatrix};
use crate::torch_rng::TorchGenerator;

/// The stage's id: its book files are in `chapters/figures/attention_trick`.
pub const ID: &str = "attention_trick";

/// Chapter 4's timing size: gpt.py's T = 256 and C = 384, with a batch of
/// B = 32 (gpt.py's is 64), small enough for version 1's loops.
pub const LECTURE_SHAPE: (usize, usize, usize) = (32, 256, 384);

/// Chapter 4 in the registry.
pub struct AttentionTrick;

impl Stage for AttentionTrick {
    fn id(&self) -> &'static str {
        ID
    }

    fn heading(&self) -> &'static str {
        "Chapter 4: the mathematical trick in self-attention"
    }

    fn tour(&self, _: &DataSets, out: &Path, _: Progress) -> Result<Tour, StageError> {
        let report = run_attention(&Cpu::default(), LECTURE_SHAPE, 1337)?;
        Ok(Tour {
            summary: report.summary(),
            report: json(&report),
            figures: save_figures(&out.join(ID), &["svg", "png"])?,
            failure: None,
        })
    }

    fn write_book_files(&self, _: &DataSets, dir: &Path) -> Result<(), StageError> {
        write_book_files(dir)
    }

    fn parity(&self, _: &DataSets) -> Result<Vec<Comparison>, StageError> {
        check_attention_trick(&Cpu::default(), &TrickInputs::reference()?)
    }

    fn workloads(&self) -> Vec<Workload> {
        vec![
            Workload {
                name: "attention-v1",
                about: "chapter 4, version 1: the causal average by loops, at B=32, T=256, C=384",
                prepare: |_| prepare_version(1),
            },
            Workload {
                name: "attention-v2",
                about: "chapter 4, version 2: by a lower-triangular matmul",
                prepare: |_| prepare_version(2),
            },
            Workload {
                name: "attention-v3",
                about: "chapter 4, version 3: by softmax of a masked matrix, then a matmul",
                prepare: |_| prepare_version(3),
            },
            Workload {
                name: "attention-v2-dense",
                about: "chapter 4, version 2 computed densely as PyTorch does (dfdx's batched matmul, zeros included): the two libraries' matrix multiplies compared",
                prepare: |_| prepare_version(0),
            },
        ]
    }
}

/// One iteration of version `v` (0: version 2, dense) at the lecture's size.
fn prepare_version(v: u8) -> Result<Iteration<'static>, StageError> {
    let dev = Cpu::default();
    let x = randn(&dev, LECTURE_SHAPE, &mut ChaCha12Rng::seed_from_u64(1337)); // (B, T, C)
    Ok(Box::new(move || {
        let out = match v {
            1 => bag_of_words_loops(&x)?,
            2 => bag_of_words_matmul(&x),
            3 => bag_of_words_softmax(&x),
            _ => composed::tril_matmul(&tril_average(&dev, x.shape().1), &x),
        }; // (B, T, C)
        std::hint::black_box(out);
        Ok(())
    }))
}

/// The key figures of `charlm attention`: the three versions of the causal
/// average at one size, how far apart they are, and how long each took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttentionReport {
    /// (B, T, C).
    pub shape: (usize, usize, usize),
    /// Largest |v1 − v2|.
    pub max_abs_diff_v1_v2: f32,
    /// Largest |v1 − v3|.
    pub max_abs_diff_v1_v3: f32,
    /// Version 1 (loops), seconds.
    pub seconds_v1: f64,
    /// Version 2 (tril matmul), seconds.
    pub seconds_v2: f64,
    /// Version 3 (softmax of masked zeros, matmul), seconds.
    pub seconds_v3: f64,
}

/// Runs chapter 4's three versions on a standard normal input of `shape`
/// drawn with `seed`.
pub fn run_attention<D: Kernels>(
    dev: &D,
    shape: (usize, usize, usize),
    seed: u64,
) -> Result<AttentionReport, StageError> {
    let x = randn(dev, shape, &mut ChaCha12Rng::seed_from_u64(seed)); // (B, T, C)
    let timed = |f: &dyn Fn() -> Result<Btc<D>, StageError>| -> Result<(Btc<D>, f64), StageError> {
        let start = std::time::Instant::now();
        let out = f()?;
        Ok((out, start.elapsed().as_secs_f64()))
    };
    let (v1, seconds_v1) = timed(&|| Ok(bag_of_words_loops(&x)?))?;
    let (v2, seconds_v2) = timed(&|| Ok(bag_of_words_matmul(&x)))?;
    let (v3, seconds_v3) = timed(&|| Ok(bag_of_words_softmax(&x)))?;
    Ok(AttentionReport {
        shape,
        max_abs_diff_v1_v2: max_abs_diff(&v1, &v2),
        max_abs_diff_v1_v3: max_abs_diff(&v1, &v3),
        seconds_v1,
        seconds_v2,
        seconds_v3,
    })
}

impl AttentionReport {
    /// Human-readable summary, as `charlm attention` prints it.
    pub fn summary(&self) -> String {
        let (b, t, c) = self.shape;
        let mut s = String::new();
        let _ = writeln!(s, "input            x of shape (B, T, C) = ({b}, {t}, {c})");
        let _ = writeln!(s, "v1 loops         {:>10.3} ms", self.seconds_v1 * 1e3);
        let _ = writeln!(
            s,
            "v2 tril matmul   {:>10.3} ms   max |v1 - v2| = {:.2e}",
            self.seconds_v2 * 1e3,
            self.max_abs_diff_v1_v2
        );
        let _ = writeln!(
            s,
            "v3 softmax       {:>10.3} ms   max |v1 - v3| = {:.2e}",
            self.seconds_v3 * 1e3,
            self.max_abs_diff_v1_v3
        );
        s
    }
}

/// Writes chapter 4's figure and quoted numbers into `dir`: the small demo,
/// the three versions' agreement, and the averaging matrix.
fn write_book_files(dir: &Path) -> Result<(), StageError> {
    let dev = Cpu::default();
    let mut numbers = BookNumbers::default();
    let mut put = |name: &str, value: String| numbers.put(name, value);
    // The video's numbers: torch's generator replayed, seeded as the lecture
    // seeds it before each example.
    let d = demo(&dev, &mut TorchGenerator::new(42)); // torch.manual_seed(42)
    let sums = [
        matrix_block("a", &d.a),
        matrix_block("b", &d.b),
        matrix_block("a @ b", &d.sums),
    ];
    put("demo_sums", format!("```text\n{}```", sums.join("")));
    let means = [
        matrix_block("a", &d.a_mean),
        matrix_block("b", &d.b),
        matrix_block("a @ b", &d.means),
    ];
    put("demo_means", format!("```text\n{}```", means.join("")));
    let (b, t, c) = LECTURE_SHAPE;
    put("lecture_shape", format!("B = {b}, T = {t}, C = {c}"));
    put(
        "lecture_batch",
        crate::presets::LECTURE.config.batch_size.to_string(),
    );
    let (b, t, c) = (4, 8, 2);
    put("toy_shape", format!("B, T, C = {b}, {t}, {c}"));
    // torch.manual_seed(1337); x = torch.randn(B, T, C)
    let x = dev.tensor_from_vec(TorchGenerator::new(1337).randn(b * t * c), (b, t, c)); // (B, T, C)
    let v1 = bag_of_words_loops(&x)?;
    let (v2, v3) = (bag_of_words_matmul(&x), bag_of_words_softmax(&x));
    put("diff_v1_v2", format!("{:.1e}", max_abs_diff(&v1, &v2)));
    put("diff_v1_v3", format!("{:.1e}", max_abs_diff(&v1, &v3)));
    let (xs, ys) = (x.as_vec(), v1.as_vec());
    let mut first = String::from("```text\n  t   x[0, t]              xbow[0, t]\n");
    for i in 0..t {
        let _ = writeln!(
            first,
            "  {i}   [{:7.4}, {:7.4}]   [{:7.4}, {:7.4}]",
            xs[c * i],
            xs[c * i + 1],
            ys[c * i],
            ys[c * i + 1]
        );
    }
    first.push_str("```");
    put("first_row", first);
    // Version 3 step by step, as the lecture prints it for T = 8.
    let rows = |m: Vec<f32>| m.chunks(8).map(<[f32]>::to_vec).collect::<Vec<_>>();
    let tril = dev.ones_like(&(8, 8)).lower_tri(0).as_vec(); // (8, 8)
    put(
        "tril",
        format!("```text\n{}```", matrix_block("tril", &rows(tril))),
    );
    let masked = masked_affinities(&dev, 8).as_vec(); // (8, 8)
    put(
        "masked",
        format!("```text\n{}```", matrix_block("wei", &rows(masked))),
    );
    let wei = softmax_average(&dev, 8).as_vec(); // (8, 8)
    put(
        "wei",
        format!("```text\n{}```", matrix_block("wei", &rows(wei))),
    );
    save_figures(dir, &["svg"])?;
    numbers.write(dir)
}

/// Chapter 4's figure: the (8, 8) averaging matrix.
pub fn save_figures(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, StageError> {
    let wei = tril_average(&Cpu::default(), 8).as_vec();
    let wei: Vec<f64> = wei.iter().map(|&w| w as f64).collect();
    let labels: Vec<char> = ('0'..='7').collect();
    let mut written = Vec::new();
    for ext in extensions {
        let path = dir.join(format!("tril.{ext}"));
        ProbMatrix {
            title: "wei: each row averages the tokens up to it".to_string(),
            values: &wei,
            chars: &labels,
        }
        .save(&path)?;
        written.push(path);
    }
    Ok(written)
}

#[derive(Deserialize)]
struct TrickRef {
    shape: [usize; 3],
    v1: Vec<f32>,
    v2: Vec<f32>,
    v3: Vec<f32>,
}

/// The input of chapter 4's check: `x = torch.randn(B, T, C)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrickInputs {
    /// (B, T, C).
    pub shape: (usize, usize, usize),
    /// x, row-major.
    pub x: Vec<f32>,
}

impl TrickInputs {
    /// PyTorch's x.
    pub fn reference() -> Result<Self, RefError> {
        let r: TrickRef = ref_file!("attention_trick.json").json()?;
        let [b, t, c] = r.shape;
        let x = ref_file!("attention_trick.safetensors")
            .tensors()?
            .floats("x", &[b, t, c])?;
        Ok(Self {
            shape: (b, t, c),
            x,
        })
    }
}

/// Chapter 4: the three versions of the causal average of PyTorch's x.
pub fn check_attention_trick<D: Kernels>(
    dev: &D,
    inputs: &TrickInputs,
) -> Result<Vec<Comparison>, StageError> {
    const STAGE: &str = ID;
    let r: TrickRef = ref_file!("attention_trick.json").json()?;
    let x = dev
        .try_tensor_from_vec(inputs.x.clone(), inputs.shape)
        .map_err(dev_err)?; // (B, T, C)
    Ok(vec![
        compare(
            STAGE,
            "v1, loops",
            r.v1,
            bag_of_words_loops(&x)?.as_vec(),
            1e-5,
        ),
        compare(
            STAGE,
            "v2, tril matmul",
            r.v2,
            bag_of_words_matmul(&x).as_vec(),
            1e-5,
        ),
        compare(
            STAGE,
            "v3, masked softmax",
            r.v3,
            bag_of_words_softmax(&x).as_vec(),
            1e-5,
        ),
    ])
}
