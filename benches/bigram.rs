//! Chapter 3's hot loop: training steps of the bigram language model at
//! bigram.py's settings (batch 32, block 8, AdamW lr 1e-2): sample a batch,
//! forward, backward, update. Run with `cargo bench --bench bigram`; needs
//! tinyshakespeare.txt. Criterion reports the time of 100 steps; PyTorch
//! does about 150 steps/s here at 2 threads and 900 at 1 thread.

use criterion::{criterion_group, criterion_main, Criterion};
use dfdx::prelude::*;
use rand::{rngs::StdRng, SeedableRng};

use charlm::bigram_embedding::{BigramLanguageModel, SHAKESPEARE_VOCAB};
use charlm::data::{load_text, Dataset};
use charlm::text::Corpus;
use charlm::train::{train, TrainConfig};

fn bench_steps(c: &mut Criterion) {
    let text = load_text(Dataset::TinyShakespeare, None)
        .expect("tinyshakespeare.txt (set CHARLM_DATA_DIR)");
    let corpus = Corpus::new(&text).unwrap();
    let dev = Cpu::default();
    let mut rng = StdRng::seed_from_u64(1337);
    let mut model: BigramLanguageModel<SHAKESPEARE_VOCAB, f32, Cpu> =
        BigramLanguageModel::new(&dev, &mut rng, 1.0).unwrap();
    // 100 steps and a single one-batch estimate at the end (eval_interval > steps)
    let cfg = TrainConfig {
        max_iters: 100,
        eval_interval: 1000,
        eval_iters: 1,
        ..TrainConfig::default()
    };
    let mut group = c.benchmark_group("bigram LM training (batch 32, block 8)");
    group.sample_size(20);
    group.bench_function("100 steps", |b| {
        b.iter(|| train(&dev, &mut model, &corpus, &cfg, &mut rng, |_| {}).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_steps);
criterion_main!(benches);
