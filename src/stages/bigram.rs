//! Chapter 3: the bigram language model on tiny Shakespeare, trained with
//! AdamW (what `charlm bigram` runs with the lecture's model), the chapter's
//! figure and numbers, the check against bigram.py's first 100 steps, and
//! the training-step workload.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dfdx::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Deserialize;

use super::{json, shown, BookNumbers, Progress, Stage, StageError, Tour};
use crate::bench::{Iteration, Workload};
use crate::data::text::{batch_at, block_examples, Corpus, Split, TextError, TokenBatch};
use crate::data::DataSets;
use crate::models::bigram::BigramLanguageModel;
use crate::models::lm::{batch_tensors, check_vocab};
use crate::models::LanguageModel;
use crate::ops::Kernels;
use crate::parity::{compare, ref_file, Comparison, RefError};
use crate::plot::{Figure, TrainCurves};
use crate::torch_rng::{softmax, TorchGenerator};
use crate::train::session::{self, Session, Settings};
use crate::train::{TrainConfig, Watch, BIGRAM_PY};

/// The stage's id: its book files are in `chapters/figures/bigram_embedding`.
pub const ID: &str = "bigram_embedding";

/// The vocabulary size of tiny Shakespeare.
pub const SHAKESPEARE_VOCAB: usize = 65;

/// The last validation estimate the lecture's `bigram.py` prints, at step
/// 2,700 of its 3,000 (it estimates every 300 steps, before each step):
/// `step 2700: train loss 2.4738, val loss 2.4911`, ng-video-lecture's
/// published output, which PyTorch 2.15 on a CPU prints again.
pub const BIGRAM_PY_VAL: f32 = 2.4911;

/// A finished session of the bigram language model.
pub type BigramRun<D> = Session<D, BigramLanguageModel<f32, D>>;

/// Chapter 3 in the registry.
pub struct Bigram;

impl Stage for Bigram {
    fn id(&self) -> &'static str {
        ID
    }

    fn heading(&self) -> &'static str {
        "Chapter 3: the bigram language model (tiny Shakespeare)"
    }

    fn tour(&self, data: &DataSets, out: &Path, progress: Progress) -> Result<Tour, StageError> {
        let mut watch = progress(
            "the bigram language model, bigram.py's settings",
            Settings::default().config.max_iters,
        );
        let run = run_bigram(&Cpu::default(), data.text()?, &mut *watch)?;
        Ok(Tour {
            summary: run.summary(),
            report: json(&run.report),
            figures: save_figures(&run, &out.join(ID), &["svg", "png"])?,
            failure: None,
        })
    }

    fn write_book_files(&self, data: &DataSets, dir: &Path) -> Result<(), StageError> {
        write_book_files(data.text()?, dir)
    }

    fn parity(&self, data: &DataSets) -> Result<Vec<Comparison>, StageError> {
        check_embedding(
            &Cpu::default(),
            data.text()?,
            &EmbeddingInputs::reference()?,
        )
    }

    fn workloads(&self) -> Vec<Workload> {
        vec![Workload {
            name: "bigram-step",
            about: "chapter 3: one AdamW training step at bigram.py's settings (batch 32, block 8): draw a batch, forward, backward, update",
            prepare: prepare_step,
        }]
    }
}

/// Trains the bigram language model on `text` with the lecture's settings:
/// the whole of chapter 3.
pub fn run_bigram<D: Kernels>(
    dev: &D,
    text: &str,
    watch: &mut (impl Watch + ?Sized),
) -> Result<BigramRun<D>, StageError> {
    Ok(session::run(dev, text, &Settings::default(), None, watch)?)
}

