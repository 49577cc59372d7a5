//! Parity with PyTorch: each stage run from the same inputs as the lecture's
//! PyTorch code, and compared with the values PyTorch computed.
//!
//! Introduced in the appendix "Parity with PyTorch". The scripts in
//! `parity/` (`python3 parity/run.py`) run each stage in PyTorch and write,
//! under `parity/ref/`, the inputs both sides start from (initial weights,
//! batch offsets, random tensors; `<stage>.safetensors`) and PyTorch's
//! results (`<stage>.json`). Two random generators never agree, so sharing
//! the inputs is what makes the trajectories comparable. The files are
//! compiled into the crate: checking needs no Python, and `charlm parity`
//! works from anywhere.
//!
//! Every check returns [`Comparison`]s: a quantity, PyTorch's values,
//! charlm's, and the largest difference allowed. Everything is generic over
//! the device, so a CUDA build checks its own arithmetic the same way.

use std::fmt::Write as _;

use ::safetensors::tensor::{Dtype as SafeDtype, SafeTensors};
use dfdx::nn::modules::Embedding;
use dfdx::nn::ZeroGrads;
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::attention_trick::{
    bag_of_words_loops, bag_of_words_matmul, bag_of_words_softmax, TrickError,
};
use crate::bigram_counts::{BigramCounts, BigramError};
use crate::bigram_embedding::{check_vocab, BigramLanguageModel, ModelError, SHAKESPEARE_VOCAB};
use crate::bigram_onehot::{self as onehot, Batch, BigramNet, Forward, OneHotConfig, OneHotError};
use crate::bigram_onehot::{Pairs, NAMES_VOCAB};
use crate::fused::Fused;
use crate::self_attention::Head;
use crate::text::{batch_at, Corpus, Split, TextError};
use crate::train::{train_step, AdamW, TrainConfig, TrainError};

