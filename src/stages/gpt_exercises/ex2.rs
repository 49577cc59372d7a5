//! EX2: the GPT trained on a task of its own, adding two numbers, with its
//! accuracy on sums it never saw.

use super::*;
use crate::data::text::batch_at;
use crate::data::text::TokenBatch;
use crate::models::lm::batch_tensors;
use crate::train::run::{train_step, update, Hooks};
use crate::train::{AdamW, After, TrainError};

/// EX2's task: sums of two 2-digit numbers.
pub const EX2_DIGITS: usize = 2;

/// EX2 holds out this many of the 10,000 sums.
pub const EX2_HELD_OUT: usize = 1000;

/// The seed of EX2's split, weights, batches and samples.
pub const EX2_SEED: u64 = 1337;

/// EX2's training: the `small` preset's model and settings, for longer.
pub fn ex2_config() -> TrainConfig {
    TrainConfig {
        max_iters: 10_000,
        eval_interval: 1000,
        ..crate::presets::SMALL.config
    }
}

/// The held-out accuracy EX2 is to reach.
pub const EX2_TARGET: f64 = 0.9;

/// EX2 as the record keeps it: the run whose loss counts every character,
/// as for Shakespeare, and the run that counts the answers alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ex2 {
    /// Its settings (both runs).
    pub config: TrainConfig,
    /// Problems in the training text.
    pub train_problems: usize,
    /// Problems held out.
    pub held_out: usize,
    /// The model's parameters.
    pub params: usize,
    /// Characters in its vocabulary.
    pub vocab: usize,
    /// Every estimate of the every-character run, step 0 first.
    pub evals: Vec<Eval>,
    /// Held-out sums the every-character run answers right (greedy decoding).
    pub correct: usize,
    /// The first held-out problems: prompt, the right answer, the model's.
    pub examples: Vec<(String, String, String)>,
    /// Wall time of the every-character run.
    pub seconds: f64,
    /// The every-character run at each estimate: answers' loss, sums right.
    pub checks: Vec<Ex2Check>,
    /// The same run with the loss on the answers alone.
    pub answers_only: Ex2Masked,
}

/// The run of EX2 whose loss counts only the answers' characters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ex2Masked {
    /// Every estimate of the loss on every character (which it does not
    /// train), step 0 first.
    pub evals: Vec<Eval>,
    /// At each estimate: answers' loss, sums right.
    pub checks: Vec<Ex2Check>,
    /// Held-out sums answered right after the last step.
    pub correct: usize,
    /// Wall time of the run.
    pub seconds: f64,
}

/// An EX2 run at one estimate: the loss on the answers of the validation
/// lines (every window of the split, in order), and the held-out sums right.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ex2Check {
    /// Steps taken.
    pub step: usize,
    /// Mean loss on the answers' characters of the validation lines.
    pub answer_val: f32,
    /// Held-out sums answered right.
    pub correct: usize,
}

/// Which targets EX2's loss counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ex2Loss {
    /// Every character, as for Shakespeare: the prompts' random digits too.
    Every,
    /// The answers alone, the prompt positions masked: the lecture's
    /// suggestion for this task.
    Answers,
}

/// 1 at each target that is a character of an answer whose whole prompt
/// the window holds (the `digits + 1` targets from each `=` on), 0
/// elsewhere: windows of `t` tokens, `x` their (B·T,) inputs, `eq` the
/// id of `=`.
pub fn answer_mask(x: &[usize], t: usize, eq: usize, digits: usize) -> Vec<f32> {
    // ANCHOR: answer_mask
    let mut mask = vec![0f32; x.len()]; // (B·T,)
    for i in (0..x.len()).filter(|&i| x[i] == eq && i % t > 2 * digits) {
        let end = (i + digits + 1).min(i - i % t + t); // cut at the window's end
        mask[i..end].fill(1.0); // y[i..end]: the answer's characters
    }
    // ANCHOR_END: answer_mask
    mask
}

/// The cross-entropy of the targets `mask` keeps: their mean negative log
/// probability (the prompts' positions count for nothing).
pub fn answer_loss<T: Tape<f32, Cpu> + Merge<T>>(
    dev: &Cpu,
    logits: Tensor<(usize, usize, usize), f32, Cpu, T>, // (B, T, V)
    targets: &Tensor<(usize,), usize, Cpu>,             // (B·T,)
    mask: &[f32],                                       // (B·T,)
) -> Tensor<Rank0, f32, Cpu, T> {
    // ANCHOR: answer_loss
    let (b, t, v) = *logits.shape();
    let kept = mask.iter().sum::<f32>().max(1.0);
    let mask = dev.tensor_from_vec(mask.to_vec(), (b * t,)); // (B·T,)
    let logp = logits.reshape_like(&(b * t, v)).log_softmax::<Axis<1>>(); // (B·T, V)
    let picked = logp.select(targets.clone()); // (B·T,): log p of each target
    (picked * mask).sum::<Rank0, _>() * (-1.0 / kept) // (): mean over the kept

    // ANCHOR_END: answer_loss
}

