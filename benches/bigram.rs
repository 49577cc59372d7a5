//! Chapter 3's hot loop: one training step of the bigram language model at
//! bigram.py's settings (batch 32, block 8, AdamW lr 1e-2): draw a batch,
//! forward, backward, update (`charlm bench --workload bigram-step`). Run
//! with `cargo bench --bench bigram`; needs tinyshakespeare.txt.

use criterion::{criterion_group, criterion_main, Criterion};

use charlm::bench::Workload;
use charlm::data::{load_text, Dataset};

fn bench_steps(c: &mut Criterion) {
    let text = load_text(Dataset::TinyShakespeare, None)
        .expect("tinyshakespeare.txt (set CHARLM_DATA_DIR)");
    let mut step = Workload::BigramStep.prepare(&[], &text).unwrap();
    let mut group = c.benchmark_group("bigram LM training (batch 32, block 8)");
    group.bench_function("one step", |b| b.iter(|| step().unwrap()));
    group.finish();
}

criterion_group!(benches, bench_steps);
criterion_main!(benches);
