//! AdamW whose state a checkpoint can save and restore.
//!
//! Introduced in chapter 3. dfdx's `Adam` keeps its moments private; this
//! runs dfdx's own Adam kernel (`AdamConfig::try_update`) with the step count
//! and the two moments of every parameter kept where [`super::checkpoint`]
//! can reach them. A test checks that it trains exactly as dfdx's `Adam`.

use dfdx::nn::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
    ViewTensorRef,
};
use dfdx::optim::AdamConfig;
use dfdx::prelude::*;

use crate::ops::Kernels;

/// One parameter tensor's AdamW moments, flat, keyed by a tensor of the same
/// length (dfdx keeps per-tensor buffers in `Gradients`, found by tensor).
#[derive(Debug)]
struct Moments<D: Device<f32>> {
    name: String,
    key: Tensor<(usize,), f32, D>,
    m: Gradients<f32, D>,
    v: Gradients<f32, D>,
}

impl<D: Device<f32>> Moments<D> {
    /// Moments holding the given values (zeros for a fresh run).
    fn with_values(dev: &D, name: String, m: Vec<f32>, v: Vec<f32>) -> Result<Self, D::Err> {
        let n = m.len();
        let key: Tensor<(usize,), f32, D> = dev.try_zeros_like(&(n,))?;
        // The gradient of Σ key ⊙ values with respect to key is the values:
        // that puts them into a `Gradients`, on any device.
        let holding = |values: Vec<f32>| -> Result<Gradients<f32, D>, D::Err> {
            let values = dev.try_tensor_from_vec(values, (n,))?;
            (key.clone().traced(Gradients::leaky()) * values)
                .try_sum::<Rank0, _>()?
                .try_backward()
        };
        Ok(Self {
            m: holding(m)?,
            v: holding(v)?,
            key,
            name,
        })
    }
}

// ANCHOR: adamw_state
/// AdamW whose state can be saved and restored: dfdx's own Adam update
/// (`AdamConfig::try_update`, the kernel behind `dfdx::optim::Adam`), with
/// the step count and the two moments of each parameter kept here instead
/// of inside dfdx's `Adam`, which has no way to read them out.
#[derive(Debug)]
pub struct AdamW<D: Device<f32>> {
    /// Learning rate, betas, epsilon, weight decay.
    pub cfg: AdamConfig,
    /// Scale the gradients down to this global norm before a step, when
    /// they are longer (`torch.nn.utils.clip_grad_norm_`; chapter 8).
    pub clip: Option<f32>,
    t: i32,
    moments: Vec<Moments<D>>,
}
// ANCHOR_END: adamw_state

/// Saved AdamW state: the step count, and per parameter (in the model's
/// order) its name and first and second moments.
pub type AdamWState = (i32, Vec<(String, Vec<f32>, Vec<f32>)>);

impl<D: Device<f32>> AdamW<D> {
    /// A fresh optimiser.
    pub fn new(cfg: AdamConfig) -> Self {
        Self {
            cfg,
            clip: None,
            t: 0,
            moments: Vec::new(),
        }
    }

    /// This optimiser, clipping the gradients' global norm to `clip`.
    pub fn with_clip(mut self, clip: Option<f32>) -> Self {
        self.clip = clip;
        self
    }

    /// One AdamW step on every parameter of `model`; with a clip, the
    /// gradients are first scaled down to that global norm if longer.
    pub fn update<M: TensorCollection<f32, D>>(
        &mut self,
        model: &mut M,
        grads: &mut Gradients<f32, D>,
    ) -> Result<(), D::Err>
    where
        D: Kernels,
    {
        self.t = self.t.saturating_add(1);
        if let Some(max) = self.clip {
            let norm = grad_norm(model, grads)?;
            let coef = max / (norm + 1e-6); // as clip_grad_norm_
            if coef < 1.0 {
                scale_grads(model, grads, coef)?;
            }
        }
        let mut visit = UpdateVisitor {
            opt: self,
            grads,
            index: 0,
        };
        M::iter_tensors(&mut RecursiveWalker {
            m: (model, String::new()),
            f: &mut visit,
        })?;
        Ok(())
    }

