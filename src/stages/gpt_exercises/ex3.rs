//! EX3: pretrain on a large text, finetune on a small one (tiny Shakespeare,
//! then a few hundred names), against the same model trained from scratch.

use super::*;

/// EX3 learns from this many names, drawn at random from names.txt, each
/// number a run from scratch and a run finetuned (the smaller sets are the
/// first names of the larger ones).
pub const EX3_SIZES: [usize; 3] = [250, 1000, 4000];

/// The size the chapter follows step by step (one of [`EX3_SIZES`]).
pub const EX3_TRAIN_NAMES: usize = 1000;

/// EX3 measures on this many other names.
pub const EX3_VAL_NAMES: usize = 2000;

/// The settings of EX3's runs on names: the `small` preset's, for 1,000
/// steps at `learning_rate`, estimated every 50 steps on 50 batches.
pub fn ex3_config(learning_rate: f32) -> TrainConfig {
    TrainConfig {
        max_iters: 1000,
        eval_interval: 50,
        eval_iters: 50,
        learning_rate,
        ..crate::presets::SMALL.config
    }
}

/// EX3's two runs' settings: from scratch at the `small` preset's
/// learning rate, finetuning at a third of it.
pub fn ex3_configs() -> (TrainConfig, TrainConfig) {
    (ex3_config(1e-3), ex3_config(3e-4))
}

/// EX3's small data set: `train` names to learn from (at most the largest
/// of [`EX3_SIZES`]) and [`EX3_VAL_NAMES`] others to measure on, drawn at
/// random (with `rng`) from the distinct `names` (names.txt lists some
/// twice), each a line, in the vocabulary of the text the model was
/// pretrained on (`vocab`: tiny Shakespeare's characters hold every letter
/// and the newline). The draw is the same for every `train`: the same
/// names to measure on, and nested sets to learn from.
pub fn ex3_names<R: rand::Rng>(
    names: &[String],
    vocab: &Vocab,
    train: usize,
    rng: &mut R,
) -> Result<Corpus, StageError> {
    let mut seen = std::collections::HashSet::new();
    let names: Vec<&String> = names.iter().filter(|n| seen.insert(*n)).collect(); // first of each
    let most = EX3_SIZES.into_iter().max().unwrap_or(0);
    let wanted = EX3_VAL_NAMES + most;
    if names.len() < wanted || train > most {
        return Err(StageError::Record(format!(
            "EX3 draws {wanted} names, {train} of them to learn from, and the file holds {} \
             distinct ones: use the full names.txt and at most {most}",
            names.len()
        )));
    }
    // ANCHOR: ex3_names
    let picked: Vec<&String> = names.choose_multiple(rng, wanted).copied().collect();
    let lines = |names: &[&String]| names.iter().map(|n| format!("{n}\n")).collect::<String>();
    let (val, rest) = picked.split_at(EX3_VAL_NAMES);
    let train = &rest[..train];
    Ok(Corpus {
        vocab: vocab.clone(),
        train: vocab.encode(&lines(train)).map_err(TextError::from)?,
        val: vocab.encode(&lines(val)).map_err(TextError::from)?,
    })
    // ANCHOR_END: ex3_names
}

/// One of EX3's runs on the names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ex3Run {
    /// Every estimate, step 0 first.
    pub evals: Vec<Eval>,
    /// The step of the lowest validation estimate.
    pub best_step: usize,
    /// The loss over all the held-out names at that step.
    pub best_whole_val: f32,
    /// The same after the last step.
    pub last_whole_val: f32,
    /// Names the best model writes (from a newline, sampled).
    pub samples: Vec<String>,
}

/// Trains `model` (fresh, or pretrained) on `corpus` with `config`, a
/// fresh AdamW, the draws from `seed`: the same loop as every run, nothing
/// else. Returns the model after the last step, the model of the lowest
/// validation estimate (what `--save` keeps), and the run's state.
pub fn finetune<M: LanguageModel<Cpu> + Clone>(
    mut model: M,
    corpus: &Corpus,
    config: &TrainConfig,
    seed: u64,
    watch: &mut dyn Watch,
) -> Result<(M, M, TrainState<Cpu>), StageError> {
    let dev = Cpu::default();
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    // ANCHOR: finetune
    let mut state = TrainState::new(config);
    let mut best = None;
    let mut keep = |m: &M, _: &TrainState<Cpu>, _: &ChaCha12Rng| {
        best = Some(m.clone()); // the best so far
        Ok(())
    };
    let (m, c) = (&mut model, config);
    run_keeping(&dev, m, corpus, c, &mut state, &mut rng, watch, &mut keep)?;
    let best = best.unwrap_or_else(|| model.clone());
    // ANCHOR_END: finetune
    Ok((model, best, state))
}

