//! Chapter 8's presets: the lecture's GPT scaled up, each a model type (its
//! sizes) and its training settings, run by `charlm gpt --preset NAME`.

use std::fmt::Write as _;
use std::path::Path;

use dfdx::nn::NumParams;
use dfdx::prelude::Cpu;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use super::gpt_parity::{check_gpt, GptInputs};
use super::{json, BookNumbers, Progress, Stage, StageError, Tour};
use crate::bench::{training_step, Workload};
use crate::data::DataSets;
use crate::models::gpt::{GptCpu, GptLecture, GptSmall};
use crate::models::Kind;
use crate::parity::Comparison;
use crate::train::session::{self, Settings};
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

/// The stage's id: its book files are in `chapters/figures/gpt`.
pub const ID: &str = "gpt";

/// Chapter 8 in the registry (in progress: its timed workloads, the
/// presets' parameter counts, and a short `small` run in the tour).
pub struct Gpt;

/// Steps of the tour's short `small` run (the preset's own is 5,000:
/// `charlm gpt --preset small`).
pub const TOUR_STEPS: usize = 500;

/// Each preset's parameter count, made from its model type on `vocab`
/// characters (cheap: the models are initialised, not trained).
pub fn preset_params(vocab: usize) -> Result<Vec<(&'static str, usize)>, StageError> {
    let dev = Cpu::default();
    let mut rng = ChaCha12Rng::seed_from_u64(1337);
    Ok(vec![
        (
            "small",
            GptSmall::<Cpu>::new(&dev, vocab, &mut rng)?.num_trainable_params(),
        ),
        (
            "cpu",
            GptCpu::<Cpu>::new(&dev, vocab, &mut rng)?.num_trainable_params(),
        ),
        (
            "lecture",
            GptLecture::<Cpu>::new(&dev, vocab, &mut rng)?.num_trainable_params(),
        ),
    ])
}

impl Stage for Gpt {
    fn id(&self) -> &'static str {
        ID
    }

    fn heading(&self) -> &'static str {
        "Chapter 8: a GPT at scale (the small preset, a short run)"
    }

    fn tour(&self, data: &DataSets, _out: &Path, progress: Progress) -> Result<Tour, StageError> {
        let dev = Cpu::default();
        let config = TrainConfig {
            max_iters: TOUR_STEPS,
            eval_interval: TOUR_STEPS / 2,
            ..TrainConfig::gpt_small()
        };
        let settings = Settings {
            config,
            seed: 1337,
            sample_tokens: 300,
        };
        let watch = &mut *progress(config.max_iters);
        let s = session::run::<Cpu, GptSmall<Cpu>>(&dev, data.text()?, &settings, None, watch)?;
        Ok(Tour {
            summary: s.summary(),
            report: json(&s.report),
            figures: Vec::new(),
            failure: None,
        })
    }

    fn write_book_files(&self, data: &DataSets, dir: &Path) -> Result<(), StageError> {
        let vocab = crate::data::text::Corpus::new(data.text()?)?.vocab.len();
        let mut numbers = BookNumbers::default();
        let mut table = String::from("| preset | configuration | parameters |\n|---|---|---:|\n");
        for ((name, params), preset) in preset_params(vocab)?.into_iter().zip(GPT_PRESETS) {
            let _ = writeln!(table, "| `{name}` | {} | {params} |", preset.about);
            numbers.put(&format!("params_{name}"), params.to_string());
        }
        numbers.put("presets", table.trim_end().to_string());
        numbers.write(dir)
    }

    fn parity(&self, data: &DataSets) -> Result<Vec<Comparison>, StageError> {
        check_gpt(&Cpu::default(), data.text()?, &GptInputs::reference()?)
    }

    fn workloads(&self) -> Vec<Workload> {
        vec![
            Workload {
                name: "gpt-small-step",
                about: "chapter 8: one training step of the small preset (B=16, T=32, 4 layers of 64)",
                prepare: |data| training_step::<GptSmall<Cpu>>(data, TrainConfig::gpt_small()),
            },
            Workload {
                name: "gpt-cpu-step",
                about: "chapter 8: one training step of the cpu preset (B=12, T=64, 4 layers of 128, clipped)",
                prepare: |data| training_step::<GptCpu<Cpu>>(data, TrainConfig::gpt_cpu()),
            },
            Workload {
                name: "gpt-lecture-step",
                about: "chapter 8: one training step of the lecture preset (B=64, T=256, 6 layers of 384, dropout 0.2)",
                prepare: |data| training_step::<GptLecture<Cpu>>(data, TrainConfig::gpt_lecture()),
            },
        ]
    }
}
