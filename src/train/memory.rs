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
    fits(needed).map_err(|(needed, available)| TrainError::TooBig {
        batch: cfg.batch_size,
        block: cfg.block_size,
        needed,
        available,
    })
}

/// How many weights a model of kind `M` has for a vocabulary of `vocab`
/// tokens, found without building it at that size: every model's sizes are
/// polynomials of degree at most 2 in the vocabulary (a bigram's V × V
/// table, a GPT's V × C embedding and lm_head), so models of 1, 2 and 3
/// tokens give it exactly (Newton's forward differences).
pub fn weights_for<D: crate::ops::Kernels, M: crate::models::LanguageModel<D>>(
    dev: &D,
    vocab: usize,
) -> Result<u128, TrainError> {
    use dfdx::nn::NumParams;
    let mut rng = <rand_chacha::ChaCha12Rng as rand::SeedableRng>::seed_from_u64(0);
    let mut at = |v: usize| -> Result<i128, TrainError> {
        Ok(M::init(dev, v, &mut rng)?.num_trainable_params() as i128)
    };
    let (p1, p2, p3) = (at(1)?, at(2)?, at(3)?);
    let v = vocab as i128 - 1;
    let (d1, d2) = (p2 - p1, p3 - 2 * p2 + p1);
    let n = p1 + v * d1 + v * (v - 1) / 2 * d2;
    Ok(u128::try_from(n.max(0)).unwrap_or(0))
}

/// Refuses a model whose weights, gradients and AdamW's two moments (16
/// bytes a weight) would not fit in the free memory, before it is built:
/// a text with very many distinct characters makes a bigram's V × V table
/// huge. `weights` is [`weights_for`]'s count.
pub fn check_weights_fit(
    kind: &'static str,
    vocab: usize,
    weights: u128,
) -> Result<(), TrainError> {
    fits(weights.saturating_mul(16)).map_err(|(needed, available)| TrainError::ModelTooBig {
        model: kind,
        vocab,
        needed,
        available,
    })
}

/// Whether `bytes` fit in the free memory; if not, the need and what is
/// free, in words, for an error that says so before anything is allocated.
/// Without a reading, it still refuses what no machine has (1 TB).
pub fn fits(bytes: u128) -> Result<(), (String, String)> {
    let available = available_memory().map_or(1u128 << 40, u128::from);
    if bytes > available {
        return Err((bytes_in_words(bytes), bytes_in_words(available)));
    }
    Ok(())
}
