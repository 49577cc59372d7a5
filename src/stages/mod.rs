//! One file per chapter: each runs its chapter end to end, with its settings,
//! report, figures, the numbers its chapter quotes, its checks against
//! PyTorch and its timed workloads, behind one [`Stage`] trait.
//!
//! `charlm tour`, `figures`, `parity` and `bench` loop over [`ALL`], the
//! registry: a new chapter is a new file here and one line in it. Every
//! number the book quotes comes from here: [`BookNumbers`] renders them into
//! an anchored file that chapters include with
//! `{{#include figures/<stage>/numbers.md:<anchor>}}`, and a test checks
//! that the committed files are what the code produces today.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::bench::Workload;
use crate::data::text::TextError;
use crate::data::{DataError, DataSets};
use crate::fsutil;
use crate::models::attention_trick::TrickError;
use crate::models::bigram_counts::BigramError;
use crate::models::bigram_onehot::OneHotError;
use crate::models::ModelError;
use crate::parity::{Comparison, RefError};
use crate::plot::PlotError;
use crate::train::checkpoint::CheckpointError;
use crate::train::{TrainError, Watch};

pub mod attention_trick;
pub mod bigram;
pub mod counts;
pub mod gpt;
pub mod gpt_exercises;
pub mod head;
pub mod ladder;
pub mod onehot;
pub mod parity;

// ANCHOR: registry
/// Every stage, in the book's order: what `charlm tour`, `figures`, `parity`
/// and `bench` iterate.
pub static ALL: &[&dyn Stage] = &[
    &crate::primer::Primer,
    &counts::Counts,
    &onehot::OneHot,
    &bigram::Bigram,
    &attention_trick::AttentionTrick,
    &head::OneHead,
    &ladder::book::Ladder,
    &gpt::Gpt,
    &gpt_exercises::GptExercises,
    &parity::Parity,
];
// ANCHOR_END: registry

// ANCHOR: stage
/// One chapter (or appendix), run end to end.
pub trait Stage: Sync {
    /// Its name: the folder of its book files (`chapters/figures/<id>`), its
    /// key in `charlm tour --json`, its column in the parity table.
    fn id(&self) -> &'static str;

    /// The heading `charlm tour` prints before it.
    fn heading(&self) -> &'static str;

    /// Runs the chapter with its defaults, writes its figures (SVG and PNG)
    /// into `out`, and reports. `progress(label, steps)` watches each training
    /// run: `label` names it (the rung, the exercise) where the tour shows it.
    fn tour(&self, data: &DataSets, out: &Path, progress: Progress) -> Result<Tour, StageError>;

    /// Writes every figure (SVG) and number its chapter quotes into `dir`.
    fn write_book_files(&self, data: &DataSets, dir: &Path) -> Result<(), StageError>;

    /// Draws the book files in `dir` again from the record of its runs that
    /// `write_book_files` keeps there, running nothing, where the stage keeps
    /// one (chapter 8's runs take minutes); `Ok(false)` where it keeps none.
    fn redraw_book_files(&self, _dir: &Path) -> Result<bool, StageError> {
        Ok(false)
    }

    /// Its checks against the lecture's PyTorch code (see [`crate::parity`]).
    fn parity(&self, _data: &DataSets) -> Result<Vec<Comparison>, StageError> {
        Ok(Vec::new())
    }

    /// Its hot loops, timed by `charlm bench` (see [`crate::bench`]).
    fn workloads(&self) -> Vec<Workload> {
        Vec::new()
    }
}
// ANCHOR_END: stage

/// Makes the [`Watch`] of one training run of `steps` steps, named by a
/// label: `charlm tour` shows the label and a progress bar; tests and
/// notebooks watch nothing.
pub type Progress<'a> = &'a dyn Fn(&str, usize) -> Box<dyn Watch + 'a>;

/// What [`Stage::tour`] reports.
#[derive(Debug, Clone, Default)]
pub struct Tour {
    /// What `charlm tour` prints for the stage.
    pub summary: String,
    /// Its key figures, for `charlm tour --json`.
    pub report: serde_json::Value,
    /// The figures it wrote.
    pub figures: Vec<PathBuf>,
    /// Set when the stage ran but found something wrong (a check against
    /// PyTorch failed): the tour prints everything, then fails with it.
    pub failure: Option<String>,
}

/// Every stage's checks against PyTorch, in the book's order.
pub fn parity_checks(data: &DataSets) -> Result<Vec<Comparison>, StageError> {
    let mut all = Vec::new();
    for stage in ALL {
        all.extend(stage.parity(data)?);
    }
    Ok(all)
}