/// The loss on the answers of every validation line, the split cut into
/// consecutive windows of the block size.
fn answer_val<M: LanguageModel<Cpu>>(
    model: &M,
    corpus: &Corpus,
    eq: usize,
    cfg: &TrainConfig,
) -> Result<f32, TrainError> {
    let (data, t) = (corpus.split(Split::Val), cfg.block_size);
    let offsets: Vec<usize> = (0..data.len().saturating_sub(1) / t)
        .map(|i| i * t)
        .collect();
    let (mut total, mut kept) = (0f64, 0f64);
    for chunk in offsets.chunks(cfg.batch_size.max(1)) {
        let batch = batch_at(data, Split::Val, chunk, t)?;
        let mask = answer_mask(&batch.x, t, eq, EX2_DIGITS);
        let n = mask.iter().sum::<f32>() as f64;
        let (x, y) = batch_tensors(model.device(), &batch)?; // (B, T), (B·T,)
        let loss = answer_loss(model.device(), model.logits(x)?, &y, &mask);
        total += loss.as_vec()[0] as f64 * n;
        kept += n;
    }
    Ok((total / kept.max(1.0)) as f32)
}

/// The first of `xs` whose loss is 0.1 below the plateau, the loss at
/// the first estimate after step 0: where a run leaves it (`None`: never).
pub fn leaves_plateau<T>(xs: &[T], loss: impl Fn(&T) -> f32) -> Option<&T> {
    let plateau = loss(xs.get(1)?);
    xs.iter().find(|x| loss(x) < plateau - 0.1)
}

/// What an EX2 run adds to the training loop: at every estimate the
/// answers' loss and the held-out sums right, and with
/// [`Ex2Loss::Answers`] steps that train on [`answer_loss`].
struct Ex2Hooks<'a> {
    loss: Ex2Loss,
    task: Addition,
    corpus: &'a Corpus,
    eq: usize,
    held_out: &'a [Problem],
    config: TrainConfig,
    checks: Vec<Ex2Check>,
}

impl Hooks<Cpu, GptSmall<Cpu>, ChaCha12Rng> for Ex2Hooks<'_> {
    fn estimated(
        &mut self,
        model: &GptSmall<Cpu>,
        state: &TrainState<Cpu>,
        _: &ChaCha12Rng,
    ) -> Result<(), TrainError> {
        self.checks.push(Ex2Check {
            step: state.step,
            answer_val: answer_val(model, self.corpus, self.eq, &self.config)?,
            correct: ex2_answers(model, self.task, &self.corpus.vocab, self.held_out)?.0,
        });
        Ok(())
    }

    fn step(
        &mut self,
        dev: &Cpu,
        model: &mut GptSmall<Cpu>,
        opt: &mut AdamW<Cpu>,
        grads: &mut Gradients<f32, Cpu>,
        batch: &TokenBatch,
        n: usize,
        cfg: &TrainConfig,
        rng: &mut ChaCha12Rng,
    ) -> Result<f32, TrainError> {
        if self.loss == Ex2Loss::Every {
            return train_step(dev, model, opt, grads, batch, n);
        }
        let _ = rng; // no dropout in the small preset
        let (x, y) = batch_tensors(dev, batch)?; // (B, T), (B·T,)
        let mask = answer_mask(&batch.x, cfg.block_size, self.eq, EX2_DIGITS); // (B·T,)
        let tape = std::mem::replace(grads, Gradients::leaky());
        let logits = model.logits(x.traced(tape))?; // (B, T, V)
        let loss = answer_loss(dev, logits, &y, &mask); // ()
        update(model, opt, grads, loss, n) // backward, AdamW
    }
}

