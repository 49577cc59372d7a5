//! Chapters 6 and 7: multi-head attention, the feed-forward layer, blocks
//! with residual connections, LayerNorm; every rung of the lecture's ladder
//! plugs into the shared loop, checkpoints and generation.

use charlm::data::text::Split;
use charlm::models::attention_trick::randn;
use charlm::models::gpt::{LectureBlocks, LectureLayerNorm, LectureResidual, Norm};
use charlm::models::head::Head;
use charlm::models::lm::batch_tensors;
use charlm::models::multihead::{LectureFeedForward, LectureMultiHead, MultiHeadAttention};
use charlm::models::plain_blocks::LecturePlainBlocks;
use charlm::models::{Kind, LanguageModel, ModelJob};
use charlm::stages::ladder;
use charlm::train::checkpoint;
use charlm::train::session::{self, Settings};
use charlm::train::TrainConfig;
use dfdx::nn::modules::LayerNorm1D;
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use crate::common::{corpus, max_diff, text};

fn rng(seed: u64) -> ChaCha12Rng {
    ChaCha12Rng::seed_from_u64(seed)
}

// Four heads side by side are four of chapter 5's heads, each on its own
// columns, outputs concatenated.
#[test]
fn multihead_attention_is_heads_side_by_side() {
    let dev = Cpu::default();
    let mha: MultiHeadAttention<16, 4, 4, f32, Cpu> =
        MultiHeadAttention::new(&dev, &mut rng(1)).unwrap();
    let (b, t) = (3, 7);
    let x = randn(&dev, (b, t, 16), &mut rng(2)).as_vec();
    let input = || dev.tensor_from_vec(x.clone(), (b, t, Const::<16>));
    let (out, wei) = mha.forward_with_weights(input());
    assert_eq!(*out.shape(), (b, t, Const::<16>));
    assert_eq!(*wei.shape(), (b * 4, t, t));
    let out = out.as_vec();
    let columns = |w: &Tensor<Rank2<16, 16>, f32, Cpu>, h: usize| {
        let w = w.as_vec();
        let v: Vec<f32> = (0..16)
            .flat_map(|i| (0..4).map(move |o| (i, o)))
            .map(|(i, o)| w[i * 16 + h * 4 + o])
            .collect();
        dev.tensor_from_vec(v, (Const::<16>, Const::<4>))
    };
    for h in 0..4 {
        let head: Head<16, 4, f32, Cpu> = Head {
            key: columns(&mha.key, h),
            query: columns(&mha.query, h),
            value: columns(&mha.value, h),
        };
        let (one, _) = head.forward_with_weights(input());
        let one = one.as_vec();
        let mut diff = 0.0f32;
        for r in 0..b * t {
            for o in 0..4 {
                diff = diff.max((one[r * 4 + o] - out[r * 16 + h * 4 + o]).abs());
            }
        }
        assert!(diff < 1e-5, "head {h}: {diff}");
    }
}

// Chapter 6's rungs train the lecture's list of heads: the logits they
// train on are `forward_head_by_head`'s, bit for bit, and the gradients
// that reach each head's columns are those of every head at once (1e-5).
#[test]
fn the_multihead_rung_trains_its_list_of_heads() {
    use charlm::models::lm::cross_entropy;
    let dev = Cpu::default();
    let m = LectureMultiHead::new(&dev, 65, &mut rng(5)).unwrap();
    let batch = corpus().get_batch(Split::Train, 4, 8, &mut rng(6)).unwrap();
    let (x, y) = batch_tensors(&dev, &batch).unwrap();
    let trained = m.logits(x.clone()).unwrap().as_vec();
    let emb = m.embeddings.forward(x.clone()).unwrap();
    let by_hand = m.lm_head.forward(m.sa_heads.forward_head_by_head(emb));
    assert_eq!(
        trained,
        by_hand.as_vec(),
        "the rung's logits are the list of heads'"
    );
    let ff = LectureFeedForward::new(&dev, 65, &mut rng(5)).unwrap();
    let emb = ff.embeddings.forward(x.clone()).unwrap();
    let heads = ff.sa_heads.forward_head_by_head(emb);
    let by_hand = ff.lm_head.forward(ff.ffwd.forward(heads).relu());
    assert_eq!(ff.logits(x.clone()).unwrap().as_vec(), by_hand.as_vec());

    let one_by_one = m
        .loss(x.clone().traced(m.alloc_grads()), &y)
        .unwrap()
        .backward();
    let logits = m.forward_with_weights(x.traced(m.alloc_grads())).unwrap().0;
    let at_once = cross_entropy(logits, &y).backward();
    for (name, w) in [
        ("query", &m.sa_heads.query),
        ("key", &m.sa_heads.key),
        ("value", &m.sa_heads.value),
    ] {
        let (a, b) = (one_by_one.get(w).as_vec(), at_once.get(w).as_vec());
        assert!(
            a.iter().any(|g| *g != 0.0),
            "{name}: some gradient reaches the heads"
        );
        assert!(max_diff(&a, &b) < 1e-5, "{name}: {}", max_diff(&a, &b));
    }
}

