//! Chapter 8's exercises, the end of "Let's build GPT", solved and measured:
//! EX1, every head in one batched operation, against the lecture's heads one
//! by one (same numbers, and the time of each); EX2, the GPT trained on a task
//! of its own, adding two numbers, with its accuracy on sums it never saw.
//!
//! EX2's run takes a minute or two, and EX1's timings are this machine's, so
//! the chapter's numbers are drawn from one record, `record.json`, as
//! chapter 8's runs are ([`super::gpt_book`]): `charlm figures` makes it anew,
//! the test renders the committed one, recomputes EX1's differences and
//! replays the start of EX2's run.

use std::path::Path;
use std::time::Instant;

use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};

use super::{json, BookNumbers, Progress, Stage, StageError, Tour};
use crate::data::addition::{Addition, Problem};
use crate::data::text::TextError;
use crate::data::DataSets;
use crate::models::attention_trick::randn;
use crate::models::gpt::GptSmall;
use crate::models::lm::Sampling;
use crate::models::multihead::MultiHeadAttention;
use crate::models::LanguageModel;
use crate::plot::{Figure, TrainCurves};
use crate::train::session::{self, Settings};
use crate::train::{Eval, StopAt, TrainConfig, Watch};

/// The stage's id: its folder under `chapters/figures`.
pub const ID: &str = "gpt_exercises";

/// The record's file in that folder.
const RECORD: &str = "record.json";

/// EX1 at the `cpu` preset's attention: n_embd 128, 4 heads of 32.
pub type Ex1Attention =
    MultiHeadAttention<{ EX1_SIZES.0 }, { EX1_SIZES.1 }, { EX1_SIZES.2 }, f32, Cpu>;

/// [`Ex1Attention`]'s n_embd, heads and head size.
pub const EX1_SIZES: (usize, usize, usize) = (128, 4, 32);

/// EX1's batch: the `cpu` preset's 12 sequences of 64 tokens.
pub const EX1_BATCH: (usize, usize) = (12, 64);

/// The three ways EX1 compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadsWay {
    /// The lecture's list of heads, one after the other, concatenated.
    OneByOne,
    /// The heads a batch dimension, in dfdx's own operations.
    Batched,
    /// The same, in charlm's fused CPU kernels (what the chapters train with).
    Fused,
}

impl HeadsWay {
    /// All three, the lecture's first.
    pub const ALL: [HeadsWay; 3] = [HeadsWay::OneByOne, HeadsWay::Batched, HeadsWay::Fused];
}

/// What EX1's passes run on: the attention's weights, an input x and the
/// upstream gradient `up`, all drawn from `seed`.
pub struct Ex1Inputs {
    mha: Ex1Attention,
    x: Tensor<(usize, usize, Const<{ EX1_SIZES.0 }>), f32, Cpu>, // (B, T, C)
    up: Tensor<(usize, usize, Const<{ EX1_SIZES.0 }>), f32, Cpu>, // (B, T, C)
}

impl Ex1Inputs {
    /// Weights, x and up from `seed`.
    pub fn new(seed: u64) -> Result<Self, StageError> {
        let dev = Cpu::default();
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        let mha = Ex1Attention::new(&dev, &mut rng)?;
        let (b, t) = EX1_BATCH;
        let x = randn(&dev, (b, t, EX1_SIZES.0), &mut rng).reshape_like(&(b, t, Const)); // (B, T, C)
        let up = randn(&dev, (b, t, EX1_SIZES.0), &mut rng).reshape_like(&(b, t, Const)); // (B, T, C)
        Ok(Self { mha, x, up })
    }

    /// One forward and backward pass, `way`: the output, then the gradients
    /// of `Σ out ⊙ up` with respect to x, query, key and value, flattened.
    pub fn pass(&self, way: HeadsWay) -> [Vec<f32>; 5] {
        let (mha, x) = (&self.mha, &self.x);
        let xt = x.clone().trace(Gradients::leaky()); // (B, T, C), recording
        let out = match way {
            HeadsWay::OneByOne => mha.forward_head_by_head(xt),
            HeadsWay::Batched => mha.forward_batched(xt),
            HeadsWay::Fused => mha.forward_with_weights(xt).0,
        }; // (B, T, C)
        let values = out.as_vec();
        let grads = (out * self.up.clone()).sum().backward();
        [
            values,
            grads.get(x).as_vec(),
            grads.get(&mha.query).as_vec(),
            grads.get(&mha.key).as_vec(),
            grads.get(&mha.value).as_vec(),
        ]
    }
}

