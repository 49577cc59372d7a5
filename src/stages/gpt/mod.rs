//! Chapter 8's presets: the lecture's GPT scaled up, each a model type (its
//! sizes) and its training settings, run by `charlm gpt --preset NAME`.

pub mod book;
pub mod parity;

use std::path::Path;

use dfdx::nn::NumParams;
use dfdx::prelude::Cpu;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use super::{json, Progress, Stage, StageError, Tour};
use crate::bench::{training_step, Workload};
use crate::data::DataSets;
use crate::models::gpt::{GptCpu, GptLecture, GptSmall};
use crate::models::{LanguageModel, ModelJob};
use crate::parity::Comparison;
use crate::presets::{self, Group};
use crate::train::session::{self, Settings};
use crate::train::TrainConfig;
use parity::{check_gpt, GptInputs};

/// The stage's id: its book files are in `chapters/figures/gpt`.
pub const ID: &str = "gpt";

/// Chapter 8 in the registry: the presets' runs, samples and numbers
/// ([`book`]), a short `small` run in the tour, the
/// check against gpt.py, and the presets' training steps as workloads.
pub struct Gpt;

/// Steps of the tour's short `small` run (the preset's own is 5,000:
/// `charlm gpt --preset small`).
pub const TOUR_STEPS: usize = 500;

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
    presets::group(Group::Gpt)
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
            ..crate::presets::SMALL.config
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
    /// the record and the files drawn from it ([`book`]).
    fn write_book_files(&self, data: &DataSets, dir: &Path) -> Result<(), StageError> {
        book::write_book_files(&book::run_book(data)?, dir)
    }

    fn redraw_book_files(&self, dir: &Path) -> Result<bool, StageError> {
        book::render(&book::read_record(dir)?, dir)?;
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
                prepare: |data| training_step::<GptSmall<Cpu>>(data, crate::presets::SMALL.config),
            },
            Workload {
                name: "gpt-cpu-step",
                about: "chapter 8: one training step of the cpu preset (B=12, T=64, 4 layers of 128, clipped)",
                prepare: |data| training_step::<GptCpu<Cpu>>(data, crate::presets::CPU.config),
            },
            Workload {
                name: "gpt-lecture-step",
                about: "chapter 8: one training step of the lecture preset (B=64, T=256, 6 layers of 384, dropout 0.2)",
                prepare: |data| training_step::<GptLecture<Cpu>>(data, crate::presets::LECTURE.config),
            },
        ]
    }
}
