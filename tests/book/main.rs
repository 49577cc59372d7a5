//! The book's tests, one module per chapter, in one test binary (each
//! integration-test binary links dfdx again, and one binary keeps every core
//! busy until the last test): the numbers the lectures publish, shapes,
//! causality, training, checkpoints, the fused kernels against the composed
//! ops, parity with PyTorch, and the command line (`cli`, which runs the
//! release binary).
//!
//! They need the data (`CHARLM_DATA_DIR`, which CI sets, or `./data`); a
//! missing file fails loudly.

mod common;
#[path = "../shared/any_text.rs"]
mod shared;
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
mod cli;
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
