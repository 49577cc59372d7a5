//! Chapter 2: the bigram model as a one-hot neural net on names.txt, trained
//! by gradient descent (what `charlm onehot` runs), the chapter's figures and
//! numbers, the check against the lecture's PyTorch training, and the two
//! full-batch step workloads.

use std::fmt::Write as _;
use std::path::Path;

use dfdx::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};

use super::{json, sample_block, BookNumbers, Progress, Stage, StageError, Tour, LECTURE_SEED};
use crate::bench::{Iteration, Workload};
use crate::data::DataSets;
use crate::models::bigram_counts::{sample_names_torch, BigramCounts, BigramModel};
use crate::models::bigram_onehot::{
    self as onehot, Batch, BigramNet, Forward, History, OneHotConfig, Pairs, NAMES_VOCAB,
};
use crate::models::trigram::{split_words, PairNet, TrigramCounts, TrigramExamples, TrigramNet};
use crate::ops::Kernels;
use crate::parity::{compare, ref_file, Comparison, RefError};
use crate::plot::{Figure, LossCurves, ProbMatrix, SideBySide};
use crate::torch_rng::{RngKind, TorchGenerator};
use crate::train::Event;

/// The stage's id: its book files are in `chapters/figures/bigram_onehot`.
pub const ID: &str = "bigram_onehot";

/// Seed of the shuffle that splits names.txt 80/10/10 for the exercises.
pub const EXERCISE_SEED: u64 = 42;

/// Gradient-descent steps of the trigram net in exercise E01 (lr 50, reg
/// 0.01: the lecture's settings for the bigram net).
pub const EXERCISE_STEPS: usize = 300;

/// Steps for E01's pair-indexed net: full-batch descent moves each pair's row
/// in proportion to how often the pair occurs, so the rare ones need many.
pub const PAIR_STEPS: usize = 2000;

/// Exercise E01's net with a row per pair (`PairNet`), from the lecture's
/// seed, `steps` of full-batch gradient descent at `lr` and `reg` on every
/// trigram of `trigrams`: its NLL. (Not generic, so a notebook runs it
/// optimised.)
pub fn pair_nll(
    trigrams: &TrigramCounts,
    lr: f32,
    reg: f32,
    steps: usize,
) -> Result<f32, StageError> {
    let dev = Cpu::default();
    let examples = TrigramExamples::new(&dev, trigrams)?;
    let v = trigrams.vocab().len();
    let mut pair = PairNet::new(&dev, v, &mut StdRng::seed_from_u64(LECTURE_SEED))?;
    for _ in 0..steps {
        pair.step(&examples, lr, reg)?;
    }
    Ok(pair.nll(&examples))
}

/// Chapter 2 in the registry.
pub struct OneHot;

impl Stage for OneHot {
    fn id(&self) -> &'static str {
        ID
    }

    fn heading(&self) -> &'static str {
        "Chapter 2: the bigram model as a one-hot neural net (names.txt)"
    }

    fn tour(&self, data: &DataSets, out: &Path, progress: Progress) -> Result<Tour, StageError> {
        let settings = OneHotSettings::default();
        let mut watch = progress(
            "the one-hot net, gradient descent on names.txt",
            settings.config.steps,
        );
        let on_step = |step: usize, loss: f32| {
            watch.event(Event::Step {
                step: step + 1,
                loss,
            })
        };
        let run = run_onehot(&Cpu::default(), data.names()?, &settings, on_step)?;
        Ok(Tour {
            summary: run.summary(),
            report: json(&run.report),
            figures: run.save_figures(&out.join(ID), &["svg", "png"])?,
            failure: None,
        })
    }

    fn write_book_files(&self, data: &DataSets, dir: &Path) -> Result<(), StageError> {
        write_book_files(data.names()?, dir)
    }

    fn parity(&self, data: &DataSets) -> Result<Vec<Comparison>, StageError> {
        check_onehot(&Cpu::default(), data.names()?, &OneHotInputs::reference()?)
    }

    fn workloads(&self) -> Vec<Workload> {
        vec![
            Workload {
                name: "onehot-step",
                about: "chapter 2: one full-batch step of the one-hot net (228,146 pairs): forward, backward, update",
                prepare: |data| prepare_step(data, Forward::OneHot),
            },
            Workload {
                name: "lookup-step",
                about: "chapter 2: the same step by lookup (row-normalised W weighted by the pair frequencies)",
                prepare: |data| prepare_step(data, Forward::Lookup),
            },
        ]
    }
}

