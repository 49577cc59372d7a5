//! A task that is not a book: sums of two numbers, for chapter 8's exercise
//! EX2 ("train the GPT on your own task: adding two numbers").
//!
//! Introduced in chapter 8. Every problem is one line, `a+b=c`, with `a` and
//! `b` zero-padded to the task's digits and the answer padded to one digit
//! more and written backwards (the lecture's hint): a GPT writes left to
//! right, and a sum is worked out right to left, carry by carry, so reversed,
//! each digit of the answer depends only on digits the model has already
//! read or written. `07+35=240` is 7 + 35 = 042.
//!
//! The generator makes every pair once and holds some out: the text the GPT
//! trains on never contains a held-out sum, and its accuracy on them is the
//! exercise's measure.

use rand::seq::SliceRandom;
use rand::Rng;

/// What the addition task can refuse.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AdditionError {
    /// Digits out of range.
    #[error("addition: {0} digits is not a task here; use 1 to 4 (every pair is made, so 4 is 10^8 of them)")]
    Digits(usize),
    /// Nothing, or everything, held out.
    #[error("addition: hold out between 1 and {max} of the {pairs} pairs, not {held_out}")]
    HeldOut {
        /// Asked for.
        held_out: usize,
        /// The most that leaves one pair to train on.
        max: usize,
        /// Pairs there are.
        pairs: usize,
    },
}

/// The task: sums of two numbers of `digits` digits each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addition {
    digits: usize,
}

/// One problem, `a + b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Problem {
    /// The first number.
    pub a: u64,
    /// The second number.
    pub b: u64,
}

impl Addition {
    /// A task of `digits` digits (1 to 4).
    pub fn new(digits: usize) -> Result<Self, AdditionError> {
        if !(1..=4).contains(&digits) {
            return Err(AdditionError::Digits(digits));
        }
        Ok(Self { digits })
    }

    /// Digits of each number.
    pub fn digits(&self) -> usize {
        self.digits
    }

    // ANCHOR: addition
    /// `a+b=`, each number zero-padded: what the model is prompted with.
    pub fn prompt(&self, p: Problem) -> String {
        let d = self.digits;
        format!("{:0d$}+{:0d$}=", p.a, p.b)
    }

    /// The answer as the model must write it: a + b, padded to one digit
    /// more than the numbers, reversed.
    pub fn answer(&self, p: Problem) -> String {
        let d = self.digits + 1;
        format!("{:0d$}", p.a + p.b).chars().rev().collect()
    }

    // ANCHOR_END: addition

    /// The problem's line: prompt, answer, newline.
    pub fn line(&self, p: Problem) -> String {
        format!("{}{}\n", self.prompt(p), self.answer(p))
    }

    /// A written answer read back as a number (the digits reversed again);
    /// `None` unless it is exactly [`answer`](Self::answer)'s width of digits.
    pub fn read_answer(&self, written: &str) -> Option<u64> {
        let ok = written.len() == self.digits + 1 && written.bytes().all(|c| c.is_ascii_digit());
        ok.then(|| written.chars().rev().collect::<String>().parse().ok())
            .flatten()
    }

    /// Every pair (a, b) once, shuffled by `rng`, then cut: the last
    /// `held_out` are held out, the rest are for training.
    pub fn split<R: Rng>(
        &self,
        held_out: usize,
        rng: &mut R,
    ) -> Result<(Vec<Problem>, Vec<Problem>), AdditionError> {
        let n = 10u64.pow(self.digits as u32);
        let mut all: Vec<Problem> = (0..n)
            .flat_map(|a| (0..n).map(move |b| Problem { a, b }))
            .collect();
        let pairs = all.len();
        if held_out == 0 || held_out >= pairs {
            return Err(AdditionError::HeldOut {
                held_out,
                max: pairs - 1,
                pairs,
            });
        }
        all.shuffle(rng);
        let test = all.split_off(pairs - held_out);
        Ok((all, test))
    }

    /// The text a GPT trains on: one line per problem, in the given order.
    pub fn text(&self, problems: &[Problem]) -> String {
        problems.iter().map(|&p| self.line(p)).collect()
    }
}
