//! The lectures' exercises, solved in the crate (makemore part 1 at the end
//! of chapter 2): a trigram model by counting and as a neural net, and the
//! train/dev/test split.

use charlm::models::bigram_counts::BigramCounts;
use charlm::models::trigram::{split_words, TrigramCounts, TrigramExamples, TrigramNet};
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use crate::common::words;

#[test]
fn the_trigram_counting_model_beats_the_bigram() {
    let counts = BigramCounts::from_words(words()).unwrap();
    let vocab = counts.vocab();
    let bigram = counts.probabilities(1.0).unwrap().nll(words()).unwrap().nll;
    let trigrams = TrigramCounts::from_words(vocab, words()).unwrap();
    let nll = trigrams.probabilities(1.0).unwrap().nll(words()).unwrap();
    assert!(nll < bigram - 0.2, "trigram {nll} vs bigram {bigram}");
    // unsmoothed, a trigram never seen in training has probability 0
    let raw = trigrams.probabilities(0.0).unwrap();
    assert!(raw.nll(&["zzzq"]).unwrap().is_infinite());
    assert!(trigrams.probabilities(-1.0).is_err());
}

#[test]
fn the_split_is_80_10_10_disjoint_and_seeded() {
    let [train, dev, test] = split_words(words(), 42);
    let n = words().len();
    assert_eq!(train.len() + dev.len() + test.len(), n);
    assert_eq!(train.len(), n * 8 / 10);
    let mut all: Vec<&String> = train.iter().chain(&dev).chain(&test).collect();
    all.sort();
    let mut orig: Vec<&String> = words().iter().collect();
    orig.sort();
    assert_eq!(all, orig, "a permutation of the words");
    assert_eq!(split_words(words(), 42)[1], dev);
    assert_ne!(split_words(words(), 43)[1], dev);
}

// The net's loss, computed over the (a, b) contexts weighted by frequency,
// equals the mean over every example; training lowers it to between the
// bigram's and the counted trigram's (its logits are a sum of two lookups,
// so it cannot fit every pair of characters on its own).
#[test]
fn the_trigram_net_learns_and_its_lookup_loss_is_the_mean_over_examples() {
    let dev = Cpu::default();
    let counts = BigramCounts::from_words(words()).unwrap();
    let vocab = counts.vocab();
    let v = vocab.len();
    let few = &words()[..50];
    let mut net = TrigramNet::new(&dev, v, &mut ChaCha12Rng::seed_from_u64(1)).unwrap();
    let ex = TrigramExamples::new(&dev, &TrigramCounts::from_words(vocab, few).unwrap()).unwrap();
    let w = net.w.as_vec();
    let mut direct = 0f64;
    let mut n = 0;
    for word in few {
        let ids: Vec<usize> = std::iter::once(0)
            .chain(std::iter::once(0))
            .chain(word.chars().map(|c| vocab.index(c).unwrap()))
            .chain(std::iter::once(0))
            .collect();
        for t in ids.windows(3) {
            let logits: Vec<f64> = (0..v)
                .map(|j| (w[t[0] * v + j] + w[(v + t[1]) * v + j]) as f64)
                .collect();
            let max = logits.iter().cloned().fold(f64::MIN, f64::max);
            let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
            direct += lse - logits[t[2]];
            n += 1;
        }
    }
    let direct = direct / n as f64;
    assert!(
        (net.nll(&ex) as f64 - direct).abs() < 1e-4,
        "{} vs {direct}",
        net.nll(&ex)
    );

    let counted = TrigramCounts::from_words(vocab, words()).unwrap();
    let all = TrigramExamples::new(&dev, &counted).unwrap();
    let before = net.nll(&all);
    for _ in 0..100 {
        net.step(&all, 50.0, 0.01).unwrap();
    }
    let after = net.nll(&all);
    let bigram = counts.probabilities(1.0).unwrap().nll(words()).unwrap().nll as f32;
    let counted = counted.probabilities(1.0).unwrap().nll(words()).unwrap() as f32;
    assert!(
        after < before - 1.0 && after < bigram && after > counted,
        "{before} -> {after}"
    );
}
