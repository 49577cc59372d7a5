//! EX1: every head in one batched operation, against the lecture's heads
//! one by one: the same numbers, and the time of each.

use super::*;

/// EX1 at the `cpu` preset's attention: n_embd 128, 4 heads of 32.
pub type Ex1Attention =
    MultiHeadAttention<{ EX1_SIZES.0 }, { EX1_SIZES.1 }, { EX1_SIZES.2 }, f32, Cpu>;

/// [`Ex1Attention`]'s n_embd, heads and head size.
pub const EX1_SIZES: (usize, usize, usize) = (128, 4, 32);

/// EX1's batch: the `cpu` preset's 12 sequences of 64 tokens.
pub const EX1_BATCH: (usize, usize) = (12, 64);

/// The three ways EX1 compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadsWay {
    /// The lecture's list of heads, one after the other, concatenated.
    OneByOne,
    /// The heads a batch dimension, in dfdx's own operations.
    Batched,
    /// The same, in charlm's fused CPU kernels (what the chapters train with).
    Fused,
}

impl HeadsWay {
    /// All three, the lecture's first.
    pub const ALL: [HeadsWay; 3] = [HeadsWay::OneByOne, HeadsWay::Batched, HeadsWay::Fused];
}

/// What EX1's passes run on: the attention's weights, an input x and the
/// upstream gradient `up`, all drawn from `seed`.
pub struct Ex1Inputs {
    mha: Ex1Attention,
    x: Tensor<(usize, usize, Const<{ EX1_SIZES.0 }>), f32, Cpu>, // (B, T, C)
    up: Tensor<(usize, usize, Const<{ EX1_SIZES.0 }>), f32, Cpu>, // (B, T, C)
}

impl Ex1Inputs {
    /// Weights, x and up from `seed`.
    pub fn new(seed: u64) -> Result<Self, StageError> {
        let dev = Cpu::default();
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        let mha = Ex1Attention::new(&dev, &mut rng)?;
        let (b, t) = EX1_BATCH;
        let x = randn(&dev, (b, t, EX1_SIZES.0), &mut rng).reshape_like(&(b, t, Const)); // (B, T, C)
        let up = randn(&dev, (b, t, EX1_SIZES.0), &mut rng).reshape_like(&(b, t, Const)); // (B, T, C)
        Ok(Self { mha, x, up })
    }

    /// One forward and backward pass, `way`: the output, then the gradients
    /// of `Σ out ⊙ up` with respect to x, query, key and value, flattened.
    pub fn pass(&self, way: HeadsWay) -> [Vec<f32>; 5] {
        let (mha, x) = (&self.mha, &self.x);
        let xt = x.clone().trace(Gradients::leaky()); // (B, T, C), recording
        let out = match way {
            HeadsWay::OneByOne => mha.forward_head_by_head(xt),
            HeadsWay::Batched => mha.forward_batched(xt),
            HeadsWay::Fused => mha.forward_with_weights(xt).0,
        }; // (B, T, C)
        let values = out.as_vec();
        let grads = (out * self.up.clone()).sum().backward();
        [
            values,
            grads.get(x).as_vec(),
            grads.get(&mha.query).as_vec(),
            grads.get(&mha.key).as_vec(),
            grads.get(&mha.value).as_vec(),
        ]
    }
}

/// [`Ex1Inputs::pass`] on the inputs of `seed`.
pub fn ex1_pass(way: HeadsWay, seed: u64) -> Result<[Vec<f32>; 5], StageError> {
    Ok(Ex1Inputs::new(seed)?.pass(way))
}

/// The largest difference between two passes: (output, any gradient).
pub fn ex1_diff(a: &[Vec<f32>; 5], b: &[Vec<f32>; 5]) -> (f32, f32) {
    let max = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max)
    };
    let grads = (1..5).map(|i| max(&a[i], &b[i])).fold(0.0f32, f32::max);
    (max(&a[0], &b[0]), grads)
}

/// Milliseconds of one forward and backward pass on `inputs` (the pass
/// alone: the inputs are drawn once, outside the clock), the best of `reps`.
fn ex1_time(inputs: &Ex1Inputs, way: HeadsWay, reps: usize) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let start = Instant::now();
        inputs.pass(way);
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    best
}

/// EX1 as the record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ex1 {
    /// Largest output difference, one by one against batched (dfdx ops).
    pub batched_out: f32,
    /// Largest gradient difference, the same two.
    pub batched_grad: f32,
    /// Largest output difference, one by one against the fused kernels.
    pub fused_out: f32,
    /// Largest gradient difference, the same two.
    pub fused_grad: f32,
    /// Milliseconds per pass: one by one, batched, fused.
    pub ms: [f64; 3],
}

/// Runs EX1: the differences (seed 1) and the timings.
pub fn run_ex1(reps: usize) -> Result<Ex1, StageError> {
    let inputs = Ex1Inputs::new(1)?;
    let [one, batched, fused] = HeadsWay::ALL.map(|w| inputs.pass(w));
    let (batched_out, batched_grad) = ex1_diff(&one, &batched);
    let (fused_out, fused_grad) = ex1_diff(&one, &fused);
    let ms = HeadsWay::ALL.map(|way| ex1_time(&inputs, way, reps));
    Ok(Ex1 {
        batched_out,
        batched_grad,
        fused_out,
        fused_grad,
        ms,
    })
}
