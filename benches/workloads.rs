//! Every stage's workloads (`charlm::bench::all()`, the ones `charlm bench`
//! and `python3 parity/bench.py` time) under criterion, one group per stage,
//! plus chapter 2's one-hot step built from dfdx's own ops, the baseline its
//! fused kernel replaces. Needs the data (set CHARLM_DATA_DIR).
//!
//! ```sh
//! cargo bench --features bench --bench workloads               # all of them
//! cargo bench --features bench --bench workloads -- attention  # those whose name has "attention"
//! ```

use criterion::{criterion_group, criterion_main, Criterion};
use dfdx::prelude::*;
use rand::{rngs::StdRng, SeedableRng};

use charlm::data::DataSets;
use charlm::models::bigram_counts::BigramCounts;
use charlm::models::bigram_onehot::{Batch, BigramNet, Pairs};
use charlm::ops::composed;
use charlm::stages::ALL;

fn bench_stages(c: &mut Criterion) {
    let data = DataSets::new();
    for stage in ALL {
        let workloads = stage.workloads();
        if workloads.is_empty() {
            continue;
        }
        let mut group = c.benchmark_group(stage.id());
        group.sample_size(10);
        for w in workloads {
            let mut iteration = (w.prepare)(&data).expect("the data (set CHARLM_DATA_DIR)");
            group.bench_function(w.name, |b| b.iter(|| iteration().unwrap()));
        }
        group.finish();
    }
}

/// Chapter 2's one-hot step as plain dfdx ops: matmul, log_softmax, select, mean.
fn bench_composed_onehot(c: &mut Criterion) {
    let data = DataSets::new();
    let words = data.names().expect("names.txt (set CHARLM_DATA_DIR)");
    let counts = BigramCounts::from_words(words).unwrap();
    let pairs = Pairs::new(words, counts.vocab()).unwrap();
    let dev = Cpu::default();
    let batch = Batch::new(&dev, &pairs).unwrap();
    let mut net = BigramNet::new(&dev, counts.size(), &mut StdRng::seed_from_u64(1)).unwrap();
    let mut group = c.benchmark_group("bigram_onehot");
    group.sample_size(10);
    // lr 0.1: the weights stay sane however many iterations criterion runs
    group.bench_function("onehot-step, composed dfdx ops", |b| {
        b.iter(|| {
            let w = net.w.trace(Gradients::leaky());
            let nll = composed::linear_nll(&batch.xenc, w.retaped(), &batch.ys); // ()
            let loss = nll + w.square().mean() * 0.01; // ()
            let grads = loss.backward();
            net.w.axpy(1.0, &grads.get(&net.w), -0.1);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_stages, bench_composed_onehot);
criterion_main!(benches);
