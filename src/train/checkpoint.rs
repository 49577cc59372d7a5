//! Checkpoints: a model's weights, its optimiser's state, the random
//! generator's position and the training record, in one safetensors file.
//!
//! Introduced in chapter 3. The weights are written by dfdx's own
//! safetensors support (`SaveToSafetensors`), under the names of the model's
//! fields (`token_embedding_table.weight`); the AdamW moments go beside them
//! (`adamw.m.<name>`, `adamw.v.<name>`), and everything else (format, model
//! kind, vocabulary, settings, step, loss history, generator state) is JSON in
//! the file's metadata under the key `charlm`. Files are written to a
//! temporary name and renamed, so a crash never leaves half a checkpoint.
//! Loading checks the format, the model kind, every tensor's presence, type
//! and shape, and reports a clear error instead of panicking.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ::safetensors::tensor::{serialize, Dtype as SafeDtype, SafeTensors, TensorView};
use dfdx::nn::{
    LoadFromSafetensors, RecursiveWalker, SaveToSafetensors, TensorCollection, TensorOptions,
    TensorVisitor, ViewTensorName, ViewTensorRef,
};
use dfdx::prelude::*;
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};

use super::{AdamW, LossHistory, TrainConfig, TrainState};
use crate::data::vocab::Vocab;
use crate::fsutil;
use crate::models::LanguageModel;
use crate::ops::Kernels;

/// The format tag written into every checkpoint.
pub const FORMAT: &str = "charlm-checkpoint/1";

/// The metadata key holding [`Meta`] as JSON.
const META_KEY: &str = "charlm";

/// Errors of saving and loading checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    #[error(transparent)]
    Io(#[from] fsutil::FsError),
    /// The file is not a readable charlm checkpoint.
    #[error("{path} is not a valid charlm checkpoint: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint is valid but does not fit the model or data at hand.
    #[error("{path} does not fit: {reason}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
}

/// Everything in a checkpoint besides tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// [`FORMAT`].
    pub format: String,
    /// Which model ("bigram", ...).
    pub model: String,
    /// The vocabulary's characters, in index order.
    pub vocab: String,
    /// The training settings.
    pub config: TrainConfig,
    /// Steps taken.
    pub step: usize,
    /// The losses so far.
    pub history: LossHistory,
    /// Wall time of the steps so far (estimates excluded).
    #[serde(default)]
    pub step_seconds: f64,
    /// AdamW's step count.
    pub adam_t: i32,
    /// The generator's seed, in hex.
    pub rng_seed: String,
    /// The generator's position in its stream (a u128, in decimal).
    pub rng_word_pos: String,
}

/// A loaded checkpoint: its metadata, vocabulary, training state and
/// generator; the weights are already in the model passed to [`load`].
#[derive(Debug)]
pub struct Loaded<D: Device<f32>> {
    /// The metadata.
    pub meta: Meta,
    /// The vocabulary.
    pub vocab: Vocab,
    /// Where training stood.
    pub state: TrainState<D>,
    /// The random generator, where it stood.
    pub rng: ChaCha12Rng,
}

/// Names and shapes of a model's tensors, in the model's order.
struct Inventory(Vec<(String, Vec<usize>)>);

impl<D: Device<f32>> TensorVisitor<f32, D> for Inventory {
    type Viewer = (ViewTensorRef, ViewTensorName);
    type Err = D::Err;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, f32, D>,
        (t, name): (&Tensor<S, f32, D>, String),
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        self.0
            .push((name, t.shape().concrete().into_iter().collect()));
        Ok(None)
    }
}

fn inventory<D: Device<f32>, M: TensorCollection<f32, D>>(model: &M) -> Vec<(String, Vec<usize>)> {
    let mut inv = Inventory(Vec::new());
    // Visiting by reference cannot fail.
    let _ = M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut inv,
    });
    inv.0
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

// ANCHOR: save
/// Saves `model` (of kind `model_kind`), the training state and the
/// generator to `path`, atomically (see [`fsutil`]).
pub fn save<D: Device<f32>, M: TensorCollection<f32, D>>(
    path: &Path,
    model: &M,
    model_kind: &str,
    vocab: &Vocab,
    config: &TrainConfig,
    state: &TrainState<D>,
    rng: &ChaCha12Rng,
) -> Result<(), CheckpointError> {
    let bytes = to_bytes(path, model, model_kind, vocab, config, state, rng)?;
    Ok(fsutil::write_atomic(path, &bytes)?)
}

