//! `charlm bench` and `charlm parity`: the two appendices, over every
//! stage's workloads and checks.

use anyhow::{Context, Result};
use clap::Args;

use charlm::bench::{self, time, with_threads, Workload};
use charlm::data::DataSets;
use charlm::parity::{check_all, markdown_table, torch_version};

use super::{count_in, limits};

/// Flags of `charlm bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Only these workloads (repeat the flag); all by default.
    #[arg(long = "workload", value_name = "NAME", value_parser = workload_name)]
    workloads: Vec<Workload>,
    /// Threads for dfdx's matrix multiplies and charlm's kernels (1 to 1024).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = count_in(1, limits::THREADS))]
    threads: usize,
    /// Timed samples per workload (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = count_in(1, limits::BENCH_SAMPLES))]
    samples: usize,
    /// Shortest sample, in milliseconds (1 to 600,000; iterations are added
    /// to fill it).
    #[arg(long, value_name = "MS", default_value_t = 200, value_parser = count_in(1, limits::SAMPLE_MS))]
    sample_ms: u64,
    /// Print only one JSON object (the last stdout line).
    #[arg(long)]
    json: bool,
}

/// A workload by its name, for clap.
fn workload_name(name: &str) -> Result<Workload, String> {
    bench::find(name).ok_or_else(|| {
        let names: Vec<&str> = bench::all().iter().map(|w| w.name).collect();
        format!("unknown workload; choose from {}", names.join(", "))
    })
}

/// `charlm bench`: times the workloads on a pool of `threads` threads.
pub fn bench(a: BenchArgs) -> Result<()> {
    let workloads = if a.workloads.is_empty() {
        bench::all()
    } else {
        a.workloads
    };
    let data = DataSets::new();
    let min_sample = std::time::Duration::from_millis(a.sample_ms);
    let timings = with_threads(a.threads, || {
        workloads
            .iter()
            .map(|w| {
                let mut iteration = (w.prepare)(&data)?;
                time(w, &mut iteration, a.samples, min_sample)
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .context("starting the thread pool")??;
    if a.json {
        let rows: Vec<_> = timings
            .iter()
            .map(|t| {
                serde_json::json!({
                    "workload": t.workload,
                    "threads": t.threads,
                    "iterations": t.iterations,
                    "best_s": t.best(),
                    "median_s": t.median(),
                    "seconds": t.seconds,
                })
            })
            .collect();
        let threads = a.threads;
        // the process's peak resident memory (its high-water mark, not a
        // parent's: a forked child's maximum resident set counts the
        // parent's pages until it execs)
        let peak = charlm::train::peak_memory();
        println!(
            "{}",
            serde_json::json!({ "threads": threads, "timings": rows, "peak_memory": peak })
        );
    } else {
        println!(
            "{:<18} {:>7} {:>12} {:>12}",
            "workload", "threads", "best", "median"
        );
        for t in &timings {
            println!(
                "{:<18} {:>7} {:>9.3} ms {:>9.3} ms",
                t.workload,
                t.threads,
                t.best() * 1e3,
                t.median() * 1e3
            );
        }
    }
    Ok(())
}

/// Flags of `charlm parity`.
#[derive(Debug, Args)]
pub struct ParityArgs {
    /// Print only one JSON object (the last stdout line).
    #[arg(long)]
    json: bool,
}

/// `charlm parity`: every comparison, as a table or as JSON; an error when
/// any fails.
pub fn parity(a: ParityArgs) -> Result<()> {
    let all = check_all(&DataSets::new())?;
    let failed: Vec<&str> = all
        .iter()
        .filter(|c| !c.passes())
        .map(|c| c.quantity.as_str())
        .collect();
    if a.json {
        let rows: Vec<_> = all
            .iter()
            .map(|c| {
                serde_json::json!({
                    "stage": c.stage,
                    "quantity": c.quantity,
                    "values": c.torch.len(),
                    "max_abs_diff": c.max_abs_diff(),
                    "tolerance": c.tolerance,
                    "passes": c.passes(),
                })
            })
            .collect();
        let torch = torch_version()?;
        println!(
            "{}",
            serde_json::json!({ "torch": torch, "comparisons": rows, "failed": failed.len() })
        );
    } else {
        print!("{}", markdown_table(&all));
        println!(
            "{} of {} comparisons within tolerance",
            all.len() - failed.len(),
            all.len()
        );
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "charlm differs from PyTorch beyond tolerance: {}",
            failed.join("; ")
        );
    }
    Ok(())
}