/// Runs a check on every model of the ladder above one head.
trait EachModel {
    fn check<M: LanguageModel<Cpu>>(&self, name: &str);
}

fn each_model(c: &impl EachModel) {
    c.check::<LectureMultiHead<Cpu>>("multihead");
    c.check::<LectureFeedForward<Cpu>>("ffwd");
    c.check::<LecturePlainBlocks<Cpu>>("plain-blocks");
    c.check::<LectureResidual<Cpu>>("residual");
    c.check::<LectureBlocks<Cpu>>("blocks");
    c.check::<LectureLayerNorm<Cpu>>("layernorm");
}

// Shapes, and causality of the whole stack: changing the tokens after t
// leaves every logit up to t unchanged.
#[test]
fn every_rung_is_causal_with_the_lectures_shapes() {
    struct Causal;
    impl EachModel for Causal {
        fn check<M: LanguageModel<Cpu>>(&self, name: &str) {
            let dev = Cpu::default();
            let m = M::init(&dev, 65, &mut rng(3)).unwrap();
            assert_eq!(M::KIND, name);
            assert_eq!(m.block(), Some(8));
            let batch = corpus().get_batch(Split::Val, 2, 8, &mut rng(4)).unwrap();
            let (x, _) = batch_tensors(&dev, &batch).unwrap();
            let base = m.logits(x).unwrap();
            assert_eq!(*base.shape(), (2, 8, 65), "{name}");
            let base = base.as_vec();
            for at in 0..7 {
                let mut ids = batch.x.clone();
                for row in 0..2 {
                    for t in at + 1..8 {
                        ids[row * 8 + t] = (ids[row * 8 + t] + 7) % 65;
                    }
                }
                let after = m.logits(dev.tensor_from_vec(ids, (2, 8))).unwrap().as_vec();
                for row in 0..2 {
                    for t in 0..=at {
                        let i = (row * 8 + t) * 65;
                        let d = max_diff(&base[i..i + 65], &after[i..i + 65]);
                        assert!(
                            d < 1e-5,
                            "{name}: position {t} saw the future after {at}: {d}"
                        );
                    }
                }
            }
            let long = dev.tensor_from_vec(vec![0usize; 9], (1, 9));
            assert!(m.logits(long).is_err(), "{name}: 9 tokens do not fit");
        }
    }
    each_model(&Causal);
}

// The parameter counts follow from the sizes: e.g. the layernorm rung has
// 3 blocks of 4·32² (attention, projection) + 2·32·128 (feed-forward) + biases.
#[test]
fn parameter_counts() {
    use dfdx::nn::NumParams;
    let dev = Cpu::default();
    let (v, c, blk) = (65, 32, 8);
    let emb = v * c + blk * c;
    let head = c * v + v;
    let linear = |i: usize, o: usize| i * o + o;
    let block = 3 * c * c + linear(c, c) + linear(c, 4 * c) + linear(4 * c, c);
    let mh = LectureMultiHead::new(&dev, v, &mut rng(1)).unwrap();
    assert_eq!(mh.num_trainable_params(), emb + 3 * c * c + head);
    let ff = LectureFeedForward::new(&dev, v, &mut rng(1)).unwrap();
    assert_eq!(
        ff.num_trainable_params(),
        emb + 3 * c * c + linear(c, c) + head
    );
    // plain-blocks: 3 of chapter 6's (heads, Linear(C, C)), nothing else
    let pb = LecturePlainBlocks::new(&dev, v, &mut rng(1)).unwrap();
    assert_eq!(
        pb.num_trainable_params(),
        emb + 3 * (3 * c * c + linear(c, c)) + head
    );
    // residual: a projection after the heads, a second Linear(C, C) after ReLU
    let res = LectureResidual::new(&dev, v, &mut rng(1)).unwrap();
    assert_eq!(
        res.num_trainable_params(),
        emb + 3 * (3 * c * c + 3 * linear(c, c)) + head
    );
    assert_eq!(
        (
            LectureResidual::<Cpu>::SIZES.ffwd,
            LectureBlocks::<Cpu>::SIZES.ffwd
        ),
        (c, 4 * c)
    );
    let bl = LectureBlocks::new(&dev, v, &mut rng(1)).unwrap();
    assert_eq!(bl.num_trainable_params(), emb + 3 * block + head);
    let ln = LectureLayerNorm::new(&dev, v, &mut rng(1)).unwrap();
    assert_eq!(
        ln.num_trainable_params(),
        emb + 3 * (block + 4 * c) + 2 * c + head
    );
}

