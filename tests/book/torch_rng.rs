//! `TorchGenerator` against torch's CPU streams: the values the issue and
//! the video quote, and values torch 2.x printed for the same seeds
//! (`torch.rand`, `torch.randn`, `torch.randint`, float64 `torch.rand`).

use charlm::models::bigram_counts::BigramCounts;
use charlm::stages::onehot::{run_onehot, OneHotSettings};
use charlm::torch_rng::{RngKind, TorchGenerator};
use dfdx::prelude::Cpu;

use crate::common::words;

const SEED: u64 = 2_147_483_647;

#[test]
fn rand_is_torchs_float32_stream() {
    let mut g = TorchGenerator::new(SEED);
    // torch.rand(3, generator=torch.Generator().manual_seed(2147483647))
    assert_eq!(g.rand(3), [0.708_128_87, 0.354_239_1, 0.105_432_33]);
}

#[test]
fn randn_is_torchs_including_the_redrawn_tail() {
    let w = TorchGenerator::new(SEED).randn(27 * 27); // torch.randn((27, 27))
    let torch_head = [1.567_362, -0.237_292_3, -0.027_384_605, -1.100_779_4];
    let torch_tail = [1.340_464_2, -0.217_462_99, 0.862_728_6]; // the last 16 are drawn twice
    for (a, b) in w
        .iter()
        .zip(&torch_head)
        .chain(w[w.len() - 3..].iter().zip(&torch_tail))
    {
        assert!((a - b).abs() < 1e-5, "{a} vs torch's {b}");
    }
    // fewer than 16: one double-precision pair at a time (torch.randn(5))
    let small = TorchGenerator::new(SEED).randn(5);
    let torch_small = [
        -0.980_007_35,
        -1.657_847_9,
        -0.057_166_23,
        -0.340_854_1,
        2.099_155_2,
    ];
    for (a, b) in small.iter().zip(&torch_small) {
        assert!((a - b).abs() < 1e-6, "{a} vs torch's {b}");
    }
    let moments = (
        w.iter().sum::<f32>() / 729.0,
        w.iter().map(|x| x * x).sum::<f32>() / 729.0,
    );
    assert!(
        moments.0.abs() < 0.1 && (moments.1 - 1.0).abs() < 0.15,
        "{moments:?}"
    );
}

#[test]
fn randint_and_float64_uniforms_are_torchs() {
    let mut g = TorchGenerator::new(SEED);
    let ints: Vec<u64> = (0..5).map(|_| g.randint(10).unwrap()).collect(); // torch.randint(0, 10, (5,))
    assert_eq!(ints, [1, 4, 9, 2, 3]);
    // then torch.rand(2, dtype=torch.float64): two draws each
    assert_eq!(
        [g.uniform_f64(), g.uniform_f64()],
        [0.718_983_156_387_222_9, 0.909_809_408_724_361_9]
    );
    let mut g = TorchGenerator::new(1337); // chapter 3's batch offsets
    let ix: Vec<u64> = (0..4).map(|_| g.randint(1_003_854 - 8).unwrap()).collect();
    assert_eq!(ix, [76049, 234_249, 934_904, 560_986]);
    // an empty range, or one wider than the 32-bit draw, is an error, not a panic
    let mut g = TorchGenerator::new(1);
    assert!(g.randint(0).is_err());
    assert!(g.randint(1 << 32).is_err());
    assert_eq!(g.randint(1), Ok(0));
    // chapter 3's first batch needs more tokens than its block of 8
    let tiny = charlm::data::text::Corpus::new("abcdefgh").unwrap();
    assert!(charlm::stages::bigram::video_start(&tiny).is_err());
}

#[test]
fn the_counting_model_on_torchs_generator_samples_the_videos_names() {
    let model = BigramCounts::from_words(words())
        .unwrap()
        .probabilities(1.0)
        .unwrap();
    let names = model.sample_names_torch(&mut TorchGenerator::new(SEED), 5);
    assert_eq!(
        names,
        ["mor", "axx", "minaymoryles", "kondlaisah", "anchshizarie"]
    );
    let other = model.sample_names_torch(&mut TorchGenerator::new(SEED + 1), 5);
    assert_ne!(names, other);
}

// Chapter 2 from the video's W: its loss goes 3.7686 -> 2.4900 after the
// lecture's 100 updates of lr 50 (its cell prints the loss before each), and its samples are nearly chapter 1's.
#[test]
fn the_one_hot_net_from_torchs_w_follows_the_videos_losses() {
    let settings = OneHotSettings {
        rng: RngKind::Torch,
        samples: 5,
        ..OneHotSettings::default()
    };
    let run = run_onehot(&Cpu::default(), words(), &settings, |_, _| {}).unwrap();
    let r = &run.report;
    assert!((r.initial_loss - 3.7686).abs() < 1e-4, "{}", r.initial_loss);
    assert!((r.loss - 2.4900).abs() < 1e-4, "{}", r.loss);
    assert_eq!(r.rng, "torch");
    // chapter 2's claim: the first three names are chapter 1's, the last two
    // differ by one letter
    let counts = ["mor", "axx", "minaymoryles", "kondlaisah", "anchshizarie"];
    assert_eq!(&r.samples[..3], &counts[..3]);
    for (a, b) in r.samples[3..].iter().zip(&counts[3..]) {
        let differ = a.chars().zip(b.chars()).filter(|(x, y)| x != y).count();
        assert!(a.len() == b.len() && differ == 1, "{a} vs {b}");
    }
    let chacha = run_onehot(
        &Cpu::default(),
        words(),
        &OneHotSettings::default(),
        |_, _| {},
    )
    .unwrap();
    assert!(
        (chacha.report.initial_loss - r.initial_loss).abs() > 1e-3,
        "another W"
    );
}

