//! What every language model shares: the [`LanguageModel`] trait, the loss,
//! generation, batches to tensors, initialisation, and the layers whose size
//! is the vocabulary's.
//!
//! Introduced in chapter 3 with the bigram language model; the models of
//! later chapters implement [`LanguageModel`] next to their own definitions
//! and are listed in [`Kind`](super::Kind), so that training, the loss
//! estimate, checkpoints and generation are the same code for all of them.
//!
//! The vocabulary is a run-time size (`vocab_size = len(chars)` in the
//! lecture): the layers that have one row or one output per token,
//! [`Embedding`] and [`LmHead`], are (V, C) tensors with a `usize` V, so the
//! same model trains on any text. The sizes that the model's design fixes
//! (embedding, head and block sizes) stay typed `Const`s.

use dfdx::nn::{Module, ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use num_traits::Float;
use rand::distributions::{uniform::SampleUniform, WeightedIndex};
use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::data::text::{Corpus, TokenBatch};
use crate::ops::rng::MaskRng;
use crate::ops::{self, Kernels};

/// Errors of the language models.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model's vocabulary size does not match the data's.
    #[error("the model has a vocabulary of {expected} tokens, but the data has {got}")]
    VocabSize {
        /// The model's vocabulary size.
        expected: usize,
        /// The data's vocabulary size.
        got: usize,
    },
    /// A model needs at least one token in its vocabulary.
    #[error("a model needs a vocabulary of at least one token")]
    EmptyVocab,
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {size} tokens")]
    TokenId {
        /// The id.
        id: usize,
        /// The vocabulary size.
        size: usize,
    },
    /// The prompt is empty (generation needs at least one token to start from).
    #[error("the context to generate from is empty")]
    EmptyContext,
    /// The rows of a batch of contexts differ in length.
    #[error("the contexts to generate from must all have the same length")]
    RaggedContext,
    /// The initial weights' spread is not a finite number >= 0.
    #[error("the initial standard deviation must be a finite number >= 0, got {0}")]
    BadInitStd(f32),
    /// A context longer than the model's position table.
    #[error("a context of {t} tokens is longer than the model's block size {block}")]
    ContextTooLong {
        /// The context length.
        t: usize,
        /// The longest the model takes.
        block: usize,
    },
    /// The device reported an error (allocation, CUDA).
    #[error("device error: {0}")]
    Device(String),
}

/// The logits of the next token at every position: (B, T, V).
pub type Logits<D, T = NoneTape> = Tensor<(usize, usize, usize), f32, D, T>;

pub(crate) fn dev_err<E: std::fmt::Debug>(e: E) -> ModelError {
    ModelError::Device(format!("{e:?}"))
}

/// Checks that `corpus` has the `expected` tokens a model was built for
/// (a token id past the model's table would otherwise index out of it).
pub fn check_vocab(expected: usize, corpus: &Corpus) -> Result<(), ModelError> {
    let got = corpus.vocab.len();
    if got != expected {
        return Err(ModelError::VocabSize { expected, got });
    }
    Ok(())
}

/// A model's weights, which the optimiser, the gradients and checkpoints
/// walk: dfdx's `TensorCollection`, implemented for every model ("How
/// charlm is built" shows how).
pub trait Params<D: Device<f32>>: TensorCollection<f32, D> {}

impl<D: Device<f32>, M: TensorCollection<f32, D>> Params<D> for M {}

// ANCHOR: language_model
/// A model that maps token ids to the logits of the next token: what the
/// training loop, the loss estimate and generation need.
pub trait LanguageModel<D: Kernels>: Params<D> + Sized {
    /// The name checkpoints record ("bigram", "head").
    const KIND: &'static str;

    /// A freshly initialised model for a vocabulary of `vocab` tokens.
    fn init<R: Rng>(dev: &D, vocab: usize, rng: &mut R) -> Result<Self, ModelError>;

    /// Vocabulary size (V).
    fn vocab(&self) -> usize;

