//! Parity with PyTorch: the machinery of the checks that run each stage from
//! the same inputs as the lecture's PyTorch code and compare with the values
//! PyTorch computed. The checks themselves are in each stage's file
//! ([`crate::stages`]); [`check_all`] runs them all.
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
//! charlm's, and the largest difference allowed. The checks are generic over
//! the device, so a CUDA build checks its own arithmetic the same way.

use std::fmt::Write as _;

use ::safetensors::tensor::{Dtype as SafeDtype, SafeTensors};
use dfdx::nn::{
    RecursiveWalker, ScalarOptions, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut,
    ViewTensorName,
};
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::DataSets;
use crate::stages::StageError;

/// A reference file of `parity/ref/` that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("parity/ref/{file}: {reason}")]
pub struct RefError {
    /// The file.
    pub file: String,
    /// What is wrong.
    pub reason: String,
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

/// A [`Comparison`] of `quantity` for `stage`.
pub fn compare(
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

/// A reference file of `parity/ref/`, compiled into the crate (see `ref_file!`).
pub struct RefFile {
    /// Its name in `parity/ref/`.
    pub name: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

/// The reference file `parity/ref/<name>`, compiled into the crate.
macro_rules! ref_file {
    ($name:literal) => {
        $crate::parity::RefFile {
            name: $name,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/parity/ref/", $name)),
        }
    };
}
pub(crate) use ref_file;

impl RefFile {
    /// An error about this file.
    pub fn error(&self, reason: impl std::fmt::Display) -> RefError {
        RefError {
            file: self.name.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The JSON of PyTorch's values.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, RefError> {
        serde_json::from_slice(self.bytes).map_err(|e| self.error(e))
    }

    /// The safetensors file of shared inputs.
    pub fn tensors(&self) -> Result<Inputs<'_>, RefError> {
        let st = SafeTensors::deserialize(self.bytes).map_err(|e| self.error(format!("{e:?}")))?;
        Ok(Inputs { file: self, st })
    }
}

/// Shared inputs read from a safetensors file.
pub struct Inputs<'a> {
    file: &'a RefFile,
    st: SafeTensors<'static>,
}

impl Inputs<'_> {
    /// Raw little-endian bytes of tensor `name`, checked for type and shape.
    fn bytes(&self, name: &str, dtype: SafeDtype, shape: &[usize]) -> Result<&[u8], RefError> {
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

    /// Tensor `name` as f32 values, checked for type and shape.
    pub fn floats(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, RefError> {
        let data = self.bytes(name, SafeDtype::F32, shape)?;
        Ok(data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// Tensor `name` as indices (from i64), checked for type and shape.
    pub fn indices(&self, name: &str, shape: &[usize]) -> Result<Vec<usize>, RefError> {
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

impl Inputs<'_> {
    /// Every f32 tensor of the file, by name (row-major values).
    pub fn all_floats(&self) -> std::collections::HashMap<String, Vec<f32>> {
        self.st
            .tensors()
            .into_iter()
            .filter(|(_, t)| t.dtype() == SafeDtype::F32)
            .map(|(name, t)| {
                let v = t.data().chunks_exact(4);
                let v = v.map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                (name, v.collect())
            })
            .collect()
    }
}

/// Copies `weights[name]` into every tensor of `model`, named as dfdx names
/// a module's fields (`blocks.0.sa.key`); each must be there, with as many
/// values as the tensor. Scalars (LayerNorm's epsilon) keep their values.
pub fn load_named<D: Device<f32>, M: TensorCollection<f32, D>>(
    model: &mut M,
    weights: &std::collections::HashMap<String, Vec<f32>>,
) -> Result<(), String> {
    struct Named<'a>(&'a std::collections::HashMap<String, Vec<f32>>);
    impl<D: Device<f32>> TensorVisitor<f32, D> for Named<'_> {
        type Viewer = (ViewTensorMut, ViewTensorName);
        type Err = String;
        type E2 = f32;
        type D2 = D;

        fn visit<S: Shape>(
            &mut self,
            _: TensorOptions<S, f32, D>,
            (t, name): (&mut Tensor<S, f32, D>, String),
        ) -> Result<Option<Tensor<S, f32, D>>, String> {
            let v = self
                .0
                .get(&name)
                .ok_or_else(|| format!("no tensor {name:?}"))?;
            if v.len() != t.shape().num_elements() {
                let n = t.shape().num_elements();
                return Err(format!("{name:?} has {} values, the model {n}", v.len()));
            }
            t.copy_from(v);
            Ok(None)
        }

        fn visit_scalar<N: num_traits::NumCast>(
            &mut self,
            _: ScalarOptions<N>,
            _: (&mut N, String),
        ) -> Result<Option<N>, String> {
            Ok(None)
        }
    }
    M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut Named(weights),
    })
    .map(|_| ())
}

/// PyTorch's training path, replayed: AdamW at `cfg` from wherever `model`
/// stands, on the batches cut from the training split at `offsets` (one row
/// of offsets per step, as the reference scripts record them), with the
/// loop's own [`train_step`](crate::train::train_step). Every batch's loss.
pub fn replay<D: crate::ops::Kernels, M: crate::models::LanguageModel<D>>(
    dev: &D,
    model: &mut M,
    corpus: &crate::data::text::Corpus,
    cfg: &crate::train::TrainConfig,
    offsets: &[Vec<usize>],
) -> Result<Vec<f32>, StageError> {
    use crate::data::text::{batch_at, Split};
    use dfdx::nn::ZeroGrads;
    cfg.validate()?;
    let mut opt = crate::train::AdamW::new(cfg.adamw());
    let mut grads = model
        .try_alloc_grads()
        .map_err(|e| StageError::Device(format!("{e:?}")))?;
    let mut losses = Vec::new();
    for (step, offsets) in offsets.iter().enumerate() {
        let batch = batch_at(&corpus.train, Split::Train, offsets, cfg.block_size)?;
        let loss = crate::train::train_step(dev, model, &mut opt, &mut grads, &batch, step)?;
        losses.push(loss);
    }
    Ok(losses)
}

/// Every check of every stage, in chapter order, on the reference inputs
/// (on the CPU): what `charlm parity` prints.
pub fn check_all(data: &DataSets) -> Result<Vec<Comparison>, StageError> {
    crate::stages::parity_checks(data)
}

/// The PyTorch version the references were written with.
pub fn torch_version() -> Result<String, RefError> {
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
