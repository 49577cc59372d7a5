//! Chapter 8's book files: the presets' full runs (`small` and `cpu` on tiny
//! Shakespeare, `small` on names.txt read as plain text), samples of the
//! `cpu` model at several temperatures and with top-k, and everything the
//! chapter quotes about them.
//!
//! The runs take minutes, so they are kept as one record, `runs.json`
//! ([`GptBook`], every estimate at full precision), from which the figures
//! and `numbers.md` are drawn ([`render`]). `charlm figures` makes the
//! record anew ([`run_book`]); the test renders the committed record and
//! checks the files, and replays the start of every run
//! ([`replay_start`]), which must give the record's first estimates to the
//! bit: same seed, same code, same numbers.

use std::fmt::Write as _;
use std::path::Path;

use dfdx::prelude::Cpu;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};

use super::{preset_params, CPU_MINUTES, CPU_TARGET, NANOGPT_CPU, SMALL_TARGET, TORCH_SMALL_VAL};
use crate::data::text::Split;
use crate::data::DataSets;
use crate::models::bigram_counts::BigramCounts;
use crate::models::lm::Sampling;
use crate::models::{LanguageModel, ModelJob};
use crate::plot::{Figure, TrainCurves};
use crate::presets::{self, Group, Preset};
use crate::stages::{BookNumbers, StageError};
use crate::train::session::{self, Settings};
use crate::train::{split_loss, Eval, StopAt, TrainConfig};

/// The temperatures of the chapter's samples (1 is the model's own
/// distribution).
pub const TEMPERATURES: [f32; 3] = [0.5, 1.0, 1.5];

/// The top-k sample keeps this many of the most likely characters.
pub const TOP_K: usize = 10;

/// Characters per sample.
pub const SAMPLE_TOKENS: usize = 400;

/// The seed of every run and every sample.
pub const SEED: u64 = 1337;

/// One of the chapter's training runs, as the record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookRun {
    /// The run's name in the chapter: the preset, or `names` for the small
    /// preset on names.txt.
    pub name: String,
    /// The preset (`charlm gpt --preset NAME`).
    pub preset: String,
    /// The text it trained on (a file name).
    pub data: String,
    /// Its settings.
    pub config: TrainConfig,
    /// The model's parameters.
    pub params: usize,
    /// Characters in the vocabulary.
    pub vocab: usize,
    /// Every estimate, step 0 first.
    pub evals: Vec<Eval>,
    /// The final model's loss on the whole validation split.
    pub whole_val_loss: f32,
    /// Optimiser steps per second (estimates excluded).
    pub steps_per_second: f64,
    /// Training tokens per second.
    pub tokens_per_second: f64,
    /// Wall time of the whole run, estimates included.
    pub seconds: f64,
}

impl BookRun {
    /// The last estimate.
    pub fn last(&self) -> Eval {
        self.evals.last().copied().unwrap_or(Eval {
            step: 0,
            train: f32::NAN,
            val: f32::NAN,
        })
    }
}

/// A sample of the `cpu` model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookSample {
    /// Its temperature.
    pub temperature: f32,
    /// Its top-k, if any.
    pub top_k: Option<usize>,
    /// The text, after the newline it starts from.
    pub text: String,
}

/// Everything chapter 8 quotes from its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GptBook {
    /// The machine the runs took their time on.
    pub machine: String,
    /// `small`, `cpu`, then `names`.
    pub runs: Vec<BookRun>,
    /// The `cpu` model's samples at [`TEMPERATURES`], then at temperature 1
    /// with top-[`TOP_K`].
    pub samples: Vec<BookSample>,
    /// A sample of the small model trained on names.txt (temperature 1).
    pub names_sample: String,
    /// Chapter 1's counting model (bigram counts + 1, fitted on the names of
    /// the training split) on the names of the validation split: its loss
    /// per character, ends of names included.
    pub names_counts_loss: f32,
}

