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

use crate::bigram_counts::{BigramCounts, BigramError, BigramModel};
use crate::fsutil;
use crate::plot::{CountHeatmap, Figure, PlotError, RowBars};

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
        let mut out = String::from(
            "<!-- Generated by `charlm figures`; do not edit. Each ANCHOR is one quoted value. -->\n",
        );
        let mut put = |name: &str, value: String| {
            let _ = write!(out, "ANCHOR: {name}\n{value}\nANCHOR_END: {name}\n");
        };
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
        Ok(out)
    }

    /// Writes the book's figures (SVG) and numbers into `dir`.
    pub fn write_book_files<S: AsRef<str>>(
        &self,
        words: &[S],
        dir: &Path,
    ) -> Result<(), TourError> {
        self.save_figures(dir, &["svg"])?;
        let path = dir.join("numbers.md");
        fsutil::write_atomic(&path, self.numbers(words)?.as_bytes())
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
