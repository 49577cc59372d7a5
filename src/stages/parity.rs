//! Appendix "Parity with PyTorch": every stage's checks against the
//! lecture's PyTorch code (each stage's [`Stage::parity`]), as one table.

use std::path::Path;

use super::{parity_checks, BookNumbers, Progress, Stage, StageError, Tour};
use crate::data::DataSets;
use crate::parity::{markdown_table, torch_version};

/// The stage's id: its book files are in `chapters/figures/parity`.
pub const ID: &str = "parity";

/// The parity appendix in the registry: it checks nothing itself, it runs
/// every other stage's checks.
pub struct Parity;

impl Stage for Parity {
    fn id(&self) -> &'static str {
        ID
    }

    fn heading(&self) -> &'static str {
        "Appendix: parity with the lecture's PyTorch code"
    }

    fn tour(&self, data: &DataSets, _: &Path, _: Progress) -> Result<Tour, StageError> {
        let checks = parity_checks(data)?;
        let passed = checks.iter().filter(|c| c.passes()).count();
        let all = checks.len();
        Ok(Tour {
            summary: format!(
                "parity           {passed} of {all} comparisons within tolerance (details: charlm parity)\n"
            ),
            report: serde_json::json!({ "passed": passed, "comparisons": all }),
            figures: Vec::new(),
            failure: (passed != all)
                .then(|| "charlm differs from PyTorch: run `charlm parity` for the table".to_string()),
        })
    }

    /// The table of every comparison with PyTorch, how many pass, and the
    /// PyTorch version.
    fn write_book_files(&self, data: &DataSets, dir: &Path) -> Result<(), StageError> {
        let all = parity_checks(data)?;
        let mut numbers = BookNumbers::default();
        let passed = all.iter().filter(|c| c.passes()).count();
        numbers.put("table", markdown_table(&all).trim_end().to_string());
        numbers.put("passed", format!("{passed} of {}", all.len()));
        numbers.put("torch", torch_version()?);
        numbers.write(dir)
    }
}
