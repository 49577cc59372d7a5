//! `charlm tour` and `charlm figures`: every stage of the registry, run for
//! a reader or for the book.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use charlm::data::DataSets;
use charlm::stages::ALL;
use charlm::train::Watch;

use super::progress::Bar;

/// Flags of `charlm tour`.
#[derive(Debug, Args)]
pub struct TourArgs {
    /// Where to write the figures.
    #[arg(long, value_name = "DIR", default_value = "target/figures")]
    out: PathBuf,
    /// Print only one JSON object, keyed by stage (the last stdout line).
    #[arg(long)]
    json: bool,
}

/// `charlm tour`: every stage with its defaults, its summary, its figures.
pub fn tour(a: TourArgs) -> Result<()> {
    charlm::fsutil::check_folder(&a.out)?;
    let data = DataSets::new();
    // Each run is named once, on stderr, with its bar; its losses are printed
    // once, in the stage's summary on stdout.
    let progress = |label: &str, steps: usize| -> Box<dyn Watch> {
        Box::new(Bar::new(steps, a.json).labelled(label))
    };
    let (mut reports, mut figures, mut failures) = (serde_json::Map::new(), Vec::new(), Vec::new());
    for (i, stage) in ALL.iter().enumerate() {
        if !a.json {
            let gap = if i == 0 { "" } else { "\n" };
            println!("{gap}== {}", stage.heading());
        }
        let tour = stage.tour(&data, &a.out, &progress)?;
        if !a.json {
            print!("{}", tour.summary);
            if !tour.summary.ends_with('\n') {
                println!();
            }
        }
        reports.insert(stage.id().to_string(), tour.report);
        figures.extend(tour.figures);
        failures.extend(tour.failure);
    }
    if a.json {
        println!("{}", serde_json::Value::Object(reports));
    } else {
        println!();
        for path in &figures {
            println!("figure           {}", path.display());
        }
    }
    if let Some(failure) = failures.first() {
        anyhow::bail!("{failure}");
    }
    Ok(())
}

/// Flags of `charlm figures`.
#[derive(Debug, Args)]
pub struct FiguresArgs {
    /// The book's figures folder.
    #[arg(long, value_name = "DIR", default_value = "chapters/figures")]
    out: PathBuf,
    /// Only this stage's files (repeat the flag); every stage by default.
    /// Chapter 8's (`gpt`) train its presets in full: several minutes.
    #[arg(long = "stage", value_name = "ID", value_parser = stage_id)]
    stages: Vec<&'static str>,
    /// Where a stage keeps a record of its runs (the ladder's and chapter 8's `runs.json`),
    /// draw its figures and numbers from that record instead of running
    /// again (after a change to how they are drawn); other stages as usual.
    #[arg(long)]
    redraw: bool,
}

/// A stage by its id, for clap.
fn stage_id(id: &str) -> Result<&'static str, String> {
    ALL.iter()
        .map(|s| s.id())
        .find(|&s| s == id)
        .ok_or_else(|| {
            let ids: Vec<&str> = ALL.iter().map(|s| s.id()).collect();
            format!("unknown stage; choose from {}", ids.join(", "))
        })
}

/// `charlm figures`: every stage's book files (or the chosen stages').
pub fn figures(a: FiguresArgs) -> Result<()> {
    charlm::fsutil::check_folder(&a.out)?;
    let data = DataSets::new();
    let chosen = |id: &str| a.stages.is_empty() || a.stages.contains(&id);
    for stage in ALL.iter().filter(|s| chosen(s.id())) {
        let dir = a.out.join(stage.id());
        if a.redraw && stage.redraw_book_files(&dir)? {
            println!(
                "redrew the book's files for {} in {} from its record",
                stage.id(),
                dir.display()
            );
            continue;
        }
        stage.write_book_files(&data, &dir)?;
        println!(
            "wrote the book's files for {} to {}",
            stage.id(),
            dir.display()
        );
    }
    Ok(())
}
