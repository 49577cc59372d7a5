//! Each stage run end to end with its key figures: what `charlm tour` prints,
//! what `charlm figures` writes for the book, and what the notebooks show.
//!
//! Every number quoted in the book comes from here: [`CountsRun::numbers`]
//! renders them into an anchored text file that chapters include with
//! `{{#include figures/<stage>/numbers.md:<anchor>}}`, and a test checks that
//! the committed files are what the code produces today.

use std::fmt::Write as _;
use std::path::Path;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use dfdx::prelude::Cpu;

use crate::attention_trick::{Btc, TrickError};
use crate::bigram_counts::{BigramCounts, BigramError, BigramModel};
use crate::bigram_embedding::{BigramLanguageModel, ModelError, SHAKESPEARE_VOCAB};
use crate::bigram_onehot::{
    self as onehot, Batch, BigramNet, Forward, History, OneHotConfig, OneHotError, Pairs,
    NAMES_VOCAB,
};
use crate::checkpoint::{self, CheckpointError};
use crate::fsutil;
use crate::fused::Fused;
use crate::plot::{
    CountHeatmap, Figure, LossCurves, PlotError, ProbMatrix, RowBars, SideBySide, TrainCurves,
};
use crate::text::{block_examples, Corpus, Split, TextError};
use crate::train::{
    self, Event, Finish, LanguageModel, TrainConfig, TrainError, TrainReport, TrainState,
};
use rand_chacha::ChaCha12Rng;

/// The lecture's generator seed (`torch.Generator().manual_seed(2147483647)`).
pub const LECTURE_SEED: u64 = 2147483647;

