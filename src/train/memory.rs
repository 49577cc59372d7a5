//! Will a run fit? The memory the system has, and the memory a run needs,
//! checked before anything is allocated.

use super::{TrainConfig, TrainError};

/// The memory the operating system can give a process now, in bytes
/// (`MemAvailable` on Linux; `None` where it cannot tell).
pub fn available_memory() -> Option<u64> {
    proc_kb("/proc/meminfo", "MemAvailable:")
}

/// The process's peak resident memory so far, in bytes: `VmHWM` in
/// `/proc/self/status` on Linux (`None` elsewhere). Chapter 8 reports it.
pub fn peak_memory() -> Option<u64> {
    proc_kb("/proc/self/status", "VmHWM:")
}

/// The line of a `/proc` file that starts with `key`, its value in kB, as
/// bytes.
fn proc_kb(path: &str, key: &str) -> Option<u64> {
    let info = std::fs::read_to_string(path).ok()?;
    let line = info.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// Bytes in words: "12.3 GB", "512 MB".
pub fn bytes_in_words(bytes: u128) -> String {
    let gb = bytes as f64 / 1e9;
    if gb >= 1.0 {
        format!("{gb:.1} GB")
    } else {
        format!("{:.0} MB", bytes as f64 / 1e6)
    }
}

/// The batches, the block and the memory a run needs, checked before its
/// first step: blocks that fit in both splits, a block no longer than the
/// model's position table, a step that fits in the free memory.
pub fn check_fits<D: crate::ops::Kernels, M: crate::models::LanguageModel<D>>(
    model: &M,
    corpus: &crate::data::text::Corpus,
    cfg: &TrainConfig,
) -> Result<(), TrainError> {
    corpus.check_batches(cfg.batch_size, cfg.block_size)?;
    if cfg.dropout > 0.0 && !M::DROPOUT {
        return Err(TrainError::NoDropout(M::KIND));
    }
    if let Some(block) = model.block().filter(|&b| cfg.block_size > b) {
        let (model, asked) = (M::KIND, cfg.block_size);
        return Err(TrainError::BlockTooLong {
            model,
            asked,
            block,
        });
    }
    check_memory(model, cfg)
}

/// Refuses a run whose training step would need more memory than is free,
/// before anything is allocated (dfdx would abort, or the kernel kill it).
pub fn check_memory<D: crate::ops::Kernels, M: crate::models::LanguageModel<D>>(
    model: &M,
    cfg: &TrainConfig,
) -> Result<(), TrainError> {
    let needed = model.step_floats(cfg.batch_size, cfg.block_size) * 4;
    // Without a reading, still refuse what no machine has (1 TB).
    let available = available_memory().map_or(1u128 << 40, u128::from);
    if needed > available {
        return Err(TrainError::TooBig {
            batch: cfg.batch_size,
            block: cfg.block_size,
            needed: bytes_in_words(needed),
            available: bytes_in_words(available),
        });
    }
    Ok(())
}
