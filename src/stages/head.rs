//! Chapter 5: one head of self-attention and a language model on it (what
//! `charlm head` runs), the chapter's figures and numbers, the check of one
//! head's output and gradients against PyTorch's, and the head workload.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde::Deserialize;

use super::attention_trick::LECTURE_SHAPE;
use super::bigram::run_bigram;
use super::{dev_err, json, label, BookNumbers, Progress, Stage, StageError, Tour};
use crate::bench::{Iteration, Workload};
use crate::data::DataSets;
use crate::models::attention_trick::randn;
use crate::models::head::{scaling_stats, softmax_sharpening, Head, LectureHead, Weights};
use crate::models::LanguageModel;
use crate::ops::Kernels;
use crate::parity::{compare, ref_file, Comparison, RefError};
use crate::plot::{Figure, ProbMatrix, TrainCurves};
use crate::torch_rng::TorchGenerator;
use crate::train::session::{self, Session, Settings};
use crate::train::{Eval, Watch};

/// The stage's id: its book files are in `chapters/figures/self_attention_head`.
pub const ID: &str = "self_attention_head";

/// The head size of the `head-step` workload.
pub const WORKLOAD_HEAD_SIZE: usize = 64;

/// Steps, learning rate and estimate interval of chapter 5's main run: the
/// lecture's settings for this model (gpt.py's with one head of size 32:
/// 5,000 steps at 1e-3, an estimate every 500), the ladder's `head` rung.
pub const LONG_STEPS: usize = crate::presets::LADDER.max_iters;
/// See [`LONG_STEPS`].
pub const LONG_LR: f32 = crate::presets::LADDER.learning_rate;
/// See [`LONG_STEPS`].
pub const LONG_EVAL_INTERVAL: usize = crate::presets::LADDER.eval_interval;

/// A finished session of the one-head model.
pub type HeadRun<D> = Session<D, LectureHead<D>>;

/// Chapter 5 in the registry.
pub struct OneHead;

impl Stage for OneHead {
    fn id(&self) -> &'static str {
        ID
    }

    fn heading(&self) -> &'static str {
        "Chapter 5: one head of self-attention (tiny Shakespeare)"
    }

    fn tour(&self, data: &DataSets, out: &Path, progress: Progress) -> Result<Tour, StageError> {
        let (dev, text) = (Cpu::default(), data.text()?);
        let steps = Settings::default().config.max_iters;
        let head = run_head(
            &dev,
            text,
            &mut *progress("one head of self-attention", steps),
        )?;
        let bigram = run_bigram(
            &dev,
            text,
            &mut *progress("the bigram model again, for the figure beside it", steps),
        )?; // for the comparison
        let curves = [
            ("bigram", &bigram.train.history.evals[..]),
            ("one head", &head.train.history.evals[..]),
        ];
        let (_, figures) = save_figures(&head, &curves, &out.join(ID), &["svg", "png"])?;
        Ok(Tour {
            summary: head.summary(),
            report: json(&head.report),
            figures,
            failure: None,
        })
    }

    fn write_book_files(&self, data: &DataSets, dir: &Path) -> Result<(), StageError> {
        write_book_files(data.text()?, dir)
    }

    fn parity(&self, _: &DataSets) -> Result<Vec<Comparison>, StageError> {
        check_head(&Cpu::default(), &HeadInputs::reference()?)
    }

    fn workloads(&self) -> Vec<Workload> {
        vec![Workload {
            name: "head-step",
            about: "chapter 5: one head (size 64) forward and backward at B=32, T=256, C=384",
            prepare: |_| prepare_step(),
        }]
    }
}

/// Trains the lecture's one-head model on `text` with chapter 3's settings:
/// the whole of chapter 5.
pub fn run_head<D: Kernels>(
    dev: &D,
    text: &str,
    watch: &mut (impl Watch + ?Sized),
) -> Result<HeadRun<D>, StageError> {
    Ok(session::run(dev, text, &Settings::default(), None, watch)?)
}

/// The lecture's settings for the one-head model: chapter 3's (batch 32,
/// block 8, seed 1337) with [`LONG_STEPS`] steps at [`LONG_LR`], an estimate
/// every [`LONG_EVAL_INTERVAL`] steps.
pub fn lecture_settings() -> Settings {
    Settings {
        config: crate::presets::LADDER,
        ..Settings::default()
    }
}