/// The chapter's runs: (name, preset, the data set's file name).
pub const RUNS: [(&str, &str, &str); 3] = [
    ("small", "small", "tinyshakespeare.txt"),
    ("cpu", "cpu", "tinyshakespeare.txt"),
    ("names", "small", "names.txt"),
];

/// The text a run trains on.
fn run_text<'a>(data: &'a DataSets, file: &str) -> Result<&'a str, StageError> {
    Ok(match file {
        "names.txt" => data.names_text()?,
        _ => data.text()?,
    })
}

/// The run called `name` in [`RUNS`], and its preset.
fn run_of(name: &str) -> Result<(&'static str, &'static Preset, &'static str), StageError> {
    let unknown = || StageError::Record(format!("chapter 8 has no run {name:?}"));
    let (name, preset, file) = RUNS.into_iter().find(|r| r.0 == name).ok_or_else(unknown)?;
    Ok((name, presets::get(preset).ok_or_else(unknown)?, file))
}

/// A run's settings: its preset's, seed [`SEED`], no sample (the record's
/// samples are drawn afterwards).
fn settings(preset: &Preset) -> Settings {
    Settings {
        config: preset.config,
        seed: SEED,
        sample_tokens: 0,
    }
}

/// Trains one of the [`RUNS`] (all of it, or up to `stop`) and returns its
/// record and the samples `samplings` ask of the trained model.
struct Train<'a> {
    dev: &'a Cpu,
    name: &'a str,
    preset: &'a str,
    text: (&'a str, &'a str),
    settings: &'a Settings,
    stop: Option<usize>,
    samplings: &'a [Sampling],
}

impl ModelJob<Cpu> for Train<'_> {
    type Output = Result<(BookRun, Vec<String>), StageError>;

    fn run<M: LanguageModel<Cpu>>(self) -> Self::Output {
        let (file, text) = self.text;
        let mut stop = StopAt(self.stop.unwrap_or(usize::MAX));
        let s = session::start::<Cpu, M>(self.dev, text, self.settings, None, &mut stop)?;
        let whole_val_loss = match self.stop {
            None => split_loss(self.dev, &s.model, &s.corpus, Split::Val, &s.config)?,
            Some(_) => f32::NAN,
        };
        let mut samples = Vec::new();
        for &sampling in self.samplings {
            let mut rng = ChaCha12Rng::seed_from_u64(SEED);
            let rows = s.model.generate_sampled(
                &[vec![0]],
                SAMPLE_TOKENS,
                sampling,
                &mut rng,
                &mut |_| true,
            )?;
            samples.push(s.corpus.vocab.decode(&rows[0][1..]));
        }
        let r = &s.report;
        let run = BookRun {
            name: self.name.to_string(),
            preset: self.preset.to_string(),
            data: file.to_string(),
            config: s.config,
            params: r.params,
            vocab: r.vocab,
            evals: s.train.history.evals.clone(),
            whole_val_loss,
            steps_per_second: r.steps_per_second,
            tokens_per_second: r.tokens_per_second,
            seconds: r.seconds,
        };
        Ok((run, samples))
    }
}

/// Runs `name` of [`RUNS`] (up to step `stop`, if given), with the samples
/// `samplings` ask of the trained model.
fn train(
    data: &DataSets,
    name: &str,
    stop: Option<usize>,
    samplings: &[Sampling],
) -> Result<(BookRun, Vec<String>), StageError> {
    let (name, preset, file) = run_of(name)?;
    let dev = Cpu::default();
    preset.kind.with(Train {
        dev: &dev,
        name,
        preset: preset.name,
        text: (file, run_text(data, file)?),
        settings: &settings(preset),
        stop,
        samplings,
    })
}

/// The first estimate after step 0 of `name`'s run, and the one before it:
/// a replay of the start of the run (seconds, where the run takes minutes).
pub fn replay_start(data: &DataSets, name: &str) -> Result<Vec<Eval>, StageError> {
    let interval = run_of(name)?.1.config.eval_interval;
    Ok(train(data, name, Some(interval + 1), &[])?.0.evals)
}

