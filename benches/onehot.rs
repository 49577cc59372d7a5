//! Chapter 2's hot loop: one full-batch gradient-descent step (forward,
//! backward, update) on all 228,146 pairs of names.txt, for the one-hot
//! matmul path and the lookup path (`charlm bench --workload onehot-step`,
//! `lookup-step`), plus the one-hot step built from dfdx's own ops
//! (`fused::linear_nll_composed`) as the baseline the fused kernel replaces.
//! Run with `cargo bench --bench onehot`; needs names.txt. PyTorch's time
//! for the same step: `python3 parity/bench.py --workload onehot-step`.

use criterion::{criterion_group, criterion_main, Criterion};
use dfdx::nn::ZeroGrads;
use dfdx::prelude::*;
use rand::{rngs::StdRng, SeedableRng};

use charlm::bench::Workload;
use charlm::bigram_counts::BigramCounts;
use charlm::bigram_onehot::{Batch, BigramNet, Pairs, NAMES_VOCAB};
use charlm::fused::linear_nll_composed;

type Net = BigramNet<NAMES_VOCAB, Cpu>;

/// The one-hot step as plain dfdx ops: matmul, log_softmax, select, mean.
fn composed_step(net: &mut Net, batch: &Batch<NAMES_VOCAB, Cpu>, lr: f32, reg: f32) -> f32 {
    let w = net.w.trace(net.w.alloc_grads());
    let nll = linear_nll_composed(&batch.xenc, w.retaped(), &batch.ys); // ()
    let loss = nll + w.square().mean() * reg; // ()
    let value = loss.array();
    let grads = loss.backward();
    net.w.axpy(1.0, &grads.get(&net.w), -lr);
    value
}

fn bench_step(c: &mut Criterion) {
    let words = charlm::data::load_names(None).expect("names.txt (set CHARLM_DATA_DIR)");
    let mut group = c.benchmark_group("one full-batch step (228,146 pairs)");
    group.sample_size(20);
    for w in [Workload::OnehotStep, Workload::LookupStep] {
        let mut step = w.prepare(&words, "").unwrap();
        group.bench_function(w.name(), |b| b.iter(|| step().unwrap()));
    }
    let counts = BigramCounts::from_words(&words).unwrap();
    let pairs = Pairs::new(&words, counts.vocab()).unwrap();
    let dev = Cpu::default();
    let batch: Batch<NAMES_VOCAB, Cpu> = Batch::new(&dev, &pairs).unwrap();
    let mut net = Net::new(&dev, &mut StdRng::seed_from_u64(1)).unwrap();
    // lr 0.1: the weights stay sane however many iterations criterion runs
    group.bench_function("one-hot, composed dfdx ops", |b| {
        b.iter(|| composed_step(&mut net, &batch, 0.1, 0.01))
    });
    group.finish();
}

criterion_group!(benches, bench_step);
criterion_main!(benches);