// Chapter 2's first descent, on "emma" alone from the video's W: the
// video's 3.7693 before any update, falling at every update of lr 0.1, to
// the 3.6892 the lecture notebook prints after its fourth.
#[test]
fn the_first_descent_on_emma_lowers_the_videos_loss() {
    use charlm::stages::onehot::{emma_descent, EMMA_LR, EMMA_UPDATES};
    assert_eq!((EMMA_UPDATES, EMMA_LR), (4, 0.1));
    let losses = emma_descent(words()).unwrap();
    assert_eq!(losses.len(), EMMA_UPDATES + 1);
    assert!((losses[0] - 3.7693).abs() < 1e-4, "{losses:?}");
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
    assert!(
        (losses[EMMA_UPDATES] - 3.6891887).abs() < 1e-4,
        "{losses:?}"
    );
}

// Chapter 3 in the lecture notebook's order: seed 1337, a 4×8 batch, seed
// 1337 again, the model: the video's first row and loss.
#[test]
fn the_bigram_lm_from_torchs_generator_starts_where_the_video_does() {
    use charlm::stages::bigram::video_start;
    let (xb, loss) = video_start(crate::common::corpus()).unwrap();
    assert_eq!(&xb.x[..8], [24, 43, 58, 5, 57, 1, 46, 43]);
    assert_eq!(crate::common::corpus().vocab.decode(&xb.x[..8]), "Let's he");
    assert!((loss - 4.8786).abs() < 1e-4, "{loss}");
    // the whole batch, as the video prints xb and yb
    let xb_video = [
        [24, 43, 58, 5, 57, 1, 46, 43],
        [44, 53, 56, 1, 58, 46, 39, 58],
        [52, 58, 1, 58, 46, 39, 58, 1],
        [25, 17, 27, 10, 0, 21, 1, 54],
    ];
    let yb_video = [
        [43, 58, 5, 57, 1, 46, 43, 39],
        [53, 56, 1, 58, 46, 39, 58, 1],
        [58, 1, 58, 46, 39, 58, 1, 46],
        [17, 27, 10, 0, 21, 1, 54, 39],
    ];
    assert_eq!(xb.x, xb_video.concat());
    assert_eq!(xb.y, yb_video.concat());
}

// The untrained model's text, drawn as the video's `generate` draws it
// (softmax, then torch.multinomial's exponential race on the same
// generator): the video's 100 characters, every one.
#[test]
fn the_untrained_bigram_lm_writes_the_videos_text() {
    use charlm::stages::bigram::{video_sample, VIDEO_SAMPLE_TOKENS};
    let text = video_sample(crate::common::corpus(), VIDEO_SAMPLE_TOKENS).unwrap();
    assert_eq!(VIDEO_SAMPLE_TOKENS, 100);
    assert_eq!(
        text,
        "\nSKIcLT;AcELMoTbvZv C?nq-QE33:CJqkOKH-q;:la!oiywkHjgChzbQ?u!3bLIgwevmyFJGUGp\n\
         wnYWmnxKWWev-tDqXErVKLgJ"
    );
}

// The video's notebook then trains the same model with AdamW (lr 1e-3,
// batches of 32, 100 steps), prints the last batch's loss, 4.65630578994751,
// and writes 500 characters: charlm's replay gives both, the text character
// for character (gpt_dev.ipynb's saved outputs).
#[test]
fn the_videos_first_training_prints_its_loss_and_text() {
    use charlm::stages::bigram::{video_training, VIDEO_TRAIN, VIDEO_TRAINED_TOKENS};
    assert_eq!(
        (
            VIDEO_TRAIN.max_iters,
            VIDEO_TRAIN.batch_size,
            VIDEO_TRAINED_TOKENS
        ),
        (100, 32, 500)
    );
    assert_eq!(VIDEO_TRAIN.learning_rate, 1e-3);
    let (loss, text) =
        video_training(crate::common::corpus(), &VIDEO_TRAIN, VIDEO_TRAINED_TOKENS).unwrap();
    assert!((loss - 4.656_306).abs() < 1e-4, "{loss}");
    let video = "\noTo.JUZ!!zqe!\nxBP qbs$Gy'AcOmrLwwt\n\
        p$x;Seh-onQbfM?OjKbn'NwUAW -Np3fkz$FVwAUEa-wzWC -wQo-R!v -Mj?,SPiTyZ;o-opr$mOiPJEYD-CfigkzD3p3?zvS;ADz;.y?o,ivCuC'zqHxcVT cHA\n\
        rT'Fd,SBMZyOslg!NXeF$sBe,juUzLq?w-wzP-h\nERjjxlgJzPbHxf$ q,q,KCDCU fqBOQT\n\
        SV&CW:xSVwZv'DG'NSPypDhKStKzC -$hslxIVzoivnp ,ethA:NCCGoi\ntN!ljjP3fwJMwNelgUzzPGJlgihJ!d?q.d\n\
        pSPYgCuCJrIFtb\njQXg\npA.P LP,SPJi\n\
        DBcuBM:CixjJ$Jzkq,OLf3KLQLMGph$O 3DfiPHnXKuHMlyjxEiyZib3FaHV-oJa!zoc'XSP :CKGUhd?lgCOF$;;DTHZMlvvcmZAm;:iv'MMgO&Ywbc;BLCUd&vZINLIzkuTGZa\n\
        D.?";
    assert_eq!(text.chars().count(), 501);
    assert_eq!(text, video);
}