// The rungs between ffwd and blocks change what the lecture changes: a plain
// block replaces x by ffwd(sa(x)) (chapter 6's layers, nothing added back);
// the residual rung's block adds each branch back onto x, a projection
// closing the heads' branch.
#[test]
fn plain_blocks_replace_x_and_residual_blocks_add_to_it() {
    use dfdx::nn::Module;
    let dev = Cpu::default();
    let x = || randn(&dev, (2, 8, 32), &mut rng(21)).as_vec();
    let input = || dev.tensor_from_vec(x(), (2, 8, Const::<32>));
    let plain = LecturePlainBlocks::new(&dev, 65, &mut rng(22)).unwrap();
    let block = &plain.blocks.modules[0];
    let out = block.forward(input()).unwrap().as_vec();
    let by_hand = block
        .ffwd
        .forward(block.sa.forward_head_by_head(input()))
        .relu();
    assert_eq!(out, by_hand.as_vec(), "x = ffwd(sa(x))");
    let added: Vec<f32> = x().iter().zip(&out).map(|(a, b)| a + b).collect();
    assert!(max_diff(&out, &added) > 0.5, "not x + f(x)");

    let res = LectureResidual::new(&dev, 65, &mut rng(22)).unwrap();
    let block = &res.blocks.modules[0];
    let out = block.forward(input(), &mut None).as_vec();
    let sa = block
        .sa
        .proj
        .forward(block.sa.heads.forward_head_by_head(input()));
    let h = input() + sa; // x + proj(heads(x))
    let f = block.ffwd.net.forward(h.clone()); // Linear(32, 32), ReLU, Linear(32, 32)
    let by_hand = (h + f).as_vec();
    assert!(
        max_diff(&out, &by_hand) < 1e-5,
        "{}",
        max_diff(&out, &by_hand)
    );
    // the chapter's residual form, x = x + sa(x); x = x + ffwd(x), is what
    // the rung's block (norm `()`) computes, bit for bit
    let residual = block.forward_residual(input(), &mut None).as_vec();
    assert_eq!(out, residual, "x + sa(x), then x + ffwd(x)");
    assert!(
        max_diff(&residual, &x()) > 0.1,
        "the branches add something"
    );
}

// LayerNorm at initialisation (gamma 1, beta 0) gives every token's row
// mean 0 and variance 1 (biased, as PyTorch's).
#[test]
fn layernorm_normalises_each_token() {
    let dev = Cpu::default();
    let ln: LayerNorm1D<32, f32, Cpu> = Norm::<32, Cpu>::new(&dev).unwrap();
    let x = randn(&dev, (4, 8, 32), &mut rng(9)).as_vec();
    let x: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, v)| 3.0 * v + (i / 32) as f32)
        .collect();
    let y = ln
        .norm(dev.tensor_from_vec(x, (4, 8, Const::<32>)))
        .as_vec();
    for row in y.chunks(32) {
        let mean = row.iter().sum::<f32>() / 32.0;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 32.0;
        assert!(mean.abs() < 1e-5, "{mean}");
        assert!((var - 1.0).abs() < 1e-3, "{var}");
    }
}

