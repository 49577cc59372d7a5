//! The CUDA path against the CPU (only with `--features cuda`, on a machine
//! with an NVIDIA GPU: `cargo test --features cuda cuda::`; the CPU suite
//! never builds these). `.ci/cuda-build --tests` builds them without a GPU;
//! `.ci/gpu-check` runs them on one.
//!
//! CUDA runs the composed dfdx ops (the `Kernels` trait's defaults), the
//! CPU charlm's fused kernels, so every model kind here checks the fallback
//! too: the same weights (saved on the CPU, loaded on the GPU) and the same
//! batch give the same logits, loss and gradient norm within 1e-4, and one
//! AdamW step, with and without dropout, lands on the same loss.

use std::path::Path;

use charlm::data::text::{Split, TokenBatch};
use charlm::models::lm::batch_tensors;
use charlm::models::{Kind, LanguageModel, ModelJob};
use charlm::ops::Kernels;
use charlm::train::adamw::grad_norm;
use charlm::train::run::train_step_dropout;
use charlm::train::{train_step, AdamW, TrainConfig};
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use crate::common::{corpus, max_diff};

/// What one device computes for one model kind.
#[derive(Debug)]
struct Numbers {
    logits: Vec<f32>,
    loss: f32,
    grad_norm: f32,
    step_loss: f32,
    loss_after_step: f32,
    dropout_step_loss: f32,
}

/// Runs a model kind on `dev`: its weights saved to (CPU) or loaded from
/// (CUDA) `weights`, then the numbers above on `batch`.
struct Probe<'a, D> {
    dev: &'a D,
    weights: &'a Path,
    save: bool,
    batch: &'a TokenBatch,
}

impl<D: Kernels> ModelJob<D> for Probe<'_, D> {
    type Output = Numbers;

    fn run<M: LanguageModel<D>>(self) -> Numbers {
        let vocab = corpus().vocab.len();
        let fresh = || {
            let mut rng = ChaCha12Rng::seed_from_u64(1337);
            let mut model = M::init(self.dev, vocab, &mut rng).unwrap();
            model.load_safetensors(self.weights).unwrap(); // the CPU's weights
            model
        };
        if self.save {
            let mut rng = ChaCha12Rng::seed_from_u64(1337);
            let model = M::init(self.dev, vocab, &mut rng).unwrap();
            model.save_safetensors(self.weights).unwrap();
        }
        let model = fresh();
        let (x, y) = batch_tensors(self.dev, self.batch).unwrap(); // (B, T), (B·T,)
        let logits = model.logits(x.clone()).unwrap().as_vec(); // (B, T, V), flat
        let loss = model
            .loss(x.clone().traced(model.alloc_grads()), &y)
            .unwrap();
        let value = loss.as_vec()[0];
        let mut grads = loss.backward();
        let norm = grad_norm(&model, &mut grads).unwrap();

        let cfg = TrainConfig::default().adamw();
        let (mut stepped, mut opt) = (fresh(), AdamW::new(cfg));
        let mut grads = stepped.alloc_grads();
        let step_loss =
            train_step(self.dev, &mut stepped, &mut opt, &mut grads, self.batch, 0).unwrap();
        let after = stepped
            .loss(x.traced(stepped.alloc_grads()), &y)
            .unwrap()
            .as_vec()[0];

        let (mut dropped, mut opt) = (fresh(), AdamW::new(cfg));
        let mut grads = dropped.alloc_grads();
        let mut masks = ChaCha12Rng::seed_from_u64(7);
        let dropout_step_loss = train_step_dropout(
            self.dev,
            &mut dropped,
            &mut opt,
            &mut grads,
            self.batch,
            0,
            0.2,
            &mut masks,
        )
        .unwrap();
        Numbers {
            logits,
            loss: value,
            grad_norm: norm,
            step_loss,
            loss_after_step: after,
            dropout_step_loss,
        }
    }
}

#[test]
fn every_model_kind_computes_on_cuda_what_it_computes_on_the_cpu() {
    let cuda = Cuda::try_build(0, 0)
        .expect("these tests need an NVIDIA GPU and its driver (libcuda.so.1)");
    let cpu = Cpu::default();
    let dir = crate::tempfile::tempdir().unwrap();
    for &kind in Kind::ALL {
        let weights = dir.path().join(format!("{}.safetensors", kind.name()));
        let block = kind.with::<Cpu, _>(BlockOf).unwrap_or(8);
        let mut rng = ChaCha12Rng::seed_from_u64(kind as u64);
        let batch = corpus()
            .get_batch(Split::Train, 2, block, &mut rng)
            .unwrap();
        let on_cpu = kind.with(Probe {
            dev: &cpu,
            weights: &weights,
            save: true,
            batch: &batch,
        });
        let on_cuda = kind.with(Probe {
            dev: &cuda,
            weights: &weights,
            save: false,
            batch: &batch,
        });
        let name = kind.name();
        let d = max_diff(&on_cpu.logits, &on_cuda.logits);
        assert!(d < 1e-4, "{name}: logits differ by {d}");
        for (what, a, b, tol) in [
            ("loss", on_cpu.loss, on_cuda.loss, 1e-4),
            ("step loss", on_cpu.step_loss, on_cuda.step_loss, 1e-4),
            (
                "loss after a step",
                on_cpu.loss_after_step,
                on_cuda.loss_after_step,
                1e-3,
            ),
            (
                "dropout step loss",
                on_cpu.dropout_step_loss,
                on_cuda.dropout_step_loss,
                1e-4,
            ),
        ] {
            assert!(
                a.is_finite() && (a - b).abs() < tol,
                "{name}: {what} {a} (CPU) vs {b} (CUDA)"
            );
        }
        let (g1, g2) = (on_cpu.grad_norm, on_cuda.grad_norm);
        assert!(
            (g1 - g2).abs() < 1e-4 * g1.max(1.0),
            "{name}: gradient norm {g1} vs {g2}"
        );
        assert!(
            on_cpu.loss_after_step < on_cpu.loss,
            "{name}: a step on its own batch lowers the loss"
        );
    }
}

/// A model kind's block (`None`: a bigram, which takes any length).
struct BlockOf;

impl ModelJob<Cpu> for BlockOf {
    type Output = Option<usize>;
    fn run<M: LanguageModel<Cpu>>(self) -> Option<usize> {
        let mut rng = ChaCha12Rng::seed_from_u64(0);
        M::init(&Cpu::default(), corpus().vocab.len(), &mut rng)
            .unwrap()
            .block()
    }
}

// The CLI on the GPU: a short run of the small preset on CUDA lowers its
// loss and reports the device.
#[test]
fn a_short_gpt_run_trains_on_cuda() {
    use charlm::models::gpt::GptSmall;
    use charlm::train::session::{self, Settings};
    let cuda = Cuda::try_build(0, 1337).expect("these tests need an NVIDIA GPU");
    let settings = Settings {
        config: TrainConfig {
            batch_size: 16,
            max_iters: 200,
            eval_interval: 200,
            eval_iters: 8,
            ..charlm::presets::SMALL.config
        },
        seed: 1337,
        sample_tokens: 20,
    };
    let text = crate::common::text();
    let run = session::run::<Cuda, GptSmall<Cuda>>(&cuda, text, &settings, None, &mut ()).unwrap();
    let evals = &run.train.history.evals;
    let (first, last) = (evals[0], *evals.last().unwrap());
    assert_eq!(last.step, 200);
    assert!(last.val < first.val - 1.0, "{} -> {}", first.val, last.val);
}
