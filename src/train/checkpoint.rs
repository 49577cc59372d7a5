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

/// Reads `path`'s metadata and vocabulary, without touching any model (nor
/// reading its tensors): what `charlm generate` needs to know which model to
/// build.
pub fn read_meta(path: &Path) -> Result<(Meta, Vocab), CheckpointError> {
    let header = read_header(path)?;
    Ok((header.meta, header.vocab))
}

/// The file's bytes.
fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    Ok(fsutil::read(path)?)
}

/// What a checkpoint's header says, read without its tensors.
struct Header {
    meta: Meta,
    vocab: Vocab,
    /// The bytes of F32 tensor data the header declares (weights and
    /// moments; a scalar of another type is not counted).
    data_bytes: u64,
    /// Each tensor's type and shape, by name.
    tensors: HashMap<String, (String, Vec<usize>)>,
}

/// The longest header charlm reads: safetensors' own limit.
const MAX_HEADER: u64 = 100_000_000;

/// Reads and checks a checkpoint's header alone: its length against the
/// file's, every tensor's bytes against its shape, and the tensors' total
/// against the file's size, so that nothing the file declares is allocated
/// before it is known to be there.
fn read_header(path: &Path) -> Result<Header, CheckpointError> {
    use std::io::Read;
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let len = fsutil::check_readable(path)?;
    let io = |e: std::io::Error| CheckpointError::from(fsutil::FsError::io("read", path, &e));
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut first = [0u8; 8];
    file.read_exact(&mut first).map_err(|_| {
        corrupt("not a safetensors file (shorter than its 8-byte header length)".into())
    })?;
    let n = u64::from_le_bytes(first);
    if n > MAX_HEADER || n > len - 8 {
        return Err(corrupt(format!(
            "not a safetensors file (its header claims {n} bytes; the file has {len})"
        )));
    }
    let mut text = Vec::with_capacity(n as usize);
    file.take(n).read_to_end(&mut text).map_err(io)?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&text)
        .map_err(|e| {
            corrupt(format!(
                "not a safetensors file (its header is not JSON: {e})"
            ))
        })?;
    let mut data_bytes = 0u64;
    let mut spans = Vec::new();
    let mut tensors = HashMap::new();
    for (name, t) in &header {
        if name == "__metadata__" {
            continue;
        }
        let bad = || {
            corrupt(format!(
                "tensor {name:?} is described wrongly in the header"
            ))
        };
        let shape: Vec<u64> = t["shape"]
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|d| d.as_u64().ok_or_else(bad))
            .collect::<Result<_, _>>()?;
        let dtype = t["dtype"].as_str().ok_or_else(bad)?;
        let size = match dtype {
            "F32" | "I32" | "U32" => 4,
            "F64" | "I64" | "U64" => 8,
            "F16" | "BF16" | "I16" | "U16" => 2,
            "I8" | "U8" | "BOOL" => 1,
            _ => return Err(bad()),
        };
        let offsets = t["data_offsets"].as_array().ok_or_else(bad)?;
        let (Some(start), Some(end)) = (
            offsets.first().and_then(|v| v.as_u64()),
            offsets.get(1).and_then(|v| v.as_u64()),
        ) else {
            return Err(bad());
        };
        let bytes = shape
            .iter()
            .try_fold(size, |acc: u64, &d| acc.checked_mul(d))
            .ok_or_else(bad)?;
        if end < start || end - start != bytes {
            return Err(bad());
        }
        if dtype != "F32" && bytes > 8 {
            // dfdx saves a module's scalars (LayerNorm's epsilon) beside its tensors
            return Err(corrupt(format!(
                "tensor {name:?} is {dtype} of shape {shape:?}; charlm writes F32 tensors and scalars"
            )));
        }
        if dtype == "F32" {
            data_bytes = data_bytes.checked_add(bytes).ok_or_else(bad)?;
        }
        spans.push((start, end));
        let dims = shape
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect();
        tensors.insert(name.clone(), (dtype.to_string(), dims));
    }
    spans.sort_unstable();
    let mut at = 0;
    for (start, end) in spans {
        if start != at {
            return Err(corrupt("its tensors overlap or leave gaps".into()));
        }
        at = end;
    }
    if 8 + n + at != len {
        return Err(corrupt(format!(
            "its header declares {} bytes, the file has {len} (truncated or padded)",
            8 + n + at
        )));
    }
    let json = header
        .get("__metadata__")
        .and_then(|m| m.get(META_KEY))
        .and_then(|v| v.as_str())
        .ok_or_else(|| corrupt("no charlm metadata".to_string()))?;
    let (meta, vocab) = parse_meta_json(path, json)?;
    Ok(Header {
        meta,
        vocab,
        data_bytes,
        tensors,
    })
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
    parse_meta_json(path, json)
}