// Every rung's model saves and loads (the optimiser, gradients and
// safetensors visitors walk it): the same logits after the round trip.
#[test]
fn every_rung_round_trips_through_a_checkpoint() {
    struct RoundTrip;
    impl EachModel for RoundTrip {
        fn check<M: LanguageModel<Cpu>>(&self, name: &str) {
            let dev = Cpu::default();
            let settings = Settings {
                config: TrainConfig {
                    max_iters: 5,
                    eval_iters: 1,
                    ..charlm::presets::LADDER
                },
                seed: 5,
                sample_tokens: 5,
            };
            let run = session::run::<Cpu, M>(&dev, text(), &settings, None, &mut ()).unwrap();
            let m = &run.model;
            let dir = crate::tempfile::tempdir().unwrap();
            let path = dir.path().join("m.safetensors");
            run.save(&path).unwrap();
            let (loaded, _) = checkpoint::load_model::<Cpu, M>(&dev, &path).unwrap();
            let x = || dev.tensor_from_vec((0..16).map(|i| i % 65).collect(), (2, 8));
            let d = max_diff(
                &m.logits(x()).unwrap().as_vec(),
                &loaded.logits(x()).unwrap().as_vec(),
            );
            assert_eq!(d, 0.0, "{name}");
        }
    }
    each_model(&RoundTrip);
}

// Every rung learns: a short run at the ladder's learning rate lowers the
// validation loss well below the uniform ln 65 = 4.17, the same seed gives
// the same run, and every rung is in the registry under its preset's model.
#[test]
fn every_rung_trains_on_a_tiny_run() {
    struct Trains(f32);
    impl ModelJob<Cpu> for Trains {
        type Output = (f32, f32);
        fn run<M: LanguageModel<Cpu>>(self) -> (f32, f32) {
            let settings = Settings {
                config: TrainConfig {
                    max_iters: 150,
                    eval_interval: 150,
                    eval_iters: 10,
                    learning_rate: 1e-2,
                    dropout: self.0,
                    ..charlm::presets::LADDER
                },
                seed: 7,
                sample_tokens: 20,
            };
            let run = || {
                session::run::<Cpu, M>(&Cpu::default(), text(), &settings, None, &mut ()).unwrap()
            };
            let (a, b) = (run(), run());
            assert_eq!(
                a.report.val_loss,
                b.report.val_loss,
                "{}: deterministic",
                M::KIND
            );
            assert_eq!(a.report.sample, b.report.sample);
            (a.report.initial_loss, a.report.val_loss)
        }
    }
    for rung in ladder::rungs() {
        assert_eq!(Kind::from_name(rung.kind.name()), Some(rung.kind));
        let (initial, val) = rung.kind.with::<Cpu, _>(Trains(rung.config.dropout));
        assert!(
            val < 3.0 && val < initial - 0.8,
            "{}: {initial} -> {val}",
            rung.name
        );
    }
    assert_eq!(
        ladder::rung("layernorm").map(|r| r.kind),
        Some(Kind::LayerNorm)
    );
    assert!(ladder::rung("nope").is_none());
}

// Dropout in training zeroes a fraction near p of the entries and scales the
// rest by 1/(1 - p); p = 0 is the identity; the masks come from the run's
// generator, so the same seed drops the same entries.
#[test]
fn dropout_zeroes_about_p_and_keeps_the_expectation() {
    use charlm::models::gpt::dropout;
    let dev = Cpu::default();
    let n = 100_000;
    let x = || dev.ones_like(&(n,)).traced(Gradients::leaky());
    let y = dropout(x(), 0.2, &mut rng(1)).as_vec();
    let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
    assert!((zeros - 0.2).abs() < 0.01, "{zeros}");
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.25).abs() < 1e-6));
    let mean = y.iter().sum::<f32>() / n as f32;
    assert!((mean - 1.0).abs() < 0.02, "{mean}");
    assert_eq!(
        dropout(x(), 0.2, &mut rng(1)).as_vec(),
        y,
        "same seed, same mask"
    );
    assert_eq!(dropout(x(), 0.0, &mut rng(1)).as_vec(), vec![1.0; n]);
}

