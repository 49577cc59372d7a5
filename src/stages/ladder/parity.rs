//! Chapters 6 and 7 against the lecture's PyTorch code (`parity/ladder.py`):
//! the "layernorm" rung from PyTorch's initial weights, 100 AdamW steps on
//! PyTorch's batches (every loss to 1e-4); block 0 alone, forward and every
//! gradient (1e-5); LayerNorm alone, forward and backward (1e-5).

use std::collections::HashMap;

use dfdx::nn::modules::LayerNorm1D;
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde::Deserialize;

use crate::data::text::Corpus;
use crate::models::gpt::{Block, LectureLayerNorm};
use crate::models::lm::check_vocab;
use crate::ops::Kernels;
use crate::parity::{compare, load_named, ref_file, replay, Comparison, RefError};
use crate::stages::bigram::SHAKESPEARE_VOCAB;
use crate::stages::{dev_err, StageError};
use crate::train::TrainConfig;

/// The column of these checks in the parity table.
const STAGE: &str = "ladder";

#[derive(Deserialize)]
struct LadderRef {
    batch_size: usize,
    block_size: usize,
    learning_rate: f32,
    weight_decay: f32,
    step_losses: Vec<f32>,
    block: HashMap<String, Vec<f32>>,
    layernorm: HashMap<String, Vec<f32>>,
}

/// The inputs of the ladder's checks, in charlm's names and layout.
#[derive(Debug, Clone, PartialEq)]
pub struct LadderInputs {
    /// The layernorm rung's initial weights, by name (`blocks.0.sa.key`).
    pub weights: HashMap<String, Vec<f32>>,
    /// One row of batch offsets per step, (steps, batch_size).
    pub offsets: Vec<Vec<usize>>,
    /// Block 0's input, (2, 8, 32), and the gradient flowing into its output.
    pub block_x: Vec<f32>,
    /// See `block_x`.
    pub block_upstream: Vec<f32>,
    /// LayerNorm's gamma and beta (32 each), input and upstream gradient (4, 8, 32).
    pub ln: [Vec<f32>; 4],
}

impl LadderInputs {
    /// What `parity/ladder.py` drew, from `torch.manual_seed(1337)`.
    pub fn reference() -> Result<Self, RefError> {
        let r: LadderRef = ref_file!("ladder.json").json()?;
        let file = ref_file!("ladder.safetensors");
        let inputs = file.tensors()?;
        let offsets = inputs.indices("offsets", &[r.step_losses.len(), r.batch_size])?;
        let (c, t) = (32, r.block_size);
        Ok(Self {
            weights: inputs.all_floats(),
            offsets: offsets
                .chunks(r.batch_size.max(1))
                .map(<[usize]>::to_vec)
                .collect(),
            block_x: inputs.floats("block.x", &[2, t, c])?,
            block_upstream: inputs.floats("block.upstream", &[2, t, c])?,
            ln: [
                inputs.floats("ln.gamma", &[c])?,
                inputs.floats("ln.beta", &[c])?,
                inputs.floats("ln.x", &[4, t, c])?,
                inputs.floats("ln.upstream", &[4, t, c])?,
            ],
        })
    }
}

/// Chapters 6 and 7: the three checks above.
pub fn check_ladder<D: Kernels>(
    dev: &D,
    text: &str,
    inputs: &LadderInputs,
) -> Result<Vec<Comparison>, StageError> {
    let r: LadderRef = ref_file!("ladder.json").json()?;
    let bad = |reason: String| {
        StageError::Reference(RefError {
            file: "ladder.safetensors".to_string(),
            reason,
        })
    };
    // the layernorm rung, 100 AdamW steps on PyTorch's batches
    let corpus = Corpus::new(text)?;
    check_vocab(SHAKESPEARE_VOCAB, &corpus)?;
    let mut model =
        LectureLayerNorm::new(dev, SHAKESPEARE_VOCAB, &mut ChaCha12Rng::seed_from_u64(0))?;
    load_named(&mut model, &inputs.weights).map_err(bad)?;
    let cfg = TrainConfig {
        batch_size: r.batch_size,
        block_size: r.block_size,
        learning_rate: r.learning_rate,
        weight_decay: r.weight_decay,
        ..crate::presets::LADDER
    };
    let losses = replay(dev, &mut model, &corpus, &cfg, &inputs.offsets)?;
    let steps = losses.len();
    let mut out = Vec::new();
    for k in [1, 10, steps] {
        out.push(compare(
            STAGE,
            format!(
                "layernorm rung: loss of batch {k} (after {} AdamW steps)",
                k - 1
            ),
            r.step_losses.get(k - 1).copied().into_iter().collect(),
            losses.get(k - 1).copied().into_iter().collect(),
            1e-4,
        ));
    }
    out.push(compare(
        STAGE,
        format!("layernorm rung: all {steps} batch losses"),
        r.step_losses.clone(),
        losses,
        1e-4,
    ));
    out.extend(check_block(dev, &r, inputs).map_err(|e| match e {
        Failed::Ref(reason) => bad(reason),
        Failed::Stage(e) => e,
    })?);
    out.extend(check_layernorm(dev, &r, inputs)?);
    Ok(out)
}

