//! The `charlm` command line, a module per command: JSON output, figures,
//! and bad input giving a one-line error and a non-zero exit, never a panic.
//!
//! Every test runs the release binary with [`charlm`], which takes the
//! command line as one string (`charlm("bigram --steps 10 --json", dir)`)
//! or as its words, where a word is a path or holds a space.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// A command line: one string, split at spaces, or its words.
trait CommandLine {
    /// The words after `charlm`.
    fn words(&self) -> Vec<String>;
}

impl CommandLine for str {
    fn words(&self) -> Vec<String> {
        self.split_whitespace().map(str::to_string).collect()
    }
}

impl CommandLine for [&str] {
    fn words(&self) -> Vec<String> {
        self.iter().map(|w| w.to_string()).collect()
    }
}

impl<const N: usize> CommandLine for [&str; N] {
    fn words(&self) -> Vec<String> {
        self[..].words()
    }
}

impl CommandLine for [String] {
    fn words(&self) -> Vec<String> {
        self.to_vec()
    }
}

impl CommandLine for Vec<&str> {
    fn words(&self) -> Vec<String> {
        self[..].words()
    }
}

/// Runs the binary in `cwd`.
fn charlm(line: &(impl CommandLine + ?Sized), cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_charlm"))
        .args(line.words())
        .current_dir(cwd)
        .output()
        .expect("the charlm binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The JSON object on the last line of stdout.
fn json_of(o: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(o).trim_end().lines().last().unwrap()).unwrap()
}

/// Runs charlm expecting failure: exit code 1, one line on stderr, no panic.
fn fails(line: &(impl CommandLine + ?Sized), cwd: &Path, needle: &str) {
    let args = line.words();
    let o = charlm(&args[..], cwd);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: one line: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in {err}"
    );
}

/// Runs charlm expecting clap to refuse a flag's value: exit code 2, an
/// `error: invalid value` line naming `needle` (the accepted range), no panic.
fn rejected(line: &(impl CommandLine + ?Sized), cwd: &Path, needle: &str) {
    let args = line.words();
    let o = charlm(&args[..], cwd);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: invalid value"), "{args:?}: {err}");
    assert!(
        first.contains(needle),
        "{args:?}: expected {needle:?} in {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

use crate::{shared, tempfile};

mod any_text;
mod bigram;
mod counts;
mod gpt;
mod head;
mod onehot;
mod parity_bench;
#[cfg(unix)]
mod promises;
mod resume;
mod tour;