/// [`Ex1Inputs::pass`] on the inputs of `seed`.
pub fn ex1_pass(way: HeadsWay, seed: u64) -> Result<[Vec<f32>; 5], StageError> {
    Ok(Ex1Inputs::new(seed)?.pass(way))
}

/// The largest difference between two passes: (output, any gradient).
pub fn ex1_diff(a: &[Vec<f32>; 5], b: &[Vec<f32>; 5]) -> (f32, f32) {
    let max = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max)
    };
    let grads = (1..5).map(|i| max(&a[i], &b[i])).fold(0.0f32, f32::max);
    (max(&a[0], &b[0]), grads)
}

/// Milliseconds of one forward and backward pass on `inputs` (the pass
/// alone: the inputs are drawn once, outside the clock), the best of `reps`.
fn ex1_time(inputs: &Ex1Inputs, way: HeadsWay, reps: usize) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let start = Instant::now();
        inputs.pass(way);
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    best
}

/// EX1 as the record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ex1 {
    /// Largest output difference, one by one against batched (dfdx ops).
    pub batched_out: f32,
    /// Largest gradient difference, the same two.
    pub batched_grad: f32,
    /// Largest output difference, one by one against the fused kernels.
    pub fused_out: f32,
    /// Largest gradient difference, the same two.
    pub fused_grad: f32,
    /// Milliseconds per pass: one by one, batched, fused.
    pub ms: [f64; 3],
}

/// Runs EX1: the differences (seed 1) and the timings.
pub fn run_ex1(reps: usize) -> Result<Ex1, StageError> {
    let inputs = Ex1Inputs::new(1)?;
    let [one, batched, fused] = HeadsWay::ALL.map(|w| inputs.pass(w));
    let (batched_out, batched_grad) = ex1_diff(&one, &batched);
    let (fused_out, fused_grad) = ex1_diff(&one, &fused);
    let ms = HeadsWay::ALL.map(|way| ex1_time(&inputs, way, reps));
    Ok(Ex1 {
        batched_out,
        batched_grad,
        fused_out,
        fused_grad,
        ms,
    })
}

/// EX2's task: sums of two 2-digit numbers.
pub const EX2_DIGITS: usize = 2;

/// EX2 holds out this many of the 10,000 sums.
pub const EX2_HELD_OUT: usize = 1000;

/// The seed of EX2's split, weights, batches and samples.
pub const EX2_SEED: u64 = 1337;

/// EX2's training: the `small` preset's model and settings, for longer.
pub fn ex2_config() -> TrainConfig {
    TrainConfig {
        max_iters: 10_000,
        eval_interval: 1000,
        ..TrainConfig::gpt_small()
    }
}

/// The held-out accuracy EX2 is to reach.
pub const EX2_TARGET: f64 = 0.9;

/// EX2 as the record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ex2 {
    /// Its settings.
    pub config: TrainConfig,
    /// Problems in the training text.
    pub train_problems: usize,
    /// Problems held out.
    pub held_out: usize,
    /// The model's parameters.
    pub params: usize,
    /// Characters in its vocabulary.
    pub vocab: usize,
    /// Every estimate, step 0 first.
    pub evals: Vec<Eval>,
    /// Held-out sums answered right (greedy decoding).
    pub correct: usize,
    /// The first held-out problems: prompt, the right answer, the model's.
    pub examples: Vec<(String, String, String)>,
    /// Wall time of the run.
    pub seconds: f64,
}

