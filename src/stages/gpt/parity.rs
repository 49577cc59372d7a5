//! Chapter 8 against the lecture's PyTorch code (`parity/gpt.py`): the
//! `small` preset from PyTorch's initial weights (gpt.py's `_init_weights`),
//! the logits of one forward pass (1e-5) and 100 AdamW steps on PyTorch's
//! batches: the first [`STRICT_STEPS`] losses to 1e-4, all of them to twice
//! the distance between PyTorch's own runs on 1 and on 2 threads.
//!
//! At this size the trajectory is sensitive to the order of additions: on
//! 2 threads PyTorch's own losses drift from its 1-thread run by up to about
//! 3e-3 within 100 steps (`parity/gpt.py` measures it and records both), so
//! no reimplementation can hold 1e-4 that long; until step 20 both stay
//! within about 1e-6.

use std::collections::HashMap;

use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde::Deserialize;

use crate::data::text::{batch_at, Corpus, Split};
use crate::models::gpt::GptSmall;
use crate::models::lm::{batch_tensors, check_vocab};
use crate::models::LanguageModel;
use crate::ops::Kernels;
use crate::parity::{compare, load_named, ref_file, replay, Comparison, RefError};
use crate::stages::bigram::SHAKESPEARE_VOCAB;
use crate::stages::StageError;
use crate::train::TrainConfig;

/// The column of these checks in the parity table.
const STAGE: &str = "gpt";

#[derive(Deserialize)]
struct GptRef {
    batch_size: usize,
    block_size: usize,
    learning_rate: f32,
    weight_decay: f32,
    step_losses: Vec<f32>,
    step_losses_2_threads: Vec<f32>,
    logits: Vec<f32>,
}

/// The steps whose losses must agree to 1e-4.
pub const STRICT_STEPS: usize = 20;

/// The inputs of chapter 8's checks, in charlm's names and layout.
#[derive(Debug, Clone, PartialEq)]
pub struct GptInputs {
    /// The `small` preset's initial weights, by name (`blocks.0.sa.key`).
    pub weights: HashMap<String, Vec<f32>>,
    /// One row of batch offsets per step, (steps, batch_size).
    pub offsets: Vec<Vec<usize>>,
}

impl GptInputs {
    /// What `parity/gpt.py` drew, from `torch.manual_seed(1337)`.
    pub fn reference() -> Result<Self, RefError> {
        let r: GptRef = ref_file!("gpt.json").json()?;
        let file = ref_file!("gpt.safetensors");
        let inputs = file.tensors()?;
        let offsets = inputs.indices("offsets", &[r.step_losses.len(), r.batch_size])?;
        Ok(Self {
            weights: inputs.all_floats(),
            offsets: offsets
                .chunks(r.batch_size.max(1))
                .map(<[usize]>::to_vec)
                .collect(),
        })
    }
}

/// How far PyTorch's own batch losses move over the 100 steps between 1
/// and 2 threads: the largest difference, what the later steps are held to
/// (twice it).
pub fn torch_spread() -> Result<f32, RefError> {
    let r: GptRef = ref_file!("gpt.json").json()?;
    Ok(spread(&r))
}

fn spread(r: &GptRef) -> f32 {
    r.step_losses
        .iter()
        .zip(&r.step_losses_2_threads)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
}

/// Chapter 8: the logits of the initial model on the first two rows of the
/// first batch, then the 100 steps.
pub fn check_gpt<D: Kernels>(
    dev: &D,
    text: &str,
    inputs: &GptInputs,
) -> Result<Vec<Comparison>, StageError> {
    let r: GptRef = ref_file!("gpt.json").json()?;
    let bad = |reason: String| {
        StageError::Reference(RefError {
            file: "gpt.safetensors".to_string(),
            reason,
        })
    };
    let corpus = Corpus::new(text)?;
    check_vocab(SHAKESPEARE_VOCAB, &corpus)?;
    let mut model = GptSmall::new(dev, SHAKESPEARE_VOCAB, &mut ChaCha12Rng::seed_from_u64(0))?;
    load_named(&mut model, &inputs.weights).map_err(bad)?;
    let first = inputs
        .offsets
        .first()
        .map_or(&[][..], |o| &o[..o.len().min(2)]);
    let batch = batch_at(&corpus.train, Split::Train, first, r.block_size)?;
    let (x, _) = batch_tensors(dev, &batch)?; // (2, T)
    let logits = model.logits(x)?.as_vec(); // (2, T, V)
    let mut out = vec![compare(
        STAGE,
        "small preset: logits of the initial model, 2 rows of batch 1",
        r.logits.clone(),
        logits,
        1e-5,
    )];
    let cfg = TrainConfig {
        batch_size: r.batch_size,
        block_size: r.block_size,
        learning_rate: r.learning_rate,
        weight_decay: r.weight_decay,
        ..crate::presets::SMALL.config
    };
    let losses = replay(dev, &mut model, &corpus, &cfg, &inputs.offsets)?;
    let k = STRICT_STEPS.min(losses.len());
    out.push(compare(
        STAGE,
        format!("small preset: batch losses 1 to {k} (AdamW from PyTorch's weights)"),
        r.step_losses.iter().take(k).copied().collect(),
        losses[..k].to_vec(),
        1e-4,
    ));
    let spread = spread(&r);
    out.push(compare(
        STAGE,
        format!(
            "small preset: all {} batch losses, to twice PyTorch's own spread on 1 and 2 threads",
            losses.len()
        ),
        r.step_losses,
        losses,
        2.0 * spread,
    ));
    Ok(out)
}