/// Errors of the parity checks.
#[derive(Debug, thiserror::Error)]
pub enum ParityError {
    /// A reference file could not be read.
    #[error("parity/ref/{file}: {reason}")]
    Reference {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// Counting failed.
    #[error(transparent)]
    Bigram(#[from] BigramError),
    /// The one-hot net failed.
    #[error(transparent)]
    OneHot(#[from] OneHotError),
    /// The text could not be tokenized or batched.
    #[error(transparent)]
    Text(#[from] TextError),
    /// A language model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The attention trick failed.
    #[error(transparent)]
    Trick(#[from] TrickError),
    /// The device reported an error.
    #[error("device error: {0}")]
    Device(String),
}

fn dev_err<E: std::fmt::Debug>(e: E) -> ParityError {
    ParityError::Device(format!("{e:?}"))
}

// ANCHOR: comparison
/// One quantity computed by both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The stage (`bigram_counts`, ..., the module that computes it).
    pub stage: &'static str,
    /// What is compared.
    pub quantity: String,
    /// PyTorch's values.
    pub torch: Vec<f32>,
    /// charlm's values, in the same order.
    pub charlm: Vec<f32>,
    /// The largest |charlm − PyTorch| allowed; 0 means bit for bit.
    pub tolerance: f32,
}

impl Comparison {
    /// The largest |charlm − PyTorch| over the values; infinite when the
    /// lengths differ or a value is NaN on one side only.
    pub fn max_abs_diff(&self) -> f32 {
        if self.torch.len() != self.charlm.len() {
            return f32::INFINITY;
        }
        self.torch
            .iter()
            .zip(&self.charlm)
            .map(|(&t, &c)| match (t.is_nan(), c.is_nan()) {
                (true, true) => 0.0,
                (false, false) if t == c => 0.0, // also equal infinities
                (false, false) => (t - c).abs(),
                _ => f32::INFINITY,
            })
            .fold(0.0, f32::max)
    }

    /// Whether charlm is within the tolerance (for 0: identical bits).
    pub fn passes(&self) -> bool {
        if self.tolerance == 0.0 {
            self.torch.len() == self.charlm.len()
                && self
                    .torch
                    .iter()
                    .zip(&self.charlm)
                    .all(|(t, c)| t.to_bits() == c.to_bits())
        } else {
            self.max_abs_diff() <= self.tolerance
        }
    }
}
// ANCHOR_END: comparison

fn compare(
    stage: &'static str,
    quantity: impl Into<String>,
    torch: Vec<f32>,
    charlm: Vec<f32>,
    tolerance: f32,
) -> Comparison {
    Comparison {
        stage,
        quantity: quantity.into(),
        torch,
        charlm,
        tolerance,
    }
}

/// A reference file of `parity/ref/`, compiled into the crate.
struct RefFile {
    name: &'static str,
    bytes: &'static [u8],
}

macro_rules! ref_file {
    ($name:literal) => {
        RefFile {
            name: $name,
            bytes: include_bytes!(concat!("../parity/ref/", $name)),
        }
    };
}

impl RefFile {
    fn error(&self, reason: impl std::fmt::Display) -> ParityError {
        ParityError::Reference {
            file: self.name.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The JSON of PyTorch's values.
    fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ParityError> {
        serde_json::from_slice(self.bytes).map_err(|e| self.error(e))
    }

    /// The safetensors file of shared inputs.
    fn tensors(&self) -> Result<Inputs<'_>, ParityError> {
        let st = SafeTensors::deserialize(self.bytes).map_err(|e| self.error(format!("{e:?}")))?;
        Ok(Inputs { file: self, st })
    }
}

/// Shared inputs read from a safetensors file.
struct Inputs<'a> {
    file: &'a RefFile,
    st: SafeTensors<'static>,
}

impl Inputs<'_> {
    /// Raw little-endian bytes of tensor `name`, checked for type and shape.
    fn bytes(&self, name: &str, dtype: SafeDtype, shape: &[usize]) -> Result<&[u8], ParityError> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| self.file.error(format!("no tensor {name:?}")))?;
        if t.dtype() != dtype || t.shape() != shape {
            let found = format!("{:?} {:?}", t.dtype(), t.shape());
            let reason = format!("tensor {name:?} is {found}, expected {dtype:?} {shape:?}");
            return Err(self.file.error(reason));
        }
        Ok(t.data())
    }

    fn floats(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ParityError> {
        let data = self.bytes(name, SafeDtype::F32, shape)?;
        Ok(data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn indices(&self, name: &str, shape: &[usize]) -> Result<Vec<usize>, ParityError> {
        let data = self.bytes(name, SafeDtype::I64, shape)?;
        data.chunks_exact(8)
            .map(|b| {
                let v = i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                usize::try_from(v)
                    .map_err(|_| self.file.error(format!("{name}: negative index {v}")))
            })
            .collect()
    }
}

// ---------------------------------------------------------------- chapter 1

#[derive(Deserialize)]
struct CountsRef {
    words: usize,
    bigrams: usize,
    #[serde(rename = "N")]
    n: Vec<f32>,
    nll: f32,
}

/// Chapter 1: the count table `N` (exactly) and the lecture's float32 loss
/// (bit for bit), from names.txt.
pub fn check_counts<S: AsRef<str>>(words: &[S]) -> Result<Vec<Comparison>, ParityError> {
    const STAGE: &str = "bigram_counts";
    let r: CountsRef = ref_file!("bigram_counts.json").json()?;
    let counts = BigramCounts::from_words(words)?;
    let model = counts.probabilities(1.0)?;
    let as_f32 = |v: u64| v as f32;
    Ok(vec![
        compare(
            STAGE,
            "names",
            vec![as_f32(r.words as u64)],
            vec![as_f32(words.len() as u64)],
            0.0,
        ),
        compare(
            STAGE,
            "bigrams",
            vec![as_f32(r.bigrams as u64)],
            vec![as_f32(counts.total())],
            0.0,
        ),
        compare(
            STAGE,
            "N, the 27×27 counts",
            r.n,
            counts
                .as_slice()
                .iter()
                .map(|&c| as_f32(c as u64))
                .collect(),
            0.0,
        ),
        compare(
            STAGE,
            "NLL, summed in float32 as the lecture does",
            vec![r.nll],
            vec![model.nll_f32(words)?],
            0.0,
        ),
    ])
}

// ---------------------------------------------------------------- chapter 2

#[derive(Deserialize)]
struct OneHotRef {
    pairs: usize,
    lr: f32,
    reg: f32,
    losses: Vec<f32>,
    first_grad: Vec<f32>,
    #[serde(rename = "final_W")]
    final_w: Vec<f32>,
}

/// The inputs of chapter 2's check: the lecture's initial W.
#[derive(Debug, Clone, PartialEq)]
pub struct OneHotInputs {
    /// W before training, row-major (27, 27).
    pub w: Vec<f32>,
}

impl OneHotInputs {
    /// The W that PyTorch drew (`torch.randn((27, 27), generator=g)`).
    pub fn reference() -> Result<Self, ParityError> {
        let inputs = ref_file!("bigram_onehot.safetensors");
        Ok(Self {
            w: inputs.tensors()?.floats("W", &[NAMES_VOCAB, NAMES_VOCAB])?,
        })
    }
}

/// Chapter 2: from PyTorch's W, the loss before training and after 1, 10
/// and 100 steps, the first gradient and the final W, for both forward
/// passes (the fused one-hot matmul and the lookup).
pub fn check_onehot<D: Fused, S: AsRef<str>>(
    dev: &D,
    words: &[S],
    inputs: &OneHotInputs,
) -> Result<Vec<Comparison>, ParityError> {
    const STAGE: &str = "bigram_onehot";
    let r: OneHotRef = ref_file!("bigram_onehot.json").json()?;
    let counts = BigramCounts::from_words(words)?;
    let pairs = Pairs::new(words, counts.vocab())?;
    let batch: Batch<NAMES_VOCAB, D> = Batch::new(dev, &pairs)?;
    let steps = r.losses.len().saturating_sub(1);
    let mut out = vec![compare(
        STAGE,
        "training pairs",
        vec![r.pairs as f32],
        vec![pairs.len() as f32],
        0.0,
    )];
    for (forward, name) in [(Forward::OneHot, "one-hot"), (Forward::Lookup, "lookup")] {
        let init = BigramNet::<NAMES_VOCAB, D>::from_weights(dev, inputs.w.clone())?;
        let w = init.w.trace(Gradients::leaky());
        let (loss, _) = onehot::loss(w, &batch, forward, r.reg);
        let grad = loss.backward().get(&init.w).as_vec(); // ∂loss/∂W at the start, (27, 27)
        out.push(compare(
            STAGE,
            format!("{name}: ∂loss/∂W before training"),
            r.first_grad.clone(),
            grad,
            1e-6,
        ));
        let mut net = init;
        let cfg = OneHotConfig {
            steps,
            lr: r.lr,
            reg: r.reg,
            forward,
        };
        let h = onehot::train(&mut net, &batch, &cfg)?;
        let mut losses = h.losses.clone();
        losses.push(h.final_loss); // the loss before each step, and after the last
        for k in [0, 1, 10, steps] {
            let (torch, charlm) = (r.losses.get(k).copied(), losses.get(k).copied());
            let quantity = match k {
                0 => format!("{name}: loss before training"),
                1 => format!("{name}: loss after 1 step"),
                k => format!("{name}: loss after {k} steps"),
            };
            out.push(compare(
                STAGE,
                quantity,
                torch.into_iter().collect(),
                charlm.into_iter().collect(),
                1e-4,
            ));
        }
        out.push(compare(
            STAGE,
            format!("{name}: W after {steps} steps"),
            r.final_w.clone(),
            net.weights(),
            1e-4,
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------- chapter 3

#[derive(Deserialize)]
struct EmbeddingRef {
    batch_size: usize,
    block_size: usize,
    learning_rate: f32,
    weight_decay: f32,
    step_losses: Vec<f32>,
    final_loss: f32,
    final_table: Vec<f32>,
}

/// The inputs of chapter 3's check: the initial table, and the offsets of
/// every training batch.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingInputs {
    /// The embedding table before training, row-major (65, 65).
    pub table: Vec<f32>,
    /// One row of batch offsets per step, (steps, batch_size).
    pub offsets: Vec<Vec<usize>>,
}

impl EmbeddingInputs {
    /// What PyTorch drew: `nn.Embedding(65, 65)` and bigram.py's batches,
    /// from `torch.manual_seed(1337)`.
    pub fn reference() -> Result<Self, ParityError> {
        let r: EmbeddingRef = ref_file!("bigram_embedding.json").json()?;
        let file = ref_file!("bigram_embedding.safetensors");
        let inputs = file.tensors()?;
        let v = SHAKESPEARE_VOCAB;
        let steps = r.step_losses.len();
        let offsets = inputs.indices("offsets", &[steps, r.batch_size])?;
        Ok(Self {
            table: inputs.floats("token_embedding_table.weight", &[v, v])?,
            offsets: offsets
                .chunks(r.batch_size.max(1))
                .map(<[usize]>::to_vec)
                .collect(),
        })
    }
}

/// Chapter 3: from PyTorch's table, AdamW on the same batches as
/// bigram.py: every step's loss, the loss of the first batch after the last
/// step, and the final table.
pub fn check_embedding<D: Fused>(
    dev: &D,
    text: &str,
    inputs: &EmbeddingInputs,
) -> Result<Vec<Comparison>, ParityError> {
    const STAGE: &str = "bigram_embedding";
    let r: EmbeddingRef = ref_file!("bigram_embedding.json").json()?;
    let corpus = Corpus::new(text)?;
    check_vocab(SHAKESPEARE_VOCAB, &corpus)?;
    let weight = dev
        .try_tensor_from_vec(inputs.table.clone(), (Const, Const))
        .map_err(dev_err)?; // (V, V)
    let mut model: BigramLanguageModel<SHAKESPEARE_VOCAB, f32, D> = BigramLanguageModel {
        token_embedding_table: Embedding { weight },
    };
    let cfg = TrainConfig {
        batch_size: r.batch_size,
        block_size: r.block_size,
        learning_rate: r.learning_rate,
        weight_decay: r.weight_decay,
        ..TrainConfig::default()
    };
    cfg.validate()?;
    let mut opt = AdamW::new(cfg.adamw());
    let mut grads = model.try_alloc_grads().map_err(dev_err)?;
    let mut losses = Vec::new();
    for (step, offsets) in inputs.offsets.iter().enumerate() {
        let batch = batch_at(&corpus.train, Split::Train, offsets, cfg.block_size)?;
        losses.push(train_step(
            dev, &mut model, &mut opt, &mut grads, &batch, step,
        )?);
    }
    let first = inputs
        .offsets
        .first()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let batch = batch_at(&corpus.train, Split::Train, first, cfg.block_size)?;
    let (x, y) = crate::bigram_embedding::batch_tensors(dev, &batch)?; // (B, T), (B·T,)
    let final_loss = model.loss(x, &y).as_vec()[0];
    let steps = losses.len();
    let mut out = Vec::new();
    for k in [1, 10, steps] {
        let (torch, charlm) = (r.step_losses.get(k - 1), losses.get(k - 1));
        out.push(compare(
            STAGE,
            format!("loss of batch {k} (after {} AdamW steps)", k - 1),
            torch.copied().into_iter().collect(),
            charlm.copied().into_iter().collect(),
            1e-4,
        ));
    }
    out.push(compare(
        STAGE,
        format!("all {steps} batch losses"),
        r.step_losses,
        losses,
        1e-4,
    ));
    out.push(compare(
        STAGE,
        format!("loss of batch 1 after {steps} steps"),
        vec![r.final_loss],
        vec![final_loss],
        1e-4,
    ));
    let table = model.token_embedding_table.weight.as_vec();
    out.push(compare(
        STAGE,
        format!("the table after {steps} steps"),
        r.final_table,
        table,
        1e-4,
    ));
    Ok(out)
}

// ---------------------------------------------------------------- chapter 4

#[derive(Deserialize)]
struct TrickRef {
    shape: [usize; 3],
    v1: Vec<f32>,
    v2: Vec<f32>,
    v3: Vec<f32>,
}

/// The input of chapter 4's check: `x = torch.randn(B, T, C)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrickInputs {
    /// (B, T, C).
    pub shape: (usize, usize, usize),
    /// x, row-major.
    pub x: Vec<f32>,
}

impl TrickInputs {
    /// PyTorch's x.
    pub fn reference() -> Result<Self, ParityError> {
        let r: TrickRef = ref_file!("attention_trick.json").json()?;
        let [b, t, c] = r.shape;
        let x = ref_file!("attention_trick.safetensors")
            .tensors()?
            .floats("x", &[b, t, c])?;
        Ok(Self {
            shape: (b, t, c),
            x,
        })
    }
}

/// Chapter 4: the three versions of the causal average of PyTorch's x.
pub fn check_attention_trick<D: Fused>(
    dev: &D,
    inputs: &TrickInputs,
) -> Result<Vec<Comparison>, ParityError> {
    const STAGE: &str = "attention_trick";
    let r: TrickRef = ref_file!("attention_trick.json").json()?;
    let x = dev
        .try_tensor_from_vec(inputs.x.clone(), inputs.shape)
        .map_err(dev_err)?; // (B, T, C)
    Ok(vec![
        compare(
            STAGE,
            "v1, loops",
            r.v1,
            bag_of_words_loops(&x)?.as_vec(),
            1e-5,
        ),
        compare(
            STAGE,
            "v2, tril matmul",
            r.v2,
            bag_of_words_matmul(&x).as_vec(),
            1e-5,
        ),
        compare(
            STAGE,
            "v3, masked softmax",
            r.v3,
            bag_of_words_softmax(&x).as_vec(),
            1e-5,
        ),
    ])
}

// ---------------------------------------------------------------- chapter 5

#[derive(Deserialize)]
struct HeadRef {
    shape: [usize; 3],
    head_size: usize,
    out: Vec<f32>,
    wei: Vec<f32>,
    grad_key: Vec<f32>,
    grad_query: Vec<f32>,
    grad_value: Vec<f32>,
    grad_x: Vec<f32>,
}

/// The channels of chapter 5's check (the lecture's C = 32).
pub const HEAD_CHECK_C: usize = 32;
/// Its head size (the lecture's 16).
pub const HEAD_CHECK_H: usize = 16;

/// The inputs of chapter 5's check, in charlm's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadInputs {
    /// (B, T).
    pub batch: (usize, usize),
    /// x, (B, T, C) row-major.
    pub x: Vec<f32>,
    /// The (C, H) matrices: `key.weight.T`, `query.weight.T`, `value.weight.T`.
    pub key: Vec<f32>,
    /// See `key`.
    pub query: Vec<f32>,
    /// See `key`.
    pub value: Vec<f32>,
    /// The gradient flowing into the head's output, (B, T, H): the loss is
    /// `sum(out * upstream)`.
    pub upstream: Vec<f32>,
}

impl HeadInputs {
    /// PyTorch's x, weights and upstream gradient.
    pub fn reference() -> Result<Self, ParityError> {
        let r: HeadRef = ref_file!("self_attention_head.json").json()?;
        let file = ref_file!("self_attention_head.safetensors");
        let [b, t, c] = r.shape;
        let h = r.head_size;
        if (c, h) != (HEAD_CHECK_C, HEAD_CHECK_H) {
            let reason = format!("C = {c}, head size {h}; charlm checks C = {HEAD_CHECK_C}, head size {HEAD_CHECK_H}");
            return Err(file.error(reason));
        }
        let inputs = file.tensors()?;
        Ok(Self {
            batch: (b, t),
            x: inputs.floats("x", &[b, t, c])?,
            key: inputs.floats("key", &[c, h])?,
            query: inputs.floats("query", &[c, h])?,
            value: inputs.floats("value", &[c, h])?,
            upstream: inputs.floats("upstream", &[b, t, h])?,
        })
    }
}

/// Chapter 5: one head's output and attention weights, and the gradients of
/// `sum(out * upstream)` with respect to the three matrices and x.
pub fn check_head<D: Fused>(dev: &D, inputs: &HeadInputs) -> Result<Vec<Comparison>, ParityError> {
    const STAGE: &str = "self_attention_head";
    let r: HeadRef = ref_file!("self_attention_head.json").json()?;
    let (b, t) = inputs.batch;
    let matrix = |v: &Vec<f32>| {
        dev.try_tensor_from_vec(v.clone(), (Const, Const))
            .map_err(dev_err)
    };
    let head: Head<HEAD_CHECK_C, HEAD_CHECK_H, f32, D> = Head {
        key: matrix(&inputs.key)?,
        query: matrix(&inputs.query)?,
        value: matrix(&inputs.value)?,
    };
    let x = dev
        .try_tensor_from_vec(inputs.x.clone(), (b, t, Const::<HEAD_CHECK_C>))
        .map_err(dev_err)?; // (B, T, C)
    let upstream = dev
        .try_tensor_from_vec(inputs.upstream.clone(), (b, t, Const::<HEAD_CHECK_H>))
        .map_err(dev_err)?; // (B, T, H)
    let (out, wei) = head.forward_with_weights(x.trace(Gradients::leaky())); // (B, T, H), (B, T, T)
    let out_values = out.as_vec();
    let grads = (out * upstream).sum().backward(); // ∂ sum(out * upstream)
    Ok(vec![
        compare(STAGE, "out = wei @ v", r.out, out_values, 1e-5),
        compare(
            STAGE,
            "wei, the attention weights",
            r.wei,
            wei.as_vec(),
            1e-5,
        ),
        compare(
            STAGE,
            "∂loss/∂key",
            r.grad_key,
            grads.get(&head.key).as_vec(),
            1e-5,
        ),
        compare(
            STAGE,
            "∂loss/∂query",
            r.grad_query,
            grads.get(&head.query).as_vec(),
            1e-5,
        ),
        compare(
            STAGE,
            "∂loss/∂value",
            r.grad_value,
            grads.get(&head.value).as_vec(),
            1e-5,
        ),
        compare(STAGE, "∂loss/∂x", r.grad_x, grads.get(&x).as_vec(), 1e-5),
    ])
}

// ---------------------------------------------------------------- all

/// Every check of every stage, in chapter order, on the reference inputs.
pub fn check_all<D: Fused, S: AsRef<str>>(
    dev: &D,
    words: &[S],
    text: &str,
) -> Result<Vec<Comparison>, ParityError> {
    let mut all = check_counts(words)?;
    all.extend(check_onehot(dev, words, &OneHotInputs::reference()?)?);
    all.extend(check_embedding(dev, text, &EmbeddingInputs::reference()?)?);
    all.extend(check_attention_trick(dev, &TrickInputs::reference()?)?);
    all.extend(check_head(dev, &HeadInputs::reference()?)?);
    Ok(all)
}

/// The PyTorch version the references were written with.
pub fn torch_version() -> Result<String, ParityError> {
    #[derive(Deserialize)]
    struct Version {
        torch: String,
    }
    Ok(ref_file!("bigram_counts.json").json::<Version>()?.torch)
}

/// A difference as the table shows it: 0 exactly, else in scientific notation.
fn show(x: f32) -> String {
    if x == 0.0 {
        "0".to_string()
    } else {
        format!("{x:.1e}")
    }
}

// ANCHOR: table
/// The comparisons as a Markdown table: stage, quantity, how many values,
/// the largest difference, the tolerance, and whether it passes.
pub fn markdown_table(comparisons: &[Comparison]) -> String {
    let mut s = String::from(
        "| stage | quantity | values | largest \\|charlm − PyTorch\\| | tolerance | |\n\
         |---|---|---:|---:|---:|---|\n",
    );
    for c in comparisons {
        let tolerance = if c.tolerance == 0.0 {
            "bit for bit".to_string()
        } else {
            show(c.tolerance)
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            c.stage,
            c.quantity,
            c.torch.len(),
            show(c.max_abs_diff()),
            tolerance,
            if c.passes() { "✓" } else { "✗ FAILS" }
        );
    }
    s
}
// ANCHOR_END: table