enum Failed {
    Ref(String),
    Stage(StageError),
}

impl From<StageError> for Failed {
    fn from(e: StageError) -> Self {
        Failed::Stage(e)
    }
}

/// Block 0 of the initial model alone: `sum(out * upstream)` and its gradients.
fn check_block<D: Kernels>(
    dev: &D,
    r: &LadderRef,
    inputs: &LadderInputs,
) -> Result<Vec<Comparison>, Failed> {
    let weights: HashMap<String, Vec<f32>> = inputs
        .weights
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("blocks.0.")
                .map(|k| (k.to_string(), v.clone()))
        })
        .collect();
    let mut block: Block<32, 4, 8, 128, LayerNorm1D<32, f32, D>, f32, D> =
        Block::new(dev, &mut ChaCha12Rng::seed_from_u64(0)).map_err(StageError::from)?;
    load_named(&mut block, &weights).map_err(Failed::Ref)?;
    let t = r.block_size;
    let tensor = |v: &Vec<f32>| {
        dev.try_tensor_from_vec(v.clone(), (2, t, Const::<32>))
            .map_err(dev_err)
    };
    let x = tensor(&inputs.block_x)?; // (2, T, C)
    let upstream = tensor(&inputs.block_upstream)?; // (2, T, C)
    let y = block
        .try_forward(x.trace(Gradients::leaky()))
        .map_err(dev_err)?; // (2, T, C)
    let y_values = y.as_vec();
    let grads = (y * upstream).sum().backward(); // ∂ sum(out * upstream)
    let want = |k: &str| r.block.get(k).cloned().unwrap_or_default();
    let mut out = vec![
        compare(STAGE, "block: out", want("out"), y_values, 1e-5),
        compare(
            STAGE,
            "block: ∂loss/∂x",
            want("grad x"),
            grads.get(&x).as_vec(),
            1e-5,
        ),
    ];
    let b = &block;
    let params: [(&str, Vec<f32>); 9] = [
        ("ln1.gamma", grads.get(&b.ln1.gamma).as_vec()),
        ("ln1.beta", grads.get(&b.ln1.beta).as_vec()),
        ("sa.query", grads.get(&b.sa.heads.query).as_vec()),
        ("sa.key", grads.get(&b.sa.heads.key).as_vec()),
        ("sa.value", grads.get(&b.sa.heads.value).as_vec()),
        ("proj.weight", grads.get(&b.sa.proj.weight).as_vec()),
        ("proj.bias", grads.get(&b.sa.proj.bias).as_vec()),
        ("ffwd.0.weight", grads.get(&b.ffwd.net.0.weight).as_vec()),
        ("ffwd.2.bias", grads.get(&b.ffwd.net.2.bias).as_vec()),
    ];
    for (name, got) in params {
        out.push(compare(
            STAGE,
            format!("block: ∂loss/∂{name}"),
            want(&format!("grad {name}")),
            got,
            1e-5,
        ));
    }
    Ok(out)
}

/// LayerNorm alone, with PyTorch's gamma and beta: out, and the gradients.
fn check_layernorm<D: Kernels>(
    dev: &D,
    r: &LadderRef,
    inputs: &LadderInputs,
) -> Result<Vec<Comparison>, StageError> {
    let [gamma, beta, x, up] = &inputs.ln;
    let ln = LayerNorm1D::<32, f32, D> {
        gamma: dev
            .try_tensor_from_vec(gamma.clone(), (Const,))
            .map_err(dev_err)?,
        beta: dev
            .try_tensor_from_vec(beta.clone(), (Const,))
            .map_err(dev_err)?,
        epsilon: 1e-5,
    };
    let t = r.block_size;
    let tensor = |v: &Vec<f32>| {
        dev.try_tensor_from_vec(v.clone(), (4, t, Const::<32>))
            .map_err(dev_err)
    };
    let (x, up) = (tensor(x)?, tensor(up)?); // (4, T, C)
    let y = ln
        .try_forward(x.trace(Gradients::leaky()))
        .map_err(dev_err)?; // (4, T, C)
    let y_values = y.as_vec();
    let grads = (y * up).sum().backward();
    let want = |k: &str| r.layernorm.get(k).cloned().unwrap_or_default();
    Ok(vec![
        compare(STAGE, "LayerNorm: out", want("out"), y_values, 1e-5),
        compare(
            STAGE,
            "LayerNorm: ∂loss/∂x",
            want("grad x"),
            grads.get(&x).as_vec(),
            1e-5,
        ),
        compare(
            STAGE,
            "LayerNorm: ∂loss/∂gamma",
            want("grad gamma"),
            grads.get(&ln.gamma).as_vec(),
            1e-5,
        ),
        compare(
            STAGE,
            "LayerNorm: ∂loss/∂beta",
            want("grad beta"),
            grads.get(&ln.beta).as_vec(),
            1e-5,
        ),
    ])
}
