//! Chapters 6 and 7 in the registry: the whole ladder with the lecture's
//! settings (what `charlm ladder` runs), the table of every rung's number
//! beside the lecture's, the four heads' attention weights, and the loss
//! curves of both chapters. Both chapters include this stage's files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use super::parity::{check_ladder, LadderInputs};
use super::{self as ladder, run_rung, rungs, RungRun};
use crate::bench::{Iteration, Workload};
use crate::data::text::{Corpus, Split};
use crate::data::DataSets;
use crate::models::gpt::{DeepBlocks, DeepLayerNorm, DepthProfile};
use crate::models::gpt::{LectureBlocks, LectureLayerNorm};
use crate::models::head::scaling_stats;
use crate::models::lm::batch_tensors;
use crate::models::multihead::LectureMultiHead;
use crate::models::Kind;
use crate::models::LanguageModel;
use crate::parity::Comparison;
use crate::plot::{Figure, Lines, ProbMatrix, SideBySide, TrainCurves};
use crate::presets;
use crate::stages::{
    as_printed, dev_err, json, label, BookNumbers, Progress, Stage, StageError, Tour,
};
use crate::train::session;
use crate::train::{split_loss, Eval, StopAt};

/// The stage's id: its book files are in `chapters/figures/ladder`.
pub const ID: &str = "ladder";

/// The validation sequence whose attention weights the chapter shows.
const SEQUENCE: std::ops::Range<usize> = 1000..1008;

/// Chapters 6 and 7 in the registry.
pub struct Ladder;

/// Chapter 7's measurements at initialisation, one batch through a stack of
/// 12 blocks: with the residual pathway, without it (same weights), and with
/// pre-norm LayerNorm.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Depth {
    /// Residual connections, no norm.
    pub residual: DepthProfile,
    /// The same weights, no residual connections.
    pub plain: DepthProfile,
    /// Residual connections and LayerNorm.
    pub layernorm: DepthProfile,
}

/// The batch [`measure_depth`] sends through the deep stacks: (blocks,
/// tokens each), as a ladder step's.
pub const DEPTH_BATCH: (usize, usize) = (32, 8);

/// Measures [`Depth`] on one training batch of [`DEPTH_BATCH`], seed 1337.
pub fn measure_depth(corpus: &Corpus) -> Result<Depth, StageError> {
    let dev = Cpu::default();
    let mut rng = ChaCha12Rng::seed_from_u64(1337);
    let (b, t) = DEPTH_BATCH;
    let batch = corpus.get_batch(Split::Train, b, t, &mut rng)?;
    let (x, y) = batch_tensors(&dev, &batch)?;
    let v = corpus.vocab.len();
    let blocks = DeepBlocks::new(&dev, v, &mut ChaCha12Rng::seed_from_u64(1337))?;
    let normed = DeepLayerNorm::new(&dev, v, &mut ChaCha12Rng::seed_from_u64(1337))?;
    Ok(Depth {
        residual: blocks.depth_profile(x.clone(), &y, true)?,
        plain: blocks.depth_profile(x.clone(), &y, false)?,
        layernorm: normed.depth_profile(x, &y, true)?,
    })
}

/// Every rung's run, and the multihead rung's four heads' attention weights
/// on [`SEQUENCE`] (with its characters).
pub struct LadderRuns {
    /// The rungs, bottom up.
    pub runs: Vec<RungRun>,
    /// Chapter 7's measurements of deep stacks.
    pub depth: Depth,
    /// (head, 8 × 8 weights) for each of the four heads.
    pub heads: Vec<Vec<f64>>,
    /// The sequence's characters.
    pub sequence: String,
    /// The blocks the whole validation split is scored in.
    pub val_blocks: usize,
}

/// The file in `chapters/figures/ladder` that keeps the ladder's runs.
pub const RECORD: &str = "runs.json";

