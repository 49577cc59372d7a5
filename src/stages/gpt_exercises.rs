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
use crate::data::text::{Corpus, Split};
use crate::data::vocab::Vocab;
use crate::data::DataSets;
use crate::models::attention_trick::randn;
use crate::models::gpt::{Gpt, GptSmall, Small, SmallGelu, Variant};
use crate::models::lm::Sampling;
use crate::models::multihead::MultiHeadAttention;
use crate::models::LanguageModel;
use crate::ops::{Activation, ActivationKind};
use crate::plot::{Figure, TrainCurves};
use crate::train::run::{run_keeping, split_loss};
use crate::train::session::{self, Settings};
use crate::train::{Eval, StopAt, TrainConfig, TrainState, Watch};
use dfdx::nn::modules::LayerNorm1D;
use rand::seq::SliceRandom;

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
        ..crate::presets::SMALL.config
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

/// Prompts the model with each problem's `a+b=` (after a newline, where
/// every line of its training text starts) and reads the next digits+1
/// characters it writes, always the most likely: (right, the answers).
pub fn ex2_answers<M: LanguageModel<Cpu>>(
    model: &M,
    task: Addition,
    vocab: &crate::data::vocab::Vocab,
    problems: &[Problem],
) -> Result<(usize, Vec<String>), StageError> {
    // ANCHOR: ex2_accuracy
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
    // ANCHOR_END: ex2_accuracy
    Ok((right, answers))
}

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

/// EX3 and EX4 train the `small` preset as chapter 8 does: its settings.
pub fn ex4_config() -> TrainConfig {
    crate::presets::SMALL.config
}

/// EX4's seeds: each activation trains once from each, so that the
/// difference can be set against the spread from seed to seed.
pub const EX4_SEEDS: [u64; 3] = [1337, 1338, 1339];

/// One run of EX4: an activation, a seed, and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ex4Run {
    /// ReLU or GELU.
    pub activation: ActivationKind,
    /// The seed of its weights, batches and samples.
    pub seed: u64,
    /// Every estimate, step 0 first.
    pub evals: Vec<Eval>,
    /// The loss over the whole validation split after the last step.
    pub whole_val: f32,
    /// Optimiser steps per second (estimates excluded).
    pub steps_per_second: f64,
}

/// The `small` preset's sizes with preset `P`'s name, initialisation and
/// activation: [`GptSmall`] for `Small`, [`GptSmallGelu`](crate::models::gpt::GptSmallGelu) for `SmallGelu`.
pub type SmallAs<P> = Gpt<64, 4, 16, 256, 4, 32, LayerNorm1D<64, f32, Cpu>, f32, Cpu, P>;

/// Trains [`SmallAs<P>`] on `text` with `config` and `seed`: the run's
/// record (its activation the preset's) and the trained model (with its
/// corpus).
pub fn train_preset<P: Variant>(
    text: &str,
    config: TrainConfig,
    seed: u64,
    watch: &mut dyn Watch,
) -> Result<(Ex4Run, SmallAs<P>, Corpus), StageError> {
    let settings = Settings {
        config,
        seed,
        sample_tokens: 0,
    };
    let dev = Cpu::default();
    let s = session::start::<Cpu, SmallAs<P>>(&dev, text, &settings, None, watch)?;
    let whole_val = split_loss(&dev, &s.model, &s.corpus, Split::Val, &s.config)?;
    let run = Ex4Run {
        activation: <P::Act as Activation>::KIND,
        seed,
        evals: s.train.history.evals.clone(),
        whole_val,
        steps_per_second: s.report.steps_per_second,
    };
    Ok((run, s.model, s.corpus))
}

/// A model trained on a text, with the text's corpus: what EX3 finetunes.
pub type Pretrained = (GptSmall<Cpu>, Corpus);

/// EX4's runs: ReLU ([`GptSmall`]) and GELU ([`GptSmallGelu`](crate::models::gpt::GptSmallGelu)) from each of
/// [`EX4_SEEDS`] on `text`; with the first ReLU run's model and corpus,
/// which EX3 pretrains with.
pub fn run_ex4(
    text: &str,
    config: TrainConfig,
    seeds: &[u64],
    watch: &mut dyn Watch,
) -> Result<(Vec<Ex4Run>, Option<Pretrained>), StageError> {
    let (mut runs, mut first) = (Vec::new(), None);
    for &seed in seeds {
        let (relu, model, corpus) = train_preset::<Small>(text, config, seed, watch)?;
        let model: GptSmall<Cpu> = model; // the same type
        first.get_or_insert((model, corpus));
        let (gelu, ..) = train_preset::<SmallGelu>(text, config, seed, watch)?;
        runs.extend([relu, gelu]);
    }
    Ok((runs, first))
}

/// EX3 learns from this many names, drawn at random from names.txt, each
/// number a run from scratch and a run finetuned (the smaller sets are the
/// first names of the larger ones).
pub const EX3_SIZES: [usize; 3] = [250, 1000, 4000];