/// A checkpoint's bytes (what [`save`] writes); `path` only names the file
/// in error messages.
pub fn to_bytes<D: Device<f32>, M: TensorCollection<f32, D>>(
    path: &Path,
    model: &M,
    model_kind: &str,
    vocab: &Vocab,
    config: &TrainConfig,
    state: &TrainState<D>,
    rng: &ChaCha12Rng,
) -> Result<Vec<u8>, CheckpointError> {
    // The weights, by dfdx, into a temporary file read straight back.
    let weights_path = fsutil::temp_path_for(&std::env::temp_dir().join("weights.safetensors"));
    let written = model.save_safetensors(&weights_path);
    let weights = fsutil::read(&weights_path);
    let _ = std::fs::remove_file(&weights_path);
    if let Err(e) = written {
        let e = match e {
            ::safetensors::tensor::SafeTensorError::IoError(e) => e,
            e => std::io::Error::other(format!("{e:?}")),
        };
        return Err(fsutil::FsError::io("write", &weights_path, &e).into());
    }
    let weights = weights?;
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let tensors = SafeTensors::deserialize(&weights).map_err(|e| corrupt(format!("{e:?}")))?;
    let mut views: Vec<(String, TensorView)> = tensors.tensors();
    // The optimiser's moments, beside the weights they belong to.
    let (adam_t, slots) = state.opt.state();
    let moments: Vec<(String, Vec<usize>, Vec<u8>)> = slots
        .iter()
        .flat_map(|(name, m, v)| {
            [
                (format!("adamw.m.{name}"), vec![m.len()], f32_bytes(m)),
                (format!("adamw.v.{name}"), vec![v.len()], f32_bytes(v)),
            ]
        })
        .collect();
    for (name, shape, bytes) in &moments {
        let view = TensorView::new(SafeDtype::F32, shape.clone(), bytes)
            .map_err(|e| corrupt(format!("{e:?}")))?;
        views.push((name.clone(), view));
    }
    let meta = Meta {
        format: FORMAT.to_string(),
        model: model_kind.to_string(),
        vocab: vocab.chars().iter().collect(),
        config: *config,
        step: state.step,
        history: state.history.clone(),
        step_seconds: state.step_seconds,
        adam_t,
        rng_seed: crate::data::hex(&rng.get_seed()),
        rng_word_pos: rng.get_word_pos().to_string(),
    };
    let json = serde_json::to_string(&meta).map_err(|e| corrupt(e.to_string()))?;
    let info = Some(HashMap::from([(META_KEY.to_string(), json)]));
    serialize(views, &info).map_err(|e| corrupt(format!("{e:?}")))
}
// ANCHOR_END: save

/// Reads `path`'s metadata and vocabulary, without touching any model: what
/// `charlm generate` needs to know which model to build.
pub fn read_meta(path: &Path) -> Result<(Meta, Vocab), CheckpointError> {
    parse_meta(path, &read(path)?)
}

/// The file's bytes.
fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    Ok(fsutil::read(path)?)
}

fn parse_meta(path: &Path, bytes: &[u8]) -> Result<(Meta, Vocab), CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| corrupt(format!("not a safetensors file ({e:?})")))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| corrupt("no charlm metadata".to_string()))?;
    let meta: Meta =
        serde_json::from_str(json).map_err(|e| corrupt(format!("bad metadata: {e}")))?;
    if meta.format != FORMAT {
        let reason = match meta.format.strip_prefix("charlm-checkpoint/") {
            Some(_) => format!(
                "it was written by another version of charlm (format {:?}; this charlm reads {FORMAT:?}): \
                 retrain with this version, or use the charlm that wrote it",
                meta.format
            ),
            None => format!("format {:?}, expected {FORMAT:?}", meta.format),
        };
        return Err(corrupt(reason));
    }
    let vocab = Vocab::from_chars(meta.vocab.chars().collect())
        .ok_or_else(|| corrupt("the vocabulary is empty or repeats a character".to_string()))?;
    Ok((meta, vocab))
}