    /// The logits of the next token at every position: (B, T) → (B, T, V).
    fn logits<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>,
    ) -> Result<Logits<D, T>, ModelError>;

    /// The mean cross-entropy of next-token predictions.
    fn loss<T: Tape<f32, D> + Merge<T>>(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>, // (B, T)
        targets: &Tensor<(usize,), usize, D>,     // (B·T,)
    ) -> Result<Tensor<Rank0, f32, D, T>, ModelError> {
        Ok(cross_entropy(self.logits(idx)?, targets)) // ()
    }

    /// Appends `max_new_tokens` sampled tokens to each row of `idx`.
    fn generate<R: Rng>(
        &self,
        idx: &[Vec<usize>],
        max_new_tokens: usize,
        rng: &mut R,
    ) -> Result<Vec<Vec<usize>>, ModelError> {
        self.generate_streaming(idx, max_new_tokens, rng, &mut |_| true) // generate_with's loop
    }

    // ... and what later chapters add:
    // ANCHOR_END: language_model

    /// The device its tensors live on.
    fn device(&self) -> &D;

    /// The longest context it takes, if it has a limit (a position table
    /// has as many rows as positions; chapter 5).
    fn block(&self) -> Option<usize> {
        None
    }

    /// About how many floats one training step on a (`batch`, `block`) batch
    /// keeps alive (activations, their gradients, temporaries): what a run
    /// checks against the free memory before it allocates anything. This
    /// default fits a model whose only activations are its logits.
    fn step_floats(&self, batch: usize, block: usize) -> u128 {
        batch as u128 * block as u128 * self.vocab() as u128 * 8
    }

    /// Whether [`train_loss`](Self::train_loss) applies dropout (chapter 7).
    const DROPOUT: bool = false;

    // ANCHOR: train_loss
    /// The loss in training: dropout of probability `p`, its masks from `rng`.
    fn train_loss<R: MaskRng>(
        &self,
        idx: Tensor<(usize, usize), usize, D, OwnedTape<f32, D>>, // (B, T)
        targets: &Tensor<(usize,), usize, D>,                     // (B·T,)
        p: f32,
        rng: &mut R,
    ) -> Result<Tensor<Rank0, f32, D, OwnedTape<f32, D>>, ModelError> {
        let _ = (p, rng); // no dropout unless the model has it
        self.loss(idx, targets)
    }
    // ANCHOR_END: train_loss

    /// How many of the last tokens generation must feed: the block (a
    /// bigram needs only 1), so each new token costs the same.
    fn context_needed(&self) -> Option<usize> {
        self.block()
    }

    /// [`generate`](Self::generate), handing each step's new tokens (one
    /// per row) to `on_tokens` as they come; it returns `false` to stop early.
    fn generate_streaming<R: Rng>(
        &self,
        idx: &[Vec<usize>],
        max_new_tokens: usize,
        rng: &mut R,
        on_tokens: &mut dyn FnMut(&[usize]) -> bool,
    ) -> Result<Vec<Vec<usize>>, ModelError> {
        self.generate_sampled(idx, max_new_tokens, Sampling::default(), rng, on_tokens)
    }

    /// [`generate_streaming`](Self::generate_streaming) with a temperature
    /// and top-k (chapter 8).
    fn generate_sampled<R: Rng>(
        &self,
        idx: &[Vec<usize>],
        max_new_tokens: usize,
        sampling: Sampling,
        rng: &mut R,
        on_tokens: &mut dyn FnMut(&[usize]) -> bool,
    ) -> Result<Vec<Vec<usize>>, ModelError> {
        let dev = self.device().clone();
        let forward = |flat, b, t| {
            let idx = dev.try_tensor_from_vec(flat, (b, t)).map_err(dev_err)?; // (B, T)
            Ok(self.logits(idx)?.as_vec()) // (B, T, V)
        };
        let (v, crop) = (self.vocab(), self.context_needed());
        generate_with(
            idx,
            max_new_tokens,
            v,
            crop,
            sampling,
            rng,
            forward,
            on_tokens,
        )
    }
}

