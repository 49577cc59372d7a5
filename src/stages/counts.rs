//! Chapter 1: the bigram model from counts on names.txt. Counts, normalises,
//! scores and samples (what `charlm counts` runs), the chapter's figures and
//! numbers, the check against the lecture's PyTorch loop, and the counting
//! workload.

use std::fmt::Write as _;
use std::path::Path;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::torch_rng::{RngKind, TorchGenerator};
use dfdx::prelude::{Axis, Cpu, SumTo, Tensor, TensorFromVec};
use serde::{Deserialize, Serialize};

use super::{json, sample_block, BookNumbers, Progress, Stage, StageError, Tour, LECTURE_SEED};
use crate::bench::{Iteration, Workload};
use crate::data::vocab::Vocab;
use crate::data::DataSets;
use crate::models::bigram_counts::{
    bigrams, normalise_mistake, normalise_rows, BigramCounts, BigramModel,
};
use crate::parity::{compare, ref_file, Comparison};
use crate::plot::{CountHeatmap, CountHeatmapCorner, Figure, RowBars};

/// The stage's id: its book files are in `chapters/figures/bigram_counts`.
pub const ID: &str = "bigram_counts";

/// Characters a side of the heatmap's zoomed corner (`.` and a to i).
pub const HEATMAP_CORNER: usize = 10;

/// Chapter 1 in the registry.
pub struct Counts;

impl Stage for Counts {
    fn id(&self) -> &'static str {
        ID
    }

    fn heading(&self) -> &'static str {
        "Chapter 1: the bigram model from counts (names.txt)"
    }

    fn tour(&self, data: &DataSets, out: &Path, _: Progress) -> Result<Tour, StageError> {
        let run = run_counts(data.names()?, &CountsSettings::default())?;
        Ok(Tour {
            summary: run.summary(),
            report: json(&run.report),
            figures: run.save_figures(&out.join(ID), &["svg", "png"])?,
            failure: None,
        })
    }

    fn write_book_files(&self, data: &DataSets, dir: &Path) -> Result<(), StageError> {
        let words = data.names()?;
        let run = run_counts(words, &CountsSettings::default())?;
        run.save_figures(dir, &["svg"])?;
        run.numbers(words)?.write(dir)
    }

    fn parity(&self, data: &DataSets) -> Result<Vec<Comparison>, StageError> {
        check_counts(data.names()?)
    }

    fn workloads(&self) -> Vec<Workload> {
        vec![Workload {
            name: "counts",
            about: "chapter 1: from the 32,033 names to the count table, P and the NLL",
            prepare: prepare_counts,
        }]
    }
}

/// One iteration of the `counts` workload: names → N, P, NLL.
fn prepare_counts(data: &DataSets) -> Result<Iteration<'_>, StageError> {
    let words = data.names()?;
    let vocab = Vocab::for_names(words);
    Ok(Box::new(move || {
        let counts = BigramCounts::with_vocab(vocab.clone(), words)?; // N
        let model = counts.probabilities(1.0)?; // P
        std::hint::black_box(model.nll(words)?.nll);
        Ok(())
    }))
}

// ANCHOR: settings
/// Settings of the counting model run (chapter 1).
#[derive(Debug, Clone, PartialEq)]
pub struct CountsSettings {
    /// `k` added to every count before normalising (the lecture uses 1).
    pub smoothing: f64,
    /// How many names to sample.
    pub samples: usize,
    /// Seed of the one RNG every sample is drawn from.
    pub seed: u64,
    /// Which generator: charlm's (ChaCha12) or torch's, replayed.
    pub rng: RngKind,
}