/// One full-batch step of the net on all of names.txt, by `forward`.
fn prepare_step(data: &DataSets, forward: Forward) -> Result<Iteration<'_>, StageError> {
    let dev = Cpu::default();
    let words = data.names()?;
    let counts = BigramCounts::from_words(words)?;
    let pairs = Pairs::new(words, counts.vocab())?;
    let batch = Batch::new(&dev, &pairs)?;
    let mut net = BigramNet::new(&dev, counts.size(), &mut ChaCha12Rng::seed_from_u64(1337))?;
    // lr 0.1: the weights stay sane however many steps are timed
    Ok(Box::new(move || {
        net.step(&batch, forward, 0.1, 0.01)?;
        Ok(())
    }))
}

// ANCHOR: settings
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
    /// Which generator: charlm's (ChaCha12) or torch's, replayed.
    pub rng: RngKind,
}

impl Default for OneHotSettings {
    fn default() -> Self {
        Self {
            config: OneHotConfig::default(),
            seed: LECTURE_SEED,
            samples: 10,
            rng: RngKind::ChaCha,
        }
    }
}
// ANCHOR_END: settings

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
    /// The generator W and the names were drawn from ("chacha" or "torch").
    pub rng: &'static str,
    /// Names sampled from the trained net.
    pub samples: Vec<String>,
}

/// A finished one-hot net run.
pub struct OneHotRun<D: Kernels> {
    /// The trained net.
    pub net: BigramNet<D>,
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
pub fn run_onehot<D: Kernels, S: AsRef<str>>(
    dev: &D,
    words: &[S],
    settings: &OneHotSettings,
    on_step: impl FnMut(usize, f32),
) -> Result<OneHotRun<D>, StageError> {
    settings.config.validate()?;
    let counts = BigramCounts::from_words(words)?;
    let pairs = Pairs::new(words, counts.vocab())?;
    let batch = Batch::new(dev, &pairs)?;
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let v = counts.size();
    let mut net = match settings.rng {
        RngKind::ChaCha => BigramNet::new(dev, v, &mut rng)?,
        // W = torch.randn((27, 27), generator=g)
        RngKind::Torch => {
            BigramNet::from_weights(dev, v, TorchGenerator::new(settings.seed).randn(v * v))?
        }
    };
    let history = onehot::train_with(&mut net, &batch, &settings.config, on_step)?;
    let samples = match settings.rng {
        RngKind::ChaCha => net
            .sampler(counts.vocab())?
            .sample_names(&mut rng, settings.samples),
        // the lecture samples from a generator seeded again
        RngKind::Torch => sample_names_torch(
            &net.probabilities(),
            counts.vocab(),
            &mut TorchGenerator::new(settings.seed),
            settings.samples,
        ),
    };
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
        max_prob_diff: max_prob_diff(&net, &model, WELL_SEEN),
        seconds_per_step: history.seconds_per_step,
        rng: settings.rng.name(),
        samples,
    };
    Ok(OneHotRun {
        net,
        history,
        report,
        counts: model,
    })
}

/// Largest `|softmax(W)[i][j] - P[i][j]|` over rows `i` with more than
/// `min_row` bigrams (rows with few examples are dominated by the smoothing).
pub fn max_prob_diff<D: Kernels>(net: &BigramNet<D>, p: &BigramModel, min_row: u32) -> f64 {
    let q = net.probabilities();
    let v = net.vocab();
    (0..v)
        .filter(|&i| p.counts().row(i).iter().sum::<u32>() > min_row)
        .flat_map(|i| (0..v).map(move |j| (i, j)))
        .map(|(i, j)| (q[i * v + j] as f64 - p.prob(i, j)).abs())
        .fold(0.0, f64::max)
}