/// The train/val loss curves of a run.
pub fn save_figures<D: Kernels, M: LanguageModel<D>>(
    run: &Session<D, M>,
    dir: &Path,
    extensions: &[&str],
) -> Result<Vec<PathBuf>, StageError> {
    let mut written = Vec::new();
    for ext in extensions {
        let path = dir.join(format!("loss.{ext}"));
        TrainCurves {
            title: "bigram language model on tiny Shakespeare: AdamW, lr 1e-2",
            step_losses: &run.train.history.step_losses,
            runs: vec![("bigram".to_string(), &run.train.history.evals)],
        }
        .save(&path)?;
        written.push(path);
    }
    Ok(written)
}

/// One training step of the `bigram-step` workload, at bigram.py's settings.
fn prepare_step(data: &DataSets) -> Result<Iteration<'_>, StageError> {
    crate::bench::training_step::<BigramLanguageModel<f32, Cpu>>(data, TrainConfig::default())
}

/// Writes chapter 3's figure and quoted numbers into `dir`: the tokenizer,
/// the split, one block's examples, one batch, and the default training run.
fn write_book_files(text: &str, dir: &Path) -> Result<(), StageError> {
    let run = run_bigram(&Cpu::default(), text, &mut ())?;
    let (c, r) = (&run.corpus, &run.report);
    let mut numbers = BookNumbers::default();
    let mut put = |name: &str, value: String| numbers.put(name, value);
    put("text_chars", text.chars().count().to_string());
    let head: String = text.chars().take(250).collect();
    put("text_head", format!("```text\n{}\n```", head.trim_end()));
    put("vocab_size", c.vocab.len().to_string());
    let chars: String = c.vocab.chars().iter().collect();
    put("vocab", format!("`{}`", shown(&chars)));
    let hii = c.vocab.encode("hii there").map_err(TextError::from)?;
    put("hii_ids", format!("{hii:?}"));
    put("hii_decoded", format!("\"{}\"", c.vocab.decode(&hii)));
    put("train_tokens", c.train.len().to_string());
    put("val_tokens", c.val.len().to_string());
    let block = &c.train[..9];
    put("first_block", format!("{block:?}"));
    let mut examples = String::from("```text\n");
    for (context, target) in block_examples(block) {
        let _ = writeln!(
            examples,
            "when input is {context:?} the target: {target}   \"{}\" -> \"{}\"",
            shown(&c.vocab.decode(context)),
            shown(&c.vocab.decode(&[target]))
        );
    }
    examples.push_str("```");
    put("block_examples", examples);
    let batch = c.get_batch(Split::Train, 4, 8, &mut StdRng::seed_from_u64(1337))?;
    put("batch", batch_block(&batch, ["inputs x", "targets y"]));
    put(
        "uniform_loss",
        format!("{:.4}", (c.vocab.len() as f32).ln()),
    );
    put("initial_loss", format!("{:.4}", r.initial_loss));
    let (xb, loss) = video_start(c)?;
    put("torch_xb0", format!("{:?}", &xb.x[..xb.block_size]));
    put(
        "torch_xb0_text",
        format!("{:?}", c.vocab.decode(&xb.x[..xb.block_size])),
    );
    put("torch_initial_loss", format!("{loss:.4}"));
    put("torch_batch", batch_block(&xb, ["inputs", "targets"]));
    put("torch_sample_tokens", VIDEO_SAMPLE_TOKENS.to_string());
    put(
        "torch_untrained_sample",
        format!("```text\n{}\n```", video_sample(c, VIDEO_SAMPLE_TOKENS)?),
    );
    let (loss, text) = video_training(c, &VIDEO_TRAIN, VIDEO_TRAINED_TOKENS)?;
    put("torch_trained_loss", format!("{loss:.4}"));
    put("torch_trained_sample", format!("```text\n{text}\n```"));
    put("video_train_steps", VIDEO_TRAIN.max_iters.to_string());
    put("video_train_batch", VIDEO_TRAIN.batch_size.to_string());
    put("video_train_lr", format!("{:e}", VIDEO_TRAIN.learning_rate));
    put("video_trained_tokens", VIDEO_TRAINED_TOKENS.to_string());
    let longer = TrainConfig {
        max_iters: VIDEO_LONGER_STEPS,
        ..VIDEO_TRAIN
    };
    let (loss, text) = video_training(c, &longer, VIDEO_TRAINED_TOKENS)?;
    put("video_longer_steps", VIDEO_LONGER_STEPS.to_string());
    put("torch_longer_loss", format!("{loss:.4}"));
    put(
        "torch_longer_sample",
        format!("```text\n{}\n```", text.trim()),
    );
    let mut table = String::from("| step | train loss | val loss |\n|---:|---:|---:|\n");
    for e in &run.train.history.evals {
        let _ = writeln!(table, "| {} | {:.4} | {:.4} |", e.step, e.train, e.val);
    }
    put("evals", table.trim_end().to_string());
    put("train_loss", format!("{:.4}", r.train_loss));
    put("val_loss", format!("{:.4}", r.val_loss));
    put("steps", r.steps.to_string());
    put("lecture_val", format!("{BIGRAM_PY_VAL:.4}"));
    // bigram.py's last estimate comes before its last step: the same row here
    let cfg = &run.config;
    let last = (cfg.max_iters - 1) / cfg.eval_interval * cfg.eval_interval;
    put("lecture_last_step", last.to_string());
    if let Some(e) = run.train.history.evals.iter().find(|e| e.step == last) {
        put("val_at_lecture_last", format!("{:.4}", e.val));
    }
    let untrained: String = r
        .untrained_sample
        .iter()
        .flat_map(|s| s.chars())
        .take(300)
        .collect();
    put(
        "untrained_sample",
        format!("```text\n{}\n```", untrained.trim()),
    );
    put("sample", format!("```text\n{}\n```", r.sample.trim()));
    save_figures(&run, dir, &["svg"])?;
    numbers.write(dir)
}

