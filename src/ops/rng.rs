//! The generator dropout draws its masks from (chapter 7 on).
//!
//! Dropout needs one random number per entry it may drop: at chapter 8's
//! `lecture` preset, 38 million a block, a quarter of a billion a step. Drawn
//! one after another from one generator, that is a serial stretch of every
//! step. The run's generator is ChaCha, whose stream can be entered at any
//! position, so threads can draw disjoint stretches of it at once, each from
//! a copy set to its stretch's start: the numbers are exactly those that one
//! thread drawing them in order would get, so a run stays bit-identical for
//! its seed, on any number of threads.

use rand::{Rng, RngCore};
use rand_chacha::ChaCha12Rng;
use rayon::prelude::*;

/// A generator dropout can draw from: any `RngCore`, which can also fill a
/// buffer with the next numbers of its stream, faster where it can split the
/// work.
pub trait MaskRng: RngCore + Send {
    /// The next `out.len()` numbers of the stream: what as many `next_u32`
    /// calls would return, in order.
    fn fill_u32(&mut self, out: &mut [u32]) {
        self.fill(out);
    }
}

/// Numbers per thread's stretch: whole ChaCha blocks of 16.
const STRETCH: usize = 1 << 16;

// ANCHOR: fill_u32
impl MaskRng for ChaCha12Rng {
    fn fill_u32(&mut self, out: &mut [u32]) {
        let start = self.get_word_pos();
        let at = |i: usize| start + (i * STRETCH) as u128;
        let this = &*self;
        out.par_chunks_mut(STRETCH)
            .enumerate()
            .for_each(|(i, stretch)| {
                let mut rng = this.clone();
                rng.set_word_pos(at(i));
                rng.fill(stretch);
            });
        self.set_word_pos(start + out.len() as u128);
    }
}
// ANCHOR_END: fill_u32

impl MaskRng for rand::rngs::StdRng {}

/// `n` dropout decisions for probability `p` from `rng`: `true` keeps the
/// entry. Entry i is kept when the i-th float drawn, `gen::<f32>()` (the top
/// 24 bits of a `u32`, times 2^-24), is at least `p`: the composed
/// [`dropout`](super::composed::dropout)'s decisions, from the same numbers.
pub fn keep_mask(rng: &mut dyn MaskRng, n: usize, p: f32) -> Vec<bool> {
    let mut draws = vec![0u32; n];
    rng.fill_u32(&mut draws);
    let scale = 1.0 / (1u32 << 24) as f32;
    let mut keep = vec![false; n];
    keep.par_chunks_mut(STRETCH)
        .zip(draws.par_chunks(STRETCH))
        .for_each(|(k, d)| {
            k.iter_mut()
                .zip(d)
                .for_each(|(k, &u)| *k = (u >> 8) as f32 * scale >= p)
        });
    keep
}
