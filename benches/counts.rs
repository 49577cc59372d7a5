//! Chapter 1's hot loop: from the names to the count table, P and the loss
//! (`charlm bench --workload counts`), and the counting alone. Run with
//! `cargo bench --bench counts`; needs names.txt.

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use charlm::bench::Workload;
use charlm::bigram_counts::BigramCounts;
use charlm::data;

fn bench_counts(c: &mut Criterion) {
    let words = data::load_names(None).expect("names.txt (set CHARLM_DATA_DIR)");
    let mut counts_and_nll = Workload::Counts.prepare(&words, "").unwrap();
    c.bench_function("count bigrams + nll (names.txt)", |b| {
        b.iter(|| counts_and_nll().unwrap())
    });
    let vocab = charlm::vocab::Vocab::for_names(&words);
    c.bench_function("count bigrams only (names.txt)", |b| {
        b.iter(|| BigramCounts::with_vocab(vocab.clone(), black_box(&words)).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench_counts
}
criterion_main!(benches);
