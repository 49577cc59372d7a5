//! Chapter 2's hot loop: one full-batch gradient-descent step (forward,
//! backward, update) on all 228,146 pairs of names.txt, for the one-hot
//! matmul path and the lookup path. Run with `cargo bench --bench onehot`;
//! needs names.txt. PyTorch takes about 84 ms for the one-hot step here.

use criterion::{criterion_group, criterion_main, Criterion};
use dfdx::prelude::*;
use rand::{rngs::StdRng, SeedableRng};

use charlm::bigram_counts::BigramCounts;
use charlm::bigram_onehot::{Batch, BigramNet, Forward, Pairs, NAMES_VOCAB};

fn bench_step(c: &mut Criterion) {
    let words = charlm::data::load_names(None).expect("names.txt (set CHARLM_DATA_DIR)");
    let counts = BigramCounts::from_words(&words).unwrap();
    let pairs = Pairs::new(&words, counts.vocab()).unwrap();
    let dev = Cpu::default();
    let batch: Batch<NAMES_VOCAB, Cpu> = Batch::new(&dev, &pairs).unwrap();
    let mut group = c.benchmark_group("one full-batch step (228,146 pairs)");
    group.sample_size(10);
    for (name, forward) in [("one-hot", Forward::OneHot), ("lookup", Forward::Lookup)] {
        let mut net: BigramNet<NAMES_VOCAB, Cpu> =
            BigramNet::new(&dev, &mut StdRng::seed_from_u64(1)).unwrap();
        // lr 0.1: the weights stay sane however many iterations criterion runs
        group.bench_function(name, |b| {
            b.iter(|| net.step(&batch, forward, 0.1, 0.01).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_step);
criterion_main!(benches);
