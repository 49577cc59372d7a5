//! What the book teaches, bottom-up, one file per stage: each model and the
//! computations around it, in the plain dfdx ops the chapters list.
//!
//! | module | chapter | what |
//! |---|---|---|
//! | [`bigram_counts`] | 1 | the bigram model from counts |
//! | [`bigram_onehot`] | 2 | the same bigram as a one-hot neural net, trained with dfdx |
//! | [`trigram`] | 2 | the exercises: a trigram model by counting; train, dev and test splits |
//! | [`lm`] | 3 | what every language model shares: the trait, the loss, generation, layers |
//! | [`bigram`] | 3 | the bigram language model on tiny Shakespeare |
//! | [`attention_trick`] | 4 | the causal average three ways: loops, tril matmul, softmax |
//! | [`head`] | 5 | one head of self-attention, and a language model on it |
//! | [`multihead`] | 6 | multi-head attention, the feed-forward layer, and their rungs |
//! | [`gpt`] | 7, 8 | blocks, residual connections, LayerNorm: the GPT, and its presets at scale |
//!
//! The language models are listed in [`Kind`], the registry that training,
//! checkpoints and `charlm generate` look them up in.

pub mod attention_trick;
pub mod bigram;
pub mod bigram_counts;
pub mod bigram_onehot;
pub mod gpt;
pub mod head;
pub mod lm;
pub mod multihead;
pub mod trigram;

use crate::ops::Kernels;
pub use lm::{LanguageModel, ModelError};

/// A shape as PyTorch prints a size, `(4, 8, 65)`, whether its dimensions
/// are typed (`Const<65>`, which `{:?}` shows as `Const`) or run-time
/// `usize`s. Introduced in notebook 05, for printing shapes.
pub fn dims<S: dfdx::shapes::Shape>(shape: &S) -> String {
    let d: Vec<String> = shape
        .concrete()
        .into_iter()
        .map(|n| n.to_string())
        .collect();
    format!("({})", d.join(", "))
}

// ANCHOR: kinds
/// The language models, by the name their checkpoints record: the registry
/// that `charlm train`, `--resume` and `charlm generate` look a model up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Chapter 3: [`bigram::BigramLanguageModel`].
    Bigram,
    /// Chapter 5: [`head::LectureHead`].
    Head,
    /// Chapter 6: [`multihead::LectureMultiHead`].
    MultiHead,
    /// Chapter 6: [`multihead::LectureFeedForward`].
    FeedForward,
    /// Chapter 7: [`gpt::LectureBlocks`].
    Blocks,
    /// Chapter 7: [`gpt::LectureLayerNorm`].
    LayerNorm,
    /// Chapter 8: [`gpt::GptSmall`].
    GptSmall,
    /// Chapter 8: [`gpt::GptCpu`].
    GptCpu,
    /// Chapter 8: [`gpt::GptLecture`].
    GptLecture,
    /// Chapter 8's exercise EX4: [`gpt::GptSmallGelu`].
    GptSmallGelu,
}

impl Kind {
    /// Every kind, in chapter order.
    pub const ALL: [Kind; 10] = [
        Kind::Bigram,
        Kind::Head,
        Kind::MultiHead,
        Kind::FeedForward,
        Kind::Blocks,
        Kind::LayerNorm,
        Kind::GptSmall,
        Kind::GptCpu,
        Kind::GptLecture,
        Kind::GptSmallGelu,
    ];

    /// Runs `job` with this kind's model type.
    pub fn with<D: Kernels, J: ModelJob<D>>(self, job: J) -> J::Output {
        match self {
            Kind::Bigram => job.run::<bigram::BigramLanguageModel<f32, D>>(),
            Kind::Head => job.run::<head::LectureHead<D>>(),
            Kind::MultiHead => job.run::<multihead::LectureMultiHead<D>>(),
            Kind::FeedForward => job.run::<multihead::LectureFeedForward<D>>(),
            Kind::Blocks => job.run::<gpt::LectureBlocks<D>>(),
            Kind::LayerNorm => job.run::<gpt::LectureLayerNorm<D>>(),
            Kind::GptSmall => job.run::<gpt::GptSmall<D>>(),
            Kind::GptCpu => job.run::<gpt::GptCpu<D>>(),
            Kind::GptLecture => job.run::<gpt::GptLecture<D>>(),
            Kind::GptSmallGelu => job.run::<gpt::GptSmallGelu<D>>(),
        }
    }
}
// ANCHOR_END: kinds

/// Something to do with a model type chosen at run time (see [`Kind::with`]).
pub trait ModelJob<D: Kernels> {
    /// What it returns.
    type Output;
    /// Does it with model type `M`.
    fn run<M: LanguageModel<D>>(self) -> Self::Output;
}

/// The name a model type records in its checkpoints.
struct NameOf;

impl ModelJob<dfdx::prelude::Cpu> for NameOf {
    type Output = &'static str;
    fn run<M: LanguageModel<dfdx::prelude::Cpu>>(self) -> &'static str {
        M::KIND
    }
}

impl Kind {
    /// The name checkpoints record (`LanguageModel::KIND`).
    pub fn name(self) -> &'static str {
        self.with::<dfdx::prelude::Cpu, _>(NameOf)
    }

    /// The sizes a GPT's type fixes (chapter 7's and 8's models), or `None`.
    pub fn gpt_sizes(self) -> Option<gpt::Sizes> {
        type Dev = dfdx::prelude::Cpu;
        Some(match self {
            Kind::Blocks => gpt::LectureBlocks::<Dev>::SIZES,
            Kind::LayerNorm => gpt::LectureLayerNorm::<Dev>::SIZES,
            Kind::GptSmall => gpt::GptSmall::<Dev>::SIZES,
            Kind::GptCpu => gpt::GptCpu::<Dev>::SIZES,
            Kind::GptLecture => gpt::GptLecture::<Dev>::SIZES,
            Kind::GptSmallGelu => gpt::GptSmallGelu::<Dev>::SIZES,
            Kind::Bigram | Kind::Head | Kind::MultiHead | Kind::FeedForward => return None,
        })
    }

    /// The kind called `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}