/// Errors while running a stage or writing its outputs.
#[derive(Debug, thiserror::Error)]
pub enum TourError {
    /// The model rejected its input.
    #[error(transparent)]
    Bigram(#[from] BigramError),
    /// A figure failed.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// The neural net failed (bad settings, divergence, device).
    #[error(transparent)]
    OneHot(#[from] OneHotError),
    /// The text could not be tokenized or batched.
    #[error(transparent)]
    Text(#[from] TextError),
    /// A language model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Training a language model failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A checkpoint could not be saved or loaded.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The attention trick failed.
    #[error(transparent)]
    Trick(#[from] TrickError),
    /// Checking against PyTorch failed to run.
    #[error(transparent)]
    Parity(#[from] crate::parity::ParityError),
    /// Writing an output file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

// ANCHOR: counts_settings
/// Settings of the counting model run (chapter 1).
#[derive(Debug, Clone, PartialEq)]
pub struct CountsSettings {
    /// `k` added to every count before normalising (the lecture uses 1).
    pub smoothing: f64,
    /// How many names to sample.
    pub samples: usize,
    /// Seed of the one RNG every sample is drawn from.
    pub seed: u64,
}

impl Default for CountsSettings {
    fn default() -> Self {
        Self {
            smoothing: 1.0,
            samples: 10,
            seed: LECTURE_SEED,
        }
    }
}
// ANCHOR_END: counts_settings

/// The key figures of a counting-model run, as `charlm counts --json` prints them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountsReport {
    /// Names in the data.
    pub words: usize,
    /// Bigrams counted, start and end tokens included.
    pub bigrams: u64,
    /// Characters in the vocabulary, '.' included.
    pub vocab_size: usize,
    /// Cells of `N` that are zero.
    pub zero_cells: usize,
    /// The smoothing `k` used.
    pub smoothing: f64,
    /// Sum of `ln P` over all bigrams (f64).
    pub log_likelihood: f64,
    /// Average negative log-likelihood, computed in f64.
    pub nll: f64,
    /// The same, computed in float32 as the lecture's PyTorch loop does.
    pub nll_f32: f32,
    /// The loss of a model that knows nothing: ln(vocab_size).
    pub nll_uniform: f64,
    /// The ten most common bigrams and their counts.
    pub most_common: Vec<(String, u32)>,
    /// Names sampled from the model.
    pub samples: Vec<String>,
}

/// A finished counting-model run: the model and its report.
pub struct CountsRun {
    /// The model `P`.
    pub model: BigramModel,
    /// Its key figures.
    pub report: CountsReport,
}

/// Counts, normalises, scores and samples: the whole of chapter 1.
pub fn run_counts<S: AsRef<str>>(
    words: &[S],
    settings: &CountsSettings,
) -> Result<CountsRun, TourError> {
    let counts = BigramCounts::from_words(words)?;
    let model = counts.probabilities(settings.smoothing)?;
    let nll = model.nll(words)?;
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let report = CountsReport {
        words: words.len(),
        bigrams: counts.total(),
        vocab_size: counts.size(),
        zero_cells: counts.zero_cells(),
        smoothing: settings.smoothing,
        log_likelihood: nll.log_likelihood,
        nll: nll.nll,
        nll_f32: model.nll_f32(words)?,
        nll_uniform: (counts.size() as f64).ln(),
        most_common: counts
            .most_common(10)
            .into_iter()
            .map(|(a, b, c)| (format!("{a}{b}"), c))
            .collect(),
        samples: model.sample_names(&mut rng, settings.samples),
    };
    Ok(CountsRun { model, report })
}

impl CountsRun {
    /// Human-readable summary, as `charlm counts` and `charlm tour` print it.
    pub fn summary(&self) -> String {
        let r = &self.report;
        let mut s = String::new();
        let _ = writeln!(s, "words            {}", r.words);
        let _ = writeln!(s, "bigrams          {}", r.bigrams);
        let _ = writeln!(s, "vocabulary       {} characters", r.vocab_size);
        let _ = writeln!(
            s,
            "zero counts      {} of {} cells",
            r.zero_cells,
            r.vocab_size * r.vocab_size
        );
        let common: Vec<String> = r
            .most_common
            .iter()
            .map(|(b, c)| format!("{b} {c}"))
            .collect();
        let _ = writeln!(s, "most common      {}", common.join(", "));
        let _ = writeln!(s, "log-likelihood   {:.2}", r.log_likelihood);
        let _ = writeln!(
            s,
            "nll (k = {})      {:.4}   (float32 sum: {:.4}; uniform model: {:.4})",
            r.smoothing, r.nll, r.nll_f32, r.nll_uniform
        );
        let _ = writeln!(s, "samples          {}", r.samples.join(" "));
        s
    }

    /// The figures of this stage, by file stem.
    pub fn save_figures(
        &self,
        dir: &Path,
        extensions: &[&str],
    ) -> Result<Vec<std::path::PathBuf>, TourError> {
        let mut written = Vec::new();
        for ext in extensions {
            let heatmap = dir.join(format!("heatmap.{ext}"));
            CountHeatmap(self.model.counts()).save(&heatmap)?;
            let first_row = dir.join(format!("first-row.{ext}"));
            RowBars {
                model: &self.model,
                row: 0,
            }
            .save(&first_row)?;
            written.extend([heatmap, first_row]);
        }
        Ok(written)
    }

    /// Every number the chapter quotes, as an anchored file for `{{#include}}`.
    pub fn numbers<S: AsRef<str>>(&self, words: &[S]) -> Result<String, TourError> {
        let r = &self.report;
        let n = self.model.counts();
        let mut numbers = BookNumbers::default();
        let mut put = |name: &str, value: String| numbers.put(name, value);
        put("words", r.words.to_string());
        put("bigrams", r.bigrams.to_string());
        put("vocab_size", r.vocab_size.to_string());
        put("cells", (r.vocab_size * r.vocab_size).to_string());
        put("zero_cells", r.zero_cells.to_string());
        put(
            "first_words",
            format!(
                "{:?}",
                words.iter().take(3).map(|w| w.as_ref()).collect::<Vec<_>>()
            ),
        );
        put(
            "shortest",
            words
                .iter()
                .map(|w| w.as_ref().chars().count())
                .min()
                .unwrap_or(0)
                .to_string(),
        );
        put(
            "longest",
            words
                .iter()
                .map(|w| w.as_ref().chars().count())
                .max()
                .unwrap_or(0)
                .to_string(),
        );
        let count = |a, b| n.count(a, b).unwrap_or(0).to_string();
        put("n_dot_a", count('.', 'a'));
        put("n_a_n", count('a', 'n'));
        put("n_n_dot", count('n', '.'));
        put("n_q_dot", count('q', '.'));
        put("n_j_q", count('j', 'q'));
        let mut table = String::from("| bigram | count |\n|---|---:|\n");
        for (b, c) in &r.most_common {
            let _ = writeln!(table, "| `{b}` | {c} |");
        }
        put("most_common", table.trim_end().to_string());
        put("p_dot_a", format!("{:.4}", self.model.prob(0, 1)));
        put("log_likelihood", format!("{:.2}", r.log_likelihood));
        put("nll", format!("{:.4}", r.nll));
        put("nll_f32", format!("{:.4}", r.nll_f32));
        put("nll_uniform", format!("{:.4}", r.nll_uniform));
        let unsmoothed = n.probabilities(0.0)?;
        put("nll_k0", format!("{:.4}", unsmoothed.nll(words)?.nll));
        let heavy = n.probabilities(1000.0)?;
        put("nll_k1000", format!("{:.4}", heavy.nll(words)?.nll));
        let k0 = unsmoothed.nll(&["andrejq"])?.nll;
        put(
            "andrejq_k0",
            if k0.is_infinite() {
                "∞".into()
            } else {
                format!("{k0:.4}")
            },
        );
        put(
            "andrejq_k1",
            format!("{:.4}", self.model.nll(&["andrejq"])?.nll),
        );
        // The lecture's walk through the first word, bigram by bigram.
        let mut walk = String::from("| bigram | P | ln P |\n|---|---:|---:|\n");
        let first = words.first().map(|w| w.as_ref()).unwrap_or("");
        for (a, b) in crate::bigram_counts::bigrams(first) {
            let (i, j) = (
                n.vocab().index(a).unwrap_or(0),
                n.vocab().index(b).unwrap_or(0),
            );
            let p = self.model.prob(i, j);
            let _ = writeln!(walk, "| `{a}{b}` | {p:.4} | {:.4} |", p.ln());
        }
        put("first_word_walk", walk.trim_end().to_string());
        put(
            "first_word_nll",
            format!("{:.4}", self.model.nll(&[first])?.nll),
        );
        put("samples", sample_block(&r.samples));
        // Samples from the model that knows nothing: every character equally likely.
        let uniform_counts = BigramCounts::with_vocab(n.vocab().clone(), &[] as &[&str])?;
        let uniform = uniform_counts.probabilities(1.0)?;
        let mut rng = StdRng::seed_from_u64(LECTURE_SEED);
        put(
            "uniform_samples",
            sample_block(&uniform.sample_names(&mut rng, 5)),
        );
        Ok(numbers.0)
    }

    /// Writes the book's figures (SVG) and numbers into `dir`.
    pub fn write_book_files<S: AsRef<str>>(
        &self,
        words: &[S],
        dir: &Path,
    ) -> Result<(), TourError> {
        self.save_figures(dir, &["svg"])?;
        BookNumbers(self.numbers(words)?).write(dir)
    }
}

/// The `numbers.md` of a stage: every value its chapter quotes, each between
/// `ANCHOR: name` and `ANCHOR_END: name` lines for `{{#include ...:name}}`.
struct BookNumbers(String);

impl Default for BookNumbers {
    fn default() -> Self {
        Self(String::from(
            "<!-- Generated by `charlm figures`; do not edit. Each ANCHOR is one quoted value. -->\n",
        ))
    }
}

impl BookNumbers {
    /// Adds one anchored value.
    fn put(&mut self, name: &str, value: String) {
        let _ = write!(self.0, "ANCHOR: {name}\n{value}\nANCHOR_END: {name}\n");
    }

    /// Writes `dir/numbers.md` atomically.
    fn write(&self, dir: &Path) -> Result<(), TourError> {
        let path = dir.join("numbers.md");
        fsutil::write_atomic(&path, self.0.as_bytes())
            .map_err(|source| TourError::Io { path, source })
    }
}

/// Sampled names as a text block, one per line; a name that ended at once
/// (the model drew '.' first) is shown as "(empty)".
fn sample_block(names: &[String]) -> String {
    let lines: Vec<&str> = names
        .iter()
        .map(|n| if n.is_empty() { "(empty)" } else { n.as_str() })
        .collect();
    format!("```text\n{}\n```", lines.join("\n"))
}

/// The folder, below the figures folder, of the counting model's outputs.
pub const COUNTS_DIR: &str = "bigram_counts";

/// The folder, below the figures folder, of the one-hot net's outputs.
pub const ONEHOT_DIR: &str = "bigram_onehot";

// ANCHOR: onehot_settings
/// Settings of the one-hot net run (chapter 2): the lecture's training
/// settings, its generator seed, and how many names to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct OneHotSettings {
    /// Steps, learning rate, regularisation, forward path.
    pub config: OneHotConfig,
    /// Seed of the one RNG that draws W and the samples.
    pub seed: u64,
    /// How many names to sample.
    pub samples: usize,
}

impl Default for OneHotSettings {
    fn default() -> Self {
        Self {
            config: OneHotConfig::default(),
            seed: LECTURE_SEED,
            samples: 10,
        }
    }
}
// ANCHOR_END: onehot_settings

/// The key figures of a one-hot net run, as `charlm onehot --json` prints them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OneHotReport {
    /// Training pairs.
    pub pairs: usize,
    /// Steps taken.
    pub steps: usize,
    /// Learning rate.
    pub lr: f32,
    /// Regularisation strength.
    pub reg: f32,
    /// "onehot" or "lookup".
    pub forward: &'static str,
    /// Loss before the first update.
    pub initial_loss: f32,
    /// Final loss, regulariser included.
    pub loss: f32,
    /// Final NLL alone.
    pub nll: f32,
    /// The counting model's NLL (k = 1) on the same data, to compare.
    pub counts_nll: f64,
    /// Largest |softmax(W) - P| over rows with more than 1,000 bigrams.
    pub max_prob_diff: f64,
    /// Average wall-clock seconds per training step.
    pub seconds_per_step: f64,
    /// Names sampled from the trained net.
    pub samples: Vec<String>,
}

/// A finished one-hot net run.
pub struct OneHotRun<D: Fused> {
    /// The trained net.
    pub net: BigramNet<NAMES_VOCAB, D>,
    /// The loss at every step.
    pub history: History,
    /// Its key figures.
    pub report: OneHotReport,
    /// The counting model of chapter 1 (k = 1), for comparison.
    pub counts: BigramModel,
}

fn forward_name(f: Forward) -> &'static str {
    match f {
        Forward::OneHot => "onehot",
        Forward::Lookup => "lookup",
    }
}

/// Trains the one-hot net on `words` on `dev`: the whole of chapter 2.
/// `on_step(step, loss)` is called after every step.
pub fn run_onehot<D: Fused, S: AsRef<str>>(
    dev: &D,
    words: &[S],
    settings: &OneHotSettings,
    on_step: impl FnMut(usize, f32),
) -> Result<OneHotRun<D>, TourError> {
    settings.config.validate()?;
    let counts = BigramCounts::from_words(words)?;
    if counts.size() != NAMES_VOCAB {
        return Err(OneHotError::VocabSize {
            expected: NAMES_VOCAB,
            got: counts.size(),
        }
        .into());
    }
    let pairs = Pairs::new(words, counts.vocab())?;
    let batch: Batch<NAMES_VOCAB, D> = Batch::new(dev, &pairs)?;
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let mut net = BigramNet::new(dev, &mut rng)?;
    let history = onehot::train_with(&mut net, &batch, &settings.config, on_step)?;
    let model = counts.probabilities(1.0)?;
    let report = OneHotReport {
        pairs: pairs.len(),
        steps: settings.config.steps,
        lr: settings.config.lr,
        reg: settings.config.reg,
        forward: forward_name(settings.config.forward),
        initial_loss: history
            .losses
            .first()
            .copied()
            .unwrap_or(history.final_loss),
        loss: history.final_loss,
        nll: history.final_nll,
        counts_nll: model.nll(words)?.nll,
        max_prob_diff: max_prob_diff(&net, &model, 1000),
        seconds_per_step: history.seconds_per_step,
        samples: net
            .sampler(counts.vocab())?
            .sample_names(&mut rng, settings.samples),
    };
    Ok(OneHotRun {
        net,
        history,
        report,
        counts: model,
    })
}

/// Largest |softmax(W)[i][j] - P[i][j]| over rows `i` with more than
/// `min_row` bigrams (rows with few examples are dominated by the smoothing).
pub fn max_prob_diff<D: Fused>(
    net: &BigramNet<NAMES_VOCAB, D>,
    p: &BigramModel,
    min_row: u32,
) -> f64 {
    let q = net.probabilities();
    let v = NAMES_VOCAB;
    (0..v)
        .filter(|&i| p.counts().row(i).iter().sum::<u32>() > min_row)
        .flat_map(|i| (0..v).map(move |j| (i, j)))
        .map(|(i, j)| (q[i * v + j] as f64 - p.prob(i, j)).abs())
        .fold(0.0, f64::max)
}

impl<D: Fused> OneHotRun<D> {
    /// Human-readable summary, as `charlm onehot` and `charlm tour` print it.
    pub fn summary(&self) -> String {
        let r = &self.report;
        let mut s = String::new();
        let _ = writeln!(s, "pairs            {}", r.pairs);
        let _ = writeln!(
            s,
            "training         {} steps, lr {}, reg {}, {} forward",
            r.steps, r.lr, r.reg, r.forward
        );
        let _ = writeln!(
            s,
            "loss             {:.4} -> {:.4}   (nll alone {:.4}; counting model {:.4})",
            r.initial_loss, r.loss, r.nll, r.counts_nll
        );
        let _ = writeln!(
            s,
            "softmax(W) vs P  largest difference {:.4} (rows with > 1000 bigrams)",
            r.max_prob_diff
        );
        let _ = writeln!(
            s,
            "speed            {:.2} ms per step",
            r.seconds_per_step * 1e3
        );
        let _ = writeln!(s, "samples          {}", r.samples.join(" "));
        s
    }

    /// The loss curve and softmax(W) next to P.
    pub fn save_figures(
        &self,
        dir: &Path,
        extensions: &[&str],
    ) -> Result<Vec<std::path::PathBuf>, TourError> {
        let chars = self.counts.vocab().chars();
        let q: Vec<f64> = self.net.probabilities().iter().map(|&x| x as f64).collect();
        let mut written = Vec::new();
        for ext in extensions {
            let curve = dir.join(format!("loss.{ext}"));
            LossCurves {
                title: "one-hot bigram net: full-batch gradient descent",
                series: vec![(
                    format!("loss (reg {})", self.report.reg),
                    &self.history.losses,
                )],
            }
            .save(&curve)?;
            let pair = dir.join(format!("p-vs-softmax.{ext}"));
            SideBySide(
                ProbMatrix {
                    title: "P from counts (k = 1)".into(),
                    values: self.counts.as_slice(),
                    chars,
                },
                ProbMatrix {
                    title: "softmax(W) after training".into(),
                    values: &q,
                    chars,
                },
            )
            .save(&pair)?;
            written.extend([curve, pair]);
        }
        Ok(written)
    }
}

/// Every figure and number chapter 2 quotes, written into `dir`. Training
/// runs here use the lookup path (the tests check it equals the one-hot path)
/// so that regenerating the book takes seconds.
pub fn write_onehot_book_files<S: AsRef<str>>(words: &[S], dir: &Path) -> Result<(), TourError> {
    let dev = Cpu::default();
    let counts = BigramCounts::from_words(words)?;
    let vocab = counts.vocab();
    let chars = vocab.chars();
    let pairs = Pairs::new(words, vocab)?;
    let batch: Batch<NAMES_VOCAB, Cpu> = Batch::new(&dev, &pairs)?;
    let mut numbers = BookNumbers::default();
    let mut put = |name: &str, value: String| numbers.put(name, value);
    put("pairs", pairs.len().to_string());

    // The lecture's walk-through: "emma", a freshly initialised net.
    let init = BigramNet::<NAMES_VOCAB, Cpu>::new(&dev, &mut StdRng::seed_from_u64(LECTURE_SEED))?;
    let emma = Batch::<NAMES_VOCAB, Cpu>::new(&dev, &Pairs::new(&["emma"], vocab)?)?;
    let mut walk =
        String::from("| input | label | P(label) | ln P | NLL |\n|---|---|---:|---:|---:|\n");
    let examples = init.walk_through(&emma, vocab);
    for e in &examples {
        let _ = writeln!(
            walk,
            "| `{}` | `{}` | {:.4} | {:.4} | {:.4} |",
            e.input, e.label, e.prob, e.log_likelihood, e.nll
        );
    }
    put("emma_walk", walk.trim_end().to_string());
    let mean = examples.iter().map(|e| e.nll).sum::<f32>() / examples.len() as f32;
    put("emma_nll", format!("{mean:.4}"));

    // The lecture's run: 200 steps, lr 50, reg 0.01, from the lecture's seed.
    let cfg = OneHotConfig {
        steps: 200,
        forward: Forward::Lookup,
        ..OneHotConfig::default()
    };
    let mut net = init.clone();
    let h = onehot::train(&mut net, &batch, &cfg)?;
    put("initial_loss", format!("{:.4}", h.losses[0]));
    put("loss_100", format!("{:.4}", h.losses[100]));
    put("loss_200", format!("{:.4}", h.final_loss));
    put("nll_200", format!("{:.4}", h.final_nll));
    let mut rng = StdRng::seed_from_u64(LECTURE_SEED);
    put(
        "samples",
        sample_block(&net.sampler(vocab)?.sample_names(&mut rng, 10)),
    );

    // Longer runs with several regularisation strengths.
    let p = counts.probabilities(1.0)?;
    put("counts_nll", format!("{:.4}", p.nll(words)?.nll));
    let p0 = counts.probabilities(0.0)?;
    put("counts_nll_k0", format!("{:.4}", p0.nll(words)?.nll));
    let long = 1000;
    put("long_steps", long.to_string());
    let mut table = String::from(
        "| reg | loss | NLL part | largest \\|softmax(W) − P\\| |\n|---:|---:|---:|---:|\n",
    );
    let mut trained = Vec::new();
    let mut curves = Vec::new();
    for reg in [0.0f32, 0.01, 0.1, 1.0] {
        let mut n = init.clone();
        let cfg = OneHotConfig {
            steps: long,
            reg,
            forward: Forward::Lookup,
            ..OneHotConfig::default()
        };
        let h = onehot::train(&mut n, &batch, &cfg)?;
        let diff = max_prob_diff(&n, if reg == 0.0 { &p0 } else { &p }, 1000);
        let _ = writeln!(
            table,
            "| {reg} | {:.4} | {:.4} | {diff:.4} |",
            h.final_loss, h.final_nll
        );
        if reg == 0.0 {
            put("long_nll_reg0", format!("{:.4}", h.final_nll));
            put("max_diff_reg0", format!("{diff:.4}"));
        }
        if reg == 0.01 {
            put("long_loss_reg001", format!("{:.4}", h.final_loss));
            put("long_nll_reg001", format!("{:.4}", h.final_nll));
            put("max_diff_reg001", format!("{diff:.4}"));
        }
        trained.push((reg, n));
        curves.push((format!("reg {reg}"), h.losses));
    }
    put("reg_table", table.trim_end().to_string());

    let q = |n: &BigramNet<NAMES_VOCAB, Cpu>| -> Vec<f64> {
        n.probabilities().iter().map(|&x| x as f64).collect()
    };
    let fig = |name: &str| dir.join(name);
    LossCurves {
        title: "loss during training, for four regularisation strengths",
        series: curves
            .iter()
            .map(|(l, s)| (l.clone(), s.as_slice()))
            .collect(),
    }
    .save(&fig("loss.svg"))?;
    let q001 = q(&trained[1].1);
    SideBySide(
        ProbMatrix {
            title: "P from counts (k = 1)".into(),
            values: p.as_slice(),
            chars,
        },
        ProbMatrix {
            title: format!("softmax(W), reg 0.01, {long} steps"),
            values: &q001,
            chars,
        },
    )
    .save(&fig("p-vs-softmax.svg"))?;
    let (q0, q1) = (q(&trained[0].1), q(&trained[3].1));
    SideBySide(
        ProbMatrix {
            title: "softmax(W), reg 0".into(),
            values: &q0,
            chars,
        },
        ProbMatrix {
            title: "softmax(W), reg 1".into(),
            values: &q1,
            chars,
        },
    )
    .save(&fig("reg.svg"))?;
    numbers.write(dir)
}

// ANCHOR: bigram_settings
/// Settings of the bigram language model run (chapter 3): bigram.py's
/// training settings and seed, PyTorch's `nn.Embedding` initialisation, and
/// how many tokens to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct BigramSettings {
    /// Batch, block, steps, learning rate, evaluation.
    pub config: TrainConfig,
    /// Seed of the one RNG that draws the table, the batches and the samples
    /// (bigram.py's `torch.manual_seed(1337)`).
    pub seed: u64,
    /// Standard deviation of the initial table (PyTorch: 1).
    pub init_std: f32,
    /// Tokens to generate from the trained (and the untrained) model.
    pub sample_tokens: usize,
}

impl Default for BigramSettings {
    fn default() -> Self {
        Self {
            config: TrainConfig::default(),
            seed: 1337,
            init_std: 1.0,
            sample_tokens: 500,
        }
    }
}
// ANCHOR_END: bigram_settings

/// The key figures of a bigram language model run, as `charlm bigram --json`
/// prints them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BigramReport {
    /// Vocabulary size.
    pub vocab: usize,
    /// Tokens in the training split.
    pub train_tokens: usize,
    /// Tokens in the validation split.
    pub val_tokens: usize,
    /// Training settings.
    pub config: TrainConfig,
    /// Estimated training loss before the first step.
    pub initial_loss: f32,
    /// Estimated training loss after the last step.
    pub train_loss: f32,
    /// Estimated validation loss after the last step.
    pub val_loss: f32,
    /// Steps taken.
    pub steps: usize,
    /// Optimiser steps per second (estimates excluded).
    pub steps_per_second: f64,
    /// Text generated by the untrained model (not on a resumed run).
    pub untrained_sample: Option<String>,
    /// Text generated by the trained model.
    pub sample: String,
}