/// Errors while running a stage or writing its outputs.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The data could not be found or read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The counting model rejected its input.
    #[error(transparent)]
    Bigram(#[from] BigramError),
    /// A figure failed.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// The neural net failed (bad settings, divergence, device).
    #[error(transparent)]
    OneHot(#[from] OneHotError),
    /// The text could not be tokenized or batched.
    #[error(transparent)]
    Text(#[from] TextError),
    /// A language model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Training a language model failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A checkpoint could not be saved or loaded.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The attention trick failed.
    #[error(transparent)]
    Trick(#[from] TrickError),
    /// A reference file of the parity checks could not be read.
    #[error(transparent)]
    Reference(#[from] RefError),
    /// The device reported an error.
    #[error("device error: {0}")]
    Device(String),
    /// A stage's record of its runs is missing or not one this code reads.
    #[error("{0}")]
    Record(String),
    /// Chapter 8's addition task refused its settings.
    #[error(transparent)]
    Addition(#[from] crate::data::addition::AdditionError),
    /// Torch's generator was asked for an impossible range.
    #[error(transparent)]
    TorchRng(#[from] crate::torch_rng::RandintError),
    /// Writing an output file failed.
    #[error(transparent)]
    Io(#[from] fsutil::FsError),
}

impl From<crate::models::trigram::TrigramError> for StageError {
    fn from(e: crate::models::trigram::TrigramError) -> Self {
        use crate::models::trigram::TrigramError;
        match e {
            TrigramError::Data(e) => e.into(),
            TrigramError::Model(e) => e.into(),
        }
    }
}

/// Writes a stage's record of its runs (`name` in `dir`, pretty JSON), by a
/// temporary file and a rename: what its book files are drawn from.
pub(crate) fn write_record<T: serde::Serialize>(
    dir: &Path,
    name: &str,
    record: &T,
) -> Result<(), StageError> {
    let json = serde_json::to_string_pretty(record).unwrap_or_default() + "\n";
    fsutil::write_atomic(&dir.join(name), json.as_bytes())?;
    Ok(())
}

/// Reads a record that [`write_record`] wrote for stage `id`; missing or
/// unreadable, an error that says how to make it anew.
pub(crate) fn read_record<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
    id: &str,
) -> Result<T, StageError> {
    let path = dir.join(name);
    let again = format!("run `cargo run --release -- figures --stage {id}`");
    let bytes =
        crate::fsutil::read(&path).map_err(|e| StageError::Record(format!("{e}; {again}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| StageError::Record(format!("{}: {e}; {again}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| StageError::Record(format!("{}: {e}; {again}", path.display())))
}

pub(crate) fn dev_err<E: std::fmt::Debug>(e: E) -> StageError {
    StageError::Device(format!("{e:?}"))
}

/// The lecture's generator seed (`torch.Generator().manual_seed(2147483647)`).
pub const LECTURE_SEED: u64 = 2147483647;

/// The `numbers.md` of a stage: every value its chapter quotes, each between
/// `ANCHOR: name` and `ANCHOR_END: name` lines for `{{#include ...:name}}`.
pub struct BookNumbers(String);

impl Default for BookNumbers {
    fn default() -> Self {
        Self(String::from(
            "<!-- Generated by `charlm figures`; do not edit. Each ANCHOR is one quoted value. -->\n",
        ))
    }
}

impl BookNumbers {
    /// Adds one anchored value.
    pub fn put(&mut self, name: &str, value: String) {
        let _ = write!(self.0, "ANCHOR: {name}\n{value}\nANCHOR_END: {name}\n");
    }

    /// Writes `dir/numbers.md` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), StageError> {
        let path = dir.join("numbers.md");
        Ok(fsutil::write_atomic(&path, self.0.as_bytes())?)
    }
}

/// Sampled names as a text block, one per line; a name that ended at once
/// (the model drew '.' first) is shown as "(empty)".
pub(crate) fn sample_block(names: &[String]) -> String {
    let lines: Vec<&str> = names
        .iter()
        .map(|n| if n.is_empty() { "(empty)" } else { n.as_str() })
        .collect();
    format!("```text\n{}\n```", lines.join("\n"))
}

/// `x` rounded to the 4 decimals the book prints, as f64: differences of
/// printed numbers are taken from these, so that a reader's subtraction of
/// the printed values agrees with the book's.
pub(crate) fn as_printed(x: f32) -> f64 {
    (f64::from(x) * 1e4).round() / 1e4
}

/// Text on one line: a newline shown as `\n`.
pub(crate) fn shown(text: &str) -> String {
    text.replace('\n', "\\n")
}

/// A character as an axis label: newline and space made visible.
pub(crate) fn label(c: char) -> char {
    match c {
        '\n' => '¶',
        ' ' => '_',
        c => c,
    }
}

/// `name =` and the rows of a matrix, four decimals each.
pub(crate) fn matrix_block<R: AsRef<[f32]>>(name: &str, rows: &[R]) -> String {
    let mut s = format!("{name} =\n");
    for r in rows {
        let cells: Vec<String> = r.as_ref().iter().map(|v| format!("{v:7.4}")).collect();
        let _ = writeln!(s, "  [{}]", cells.join(", "));
    }
    s
}

/// The JSON of a report (reports are plain structs: this cannot fail).
pub(crate) fn json<T: serde::Serialize>(report: &T) -> serde_json::Value {
    serde_json::to_value(report).unwrap_or(serde_json::Value::Null)
}