// ANCHOR: load
/// Loads a checkpoint of kind `model_kind` into `model` (whose tensors must
/// have the saved names and shapes) and returns the rest of it.
pub fn load<D: Device<f32>, M: TensorCollection<f32, D>>(
    dev: &D,
    path: &Path,
    model: &mut M,
    model_kind: &str,
) -> Result<Loaded<D>, CheckpointError> {
    let bytes = read(path)?;
    let (meta, vocab) = parse_meta(path, &bytes)?;
    load_parsed(dev, path, &bytes, (meta, vocab), model, model_kind)
}

/// [`load`] of a file already read and its metadata already parsed.
fn load_parsed<D: Device<f32>, M: TensorCollection<f32, D>>(
    dev: &D,
    path: &Path,
    bytes: &[u8],
    (meta, vocab): (Meta, Vocab),
    model: &mut M,
    model_kind: &str,
) -> Result<Loaded<D>, CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mismatch = |reason: String| CheckpointError::Mismatch {
        path: path.to_path_buf(),
        reason,
    };
    if meta.model != model_kind {
        let saved = &meta.model;
        return Err(mismatch(format!(
            "it holds a {saved} model, not a {model_kind} model"
        )));
    }
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| corrupt(format!("{e:?}")))?;
    let f32s = |name: &str, shape: &[usize]| -> Result<Vec<f32>, CheckpointError> {
        let t = tensors
            .tensor(name)
            .map_err(|_| mismatch(format!("no tensor {name:?}")))?;
        if t.dtype() != SafeDtype::F32 {
            return Err(mismatch(format!("{name:?} is {:?}, not F32", t.dtype())));
        }
        if t.shape() != shape {
            let (saved, n) = (t.shape(), vocab.len());
            return Err(mismatch(format!(
                "{name:?} has shape {saved:?}, the model {shape:?} (the checkpoint's \
                 vocabulary has {n} characters)"
            )));
        }
        let values: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(corrupt(format!(
                "{name:?} holds {bad} (the run that wrote it diverged, or the file is damaged)"
            )));
        }
        Ok(values)
    };
    // Check every weight before dfdx copies them in.
    let inv = inventory(model);
    let mut slots = Vec::new();
    for (name, shape) in &inv {
        f32s(name, shape)?;
        let n = shape.iter().product::<usize>();
        let m = f32s(&format!("adamw.m.{name}"), &[n])?;
        let v = f32s(&format!("adamw.v.{name}"), &[n])?;
        slots.push((name.clone(), m, v));
    }
    model
        .load_safetensors(path)
        .map_err(|e| corrupt(format!("{e:?}")))?;
    let opt = AdamW::restore(dev, meta.config.adamw(), (meta.adam_t, slots))
        .map(|opt| opt.with_clip(meta.config.grad_clip))
        .map_err(|e| corrupt(format!("device error: {e:?}")))?;
    let seed: [u8; 32] = (0..32)
        .map(|i| u8::from_str_radix(meta.rng_seed.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| corrupt("bad generator seed".to_string()))?;
    let pos: u128 = meta
        .rng_word_pos
        .parse()
        .map_err(|_| corrupt("bad generator position".to_string()))?;
    let mut rng = <ChaCha12Rng as rand::SeedableRng>::from_seed(seed);
    rng.set_word_pos(pos);
    let state = TrainState {
        step: meta.step,
        history: meta.history.clone(),
        opt,
        step_seconds: meta.step_seconds,
    };
    Ok(Loaded {
        meta,
        vocab,
        state,
        rng,
    })
}
// ANCHOR_END: load

/// Loads a checkpoint of model type `M`: reads the saved vocabulary, builds
/// a model of that size, and fills in its weights with [`load`].
pub fn load_model<D: Kernels, M: LanguageModel<D>>(
    dev: &D,
    path: &Path,
) -> Result<(M, Loaded<D>), CheckpointError> {
    let bytes = read(path)?;
    let (meta, vocab) = parse_meta(path, &bytes)?;
    if meta.model != M::KIND {
        return Err(CheckpointError::Mismatch {
            path: path.to_path_buf(),
            reason: format!("it holds a {} model, not a {} model", meta.model, M::KIND),
        });
    }
    // The weights are replaced by the saved ones; the draws only give them a shape.
    let mut rng = <ChaCha12Rng as rand::SeedableRng>::seed_from_u64(0);
    let mut model = M::init(dev, vocab.len(), &mut rng).map_err(|e| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let loaded = load_parsed(dev, path, &bytes, (meta, vocab), &mut model, M::KIND)?;
    Ok((model, loaded))
}
