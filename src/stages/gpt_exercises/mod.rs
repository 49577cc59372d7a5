//! Chapter 8's exercises, the end of "Let's build GPT", solved and measured:
//! EX1, every head in one batched operation, against the lecture's heads one
//! by one (same numbers, and the time of each); EX2, the GPT trained on a task
//! of its own, adding two numbers, with its accuracy on sums it never saw.
//!
//! EX2's run takes a minute or two, and EX1's timings are this machine's, so
//! the chapter's numbers are drawn from one record, `record.json`, as
//! chapter 8's runs are ([`super::gpt::book`]): `charlm figures` makes it anew,
//! the test renders the committed one, recomputes EX1's differences and
//! replays the start of EX2's run.

mod ex1;
mod ex2;
mod ex3;
mod ex4;

pub use ex1::*;
pub use ex2::*;
pub use ex3::*;
pub use ex4::*;

use std::path::Path;
use std::time::Instant;

use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};

use super::{as_printed, json, BookNumbers, Progress, Stage, StageError, Tour};
use crate::data::addition::{Addition, Problem};
use crate::data::text::TextError;
use crate::data::text::{Corpus, Split};
use crate::data::vocab::Vocab;
use crate::data::DataSets;
use crate::models::attention_trick::randn;
use crate::models::gpt::{Gpt, GptSmall, Small, SmallGelu, Variant};
use crate::models::lm::Sampling;
use crate::models::multihead::MultiHeadAttention;
use crate::models::LanguageModel;
use crate::ops::{Activation, ActivationKind};
use crate::plot::{Figure, Lines, TrainCurves};
use crate::train::run::{run_keeping, split_loss};
use crate::train::session::{self, Settings};
use crate::train::{Eval, StopAt, TrainConfig, TrainState, Watch};
use dfdx::nn::modules::LayerNorm1D;
use rand::seq::SliceRandom;

/// The stage's id: its folder under `chapters/figures`.
pub const ID: &str = "gpt_exercises";

/// The record's file in that folder.
const RECORD: &str = "record.json";

/// Everything the chapter quotes from its exercises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExercisesRecord {
    /// The machine the timings are from.
    pub machine: String,
    /// EX1.
    pub ex1: Ex1,
    /// EX2.
    pub ex2: Ex2,
    /// EX3.
    pub ex3: Ex3,
    /// EX4's settings.
    pub ex4_config: TrainConfig,
    /// EX4's runs, ReLU then GELU for each seed.
    pub ex4: Vec<Ex4Run>,
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
        let drop = leaves_plateau(&x.evals, |e| e.val);
        n.put("ex2_drop_step", step_or_never(drop.map(|e| e.step)));
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
    render_ex2_ways(x, &mut n);
    render_ex3(&r.ex3, &mut n)?;
    render_ex4(r, &mut n);
    n.write(dir)?;
    let main = r
        .ex3
        .main()
        .ok_or_else(|| StageError::Record("EX3 ran no main size".into()))?;
    let title = format!(
        "EX3: {} names, from scratch or from tiny Shakespeare",
        main.names
    );
    TrainCurves {
        title: &title,
        step_losses: &[],
        runs: vec![
            ("from scratch".to_string(), main.scratch.evals.as_slice()),
            (
                "pretrained, finetuned".to_string(),
                main.finetuned.evals.as_slice(),
            ),
        ],
    }
    .save(&dir.join("ex3-loss.svg"))?;
    let first_seed = |a: ActivationKind| r.ex4.iter().find(|x| x.activation == a);
    if let (Some(relu), Some(gelu)) = (
        first_seed(ActivationKind::Relu),
        first_seed(ActivationKind::Gelu),
    ) {
        TrainCurves {
            title: "EX4: ReLU or GELU in the small preset (seed 1337)",
            step_losses: &[],
            runs: vec![
                ("ReLU".to_string(), relu.evals.as_slice()),
                ("GELU".to_string(), gelu.evals.as_slice()),
            ],
        }
        .save(&dir.join("ex4-loss.svg"))?;
    }
    let right = |c: &[Ex2Check]| c.iter().map(|c| c.correct as f32).collect::<Vec<_>>();
    Lines {
        title: "EX2: held-out sums right, the loss on every character or on the answers alone",
        axes: (
            &format!("steps (× {})", x.config.eval_interval),
            "held-out sums right",
        ),
        series: vec![
            ("every character".to_string(), right(&x.checks)),
            ("answers only".to_string(), right(&x.answers_only.checks)),
        ],
    }
    .save(&dir.join("ex2-accuracy.svg"))?;
    TrainCurves {
        title: "EX2: the small preset on sums (train and val estimates)",
        step_losses: &[],
        runs: vec![("addition".to_string(), x.evals.as_slice())],
    }
    .save(&dir.join("ex2-loss.svg"))?;
    Ok(())
}

