//! The lecture's ladder (chapters 6 and 7): from one head to a Transformer,
//! rung by rung, each a training run at the same settings
//! ([`TrainConfig::ladder`]) with the validation loss the lecture quotes.
//!
//! `charlm gpt --preset NAME` trains one rung, `charlm ladder` all of them.

use serde::Serialize;

use crate::data::text::Split;
use crate::models::{Kind, LanguageModel, ModelJob};
use crate::ops::Kernels;
use crate::train::session::{self, Report, Settings};
use crate::train::{split_loss, Eval, TrainConfig, TrainError, Watch};

// ANCHOR: rungs
/// One rung: its name, what it adds, the model, and the lecture's number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rung {
    /// The preset's name (`charlm gpt --preset NAME`).
    pub name: &'static str,
    /// What this rung adds to the one before.
    pub adds: &'static str,
    /// The model.
    pub kind: Kind,
    /// The validation loss the lecture reports for it (the commit messages
    /// of karpathy/ng-video-lecture, and the video), if it gives one.
    pub lecture_val: Option<f64>,
    /// Dropout's probability in training.
    pub dropout: f32,
}

/// Every rung, bottom up.
pub const RUNGS: [Rung; 6] = [
    Rung {
        name: "head",
        adds: "one head of size 32 (chapter 5's model at the ladder's settings)",
        kind: Kind::Head,
        lecture_val: Some(2.4),
        dropout: 0.0,
    },
    Rung {
        name: "multihead",
        adds: "4 heads of size 8, outputs concatenated",
        kind: Kind::MultiHead,
        lecture_val: Some(2.28),
        dropout: 0.0,
    },
    Rung {
        name: "ffwd",
        adds: "a feed-forward layer per token (Linear 32→32, ReLU)",
        kind: Kind::FeedForward,
        lecture_val: Some(2.24),
        dropout: 0.0,
    },
    Rung {
        name: "blocks",
        adds: "3 blocks, residual connections with projections, feed-forward 32→128→32",
        kind: Kind::Blocks,
        lecture_val: Some(2.08),
        dropout: 0.0,
    },
    Rung {
        name: "layernorm",
        adds: "pre-norm LayerNorm in every block and before lm_head",
        kind: Kind::LayerNorm,
        lecture_val: Some(2.06),
        dropout: 0.0,
    },
    Rung {
        name: "dropout",
        adds: "dropout 0.2 on the attention weights and after each projection and feed-forward",
        kind: Kind::LayerNorm,
        lecture_val: None,
        dropout: 0.2,
    },
];
// ANCHOR_END: rungs

/// The rung called `name`.
pub fn rung(name: &str) -> Option<Rung> {
    RUNGS.into_iter().find(|r| r.name == name)
}

/// The settings of the ladder's runs: [`TrainConfig::ladder`], seed 1337,
/// 500 sampled characters.
pub fn settings() -> Settings {
    Settings {
        config: TrainConfig::ladder(),
        ..Settings::default()
    }
}

impl Rung {
    /// `settings` with this rung's dropout.
    pub fn settings(&self, settings: &Settings) -> Settings {
        let mut s = settings.clone();
        s.config.dropout = self.dropout;
        s
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
    rung: Rung,
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
    let settings = &rung.settings(settings);
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
