//! `charlm`: run each stage of the book from the command line. This file
//! parses and dispatches; each command lives in `cli/`.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

mod cli;

fn main() -> ExitCode {
    die_of_sigpipe();
    fail_past_file_size_limit();
    let matches = negatives_are_values(cli::Cli::command()).get_matches();
    let parsed = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli::run(parsed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            match e.downcast_ref::<cli::signals::Stopped>() {
                // what a shell reports for a process the signal ended
                Some(stopped) => ExitCode::from(stopped.signal.exit_code()),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// Every flag that takes a value takes one that starts with '-' too, so that
/// `--steps -1` is refused by the flag's own range check ("invalid value
/// '-1' for '--steps <N>'") instead of as an unknown argument '-1'.
fn negatives_are_values(cmd: clap::Command) -> clap::Command {
    let cmd = cmd.mut_args(|a| {
        if !a.is_positional() && a.get_action().takes_values() {
            a.allow_negative_numbers(true)
        } else {
            a
        }
    });
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    names.into_iter().fold(cmd, |cmd, name| {
        cmd.mut_subcommand(name, negatives_are_values)
    })
}

/// The error and its causes on one line, each said once: a cause whose text
/// the message already holds is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    line.replace('\n', " ")
}

/// Rust starts every program with SIGPIPE ignored, so output to a closed pipe
/// (`charlm counts --json | true`, `charlm bigram | head -c 10`) is an error,
/// and `println!` panics on it. Unix tools die of SIGPIPE instead, quietly;
/// so does charlm. Nothing is lost: every file charlm writes goes to a
/// temporary file first and is renamed only when complete.
fn die_of_sigpipe() {
    #[cfg(unix)]
    // SAFETY: `signal` with SIG_DFL installs no handler; it runs first in
    // main, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A write past the file-size limit (`ulimit -f`) sends SIGXFSZ, which by
/// default kills the process where it stands, leaving its temporary file
/// behind. Ignored, the write fails with an error instead, which charlm
/// handles as any failed write: the temporary file is removed, the old file
/// kept, and the error names the file.
fn fail_past_file_size_limit() {
    #[cfg(unix)]
    // SAFETY: as in `die_of_sigpipe`: no handler, before any other thread.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
