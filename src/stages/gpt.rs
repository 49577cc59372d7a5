//! Chapter 8's presets: the lecture's GPT scaled up, each a model type (its
//! sizes) and its training settings, run by `charlm gpt --preset NAME`.

use std::path::Path;

use dfdx::nn::NumParams;
use dfdx::prelude::Cpu;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use super::gpt_parity::{check_gpt, GptInputs};
use super::{json, Progress, Stage, StageError, Tour};
use crate::bench::{training_step, Workload};
use crate::data::DataSets;
use crate::models::gpt::{GptCpu, GptLecture, GptSmall, GptSmallGelu, Sizes};
use crate::models::{Kind, LanguageModel, ModelJob};
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
    /// The sizes its model type fixes.
    pub sizes: Sizes,
}

/// The three presets: `small` (a minute or so on a laptop), `cpu`
/// (nanoGPT's laptop run) and `lecture` (gpt.py, for a GPU).
pub const GPT_PRESETS: [GptPreset; 3] = [
    GptPreset {
        name: "small",
        kind: Kind::GptSmall,
        about: "n_embd 64, 4 heads, 4 layers, block 32, batch 16, 5000 steps at 1e-3",
        config: TrainConfig::gpt_small,
        sizes: GptSmall::<Cpu>::SIZES,
    },
    GptPreset {
        name: "cpu",
        kind: Kind::GptCpu,
        about: "nanoGPT's laptop run: n_embd 128, 4 heads, 4 layers, block 64, batch 12, 2000 steps, cosine 1e-3 to 1e-4",
        config: TrainConfig::gpt_cpu,
        sizes: GptCpu::<Cpu>::SIZES,
    },
    GptPreset {
        name: "lecture",
        kind: Kind::GptLecture,
        about: "gpt.py: n_embd 384, 6 heads, 6 layers, block 256, batch 64, dropout 0.2, 5000 steps at 3e-4",
        config: TrainConfig::gpt_lecture,
        sizes: GptLecture::<Cpu>::SIZES,
    },
];
// ANCHOR_END: gpt_presets

/// Chapter 8's exercise EX4 as a preset: `small` with GELU in place of
/// ReLU, the same settings (`charlm gpt --preset small-gelu`).
pub const SMALL_GELU: GptPreset = GptPreset {
    name: "small-gelu",
    kind: Kind::GptSmallGelu,
    about: "EX4: small with GELU in place of ReLU",
    config: TrainConfig::gpt_small,
    sizes: GptSmallGelu::<Cpu>::SIZES,
};

/// The preset called `name`: one of the three, or EX4's `small-gelu`.
pub fn gpt_preset(name: &str) -> Option<GptPreset> {
    GPT_PRESETS
        .into_iter()
        .chain([SMALL_GELU])
        .find(|p| p.name == name)
}

/// The stage's id: its book files are in `chapters/figures/gpt`.
pub const ID: &str = "gpt";

/// Chapter 8 in the registry: the presets' runs, samples and numbers
/// ([`gpt_book`](super::gpt_book)), a short `small` run in the tour, the
/// check against gpt.py, and the presets' training steps as workloads.
pub struct Gpt;

/// Steps of the tour's short `small` run (the preset's own is 5,000:
/// `charlm gpt --preset small`).
pub const TOUR_STEPS: usize = 500;

/// The lecture's validation loss for the `lecture` preset, trained on a GPU
/// (the video).
pub const LECTURE_VAL: f32 = 1.48;

/// The validation loss the `small` preset is to reach (PyTorch's gpt.py at
/// the same settings, on this project's machine: [`TORCH_SMALL_VAL`]).
pub const SMALL_TARGET: f32 = 1.86;

/// gpt.py at the `small` preset's settings in PyTorch, 5,000 steps, measured
/// on this project's machine when the preset was chosen.
pub const TORCH_SMALL_VAL: f32 = 1.8374;

/// The validation loss the `cpu` preset is to reach, in under
/// [`CPU_MINUTES`] minutes.
pub const CPU_TARGET: f32 = 1.90;

/// The `cpu` preset's time budget on a two-core machine, in minutes.
pub const CPU_MINUTES: f32 = 10.0;

/// nanoGPT's README for its laptop configuration (which the `cpu` preset
/// follows, with the lecture's model): validation loss about 1.88 after
/// about 3 minutes.
pub const NANOGPT_CPU: (f32, f32) = (1.88, 3.0);

/// Each preset's parameter count, made from its model type on `vocab`
/// characters (cheap: the models are initialised, not trained).
pub fn preset_params(vocab: usize) -> Result<Vec<(&'static str, usize)>, StageError> {
    struct Count(usize);
    impl ModelJob<Cpu> for Count {
        type Output = Result<usize, StageError>;
        fn run<M: LanguageModel<Cpu>>(self) -> Self::Output {
            let mut rng = ChaCha12Rng::seed_from_u64(1337);
            Ok(M::init(&Cpu::default(), self.0, &mut rng)?.num_trainable_params())
        }
    }
    GPT_PRESETS
        .iter()
        .map(|p| Ok((p.name, p.kind.with(Count(vocab))?)))
        .collect()
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
        let watch = &mut *progress("the small preset, a short run", config.max_iters);
        let s = session::run::<Cpu, GptSmall<Cpu>>(&dev, data.text()?, &settings, None, watch)?;
        Ok(Tour {
            summary: s.summary(),
            report: json(&s.report),
            figures: Vec::new(),
            failure: None,
        })
    }

    /// Runs every run of the chapter in full (several minutes), then writes
    /// the record and the files drawn from it ([`gpt_book`](super::gpt_book)).
    fn write_book_files(&self, data: &DataSets, dir: &Path) -> Result<(), StageError> {
        super::gpt_book::write_book_files(&super::gpt_book::run_book(data)?, dir)
    }

    fn redraw_book_files(&self, dir: &Path) -> Result<bool, StageError> {
        super::gpt_book::render(&super::gpt_book::read_record(dir)?, dir)?;
        Ok(true)
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