/// A language model run (chapter 3 on): finished, or stopped early (Ctrl-C)
/// with everything a checkpoint needs.
pub struct LmRun<D: Fused, M: LanguageModel<D>> {
    /// The model.
    pub model: M,
    /// The tokenized text.
    pub corpus: Corpus,
    /// The settings it ran with.
    pub config: TrainConfig,
    /// Where training stands.
    pub state: TrainState<D>,
    /// The random generator, where it stands.
    pub rng: ChaCha12Rng,
    /// Whether all steps were taken.
    pub finish: Finish,
    /// The training record.
    pub train: TrainReport,
    /// Its key figures (samples only when finished).
    pub report: BigramReport,
}

/// A finished bigram language model run.
pub type BigramRun<D> = LmRun<D, BigramLanguageModel<SHAKESPEARE_VOCAB, f32, D>>;

/// The model kind written into bigram checkpoints.
pub const BIGRAM_KIND: &str = "bigram";

/// Trains the bigram language model on `text` on `dev`: the whole of
/// chapter 3. `on_event` sees every step and estimate.
pub fn run_bigram<D: Fused>(
    dev: &D,
    text: &str,
    settings: &BigramSettings,
    on_event: impl FnMut(Event),
) -> Result<BigramRun<D>, TourError> {
    let init = |rng: &mut ChaCha12Rng| BigramLanguageModel::new(dev, rng, settings.init_std);
    run_lm_until(dev, text, settings, init, None, on_event, || false)
}

