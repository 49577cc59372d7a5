//! Chapters 4 and 5 at the lecture's larger size, B=32, T=256, C=384: the
//! three versions of the causal average, and one head of self-attention
//! (head size 64) forward and backward: the workloads of `charlm bench`
//! (`charlm::bench`). Run with `cargo bench --bench attention`.

use criterion::{criterion_group, criterion_main, Criterion};

use charlm::bench::Workload;

fn bench_attention(c: &mut Criterion) {
    let mut group = c.benchmark_group("B=32, T=256, C=384");
    group.sample_size(10);
    for w in [
        Workload::AttentionV1,
        Workload::AttentionV2,
        Workload::AttentionV3,
        Workload::HeadStep,
    ] {
        let mut iteration = w.prepare(&[], "").unwrap();
        group.bench_function(w.name(), |b| b.iter(|| iteration().unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench_attention);
criterion_main!(benches);