// The same notebook with 10,000 steps in the cell: PyTorch 2.15 prints
// 2.382369041442871 (parity/video_bigram.py); charlm's replay agrees.
#[test]
fn the_videos_cell_run_longer_matches_pytorch() {
    use charlm::stages::bigram::{video_training, VIDEO_LONGER_STEPS, VIDEO_TRAIN};
    use charlm::train::TrainConfig;
    let longer = TrainConfig {
        max_iters: VIDEO_LONGER_STEPS,
        ..VIDEO_TRAIN
    };
    let (loss, text) = video_training(crate::common::corpus(), &longer, 40).unwrap();
    assert!((loss - 2.382_369).abs() < 1e-4, "{loss}");
    assert!(
        text.starts_with("\nlso br. ave aviasurf my, yxMPZI ivee"),
        "{text}"
    );
}

// torch's exponential race: each category wins about p of the time, and a
// category of probability 0 never does.
#[test]
fn the_exponential_race_draws_each_category_with_its_probability() {
    let p = [0.5f32, 0.0, 0.3, 0.2];
    let mut g = TorchGenerator::new(42);
    let n = 20_000;
    let mut counts = [0usize; 4];
    for _ in 0..n {
        counts[g.multinomial_race(&p)] += 1;
    }
    assert_eq!(counts[1], 0);
    for (c, &pi) in counts.iter().zip(&p) {
        let f = *c as f32 / n as f32;
        assert!((f - pi).abs() < 0.015, "{counts:?}");
    }
    let s = charlm::torch_rng::softmax(&[1.0, 2.0, 3.0]);
    assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6 && s[2] > s[1] && s[1] > s[0]);
}

// Chapter 1's broadcasting pitfall: the right normalisation's rows sum to 1,
// the lecture's bug (the sums along the wrong axis) does not.
#[test]
fn normalising_along_the_wrong_axis_breaks_the_rows() {
    use charlm::models::bigram_counts::{normalise_mistake, normalise_rows};
    use dfdx::prelude::*;
    let dev = Cpu::default();
    let n = BigramCounts::from_words(words()).unwrap();
    let v = n.size();
    let nk: Vec<f32> = n.as_slice().iter().map(|&c| c as f32 + 1.0).collect();
    let sums = |p: Tensor<(usize, usize), f32, Cpu>| p.sum::<(usize,), Axis<1>>().as_vec();
    let right = sums(normalise_rows(dev.tensor_from_vec(nk.clone(), (v, v))));
    assert!(right.iter().all(|s| (s - 1.0).abs() < 1e-5), "{right:?}");
    let wrong = sums(normalise_mistake(dev.tensor_from_vec(nk.clone(), (v, v))));
    assert!(
        wrong.iter().filter(|s| (*s - 1.0).abs() > 0.1).count() > v / 2,
        "{wrong:?}"
    );
    // cell (i, j) of the mistake is N[i][j] / (row j's sum)
    let row_sum = |j: usize| nk[j * v..(j + 1) * v].iter().sum::<f32>();
    let p = normalise_mistake(dev.tensor_from_vec(nk.clone(), (v, v))).as_vec();
    assert!((p[v + 2] - nk[v + 2] / row_sum(2)).abs() < 1e-6);
}

// nn.Linear(32, 16, bias=False)'s weight after torch.manual_seed(1337) and
// torch.randn(4, 8, 32): the first values PyTorch 2 gives.
#[test]
fn linear_weight_is_torchs_kaiming_uniform() {
    let mut g = TorchGenerator::new(1337);
    g.randn(4 * 8 * 32);
    let w = g.linear_weight(16, 32);
    assert_eq!(w.len(), 16 * 32);
    let bound = 1.0 / 32f32.sqrt();
    assert!(w.iter().all(|v| v.abs() <= bound));
    // bit for bit: torch's float32 values, printed with all their digits
    let torch = [
        -0.068_099_38_f32,
        -0.098_643_16,
        -0.173_487_02,
        -0.163_521_3,
    ];
    assert_eq!(w[..4], torch, "{:?}", &w[..4]);
    assert_eq!(w[511], -0.076_555_43_f32);
}
