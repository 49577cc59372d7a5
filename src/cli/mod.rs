//! The command line: one `#[derive(Args)]` struct per command, next to the
//! function that runs it, and the one place a device is chosen.

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use dfdx::prelude::Cpu;

use charlm::ops::Kernels;

pub mod appendix;
pub mod book;
pub mod chapters;
pub mod ladder;
pub mod lm;
pub mod progress;
pub mod signals;

/// Character-level language models, built step by step (the charlm book).
///
/// Each subcommand runs one stage of the book on its data set. Data files are
/// found at --data, else in $CHARLM_DATA_DIR, else in ./data, else downloaded
/// into ./data and checked against their published SHA-256.
#[derive(Debug, Parser)]
#[command(name = "charlm", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Chapter 1: the bigram model from counts on names.txt.
    ///
    /// Counts how often each character follows each other one in 32,033 names,
    /// normalises the counts into next-character probabilities, scores the model
    /// with the average negative log-likelihood (lower is better; 2.4546 with
    /// the default smoothing) and samples new names from it.
    Counts(chapters::CountsArgs),
    /// Chapter 2: the same bigram model as a one-hot neural net, trained by
    /// gradient descent with dfdx.
    ///
    /// W (27×27) starts from a standard normal; each step computes the logits
    /// of all 228,146 training pairs, their softmax, the average negative
    /// log-likelihood plus reg·mean(W²), the gradient by backpropagation, and
    /// W -= lr·grad. The loss falls from about 3.8 towards the counting model's
    /// 2.45, and softmax(W) approaches chapter 1's table P.
    Onehot(chapters::OnehotArgs),
    /// Chapter 3: the bigram language model on tiny Shakespeare (or any text).
    ///
    /// Tokenizes the text character by character (65 characters for tiny
    /// Shakespeare; any UTF-8 text's own characters otherwise), keeps 90% for
    /// training, and trains a (V, V) embedding table of next-token logits with
    /// AdamW on random batches of blocks, estimating the loss on both splits
    /// every --eval-interval steps. Then generates text.
    ///
    /// With --save, the run ends by writing a checkpoint (weights, optimiser,
    /// generator, loss history, vocabulary); Ctrl-C stops training and writes
    /// one too (to --save, or bigram-interrupted.safetensors). --resume
    /// continues a saved run exactly where it stopped; flags given with it
    /// replace the saved settings (e.g. --steps for a longer run).
    Bigram(lm::TrainArgs),
    /// Chapter 5: a language model with one head of self-attention.
    ///
    /// Token and position embeddings (32 channels), one causal self-attention
    /// head (size 32), and a linear map to the text's characters, trained like
    /// `charlm bigram` (same flags, same checkpoints). Each character now
    /// looks at up to 8 before it, with weights it learns.
    Head(lm::TrainArgs),
    /// Chapters 6 to 8: one rung of the lecture's ladder, from one head to
    /// a Transformer, or a GPT at scale.
    ///
    /// Each preset (listed under --preset) is a model and its training
    /// settings; the flags replace the settings. The rungs all train at the
    /// ladder's settings (n_embd 32, block 8, batch 32, 5000 AdamW steps at
    /// lr 1e-3). A preset's sizes are fixed by its model's type (dfdx 0.13
    /// walks a model's parameters from its type); --block may only shrink
    /// the context.
    Gpt(lm::GptArgs),
    /// Chapters 6 and 7: every rung of the ladder, then a table of each
    /// one's parameters, validation loss, the lecture's, and speed.
    Ladder(ladder::LadderArgs),
    /// Train any language model of the book by name (`--model bigram` is
    /// `charlm bigram`, `--model head` is `charlm head`).
    Train(lm::TrainModelArgs),
    /// Chapter 4: the mathematical trick in self-attention.
    ///
    /// The causal average of the past computed three ways (loops; a
    /// lower-triangular matrix multiply; softmax of a masked matrix) at
    /// B=32, T=256, C=384: how far apart they are, and how long each takes.
    Attention(chapters::AttentionArgs),
    /// Generate text from a saved checkpoint (see `bigram --save`, `head --save`).
    ///
    /// Feeds the prompt (a newline by default), then samples one character
    /// at a time from the model's softmax, with the vocabulary the
    /// checkpoint saved.
    Generate(lm::GenerateArgs),
    /// Appendix: time each stage's hot loop.
    ///
    /// Workloads: counts (names → N, P, NLL), onehot-step and lookup-step (one
    /// full-batch step of chapter 2), bigram-step (one AdamW step of chapter
    /// 3), attention-v1/v2/v3 (chapter 4 at B=32, T=256, C=384) and head-step
    /// (one head of size 64 forward and backward, same size). Each is warmed
    /// up, then timed in samples; the best and median seconds per iteration
    /// are reported. `python3 parity/bench.py` runs this side by side with
    /// PyTorch.
    Bench(appendix::BenchArgs),
    /// Appendix: check charlm against the lecture's PyTorch code.
    ///
    /// Runs every stage from the inputs PyTorch started from (its initial
    /// weights, its batches, its random tensors; see parity/) and compares
    /// with the values PyTorch computed: counts and the float32 loss bit for
    /// bit, training trajectories to 1e-4, attention outputs and gradients
    /// to 1e-5. Exits with 1 if any comparison fails.
    Parity(appendix::ParityArgs),
    /// Run every chapter implemented so far, print its key figures and write
    /// its figures (SVG and PNG) to DIR. The main job: start here.
    Tour(book::TourArgs),
    /// Regenerate the book's figures and quoted numbers (SVG + numbers.md per
    /// stage). Run `charlm figures --out chapters/figures` after changing the
    /// library; a test fails while the committed files are stale.
    Figures(book::FiguresArgs),
}