/// The charlm metadata's JSON, checked: its format, its vocabulary.
fn parse_meta_json(path: &Path, json: &str) -> Result<(Meta, Vocab), CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
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
    meta.config
        .validate()
        .map_err(|e| corrupt(format!("its saved settings are invalid: {e}")))?;
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
        // What training can write: weights and first moments far below
        // 1e6, second moments (squared gradients) at least 0.
        let (lo, hi) = match name.starts_with("adamw.v.") {
            true => (0.0, 1e12),
            false => (-1e6, 1e6),
        };
        if let Some(bad) = values.iter().find(|v| !(lo..=hi).contains(*v)) {
            return Err(corrupt(format!(
                "{name:?} holds {bad}, which no training run writes there (the file is damaged)"
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
    let Header {
        meta,
        vocab,
        data_bytes,
        tensors,
    } = read_header(path)?;
    if meta.model != M::KIND {
        return Err(CheckpointError::Mismatch {
            path: path.to_path_buf(),
            reason: format!("it holds a {} model, not a {} model", meta.model, M::KIND),
        });
    }
    // Before the model is built at the vocabulary the file declares: its
    // weights and their two moments (12 bytes a weight) must be what the
    // file holds, and must fit in memory.
    let vocab_len = vocab.len();
    let weights =
        super::weights_for::<D, M>(dev, vocab_len).map_err(|e| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    // A checkpoint written before the first step has no moments yet.
    let has_moments = tensors.keys().any(|name| name.starts_with("adamw."));
    let needed = weights.saturating_mul(if has_moments { 12 } else { 4 });
    if weights.saturating_mul(4) > u128::from(data_bytes) {
        return Err(CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "its vocabulary of {vocab_len} characters makes a {} model whose weights take {} \
                 bytes, but its tensors hold only {data_bytes}",
                M::KIND,
                weights.saturating_mul(4)
            ),
        });
    }
    super::check_weights_fit(M::KIND, vocab_len, weights).map_err(|e| {
        CheckpointError::Mismatch {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    let model = init_for::<D, M>(dev, path, vocab_len)?;
    // Every tensor's shape, from the header, before the file is read whole.
    for (name, shape) in inventory(&model) {
        let n = shape.iter().product::<usize>();
        check_declared(path, &tensors, &name, &shape, vocab_len)?;
        if has_moments {
            for moment in [format!("adamw.m.{name}"), format!("adamw.v.{name}")] {
                check_declared(path, &tensors, &moment, &[n], vocab_len)?;
            }
        }
    }
    if needed != u128::from(data_bytes) {
        return Err(CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "it holds {data_bytes} bytes of tensors, more than the {needed} of a {} model \
                 and its AdamW state",
                M::KIND
            ),
        });
    }
    load_model_read(dev, path, model, (meta, vocab))
}

/// A model of `M`'s kind for `vocab` tokens, to be filled from `path`.
fn init_for<D: Kernels, M: LanguageModel<D>>(
    dev: &D,
    path: &Path,
    vocab: usize,
) -> Result<M, CheckpointError> {
    // The weights are replaced by the saved ones; the draws only give them a shape.
    let mut rng = <ChaCha12Rng as rand::SeedableRng>::seed_from_u64(0);
    M::init(dev, vocab, &mut rng).map_err(|e| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The tensor `name` as the header declares it: there, F32, of `shape`.
fn check_declared(
    path: &Path,
    tensors: &HashMap<String, (String, Vec<usize>)>,
    name: &str,
    shape: &[usize],
    vocab: usize,
) -> Result<(), CheckpointError> {
    let mismatch = |reason: String| CheckpointError::Mismatch {
        path: path.to_path_buf(),
        reason,
    };
    let (dtype, saved) = tensors
        .get(name)
        .ok_or_else(|| mismatch(format!("no tensor {name:?}")))?;
    if dtype != "F32" {
        return Err(mismatch(format!("{name:?} is {dtype}, not F32")));
    }
    if saved != shape {
        return Err(mismatch(format!(
            "{name:?} has shape {saved:?}, the model {shape:?} (the checkpoint's vocabulary has \
             {vocab} characters)"
        )));
    }
    Ok(())
}

/// The rest of [`load_model`], once the header (`parsed`) has been checked:
/// the file read whole, its weights into `model`.
fn load_model_read<D: Kernels, M: LanguageModel<D>>(
    dev: &D,
    path: &Path,
    mut model: M,
    parsed: (Meta, Vocab),
) -> Result<(M, Loaded<D>), CheckpointError> {
    let bytes = read(path)?;
    let loaded = load_parsed(dev, path, &bytes, parsed, &mut model, M::KIND)?;
    Ok((model, loaded))
}
