//! Every named run, in one table: the ladder's rungs (chapters 6 and 7),
//! chapter 8's GPTs and its exercise EX4, each a model and the settings it
//! trains with, as nanoGPT keeps its configurations side by side.
//!
//! `charlm gpt --preset NAME` and its `--help`, `charlm ladder`, the tour,
//! the stages and chapter 8 all read [`PRESETS`]; adding a run is one entry
//! (and, for a new model type, one line of [`Kind`]).

use crate::models::gpt::Sizes;
use crate::models::Kind;
use crate::train::{LrSchedule, TrainConfig, BIGRAM_PY};

/// Where a preset belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// A rung of the lecture's ladder (chapters 6 and 7): every rung trains
    /// with the same settings, [`LADDER`], so that only the model differs.
    Ladder,
    /// A GPT of chapter 8, scaled for a budget.
    Gpt,
    /// One of chapter 8's exercises.
    Exercise,
}

/// A named run: a model and the settings it trains with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    /// `--preset NAME`.
    pub name: &'static str,
    /// Where it belongs.
    pub group: Group,
    /// The model (its sizes are its type's).
    pub kind: Kind,
    /// Its training settings.
    pub config: TrainConfig,
    /// What it is, or what the rung adds to the one before, in a line.
    pub about: &'static str,
    /// The validation loss the lecture reports for it (the commit messages
    /// of karpathy/ng-video-lecture, and the video), where it gives one.
    pub lecture_val: Option<f64>,
}

/// The ladder's settings: bigram.py's batches of 32 blocks of 8, for 5,000
/// steps at 1e-3 (the lecture lowers the rate once attention comes in).
pub const LADDER: TrainConfig = TrainConfig {
    max_iters: 5000,
    eval_interval: 500,
    learning_rate: 1e-3,
    ..BIGRAM_PY
};

/// A ladder rung.
const fn rung(name: &'static str, kind: Kind, about: &'static str, val: Option<f64>) -> Preset {
    Preset {
        name,
        group: Group::Ladder,
        kind,
        config: LADDER,
        about,
        lecture_val: val,
    }
}

/// A GPT of chapter 8.
const fn gpt(name: &'static str, kind: Kind, config: TrainConfig, about: &'static str) -> Preset {
    Preset {
        name,
        group: Group::Gpt,
        kind,
        config,
        about,
        lecture_val: None,
    }
}

// ANCHOR: gpt_presets
/// `small`: the ladder's GPT scaled to train in minutes on a laptop's CPU.
#[rustfmt::skip]
pub const SMALL: Preset = gpt("small", Kind::GptSmall, TrainConfig {
    batch_size: 16, block_size: 32, max_iters: 5000, eval_interval: 500, learning_rate: 1e-3,
    ..BIGRAM_PY
}, "n_embd 64, 4 heads, 4 layers, block 32, batch 16, 5000 steps at 1e-3");

/// `cpu`: nanoGPT's configuration for a laptop.
#[rustfmt::skip]
pub const CPU: Preset = gpt("cpu", Kind::GptCpu, TrainConfig {
    batch_size: 12, block_size: 64, max_iters: 2000, eval_interval: 250, learning_rate: 1e-3,
    lr_schedule: LrSchedule::Cosine { warmup: 100, min_lr: 1e-4 }, // nanoGPT's schedule
    grad_clip: Some(1.0), beta2: 0.99, weight_decay: 0.1,
    ..BIGRAM_PY
}, "nanoGPT's laptop run: n_embd 128, 4 heads, 4 layers, block 64, batch 12, 2000 steps, cosine 1e-3 to 1e-4");

/// `lecture`: gpt.py's full configuration, for a GPU.
#[rustfmt::skip]
pub const LECTURE: Preset = Preset { lecture_val: Some(1.48), ..gpt("lecture", Kind::GptLecture, TrainConfig {
    batch_size: 64, block_size: 256, max_iters: 5000, eval_interval: 500, learning_rate: 3e-4,
    dropout: 0.2,
    ..BIGRAM_PY
}, "gpt.py: n_embd 384, 6 heads, 6 layers, block 256, batch 64, dropout 0.2, 5000 steps at 3e-4") };
// ANCHOR_END: gpt_presets

/// Every preset: the ladder bottom up, then chapter 8's.
#[rustfmt::skip]
pub const PRESETS: [Preset; 12] = [
    // ANCHOR: rungs
    rung("head", Kind::Head, "one head of size 32 (chapter 5's model at the ladder's settings)", Some(2.4)),
    rung("multihead", Kind::MultiHead, "4 heads of size 8, outputs concatenated", Some(2.28)),
    rung("ffwd", Kind::FeedForward, "a feed-forward layer per token (Linear 32→32, ReLU)", Some(2.24)),
    rung("plain-blocks", Kind::PlainBlocks, "3 blocks of (multihead, ffwd), one after another, no residual connections", None),
    rung("residual", Kind::Residual, "residual connections x + sa(x), x + ffwd(x), a projection closing each branch (feed-forward 32→32→32)", None),
    rung("blocks", Kind::Blocks, "the feed-forward 4× wider inside (32→128→32): gpt.py's Block without its norms", Some(2.08)),
    rung("layernorm", Kind::LayerNorm, "pre-norm LayerNorm in every block and before lm_head", Some(2.06)),
    Preset {
        config: TrainConfig { dropout: 0.2, ..LADDER },
        ..rung("dropout", Kind::LayerNorm, "dropout 0.2 on the attention weights and after each projection and feed-forward", None)
    },
    // ANCHOR_END: rungs
    SMALL,
    CPU,
    LECTURE,
    Preset { name: "small-gelu", group: Group::Exercise, kind: Kind::GptSmallGelu, about: "EX4: small with GELU in place of ReLU", ..SMALL },
];

impl Preset {
    /// The sizes its model's type fixes (every preset's model is a GPT of
    /// chapter 7's shape, but the rungs below "residual").
    pub fn sizes(&self) -> Sizes {
        self.kind
            .gpt_sizes()
            .unwrap_or_else(|| panic!("{} is not a GPT", self.name))
    }
}

/// The preset called `name`.
pub fn get(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The preset called `name`, which the code names and the table must hold.
pub fn named(name: &str) -> &'static Preset {
    get(name).unwrap_or_else(|| panic!("no preset {name:?} in presets::PRESETS"))
}

/// The presets of one group, in the table's order.
pub fn group(group: Group) -> impl Iterator<Item = &'static Preset> {
    PRESETS.iter().filter(move |p| p.group == group)
}

/// Every preset's name, for an error that lists them.
pub fn names() -> String {
    let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
    names.join(", ")
}