impl<D: Kernels> OneHotRun<D> {
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
            "softmax(W) vs P  largest difference {:.4} (rows with > {WELL_SEEN} bigrams)",
            r.max_prob_diff
        );
        let _ = writeln!(
            s,
            "speed            {:.2} ms per step",
            r.seconds_per_step * 1e3
        );
        let _ = writeln!(
            s,
            "samples          {}   ({} generator)",
            r.samples.join(" "),
            r.rng
        );
        s
    }

    /// The loss curve and softmax(W) next to P.
    pub fn save_figures(
        &self,
        dir: &Path,
        extensions: &[&str],
    ) -> Result<Vec<std::path::PathBuf>, StageError> {
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

/// The video's `(xenc @ W)[3, 13]`: input 3 of "emma", neuron 13.
pub const FIRING: (usize, usize) = (3, 13);

/// The lecture's first gradient descent, on "emma" alone: the update
/// `W.data += -0.1 * W.grad`, run this many times (the lecture notebook's
/// loss is the one before the fifth forward pass).
pub const EMMA_UPDATES: usize = 4;

/// Its learning rate.
pub const EMMA_LR: f32 = 0.1;

/// The lecture's first descent: the video's `W`, trained on the five
/// examples of "emma" alone by [`EMMA_UPDATES`] updates of lr [`EMMA_LR`]
/// (no regulariser yet). The loss before each update, then after the last.
pub fn emma_descent<S: AsRef<str>>(words: &[S]) -> Result<Vec<f32>, StageError> {
    let dev = Cpu::default();
    let counts = BigramCounts::from_words(words)?;
    let v = counts.vocab().len();
    let mut net = BigramNet::from_weights(&dev, v, TorchGenerator::new(LECTURE_SEED).randn(v * v))?;
    let emma = Batch::new(&dev, &Pairs::new(&["emma"], counts.vocab())?)?;
    let cfg = OneHotConfig {
        steps: EMMA_UPDATES,
        lr: EMMA_LR,
        reg: 0.0,
        forward: Forward::OneHot,
    };
    let h = onehot::train(&mut net, &emma, &cfg)?;
    Ok(h.losses.iter().copied().chain([h.final_loss]).collect())
}

/// Rows of P compared with softmax(W): those with more than this many
/// bigrams (the rest are too rare for the two to agree closely).
const WELL_SEEN: u32 = 1000;

/// Every figure and number chapter 2 quotes, written into `dir`. Training
/// runs here use the lookup path (the tests check it equals the one-hot path)
/// so that regenerating the book takes seconds.
fn write_book_files<S: AsRef<str>>(words: &[S], dir: &Path) -> Result<(), StageError> {
    let dev = Cpu::default();
    let counts = BigramCounts::from_words(words)?;
    let vocab = counts.vocab();
    let chars = vocab.chars();
    let pairs = Pairs::new(words, vocab)?;
    let batch = Batch::new(&dev, &pairs)?;
    let mut numbers = BookNumbers::default();
    let mut put = |name: &str, value: String| numbers.put(name, value);
    put("pairs", pairs.len().to_string());
    put("weights", (vocab.len() * vocab.len()).to_string());
    put("well_seen", WELL_SEEN.to_string());

    // The lecture's walk-through: "emma", through the video's freshly drawn
    // W (torch.randn((27, 27), generator=g), replayed), so the table is the
    // video's.
    let v = vocab.len();
    let video_init =
        BigramNet::from_weights(&dev, v, TorchGenerator::new(LECTURE_SEED).randn(v * v))?;
    let emma = Batch::new(&dev, &Pairs::new(&["emma"], vocab)?)?;
    let mut walk =
        String::from("| input | label | P(label) | ln P | NLL |\n|---|---|---:|---:|---:|\n");
    let examples = video_init.walk_through(&emma, vocab);
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
    // One neuron on one input, as the video reads it: (xenc @ W)[3, 13],
    // the fourth input of "emma" (m) and the neuron of m's column.
    let [out, dot, w] = video_init.firing(&emma, FIRING.0, FIRING.1);
    put("firing_i", FIRING.0.to_string());
    put("firing_j", FIRING.1.to_string());
    put("firing", format!("{out:.4}"));
    put("firing_dot", format!("{dot:.4}"));
    put("firing_w", format!("{w:.4}"));
    // The first descent, on "emma" alone.
    let mut descent = String::from("| updates | loss on \"emma\" |\n|---:|---:|\n");
    for (k, loss) in emma_descent(words)?.iter().enumerate() {
        let _ = writeln!(descent, "| {k} | {loss:.4} |");
    }
    put("emma_descent", descent.trim_end().to_string());
    put("emma_updates", EMMA_UPDATES.to_string());
    put("emma_lr", EMMA_LR.to_string());

    // The lecture's run: 200 steps, lr 50, reg 0.01, from the lecture's seed.
    let cfg = OneHotConfig {
        steps: 200,
        forward: Forward::Lookup,
        ..OneHotConfig::default()
    };
    let init = BigramNet::new(&dev, v, &mut StdRng::seed_from_u64(LECTURE_SEED))?;
    let mut net = init.clone();
    let h = onehot::train(&mut net, &batch, &cfg)?;
    put("initial_loss", format!("{:.4}", h.losses[0]));
    put("loss_100", format!("{:.4}", h.losses[100]));
    put("loss_200", format!("{:.4}", h.final_loss));
    put("run_steps", cfg.steps.to_string());
    put("nll_200", format!("{:.4}", h.final_nll));
    let mut rng = StdRng::seed_from_u64(LECTURE_SEED);
    put(
        "samples",
        sample_block(&net.sampler(vocab)?.sample_names(&mut rng, 10)),
    );

    // The same run from the video's W: torch's generator replayed (`--rng
    // torch`), sampled after 100 steps (gradient descent keeps no state, so
    // two runs of 100 steps are one run of 200).
    let half = OneHotConfig { steps: 100, ..cfg };
    // The video's own cell, before the lecture adds the regulariser (its
    // "note 2", after this cell): the loss it prints first, after 99
    // updates (its last line) and, run again, after 199.
    let mut plain =
        BigramNet::from_weights(&dev, v, TorchGenerator::new(LECTURE_SEED).randn(v * v))?;
    let no_reg = OneHotConfig { reg: 0.0, ..half };
    let (a, b) = (
        onehot::train(&mut plain, &batch, &no_reg)?,
        onehot::train(&mut plain, &batch, &no_reg)?,
    );
    put("video_initial_loss", format!("{:.4}", a.losses[0]));
    put("video_loss_99", format!("{:.4}", a.losses[half.steps - 1]));
    put("video_loss_199", format!("{:.4}", b.losses[half.steps - 1]));
    let mut video = video_init;
    let first = onehot::train(&mut video, &batch, &half)?;
    let mut g = TorchGenerator::new(LECTURE_SEED); // seeded again before sampling, as the lecture does
    let samples = sample_names_torch(&video.probabilities(), vocab, &mut g, 5);
    let second = onehot::train(&mut video, &batch, &half)?;
    put("torch_initial_loss", format!("{:.4}", first.losses[0]));
    put("torch_loss_100", format!("{:.4}", second.losses[0]));
    put("torch_loss_200", format!("{:.4}", second.final_loss));
    // the lecture's cell prints the loss before each update: its 100 lines
    // end at the loss after 99 updates, and run again, after 199
    let n = half.steps;
    put("torch_loss_99", format!("{:.4}", first.losses[n - 1]));
    put("torch_loss_199", format!("{:.4}", second.losses[n - 1]));
    put("cell_steps", n.to_string());
    put("cell_last", (n - 1).to_string());
    put("cell_again_last", (2 * n - 1).to_string());
    put("cell_twice", (2 * n).to_string());
    put("torch_samples", sample_block(&samples));

    // The exercises of makemore part 1 (the end of the chapter).
    let all = TrigramCounts::from_words(vocab, words)?;
    put(
        "e01_trigram_nll",
        format!("{:.4}", all.probabilities(1.0)?.nll(words)?),
    );
    let examples = TrigramExamples::new(&dev, &all)?;
    let mut net = TrigramNet::new(&dev, vocab.len(), &mut StdRng::seed_from_u64(LECTURE_SEED))?;
    put("e01_net_initial", format!("{:.4}", net.nll(&examples)));
    for _ in 0..EXERCISE_STEPS {
        net.step(&examples, 50.0, 0.01)?;
    }
    put("e01_net_steps", EXERCISE_STEPS.to_string());
    put("e01_net_nll", format!("{:.4}", net.nll(&examples)));
    // The second form: one row per pair, at the chapter's lr and reg, and
    // without the regulariser; beside the counts unsmoothed (k = 0).
    let OneHotConfig { lr, reg, .. } = OneHotConfig::default();
    put("e01_lr", lr.to_string());
    put("e01_reg", reg.to_string());
    put("e01_pair_steps", PAIR_STEPS.to_string());
    for (name, reg) in [("e01_pair_nll", reg), ("e01_pair_nll_reg0", 0.0)] {
        put(name, format!("{:.4}", pair_nll(&all, lr, reg, PAIR_STEPS)?));
    }
    put(
        "e01_trigram_nll_k0",
        format!("{:.4}", all.probabilities(0.0)?.nll(words)?),
    );
    let [train, dev_words, test] = split_words(words, EXERCISE_SEED);
    put(
        "e02_sizes",
        format!("{}, {} and {}", train.len(), dev_words.len(), test.len()),
    );
    let bi = BigramCounts::with_vocab(vocab.clone(), &train)?.probabilities(1.0)?;
    let counted = TrigramCounts::from_words(vocab, &train)?;
    let tri = counted.probabilities(1.0)?;
    let mut e02 = String::from("| model (k = 1) | train | dev | test |\n|---|---:|---:|---:|\n");
    let _ = writeln!(
        e02,
        "| bigram | {:.4} | {:.4} | {:.4} |",
        bi.nll(&train)?.nll,
        bi.nll(&dev_words)?.nll,
        bi.nll(&test)?.nll
    );
    let _ = writeln!(
        e02,
        "| trigram | {:.4} | {:.4} | {:.4} |",
        tri.nll(&train)?,
        tri.nll(&dev_words)?,
        tri.nll(&test)?
    );
    put("e02_table", e02.trim_end().to_string());
    let mut e03 = String::from("| k | trigram train | trigram dev |\n|---:|---:|---:|\n");
    let mut best = (f64::INFINITY, 0.0);
    for k in [0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0] {
        let m = counted.probabilities(k)?;
        let d = m.nll(&dev_words)?;
        let _ = writeln!(e03, "| {k} | {:.4} | {d:.4} |", m.nll(&train)?);
        if d < best.0 {
            best = (d, k);
        }
    }
    put("e03_table", e03.trim_end().to_string());
    put("e03_best_k", best.1.to_string());
    let tuned = counted.probabilities(best.1)?;
    put("e03_test", format!("{:.4}", tuned.nll(&test)?));

    // E05: the lecture's explicit softmax overflows where log_softmax does not.
    let big = dev.tensor([[100f32, 0.0, -5.0]]); // (1, 3): one large logit
    let exps = big.clone().exp(); // (1, 3): e^100 is beyond float32: inf
    let sums = exps.clone().sum::<Rank1<1>, Axis<1>>(); // (1,)
    let probs = exps / sums.broadcast::<Rank2<1, 3>, Axis<1>>(); // (1, 3): inf / inf
    put("e05_explicit", format!("{}", -probs.as_vec()[0].ln()));
    let stable = big.log_softmax::<Axis<1>>().as_vec()[0]; // ln p, computed as l - max - ln Σ e^(l - max)
    put("e05_fused", format!("{:.4}", 0.0 - stable));
    put("e05_exp_limit", format!("{:.1}", f32::MAX.ln())); // the largest x with e^x finite

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
        let diff = max_prob_diff(&n, if reg == 0.0 { &p0 } else { &p }, WELL_SEEN);
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

    let q =
        |n: &BigramNet<Cpu>| -> Vec<f64> { n.probabilities().iter().map(|&x| x as f64).collect() };
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

#[derive(Deserialize)]
struct OneHotRef {
    pairs: usize,
    lr: f32,
    reg: f32,
    losses: Vec<f32>,
    first_grad: Vec<f32>,
    #[serde(rename = "final_W")]
    final_w: Vec<f32>,
}

/// The inputs of chapter 2's check: the lecture's initial W.
#[derive(Debug, Clone, PartialEq)]
pub struct OneHotInputs {
    /// W before training, row-major (27, 27).
    pub w: Vec<f32>,
}

impl OneHotInputs {
    /// The W that PyTorch drew (`torch.randn((27, 27), generator=g)`).
    pub fn reference() -> Result<Self, RefError> {
        let inputs = ref_file!("bigram_onehot.safetensors");
        Ok(Self {
            w: inputs.tensors()?.floats("W", &[NAMES_VOCAB, NAMES_VOCAB])?,
        })
    }
}

/// Chapter 2: from PyTorch's W, the loss before training and after 1, 10
/// and 100 steps, the first gradient and the final W, for both forward
/// passes (the fused one-hot matmul and the lookup).
pub fn check_onehot<D: Kernels, S: AsRef<str>>(
    dev: &D,
    words: &[S],
    inputs: &OneHotInputs,
) -> Result<Vec<Comparison>, StageError> {
    const STAGE: &str = ID;
    let r: OneHotRef = ref_file!("bigram_onehot.json").json()?;
    let counts = BigramCounts::from_words(words)?;
    let pairs = Pairs::new(words, counts.vocab())?;
    let batch = Batch::new(dev, &pairs)?;
    let steps = r.losses.len().saturating_sub(1);
    let mut out = vec![compare(
        STAGE,
        "training pairs",
        vec![r.pairs as f32],
        vec![pairs.len() as f32],
        0.0,
    )];
    for (forward, name) in [(Forward::OneHot, "one-hot"), (Forward::Lookup, "lookup")] {
        let init = BigramNet::from_weights(dev, NAMES_VOCAB, inputs.w.clone())?;
        let w = init.w.trace(Gradients::leaky());
        let (loss, _) = onehot::loss(w, &batch, forward, r.reg);
        let grad = loss.backward().get(&init.w).as_vec(); // ∂loss/∂W at the start, (27, 27)
        out.push(compare(
            STAGE,
            format!("{name}: ∂loss/∂W before training"),
            r.first_grad.clone(),
            grad,
            1e-6,
        ));
        let mut net = init;
        let cfg = OneHotConfig {
            steps,
            lr: r.lr,
            reg: r.reg,
            forward,
        };
        let h = onehot::train(&mut net, &batch, &cfg)?;
        let mut losses = h.losses.clone();
        losses.push(h.final_loss); // the loss before each step, and after the last
        for k in [0, 1, 10, steps] {
            let (torch, charlm) = (r.losses.get(k).copied(), losses.get(k).copied());
            let quantity = match k {
                0 => format!("{name}: loss before training"),
                1 => format!("{name}: loss after 1 step"),
                k => format!("{name}: loss after {k} steps"),
            };
            out.push(compare(
                STAGE,
                quantity,
                torch.into_iter().collect(),
                charlm.into_iter().collect(),
                1e-4,
            ));
        }
        out.push(compare(
            STAGE,
            format!("{name}: W after {steps} steps"),
            r.final_w.clone(),
            net.weights(),
            1e-4,
        ));
    }
    Ok(out)
}
