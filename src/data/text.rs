//! Text as one long sequence of token ids, split for training and
//! validation, and cut into batches of blocks.
//!
//! Introduced in chapter 3 (tiny Shakespeare): a character-level tokenizer is
//! just the sorted set of the text's characters ([`Vocab::of_text`]); the
//! whole text becomes one sequence of ids; the first 90% trains the model and
//! the rest checks it. A model never sees the text whole: it sees blocks of
//! `block_size` consecutive tokens, and in each block, `block_size` examples
//! of "this context, then that token".

use rand::Rng;

use super::vocab::{UnknownChar, Vocab};

/// Errors of text handling.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// The text is empty.
    #[error("the text is empty")]
    Empty,
    /// A character is not in the vocabulary.
    #[error(transparent)]
    UnknownChar(#[from] UnknownChar),
    /// A batch needs at least one row.
    #[error("the batch size must be at least 1")]
    ZeroBatch,
    /// A block needs at least one token.
    #[error("the block size must be at least 1")]
    ZeroBlock,
    /// A block plus its shifted target must fit in the split.
    #[error(
        "block size {block_size} is too large for the {split} split of {len} tokens \
         (it must be smaller than the split)"
    )]
    BlockTooLarge {
        /// The block size asked for.
        block_size: usize,
        /// Which split.
        split: Split,
        /// The split's length in tokens.
        len: usize,
    },
    /// A block that would start too late to fit, with its target, in the split.
    #[error(
        "offset {offset} is out of range for the {split} split of {len} tokens \
         (a block and its target must fit)"
    )]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: usize,
        /// Which split.
        split: Split,
        /// The split's length in tokens.
        len: usize,
    },
    /// The training fraction must leave tokens on both sides.
    #[error("the training fraction must be between 0 and 1 (exclusive), got {0}")]
    BadFraction(f64),
}

/// The two parts of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The first 90%: what the model learns from.
    Train,
    /// The last 10%: held out, to see whether the model generalises.
    Val,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Val => "val",
        })
    }
}

/// The lecture's share of the tokens that train: `n = int(0.9 * len(data))`.
pub const TRAIN_FRACTION: f64 = 0.9;

// ANCHOR: corpus
/// A text as token ids: its vocabulary, and the ids split in two.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The text's characters, sorted: `chars = sorted(list(set(text)))`.
    pub vocab: Vocab,
    /// The first 90% of the ids: `train_data`.
    pub train: Vec<usize>,
    /// The rest: `val_data`.
    pub val: Vec<usize>,
}
// ANCHOR_END: corpus

impl Corpus {
    /// The lecture's split: the first 90% of the tokens train, the rest
    /// validate (`n = int(0.9 * len(data))`).
    pub fn new(text: &str) -> Result<Self, TextError> {
        Self::with_fraction(text, TRAIN_FRACTION)
    }

    /// Splits at `floor(fraction * len)`.
    pub fn with_fraction(text: &str, fraction: f64) -> Result<Self, TextError> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(TextError::BadFraction(fraction));
        }
        let vocab = Vocab::of_text(text).ok_or(TextError::Empty)?;
        Self::encode_split(text, vocab, fraction)
    }

    // ANCHOR: split
    /// `text` in `vocab` as one sequence of ids, split at `fraction` of it.
    fn encode_split(text: &str, vocab: Vocab, fraction: f64) -> Result<Self, TextError> {
        let mut train = vocab.encode(text)?; // data = encode(text), (len,)
        let n = (fraction * train.len() as f64) as usize; // n = int(0.9 * len(data))
        let val = train.split_off(n); // train_data = data[:n], val_data = data[n:]
        Ok(Self { vocab, train, val })
    }
    // ANCHOR_END: split

    /// `text` in a vocabulary fixed beforehand, a pretrained model's (chapter
    /// 8's EX3), split as [`Corpus::new`] splits; a character outside it is
    /// an error.
    pub fn in_vocab(text: &str, vocab: &Vocab) -> Result<Self, TextError> {
        if text.is_empty() {
            return Err(TextError::Empty);
        }
        Self::encode_split(text, vocab.clone(), TRAIN_FRACTION)
    }

    /// The ids of one split.
    pub fn split(&self, split: Split) -> &[usize] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    /// Whether batches of `batch_size` blocks of `block_size` tokens can be
    /// drawn from both splits (checked before a run starts).
    pub fn check_batches(&self, batch_size: usize, block_size: usize) -> Result<(), TextError> {
        for split in [Split::Train, Split::Val] {
            check_batch(self.split(split).len(), split, batch_size, block_size)?;
        }
        Ok(())
    }

    /// A random batch from one split: see [`get_batch`].
    pub fn get_batch<R: Rng>(
        &self,
        split: Split,
        batch_size: usize,
        block_size: usize,
        rng: &mut R,
    ) -> Result<TokenBatch, TextError> {
        get_batch(self.split(split), split, batch_size, block_size, rng)
    }
}