/// One rung's run as the book keeps it: its key figures and every estimate,
/// at full precision.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RungRecord {
    /// The rung's name.
    pub preset: String,
    /// The model's parameters.
    pub params: usize,
    /// The last estimate of the training loss.
    pub train_loss: f32,
    /// The last estimate of the validation loss.
    pub val_loss: f32,
    /// The final model's loss on the whole validation split.
    pub whole_val_loss: f32,
    /// The lecture's validation loss, where it gives one.
    pub lecture_val: Option<f64>,
    /// Every estimate, step 0 first.
    pub evals: Vec<Eval>,
    /// What the trained model wrote.
    pub sample: String,
}

/// The ladder's runs, what chapters 6 and 7 draw their figures and numbers
/// from (`charlm figures --stage ladder` makes it, in about three minutes;
/// `--redraw` draws from it alone).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LadderRecord {
    /// The rungs, bottom up.
    pub runs: Vec<RungRecord>,
    /// Chapter 7's measurements of deep stacks.
    pub depth: Depth,
    /// (head, 8 × 8 weights) for each of the multihead rung's four heads.
    pub heads: Vec<Vec<f64>>,
    /// The sequence they look at.
    pub sequence: String,
    /// The blocks of `block_size` tokens the whole validation split is cut
    /// into for [`split_loss`] (each token scored once).
    pub val_blocks: usize,
}

impl LadderRecord {
    /// The record of `runs`.
    pub fn of(runs: &LadderRuns) -> Self {
        let rungs = runs.runs.iter().map(|r| RungRecord {
            preset: r.preset.to_string(),
            params: r.report.params,
            train_loss: r.report.train_loss,
            val_loss: r.report.val_loss,
            whole_val_loss: r.whole_val_loss,
            lecture_val: r.lecture_val,
            evals: r.evals.clone(),
            sample: r.report.sample.clone(),
        });
        Self {
            runs: rungs.collect(),
            depth: runs.depth.clone(),
            heads: runs.heads.clone(),
            sequence: runs.sequence.clone(),
            val_blocks: runs.val_blocks,
        }
    }
}

/// Reads the record in `dir`.
pub fn read_record(dir: &Path) -> Result<LadderRecord, StageError> {
    crate::stages::read_record(dir, RECORD, ID)
}

/// The first estimate after step 0 of every rung, and the one before it:
/// the start of each run replayed (seconds, where the ladder takes minutes).
pub fn replay_start(text: &str) -> Result<Vec<Vec<Eval>>, StageError> {
    let (dev, settings) = (Cpu::default(), ladder::settings());
    let stop = StopAt(settings.config.eval_interval + 1);
    rungs()
        .map(|rung| Ok(run_rung(&dev, rung, text, &settings, &mut { stop })?.evals))
        .collect()
}

/// Runs every rung of the ladder on `text` with the lecture's settings.
pub fn run_ladder(text: &str, progress: Progress) -> Result<LadderRuns, StageError> {
    run_ladder_with(text, &ladder::settings(), progress)
}

/// Steps of each rung in the tour's short ladder (the lecture's are 5,000:
/// `charlm ladder`, and the book's record).
pub const TOUR_STEPS: usize = 500;

/// Runs every rung of the ladder on `text` with `settings`.
pub fn run_ladder_with(
    text: &str,
    settings: &session::Settings,
    progress: Progress,
) -> Result<LadderRuns, StageError> {
    let names: Vec<&str> = rungs().map(|r| r.name).collect();
    run_rungs_with(text, settings, &names, progress)
}