/// A batch's inputs and targets as the book prints them: each named with its
/// (B, T) shape, one row of token ids a line, in a text block.
fn batch_block(batch: &TokenBatch, [x, y]: [&str; 2]) -> String {
    let mut b = String::from("```text\n");
    for (name, rows) in [(x, &batch.x), (y, &batch.y)] {
        let _ = writeln!(b, "{name}: ({}, {})", batch.batch_size, batch.block_size);
        for row in rows.chunks(batch.block_size) {
            let _ = writeln!(b, "{row:?}");
        }
    }
    b.push_str("```");
    b
}

#[derive(Deserialize)]
struct EmbeddingRef {
    batch_size: usize,
    block_size: usize,
    learning_rate: f32,
    weight_decay: f32,
    step_losses: Vec<f32>,
    final_loss: f32,
    final_table: Vec<f32>,
}

/// The inputs of chapter 3's check: the initial table, and the offsets of
/// every training batch.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingInputs {
    /// The embedding table before training, row-major (65, 65).
    pub table: Vec<f32>,
    /// One row of batch offsets per step, (steps, batch_size).
    pub offsets: Vec<Vec<usize>>,
}

impl EmbeddingInputs {
    /// What PyTorch drew: `nn.Embedding(65, 65)` and bigram.py's batches,
    /// from `torch.manual_seed(1337)`.
    pub fn reference() -> Result<Self, RefError> {
        let r: EmbeddingRef = ref_file!("bigram_embedding.json").json()?;
        let file = ref_file!("bigram_embedding.safetensors");
        let inputs = file.tensors()?;
        let v = SHAKESPEARE_VOCAB;
        let steps = r.step_losses.len();
        let offsets = inputs.indices("offsets", &[steps, r.batch_size])?;
        Ok(Self {
            table: inputs.floats("token_embedding_table.weight", &[v, v])?,
            offsets: offsets
                .chunks(r.batch_size.max(1))
                .map(<[usize]>::to_vec)
                .collect(),
        })
    }
}