    /// The state, to save.
    pub fn state(&self) -> AdamWState {
        let slots = self
            .moments
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.m.get(&s.key).as_vec(),
                    s.v.get(&s.key).as_vec(),
                )
            })
            .collect();
        (self.t, slots)
    }

    /// An optimiser continuing from a saved state.
    pub fn restore(dev: &D, cfg: AdamConfig, state: AdamWState) -> Result<Self, D::Err> {
        let (t, slots) = state;
        let moments = slots
            .into_iter()
            .map(|(name, m, v)| Moments::with_values(dev, name, m, v))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            cfg,
            clip: None,
            t,
            moments,
        })
    }
}

struct UpdateVisitor<'a, D: Device<f32>> {
    opt: &'a mut AdamW<D>,
    grads: &'a mut Gradients<f32, D>,
    index: usize,
}

// ANCHOR: grad_norm
/// The global norm of `model`'s gradients: the square root of the sum of
/// every parameter's squared gradient, as `clip_grad_norm_` measures it.
/// (`grads` is mutable only so that the CPU reads each buffer in place.)
pub fn grad_norm<D: Kernels, M: TensorCollection<f32, D>>(
    model: &M,
    grads: &mut Gradients<f32, D>,
) -> Result<f32, D::Err> {
    struct Norm<'a, D: Device<f32>> {
        grads: &'a mut Gradients<f32, D>,
        sum: f64,
    }
    impl<D: Kernels> TensorVisitor<f32, D> for Norm<'_, D> {
        type Viewer = ViewTensorRef;
        type Err = D::Err;
        type E2 = f32;
        type D2 = D;
        fn visit<S: Shape>(
            &mut self,
            opts: TensorOptions<S, f32, D>,
            p: &Tensor<S, f32, D>,
        ) -> Result<Option<Tensor<S, f32, D>>, D::Err> {
            if opts.do_gradient_update {
                self.sum += D::grad_sum_squares(self.grads, p)?; // Σ g²
            }
            Ok(None)
        }
    }
    let mut norm = Norm { grads, sum: 0.0 };
    M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut norm,
    })?;
    Ok(norm.sum.sqrt() as f32)
}

/// Multiplies every gradient of `model` by `s` (clipping).
fn scale_grads<D: Kernels, M: TensorCollection<f32, D>>(
    model: &M,
    grads: &mut Gradients<f32, D>,
    s: f32,
) -> Result<(), D::Err> {
    struct Scale<'a, D: Device<f32>> {
        grads: &'a mut Gradients<f32, D>,
        s: f32,
    }
    impl<D: Kernels> TensorVisitor<f32, D> for Scale<'_, D> {
        type Viewer = ViewTensorRef;
        type Err = D::Err;
        type E2 = f32;
        type D2 = D;
        fn visit<S: Shape>(
            &mut self,
            opts: TensorOptions<S, f32, D>,
            p: &Tensor<S, f32, D>,
        ) -> Result<Option<Tensor<S, f32, D>>, D::Err> {
            if opts.do_gradient_update {
                D::scale_grad(self.grads, p, self.s)?; // g · s
            }
            Ok(None)
        }
    }
    M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut Scale { grads, s },
    })?;
    Ok(())
}
// ANCHOR_END: grad_norm

impl<D: Device<f32>> TensorVisitor<f32, D> for UpdateVisitor<'_, D> {
    type Viewer = (ViewTensorMut, ViewTensorName);
    type Err = D::Err;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, D>,
        (p, name): (&mut Tensor<S, f32, D>, String),
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        let AdamW {
            cfg, t, moments, ..
        } = &mut *self.opt;
        if moments.len() == self.index {
            let n = p.shape().num_elements();
            let zeros = vec![0f32; n];
            moments.push(Moments::with_values(
                p.device(),
                name,
                zeros.clone(),
                zeros,
            )?);
        }
        let Moments { key, m, v, .. } = &mut moments[self.index];
        self.index += 1;
        let (m, v) = (m.get_or_alloc_mut(key)?, v.get_or_alloc_mut(key)?);
        let g = self.grads.get_or_alloc_mut(&*p)?; // ∂loss/∂p (scaled, if clipped)
        cfg.try_update(*t, p, m, v, g)?; // dfdx's Adam kernel, decoupled weight decay
        Ok(None)
    }
}