/// Runs the rungs called `names` (in the ladder's order) on `text` with
/// `settings`, on the CPU: what `charlm ladder` runs, rung by rung. The
/// heads and their sequence are empty unless `names` has the multihead rung.
/// A notebook calls this (not the generic training code) to run the book's
/// full runs compiled with the library's optimisation.
pub fn run_rungs_with(
    text: &str,
    settings: &session::Settings,
    names: &[&str],
    progress: Progress,
) -> Result<LadderRuns, StageError> {
    if let Some(bad) = names.iter().find(|n| ladder::rung(n).is_none()) {
        let all: Vec<&str> = rungs().map(|r| r.name).collect();
        return Err(StageError::Record(format!(
            "no rung called {bad:?}: the ladder's rungs are {}",
            all.join(", ")
        )));
    }
    let dev = Cpu::default();
    let mut runs = Vec::new();
    let (mut heads, mut sequence) = (Vec::new(), String::new());
    for rung in rungs().filter(|r| names.contains(&r.name)) {
        let label = format!("rung {}: {}", rung.name, rung.about);
        let watch = &mut *progress(&label, settings.config.max_iters);
        if rung.kind != Kind::MultiHead {
            runs.push(run_rung(&dev, rung, text, settings, watch)?);
            continue;
        }
        // the multihead rung by its type, to look at its heads afterwards
        let s = session::run::<Cpu, LectureMultiHead<Cpu>>(&dev, text, settings, None, watch)?;
        let seq = s.corpus.val[SEQUENCE].to_vec();
        let x = dev
            .try_tensor_from_vec(seq.clone(), (1, 8))
            .map_err(dev_err)?; // (1, 8)
        let (_, wei) = s.model.forward_with_weights(x)?; // (4, 8, 8): head h of row 0 at h
        heads = wei
            .as_vec()
            .chunks(64)
            .map(|h| h.iter().map(|&w| w as f64).collect())
            .collect();
        sequence = s.corpus.vocab.decode(&seq);
        let whole_val_loss = split_loss(&dev, &s.model, &s.corpus, Split::Val, &s.config)?;
        runs.push(RungRun {
            preset: rung.name,
            lecture_val: rung.lecture_val,
            whole_val_loss,
            evals: s.train.history.evals.clone(),
            report: s.report,
        });
    }
    let corpus = Corpus::new(text)?;
    let t = settings.config.block_size.max(1);
    Ok(LadderRuns {
        runs,
        depth: measure_depth(&corpus)?,
        heads,
        sequence,
        val_blocks: corpus.split(Split::Val).len().saturating_sub(1) / t,
    })
}

impl Stage for Ladder {
    fn id(&self) -> &'static str {
        ID
    }

    fn heading(&self) -> &'static str {
        "Chapters 6 and 7: the ladder, from one head to a Transformer (tiny Shakespeare, short runs)"
    }

    fn tour(&self, data: &DataSets, out: &Path, progress: Progress) -> Result<Tour, StageError> {
        // Every rung, short; the book's full runs are its record (`charlm ladder` trains them again).
        let mut settings = ladder::settings();
        settings.config.max_iters = TOUR_STEPS;
        settings.config.eval_interval = TOUR_STEPS;
        let runs = run_ladder_with(data.text()?, &settings, progress)?;
        let figures = save_figures(&LadderRecord::of(&runs), &out.join(ID), &["svg", "png"])?;
        let rungs: Vec<serde_json::Value> = runs.runs.iter().map(json).collect();
        let note = format!(
            "(each rung {TOUR_STEPS} steps; the lecture's {}: `charlm ladder`, about 3 minutes, or chapter 7's table)\n",
            ladder::settings().config.max_iters
        );
        Ok(Tour {
            summary: ladder::table(&runs.runs) + &note,
            report: serde_json::json!({ "rungs": rungs }),
            figures,
            failure: None,
        })
    }

    /// Runs the whole ladder (about three minutes), then writes its record
    /// and the files drawn from it.
    fn write_book_files(&self, data: &DataSets, dir: &Path) -> Result<(), StageError> {
        let record = LadderRecord::of(&run_ladder(data.text()?, &|_, _| Box::new(()))?);
        crate::stages::write_record(dir, RECORD, &record)?;
        render(&record, dir)
    }

    fn redraw_book_files(&self, dir: &Path) -> Result<bool, StageError> {
        render(&read_record(dir)?, dir)?;
        Ok(true)
    }

    fn parity(&self, data: &DataSets) -> Result<Vec<Comparison>, StageError> {
        check_ladder(&Cpu::default(), data.text()?, &LadderInputs::reference()?)
    }

    fn workloads(&self) -> Vec<Workload> {
        vec![
            Workload {
                name: "multihead-step",
                about:
                    "chapter 6: one training step of the multihead rung (4 heads of 8, B=32, T=8)",
                prepare: prepare_step::<LectureMultiHead<Cpu>>,
            },
            Workload {
                name: "blocks-step",
                about: "chapter 7: one training step of the blocks rung (3 blocks, no norm)",
                prepare: prepare_step::<LectureBlocks<Cpu>>,
            },
            Workload {
                name: "layernorm-step",
                about: "chapter 7: one training step of the layernorm rung (3 pre-norm blocks)",
                prepare: prepare_step::<LectureLayerNorm<Cpu>>,
            },
        ]
    }
}

