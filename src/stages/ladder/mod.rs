//! The lecture's ladder (chapters 6 and 7): from one head to a Transformer,
//! rung by rung, each a training run at the same settings
//! ([`presets::LADDER`]) with the validation loss the lecture quotes.
//!
//! `charlm gpt --preset NAME` trains one rung, `charlm ladder` all of them.

pub mod book;
pub mod parity;

use serde::Serialize;

use crate::data::text::Split;
use crate::models::{LanguageModel, ModelJob};
use crate::ops::Kernels;
use crate::presets::{self, Group, Preset};
use crate::train::session::{self, Report, Settings};
use crate::train::{split_loss, Eval, TrainError, Watch};

/// The ladder's rungs, bottom up: the [`Group::Ladder`] presets.
pub fn rungs() -> impl Iterator<Item = &'static Preset> {
    presets::group(Group::Ladder)
}

/// The rung called `name`.
pub fn rung(name: &str) -> Option<&'static Preset> {
    rungs().find(|r| r.name == name)
}

/// The settings of the ladder's runs: [`presets::LADDER`], seed 1337,
/// 500 sampled characters.
pub fn settings() -> Settings {
    Settings {
        config: presets::LADDER,
        ..Settings::default()
    }
}

/// One rung's run: the rung and the session's report.
#[derive(Debug, Clone, Serialize)]
pub struct RungRun {
    /// The preset's name.
    pub preset: &'static str,
    /// The lecture's validation loss.
    pub lecture_val: Option<f64>,
    /// The final model's loss over the whole validation split
    /// ([`split_loss`](crate::train::split_loss)): the report's `val_loss`
    /// without the noise of 200 random batches.
    pub whole_val_loss: f32,
    /// The run's key figures.
    #[serde(flatten)]
    pub report: Report,
    /// Its loss estimates, for the figures.
    #[serde(skip)]
    pub evals: Vec<Eval>,
}

/// Trains one rung on `text` with `settings` (and the rung's dropout) under
/// `watch`.
pub fn run_rung<D: Kernels>(
    dev: &D,
    rung: &Preset,
    text: &str,
    settings: &Settings,
    watch: &mut dyn Watch,
) -> Result<RungRun, TrainError> {
    struct Job<'a, D> {
        dev: &'a D,
        text: &'a str,
        settings: &'a Settings,
        watch: &'a mut dyn Watch,
    }
    impl<D: Kernels> ModelJob<D> for Job<'_, D> {
        type Output = Result<(Report, Vec<Eval>, f32), TrainError>;
        fn run<M: LanguageModel<D>>(self) -> Self::Output {
            let run = session::run::<D, M>(self.dev, self.text, self.settings, None, self.watch)?;
            let whole = split_loss(self.dev, &run.model, &run.corpus, Split::Val, &run.config)?;
            Ok((run.report, run.train.history.evals, whole))
        }
    }
    let mut settings = settings.clone();
    settings.config.dropout = rung.config.dropout; // the one setting a rung changes
    let settings = &settings;
    let (report, evals, whole_val_loss) = rung.kind.with(Job {
        dev,
        text,
        settings,
        watch,
    })?;
    Ok(RungRun {
        preset: rung.name,
        lecture_val: rung.lecture_val,
        whole_val_loss,
        report,
        evals,
    })
}

/// The ladder as a table: rung, parameters, training and validation loss,
/// the lecture's validation loss, steps per second.
pub fn table(runs: &[RungRun]) -> String {
    let mut s = String::from(
        "| rung | parameters | train loss | val loss | whole val split | lecture | steps/s |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in runs {
        let lecture = r
            .lecture_val
            .map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        let q = &r.report;
        s.push_str(&format!(
            "| {} | {} | {:.4} | {:.4} | {:.4} | {} | {:.0} |\n",
            r.preset,
            q.params,
            q.train_loss,
            q.val_loss,
            r.whole_val_loss,
            lecture,
            q.steps_per_second
        ));
    }
    s
}
