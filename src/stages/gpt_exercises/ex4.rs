//! EX4: GELU in place of ReLU in the feed-forward layer, the `small`
//! preset trained from several seeds with each.

use super::*;
use crate::train::After;

/// EX3 and EX4 train the `small` preset as chapter 8 does: its settings.
pub fn ex4_config() -> TrainConfig {
    crate::presets::SMALL.config
}

/// EX4's seeds: each activation trains once from each, so that the
/// difference can be set against the spread from seed to seed.
pub const EX4_SEEDS: [u64; 3] = [1337, 1338, 1339];

/// One run of EX4: an activation, a seed, and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ex4Run {
    /// ReLU or GELU.
    pub activation: ActivationKind,
    /// The seed of its weights, batches and samples.
    pub seed: u64,
    /// Every estimate, step 0 first.
    pub evals: Vec<Eval>,
    /// The loss over the whole validation split after the last step.
    pub whole_val: f32,
    /// Optimiser steps per second (estimates excluded).
    pub steps_per_second: f64,
}

/// The `small` preset's sizes with preset `P`'s name, initialisation and
/// activation: [`GptSmall`] for `Small`, [`GptSmallGelu`](crate::models::gpt::GptSmallGelu) for `SmallGelu`.
pub type SmallAs<P> = Gpt<64, 4, 16, 256, 4, 32, LayerNorm1D<64, f32, Cpu>, f32, Cpu, P>;

/// Trains [`SmallAs<P>`] on `text` with `config` and `seed`: the run's
/// record (its activation the preset's) and the trained model (with its
/// corpus).
pub fn train_preset<P: Variant>(
    text: &str,
    config: TrainConfig,
    seed: u64,
    watch: &mut dyn Watch,
) -> Result<(Ex4Run, SmallAs<P>, Corpus), StageError> {
    let settings = Settings {
        config,
        seed,
        sample_tokens: 0,
    };
    let dev = Cpu::default();
    let s = session::start::<Cpu, SmallAs<P>>(&dev, text, &settings, None, watch)?;
    let whole_val = split_loss(&dev, &s.model, &s.corpus, Split::Val, &s.config)?;
    let run = Ex4Run {
        activation: <P::Act as Activation>::KIND,
        seed,
        evals: s.train.history.evals.clone(),
        whole_val,
        steps_per_second: s.report.steps_per_second,
    };
    Ok((run, s.model, s.corpus))
}

/// A model trained on a text, with the text's corpus: what EX3 finetunes.
pub type Pretrained = (GptSmall<Cpu>, Corpus);

/// EX4's runs: ReLU ([`GptSmall`]) and GELU ([`GptSmallGelu`](crate::models::gpt::GptSmallGelu)) from each of
/// [`EX4_SEEDS`] on `text`; with the first ReLU run's model and corpus,
/// which EX3 pretrains with.
pub fn run_ex4(
    text: &str,
    config: TrainConfig,
    seeds: &[u64],
    watch: &mut dyn Watch,
) -> Result<(Vec<Ex4Run>, Option<Pretrained>), StageError> {
    let (mut runs, mut first) = (Vec::new(), None);
    let steps = config.max_iters;
    for (k, &seed) in seeds.iter().enumerate() {
        let mut before = After(2 * k * steps, watch); // one bar for every run
        let (relu, model, corpus) = train_preset::<Small>(text, config, seed, &mut before)?;
        let model: GptSmall<Cpu> = model; // the same type
        first.get_or_insert((model, corpus));
        let mut before = After((2 * k + 1) * steps, watch);
        let (gelu, ..) = train_preset::<SmallGelu>(text, config, seed, &mut before)?;
        runs.extend([relu, gelu]);
    }
    Ok((runs, first))
}
