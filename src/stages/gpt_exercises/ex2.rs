//! EX2: the GPT trained on a task of its own, adding two numbers, with its
//! accuracy on sums it never saw.

use super::*;

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

/// EX2 as the record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ex2 {
    /// Its settings.
    pub config: TrainConfig,
    /// Problems in the training text.
    pub train_problems: usize,
    /// Problems held out.
    pub held_out: usize,
    /// The model's parameters.
    pub params: usize,
    /// Characters in its vocabulary.
    pub vocab: usize,
    /// Every estimate, step 0 first.
    pub evals: Vec<Eval>,
    /// Held-out sums answered right (greedy decoding).
    pub correct: usize,
    /// The first held-out problems: prompt, the right answer, the model's.
    pub examples: Vec<(String, String, String)>,
    /// Wall time of the run.
    pub seconds: f64,
}

/// Prompts the model with each problem's `a+b=` (after a newline, where
/// every line of its training text starts) and reads the next digits+1
/// characters it writes, always the most likely: (right, the answers).
pub fn ex2_answers<M: LanguageModel<Cpu>>(
    model: &M,
    task: Addition,
    vocab: &crate::data::vocab::Vocab,
    problems: &[Problem],
) -> Result<(usize, Vec<String>), StageError> {
    // ANCHOR: ex2_accuracy
    let greedy = Sampling {
        temperature: 1.0,
        top_k: Some(1),
    };
    let mut rng = ChaCha12Rng::seed_from_u64(EX2_SEED); // never drawn from: top-1 is certain
    let (mut right, mut answers) = (0, Vec::new());
    for chunk in problems.chunks(250) {
        let prompts = chunk
            .iter()
            .map(|&p| vocab.encode(&format!("\n{}", task.prompt(p))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(TextError::from)?; // (250, prompt)
        let len = prompts[0].len();
        let rows =
            model.generate_sampled(&prompts, task.digits() + 1, greedy, &mut rng, &mut |_| true)?;
        for (row, &p) in rows.iter().zip(chunk) {
            let written = vocab.decode(&row[len..]);
            right += usize::from(task.read_answer(&written) == Some(p.a + p.b));
            answers.push(written);
        }
    }
    // ANCHOR_END: ex2_accuracy
    Ok((right, answers))
}

/// Trains EX2's GPT with `config` ([`ex2_config`] for the book's run)
/// under `watch`; its record.
pub fn run_ex2(config: TrainConfig, watch: &mut dyn Watch) -> Result<Ex2, StageError> {
    let task = Addition::new(EX2_DIGITS)?;
    let mut rng = ChaCha12Rng::seed_from_u64(EX2_SEED);
    let (train, held_out) = task.split(EX2_HELD_OUT, &mut rng)?;
    let text = task.text(&train);
    let settings = Settings {
        config,
        seed: EX2_SEED,
        sample_tokens: 0,
    };
    let dev = Cpu::default();
    let start = Instant::now();
    let s = session::start::<Cpu, GptSmall<Cpu>>(&dev, &text, &settings, None, watch)?;
    let (correct, answers) = ex2_answers(&s.model, task, &s.corpus.vocab, &held_out)?;
    let examples = held_out
        .iter()
        .zip(&answers)
        .take(8)
        .map(|(&p, got)| (task.prompt(p), task.answer(p), got.clone()))
        .collect();
    Ok(Ex2 {
        config: s.config,
        train_problems: train.len(),
        held_out: held_out.len(),
        params: s.report.params,
        vocab: s.report.vocab,
        evals: s.train.history.evals.clone(),
        correct,
        examples,
        seconds: start.elapsed().as_secs_f64(),
    })
}