/// Chapter 3: from PyTorch's table, AdamW on the same batches as
/// bigram.py: every step's loss, the loss of the first batch after the last
/// step, and the final table.
pub fn check_embedding<D: Kernels>(
    dev: &D,
    text: &str,
    inputs: &EmbeddingInputs,
) -> Result<Vec<Comparison>, StageError> {
    const STAGE: &str = ID;
    let r: EmbeddingRef = ref_file!("bigram_embedding.json").json()?;
    let corpus = Corpus::new(text)?;
    check_vocab(SHAKESPEARE_VOCAB, &corpus)?;
    let mut model = BigramLanguageModel::from_table(dev, SHAKESPEARE_VOCAB, inputs.table.clone())?;
    let cfg = TrainConfig {
        batch_size: r.batch_size,
        block_size: r.block_size,
        learning_rate: r.learning_rate,
        weight_decay: r.weight_decay,
        ..TrainConfig::default()
    };
    let losses = crate::parity::replay(dev, &mut model, &corpus, &cfg, &inputs.offsets)?;
    let first = inputs
        .offsets
        .first()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let batch = batch_at(&corpus.train, Split::Train, first, cfg.block_size)?;
    let (x, y) = batch_tensors(dev, &batch)?; // (B, T), (B·T,)
    let final_loss = model.loss(x, &y)?.as_vec()[0];
    let steps = losses.len();
    let mut out = Vec::new();
    for k in [1, 10, steps] {
        let (torch, charlm) = (r.step_losses.get(k - 1), losses.get(k - 1));
        out.push(compare(
            STAGE,
            format!("loss of batch {k} (after {} AdamW steps)", k - 1),
            torch.copied().into_iter().collect(),
            charlm.copied().into_iter().collect(),
            1e-4,
        ));
    }
    out.push(compare(
        STAGE,
        format!("all {steps} batch losses"),
        r.step_losses,
        losses,
        1e-4,
    ));
    out.push(compare(
        STAGE,
        format!("loss of batch 1 after {steps} steps"),
        vec![r.final_loss],
        vec![final_loss],
        1e-4,
    ));
    let table = model.token_embedding_table.weight.as_vec();
    out.push(compare(
        STAGE,
        format!("the table after {steps} steps"),
        r.final_table,
        table,
        1e-4,
    ));
    Ok(out)
}

/// The video's first batch and its loss, on torch's generator replayed
/// (chapter 1's `TorchGenerator`), in the lecture notebook's order:
/// `torch.manual_seed(1337)`, a 4×8 training batch (`torch.randint` offsets),
/// `torch.manual_seed(1337)` again, then the model, whose `nn.Embedding`
/// table is `randn(65, 65)`.
pub fn video_start(corpus: &Corpus) -> Result<(TokenBatch, f32), StageError> {
    // ANCHOR: video_start
    let (b, t) = (4, 8);
    corpus.check_batches(b, t)?; // more tokens than the block, or a clear error
    let train = corpus.split(Split::Train);
    let mut g = TorchGenerator::new(1337);
    let offsets = (0..b)
        .map(|_| g.randint((train.len() - t) as u64).map(|i| i as usize)) // torch.randint(len(data) - block_size, (4,))
        .collect::<Result<Vec<usize>, _>>()?;
    let batch = batch_at(train, Split::Train, &offsets, t)?; // xb, yb: (4, 8)
    let v = corpus.vocab.len();
    let table = TorchGenerator::new(1337).randn(v * v); // nn.Embedding(65, 65)'s N(0, 1)
    let dev = Cpu::default();
    let model = BigramLanguageModel::from_table(&dev, v, table)?;
    let (x, y) = batch_tensors(&dev, &batch)?; // (4, 8), (32,)
    let loss = model.loss(x, &y)?.as_vec()[0]; // ()
    Ok((batch, loss))
    // ANCHOR_END: video_start
}

/// The characters the video's untrained model writes
/// (`max_new_tokens=100`).
pub const VIDEO_SAMPLE_TOKENS: usize = 100;