/// Writes the figures (SVG) and numbers chapters 6 and 7 quote, drawn from
/// the record of the ladder's runs alone.
pub fn render(runs: &LadderRecord, dir: &Path) -> Result<(), StageError> {
    let mut numbers = BookNumbers::default();
    let mut put = |name: &str, value: String| numbers.put(name, value);
    let mut table = String::from(
        "| rung | what it adds | parameters | train loss | val loss | whole val split | lecture's val loss |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for (r, rung) in runs.runs.iter().zip(rungs()) {
        let lecture = r
            .lecture_val
            .map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        let _ = writeln!(
            table,
            "| {} | {} | {} | {:.4} | {:.4} | {:.4} | {} |",
            r.preset, rung.about, r.params, r.train_loss, r.val_loss, r.whole_val_loss, lecture
        );
        let name = r.preset.replace('-', "_"); // an anchor's name: plain_blocks
        put(
            &format!("whole_val_{name}"),
            format!("{:.4}", r.whole_val_loss),
        );
        put(&format!("val_{name}"), format!("{:.4}", r.val_loss));
        put(&format!("train_{name}"), format!("{:.4}", r.train_loss));
        put(&format!("params_{name}"), r.params.to_string());
        put(&format!("lecture_val_{name}"), lecture.clone());
    }
    put("table", table.trim_end().to_string());
    // from the table's rounded numbers, so a reader's subtraction agrees
    let spread = runs
        .runs
        .iter()
        .map(|r| (as_printed(r.val_loss) - as_printed(r.whole_val_loss)).abs())
        .fold(0f64, f64::max);
    put("estimate_spread", format!("{spread:.4}"));
    // the settings every rung trains with, and the sizes chapters 6 and 7 quote
    let settings = ladder::settings();
    let cfg = settings.config;
    let sizes = presets::named("blocks").sizes();
    let (c, f) = (sizes.embd, sizes.ffwd);
    put(
        "settings",
        format!(
            "n_embd {c}, block {}, batch {}, {} AdamW steps at {:e}, the loss estimated every {} steps on {} batches, seed {}",
            cfg.block_size, cfg.batch_size, cfg.max_iters, cfg.learning_rate, cfg.eval_interval, cfg.eval_iters, settings.seed
        ),
    );
    put("steps", cfg.max_iters.to_string());
    put("n_embd", c.to_string());
    put("ffwd_hidden", f.to_string());
    put("ffwd_widths", format!("{c} → {f} → {c}"));
    put(
        "batch_tokens",
        (cfg.batch_size * cfg.block_size).to_string(),
    );
    let ln = presets::named("layernorm").sizes();
    put(
        "layernorm_shape",
        format!(
            "{} blocks of {} heads, n_embd {}, block {}",
            ln.layers, ln.heads, ln.embd, ln.block
        ),
    );
    let deep = DeepBlocks::<Cpu>::SIZES;
    put("depth_blocks", deep.layers.to_string());
    put(
        "depth_batch",
        format!("{} blocks of {} tokens", DEPTH_BATCH.0, DEPTH_BATCH.1),
    );
    // what "val loss" and "whole val split" score
    let (b, t, iters) = (cfg.batch_size, cfg.block_size, cfg.eval_iters);
    put("eval_iters", iters.to_string());
    put("eval_batch", b.to_string());
    put("eval_block", t.to_string());
    put("eval_tokens", (iters * b * t).to_string());
    // (not "val_blocks": that is the blocks rung's val loss)
    put("split_blocks", runs.val_blocks.to_string());
    put("split_tokens", (runs.val_blocks * t).to_string());
    heads_in_words(runs, &mut put);
    let last = runs.runs.last().map(|r| r.sample.trim().to_string());
    put(
        "sample",
        format!("```text\n{}\n```", last.unwrap_or_default()),
    );
    put(
        "sequence",
        format!("\"{}\"", runs.sequence.replace('\n', "\\n")),
    );
    // head_size^-0.5 against the lecture's first n_embd^-0.5, at init
    let s = scaling_stats(
        &Cpu::default(),
        &mut ChaCha12Rng::seed_from_u64(1337),
        (4, 8, 8),
    );
    put("var_raw_8", format!("{:.4}", s.raw));
    put("var_head_scale", format!("{:.4}", s.scaled));
    put("var_embd_scale", format!("{:.4}", s.raw / 32.0));
    let d = &runs.depth;
    let (with, without) = (d.residual.grad_norms[0], d.plain.grad_norms[0]);
    put("emb_grad_residual", format!("{with:.3e}"));
    put("emb_grad_plain", format!("{without:.3e}"));
    put("emb_grad_ratio", format!("{:.0e}", with / without));
    let last = |p: &DepthProfile| p.input_stds.last().copied().unwrap_or(f32::NAN);
    put("std_top_residual", format!("{:.3}", last(&d.residual)));
    put("std_top_plain", format!("{:.3}", last(&d.plain)));
    put("std_top_layernorm", format!("{:.3}", last(&d.layernorm)));
    save_figures(runs, dir, &["svg"])?;
    numbers.write(dir)
}