// ANCHOR: cross_entropy
/// `F.cross_entropy(logits.view(B*T, V), targets.view(B*T))`.
pub fn cross_entropy<D: Kernels, T: Tape<f32, D> + Merge<T>>(
    logits: Logits<D, T>,                 // (B, T, V)
    targets: &Tensor<(usize,), usize, D>, // (B·T,)
) -> Tensor<Rank0, f32, D, T> {
    let (b, t, v) = *logits.shape();
    let logits = logits.reshape_like(&(b * t, v)); // (B·T, V)
    ops::index_nll(logits, targets) // (): log_softmax, select, mean, negate
}
// ANCHOR_END: cross_entropy

/// The generation loop every language model shares: feed the contexts
/// (cropped to the last `crop` tokens if given), take the logits of the last
/// position, softmax, sample one token per row, append, repeat.
/// `forward(flat (B·T), B, T)` returns the logits (B, T, V) flattened;
/// `on_tokens` sees each step's new tokens and returns `false` to stop.
#[allow(clippy::too_many_arguments)]
pub fn generate_with<R: Rng>(
    idx: &[Vec<usize>],
    max_new_tokens: usize,
    vocab: usize,
    crop: Option<usize>,
    sampling: Sampling,
    rng: &mut R,
    mut forward: impl FnMut(Vec<usize>, usize, usize) -> Result<Vec<f32>, ModelError>,
    on_tokens: &mut dyn FnMut(&[usize]) -> bool,
) -> Result<Vec<Vec<usize>>, ModelError> {
    let mut rows: Vec<Vec<usize>> = idx.to_vec();
    let len = rows.first().map_or(0, Vec::len);
    if len == 0 {
        return Err(ModelError::EmptyContext);
    }
    if rows.iter().any(|r| r.len() != len) {
        return Err(ModelError::RaggedContext);
    }
    if let Some(&id) = rows.iter().flatten().find(|&&id| id >= vocab) {
        return Err(ModelError::TokenId { id, size: vocab });
    }
    // ANCHOR: generate
    for _ in 0..max_new_tokens {
        let total = rows[0].len();
        let start = crop.map_or(0, |c| total.saturating_sub(c)); // idx[:, -block_size:]
        let t = total - start;
        let flat: Vec<usize> = rows
            .iter()
            .flat_map(|r| r[start..].iter().copied())
            .collect();
        let logits = forward(flat, rows.len(), t)?; // (B, T, V)
        let mut new = Vec::with_capacity(rows.len());
        for (b, row) in rows.iter_mut().enumerate() {
            let last = &logits[(b * t + t - 1) * vocab..(b * t + t) * vocab]; // (V,)
            let weights = sampling.weights(last); // softmax(logits / temperature), top k
            let dist = WeightedIndex::new(&weights).map_err(|e| dev_err(format!("{e}")))?;
            row.push(dist.sample(rng)); // softmax, then torch.multinomial
            new.push(row[row.len() - 1]);
        }
        if !on_tokens(&new) {
            break;
        }
    }
    // ANCHOR_END: generate
    Ok(rows)
}

/// How generation picks each next token from the logits: divided by the
/// temperature (1: the model's own distribution; lower: surer; towards 0:
/// always the most likely), then, with `top_k`, only the k most likely kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// > 0 and finite.
    pub temperature: f32,
    /// Keep only this many of the most likely tokens (ties: the lower id).
    pub top_k: Option<usize>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: None,
        }
    }
}

