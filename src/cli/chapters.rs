//! `charlm counts`, `charlm onehot` and `charlm attention`: chapters 1, 2
//! and 4 with the flags a learner changes.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use dfdx::prelude::Cpu;

use charlm::models::bigram_onehot::{Forward, OneHotConfig};
use charlm::ops::Kernels;
use charlm::stages::attention_trick::{run_attention, LECTURE_SHAPE};
use charlm::stages::counts::{run_counts, CountsSettings};
use charlm::stages::onehot::{run_onehot, OneHotSettings};
use charlm::stages::LECTURE_SEED;
use charlm::torch_rng::RngKind;
use charlm::train::{Event, Watch};
use charlm::{data, fsutil};

use super::progress::Bar;
use super::{count_in, limits, on_device, positive, DeviceArg, DeviceJob};

/// Flags of `charlm counts`.
#[derive(Debug, Args)]
pub struct CountsArgs {
    /// The names file (one name per line).
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Pseudo-count k added to every bigram count before normalising.
    /// 0 makes unseen bigrams impossible (infinite loss on them); large k
    /// pulls the model towards uniform.
    #[arg(
        long,
        value_name = "K",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    smoothing: f64,
    /// How many names to sample (0 to 1,000,000).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = count_in(0, limits::NAMES))]
    samples: usize,
    /// Seed of the random generator (the lecture's is 2147483647).
    #[arg(long, value_name = "S", default_value_t = LECTURE_SEED)]
    seed: u64,
    /// The random generator: charlm's own, or torch's replayed (with the
    /// lecture's seed, `torch` samples the names the video printed).
    #[arg(long, value_enum, default_value_t = RngArg::Chacha)]
    rng: RngArg,
    /// Also draw the annotated 27×27 count heatmap to PATH (.svg or .png).
    #[arg(long, value_name = "PATH")]
    figure: Option<PathBuf>,
    /// Print only one JSON object of the key figures (the last stdout line).
    #[arg(long)]
    json: bool,
}

/// `charlm counts`: chapter 1.
pub fn counts(a: CountsArgs) -> Result<()> {
    let names = data::Locator::from_env().resolve(data::Dataset::Names, a.data.as_deref())?;
    if let Some(path) = &a.figure {
        fsutil::check_output(path, &[("the --data file", &names)])?;
    }
    let words = data::read_names(&names)?;
    let settings = CountsSettings {
        smoothing: a.smoothing,
        samples: a.samples,
        seed: a.seed,
        rng: a.rng.into(),
    };
    let run = run_counts(&words, &settings)?;
    if let Some(path) = &a.figure {
        use charlm::plot::Figure;
        charlm::plot::CountHeatmap(run.model.counts())
            .save(path)
            .with_context(|| format!("writing the figure {}", path.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&run.report)?);
    } else {
        print!("{}", run.summary());
        if let Some(path) = a.figure {
            println!("figure           {}", path.display());
        }
    }
    Ok(())
}

/// Which random generator a chapter draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RngArg {
    /// charlm's own (ChaCha12, the one dfdx uses): portable, fast, and its
    /// state can be saved in a checkpoint.
    Chacha,
    /// torch's CPU generator (MT19937), replayed: the video's numbers.
    Torch,
}

impl From<RngArg> for RngKind {
    fn from(a: RngArg) -> RngKind {
        match a {
            RngArg::Chacha => RngKind::ChaCha,
            RngArg::Torch => RngKind::Torch,
        }
    }
}

/// Which forward pass computes the logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ForwardArg {
    /// One-hot inputs times W, as in the lecture.
    Onehot,
    /// Look up rows of W: the same numbers, much faster.
    Lookup,
}

/// Flags of `charlm onehot`.
#[derive(Debug, Args)]
pub struct OnehotArgs {
    /// The names file (one name per line).
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Full-batch gradient-descent steps (0 to 1,000,000,000).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = count_in(0, limits::STEPS))]
    steps: usize,
    /// Learning rate, a finite number > 0 (the lecture's is 50: this loss
    /// is very flat).
    #[arg(
        long,
        value_name = "X",
        default_value_t = 50.0,
        allow_negative_numbers = true,
        value_parser = positive
    )]
    lr: f32,
    /// Regularisation strength: reg·mean(W²) pulls softmax(W) towards
    /// uniform, as smoothing does for counts.
    #[arg(
        long,
        value_name = "X",
        default_value_t = 0.01,
        allow_negative_numbers = true
    )]
    reg: f32,
    /// Seed of the random generator that draws W and the samples.
    #[arg(long, value_name = "S", default_value_t = LECTURE_SEED)]
    seed: u64,
    /// How many names to sample from the trained net (0 to 1,000,000).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = count_in(0, limits::NAMES))]
    samples: usize,
    /// The random generator of W and the samples: charlm's own, or torch's
    /// replayed (with the lecture's seed, `torch` starts from the video's W).
    #[arg(long, value_enum, default_value_t = RngArg::Chacha)]
    rng: RngArg,
    /// Forward pass: the lecture's one-hot matmul, or the row lookup.
    #[arg(long, value_enum, default_value_t = ForwardArg::Onehot)]
    forward: ForwardArg,
    /// Where the tensors live.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Print only one JSON object of the key figures (the last stdout line).
    #[arg(long)]
    json: bool,
}

/// `charlm onehot`: chapter 2.
pub fn onehot(a: OnehotArgs) -> Result<()> {
    let words = data::load_names(a.data.as_deref())?;
    let settings = OneHotSettings {
        config: OneHotConfig {
            steps: a.steps,
            lr: a.lr,
            reg: a.reg,
            forward: match a.forward {
                ForwardArg::Onehot => Forward::OneHot,
                ForwardArg::Lookup => Forward::Lookup,
            },
        },
        seed: a.seed,
        samples: a.samples,
        rng: a.rng.into(),
    };
    let job = OnehotJob {
        words: &words,
        settings: &settings,
        json: a.json,
    };
    on_device(a.device, a.seed, job)
}

/// Chapter 2's training on a device, with a progress bar.
struct OnehotJob<'a> {
    words: &'a [String],
    settings: &'a OneHotSettings,
    json: bool,
}

impl DeviceJob for OnehotJob<'_> {
    type Output = ();

    fn run<D: Kernels>(self, dev: &D) -> Result<()> {
        let mut bar = Bar::new(self.settings.config.steps, self.json);
        let on_step = |step: usize, loss: f32| {
            bar.event(Event::Step {
                step: step + 1,
                loss,
            })
        };
        let run = run_onehot(dev, self.words, self.settings, on_step)?;
        drop(bar);
        if self.json {
            println!("{}", serde_json::to_string(&run.report)?);
        } else {
            print!("{}", run.summary());
        }
        Ok(())
    }
}

/// Flags of `charlm attention`.
#[derive(Debug, Args)]
pub struct AttentionArgs {
    /// Seed of the random input.
    #[arg(long, value_name = "S", default_value_t = 1337)]
    seed: u64,
    /// Print only one JSON object (the last stdout line).
    #[arg(long)]
    json: bool,
}

/// `charlm attention`: chapter 4.
pub fn attention(a: AttentionArgs) -> Result<()> {
    let report = run_attention(&Cpu::default(), LECTURE_SHAPE, a.seed)?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.summary());
    }
    Ok(())
}
