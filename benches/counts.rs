//! Chapter 1's hot loop: count every bigram of names.txt and score the model
//! (the lecture's tensor loop takes about 2.4 s in Python, `torch.bincount`
//! about 0.18 s). Run with `cargo bench --bench counts`; needs names.txt.

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use charlm::bigram_counts::BigramCounts;
use charlm::data;

fn bench_counts(c: &mut Criterion) {
    let words = data::load_names(None).expect("names.txt (set CHARLM_DATA_DIR)");
    let vocab = charlm::vocab::Vocab::for_names(&words);
    c.bench_function("count bigrams + nll (names.txt)", |b| {
        b.iter(|| {
            let counts = BigramCounts::with_vocab(vocab.clone(), black_box(&words)).unwrap();
            let model = counts.probabilities(1.0).unwrap();
            black_box(model.nll(&words).unwrap().nll)
        })
    });
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
