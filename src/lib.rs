//! # charlm
//!
//! Character-level language models built step by step, following Andrej
//! Karpathy's "Neural Networks: Zero to Hero" lectures, in Rust on
//! [dfdx](https://docs.rs/dfdx/0.13.0). The crate is the single source of the
//! book (`chapters/`), the notebooks (`notebooks/`), the tests (`tests/`) and
//! the `charlm` command line: every listing, figure and number comes from here.
//!
//! ## The chapters, and where each lives
//!
//! | chapter | the model (what the book teaches) | the run (settings, report, figures, numbers, parity, bench) |
//! |---|---|---|
//! | 1. the bigram model from counts | [`models::bigram_counts`] | [`stages::counts`] |
//! | 2. the bigram model as a neural net | [`models::bigram_onehot`] | [`stages::onehot`] |
//! | 3. the bigram language model | [`models::bigram`], [`models::lm`], [`train`] | [`stages::bigram`] |
//! | 4. the mathematical trick in self-attention | [`models::attention_trick`] | [`stages::attention_trick`] |
//! | 5. one head of self-attention | [`models::head`] | [`stages::head`] |
//! | 6, 7. multi-head attention, blocks, LayerNorm, dropout | [`models::multihead`], [`models::gpt`] | [`presets`] (the rungs), [`stages::ladder`], [`stages::ladder::book`] |
//! | 8. a GPT at scale | [`models::gpt`] (the model types) | [`presets`], [`stages::gpt`], [`stages::gpt::book`], [`stages::gpt_exercises`] |
//! | appendix: parity with PyTorch | | [`parity`], [`stages::parity`] |
//! | appendix: how fast is it? | [`ops::cpu`] | [`bench`](mod@bench) |
//! | appendix: how charlm is built | [`models::lm`] (the layers as dfdx collections), [`ops`], [`train::checkpoint`] | |
//!
//! ## The layers, bottom-up
//!
//! | module | what |
//! |---|---|
//! | [`data`] | finding, downloading and reading the data; names; text as token ids; vocabularies (chapter 1, 3) |
//! | [`ops`] | the kernel trait: the composed dfdx ops the book shows, fused on the CPU (chapter 2 on) |
//! | [`models`] | one file per model, bottom-up, and the registry of language models |
//! | [`train`] | settings, AdamW, the loop, checkpoints, a whole session (chapter 3) |
//! | [`presets`] | every named run in one table: the ladder's rungs, chapter 8's GPTs |
//! | [`stages`] | one file (or folder) per chapter behind one `Stage` trait, and the registry `stages::ALL` |
//! | [`parity`], [`bench`](mod@bench) | the appendices' machinery |
//! | [`torch_rng`] | PyTorch's CPU random streams replayed, for the video's numbers (`--rng torch`, chapters 1, 2, 4 and 5) |
//! | [`plot`], [`fsutil`] | figures; files written atomically |
//! | [`interrupt`] | a stop request (a signal) that every long wait checks |
//! | [`primer`] | the page "Shapes, and reading dfdx": every dfdx op the chapters use, compiled |
#![warn(missing_docs)]

pub mod bench;
pub mod data;
pub mod fsutil;
pub mod interrupt;
pub mod models;
pub mod ops;
pub mod parity;
pub mod plot;
pub mod presets;
pub mod primer;
pub mod stages;
pub mod torch_rng;
pub mod train;

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

    #[doc = include_str!("../chapters/ch08-gpt.md")]
    pub struct Gpt;

    #[doc = include_str!("../chapters/appendix-parity.md")]
    pub struct AppendixParity;

    #[doc = include_str!("../chapters/appendix-speed.md")]
    pub struct AppendixSpeed;
}