impl Sampling {
    /// The unnormalised probabilities (V,) of one position's logits (V,):
    /// `exp((logit − max) / temperature)`, 0 outside the top k.
    pub fn weights(&self, logits: &[f32]) -> Vec<f64> {
        // ANCHOR: sampling
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let t = self.temperature;
        let mut weights: Vec<f64> = logits
            .iter()
            .map(|&l| (((l - max) / t) as f64).exp())
            .collect();
        if let Some(k) = self.top_k.filter(|&k| k < logits.len()) {
            let mut order: Vec<usize> = (0..logits.len()).collect();
            order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b))); // most likely first
            for &i in &order[k..] {
                weights[i] = 0.0; // outside the top k
            }
        }
        if weights.iter().all(|&w| w == 0.0) {
            // every weight underflowed (a temperature near 0): the most likely
            let best = (0..logits.len()).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
            weights[best] = 1.0;
        }
        weights
        // ANCHOR_END: sampling
    }
}

/// Inputs (B, T) and flattened targets (B·T,) on a device.
pub type TokenTensors<D> = (Tensor<(usize, usize), usize, D>, Tensor<(usize,), usize, D>);

/// A batch of token ids moved to a device: inputs (B, T) and flattened
/// targets (B·T,).
pub fn batch_tensors<D: Device<f32>>(
    dev: &D,
    batch: &TokenBatch,
) -> Result<TokenTensors<D>, ModelError> {
    let (b, t) = (batch.batch_size, batch.block_size);
    let x = dev
        .try_tensor_from_vec(batch.x.clone(), (b, t))
        .map_err(dev_err)?; // (B, T)
    let y = dev
        .try_tensor_from_vec(batch.y.clone(), (b * t,))
        .map_err(dev_err)?; // (B·T,)
    Ok((x, y))
}

// ---------------------------------------------------------------- initialisation

/// A tensor of `shape` filled, row-major, with N(0, std²) draws from `rng`:
/// PyTorch's `nn.Embedding` initialisation for std 1.
pub fn normal<S: Shape, D: Device<f32>, R: Rng>(
    dev: &D,
    shape: S,
    std: f32,
    rng: &mut R,
) -> Result<Tensor<S, f32, D>, ModelError> {
    if !(std.is_finite() && std >= 0.0) {
        return Err(ModelError::BadInitStd(std));
    }
    let normal = Normal::new(0.0, std).map_err(|_| ModelError::BadInitStd(std))?;
    let values: Vec<f32> = (0..shape.num_elements())
        .map(|_| normal.sample(rng))
        .collect();
    dev.try_tensor_from_vec(values, shape).map_err(dev_err)
}

/// A tensor of `shape` filled, row-major, with U(-1/sqrt(fan_in),
/// 1/sqrt(fan_in)) draws from `rng`: PyTorch's `nn.Linear` initialisation.
pub fn uniform<S: Shape, D: Device<f32>, R: Rng>(
    dev: &D,
    shape: S,
    fan_in: usize,
    rng: &mut R,
) -> Result<Tensor<S, f32, D>, ModelError> {
    let b = 1.0 / (fan_in as f32).sqrt();
    let values: Vec<f32> = (0..shape.num_elements())
        .map(|_| rng.gen_range(-b..b))
        .collect();
    dev.try_tensor_from_vec(values, shape).map_err(dev_err)
}

/// How a visitor resets a tensor (`TensorOptions::reset`).
pub type Reset<S, E, D> = fn(&mut Tensor<S, E, D>) -> Result<(), <D as HasErr>::Err>;

// ANCHOR: runtime_options
/// dfdx's [`TensorOptions`] for a tensor whose shape is known only at run
/// time (the vocabulary's): what `iter_tensors` hands the visitors that walk
/// a model (the optimiser, gradients, safetensors, device moves).
///
/// In dfdx 0.13, `TensorOptions` is `#[non_exhaustive]`, so it cannot be
/// written as a struct literal outside dfdx, and its constructors require a
/// compile-time `ConstShape`. Its three fields are public, though, so this
/// writes each of them into uninitialised memory. `shape` is read only by
/// `BuildModule`, which cannot know a run-time size anyway: such models are
/// built with their own constructors, never with `build`.
pub fn runtime_options<S: Shape, E: Dtype, D: Device<E>>(
    shape: S,
    reset: Reset<S, E, D>,
) -> TensorOptions<S, E, D> {
    let mut options = std::mem::MaybeUninit::<TensorOptions<S, E, D>>::uninit();
    let p = options.as_mut_ptr();
    // SAFETY: dfdx is pinned to =0.13.0 (Cargo.toml), whose TensorOptions has
    // exactly these three fields (`tests/book/models.rs` checks its size
    // against a struct of the same fields); writing all of them initialises it.
    unsafe {
        std::ptr::addr_of_mut!((*p).do_gradient_update).write(true);
        std::ptr::addr_of_mut!((*p).reset).write(reset);
        std::ptr::addr_of_mut!((*p).shape).write(shape);
        options.assume_init()
    }
}
// ANCHOR_END: runtime_options

