//! Chapters 4 and 5 at the lecture's larger size, B=32, T=256, C=384: the
//! three versions of the causal average, and one head of self-attention
//! (head size 64) forward and backward. Run with `cargo bench --bench attention`.

use criterion::{criterion_group, criterion_main, Criterion};
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use charlm::attention_trick::{
    bag_of_words_loops, bag_of_words_matmul, bag_of_words_softmax, randn,
};
use charlm::self_attention::Head;

fn bench_attention(c: &mut Criterion) {
    let dev = Cpu::default();
    let mut rng = ChaCha12Rng::seed_from_u64(1337);
    let x = randn(&dev, (32, 256, 384), &mut rng); // (B, T, C)
    let mut group = c.benchmark_group("B=32, T=256, C=384");
    group.sample_size(10);
    group.bench_function("v1 loops", |b| b.iter(|| bag_of_words_loops(&x).unwrap()));
    group.bench_function("v2 tril matmul", |b| b.iter(|| bag_of_words_matmul(&x)));
    group.bench_function("v3 softmax", |b| b.iter(|| bag_of_words_softmax(&x)));
    let head: Head<384, 64, f32, Cpu> = Head::new(&dev, &mut rng).unwrap();
    let xc = x.clone().realize::<(usize, usize, Const<384>)>();
    group.bench_function("one head (64) forward + backward", |b| {
        b.iter(|| {
            let grads = Gradients::leaky();
            let out = head.forward(xc.clone().traced(grads)); // (B, T, 64)
            out.sum().backward()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_attention);
criterion_main!(benches);
