//! Character vocabularies: the map between characters and integer indices.
//!
//! Introduced in chapter 1 for names, where '.' (index 0) marks both the start
//! and the end of a word and the letters follow in sorted order (a..z gives 27).

use std::collections::BTreeSet;

/// The start/end token of the names models.
pub const BOUNDARY: char = '.';

/// A character outside the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "character {ch:?} at position {position} is not in the vocabulary ({size} characters: {})",
    shown(chars)
)]
pub struct UnknownChar {
    /// The character.
    pub ch: char,
    /// Its 0-based character position in the input.
    pub position: usize,
    /// The vocabulary size.
    pub size: usize,
    /// The vocabulary's characters, for the message.
    pub chars: String,
}

/// The vocabulary in a message: all of it when short, else its first 100
/// characters and how many more (a huge vocabulary is not one huge line).
fn shown(chars: &str) -> String {
    const MOST: usize = 100;
    match chars.char_indices().nth(MOST) {
        None => format!("{chars:?}"),
        Some((end, _)) => {
            let more = chars.chars().count() - MOST;
            format!("{:?} and {more} more", &chars[..end])
        }
    }
}

// ANCHOR: vocab
/// A character vocabulary: `chars[i]` is the character of index `i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    chars: Vec<char>,
    /// `ascii[b]` is the index of ASCII character `b`, or `NONE`: a table
    /// lookup instead of a search for the common case.
    ascii: [u16; 128],
}

const NONE: u16 = u16::MAX;

impl Vocab {
    /// The names vocabulary: '.' at index 0, then every character that occurs
    /// in `words`, sorted.
    pub fn for_names<S: AsRef<str>>(words: &[S]) -> Self {
        let set: BTreeSet<char> = words.iter().flat_map(|w| w.as_ref().chars()).collect();
        let chars = std::iter::once(BOUNDARY)
            .chain(set.into_iter().filter(|&c| c != BOUNDARY))
            .collect();
        Self::new(chars)
    }
    // ANCHOR_END: vocab

    /// The vocabulary of a text (chapter 3): every character that occurs in
    /// it, sorted; `None` for an empty text. 65 characters for tiny Shakespeare.
    pub fn of_text(text: &str) -> Option<Self> {
        let set: BTreeSet<char> = text.chars().collect();
        Self::from_chars(set.into_iter().collect())
    }

    /// A vocabulary of the given characters, in the given order; `None` when a
    /// character repeats or the list is empty.
    pub fn from_chars(chars: Vec<char>) -> Option<Self> {
        let set: BTreeSet<char> = chars.iter().copied().collect();
        (set.len() == chars.len() && !chars.is_empty()).then(|| Self::new(chars))
    }

    fn new(chars: Vec<char>) -> Self {
        let mut ascii = [NONE; 128];
        for (i, &c) in chars.iter().enumerate() {
            if c.is_ascii() && i < NONE as usize {
                ascii[c as usize] = i as u16;
            }
        }
        Self { chars, ascii }
    }

    /// Number of characters (27 for names.txt).
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Never true: a vocabulary holds at least one character.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The characters in index order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The index of `c` (`stoi` in the lecture).
    #[inline]
    pub fn index(&self, c: char) -> Option<usize> {
        if c.is_ascii() {
            let i = self.ascii[c as usize];
            (i != NONE).then_some(i as usize)
        } else {
            self.chars.iter().position(|&x| x == c)
        }
    }

    /// The character of index `i` (`itos` in the lecture).
    pub fn char(&self, i: usize) -> Option<char> {
        self.chars.get(i).copied()
    }

    /// Encodes every character of `s`, or names the first unknown one.
    pub fn encode(&self, s: &str) -> Result<Vec<usize>, UnknownChar> {
        s.chars()
            .enumerate()
            .map(|(position, ch)| {
                self.index(ch).ok_or_else(|| UnknownChar {
                    ch,
                    position,
                    size: self.len(),
                    chars: self.chars.iter().collect(),
                })
            })
            .collect()
    }

    /// Decodes indices back into text; indices outside the vocabulary are
    /// rendered as U+FFFD.
    pub fn decode(&self, ids: &[usize]) -> String {
        ids.iter()
            .map(|&i| self.char(i).unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    }
}
