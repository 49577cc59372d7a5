//! `TorchGenerator`: PyTorch's CPU random streams, replayed, so that a run
//! can print exactly the numbers the video printed.
//!
//! Introduced in chapter 1 ("What the video printed"). charlm's own
//! generator is ChaCha12 (`rand`'s `StdRng`), the one dfdx uses: portable,
//! fast and with a state a checkpoint can save. PyTorch's CPU generator is
//! a different algorithm, so the same seed gives other numbers; with
//! `--rng torch` the chapters that draw from `torch.Generator` in the
//! lecture (1 and 2) draw from this instead, and land on the video's names
//! and losses.
//!
//! What torch does on the CPU (`aten/src/ATen/core/MT19937RNGEngine.h`,
//! `CPUGeneratorImpl.cpp`, `DistributionTemplates.h`, and, in 2022,
//! `MultinomialKernel.cpp`):
//!
//! - the engine is MT19937 seeded with `init_genrand(seed)`;
//! - a float32 uniform is the low 24 bits of one draw times 2⁻²⁴; a float64
//!   uniform is the low 53 bits of `(a << 32) | b` times 2⁻⁵³, `a` drawn
//!   first;
//! - `randint(n)` is one draw modulo n;
//! - `randn` of 16 or more values draws every float32 uniform first, then
//!   turns each block of 16 into normals by Box-Muller (`u1 = 1 − d[j]`,
//!   `u2 = d[j + 8]` for j < 8); when the count is not a multiple of 16 the
//!   last 16 values are drawn again and transformed again; fewer than 16
//!   are drawn one at a time, a double-precision pair per two;
//! - `multinomial(p, 1, replacement=True)` (as the 2022 lecture ran it)
//!   draws one float64 uniform and finds it in the normalised float32
//!   cumulative sum of p by binary search.

/// Which generator a chapter draws from: charlm's own (ChaCha12, the
/// default) or torch's, replayed (`--rng torch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RngKind {
    /// ChaCha12 (`rand`'s `StdRng`): what dfdx and every other chapter use.
    #[default]
    ChaCha,
    /// [`TorchGenerator`]: the video's numbers.
    Torch,
}

impl RngKind {
    /// The name the CLI and the JSON reports use.
    pub fn name(self) -> &'static str {
        match self {
            RngKind::ChaCha => "chacha",
            RngKind::Torch => "torch",
        }
    }
}

/// MT19937's state size.
const N: usize = 624;
/// MT19937's shift size.
const M: usize = 397;

// ANCHOR: torch_generator
/// `torch.Generator().manual_seed(seed)`: MT19937 and torch's rules for
/// turning its 32-bit draws into numbers.
#[derive(Debug, Clone)]
pub struct TorchGenerator {
    state: [u32; N],
    next: usize,
    /// The second normal of the last Box-Muller pair drawn one at a time
    /// (torch's `next_double_normal_sample`).
    spare_normal: Option<f64>,
}

impl TorchGenerator {
    /// A generator seeded as `torch.Generator().manual_seed(seed)` (MT19937's
    /// `init_genrand` with the low 32 bits of `seed`).
    pub fn new(seed: u64) -> Self {
        let mut state = [0u32; N];
        state[0] = seed as u32;
        for j in 1..N {
            let prev = state[j - 1];
            state[j] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(j as u32);
        }
        Self {
            state,
            next: N,
            spare_normal: None,
        }
    }

    /// The next 32-bit draw (MT19937's tempered output).
    pub fn next_u32(&mut self) -> u32 {
        if self.next >= N {
            self.twist();
        }
        let mut y = self.state[self.next];
        self.next += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for i in 0..N {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % N] & LOWER);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            self.state[i] = self.state[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.next = 0;
    }