// The GPT drops only in training: train_loss with p = 0 is the loss; with
// p > 0 it differs and depends on the generator; evaluation never drops.
#[test]
fn the_gpt_drops_only_in_training() {
    let dev = Cpu::default();
    let m = LectureLayerNorm::new(&dev, 65, &mut rng(2)).unwrap();
    let batch = corpus().get_batch(Split::Train, 4, 8, &mut rng(3)).unwrap();
    let (x, y) = batch_tensors(&dev, &batch).unwrap();
    let traced = || x.clone().traced(Gradients::leaky());
    let eval = m.loss(traced(), &y).unwrap().as_vec()[0];
    let no_drop = m
        .train_loss(traced(), &y, 0.0, &mut rng(4))
        .unwrap()
        .as_vec()[0];
    assert_eq!(no_drop, eval);
    let a = m
        .train_loss(traced(), &y, 0.2, &mut rng(4))
        .unwrap()
        .as_vec()[0];
    let b = m
        .train_loss(traced(), &y, 0.2, &mut rng(4))
        .unwrap()
        .as_vec()[0];
    let c = m
        .train_loss(traced(), &y, 0.2, &mut rng(5))
        .unwrap()
        .as_vec()[0];
    assert_eq!(a, b, "same generator, same masks");
    assert!(a != eval && a != c, "{a} {eval} {c}");
    let logits = || m.logits(x.clone()).unwrap().as_vec();
    assert_eq!(logits(), logits(), "evaluation is deterministic");
    // a model without dropout refuses to train with it
    let settings = Settings {
        config: TrainConfig {
            dropout: 0.2,
            ..TrainConfig::tiny()
        },
        ..Settings::default()
    };
    let err = session::run::<Cpu, LectureMultiHead<Cpu>>(&dev, text(), &settings, None, &mut ())
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("the multihead model has no dropout"),
        "{err}"
    );
}

// The notebooks run the book's rungs by name (`run_rungs_with`): the rungs
// asked for, in the ladder's order, the heads only with the multihead rung;
// a name the ladder lacks is an error that lists the rungs.
#[test]
fn rungs_run_by_name_in_the_ladders_order() {
    use charlm::stages::ladder::book::run_rungs_with;
    let mut settings = ladder::settings();
    settings.config.max_iters = 2;
    settings.config.eval_interval = 2;
    settings.config.eval_iters = 1;
    settings.sample_tokens = 0;
    let quiet: charlm::stages::Progress = &|_, _| Box::new(());
    let runs = run_rungs_with(text(), &settings, &["ffwd", "multihead"], quiet).unwrap();
    let names: Vec<&str> = runs.runs.iter().map(|r| r.preset).collect();
    assert_eq!(names, ["multihead", "ffwd"]);
    assert_eq!(runs.heads.len(), 4);
    assert!(runs.heads.iter().all(|h| h.len() == 64));
    assert_eq!(runs.sequence.chars().count(), 8);
    assert!(runs.runs.iter().all(|r| r.evals.last().unwrap().step == 2));
    let one = run_rungs_with(text(), &settings, &["head"], quiet).unwrap();
    assert_eq!(one.runs.len(), 1);
    assert!(one.heads.is_empty() && one.sequence.is_empty());
    let err = run_rungs_with(text(), &settings, &["heads"], quiet)
        .err()
        .expect("no rung called heads")
        .to_string();
    assert!(
        err.contains("\"heads\"") && err.contains("plain-blocks"),
        "{err}"
    );
}