/// One EX2 run: the small GPT trained on `text` with `loss` by the loop
/// of every run, every draw from one generator seeded [`EX2_SEED`] (the
/// same model at step 0, the same batches, either loss), checked at every
/// estimate on the `held_out` sums. The trained model, its corpus, and
/// what it did.
#[allow(clippy::type_complexity)]
pub fn train_ex2(
    loss: Ex2Loss,
    task: Addition,
    text: &str,
    held_out: &[Problem],
    config: TrainConfig,
    watch: &mut dyn Watch,
) -> Result<(GptSmall<Cpu>, Corpus, Vec<Eval>, Vec<Ex2Check>, f64), StageError> {
    let corpus = Corpus::new(text)?;
    let eq = corpus.vocab.encode("=").map_err(TextError::from)?[0];
    let dev = Cpu::default();
    let start = Instant::now();
    let mut rng = ChaCha12Rng::seed_from_u64(EX2_SEED);
    let mut model = GptSmall::<Cpu>::init(&dev, corpus.vocab.len(), &mut rng)?;
    let mut state = TrainState::<Cpu>::new(&config);
    let (c, checks) = (&corpus, Vec::new());
    let mut hooks = Ex2Hooks {
        loss,
        task,
        corpus: c,
        eq,
        held_out,
        config,
        checks,
    };
    run_keeping(
        &dev, &mut model, c, &config, &mut state, &mut rng, watch, &mut hooks,
    )?;
    let (evals, checks) = (state.history.evals.clone(), hooks.checks);
    Ok((model, corpus, evals, checks, start.elapsed().as_secs_f64()))
}

/// Always the most likely character: greedy decoding, for answers.
pub const GREEDY: Sampling = Sampling {
    temperature: 1.0,
    top_k: Some(1),
};

/// Each problem's prompt, `a+b=` after a newline (where every line of the
/// training text starts), as token ids.
fn prompts(
    task: Addition,
    vocab: &crate::data::vocab::Vocab,
    problems: &[Problem],
) -> Result<Vec<Vec<usize>>, TextError> {
    let encode = |p: &Problem| vocab.encode(&format!("\n{}", task.prompt(*p)));
    let ids = problems.iter().map(encode).collect::<Result<_, _>>();
    Ok(ids?)
}

/// Prompts the model with each problem and reads the next digits+1
/// characters it writes, always the most likely: (right, the answers).
pub fn ex2_answers<M: LanguageModel<Cpu>>(
    model: &M,
    task: Addition,
    vocab: &crate::data::vocab::Vocab,
    problems: &[Problem],
) -> Result<(usize, Vec<String>), TrainError> {
    let mut rng = ChaCha12Rng::seed_from_u64(EX2_SEED); // never drawn from: top-1 is certain
    let (mut right, mut answers) = (0, Vec::new());
    // ANCHOR: ex2_accuracy
    for chunk in problems.chunks(250) {
        let prompts = prompts(task, vocab, chunk)?; // (250, 7): "\n", then a+b=
        let n = task.digits() + 1; // the answer's characters
        let rows = model.generate_sampled(&prompts, n, GREEDY, &mut rng, &mut |_| true)?;
        for (row, &p) in rows.iter().zip(chunk) {
            let written = vocab.decode(&row[prompts[0].len()..]); // what it wrote
            right += usize::from(task.read_answer(&written) == Some(p.a + p.b));
            answers.push(written);
        }
    }
    // ANCHOR_END: ex2_accuracy
    Ok((right, answers))
}

/// Trains EX2's GPT with `config` ([`ex2_config`] for the book's run)
/// under `watch`, once with the loss on every character and once on the
/// answers alone; its record.
pub fn run_ex2(config: TrainConfig, watch: &mut dyn Watch) -> Result<Ex2, StageError> {
    let task = Addition::new(EX2_DIGITS)?;
    let mut rng = ChaCha12Rng::seed_from_u64(EX2_SEED);
    let (train, held_out) = task.split(EX2_HELD_OUT, &mut rng)?;
    let text = task.text(&train);
    let (model, corpus, evals, checks, seconds) =
        train_ex2(Ex2Loss::Every, task, &text, &held_out, config, watch)?;
    let (correct, answers) = ex2_answers(&model, task, &corpus.vocab, &held_out)?;
    let examples = held_out
        .iter()
        .zip(&answers)
        .take(8)
        .map(|(&p, got)| (task.prompt(p), task.answer(p), got.clone()))
        .collect();
    let (masked, _, masked_evals, masked_checks, masked_seconds) = train_ex2(
        Ex2Loss::Answers,
        task,
        &text,
        &held_out,
        config,
        &mut After(config.max_iters, watch),
    )?;
    Ok(Ex2 {
        config,
        train_problems: train.len(),
        held_out: held_out.len(),
        params: model.num_trainable_params(),
        vocab: corpus.vocab.len(),
        evals,
        correct,
        examples,
        seconds,
        checks,
        answers_only: Ex2Masked {
            evals: masked_evals,
            checks: masked_checks,
            correct: ex2_answers(&masked, task, &corpus.vocab, &held_out)?.0,
            seconds: masked_seconds,
        },
    })
}