/// Trains the one-head model on `text` as the lecture trains it
/// ([`lecture_settings`]): chapter 5's main run.
pub fn run_lecture_head<D: Kernels>(
    dev: &D,
    text: &str,
    watch: &mut (impl Watch + ?Sized),
) -> Result<HeadRun<D>, StageError> {
    Ok(session::run(dev, text, &lecture_settings(), None, watch)?)
}

/// One forward and backward pass of a head of size 64 at the lecture's size.
fn prepare_step() -> Result<Iteration<'static>, StageError> {
    let dev = Cpu::default();
    let mut rng = ChaCha12Rng::seed_from_u64(1337);
    let (b, t, c) = LECTURE_SHAPE;
    let head: Head<384, WORKLOAD_HEAD_SIZE, f32, Cpu> = Head::new(&dev, &mut rng)?;
    let x = randn(&dev, (b, t, c), &mut rng).as_vec();
    let x = dev
        .try_tensor_from_vec(x, (b, t, Const::<384>))
        .map_err(dev_err)?; // (B, T, C)
    Ok(Box::new(move || {
        let (out, _) = head.forward_with_weights(x.clone().traced(Gradients::leaky())); // (B, T, 64)
        std::hint::black_box(out.sum().backward()); // ∂/∂x, key, query, value
        Ok(())
    }))
}

/// The video's "version 4" sizes: B, T, C.
pub const VIDEO_SHAPE: (usize, usize, usize) = (4, 8, 32);

/// The video's head size for version 4 and the scaling experiment.
pub const VIDEO_HEAD_SIZE: usize = 16;

/// The video's "version 4": self-attention on random x by an untrained head,
/// before the scale is introduced, drawn from `g` as the lecture draws it
/// after `torch.manual_seed(1337)`: `x = torch.randn(B, T, C)`, then
/// `key`, `query`, `value = nn.Linear(C, head_size, bias=False)` in that
/// order, then `wei = softmax(masked q @ kᵀ)`. Returns wei, (B, T, T).
pub fn video_version4<D: Device<f32>>(
    dev: &D,
    g: &mut TorchGenerator,
) -> Result<Weights<D>, StageError> {
    const C: usize = VIDEO_SHAPE.2;
    const H: usize = VIDEO_HEAD_SIZE;
    let (b, t, c) = VIDEO_SHAPE;
    let x = dev
        .try_tensor_from_vec(g.randn(b * t * c), (b * t, Const::<C>))
        .map_err(dev_err)?; // (B·T, C)
                            // nn.Linear's weight is (H, C); x @ weightᵀ is key(x)
    type Weight<D> = Tensor<Rank2<C, H>, f32, D>;
    let mut linear = || -> Result<Weight<D>, StageError> {
        let w = dev
            .try_tensor_from_vec(g.linear_weight(H, c), (Const::<H>, Const::<C>))
            .map_err(dev_err)?; // (H, C)
        Ok(w.permute::<_, Axes2<1, 0>>()) // (C, H)
    };
    let (key, query, _value) = (linear()?, linear()?, linear()?);
    let k = x.clone().matmul(key).reshape_like(&(b, t, Const::<H>)); // (B, T, H)
    let q = x.matmul(query).reshape_like(&(b, t, Const::<H>)); // (B, T, H)
    let scores = q.matmul(k.permute::<_, Axes3<0, 2, 1>>()); // (B, T, T)
    let scores = scores.reshape_like(&(b, t, t)); // (B, T, T) with run-time sizes
    Ok(crate::ops::composed::causal_softmax(scores, 1.0)) // (B, T, T)
}