/// The heads figure in words, as chapter 5 reads its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadsReading {
    /// A markdown table: per head, how many of its seven rows put their
    /// largest weight on their own token, on the token before, or further
    /// back, and which token each row weights most.
    pub table: String,
    /// The head with the most rows looking back (the first, on a tie) ...
    pub back_head: usize,
    /// ... and how many of its seven rows do.
    pub back_rows: usize,
    /// The other heads' rows on their own token ...
    pub others_own: usize,
    /// ... of all their rows.
    pub others_rows: usize,
}

/// Reads the multihead rung's heads (`heads`, each 8 × 8 weights) on
/// `sequence`: what chapter 6 prints under its heads figure.
pub fn heads_reading(heads: &[Vec<f64>], sequence: &str) -> HeadsReading {
    let chars: Vec<char> = sequence.chars().map(label).collect();
    let mut table = String::from(
        "| head | rows on their own token | on the token before | further back | each row → the token it weights most |\n|---|---:|---:|---:|---|\n",
    );
    let mut back = Vec::new();
    for (h, wei) in heads.iter().enumerate() {
        let top = crate::stages::head::largest_weights(wei);
        let count = |d: &dyn Fn(usize) -> bool| (1..8).filter(|&i| d(i - top[i - 1])).count();
        let (own, before, further) = (count(&|d| d == 0), count(&|d| d == 1), count(&|d| d > 1));
        let rows: Vec<String> = (1..8)
            .map(|i| format!("{}→{}", chars[i], chars[top[i - 1]]))
            .collect();
        let _ = writeln!(
            table,
            "| {h} | {own} | {before} | {further} | `{}` |",
            rows.join(" ")
        );
        back.push((h, before + further, own));
    }
    // the head that looks back most (the first, on a tie), and the others
    let &(back_head, back_rows, _) = back
        .iter()
        .fold(&back[0], |b, x| if x.1 > b.1 { x } else { b });
    let others = back.iter().filter(|x| x.0 != back_head);
    let (others_own, others_rows) = others.fold((0, 0), |(o, a), x| (o + x.2, a + 7));
    HeadsReading {
        table: table.trim_end().to_string(),
        back_head,
        back_rows,
        others_own,
        others_rows,
    }
}