/// The size the chapter follows step by step (one of [`EX3_SIZES`]).
pub const EX3_TRAIN_NAMES: usize = 1000;

/// EX3 measures on this many other names.
pub const EX3_VAL_NAMES: usize = 2000;

/// The settings of EX3's runs on names: the `small` preset's, for 1,000
/// steps at `learning_rate`, estimated every 50 steps on 50 batches.
pub fn ex3_config(learning_rate: f32) -> TrainConfig {
    TrainConfig {
        max_iters: 1000,
        eval_interval: 50,
        eval_iters: 50,
        learning_rate,
        ..crate::presets::SMALL.config
    }
}

/// EX3's two runs' settings: from scratch at the `small` preset's
/// learning rate, finetuning at a third of it.
pub fn ex3_configs() -> (TrainConfig, TrainConfig) {
    (ex3_config(1e-3), ex3_config(3e-4))
}

/// EX3's small data set: `train` names to learn from (at most the largest
/// of [`EX3_SIZES`]) and [`EX3_VAL_NAMES`] others to measure on, drawn at
/// random (with `rng`) from the distinct `names` (names.txt lists some
/// twice), each a line, in the vocabulary of the text the model was
/// pretrained on (`vocab`: tiny Shakespeare's characters hold every letter
/// and the newline). The draw is the same for every `train`: the same
/// names to measure on, and nested sets to learn from.
pub fn ex3_names<R: rand::Rng>(
    names: &[String],
    vocab: &Vocab,
    train: usize,
    rng: &mut R,
) -> Result<Corpus, StageError> {
    let mut seen = std::collections::HashSet::new();
    let names: Vec<&String> = names.iter().filter(|n| seen.insert(*n)).collect(); // first of each
    let most = EX3_SIZES.into_iter().max().unwrap_or(0);
    let wanted = EX3_VAL_NAMES + most;
    if names.len() < wanted || train > most {
        return Err(StageError::Record(format!(
            "EX3 draws {wanted} names, {train} of them to learn from, and the file holds {} \
             distinct ones: use the full names.txt and at most {most}",
            names.len()
        )));
    }
    // ANCHOR: ex3_names
    let picked: Vec<&String> = names.choose_multiple(rng, wanted).copied().collect();
    let lines = |names: &[&String]| names.iter().map(|n| format!("{n}\n")).collect::<String>();
    let (val, rest) = picked.split_at(EX3_VAL_NAMES);
    let train = &rest[..train];
    Ok(Corpus {
        vocab: vocab.clone(),
        train: vocab.encode(&lines(train)).map_err(TextError::from)?,
        val: vocab.encode(&lines(val)).map_err(TextError::from)?,
    })
    // ANCHOR_END: ex3_names
}

/// One of EX3's runs on the names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ex3Run {
    /// Every estimate, step 0 first.
    pub evals: Vec<Eval>,
    /// The step of the lowest validation estimate.
    pub best_step: usize,
    /// The loss over all the held-out names at that step.
    pub best_whole_val: f32,
    /// The same after the last step.
    pub last_whole_val: f32,
    /// Names the best model writes (from a newline, sampled).
    pub samples: Vec<String>,
}

/// Trains `model` (fresh, or pretrained) on `corpus` with `config`, a
/// fresh AdamW, the draws from `seed`: the same loop as every run, nothing
/// else. Returns the model after the last step, the model of the lowest
/// validation estimate (what `--save` keeps), and the run's state.
pub fn finetune<M: LanguageModel<Cpu> + Clone>(
    mut model: M,
    corpus: &Corpus,
    config: &TrainConfig,
    seed: u64,
    watch: &mut dyn Watch,
) -> Result<(M, M, TrainState<Cpu>), StageError> {
    let dev = Cpu::default();
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    // ANCHOR: finetune
    let mut state = TrainState::new(config);
    let mut best = None;
    let mut keep = |m: &M, _: &TrainState<Cpu>, _: &ChaCha12Rng| {
        best = Some(m.clone()); // the best so far
        Ok(())
    };
    let (m, c) = (&mut model, config);
    run_keeping(&dev, m, corpus, c, &mut state, &mut rng, watch, &mut keep)?;
    let best = best.unwrap_or_else(|| model.clone());
    // ANCHOR_END: finetune
    Ok((model, best, state))
}

/// The seed of EX3's name split and its runs' batches.
pub const EX3_SEED: u64 = 1337;

