//! The book's tests, one module per chapter, in one test binary (each
//! integration-test binary links dfdx again, so there is one): the numbers
//! the lectures publish, shapes, causality, training, checkpoints, the fused
//! kernels against the composed ops, and parity with PyTorch.
//!
//! They need the data (`CHARLM_DATA_DIR`, which CI sets, or `./data`); a
//! missing file fails loudly.

mod common;
#[path = "../shared/tempfile.rs"]
mod tempfile;

mod ch01_counts;
mod ch02_onehot;
mod ch03_bigram;
mod ch04_attention_trick;
mod ch05_head;
mod ch06_ch07_ladder;
mod ch08_gpt;
mod checkpoints;
#[cfg(feature = "cuda")]
mod cuda;
mod data;
mod exercises;
mod files;
mod layout;
mod ops;
mod parity;
mod primer;
mod text_and_vocab;
mod torch_rng;