/// The seed of EX3's name split and its runs' batches.
pub const EX3_SEED: u64 = 1337;

/// [`finetune`], measured: the record of the run.
pub fn ex3_run<M: LanguageModel<Cpu> + Clone>(
    model: M,
    corpus: &Corpus,
    config: &TrainConfig,
    watch: &mut dyn Watch,
) -> Result<Ex3Run, StageError> {
    let dev = Cpu::default();
    let (last, best, state) = finetune(model, corpus, config, EX3_SEED, watch)?;
    let best_step = state.best_eval().map_or(0, |e| e.step);
    let best_whole_val = split_loss(&dev, &best, corpus, Split::Val, config)?;
    let last_whole_val = split_loss(&dev, &last, corpus, Split::Val, config)?;
    let mut rng = ChaCha12Rng::seed_from_u64(EX3_SEED);
    let newline = corpus.vocab.encode("\n").map_err(TextError::from)?;
    let rows = best.generate(&[newline], 100, &mut rng)?; // (1, 101)
    let text = corpus.vocab.decode(&rows[0][1..]);
    let mut samples: Vec<String> = text.lines().map(str::to_string).collect();
    samples.pop(); // the last is cut off
    Ok(Ex3Run {
        evals: state.history.evals.clone(),
        best_step,
        best_whole_val,
        last_whole_val,
        samples,
    })
}

/// EX3 at one size: both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ex3Size {
    /// Names to learn from.
    pub names: usize,
    /// Their characters, newlines included.
    pub train_chars: usize,
    /// The `small` preset from scratch on the names.
    pub scratch: Ex3Run,
    /// The pretrained model, finetuned on the names.
    pub finetuned: Ex3Run,
}

/// EX3 as the record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ex3 {
    /// Names to measure on.
    pub val_names: usize,
    /// The settings from scratch, and finetuning.
    pub configs: (TrainConfig, TrainConfig),
    /// Characters in the vocabulary (the pretraining text's).
    pub vocab: usize,
    /// The pretrained model (EX4's first ReLU run) on all the held-out
    /// names, before finetuning.
    pub pretrained_whole_val: f32,
    /// Every size's runs, smallest first.
    pub sizes: Vec<Ex3Size>,
}

impl Ex3 {
    /// The runs at the size the chapter follows, [`EX3_TRAIN_NAMES`].
    pub fn main(&self) -> Option<&Ex3Size> {
        self.sizes.iter().find(|s| s.names == EX3_TRAIN_NAMES)
    }
}

/// EX3's names at size `train` ([`ex3_names`]) and the fresh model that
/// learns them from scratch, both drawn from [`EX3_SEED`] (the same fresh
/// weights at every size).
pub fn ex3_start(
    names: &[String],
    vocab: &Vocab,
    train: usize,
) -> Result<(Corpus, GptSmall<Cpu>), StageError> {
    let mut rng = ChaCha12Rng::seed_from_u64(EX3_SEED);
    let corpus = ex3_names(names, vocab, train, &mut rng)?;
    let fresh = GptSmall::init(&Cpu::default(), corpus.vocab.len(), &mut rng)?;
    Ok((corpus, fresh))
}

/// Runs EX3 with the `pretrained` model and the text it learned from: for
/// each of `sizes`, the names, then both runs with `configs` (scratch,
/// finetuning); and the pretrained model's loss on the held-out names.
pub fn run_ex3(
    pretrained: &GptSmall<Cpu>,
    pretrain_corpus: &Corpus,
    names: &[String],
    sizes: &[usize],
    configs: (TrainConfig, TrainConfig),
    watch: &mut dyn Watch,
) -> Result<Ex3, StageError> {
    let dev = Cpu::default();
    let vocab = &pretrain_corpus.vocab;
    let (mut runs, mut pretrained_whole_val) = (Vec::new(), f32::NAN);
    for &n in sizes {
        let (corpus, fresh) = ex3_start(names, vocab, n)?;
        if runs.is_empty() {
            // the held-out names are the same at every size: measured once
            pretrained_whole_val = split_loss(&dev, pretrained, &corpus, Split::Val, &configs.1)?;
        }
        runs.push(Ex3Size {
            names: n,
            train_chars: corpus.train.len(),
            scratch: ex3_run(fresh, &corpus, &configs.0, watch)?,
            finetuned: ex3_run(pretrained.clone(), &corpus, &configs.1, watch)?,
        });
    }
    Ok(Ex3 {
        val_names: EX3_VAL_NAMES,
        configs,
        vocab: vocab.len(),
        pretrained_whole_val,
        sizes: runs,
    })
}