/// Every run of the chapter in full, the samples, and chapter 1's model on
/// names.txt: the record [`render`] draws from (several minutes).
pub fn run_book(data: &DataSets) -> Result<GptBook, StageError> {
    let samplings: Vec<Sampling> = TEMPERATURES
        .iter()
        .map(|&temperature| Sampling {
            temperature,
            top_k: None,
        })
        .chain([Sampling {
            temperature: 1.0,
            top_k: Some(TOP_K),
        }])
        .collect();
    let mut runs = Vec::new();
    let mut samples = Vec::new();
    let mut names_sample = String::new();
    for (name, _, _) in RUNS {
        let asked: &[Sampling] = match name {
            "cpu" => &samplings,
            "names" => &samplings[1..2],
            _ => &[],
        };
        let (run, texts) = train(data, name, None, asked)?;
        match name {
            "cpu" => {
                samples = samplings
                    .iter()
                    .zip(texts)
                    .map(|(s, text)| BookSample {
                        temperature: s.temperature,
                        top_k: s.top_k,
                        text,
                    })
                    .collect()
            }
            "names" => names_sample = texts.concat(),
            _ => {}
        }
        runs.push(run);
    }
    Ok(GptBook {
        machine: machine(),
        runs,
        samples,
        names_sample,
        names_counts_loss: names_counts_loss(data.names_text()?)?,
    })
}

// ANCHOR: names_counts
/// Chapter 1's counting model on names.txt read as text: bigram counts + 1
/// from the names of the first 90% of the characters, its loss on the names
/// of the rest (per character, each name's end included: the newline the
/// GPT predicts there).
pub fn names_counts_loss(text: &str) -> Result<f32, StageError> {
    let n = text.chars().count() * 9 / 10; // as Corpus splits its tokens
    let at = text.char_indices().nth(n).map_or(text.len(), |(i, _)| i);
    let (train, val) = text.split_at(at);
    let words = |part: &str| -> Vec<String> {
        part.lines()
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    let model = BigramCounts::from_words(&words(train))?.probabilities(1.0)?;
    Ok(model.nll_f32(&words(val))?)
}
// ANCHOR_END: names_counts

/// The processor, and how many cores there are.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {cores} cores")
}

/// The record's file name, in the stage's folder.
pub const RECORD: &str = "runs.json";

/// Writes the record, then the files drawn from it.
pub fn write_book_files(book: &GptBook, dir: &Path) -> Result<(), StageError> {
    crate::stages::write_record(dir, RECORD, book)?;
    render(book, dir)
}

/// Reads a record written by [`write_book_files`].
pub fn read_record(dir: &Path) -> Result<GptBook, StageError> {
    crate::stages::read_record(dir, RECORD, super::ID)
}