/// The video's first text: `max_new_tokens` characters from the untrained
/// model of [`video_start`], drawn by the lecture's `generate` on the same
/// torch generator, which the model's `randn` left where the video's was.
pub fn video_sample(corpus: &Corpus, max_new_tokens: usize) -> Result<String, StageError> {
    let v = corpus.vocab.len();
    let mut g = TorchGenerator::new(1337); // torch.manual_seed(1337)
    let dev = Cpu::default();
    let model = BigramLanguageModel::from_table(&dev, v, g.randn(v * v))?; // m = BigramLanguageModel(vocab_size)
    let idx = torch_generate(&dev, &model, &mut g, max_new_tokens)?;
    Ok(corpus.vocab.decode(&idx))
}

/// The lecture's `generate` from a newline, drawing on torch's generator `g`:
/// the token ids, the newline first.
fn torch_generate(
    dev: &Cpu,
    model: &BigramLanguageModel<f32, Cpu>,
    g: &mut TorchGenerator,
    max_new_tokens: usize,
) -> Result<Vec<usize>, StageError> {
    let v = model.vocab();
    // ANCHOR: video_sample
    let mut idx = vec![0]; // torch.zeros((1, 1)): a newline
    for _ in 0..max_new_tokens {
        let x = dev.tensor_from_vec(idx.clone(), (1, idx.len())); // (B, T) = (1, T)
        let logits = model.logits(x)?.as_vec(); // (1, T, V)
        let probs = softmax(&logits[logits.len() - v..]); // logits[:, -1, :], then F.softmax: (1, V)
        idx.push(g.multinomial_race(&probs)); // torch.multinomial(probs, num_samples=1), torch.cat
    }
    Ok(idx)
    // ANCHOR_END: video_sample
}

/// The video's first training, in its notebook: `batch_size = 32`,
/// `torch.optim.AdamW(m.parameters(), lr=1e-3)`, 100 steps.
pub const VIDEO_TRAIN: TrainConfig = TrainConfig {
    learning_rate: 1e-3,
    max_iters: 100,
    ..BIGRAM_PY
};

/// The steps the video's notebook suggests next ("increase number of steps
/// for good results"): the video runs its cell again for 10,000.
pub const VIDEO_LONGER_STEPS: usize = 10_000;

/// The characters the video's model writes after its first training
/// (`max_new_tokens=500`).
pub const VIDEO_TRAINED_TOKENS: usize = 500;

/// The video's notebook after its untrained text, on the same torch
/// generator: `cfg.max_iters` AdamW steps, each on a batch that
/// `get_batch('train')` draws, then `max_new_tokens` characters. Returns the
/// loss the notebook prints (the last batch's, before the last update) and
/// the text. (The batches draw nothing else from the generator, so they are
/// drawn first, then trained on with the appendix's `parity::replay`.)
pub fn video_training(
    corpus: &Corpus,
    cfg: &TrainConfig,
    max_new_tokens: usize,
) -> Result<(f32, String), StageError> {
    let (v, t) = (corpus.vocab.len(), cfg.block_size);
    corpus.check_batches(cfg.batch_size, t)?;
    let mut g = TorchGenerator::new(1337);
    let dev = Cpu::default();
    let mut model = BigramLanguageModel::from_table(&dev, v, g.randn(v * v))?;
    torch_generate(&dev, &model, &mut g, VIDEO_SAMPLE_TOKENS)?; // the untrained text, as the video drew it
    let train = corpus.split(Split::Train);
    let offsets = (0..cfg.max_iters)
        .map(|_| {
            (0..cfg.batch_size)
                .map(|_| g.randint((train.len() - t) as u64).map(|i| i as usize))
                .collect::<Result<Vec<usize>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let losses = crate::parity::replay(&dev, &mut model, corpus, cfg, &offsets)?;
    let idx = torch_generate(&dev, &model, &mut g, max_new_tokens)?;
    let last = losses.last().copied().unwrap_or(f32::NAN);
    Ok((last, corpus.vocab.decode(&idx)))
}
