//! Names, one per line: the data of chapters 1 and 2.
//!
//! Introduced in chapter 1. `names.txt` holds 32,033 lowercase names; any
//! names file works, as long as no name contains '.', which the models
//! reserve as the start/end token.

use std::path::Path;

use super::{read_text, DataError, Dataset, Locator};

// ANCHOR: parse_names
/// Splits a names file into words: one name per line, surrounding whitespace
/// (and Windows line endings) trimmed, blank lines skipped. A name may hold
/// any characters except '.', which the models reserve as the start/end token.
pub fn parse_names(text: &str, path: &Path) -> Result<Vec<String>, DataError> {
    let mut words = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let word = line.trim();
        if word.is_empty() {
            continue;
        }
        if word.contains('.') {
            return Err(DataError::ReservedChar {
                path: path.to_path_buf(),
                line: i + 1,
            });
        }
        words.push(word.to_string());
    }
    if words.is_empty() {
        return Err(DataError::NoWords {
            path: path.to_path_buf(),
        });
    }
    Ok(words)
}
// ANCHOR_END: parse_names

/// Reads and parses a names file at `path`.
pub fn read_names(path: &Path) -> Result<Vec<String>, DataError> {
    parse_names(&read_text(path)?, path)
}

/// Finds names.txt (see [`Locator::resolve`]) and reads its words.
pub fn load_names(explicit: Option<&Path>) -> Result<Vec<String>, DataError> {
    read_names(&Locator::from_env().resolve(Dataset::Names, explicit)?)
}
