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
//! | [`plain_blocks`] | 7 | the lecture's first blocks, stacked without residual connections |
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
pub mod plain_blocks;
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

/// Declares [`Kind`], its [`Kind::ALL`] and its [`Kind::with`] from one
/// line per model: `Variant => model type (in a device D)`.
macro_rules! kinds {
    ($($(#[$doc:meta])* $kind:ident => $model:ty,)*) => {
        /// The language models, by the name their checkpoints record: the
        /// registry that `charlm train`, `--resume` and `charlm generate`
        /// look a model up in.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Kind {
            $($(#[$doc])* $kind,)*
        }

        impl Kind {
            /// Every kind, in chapter order.
            pub const ALL: &'static [Kind] = &[$(Kind::$kind),*];

            /// Runs `job` with this kind's model type.
            pub fn with<D: Kernels, J: ModelJob<D>>(self, job: J) -> J::Output {
                match self {
                    $(Kind::$kind => job.run::<$model>(),)*
                }
            }
        }
    };
}

// ANCHOR: kinds
kinds! {
    /// Chapter 3: the bigram language model.
    Bigram => bigram::BigramLanguageModel<f32, D>,
    /// Chapter 5: one head of self-attention.
    Head => head::LectureHead<D>,
    /// Chapter 6: four heads.
    MultiHead => multihead::LectureMultiHead<D>,
    /// Chapter 6: four heads, then a feed-forward layer.
    FeedForward => multihead::LectureFeedForward<D>,
    /// Chapter 7: three blocks, one after another, no residual connections.
    PlainBlocks => plain_blocks::LecturePlainBlocks<D>,
    /// Chapter 7: three blocks with residual connections and projections.
    Residual => gpt::LectureResidual<D>,
    /// Chapter 7: the feed-forward four times wider inside.
    Blocks => gpt::LectureBlocks<D>,
    /// Chapter 7: the blocks with LayerNorm.
    LayerNorm => gpt::LectureLayerNorm<D>,
    /// Chapter 8: the `small` preset's GPT.
    GptSmall => gpt::GptSmall<D>,
    /// Chapter 8: the `cpu` preset's GPT.
    GptCpu => gpt::GptCpu<D>,
    /// Chapter 8: the `lecture` preset's GPT (gpt.py's).
    GptLecture => gpt::GptLecture<D>,
    /// Chapter 8's exercise EX4: `small` with GELU.
    GptSmallGelu => gpt::GptSmallGelu<D>,
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
            Kind::Residual => gpt::LectureResidual::<Dev>::SIZES,
            Kind::Blocks => gpt::LectureBlocks::<Dev>::SIZES,
            Kind::LayerNorm => gpt::LectureLayerNorm::<Dev>::SIZES,
            Kind::GptSmall => gpt::GptSmall::<Dev>::SIZES,
            Kind::GptCpu => gpt::GptCpu::<Dev>::SIZES,
            Kind::GptLecture => gpt::GptLecture::<Dev>::SIZES,
            Kind::GptSmallGelu => gpt::GptSmallGelu::<Dev>::SIZES,
            Kind::Bigram | Kind::Head | Kind::MultiHead | Kind::FeedForward | Kind::PlainBlocks => {
                return None
            }
        })
    }

    /// The kind called `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.name() == name)
    }
}