    /// One float32 uniform in [0, 1), as `torch.rand` draws it.
    pub fn uniform_f32(&mut self) -> f32 {
        (self.next_u32() & 0x00ff_ffff) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// One float64 uniform in [0, 1): two draws, the first the high half.
    pub fn uniform_f64(&mut self) -> f64 {
        let a = self.next_u32() as u64;
        let b = self.next_u32() as u64;
        (((a << 32) | b) & ((1u64 << 53) - 1)) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `torch.rand(n)`.
    pub fn rand(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform_f32()).collect()
    }

    /// `torch.randint(high, (1,))`: one draw modulo `high`, which must be
    /// between 1 and 2³² − 1 (torch draws one 32-bit number for it).
    pub fn randint(&mut self, high: u64) -> Result<u64, RandintError> {
        if high == 0 || high > u32::MAX as u64 {
            return Err(RandintError(high));
        }
        Ok(self.next_u32() as u64 % high)
    }

    /// `torch.randint(0, high, (n,)).float()`: each value one 32-bit draw
    /// modulo `high`. Panics if `high` is 0, where torch raises.
    pub fn randint_floats(&mut self, high: u32, n: usize) -> Vec<f32> {
        assert!(high > 0, "randint: high must be at least 1");
        (0..n).map(|_| (self.next_u32() % high) as f32).collect()
    }

    /// The weight of `nn.Linear(inputs, outputs)` as torch initialises it:
    /// `kaiming_uniform_(a=√5)`, uniform in ±1/√inputs, (outputs, inputs)
    /// row-major. Each value is one float32 uniform `u`, as
    /// `u · (to − from) + from` in single precision.
    pub fn linear_weight(&mut self, outputs: usize, inputs: usize) -> Vec<f32> {
        // gain = √(2 / (1 + a²)), std = gain / √fan_in, bound = √3 · std
        let gain = (2.0f64 / (1.0 + 5.0)).sqrt();
        let bound = 3f64.sqrt() * (gain / (inputs as f64).sqrt());
        let (from, to) = (-bound as f32, bound as f32);
        (0..outputs * inputs)
            .map(|_| self.uniform_f32() * (to - from) + from)
            .collect()
    }

    /// `torch.randn(n)`. From 16 values on (every tensor the lectures draw),
    /// torch draws all the float32 uniforms first and turns each block of 16
    /// into normals; below 16 it draws one normal at a time in double
    /// precision, Box-Muller from two float64 uniforms, keeping the pair's
    /// second value for the next draw.
    pub fn randn(&mut self, n: usize) -> Vec<f32> {
        if n < 16 {
            return (0..n).map(|_| self.normal_f64() as f32).collect();
        }
        let mut d = self.rand(n);
        for block in d.chunks_exact_mut(16) {
            box_muller_16(block);
        }
        if !n.is_multiple_of(16) {
            let tail = &mut d[n - 16..]; // drawn again, transformed again
            for v in tail.iter_mut() {
                *v = self.uniform_f32();
            }
            box_muller_16(tail);
        }
        d
    }

    /// One N(0, 1) draw in double precision, as torch's
    /// `normal_distribution<double>`: `r·cos θ` now, `r·sin θ` kept for the
    /// next call, with `r = √(−2 ln(1 − u2))` and `θ = 2π·u1`.
    pub fn normal_f64(&mut self) -> f64 {
        if let Some(v) = self.spare_normal.take() {
            return v;
        }
        let u1 = self.uniform_f64();
        let u2 = self.uniform_f64();
        let r = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u1;
        self.spare_normal = Some(r * theta.sin());
        r * theta.cos()
    }

    /// `torch.multinomial(p, 1, replacement=True)` as torch ran it in 2022:
    /// one float64 uniform, found by binary search in p's cumulative sum
    /// (float32, normalised by its total, the last entry set to 1).
    pub fn multinomial(&mut self, p: &[f32]) -> usize {
        assert!(!p.is_empty(), "multinomial: no categories");
        let mut cum = Vec::with_capacity(p.len());
        let mut sum = 0f32;
        for &v in p {
            sum += v;
            cum.push(sum);
        }
        if sum > 0.0 {
            cum.iter_mut().for_each(|c| *c /= sum);
        }
        let u = self.uniform_f64();
        *cum.last_mut().expect("not empty") = 1.0;
        let (mut left, mut right) = (0, p.len());
        while right > left {
            let mid = left + (right - left) / 2;
            if (cum[mid] as f64) < u {
                left = mid + 1;
            } else {
                right = mid;
            }
        }
        left
    }

    /// `torch.multinomial(p, 1)`, one sample without replacement (the
    /// default, as the GPT lecture's `generate` calls it), as PyTorch draws
    /// it: an "exponential race". Every category gets a draw
    /// q ~ Exp(1) (`exponential_`: −ln(1 − u) of a float64 uniform, rounded
    /// to float32), and the sample is the first category with the largest
    /// p / q (each category wins with probability p over the total).
    pub fn multinomial_race(&mut self, p: &[f32]) -> usize {
        let mut best = (0, f32::NEG_INFINITY);
        for (i, &pi) in p.iter().enumerate() {
            let q = -(-self.uniform_f64()).ln_1p() as f32; // exponential_(1)
            let r = pi / q;
            if r > best.1 {
                best = (i, r);
            }
        }
        best.0
    }
}
// ANCHOR_END: torch_generator

/// `F.softmax(x, dim=-1)` of one row in float32, in the order PyTorch's CPU
/// kernel computes it: the max, exp(x − max), their sum, then each times
/// the sum's reciprocal.
pub fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = x.iter().map(|&v| (v - max).exp()).collect();
    let inv = 1.0 / e.iter().sum::<f32>();
    e.iter().map(|&v| v * inv).collect()
}

/// torch's `normal_fill_16`: 16 uniforms to 16 normals, N(0, 1).
fn box_muller_16(d: &mut [f32]) {
    for j in 0..8 {
        let u1 = 1.0 - d[j]; // [0, 1) -> (0, 1] for the log
        let u2 = d[j + 8];
        let radius = (-2.0 * u1.ln()).sqrt();
        let theta = (2.0 * std::f64::consts::PI * u2 as f64) as f32; // in double, as torch
        d[j] = radius * theta.cos();
        d[j + 8] = radius * theta.sin();
    }
}

/// [`TorchGenerator::randint`] asked for an empty range, or one wider than
/// the 32-bit number it draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("randint: the range must hold 1 to 4294967295 values, not {0}")]
pub struct RandintError(pub u64);

/// A source of standard normal draws: torch's generator replayed (the
/// video's numbers), or any `rand` generator (charlm's own runs).
pub trait Randn {
    /// `n` draws, as `torch.randn(n)` would give them from this source.
    fn randn(&mut self, n: usize) -> Vec<f32>;
}

impl Randn for TorchGenerator {
    fn randn(&mut self, n: usize) -> Vec<f32> {
        TorchGenerator::randn(self, n)
    }
}

impl<R: rand::Rng> Randn for R {
    fn randn(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| self.sample(rand_distr::StandardNormal))
            .collect()
    }
}