/// Trains a language model made by `init` (from the run's generator) on
/// `text`, optionally continuing from a checkpoint (`resume`: its path, and
/// settings that replace the saved ones), stopping early when `stop()` says so.
pub fn run_lm_until<D: Fused, M: LanguageModel<D>>(
    dev: &D,
    text: &str,
    settings: &BigramSettings,
    init: impl Fn(&mut ChaCha12Rng) -> Result<M, ModelError>,
    resume: Option<(&Path, &dyn Fn(TrainConfig) -> TrainConfig)>,
    on_event: impl FnMut(Event),
    stop: impl Fn() -> bool,
) -> Result<LmRun<D, M>, TourError> {
    let corpus = Corpus::new(text)?;
    let start = vec![vec![0]]; // one row, one token: '\n', as in the lecture
    let (mut model, mut state, mut rng, config, untrained) = match resume {
        None => {
            settings.config.validate()?;
            // ChaCha12 is StdRng's generator: the same draws, with a state to save
            let mut rng = ChaCha12Rng::seed_from_u64(settings.seed);
            let model = init(&mut rng)?;
            let untrained = model.generate(&start, settings.sample_tokens, &mut rng)?;
            let untrained = Some(corpus.vocab.decode(&untrained[0]));
            let state = TrainState::new(&settings.config);
            (model, state, rng, settings.config, untrained)
        }
        Some((path, overrides)) => {
            let mut model = init(&mut ChaCha12Rng::seed_from_u64(0))?;
            let mut loaded = checkpoint::load(dev, path, &mut model, M::KIND)?;
            if loaded.vocab != corpus.vocab {
                return Err(CheckpointError::Mismatch {
                    path: path.to_path_buf(),
                    reason: "its vocabulary differs from the text's".to_string(),
                }
                .into());
            }
            let config = overrides(loaded.meta.config);
            config.validate()?;
            loaded.state.opt.cfg = config.adamw();
            (model, loaded.state, loaded.rng, config, None)
        }
    };
    let finish = train::run(
        dev, &mut model, &corpus, &config, &mut state, &mut rng, on_event, stop,
    )?;
    let sample = match finish {
        Finish::Done => {
            // From a copy of the generator: a checkpoint saved after the
            // sample continues the training stream untouched by it.
            let sample = model.generate(&start, settings.sample_tokens, &mut rng.clone())?;
            corpus.vocab.decode(&sample[0])
        }
        Finish::Stopped => String::new(),
    };
    let train = state.report();
    let first = train.history.evals.first().copied();
    let last = train.last_eval();
    let report = BigramReport {
        vocab: corpus.vocab.len(),
        train_tokens: corpus.train.len(),
        val_tokens: corpus.val.len(),
        config,
        initial_loss: first.map_or(f32::NAN, |e| e.train),
        train_loss: last.map_or(f32::NAN, |e| e.train),
        val_loss: last.map_or(f32::NAN, |e| e.val),
        steps: train.steps,
        steps_per_second: train.steps_per_second(),
        untrained_sample: untrained,
        sample,
    };
    Ok(LmRun {
        model,
        corpus,
        config,
        state,
        rng,
        finish,
        train,
        report,
    })
}