/// A step, or "never".
fn step_or_never(step: Option<usize>) -> String {
    step.map_or_else(|| "never".to_string(), |s| s.to_string())
}

/// EX2's two losses side by side: the held-out sums right at each
/// estimate, the first estimate at the book's bar, the answers' loss.
fn render_ex2_ways(x: &Ex2, n: &mut BookNumbers) {
    let m = &x.answers_only;
    let pct = |c: usize| format!("{:.1}%", 100.0 * c as f64 / x.held_out.max(1) as f64);
    n.put("ex2_masked_correct", m.correct.to_string());
    n.put("ex2_masked_accuracy", pct(m.correct));
    let bar = (EX2_TARGET * x.held_out as f64).ceil() as usize;
    let at_bar = |c: &[Ex2Check]| c.iter().find(|c| c.correct >= bar).map(|c| c.step);
    // where each run first leaves the plateau of the answers' loss
    let leaves =
        |c: &[Ex2Check]| step_or_never(leaves_plateau(c, |c| c.answer_val).map(|c| c.step));
    n.put("ex2_every_leaves", leaves(&x.checks));
    n.put("ex2_masked_leaves", leaves(&m.checks));
    if let Some(c) = x.checks.get(1) {
        n.put("ex2_answer_plateau", format!("{:.4}", c.answer_val));
    }
    n.put("ex2_answer_chars", (EX2_DIGITS + 1).to_string());
    n.put("ex2_line_chars", (3 * EX2_DIGITS + 4).to_string());
    n.put("ex2_every_at_bar", step_or_never(at_bar(&x.checks)));
    let masked_at_bar = at_bar(&m.checks);
    n.put("ex2_masked_at_bar", step_or_never(masked_at_bar));
    let words = match masked_at_bar {
        Some(step) => format!("it is over the book's bar from step {step}"),
        None => "it never reaches the book's bar in these steps".to_string(),
    };
    n.put("ex2_masked_bar_words", words);
    if let (Some(a), Some(b)) = (x.checks.last(), m.checks.last()) {
        n.put("ex2_every_answer_val", format!("{:.4}", a.answer_val));
        n.put("ex2_masked_answer_val", format!("{:.4}", b.answer_val));
    }
    if let (Some(first), Some(last)) = (m.evals.first(), m.evals.last()) {
        n.put("ex2_masked_initial_val", format!("{:.4}", first.val));
        n.put("ex2_masked_val", format!("{:.4}", last.val));
    }
    let mut table = String::from(
        "| step | every character: answers' loss | sums right | answers only: answers' loss | sums right |\n\
         |---:|---:|---:|---:|---:|\n",
    );
    for (a, b) in x.checks.iter().zip(&m.checks) {
        table.push_str(&format!(
            "| {} | {:.4} | {} | {:.4} | {} |\n",
            a.step, a.answer_val, a.correct, b.answer_val, b.correct
        ));
    }
    n.put("ex2_ways_table", table.trim_end().to_string());
}