// ANCHOR: ex2_accuracy
/// Prompts the model with each problem's `a+b=` (after a newline, where
/// every line of its training text starts) and reads the next digits+1
/// characters it writes, always the most likely: (right, the answers).
pub fn ex2_answers<M: LanguageModel<Cpu>>(
    model: &M,
    task: Addition,
    vocab: &crate::data::vocab::Vocab,
    problems: &[Problem],
) -> Result<(usize, Vec<String>), StageError> {
    let greedy = Sampling {
        temperature: 1.0,
        top_k: Some(1),
    };
    let mut rng = ChaCha12Rng::seed_from_u64(EX2_SEED); // never drawn from: top-1 is certain
    let (mut right, mut answers) = (0, Vec::new());
    for chunk in problems.chunks(250) {
        let prompts = chunk
            .iter()
            .map(|&p| vocab.encode(&format!("\n{}", task.prompt(p))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(TextError::from)?; // (250, prompt)
        let len = prompts[0].len();
        let rows =
            model.generate_sampled(&prompts, task.digits() + 1, greedy, &mut rng, &mut |_| true)?;
        for (row, &p) in rows.iter().zip(chunk) {
            let written = vocab.decode(&row[len..]);
            right += usize::from(task.read_answer(&written) == Some(p.a + p.b));
            answers.push(written);
        }
    }
    Ok((right, answers))
}
// ANCHOR_END: ex2_accuracy

/// Trains EX2's GPT with `config` ([`ex2_config`] for the book's run)
/// under `watch`; its record.
pub fn run_ex2(config: TrainConfig, watch: &mut dyn Watch) -> Result<Ex2, StageError> {
    let task = Addition::new(EX2_DIGITS)?;
    let mut rng = ChaCha12Rng::seed_from_u64(EX2_SEED);
    let (train, held_out) = task.split(EX2_HELD_OUT, &mut rng)?;
    let text = task.text(&train);
    let settings = Settings {
        config,
        seed: EX2_SEED,
        sample_tokens: 0,
    };
    let dev = Cpu::default();
    let start = Instant::now();
    let s = session::start::<Cpu, GptSmall<Cpu>>(&dev, &text, &settings, None, watch)?;
    let (correct, answers) = ex2_answers(&s.model, task, &s.corpus.vocab, &held_out)?;
    let examples = held_out
        .iter()
        .zip(&answers)
        .take(8)
        .map(|(&p, got)| (task.prompt(p), task.answer(p), got.clone()))
        .collect();
    Ok(Ex2 {
        config: s.config,
        train_problems: train.len(),
        held_out: held_out.len(),
        params: s.report.params,
        vocab: s.report.vocab,
        evals: s.train.history.evals.clone(),
        correct,
        examples,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Everything the chapter quotes from its exercises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExercisesRecord {
    /// The machine the timings are from.
    pub machine: String,
    /// EX1.
    pub ex1: Ex1,
    /// EX2.
    pub ex2: Ex2,
}

/// Reads the record in `dir`.
pub fn read_record(dir: &Path) -> Result<ExercisesRecord, StageError> {
    super::read_record(dir, RECORD, ID)
}

/// Writes the record's numbers into `dir` (the record itself is not touched).
pub fn render(r: &ExercisesRecord, dir: &Path) -> Result<(), StageError> {
    let mut n = BookNumbers::default();
    let e = &r.ex1;
    let diff = |d: f32| {
        if d == 0.0 {
            "0 (bit for bit)".to_string()
        } else {
            format!("{d:.1e}")
        }
    };
    n.put("ex1_batched_out", diff(e.batched_out));
    n.put("ex1_batched_grad", diff(e.batched_grad));
    n.put("ex1_fused_out", diff(e.fused_out));
    n.put("ex1_fused_grad", diff(e.fused_grad));
    for (key, ms) in ["ex1_ms_one_by_one", "ex1_ms_batched", "ex1_ms_fused"]
        .iter()
        .zip(e.ms)
    {
        n.put(key, format!("{ms:.2} ms"));
    }
    n.put("ex1_batched_ratio", format!("{:.2}", e.ms[1] / e.ms[0]));
    n.put("ex1_speedup_fused", format!("{:.1}", e.ms[0] / e.ms[2]));
    let (b, t) = EX1_BATCH;
    n.put("ex1_batch", format!("{b} sequences of {t} tokens"));
    n.put(
        "ex1_sizes",
        format!(
            "n_embd {}, {} heads of {}",
            EX1_SIZES.0, EX1_SIZES.1, EX1_SIZES.2
        ),
    );
    n.put("machine", r.machine.clone());
    let x = &r.ex2;
    n.put("ex2_digits", EX2_DIGITS.to_string());
    n.put("ex2_train_problems", x.train_problems.to_string());
    n.put("ex2_held_out", x.held_out.to_string());
    n.put("ex2_steps", x.config.max_iters.to_string());
    n.put("ex2_params", x.params.to_string());
    n.put("ex2_vocab", x.vocab.to_string());
    n.put("ex2_random_digits", (2 * EX2_DIGITS).to_string());
    n.put("ex2_correct", x.correct.to_string());
    n.put(
        "ex2_accuracy",
        format!(
            "{:.1}%",
            100.0 * x.correct as f64 / x.held_out.max(1) as f64
        ),
    );
    n.put("ex2_target", format!("{:.0}%", 100.0 * EX2_TARGET));
    n.put("ex2_minutes", format!("{:.1}", x.seconds / 60.0));
    if let (Some(first), Some(last)) = (x.evals.first(), x.evals.last()) {
        n.put("ex2_initial_val", format!("{:.4}", first.val));
        n.put("ex2_val", format!("{:.4}", last.val));
    }
    // the plateau after the first estimate, and the first estimate below it
    if let Some(plateau) = x.evals.get(1) {
        n.put("ex2_plateau_step", plateau.step.to_string());
        n.put("ex2_plateau_val", format!("{:.4}", plateau.val));
        let drop = x.evals.iter().find(|e| e.val < plateau.val - 0.1);
        n.put(
            "ex2_drop_step",
            drop.map_or_else(|| "never".to_string(), |e| e.step.to_string()),
        );
    }
    // 2·d random digits of a line of 2·d + 2 + (d + 1) + 1 characters carry
    // all its information: the loss cannot go below their entropy
    let d = EX2_DIGITS as f64;
    let floor = 2.0 * d * 10f64.ln() / (3.0 * d + 4.0);
    n.put("ex2_floor", format!("{floor:.4}"));
    let mut table = String::from("| prompt | right answer | the model's |\n|---|---|---|\n");
    for (prompt, right, got) in &x.examples {
        let mark = if right == got { "✓" } else { "✗" };
        table.push_str(&format!("| `{prompt}` | `{right}` | `{got}` {mark} |\n"));
    }
    n.put("ex2_examples", table.trim_end().to_string());
    n.write(dir)?;
    TrainCurves {
        title: "EX2: the small preset on sums (train and val estimates)",
        step_losses: &[],
        runs: vec![("addition".to_string(), x.evals.as_slice())],
    }
    .save(&dir.join("ex2-loss.svg"))?;
    Ok(())
}

/// Runs both exercises and writes the record and the numbers into `dir`.
pub fn write_book_files(dir: &Path) -> Result<(), StageError> {
    let record = ExercisesRecord {
        machine: super::gpt_book::machine(),
        ex1: run_ex1(20)?,
        ex2: run_ex2(ex2_config(), &mut StopAt(usize::MAX))?,
    };
    super::write_record(dir, RECORD, &record)?;
    render(&record, dir)
}

/// Chapter 8's exercises in the registry.
pub struct GptExercises;

/// Steps of the tour's short EX2 run.
pub const TOUR_STEPS: usize = 300;

impl Stage for GptExercises {
    fn id(&self) -> &'static str {
        ID
    }

    fn heading(&self) -> &'static str {
        "Chapter 8's exercises: heads as a batch dimension, a GPT that adds (a short run)"
    }

    fn tour(&self, _data: &DataSets, _out: &Path, progress: Progress) -> Result<Tour, StageError> {
        let one = ex1_pass(HeadsWay::OneByOne, 1)?;
        let (out, grad) = ex1_diff(&one, &ex1_pass(HeadsWay::Batched, 1)?);
        let config = TrainConfig {
            max_iters: TOUR_STEPS,
            eval_interval: TOUR_STEPS,
            ..ex2_config()
        };
        let ex2 = run_ex2(config, &mut *progress(TOUR_STEPS))?;
        let summary = format!(
            "EX1: heads one by one vs batched: outputs within {out:.1e}, gradients within {grad:.1e}\n\
             EX2: {} steps on {} sums: {} of {} held-out sums right (the book's run: {} steps)",
            TOUR_STEPS,
            ex2.train_problems,
            ex2.correct,
            ex2.held_out,
            ex2_config().max_iters
        );
        let report = serde_json::json!({
            "ex1_out_diff": out, "ex1_grad_diff": grad,
            "ex2_steps": TOUR_STEPS, "ex2_correct": ex2.correct, "ex2_held_out": ex2.held_out,
            "ex2_evals": json(&ex2.evals),
        });
        Ok(Tour {
            summary,
            report,
            figures: Vec::new(),
            failure: None,
        })
    }

    /// Runs both exercises (a minute or two), then writes the record and the
    /// numbers drawn from it.
    fn write_book_files(&self, _data: &DataSets, dir: &Path) -> Result<(), StageError> {
        write_book_files(dir)
    }

    fn redraw_book_files(&self, dir: &Path) -> Result<bool, StageError> {
        render(&read_record(dir)?, dir)?;
        Ok(true)
    }
}