fn heads_in_words(runs: &LadderRecord, put: &mut impl FnMut(&str, String)) {
    let r = heads_reading(&runs.heads, &runs.sequence);
    put("heads_table", r.table);
    put("back_head", r.back_head.to_string());
    put("back_rows", r.back_rows.to_string());
    put("others_own", r.others_own.to_string());
    put("others_rows", r.others_rows.to_string());
}

/// Chapter 7's two depth figures: the gradient's norm at each layer of the
/// 12 blocks (log10, 1e-30 at most below), and the spread of each block's
/// attention input, with and without the pathway and with LayerNorm.
pub fn depth_figures(d: &Depth) -> [Lines<'static>; 2] {
    let log = |p: &DepthProfile| -> Vec<f32> {
        p.grad_norms.iter().map(|g| g.max(1e-30).log10()).collect()
    };
    let three = |f: &dyn Fn(&DepthProfile) -> Vec<f32>| {
        vec![
            ("with residual connections".to_string(), f(&d.residual)),
            ("without (same weights)".to_string(), f(&d.plain)),
            ("residual + LayerNorm".to_string(), f(&d.layernorm)),
        ]
    };
    [
        Lines {
            title: "12 blocks at init: the gradient at each layer (embedding, blocks, lm_head)",
            axes: ("layer", "log10 of the gradient's norm"),
            series: three(&log),
        },
        Lines {
            title: "12 blocks at init: spread of each block's attention input",
            axes: ("block", "standard deviation"),
            series: three(&|p| p.input_stds.clone()),
        },
    ]
}

/// The ladder's figures: the four heads' weights side by side, and the loss
/// curves of chapter 6's rungs and of chapter 7's.
pub fn save_figures(
    runs: &LadderRecord,
    dir: &Path,
    extensions: &[&str],
) -> Result<Vec<PathBuf>, StageError> {
    let chars: Vec<char> = runs.sequence.chars().map(label).collect();
    let head = |h: usize| ProbMatrix {
        title: format!("head {h}: row attends to column"),
        values: &runs.heads[h],
        chars: &chars,
    };
    let curves = |title, names: &[&str]| TrainCurves {
        title,
        step_losses: &[],
        runs: runs
            .runs
            .iter()
            .filter(|r| names.contains(&r.preset.as_str()))
            .map(|r| (r.preset.clone(), r.evals.as_slice()))
            .collect(),
    };
    let mut written = Vec::new();
    for ext in extensions {
        let heads = dir.join(format!("heads.{ext}"));
        if runs.heads.len() == 4 {
            SideBySide(SideBySide(head(0), head(1)), SideBySide(head(2), head(3))).save(&heads)?;
            written.push(heads);
        }
        let (six, seven) = (
            dir.join(format!("loss-ch6.{ext}")),
            dir.join(format!("loss-ch7.{ext}")),
        );
        curves(
            "one head, four heads, then a feed-forward layer (train and val estimates)",
            &["head", "multihead", "ffwd"],
        )
        .save(&six)?;
        curves(
            "blocks without, then with residual connections; 4× feed-forward, LayerNorm, dropout",
            &["plain-blocks", "residual", "blocks", "layernorm", "dropout"],
        )
        .save(&seven)?;
        written.extend([six, seven]);
        let (grads, stds) = (
            dir.join(format!("depth-grads.{ext}")),
            dir.join(format!("depth-inputs.{ext}")),
        );
        let [grads_figure, stds_figure] = depth_figures(&runs.depth);
        grads_figure.save(&grads)?;
        stds_figure.save(&stds)?;
        written.extend([grads, stds]);
    }
    Ok(written)
}

/// One training step of a ladder rung at the ladder's settings.
fn prepare_step<M: LanguageModel<Cpu> + 'static>(
    data: &DataSets,
) -> Result<Iteration<'_>, StageError> {
    crate::bench::training_step::<M>(data, crate::presets::LADDER)
}