/// EX3's numbers.
fn render_ex3(x: &Ex3, n: &mut BookNumbers) -> Result<(), StageError> {
    let main = x.main().ok_or_else(|| {
        StageError::Record(format!(
            "EX3's record has no run on {EX3_TRAIN_NAMES} names"
        ))
    })?;
    n.put("ex3_train_names", main.names.to_string());
    n.put("ex3_val_names", x.val_names.to_string());
    n.put("ex3_train_chars", main.train_chars.to_string());
    n.put("ex3_steps", x.configs.0.max_iters.to_string());
    n.put("ex3_scratch_lr", format!("{:e}", x.configs.0.learning_rate));
    n.put(
        "ex3_finetune_lr",
        format!("{:e}", x.configs.1.learning_rate),
    );
    n.put("ex3_eval_interval", x.configs.0.eval_interval.to_string());
    n.put(
        "ex3_pretrained_val",
        format!("{:.4}", x.pretrained_whole_val),
    );
    n.put("ex3_vocab", x.vocab.to_string());
    n.put("ex3_uniform", format!("{:.4}", (x.vocab as f64).ln()));
    let c = &x.configs.0;
    n.put(
        "ex3_batch_tokens",
        (c.batch_size * c.block_size).to_string(),
    );
    for (name, run) in [("scratch", &main.scratch), ("finetuned", &main.finetuned)] {
        n.put(
            &format!("ex3_{name}_best"),
            format!("{:.4}", run.best_whole_val),
        );
        n.put(
            &format!("ex3_{name}_last"),
            format!("{:.4}", run.last_whole_val),
        );
        n.put(&format!("ex3_{name}_best_step"), run.best_step.to_string());
        n.put(
            &format!("ex3_{name}_samples"),
            run.samples
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        if let Some(last) = run.evals.last() {
            n.put(
                &format!("ex3_{name}_last_train"),
                format!("{:.4}", last.train),
            );
        }
    }
    // differences of the numbers as the tables print them, so that a
    // reader's subtraction agrees
    let gain =
        |s: &Ex3Size| as_printed(s.scratch.best_whole_val) - as_printed(s.finetuned.best_whole_val);
    n.put("ex3_gain", format!("{:.4}", gain(main)));
    let t = |run: &Ex3Run| {
        format!(
            "{:.4} (step {}) | {:.4}",
            run.best_whole_val, run.best_step, run.last_whole_val
        )
    };
    n.put(
        "ex3_table",
        format!(
            "| model | loss on the held-out names: best estimate's model | after the last step |\n\
             |---|---|---|\n\
             | pretrained on tiny Shakespeare only | {:.4} | |\n\
             | from scratch, lr {:e} | {} |\n\
             | pretrained, then finetuned, lr {:e} | {} |",
            x.pretrained_whole_val,
            x.configs.0.learning_rate,
            t(&main.scratch),
            x.configs.1.learning_rate,
            t(&main.finetuned)
        ),
    );
    let mut table = String::from(
        "| names to learn from | characters | from scratch: best (step) | finetuned: best (step) | pretraining's gain |\n\
         |---:|---:|---|---|---:|\n",
    );
    for s in &x.sizes {
        table.push_str(&format!(
            "| {} | {} | {:.4} ({}) | {:.4} ({}) | {:.4} |\n",
            s.names,
            s.train_chars,
            s.scratch.best_whole_val,
            s.scratch.best_step,
            s.finetuned.best_whole_val,
            s.finetuned.best_step,
            gain(s)
        ));
    }
    n.put("ex3_sizes_table", table.trim_end().to_string());
    // The best model is picked by estimates on the same held-out names it is
    // then scored on: how far the picking estimate lies from the score, over
    // every run, bounds how optimistic each "best" is.
    let gaps: Vec<f64> = x
        .sizes
        .iter()
        .flat_map(|s| [&s.scratch, &s.finetuned])
        .filter_map(|r| {
            let e = r.evals.iter().find(|e| e.step == r.best_step)?;
            Some((as_printed(e.val) - as_printed(r.best_whole_val)).abs())
        })
        .collect();
    let (lo, hi) = gaps
        .iter()
        .fold((f64::MAX, 0f64), |(a, b), &g| (a.min(g), b.max(g)));
    n.put("ex3_pick_gap_min", format!("{lo:.3}"));
    n.put("ex3_pick_gap_max", format!("{hi:.3}"));
    let list: Vec<String> = x.sizes.iter().map(|s| s.names.to_string()).collect();
    n.put("ex3_sizes", list.join(", "));
    Ok(())
}

/// EX4's numbers: the runs side by side, means, the spread, the speed.
fn render_ex4(r: &ExercisesRecord, n: &mut BookNumbers) {
    let of = |a: ActivationKind| r.ex4.iter().filter(move |x| x.activation == a);
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let relu: Vec<&Ex4Run> = of(ActivationKind::Relu).collect();
    let gelu: Vec<&Ex4Run> = of(ActivationKind::Gelu).collect();
    let mut table = String::from("| seed | ReLU | GELU | GELU − ReLU |\n|---|---|---|---|\n");
    let mut diffs = Vec::new();
    for (a, b) in relu.iter().zip(&gelu) {
        let d = f64::from(b.whole_val) - f64::from(a.whole_val);
        diffs.push(d);
        table.push_str(&format!(
            "| {} | {:.4} | {:.4} | {:+.4} |\n",
            a.seed, a.whole_val, b.whole_val, d
        ));
    }
    let m_relu = mean(relu.iter().map(|x| f64::from(x.whole_val)).collect());
    let m_gelu = mean(gelu.iter().map(|x| f64::from(x.whole_val)).collect());
    table.push_str(&format!(
        "| mean | {m_relu:.4} | {m_gelu:.4} | {:+.4} |",
        m_gelu - m_relu
    ));
    n.put("ex4_table", table);
    n.put("ex4_seeds", relu.len().to_string());
    n.put("ex4_steps", r.ex4_config.max_iters.to_string());
    n.put("ex4_relu_mean", format!("{m_relu:.4}"));
    n.put("ex4_gelu_mean", format!("{m_gelu:.4}"));
    n.put("ex4_diff", format!("{:+.4}", m_gelu - m_relu));
    let spread = |v: &[&Ex4Run]| {
        let vals = v.iter().map(|x| as_printed(x.whole_val));
        vals.clone().fold(f64::MIN, f64::max) - vals.fold(f64::MAX, f64::min)
    };
    n.put("ex4_relu_spread", format!("{:.4}", spread(&relu)));
    n.put("ex4_gelu_spread", format!("{:.4}", spread(&gelu)));
    let lower = diffs.iter().filter(|d| **d < 0.0).count();
    n.put("ex4_gelu_lower", lower.to_string());
    let sps = |v: &[&Ex4Run]| mean(v.iter().map(|x| x.steps_per_second).collect());
    n.put("ex4_relu_sps", format!("{:.1}", sps(&relu)));
    n.put("ex4_gelu_sps", format!("{:.1}", sps(&gelu)));
    n.put(
        "ex4_slowdown",
        format!("{:.0}%", 100.0 * (sps(&relu) / sps(&gelu) - 1.0)),
    );
}

/// Runs the four exercises and writes the record and the numbers into `dir`.
pub fn write_book_files(data: &DataSets, dir: &Path) -> Result<(), StageError> {
    let mut watch = StopAt(usize::MAX);
    let (ex4, pretrained) = run_ex4(data.text()?, ex4_config(), &EX4_SEEDS, &mut watch)?;
    let (model, corpus) = pretrained.ok_or_else(|| StageError::Record("EX4 ran no seed".into()))?;
    let ex3 = run_ex3(
        &model,
        &corpus,
        data.names()?,
        &EX3_SIZES,
        ex3_configs(),
        &mut watch,
    )?;
    let record = ExercisesRecord {
        machine: super::gpt::book::machine(),
        ex1: run_ex1(20)?,
        ex2: run_ex2(ex2_config(), &mut watch)?,
        ex3,
        ex4_config: ex4_config(),
        ex4,
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
        "Chapter 8's exercises: heads as a batch dimension, a GPT that adds, pretraining, GELU (short runs)"
    }

    fn tour(&self, data: &DataSets, _out: &Path, progress: Progress) -> Result<Tour, StageError> {
        let one = ex1_pass(HeadsWay::OneByOne, 1)?;
        let (out, grad) = ex1_diff(&one, &ex1_pass(HeadsWay::Batched, 1)?);
        let config = TrainConfig {
            max_iters: TOUR_STEPS,
            eval_interval: TOUR_STEPS,
            ..ex2_config()
        };
        let ex2 = run_ex2(
            config,
            &mut *progress(
                "EX2: a GPT that adds, scored on every character, then on the answers alone",
                2 * TOUR_STEPS,
            ),
        )?;
        // EX4 and EX3, short: one seed of each activation, then the names
        let short = TrainConfig {
            max_iters: TOUR_STEPS,
            eval_interval: TOUR_STEPS,
            eval_iters: 20,
            ..ex4_config()
        };
        let (ex4, first) = run_ex4(
            data.text()?,
            short,
            &EX4_SEEDS[..1],
            &mut *progress(
                "EX4: the small preset with ReLU, then with GELU",
                2 * TOUR_STEPS,
            ),
        )?;
        let (model, corpus) = first.ok_or_else(|| StageError::Record("EX4 ran no seed".into()))?;
        let names = |c: TrainConfig| TrainConfig {
            max_iters: TOUR_STEPS / 3,
            eval_interval: TOUR_STEPS / 6,
            eval_iters: 10,
            ..c
        };
        let (a, b) = ex3_configs();
        let mut watch = progress(
            "EX3: names from scratch, then finetuned from Shakespeare",
            2 * TOUR_STEPS / 3,
        );
        let sizes = [EX3_TRAIN_NAMES];
        let ex3 = run_ex3(
            &model,
            &corpus,
            data.names()?,
            &sizes,
            (names(a), names(b)),
            &mut *watch,
        )?;
        let main = ex3
            .main()
            .ok_or_else(|| StageError::Record("EX3 ran no size".into()))?;
        let summary = format!(
            "EX1: heads one by one vs batched: outputs within {out:.1e}, gradients within {grad:.1e}\n\
             EX2: {} steps on {} sums: {} of {} held-out sums right, {} with the loss on the answers alone (the book's runs: {} steps)\n\
             EX3: {} names, {} steps: from scratch {:.4}, pretrained {} steps on Shakespeare then finetuned {:.4}\n\
             EX4: {} steps on Shakespeare: ReLU {:.4}, GELU {:.4} (the book's: {} seeds of {} steps)",
            TOUR_STEPS,
            ex2.train_problems,
            ex2.correct,
            ex2.held_out,
            ex2.answers_only.correct,
            ex2_config().max_iters,
            EX3_TRAIN_NAMES,
            TOUR_STEPS / 3,
            main.scratch.best_whole_val,
            TOUR_STEPS,
            main.finetuned.best_whole_val,
            TOUR_STEPS,
            ex4[0].whole_val,
            ex4[1].whole_val,
            EX4_SEEDS.len(),
            ex4_config().max_iters,
        );
        let report = serde_json::json!({
            "ex1_out_diff": out, "ex1_grad_diff": grad,
            "ex2_steps": TOUR_STEPS, "ex2_correct": ex2.correct, "ex2_held_out": ex2.held_out,
            "ex2_evals": json(&ex2.evals),
            "ex2_answers_only_correct": ex2.answers_only.correct,
            "ex3_pretrained_val": ex3.pretrained_whole_val,
            "ex3_scratch_evals": json(&main.scratch.evals),
            "ex3_finetuned_evals": json(&main.finetuned.evals),
            "ex4_relu_evals": json(&ex4[0].evals),
            "ex4_gelu_evals": json(&ex4[1].evals),
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
    fn write_book_files(&self, data: &DataSets, dir: &Path) -> Result<(), StageError> {
        write_book_files(data, dir)
    }

    fn redraw_book_files(&self, dir: &Path) -> Result<bool, StageError> {
        render(&read_record(dir)?, dir)?;
        Ok(true)
    }
}
