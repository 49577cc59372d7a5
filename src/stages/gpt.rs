//! Chapter 8's presets: the lecture's GPT scaled up, each a model type (its
//! sizes) and its training settings, run by `charlm gpt --preset NAME`.

use crate::models::Kind;
use crate::train::TrainConfig;

// ANCHOR: gpt_presets
/// A preset of chapter 8: a model type and the settings it trains with.
#[derive(Debug, Clone, Copy)]
pub struct GptPreset {
    /// `--preset NAME`.
    pub name: &'static str,
    /// The model type.
    pub kind: Kind,
    /// What it is, in a line.
    pub about: &'static str,
    /// Its training settings.
    pub config: fn() -> TrainConfig,
}

/// The three presets: `small` (a minute or so on a laptop), `cpu`
/// (nanoGPT's laptop run) and `lecture` (gpt.py, for a GPU).
pub const GPT_PRESETS: [GptPreset; 3] = [
    GptPreset {
        name: "small",
        kind: Kind::GptSmall,
        about: "n_embd 64, 4 heads, 4 layers, block 32, batch 16, 5000 steps at 1e-3",
        config: TrainConfig::gpt_small,
    },
    GptPreset {
        name: "cpu",
        kind: Kind::GptCpu,
        about: "nanoGPT's laptop run: n_embd 128, 4 heads, 4 layers, block 64, batch 12, 2000 steps, cosine 1e-3 to 1e-4",
        config: TrainConfig::gpt_cpu,
    },
    GptPreset {
        name: "lecture",
        kind: Kind::GptLecture,
        about: "gpt.py: n_embd 384, 6 heads, 6 layers, block 256, batch 64, dropout 0.2, 5000 steps at 3e-4",
        config: TrainConfig::gpt_lecture,
    },
];
// ANCHOR_END: gpt_presets

/// The preset called `name`.
pub fn gpt_preset(name: &str) -> Option<GptPreset> {
    GPT_PRESETS.into_iter().find(|p| p.name == name)
}