/// Fills `t` with U(-1/sqrt(fan_in), 1/sqrt(fan_in)) from the device's own
/// generator: what dfdx's `reset_params` does for its layers.
fn reset_uniform<S: Shape, E: Dtype + Float + SampleUniform, D: Device<E>>(
    t: &mut Tensor<S, E, D>,
    fan_in: usize,
) -> Result<(), D::Err> {
    let b = E::ONE / E::from_usize(fan_in.max(1)).unwrap_or(E::ONE).sqrt();
    t.try_fill_with_distr(rand_distr::Uniform::new(-b, b))
}

// ---------------------------------------------------------------- layers

// ANCHOR: embedding
/// `nn.Embedding(vocab_size, C)`: one learned row of C values per token,
/// looked up by id. The vocabulary is a run-time size; C is a `usize` too
/// for the bigram model (whose rows are logits, C = V), a `Const` otherwise.
#[derive(Debug, Clone)]
pub struct Embedding<C: Dim, E: Dtype, D: Storage<E>> {
    /// (V, C): row `i` belongs to token `i`.
    pub weight: Tensor<(usize, C), E, D>,
}
// ANCHOR_END: embedding

// ANCHOR: embedding_machinery
impl<C: Dim + Default, E: Dtype + Float + SampleUniform, D: Device<E>> TensorCollection<E, D>
    for Embedding<C, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = Embedding<C, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        // (`reset_params`, which charlm never calls, draws as dfdx's Embedding does.)
        let options = runtime_options((0, C::default()), |t| {
            let fan_in = t.shape().0;
            reset_uniform(t, fan_in)
        });
        visitor.visit_fields(
            Self::tensor("weight", |s| &s.weight, |s| &mut s.weight, options),
            |weight| Embedding { weight },
        )
    }
}

impl<C: Dim, D: Kernels, T: Tape<f32, D>> Module<Tensor<(usize, usize), usize, D, T>>
    for Embedding<C, f32, D>
{
    type Output = Tensor<(usize, usize, C), f32, D, T>;
    type Error = D::Err;

    /// Row `idx[b, t]` of the table for every position: (B, T) → (B, T, C).
    fn try_forward(
        &self,
        idx: Tensor<(usize, usize), usize, D, T>,
    ) -> Result<Self::Output, D::Err> {
        let (idx, tape) = idx.split_tape(); // the tape moves to the table, which learns
        Ok(D::embedding(self.weight.clone().put_tape(tape), idx)) // (B, T, C): weight[idx]
    }
}
// ANCHOR_END: embedding_machinery

impl<C: Dim, E: Dtype, D: Device<E>> Embedding<C, E, D> {
    /// Vocabulary size (V).
    pub fn vocab(&self) -> usize {
        self.weight.shape().0
    }
}

// ANCHOR: lm_head
/// `nn.Linear(C, vocab_size)`: from a token's C channels to the V logits of
/// the next token, `x @ weightᵀ + bias`, with dfdx's (out, in) layout.
#[derive(Debug, Clone)]
pub struct LmHead<const C: usize, E: Dtype, D: Storage<E>> {
    /// (V, C).
    pub weight: Tensor<(usize, Const<C>), E, D>,
    /// (V,).
    pub bias: Tensor<(usize,), E, D>,
}
// ANCHOR_END: lm_head

