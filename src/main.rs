//! `charlm`: run each stage of the book from the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use charlm::data;
use charlm::tour::{self, CountsSettings};

/// Character-level language models, built step by step (the charlm book).
///
/// Each subcommand runs one stage of the book on its data set. Data files are
/// found at --data, else in $CHARLM_DATA_DIR, else in ./data, else downloaded
/// into ./data and checked against their published SHA-256.
#[derive(Debug, Parser)]
#[command(name = "charlm", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Chapter 1: the bigram model from counts on names.txt.
    ///
    /// Counts how often each character follows each other one in 32,033 names,
    /// normalises the counts into next-character probabilities, scores the model
    /// with the average negative log-likelihood (lower is better; 2.4546 with
    /// the default smoothing) and samples new names from it.
    Counts {
        /// The names file (one name per line).
        #[arg(long, value_name = "PATH")]
        data: Option<PathBuf>,
        /// Pseudo-count k added to every bigram count before normalising.
        /// 0 makes unseen bigrams impossible (infinite loss on them); large k
        /// pulls the model towards uniform.
        #[arg(
            long,
            value_name = "K",
            default_value_t = 1.0,
            allow_negative_numbers = true
        )]
        smoothing: f64,
        /// How many names to sample.
        #[arg(long, value_name = "N", default_value_t = 10)]
        samples: usize,
        /// Seed of the random generator (the lecture's is 2147483647).
        #[arg(long, value_name = "S", default_value_t = tour::LECTURE_SEED)]
        seed: u64,
        /// Also draw the annotated 27×27 count heatmap to PATH (.svg or .png).
        #[arg(long, value_name = "PATH")]
        figure: Option<PathBuf>,
        /// Print only one JSON object of the key figures (the last stdout line).
        #[arg(long)]
        json: bool,
    },
    /// Run every chapter implemented so far, print its key figures and write
    /// its figures (SVG and PNG) to DIR. The main job: start here.
    Tour {
        /// Where to write the figures.
        #[arg(long, value_name = "DIR", default_value = "target/figures")]
        out: PathBuf,
        /// Print only one JSON object, keyed by stage (the last stdout line).
        #[arg(long)]
        json: bool,
    },
    /// Regenerate the book's figures and quoted numbers (SVG + numbers.md per
    /// stage). Run `charlm figures --out chapters/figures` after changing the
    /// library; a test fails while the committed files are stale.
    Figures {
        /// The book's figures folder.
        #[arg(long, value_name = "DIR", default_value = "chapters/figures")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Counts {
            data,
            smoothing,
            samples,
            seed,
            figure,
            json,
        } => {
            let words = data::load_names(data.as_deref())?;
            let settings = CountsSettings {
                smoothing,
                samples,
                seed,
            };
            let run = tour::run_counts(&words, &settings)?;
            if let Some(path) = &figure {
                use charlm::plot::Figure;
                charlm::plot::CountHeatmap(run.model.counts())
                    .save(path)
                    .with_context(|| format!("writing the figure {}", path.display()))?;
            }
            if json {
                println!("{}", serde_json::to_string(&run.report)?);
            } else {
                print!("{}", run.summary());
                if let Some(path) = figure {
                    println!("figure           {}", path.display());
                }
            }
        }
        Command::Tour { out, json } => {
            let words = data::load_names(None)?;
            if !json {
                println!("== Chapter 1: the bigram model from counts (names.txt)");
            }
            let run = tour::run_counts(&words, &CountsSettings::default())?;
            let written = run.save_figures(&out.join(tour::COUNTS_DIR), &["svg", "png"])?;
            if json {
                let all = serde_json::json!({ "bigram_counts": run.report });
                println!("{all}");
            } else {
                print!("{}", run.summary());
                print_written(&written);
            }
        }
        Command::Figures { out } => {
            let words = data::load_names(None)?;
            let dir = out.join(tour::COUNTS_DIR);
            let run = tour::run_counts(&words, &CountsSettings::default())?;
            run.write_book_files(&words, &dir)?;
            println!(
                "wrote the book's files for the bigram model from counts to {}",
                dir.display()
            );
        }
    }
    Ok(())
}

fn print_written(paths: &[impl AsRef<Path>]) {
    for p in paths {
        println!("figure           {}", p.as_ref().display());
    }
}
