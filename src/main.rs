//! `charlm`: run each stage of the book from the command line. This file
//! parses and dispatches; each command lives in `cli/`.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    match cli::run(cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.is::<cli::lm::Interrupted>() {
                ExitCode::from(130) // the shell's code for Ctrl-C
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