// ANCHOR: lm_head_machinery
impl<const C: usize, E: Dtype + Float + SampleUniform, D: Device<E>> TensorCollection<E, D>
    for LmHead<C, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = LmHead<C, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        fn reset<S: Shape, E: Dtype + Float + SampleUniform, D: Device<E>>(
            t: &mut Tensor<S, E, D>,
        ) -> Result<(), D::Err> {
            let fan_in = t.shape().concrete().into_iter().last().unwrap_or(1);
            reset_uniform(t, fan_in)
        }
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    runtime_options((0, Const), reset),
                ),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    runtime_options((0,), reset),
                ),
            ),
            |(weight, bias)| LmHead { weight, bias },
        )
    }
}

impl<const C: usize, D: Kernels, T: Tape<f32, D> + Merge<T>>
    Module<Tensor<(usize, usize, Const<C>), f32, D, T>> for LmHead<C, f32, D>
{
    type Output = Tensor<(usize, usize, usize), f32, D, T>;
    type Error = D::Err;

    /// (B, T, C) → (B, T, V): `x @ weightᵀ + bias` ([`Kernels::linear`]).
    fn try_forward(
        &self,
        x: Tensor<(usize, usize, Const<C>), f32, D, T>,
    ) -> Result<Self::Output, D::Err> {
        Ok(D::linear(x, &self.weight, &self.bias)) // (B, T, C) @ (C, V) + (V,) -> (B, T, V)
    }
}

// ANCHOR: linear
/// `nn.Linear(I, O)` applied to every token of a (B, T, I) batch: dfdx's
/// `Linear` (the same fields, names and initialisation, so checkpoints read
/// the same), its forward through [`Kernels::linear`], which the CPU runs as
/// one matrix multiply over all B·T tokens. Introduced in chapter 6.
#[derive(Debug, Clone)]
pub struct Linear<const I: usize, const O: usize, E: Dtype, D: Storage<E>> {
    /// (O, I), as PyTorch lays it out.
    pub weight: Tensor<Rank2<O, I>, E, D>,
    /// (O,).
    pub bias: Tensor<Rank1<O>, E, D>,
}
// ANCHOR_END: linear

impl<const I: usize, const O: usize, E, D> TensorCollection<E, D> for Linear<I, O, E, D>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = Linear<I, O, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    TensorOptions::reset_with(|t| reset_uniform(t, I)),
                ),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    TensorOptions::reset_with(|t| reset_uniform(t, I)),
                ),
            ),
            |(weight, bias)| Linear { weight, bias },
        )
    }
}

impl<const I: usize, const O: usize, D: Kernels, T: Tape<f32, D> + Merge<T>>
    Module<Tensor<(usize, usize, Const<I>), f32, D, T>> for Linear<I, O, f32, D>
{
    type Output = Tensor<(usize, usize, Const<O>), f32, D, T>;
    type Error = D::Err;

    /// (B, T, I) → (B, T, O): `x @ weightᵀ + bias`.
    fn try_forward(
        &self,
        x: Tensor<(usize, usize, Const<I>), f32, D, T>,
    ) -> Result<Self::Output, D::Err> {
        Ok(D::linear(x, &self.weight, &self.bias)) // (B, T, I) @ (I, O) + (O,) -> (B, T, O)
    }
}
// ANCHOR_END: lm_head_machinery

impl<const C: usize, D: Device<f32>> LmHead<C, f32, D> {
    /// Initialised as PyTorch's `nn.Linear(C, vocab)`: weight then bias, both
    /// U(±1/sqrt(C)), from `rng`.
    pub fn new<R: Rng>(dev: &D, vocab: usize, rng: &mut R) -> Result<Self, ModelError> {
        Ok(Self {
            weight: uniform(dev, (vocab, Const::<C>), C, rng)?, // (V, C)
            bias: uniform(dev, (vocab,), C, rng)?,              // (V,)
        })
    }
}