/// The chapter's figures and numbers, from the record: `numbers.md`,
/// `loss.svg` (both presets on tiny Shakespeare), `loss-names.svg`.
pub fn render(book: &GptBook, dir: &Path) -> Result<(), StageError> {
    let mut numbers = BookNumbers::default();
    let mut put = |name: &str, value: String| numbers.put(name, value);
    let vocab = book.runs.first().map_or(65, |r| r.vocab);
    let mut table = String::from("| preset | configuration | parameters |\n|---|---|---:|\n");
    for ((name, params), preset) in preset_params(vocab)?
        .into_iter()
        .zip(presets::group(Group::Gpt))
    {
        let _ = writeln!(table, "| `{name}` | {} | {params} |", preset.about);
        put(&format!("params_{name}"), params.to_string());
        put(
            &format!("params_by_hand_{name}"),
            preset.sizes().params_sum(vocab),
        );
    }
    put(
        "lecture_val",
        format!("{:.2}", presets::LECTURE.lecture_val.unwrap_or(f64::NAN)),
    );
    put("small_target", format!("{SMALL_TARGET:.2}"));
    put("torch_small_val", format!("{TORCH_SMALL_VAL:.4}"));
    put("cpu_target", format!("{CPU_TARGET:.2}"));
    put("cpu_budget_minutes", format!("{CPU_MINUTES:.0}"));
    put("nanogpt_cpu_val", format!("{:.2}", NANOGPT_CPU.0));
    put("nanogpt_cpu_minutes", format!("{:.0}", NANOGPT_CPU.1));
    let lecture = presets::LECTURE.config;
    put("lecture_dropout", format!("{}", lecture.dropout));
    put("lecture_steps", format!("{}", lecture.max_iters));
    let draws = presets::LECTURE.sizes().dropout_draws(lecture.batch_size) as f64;
    put(
        "lecture_dropout_draws",
        format!("{:.0} million", draws / 1e6),
    );
    put(
        "torch_spread",
        format!("{:.1e}", super::parity::torch_spread()?),
    );
    put("presets", table.trim_end().to_string());
    let mut runs = String::from(
        "| run | text | steps | parameters | train loss | val loss | whole val split | time | tokens/s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &book.runs {
        let last = r.last();
        let _ = writeln!(
            runs,
            "| {} | {} | {} | {} | {:.4} | {:.4} | {:.4} | {:.1} min | {:.0} |",
            r.name,
            r.data,
            last.step,
            r.params,
            last.train,
            last.val,
            r.whole_val_loss,
            r.seconds / 60.0,
            r.tokens_per_second
        );
        let n = &r.name;
        put(&format!("{n}_val"), format!("{:.4}", last.val));
        put(&format!("{n}_train"), format!("{:.4}", last.train));
        put(
            &format!("{n}_whole_val"),
            format!("{:.4}", r.whole_val_loss),
        );
        put(
            &format!("{n}_initial"),
            format!("{:.4}", r.evals.first().map_or(f32::NAN, |e| e.val)),
        );
        put(&format!("{n}_minutes"), format!("{:.1}", r.seconds / 60.0));
        put(
            &format!("{n}_steps_per_second"),
            format!("{:.1}", r.steps_per_second),
        );
        put(
            &format!("{n}_tokens_per_second"),
            format!("{:.0}", r.tokens_per_second),
        );
        put(&format!("{n}_steps"), last.step.to_string());
        put(&format!("{n}_block"), r.config.block_size.to_string());
        put(&format!("{n}_vocab"), r.vocab.to_string());
    }
    put("runs", runs.trim_end().to_string());
    put("machine", book.machine.clone());
    for s in &book.samples {
        let (key, label) = match s.top_k {
            Some(k) => (
                format!("sample_top{k}"),
                format!("temperature {} with top-{k}", s.temperature),
            ),
            None => (
                format!("sample_t{}", (s.temperature * 10.0).round() as u32),
                format!("temperature {}", s.temperature),
            ),
        };
        put(
            &key,
            format!("At {label}:\n\n```text\n{}\n```", s.text.trim_end()),
        );
    }
    put(
        "temperatures",
        TEMPERATURES.map(|t| format!("{t}")).join(", "),
    );
    put("top_k", TOP_K.to_string());
    put("sample_tokens", SAMPLE_TOKENS.to_string());
    let names: String = book
        .names_sample
        .lines()
        .take(12)
        .collect::<Vec<_>>()
        .join("\n");
    put("names_sample", format!("```text\n{names}\n```"));
    put(
        "names_counts_loss",
        format!("{:.4}", book.names_counts_loss),
    );
    numbers.write(dir)?;
    let curves = |runs: &[&str]| TrainCurves {
        title: "",
        step_losses: &[],
        runs: book
            .runs
            .iter()
            .filter(|r| runs.contains(&r.name.as_str()))
            .map(|r| {
                (
                    format!("{} ({} steps)", r.name, r.last().step),
                    r.evals.as_slice(),
                )
            })
            .collect(),
    };
    TrainCurves {
        title: "chapter 8 on tiny Shakespeare: the small and cpu presets (train and val estimates)",
        ..curves(&["small", "cpu"])
    }
    .save(&dir.join("loss.svg"))?;
    TrainCurves {
        title: "the small preset on names.txt read as text (train and val estimates)",
        ..curves(&["names"])
    }
    .save(&dir.join("loss-names.svg"))?;
    Ok(())
}