/// Writes chapter 5's figures and quoted numbers into `dir`: the video's
/// version 4 and the scaling experiment, the one-head model trained with the
/// lecture's settings (the main run), the one-head and the bigram model with
/// chapter 3's, and the main run's attention weights on one real sequence.
fn write_book_files(text: &str, dir: &Path) -> Result<(), StageError> {
    let dev = Cpu::default();
    let mut numbers = BookNumbers::default();
    let mut put = |name: &str, value: String| numbers.put(name, value);
    // The video's cells, torch's generator replayed: version 4 on random x
    // (before the scale), then the scaling experiment, which draws on.
    let mut g = TorchGenerator::new(1337); // torch.manual_seed(1337)
    let wei = video_version4(&dev, &mut g)?;
    let (b, t, c) = VIDEO_SHAPE;
    put("v4_shape", format!("B, T, C = {b}, {t}, {c}"));
    put("v4_head_size", VIDEO_HEAD_SIZE.to_string());
    let first: Vec<Vec<f32>> = wei.as_vec()[..t * t]
        .chunks(t)
        .map(<[f32]>::to_vec)
        .collect();
    put(
        "v4_wei0",
        format!("```text\n{}```", super::matrix_block("wei[0]", &first)),
    );
    let s = scaling_stats(&dev, &mut g, (b, t, VIDEO_HEAD_SIZE));
    put("var_k", format!("{:.4}", s.k));
    put("var_q", format!("{:.4}", s.q));
    put("var_raw", format!("{:.4}", s.raw));
    put("var_scaled", format!("{:.4}", s.scaled));
    let sharpen = 8.0;
    put("sharpen", format!("{sharpen}"));
    let (soft, sharp) = softmax_sharpening(&[0.1, -0.2, 0.3, -0.2, 0.5], sharpen);
    let show = |v: &[f32]| {
        v.iter()
            .map(|p| format!("{p:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    put("softmax", format!("[{}]", show(&soft)));
    put("softmax_x8", format!("[{}]", show(&sharp)));

    let (c, h, block) = LectureHead::<Cpu>::SIZES;
    put(
        "sizes",
        format!("{c} channels, head size {h}, {block} positions"),
    );
    put("block", block.to_string());
    // The main run: the lecture's settings for this model.
    let lecture = run_lecture_head(&dev, text, &mut ())?;
    let c = lecture_settings().config;
    put(
        "lecture_settings",
        format!(
            "{} steps of AdamW at learning rate {:e}, batches of {} blocks of {} tokens, \
             the loss estimated on {} batches of each split every {} steps, seed {}",
            c.max_iters,
            c.learning_rate,
            c.batch_size,
            c.block_size,
            c.eval_iters,
            c.eval_interval,
            lecture_settings().seed
        ),
    );
    let mut table = String::from("| step | train loss | val loss |\n|---:|---:|---:|\n");
    for e in &lecture.train.history.evals {
        let _ = writeln!(table, "| {} | {:.4} | {:.4} |", e.step, e.train, e.val);
    }
    put("lecture_evals", table.trim_end().to_string());
    put("long_steps", LONG_STEPS.to_string());
    put("long_lr", format!("{LONG_LR:e}"));
    put("long_interval", LONG_EVAL_INTERVAL.to_string());
    put("long_val", format!("{:.4}", lecture.report.val_loss));
    put("long_train", format!("{:.4}", lecture.report.train_loss));
    put(
        "long_initial",
        format!("{:.4}", lecture.report.initial_loss),
    );
    // The lecture's number for this model.
    let lecture_val = crate::presets::named("head").lecture_val;
    put(
        "lecture_val",
        lecture_val.map_or("-".into(), |v| format!("{v:.1}")),
    );
    put(
        "sample",
        format!("```text\n{}\n```", lecture.report.sample.trim()),
    );

    // The secondary runs: chapter 3's settings, the one-head model against
    // the bigram model step for step.
    let chapter3 = Settings::default();
    put(
        "settings",
        format!(
            "{} steps of AdamW at learning rate {:e}, seed {}",
            chapter3.config.max_iters, chapter3.config.learning_rate, chapter3.seed
        ),
    );
    let head = run_head(&dev, text, &mut ())?;
    let bigram = run_bigram(&dev, text, &mut ())?;
    let mut table = String::from("| step | bigram: val loss | one head: train loss | one head: val loss |\n|---:|---:|---:|---:|\n");
    for (b, h) in bigram
        .train
        .history
        .evals
        .iter()
        .zip(&head.train.history.evals)
    {
        let _ = writeln!(
            table,
            "| {} | {:.4} | {:.4} | {:.4} |",
            h.step, b.val, h.train, h.val
        );
    }
    put("evals", table.trim_end().to_string());
    put("head_val", format!("{:.4}", head.report.val_loss));
    put("bigram_val", format!("{:.4}", bigram.report.val_loss));
    put("head_initial", format!("{:.4}", head.report.initial_loss));

    // The weights figure in words (the main run's head): where each row
    // (after the first, which can only listen to itself) puts its largest
    // weight.
    let (_, wei) = trained_weights(&lecture)?;
    let (mut itself, mut previous, mut further) = (0, 0, 0);
    for (i, j) in (1..8).zip(largest_weights(&wei)) {
        match i - j {
            0 => itself += 1,
            1 => previous += 1,
            _ => further += 1,
        }
    }
    put("rows_itself", itself.to_string());
    put("rows_previous", previous.to_string());
    put("rows_further", further.to_string());
    let reading = if previous + further == 0 {
        format!("all {itself} put their largest weight on their own token")
    } else {
        format!(
            "{itself} put their largest weight on their own token, {previous} on the \
             token just before, and {further} further back"
        )
    };
    put("rows_reading", reading);
    let top = wei.iter().skip(8).cloned().fold(0.0, f64::max);
    put("top_weight", format!("{top:.2}"));
    let curves = [
        (
            "one head, the lecture's settings",
            &lecture.train.history.evals[..],
        ),
        (
            "one head, chapter 3's settings",
            &head.train.history.evals[..],
        ),
        (
            "bigram, chapter 3's settings",
            &bigram.train.history.evals[..],
        ),
    ];
    let (sequence, _) = save_figures(&lecture, &curves, dir, &["svg"])?;
    put("sequence", format!("\"{}\"", sequence.replace('\n', "\\n")));
    numbers.write(dir)
}

/// The sequence chapter 5 shows (8 tokens of the validation text) and the
/// trained head's attention weights on it, row-major (8, 8).
fn trained_weights<D: Kernels>(head: &HeadRun<D>) -> Result<(Vec<usize>, Vec<f64>), StageError> {
    let seq: Vec<usize> = head.corpus.val[1000..1008].to_vec();
    let dev = head.model.device().clone();
    let x = dev
        .try_tensor_from_vec(seq.clone(), (1, 8))
        .map_err(dev_err)?; // (1, 8)
    let (_, wei) = head.model.forward_with_weights(x)?; // (1, 8, 8)
    Ok((seq, wei.as_vec().iter().map(|&w| w as f64).collect()))
}

/// The head chapter's figures: the loss curves of `curves` (label, loss
/// estimates), and the attention weights of `head`, trained, on one
/// validation sequence (returned).
pub fn save_figures<D: Kernels>(
    head: &HeadRun<D>,
    curves: &[(&str, &[Eval])],
    dir: &Path,
    extensions: &[&str],
) -> Result<(String, Vec<PathBuf>), StageError> {
    let c = &head.corpus;
    let (seq, wei) = trained_weights(head)?;
    let text = c.vocab.decode(&seq);
    let chars: Vec<char> = text.chars().map(label).collect();
    let mut written = Vec::new();
    for ext in extensions {
        let (loss, weights) = (
            dir.join(format!("loss.{ext}")),
            dir.join(format!("weights.{ext}")),
        );
        TrainCurves {
            title: "one head of self-attention vs the bigram (val and train estimates)",
            step_losses: &[],
            runs: curves
                .iter()
                .map(|&(name, evals)| (name.to_string(), evals))
                .collect(),
        }
        .save(&loss)?;
        ProbMatrix {
            title: "trained head: row attends to column".to_string(),
            values: &wei,
            chars: &chars,
        }
        .save(&weights)?;
        written.extend([loss, weights]);
    }
    Ok((text, written))
}

#[derive(Deserialize)]
struct HeadRef {
    shape: [usize; 3],
    head_size: usize,
    out: Vec<f32>,
    wei: Vec<f32>,
    grad_key: Vec<f32>,
    grad_query: Vec<f32>,
    grad_value: Vec<f32>,
    grad_x: Vec<f32>,
}

/// The channels of chapter 5's check (the lecture's C = 32).
pub const HEAD_CHECK_C: usize = 32;
/// Its head size (the lecture's 16).
pub const HEAD_CHECK_H: usize = 16;

/// The inputs of chapter 5's check, in charlm's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadInputs {
    /// (B, T).
    pub batch: (usize, usize),
    /// x, (B, T, C) row-major.
    pub x: Vec<f32>,
    /// The (C, H) matrices: `key.weight.T`, `query.weight.T`, `value.weight.T`.
    pub key: Vec<f32>,
    /// See `key`.
    pub query: Vec<f32>,
    /// See `key`.
    pub value: Vec<f32>,
    /// The gradient flowing into the head's output, (B, T, H): the loss is
    /// `sum(out * upstream)`.
    pub upstream: Vec<f32>,
}

impl HeadInputs {
    /// PyTorch's x, weights and upstream gradient.
    pub fn reference() -> Result<Self, RefError> {
        let r: HeadRef = ref_file!("self_attention_head.json").json()?;
        let file = ref_file!("self_attention_head.safetensors");
        let [b, t, c] = r.shape;
        let h = r.head_size;
        if (c, h) != (HEAD_CHECK_C, HEAD_CHECK_H) {
            let reason = format!("C = {c}, head size {h}; charlm checks C = {HEAD_CHECK_C}, head size {HEAD_CHECK_H}");
            return Err(file.error(reason));
        }
        let inputs = file.tensors()?;
        Ok(Self {
            batch: (b, t),
            x: inputs.floats("x", &[b, t, c])?,
            key: inputs.floats("key", &[c, h])?,
            query: inputs.floats("query", &[c, h])?,
            value: inputs.floats("value", &[c, h])?,
            upstream: inputs.floats("upstream", &[b, t, h])?,
        })
    }
}

/// Chapter 5: one head's output and attention weights, and the gradients of
/// `sum(out * upstream)` with respect to the three matrices and x.
pub fn check_head<D: Kernels>(dev: &D, inputs: &HeadInputs) -> Result<Vec<Comparison>, StageError> {
    const STAGE: &str = ID;
    let r: HeadRef = ref_file!("self_attention_head.json").json()?;
    let (b, t) = inputs.batch;
    let matrix = |v: &Vec<f32>| {
        dev.try_tensor_from_vec(v.clone(), (Const, Const))
            .map_err(dev_err)
    };
    let head: Head<HEAD_CHECK_C, HEAD_CHECK_H, f32, D> = Head {
        key: matrix(&inputs.key)?,
        query: matrix(&inputs.query)?,
        value: matrix(&inputs.value)?,
    };
    let x = dev
        .try_tensor_from_vec(inputs.x.clone(), (b, t, Const::<HEAD_CHECK_C>))
        .map_err(dev_err)?; // (B, T, C)
    let upstream = dev
        .try_tensor_from_vec(inputs.upstream.clone(), (b, t, Const::<HEAD_CHECK_H>))
        .map_err(dev_err)?; // (B, T, H)
    let (out, wei) = head.forward_with_weights(x.trace(Gradients::leaky())); // (B, T, H), (B, T, T)
    let out_values = out.as_vec();
    let grads = (out * upstream).sum().backward(); // ∂ sum(out * upstream)
    Ok(vec![
        compare(STAGE, "out = wei @ v", r.out, out_values, 1e-5),
        compare(
            STAGE,
            "wei, the attention weights",
            r.wei,
            wei.as_vec(),
            1e-5,
        ),
        compare(
            STAGE,
            "∂loss/∂key",
            r.grad_key,
            grads.get(&head.key).as_vec(),
            1e-5,
        ),
        compare(
            STAGE,
            "∂loss/∂query",
            r.grad_query,
            grads.get(&head.query).as_vec(),
            1e-5,
        ),
        compare(
            STAGE,
            "∂loss/∂value",
            r.grad_value,
            grads.get(&head.value).as_vec(),
            1e-5,
        ),
        compare(STAGE, "∂loss/∂x", r.grad_x, grads.get(&x).as_vec(), 1e-5),
    ])
}

/// Where each row i = 1..8 of a head's (8 × 8) weights (the first row can
/// only attend to itself) puts its largest weight: the token's index j, so
/// i − j is 0 for its own token, 1 for the token before, more further back.
/// Chapter 5 reads its head with it, chapter 6 its four.
pub fn largest_weights(wei: &[f64]) -> Vec<usize> {
    (1..8)
        .map(|i| {
            let row = &wei[i * 8..i * 8 + i + 1];
            (0..=i).fold(0, |b, j| if row[j] > row[b] { j } else { b })
        })
        .collect()
}