/// [`finetune`], measured: the record of the run.
pub fn ex3_run<M: LanguageModel<Cpu> + Clone>(
    model: M,
    corpus: &Corpus,
    config: &TrainConfig,
    watch: &mut dyn Watch,
) -> Result<Ex3Run, StageError> {
    let dev = Cpu::default();
    let (last, best, state) = finetune(model, corpus, config, EX3_SEED, watch)?;
    let best_step = state.best_eval().map_or(0, |e| e.step);
    let best_whole_val = split_loss(&dev, &best, corpus, Split::Val, config)?;
    let last_whole_val = split_loss(&dev, &last, corpus, Split::Val, config)?;
    let mut rng = ChaCha12Rng::seed_from_u64(EX3_SEED);
    let newline = corpus.vocab.encode("\n").map_err(TextError::from)?;
    let rows = best.generate(&[newline], 100, &mut rng)?; // (1, 101)
    let text = corpus.vocab.decode(&rows[0][1..]);
    let mut samples: Vec<String> = text.lines().map(str::to_string).collect();
    samples.pop(); // the last is cut off
    Ok(Ex3Run {
        evals: state.history.evals.clone(),
        best_step,
        best_whole_val,
        last_whole_val,
        samples,
    })
}

/// EX3 at one size: both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ex3Size {
    /// Names to learn from.
    pub names: usize,
    /// Their characters, newlines included.
    pub train_chars: usize,
    /// The `small` preset from scratch on the names.
    pub scratch: Ex3Run,
    /// The pretrained model, finetuned on the names.
    pub finetuned: Ex3Run,
}

/// EX3 as the record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ex3 {
    /// Names to measure on.
    pub val_names: usize,
    /// The settings from scratch, and finetuning.
    pub configs: (TrainConfig, TrainConfig),
    /// Characters in the vocabulary (the pretraining text's).
    pub vocab: usize,
    /// The pretrained model (EX4's first ReLU run) on all the held-out
    /// names, before finetuning.
    pub pretrained_whole_val: f32,
    /// Every size's runs, smallest first.
    pub sizes: Vec<Ex3Size>,
}

impl Ex3 {
    /// The runs at the size the chapter follows, [`EX3_TRAIN_NAMES`].
    pub fn main(&self) -> Option<&Ex3Size> {
        self.sizes.iter().find(|s| s.names == EX3_TRAIN_NAMES)
    }
}

/// EX3's names at size `train` ([`ex3_names`]) and the fresh model that
/// learns them from scratch, both drawn from [`EX3_SEED`] (the same fresh
/// weights at every size).
pub fn ex3_start(
    names: &[String],
    vocab: &Vocab,
    train: usize,
) -> Result<(Corpus, GptSmall<Cpu>), StageError> {
    let mut rng = ChaCha12Rng::seed_from_u64(EX3_SEED);
    let corpus = ex3_names(names, vocab, train, &mut rng)?;
    let fresh = GptSmall::init(&Cpu::default(), corpus.vocab.len(), &mut rng)?;
    Ok((corpus, fresh))
}

/// Runs EX3 with the `pretrained` model and the text it learned from: for
/// each of `sizes`, the names, then both runs with `configs` (scratch,
/// finetuning); and the pretrained model's loss on the held-out names.
pub fn run_ex3(
    pretrained: &GptSmall<Cpu>,
    pretrain_corpus: &Corpus,
    names: &[String],
    sizes: &[usize],
    configs: (TrainConfig, TrainConfig),
    watch: &mut dyn Watch,
) -> Result<Ex3, StageError> {
    let dev = Cpu::default();
    let vocab = &pretrain_corpus.vocab;
    let (mut runs, mut pretrained_whole_val) = (Vec::new(), f32::NAN);
    for &n in sizes {
        let (corpus, fresh) = ex3_start(names, vocab, n)?;
        if runs.is_empty() {
            // the held-out names are the same at every size: measured once
            pretrained_whole_val = split_loss(&dev, pretrained, &corpus, Split::Val, &configs.1)?;
        }
        runs.push(Ex3Size {
            names: n,
            train_chars: corpus.train.len(),
            scratch: ex3_run(fresh, &corpus, &configs.0, watch)?,
            finetuned: ex3_run(pretrained.clone(), &corpus, &configs.1, watch)?,
        });
    }
    Ok(Ex3 {
        val_names: EX3_VAL_NAMES,
        configs,
        vocab: vocab.len(),
        pretrained_whole_val,
        sizes: runs,
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
    TrainCurves {
        title: "EX2: the small preset on sums (train and val estimates)",
        step_losses: &[],
        runs: vec![("addition".to_string(), x.evals.as_slice())],
    }
    .save(&dir.join("ex2-loss.svg"))?;
    Ok(())
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
    let gain = |s: &Ex3Size| s.scratch.best_whole_val - s.finetuned.best_whole_val;
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
        let vals = v.iter().map(|x| f64::from(x.whole_val));
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
        machine: super::gpt_book::machine(),
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
        let ex2 = run_ex2(config, &mut *progress("EX2: a GPT that adds", TOUR_STEPS))?;
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
             EX2: {} steps on {} sums: {} of {} held-out sums right (the book's run: {} steps)\n\
             EX3: {} names, {} steps: from scratch {:.4}, pretrained {} steps on Shakespeare then finetuned {:.4}\n\
             EX4: {} steps on Shakespeare: ReLU {:.4}, GELU {:.4} (the book's: {} seeds of {} steps)",
            TOUR_STEPS,
            ex2.train_problems,
            ex2.correct,
            ex2.held_out,
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