impl<D: Fused, M: LanguageModel<D>> LmRun<D, M> {
    /// Saves a checkpoint of this run to `path`.
    pub fn save(&self, path: &Path) -> Result<(), TourError> {
        let (m, v, c) = (&self.model, &self.corpus.vocab, &self.config);
        Ok(checkpoint::save(
            path,
            m,
            M::KIND,
            v,
            c,
            &self.state,
            &self.rng,
        )?)
    }
}

impl<D: Fused, M: LanguageModel<D>> LmRun<D, M> {
    /// Human-readable summary, as `charlm bigram` and `charlm tour` print it.
    pub fn summary(&self) -> String {
        let r = &self.report;
        let c = &r.config;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "tokens           {} train, {} val, vocabulary {}",
            r.train_tokens, r.val_tokens, r.vocab
        );
        let _ = writeln!(
            s,
            "training         {} steps of AdamW, lr {}, batch {} x block {}",
            r.steps, c.learning_rate, c.batch_size, c.block_size
        );
        for e in &self.train.history.evals {
            let _ = writeln!(
                s,
                "step {:>6}      train loss {:.4}, val loss {:.4}",
                e.step, e.train, e.val
            );
        }
        let _ = writeln!(s, "speed            {:.0} steps/s", r.steps_per_second);
        let _ = writeln!(s, "sample\n{}", r.sample);
        s
    }
}