/// The (context, target) examples inside one block of `block + 1` tokens:
/// the lecture's `for t in range(block_size): context = x[:t+1]; target = y[t]`.
pub fn block_examples(tokens: &[usize]) -> Vec<(&[usize], usize)> {
    (1..tokens.len())
        .map(|t| (&tokens[..t], tokens[t]))
        .collect()
}

/// A batch of blocks: `x[b, t]` is a token and `y[b, t]` the one after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// Rows (B).
    pub batch_size: usize,
    /// Tokens per row (T).
    pub block_size: usize,
    /// Inputs, (B, T) row-major.
    pub x: Vec<usize>,
    /// Targets, (B, T) row-major: `y[b, t] = x[b, t + 1]` within the data.
    pub y: Vec<usize>,
}

// ANCHOR: get_batch
/// `batch_size` blocks of `block_size` tokens at random offsets of `data`
/// (`torch.randint`, drawn from `rng`), and the same blocks shifted by one.
pub fn get_batch<R: Rng>(
    data: &[usize],
    split: Split,
    batch_size: usize,
    block_size: usize,
    rng: &mut R,
) -> Result<TokenBatch, TextError> {
    check_batch(data.len(), split, batch_size, block_size)?;
    let ix: Vec<usize> = (0..batch_size)
        .map(|_| rng.gen_range(0..data.len() - block_size)) // (B,): torch.randint
        .collect();
    batch_at(data, split, &ix, block_size)
}
// ANCHOR_END: get_batch

/// The blocks of `block_size` tokens that start at `offsets`, and the same
/// blocks shifted by one as targets: `x = data[i..i + T]`, `y = data[i + 1..i + T + 1]`.
pub fn batch_at(
    data: &[usize],
    split: Split,
    offsets: &[usize],
    block_size: usize,
) -> Result<TokenBatch, TextError> {
    check_batch(data.len(), split, offsets.len(), block_size)?;
    if let Some(&offset) = offsets.iter().find(|&&i| i >= data.len() - block_size) {
        let len = data.len();
        return Err(TextError::OffsetOutOfRange { offset, split, len });
    }
    let mut x = Vec::with_capacity(offsets.len() * block_size); // (B, T)
    let mut y = Vec::with_capacity(offsets.len() * block_size); // (B, T)
                                                                // ANCHOR: stack
    for &i in offsets {
        x.extend_from_slice(&data[i..i + block_size]); // x = torch.stack([data[i:i+block_size] for i in ix])
        y.extend_from_slice(&data[i + 1..i + block_size + 1]); // y: the same, one token on
    }
    // ANCHOR_END: stack
    Ok(TokenBatch {
        batch_size: offsets.len(),
        block_size,
        x,
        y,
    })
}

/// At least one row of at least one token, and a block (plus its shifted
/// target) that fits in the split.
fn check_batch(
    len: usize,
    split: Split,
    batch_size: usize,
    block_size: usize,
) -> Result<(), TextError> {
    if batch_size == 0 {
        return Err(TextError::ZeroBatch);
    }
    if block_size == 0 {
        return Err(TextError::ZeroBlock);
    }
    if block_size >= len {
        return Err(TextError::BlockTooLarge {
            block_size,
            split,
            len,
        });
    }
    Ok(())
}