impl Default for CountsSettings {
    fn default() -> Self {
        Self {
            smoothing: 1.0,
            samples: 10,
            seed: LECTURE_SEED,
            rng: RngKind::ChaCha,
        }
    }
}
// ANCHOR_END: settings

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
    /// The generator the names were drawn from ("chacha" or "torch").
    pub rng: &'static str,
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
) -> Result<CountsRun, StageError> {
    let counts = BigramCounts::from_words(words)?;
    let model = counts.probabilities(settings.smoothing)?;
    let nll = model.nll(words)?;
    let samples = match settings.rng {
        RngKind::ChaCha => {
            model.sample_names(&mut StdRng::seed_from_u64(settings.seed), settings.samples)
        }
        RngKind::Torch => {
            model.sample_names_torch(&mut TorchGenerator::new(settings.seed), settings.samples)
        }
    };
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
        rng: settings.rng.name(),
        samples,
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
        let _ = writeln!(
            s,
            "samples          {}   ({} generator)",
            r.samples.join(" "),
            r.rng
        );
        s
    }

    /// The figures of this stage, by file stem: the heatmap, its corner of
    /// [`HEATMAP_CORNER`] characters a side, the first row's bars.
    pub fn save_figures(
        &self,
        dir: &Path,
        extensions: &[&str],
    ) -> Result<Vec<std::path::PathBuf>, StageError> {
        let mut written = Vec::new();
        for ext in extensions {
            let heatmap = dir.join(format!("heatmap.{ext}"));
            CountHeatmap(self.model.counts()).save(&heatmap)?;
            let corner = dir.join(format!("heatmap-corner.{ext}"));
            CountHeatmapCorner {
                counts: self.model.counts(),
                k: HEATMAP_CORNER,
            }
            .save(&corner)?;
            let first_row = dir.join(format!("first-row.{ext}"));
            RowBars {
                model: &self.model,
                row: 0,
            }
            .save(&first_row)?;
            written.extend([heatmap, corner, first_row]);
        }
        Ok(written)
    }

    /// Every number the chapter quotes, as an anchored file for `{{#include}}`.
    pub fn numbers<S: AsRef<str>>(&self, words: &[S]) -> Result<BookNumbers, StageError> {
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
        for (a, b) in bigrams(first) {
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
        // The broadcasting pitfall: rows of the wrong normalisation.
        let dev = Cpu::default();
        let v = n.size();
        let nk: Vec<f32> = n.as_slice().iter().map(|&c| c as f32 + 1.0).collect();
        let row_sums = |p: Tensor<(usize, usize), f32, Cpu>| -> Vec<f32> {
            p.sum::<(usize,), Axis<1>>().as_vec()
        };
        let right = row_sums(normalise_rows(dev.tensor_from_vec(nk.clone(), (v, v))));
        let wrong = row_sums(normalise_mistake(dev.tensor_from_vec(nk, (v, v))));
        let worst = |sums: &[f32]| sums.iter().map(|s| (s - 1.0).abs()).fold(0f32, f32::max);
        put("rows_right_worst", format!("{:.1e}", worst(&right)));
        put("rows_wrong_first", format!("{:.4}", wrong[0]));
        let (lo, hi) = wrong
            .iter()
            .fold((f32::INFINITY, 0f32), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        put("rows_wrong_range", format!("{lo:.4} to {hi:.2}"));
        // torch.multinomial on a toy distribution, as the lecture shows it:
        // p = torch.rand(3, generator=g); p = p / p.sum(); 20 draws.
        let mut g = TorchGenerator::new(LECTURE_SEED);
        let p: Vec<f32> = g.rand(3);
        let total: f32 = p.iter().sum();
        let p: Vec<f32> = p.iter().map(|x| x / total).collect();
        put(
            "toy_p",
            format!(
                "[{}]",
                p.iter()
                    .map(|x| format!("{x:.4}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        let draws: Vec<usize> = (0..20).map(|_| g.multinomial(&p)).collect();
        put("toy_draws", format!("{draws:?}"));
        let zeros = draws.iter().filter(|&&d| d == 0).count();
        put("toy_zeros", zeros.to_string());
        // The same loop on torch's generator, replayed: the video's names.
        let mut g = TorchGenerator::new(LECTURE_SEED);
        put(
            "torch_samples",
            sample_block(&self.model.sample_names_torch(&mut g, 5)),
        );
        // Samples from the model that knows nothing: every character equally likely.
        let uniform_counts = BigramCounts::with_vocab(n.vocab().clone(), &[] as &[&str])?;
        let uniform = uniform_counts.probabilities(1.0)?;
        let mut rng = StdRng::seed_from_u64(LECTURE_SEED);
        put(
            "uniform_samples",
            sample_block(&uniform.sample_names(&mut rng, 5)),
        );
        Ok(numbers)
    }
}

#[derive(Deserialize)]
struct CountsRef {
    words: usize,
    bigrams: usize,
    #[serde(rename = "N")]
    n: Vec<f32>,
    nll: f32,
}

/// Chapter 1: the count table `N` (exactly) and the lecture's float32 loss
/// (bit for bit), from names.txt.
pub fn check_counts<S: AsRef<str>>(words: &[S]) -> Result<Vec<Comparison>, StageError> {
    const STAGE: &str = ID;
    let r: CountsRef = ref_file!("bigram_counts.json").json()?;
    let counts = BigramCounts::from_words(words)?;
    let model = counts.probabilities(1.0)?;
    let as_f32 = |v: u64| v as f32;
    Ok(vec![
        compare(
            STAGE,
            "names",
            vec![as_f32(r.words as u64)],
            vec![as_f32(words.len() as u64)],
            0.0,
        ),
        compare(
            STAGE,
            "bigrams",
            vec![as_f32(r.bigrams as u64)],
            vec![as_f32(counts.total())],
            0.0,
        ),
        compare(
            STAGE,
            "N, the 27×27 counts",
            r.n,
            counts
                .as_slice()
                .iter()
                .map(|&c| as_f32(c as u64))
                .collect(),
            0.0,
        ),
        compare(
            STAGE,
            "NLL, summed in float32 as the lecture does",
            vec![r.nll],
            vec![model.nll_f32(words)?],
            0.0,
        ),
    ])
}
