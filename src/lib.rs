//! # charlm
//!
//! Character-level language models built step by step, following Andrej
//! Karpathy's "Neural Networks: Zero to Hero" lectures, in Rust on
//! [dfdx](https://docs.rs/dfdx/0.13.0). The crate is the single source of the
//! book (`chapters/`), the notebooks (`notebooks/`), the tests (`tests/`) and
//! the `charlm` command line: every listing, figure and number comes from here.
//!
//! Modules are ordered bottom-up, one stage each:
//!
//! | module | introduced in | what |
//! |---|---|---|
//! | [`data`] | chapter 1 | finding, downloading and reading the data sets |
//! | [`vocab`] | chapter 1 | characters ↔ indices |
//! | [`bigram_counts`] | chapter 1 | the bigram model from counts |
//! | [`bigram_onehot`] | chapter 2 | the same bigram as a one-hot neural net, trained with dfdx |
//! | [`plot`] | chapter 1 | figures for the book and notebooks |
//! | [`tour`] | chapter 1 | each stage run end to end, with its key figures |
//! | [`fsutil`] | chapter 1 | atomic file writes |
//! | [`fused`] | chapter 2 | fused CPU kernels for speed (one-hot step, cross-entropy, causal matmul and attention) |
//! | [`text`] | chapter 3 | text as token ids: the split, blocks and batches |
//! | [`bigram_embedding`] | chapter 3 | the bigram language model on tiny Shakespeare |
//! | [`train`] | chapter 3 | settings, AdamW, the training loop, the loss estimate |
//! | [`attention_trick`] | chapter 4 | the causal average three ways: loops, tril matmul, softmax |
//! | [`self_attention`] | chapter 5 | one head of self-attention, and a language model on it |
//! | [`checkpoint`] | chapter 3 | saving and resuming training runs (safetensors) |
//! | [`bench`] | appendix | each stage's hot loop as a timed workload |
//! | [`parity`] | appendix | the same inputs as the lecture's PyTorch code, the same numbers |
#![warn(missing_docs)]

pub mod attention_trick;
pub mod bench;
pub mod bigram_counts;
pub mod bigram_embedding;
pub mod bigram_onehot;
pub mod checkpoint;
pub mod data;
pub mod fsutil;
pub mod fused;
pub mod parity;
pub mod plot;
pub mod self_attention;
pub mod text;
pub mod tour;
pub mod train;
pub mod vocab;

/// Re-exported so notebooks and examples use the same versions as the crate.
pub use {dfdx, plotters, rand, rand_chacha};

/// The book's runnable Rust snippets, compiled and run by `cargo test --doc`.
/// (Listings pulled in with `{{#include}}` are marked `ignore`: they are
/// compiled as part of the library itself.)
#[cfg(doctest)]
pub mod book {
    #[doc = include_str!("../chapters/ch01-bigram-counts.md")]
    pub struct BigramCounts;

    #[doc = include_str!("../chapters/ch02-bigram-onehot.md")]
    pub struct BigramOnehot;

    #[doc = include_str!("../chapters/ch03-bigram-embedding.md")]
    pub struct BigramEmbedding;

    #[doc = include_str!("../chapters/ch04-attention-trick.md")]
    pub struct AttentionTrick;

    #[doc = include_str!("../chapters/ch05-self-attention-head.md")]
    pub struct SelfAttentionHead;

    #[doc = include_str!("../chapters/appendix-parity.md")]
    pub struct AppendixParity;

    #[doc = include_str!("../chapters/appendix-speed.md")]
    pub struct AppendixSpeed;
}