/// Runs the command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Counts(args) => chapters::counts(args),
        Command::Onehot(args) => chapters::onehot(args),
        Command::Bigram(args) => lm::train(charlm::models::Kind::Bigram, args),
        Command::Head(args) => lm::train(charlm::models::Kind::Head, args),
        Command::Train(args) => lm::train(args.model, args.train),
        Command::Gpt(args) => lm::gpt(args),
        Command::Ladder(args) => ladder::ladder(args),
        Command::Attention(args) => chapters::attention(args),
        Command::Generate(args) => lm::generate(args),
        Command::Bench(args) => appendix::bench(args),
        Command::Parity(args) => appendix::parity(args),
        Command::Tour(args) => book::tour(args),
        Command::Figures(args) => book::figures(args),
    }
}

/// Where tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The CPU (always available).
    Cpu,
    /// An NVIDIA GPU (needs a build with `--features cuda`).
    Cuda,
}

/// Work that runs on whichever device the command line chose.
pub trait DeviceJob {
    /// What it returns.
    type Output;
    /// Runs it on `dev`.
    fn run<D: Kernels>(self, dev: &D) -> Result<Self::Output>;
}

// ANCHOR: device
/// Runs `job` on `device`: the one place a device is chosen. `seed` seeds
/// the CUDA device's own generator (charlm draws everything from its own).
pub fn on_device<J: DeviceJob>(device: DeviceArg, seed: u64, job: J) -> Result<J::Output> {
    match device {
        DeviceArg::Cpu => job.run(&Cpu::default()),
        DeviceArg::Cuda => on_cuda(seed, job),
    }
}
// ANCHOR_END: device

#[cfg(feature = "cuda")]
fn on_cuda<J: DeviceJob>(seed: u64, job: J) -> Result<J::Output> {
    let dev = dfdx::tensor::Cuda::try_build(0, seed)
        .map_err(|e| anyhow::anyhow!("no usable CUDA device: {e:?}"))?;
    job.run(&dev)
}

#[cfg(not(feature = "cuda"))]
fn on_cuda<J: DeviceJob>(_: u64, _: J) -> Result<J::Output> {
    anyhow::bail!("this charlm was built without CUDA support; rebuild with `cargo build --release --features cuda`")
}

/// The largest counts the flags take (documented in each flag's help). The
/// memory a training step needs is checked separately, before it starts.
pub mod limits {
    /// `--steps`.
    pub const STEPS: usize = 1_000_000_000;
    /// `--batch`.
    pub const BATCH: usize = 1_000_000_000;
    /// `--block`.
    pub const BLOCK: usize = 1_000_000;
    /// `--eval-interval`.
    pub const EVAL_INTERVAL: usize = 1_000_000_000;
    /// `--eval-iters`.
    pub const EVAL_ITERS: usize = 1_000_000;
    /// `--tokens`: characters to generate.
    pub const TOKENS: usize = 10_000_000;
    /// `--samples` of `counts` and `onehot`: names to sample.
    pub const NAMES: usize = 1_000_000;
    /// `bench --threads`.
    pub const THREADS: usize = 1024;
    /// `bench --samples`.
    pub const BENCH_SAMPLES: usize = 1000;
    /// `bench --sample-ms`: ten minutes.
    pub const SAMPLE_MS: u64 = 600_000;
}

/// A clap parser for a whole number from `lo` to `hi`.
pub fn count_in<T>(
    lo: T,
    hi: T,
) -> impl Fn(&str) -> std::result::Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
{
    move |text| match text.parse::<T>() {
        Ok(n) if lo <= n && n <= hi => Ok(n),
        _ => Err(format!("must be a whole number from {lo} to {hi}")),
    }
}

/// A clap parser for a finite number > 0 (learning rates).
pub fn positive(text: &str) -> std::result::Result<f32, String> {
    match text.parse::<f32>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err("must be a finite number > 0".to_string()),
    }
}

/// A clap parser for a finite number >= 0 (the cosine schedule's floor).
pub fn non_negative(text: &str) -> std::result::Result<f32, String> {
    match text.parse::<f32>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err("must be a finite number >= 0".to_string()),
    }
}

/// A clap parser for a probability of dropping: at least 0, below 1.
pub fn probability(text: &str) -> std::result::Result<f32, String> {
    match text.parse::<f32>() {
        Ok(x) if (0.0..1.0).contains(&x) => Ok(x),
        _ => Err("must be a number at least 0 and below 1".to_string()),
    }
}