// The ladder at the lecture's settings (what the book quotes), from its
// record: every rung with a lecture number is at most 0.05 above it (the
// estimate and the whole validation split), each below the one before on the
// whole split; the committed figures and numbers are drawn from the record,
// whose runs are today's: the start of every rung's run, replayed, gives the
// record's first estimates to the bit, and chapter 7's depth measurements
// are made again. (The full runs take minutes: `charlm figures --stage
// ladder`.)
#[test]
fn the_ladder_meets_the_lectures_numbers_and_the_book_is_current() {
    use charlm::stages::ladder::book::{measure_depth, read_record, render, replay_start};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("chapters/figures/ladder");
    let record = read_record(&dir).unwrap();
    let names: Vec<&str> = record.runs.iter().map(|r| r.preset.as_str()).collect();
    assert_eq!(
        names,
        [
            "head",
            "multihead",
            "ffwd",
            "plain-blocks",
            "residual",
            "blocks",
            "layernorm",
            "dropout"
        ]
    );
    let stale = "the record is stale; run `cargo run --release -- figures --stage ladder`";
    let replayed = replay_start(text()).unwrap();
    for (r, start) in record.runs.iter().zip(&replayed) {
        assert_eq!(start.len(), 2, "{}", r.preset);
        assert_eq!(start[..], r.evals[..2], "{}: {stale}", r.preset);
        let steps = charlm::stages::ladder::settings().config.max_iters;
        assert_eq!(r.evals.last().unwrap().step, steps, "{}", r.preset);
    }
    assert_eq!(record.depth, measure_depth(corpus()).unwrap(), "{stale}");
    let mut previous = f32::INFINITY;
    for r in record.runs.iter().filter(|r| r.lecture_val.is_some()) {
        let (val, lecture) = (r.val_loss, r.lecture_val.unwrap());
        let whole = r.whole_val_loss;
        for (what, v) in [("estimate", val), ("whole split", whole)] {
            assert!(
                f64::from(v) <= lecture + 0.05,
                "{}: {what} {v} vs the lecture's {lecture}",
                r.preset
            );
        }
        // the estimate of 200 random batches and the whole split agree to
        // within the estimate's noise
        assert!((val - whole).abs() < 0.03, "{}: {val} vs {whole}", r.preset);
        // the order, on the whole split (two rungs differ by less than the
        // estimate's noise)
        assert!(
            whole < previous,
            "{}: {whole} is not below the rung before ({previous})",
            r.preset
        );
        previous = whole;
    }
    let run = |name: &str| record.runs.iter().find(|r| r.preset == name).unwrap();
    // what chapter 7 reports: three plain blocks are worse than one layer
    // of heads and feed-forward, in training too (harder to optimise, not
    // overfitting); residual connections more than make up for it, and the
    // 4× feed-forward gains again
    let (ffwd, plain, res, blocks) = (
        run("ffwd"),
        run("plain-blocks"),
        run("residual"),
        run("blocks"),
    );
    assert!(plain.whole_val_loss > ffwd.whole_val_loss && plain.train_loss > ffwd.train_loss);
    assert!(res.whole_val_loss < ffwd.whole_val_loss);
    assert!(blocks.whole_val_loss < res.whole_val_loss);
    // chapter 6's reading of the heads: the head that looks back most has
    // its rows for the two letters after the space both on the space
    let back = (0..4)
        .max_by_key(|&h| {
            let top = charlm::stages::head::largest_weights(&record.heads[h]);
            (
                top.iter().enumerate().filter(|(i, &j)| j < i + 1).count(),
                4 - h,
            )
        })
        .unwrap();
    let top = charlm::stages::head::largest_weights(&record.heads[back]);
    assert_eq!(record.sequence.chars().nth(5), Some(' '));
    assert_eq!((top[5], top[6]), (5, 5), "head {back}: {top:?}");
    let (ln, dropout) = (run("layernorm"), run("dropout"));
    assert!(
        dropout.val_loss - dropout.train_loss < ln.val_loss - ln.train_loss,
        "dropout narrows the train/val gap"
    );
    let fresh = crate::tempfile::tempdir().unwrap();
    render(&record, fresh.path()).unwrap();
    assert!(crate::common::assert_files_current("ladder", fresh.path()) >= 4);
}

// Residual connections carry the gradient down: in a stack of 12 blocks at
// initialisation, the embedding's gradient is orders of magnitude larger with
// the residual pathway than without it (same weights, same batch); LayerNorm
// keeps every block's input at unit spread.
#[test]
fn residuals_carry_the_gradient_and_layernorm_the_scale() {
    use charlm::models::gpt::{DeepBlocks, DeepLayerNorm};
    let dev = Cpu::default();
    let batch = corpus()
        .get_batch(Split::Train, 32, 8, &mut rng(11))
        .unwrap();
    let (x, y) = batch_tensors(&dev, &batch).unwrap();
    let plain = DeepBlocks::new(&dev, 65, &mut rng(12)).unwrap();
    let with = plain.depth_profile(x.clone(), &y, true).unwrap();
    let without = plain.depth_profile(x.clone(), &y, false).unwrap();
    println!("with {with:?}\nwithout {without:?}");
    assert_eq!(with.grad_norms.len(), 14);
    assert!(
        with.grad_norms[0] > 1e3 * without.grad_norms[0],
        "{with:?} {without:?}"
    );
    let ln = DeepLayerNorm::new(&dev, 65, &mut rng(12)).unwrap();
    let normed = ln.depth_profile(x, &y, true).unwrap();
    println!("layernorm {normed:?}");
    assert!(
        normed.input_stds.iter().all(|s| (s - 1.0).abs() < 1e-3),
        "{normed:?}"
    );
}
