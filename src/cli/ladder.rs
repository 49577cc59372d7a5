//! `charlm ladder`: every rung of chapters 6 and 7, then the table.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use charlm::data::{self, Dataset};
use charlm::ops::Kernels;
use charlm::stages::ladder::{self, RungRun};

use super::progress::Bar;
use super::{count_in, limits, on_device, DeviceArg, DeviceJob};

/// Flags of `charlm ladder`.
#[derive(Debug, Args)]
pub struct LadderArgs {
    /// The text file [default: tiny Shakespeare].
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Steps of every rung (0 to 1,000,000,000) [default: 5000].
    #[arg(long, value_name = "N", value_parser = count_in(0, limits::STEPS))]
    steps: Option<usize>,
    /// Estimate the loss every N steps [default: 500].
    #[arg(long, value_name = "N", value_parser = count_in(1, limits::EVAL_INTERVAL))]
    eval_interval: Option<usize>,
    /// Batches per split in each estimate [default: 200].
    #[arg(long, value_name = "N", value_parser = count_in(1, limits::EVAL_ITERS))]
    eval_iters: Option<usize>,
    /// Seed of every rung's random generator.
    #[arg(long, value_name = "S", default_value_t = 1337)]
    seed: u64,
    /// Where tensors live.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Print only one JSON object, {"rungs": [...]} (the last stdout line).
    #[arg(long)]
    json: bool,
}

/// `charlm ladder`.
pub fn ladder(a: LadderArgs) -> Result<()> {
    let text = data::load_text(Dataset::TinyShakespeare, a.data.as_deref())?;
    let mut settings = ladder::settings();
    settings.seed = a.seed;
    let c = &mut settings.config;
    c.max_iters = a.steps.unwrap_or(c.max_iters);
    c.eval_interval = a.eval_interval.unwrap_or(c.eval_interval);
    c.eval_iters = a.eval_iters.unwrap_or(c.eval_iters);
    let json = a.json;
    let runs = on_device(
        a.device,
        a.seed,
        Job {
            text: &text,
            settings: &settings,
            json,
        },
    )?;
    if json {
        println!("{}", serde_json::json!({ "rungs": runs }));
    } else {
        print!("{}", ladder::table(&runs));
    }
    Ok(())
}

struct Job<'a> {
    text: &'a str,
    settings: &'a charlm::train::session::Settings,
    json: bool,
}

impl DeviceJob for Job<'_> {
    type Output = Vec<RungRun>;

    fn run<D: Kernels>(self, dev: &D) -> Result<Vec<RungRun>> {
        let mut runs = Vec::new();
        for rung in ladder::rungs() {
            if !self.json {
                eprintln!("rung {}: {}", rung.name, rung.about);
            }
            let c = &self.settings.config;
            let mut bar = Bar::new(c.max_iters, self.json).with_tokens(c.batch_size * c.block_size);
            runs.push(ladder::run_rung(
                dev,
                rung,
                self.text,
                self.settings,
                &mut bar,
            )?);
        }
        Ok(runs)
    }
}