/// Where chapter 3's book files go, under `chapters/figures/`.
pub const BIGRAM_LM_DIR: &str = "bigram_embedding";

/// Text on one line: a newline shown as `\n`.
fn shown(text: &str) -> String {
    text.replace('\n', "\\n")
}

impl<D: Fused, M: LanguageModel<D>> LmRun<D, M> {
    /// The train/val loss curves.
    pub fn save_figures(
        &self,
        dir: &Path,
        extensions: &[&str],
    ) -> Result<Vec<std::path::PathBuf>, TourError> {
        let mut written = Vec::new();
        for ext in extensions {
            let path = dir.join(format!("loss.{ext}"));
            TrainCurves {
                title: "bigram language model on tiny Shakespeare: AdamW, lr 1e-2",
                step_losses: &self.train.history.step_losses,
                runs: vec![("bigram".to_string(), &self.train.history.evals)],
            }
            .save(&path)?;
            written.push(path);
        }
        Ok(written)
    }
}

/// Writes chapter 3's figure and quoted numbers into `dir`: the tokenizer,
/// the split, one block's examples, one batch, and the default training run.
pub fn write_bigram_book_files(text: &str, dir: &Path) -> Result<(), TourError> {
    let run = run_bigram(&Cpu::default(), text, &BigramSettings::default(), |_| {})?;
    let (c, r) = (&run.corpus, &run.report);
    let mut numbers = BookNumbers::default();
    let mut put = |name: &str, value: String| numbers.put(name, value);
    put("text_chars", text.chars().count().to_string());
    let head: String = text.chars().take(250).collect();
    put("text_head", format!("```text\n{}\n```", head.trim_end()));
    put("vocab_size", c.vocab.len().to_string());
    let chars: String = c.vocab.chars().iter().collect();
    put("vocab", format!("`{}`", shown(&chars)));
    let hii = c.vocab.encode("hii there").map_err(TextError::from)?;
    put("hii_ids", format!("{hii:?}"));
    put("hii_decoded", format!("\"{}\"", c.vocab.decode(&hii)));
    put("train_tokens", c.train.len().to_string());
    put("val_tokens", c.val.len().to_string());
    let block = &c.train[..9];
    put("first_block", format!("{block:?}"));
    let mut examples = String::from("```text\n");
    for (context, target) in block_examples(block) {
        let _ = writeln!(
            examples,
            "when input is {context:?} the target: {target}   \"{}\" -> \"{}\"",
            shown(&c.vocab.decode(context)),
            shown(&c.vocab.decode(&[target]))
        );
    }
    examples.push_str("```");
    put("block_examples", examples);
    let batch = c.get_batch(Split::Train, 4, 8, &mut StdRng::seed_from_u64(1337))?;
    let mut b = String::from("```text\n");
    for (name, rows) in [("inputs x", &batch.x), ("targets y", &batch.y)] {
        let _ = writeln!(b, "{name}: (4, 8)");
        for row in rows.chunks(8) {
            let _ = writeln!(b, "{row:?}");
        }
    }
    b.push_str("```");
    put("batch", b);
    put(
        "uniform_loss",
        format!("{:.4}", (c.vocab.len() as f32).ln()),
    );
    put("initial_loss", format!("{:.4}", r.initial_loss));
    let mut table = String::from("| step | train loss | val loss |\n|---:|---:|---:|\n");
    for e in &run.train.history.evals {
        let _ = writeln!(table, "| {} | {:.4} | {:.4} |", e.step, e.train, e.val);
    }
    put("evals", table.trim_end().to_string());
    put("train_loss", format!("{:.4}", r.train_loss));
    put("val_loss", format!("{:.4}", r.val_loss));
    put("steps", r.steps.to_string());
    let untrained: String = r
        .untrained_sample
        .iter()
        .flat_map(|s| s.chars())
        .take(300)
        .collect();
    put(
        "untrained_sample",
        format!("```text\n{}\n```", untrained.trim()),
    );
    put("sample", format!("```text\n{}\n```", r.sample.trim()));
    run.save_figures(dir, &["svg"])?;
    numbers.write(dir)
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
pub fn run_attention<D: Fused>(
    dev: &D,
    shape: (usize, usize, usize),
    seed: u64,
) -> Result<AttentionReport, TourError> {
    use crate::attention_trick::{
        bag_of_words_loops, bag_of_words_matmul, bag_of_words_softmax, max_abs_diff, randn,
    };
    let x = randn(dev, shape, &mut ChaCha12Rng::seed_from_u64(seed)); // (B, T, C)
    let timed = |f: &dyn Fn() -> Result<Btc<D>, TourError>| -> Result<(Btc<D>, f64), TourError> {
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

/// Where chapter 4's book files go, under `chapters/figures/`.
pub const ATTENTION_TRICK_DIR: &str = "attention_trick";

/// Where chapter 5's book files go, under `chapters/figures/`.
pub const HEAD_DIR: &str = "self_attention_head";

fn matrix_block<const C: usize>(name: &str, rows: &[[f32; C]]) -> String {
    let mut s = format!("{name} =\n");
    for r in rows {
        let cells: Vec<String> = r.iter().map(|v| format!("{v:7.4}")).collect();
        let _ = writeln!(s, "  [{}]", cells.join(", "));
    }
    s
}

/// Writes chapter 4's figure and quoted numbers into `dir`: the small demo,
/// the three versions' agreement, and the averaging matrix.
pub fn write_attention_book_files(dir: &Path) -> Result<(), TourError> {
    use crate::attention_trick::{
        bag_of_words_loops, bag_of_words_matmul, bag_of_words_softmax, demo, max_abs_diff, randn,
    };
    let dev = Cpu::default();
    let mut numbers = BookNumbers::default();
    let mut put = |name: &str, value: String| numbers.put(name, value);
    let d = demo(&dev, &mut ChaCha12Rng::seed_from_u64(42));
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
    let x = randn(&dev, (4, 8, 2), &mut ChaCha12Rng::seed_from_u64(1337)); // (4, 8, 2)
    let v1 = bag_of_words_loops(&x)?;
    let (v2, v3) = (bag_of_words_matmul(&x), bag_of_words_softmax(&x));
    put("diff_v1_v2", format!("{:.1e}", max_abs_diff(&v1, &v2)));
    put("diff_v1_v3", format!("{:.1e}", max_abs_diff(&v1, &v3)));
    let (xs, ys) = (x.as_vec(), v1.as_vec());
    let mut first = String::from("```text\n  t   x[0, t]              xbow[0, t]\n");
    for t in 0..8 {
        let _ = writeln!(
            first,
            "  {t}   [{:7.4}, {:7.4}]   [{:7.4}, {:7.4}]",
            xs[2 * t],
            xs[2 * t + 1],
            ys[2 * t],
            ys[2 * t + 1]
        );
    }
    first.push_str("```");
    put("first_row", first);
    save_attention_figures(dir, &["svg"])?;
    numbers.write(dir)
}

/// Chapter 4's figure: the (8, 8) averaging matrix.
pub fn save_attention_figures(
    dir: &Path,
    extensions: &[&str],
) -> Result<Vec<std::path::PathBuf>, TourError> {
    let wei = crate::attention_trick::tril_average(&Cpu::default(), 8).as_vec();
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

/// A character as an axis label: newline and space made visible.
fn label(c: char) -> char {
    match c {
        '\n' => '¶',
        ' ' => '_',
        c => c,
    }
}

/// Writes chapter 5's figures and quoted numbers into `dir`: the scaling
/// experiment, the one-head model trained with the defaults next to the
/// bigram model, and the attention weights of one real sequence.
pub fn write_head_book_files(text: &str, dir: &Path) -> Result<(), TourError> {
    use crate::self_attention::{scaling_stats, softmax_sharpening, ShakespeareHead};
    let dev = Cpu::default();
    let mut numbers = BookNumbers::default();
    let mut put = |name: &str, value: String| numbers.put(name, value);
    let s = scaling_stats(&dev, &mut ChaCha12Rng::seed_from_u64(1337), (4, 8, 16));
    put("var_k", format!("{:.4}", s.k));
    put("var_q", format!("{:.4}", s.q));
    put("var_raw", format!("{:.4}", s.raw));
    put("var_scaled", format!("{:.4}", s.scaled));
    let (soft, sharp) = softmax_sharpening(&[0.1, -0.2, 0.3, -0.2, 0.5], 8.0);
    let show = |v: &[f32]| {
        v.iter()
            .map(|p| format!("{p:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    put("softmax", format!("[{}]", show(&soft)));
    put("softmax_x8", format!("[{}]", show(&sharp)));

    let settings = BigramSettings::default();
    let head = run_lm_until(
        &dev,
        text,
        &settings,
        |rng: &mut ChaCha12Rng| ShakespeareHead::new(&dev, rng),
        None,
        |_| {},
        || false,
    )?;
    let bigram = run_bigram(&dev, text, &settings, |_| {})?;
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
    put(
        "sample",
        format!("```text\n{}\n```", head.report.sample.trim()),
    );
    let sequence = save_head_figures(&head, &bigram, dir, &["svg"])?;
    put("sequence", format!("\"{}\"", sequence.replace('\n', "\\n")));
    numbers.write(dir)
}

/// The head chapter's figures: the loss curves of the bigram and the
/// one-head model, and the trained head's attention weights on one
/// validation sequence (returned).
pub fn save_head_figures<D: Fused>(
    head: &LmRun<D, crate::self_attention::ShakespeareHead<D>>,
    bigram: &BigramRun<D>,
    dir: &Path,
    extensions: &[&str],
) -> Result<String, TourError> {
    let c = &head.corpus;
    let seq: Vec<usize> = c.val[1000..1008].to_vec();
    let dev = head.model.lm_head.bias.device().clone();
    let x = dev
        .try_tensor_from_vec(seq.clone(), (1, 8))
        .map_err(crate::bigram_embedding::dev_err)?; // (1, 8)
    let (_, wei) = head.model.forward_with_weights(x)?; // (1, 8, 8)
    let wei: Vec<f64> = wei.as_vec().iter().map(|&w| w as f64).collect();
    let text = c.vocab.decode(&seq);
    let chars: Vec<char> = text.chars().map(label).collect();
    for ext in extensions {
        TrainCurves {
            title: "one head of self-attention vs the bigram (val and train estimates)",
            step_losses: &[],
            runs: vec![
                ("bigram".to_string(), &bigram.train.history.evals),
                ("one head".to_string(), &head.train.history.evals),
            ],
        }
        .save(&dir.join(format!("loss.{ext}")))?;
        ProbMatrix {
            title: "trained head: row attends to column".to_string(),
            values: &wei,
            chars: &chars,
        }
        .save(&dir.join(format!("weights.{ext}")))?;
    }
    Ok(text)
}

/// Where the appendix's parity table goes, under `chapters/figures/`.
pub const PARITY_DIR: &str = "parity";

/// Writes the appendix's parity numbers into `dir`: the table of every
/// comparison with PyTorch, how many pass, and the PyTorch version.
pub fn write_parity_book_files(words: &[String], text: &str, dir: &Path) -> Result<(), TourError> {
    use crate::parity::{check_all, markdown_table, torch_version};
    let all = check_all(&Cpu::default(), words, text)?;
    let mut numbers = BookNumbers::default();
    let passed = all.iter().filter(|c| c.passes()).count();
    numbers.put("table", markdown_table(&all).trim_end().to_string());
    numbers.put("passed", format!("{passed} of {}", all.len()));
    numbers.put("torch", torch_version()?);
    numbers.write(dir)
}
