//! `charlm`: run each stage of the book from the command line. This file
//! parses and dispatches; each command lives in `cli/`.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    die_of_sigpipe();
    match cli::run(cli::Cli::parse()) {
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
