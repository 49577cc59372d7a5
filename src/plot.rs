//! Figures, drawn with plotters.
//!
//! Introduced in chapter 1. Each figure is a small struct implementing
//! [`Figure`], whose `draw` is generic over plotters' [`DrawingBackend`]: the
//! same code writes SVG files for the book, PNG files from the command line,
//! and inline images in the notebooks ([`Figure::to_svg`] returns an [`Svg`]
//! that evcxr displays as an image; `plotters::evcxr::evcxr_figure` works too).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::fsutil;
use crate::models::bigram_counts::{BigramCounts, BigramModel};
use crate::train::Eval;

/// The font every figure uses, shipped with the crate (DejaVu Sans Mono).
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSansMono.ttf");

/// Errors while drawing or saving a figure.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// plotters reported a drawing error.
    #[error("drawing failed: {0}")]
    Draw(String),
    /// Writing the file failed.
    #[error(transparent)]
    Io(#[from] fsutil::FsError),
    /// The file name does not end in a known image format.
    #[error("{0}: unknown figure format; the file name must end in .svg or .png")]
    Format(std::path::PathBuf),
}

fn draw_err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

/// Registers the bundled font under the family names the figures use.
/// Every `draw` calls it first; cheap after the first time.
pub fn ensure_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for family in ["sans-serif", "monospace", "serif"] {
            plotters::style::register_font(family, FontStyle::Normal, FONT)
                .unwrap_or_else(|_| panic!("the bundled font is a valid TrueType font"));
        }
    });
}

/// A figure that can be drawn on any plotters backend.
pub trait Figure {
    /// The natural size in pixels (width, height).
    fn size(&self) -> (u32, u32);

    /// Draws the figure onto `root`, which has [`Figure::size`].
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError>;

    /// Renders the figure as an SVG document.
    fn to_svg(&self) -> Result<Svg, PlotError> {
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, self.size()).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(draw_err)?;
        }
        Ok(Svg(out))
    }

    /// Saves the figure as SVG or PNG, chosen by the file extension, through
    /// a temporary file so an existing figure is never left half-written.
    fn save(&self, path: &Path) -> Result<(), PlotError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("svg") => Ok(fsutil::write_atomic(path, self.to_svg()?.0.as_bytes())?),
            Some("png") => {
                let mut drawn = Ok(());
                let written = fsutil::write_atomic_with(path, |tmp| {
                    let root = BitMapBackend::new(tmp, self.size()).into_drawing_area();
                    drawn = self
                        .draw(&root)
                        .and_then(|()| root.present().map_err(draw_err));
                    match &drawn {
                        Ok(()) => Ok(()),
                        Err(e) => Err(std::io::Error::other(e.to_string())),
                    }
                });
                drawn?;
                Ok(written?)
            }
            _ => Err(PlotError::Format(path.to_path_buf())),
        }
    }
}

/// An SVG document. In an evcxr notebook, a value of this type as the last
/// expression of a cell is displayed as an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Svg(pub String);

impl Svg {
    /// Called by evcxr to display the value: emits the SVG as `image/svg+xml`.
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT image/svg+xml\n{}\nEVCXR_END_CONTENT",
            self.0
        );
    }
}

/// Linear blend from white-ish to dark blue (matplotlib's "Blues" ends).
fn blues(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(lerp(247.0, 8.0), lerp(251.0, 48.0), lerp(255.0, 107.0))
}

// ANCHOR: heatmap
/// The lecture's annotated heatmap of the count table: one cell per bigram,
/// shaded by its count, showing the bigram ("an") and the count (5438).
pub struct CountHeatmap<'a>(pub &'a BigramCounts);

impl Figure for CountHeatmap<'_> {
    fn size(&self) -> (u32, u32) {
        let side = self.0.size() as u32 * CELL + 2 * MARGIN;
        (side, side)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        draw_counts(root, self.0, self.0.size(), CELL)
    }
}

/// The top-left k × k cells of `n`'s heatmap, each `cell` pixels wide.
fn draw_counts<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    n: &BigramCounts,
    k: usize,
    cell: u32,
) -> Result<(), PlotError> {
    ensure_fonts();
    root.fill(&WHITE).map_err(draw_err)?;
    let chars = n.vocab().chars();
    let max = n.max().max(1) as f64; // the shade of the whole table, even for a corner
    let font = ("monospace", cell as f64 * 0.3).into_font();
    let center = Pos::new(HPos::Center, VPos::Center);
    // Gray text as in the lecture, white on the darkest cells to stay legible.
    let on_light = font.clone().color(&RGBColor(100, 100, 100)).pos(center);
    let on_dark = font.color(&WHITE).pos(center);
    for i in 0..k {
        for j in 0..k {
            let (x, y) = (
                (MARGIN + j as u32 * cell) as i32,
                (MARGIN + i as u32 * cell) as i32,
            );
            let c = cell as i32;
            let t = n.get(i, j) as f64 / max;
            root.draw(&Rectangle::new([(x, y), (x + c, y + c)], blues(t).filled()))
                .map_err(draw_err)?;
            let centered = if t > 0.5 { &on_dark } else { &on_light };
            let label = format!("{}{}", chars[i], chars[j]);
            root.draw(&Text::new(label, (x + c / 2, y + c / 3), centered))
                .map_err(draw_err)?;
            let count = n.get(i, j).to_string();
            root.draw(&Text::new(count, (x + c / 2, y + 3 * c / 4), centered))
                .map_err(draw_err)?;
        }
    }
    Ok(())
}
// ANCHOR_END: heatmap

/// The heatmap's top-left corner, `k` characters a side, at a size the
/// book's page shows without shrinking it: the rows and columns of `.` and
/// the first letters.
pub struct CountHeatmapCorner<'a> {
    /// The table.
    pub counts: &'a BigramCounts,
    /// Rows and columns shown (at most the vocabulary).
    pub k: usize,
}

impl Figure for CountHeatmapCorner<'_> {
    fn size(&self) -> (u32, u32) {
        let side = self.k.min(self.counts.size()) as u32 * ZOOMED_CELL + 2 * MARGIN;
        (side, side)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let k = self.k.min(self.counts.size());
        draw_counts(root, self.counts, k, ZOOMED_CELL)
    }
}

/// Side of one cell of [`CountHeatmapCorner`], in pixels.
const ZOOMED_CELL: u32 = 72;

/// Side of one heatmap cell, in pixels.
const CELL: u32 = 44;
/// Blank border around the heatmap, in pixels.
const MARGIN: u32 = 8;

/// A bar chart of one row of `P`, e.g. row '.' (index 0): which character
/// starts a name.
pub struct RowBars<'a> {
    /// The model.
    pub model: &'a BigramModel,
    /// The row to draw.
    pub row: usize,
}

impl Figure for RowBars<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 420)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        ensure_fonts();
        root.fill(&WHITE).map_err(draw_err)?;
        let chars = self.model.vocab().chars();
        let row = self.model.row(self.row);
        let v = row.len();
        let top = row.iter().cloned().fold(0.0, f64::max) * 1.1;
        let caption = format!(
            "P[{:?}]: the next character after {:?}",
            chars[self.row], chars[self.row]
        );
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((0..v).into_segmented(), 0.0..top.max(1e-9))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(v)
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => {
                    chars.get(*i).map(|c| c.to_string()).unwrap_or_default()
                }
                _ => String::new(),
            })
            .y_desc("probability")
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(row.iter().enumerate().map(|(i, &p)| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), p),
                    ],
                    blues(0.75).filled(),
                );
                bar.set_margin(0, 0, 3, 3);
                bar
            }))
            .map_err(draw_err)?;
        Ok(())
    }
}

/// Loss curves: one line per named series, loss against step.
pub struct LossCurves<'a> {
    /// The caption.
    pub title: &'a str,
    /// (label, loss at each step) per curve.
    pub series: Vec<(String, &'a [f32])>,
}

impl Figure for LossCurves<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 480)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let series = self.series.iter().map(|(l, s)| (l.clone(), s.to_vec()));
        Lines {
            title: self.title,
            axes: ("step", "loss"),
            series: series.collect(),
        }
        .draw(root)
    }
}

/// A chart with steps across and loss up, as every loss figure draws it.
type LossChart<'a, DB> = ChartContext<
    'a,
    DB,
    plotters::coord::cartesian::Cartesian2d<
        plotters::coord::types::RangedCoordf32,
        plotters::coord::types::RangedCoordf32,
    >,
>;

/// The axes every loss figure shares: steps `0..=x_max` across, and up the
/// range of the finite `values`, padded by 5%.
fn loss_axes<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    x_max: f32,
    values: impl Iterator<Item = f32>,
) -> Result<LossChart<'a, DB>, PlotError> {
    axes(root, title, ("step", "loss"), x_max, values)
}

/// Lines over a whole-number axis (layers, say): one labelled line per
/// series, value `i` of a series drawn at `i`.
pub struct Lines<'a> {
    /// The caption.
    pub title: &'a str,
    /// What runs across and what runs up.
    pub axes: (&'a str, &'a str),
    /// (label, values) per line.
    pub series: Vec<(String, Vec<f32>)>,
}

impl Figure for Lines<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 480)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let n = self
            .series
            .iter()
            .map(|(_, s)| s.len())
            .max()
            .unwrap_or(1)
            .max(2);
        let values = self.series.iter().flat_map(|(_, s)| s.iter().copied());
        let mut chart = axes(root, self.title, self.axes, (n - 1) as f32, values)?;
        for (k, (label, s)) in self.series.iter().enumerate() {
            let points = s.iter().enumerate().map(|(i, &v)| (i as f32, v));
            line(&mut chart, points, Palette99::pick(k).to_rgba(), 2, label)?;
        }
        legend(&mut chart)
    }
}

/// Axes named `(across, up)`: `0..=x_max` across, and up the range of the
/// finite `values`, padded by 5%.
fn axes<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    (across, up): (&str, &str),
    x_max: f32,
    values: impl Iterator<Item = f32>,
) -> Result<LossChart<'a, DB>, PlotError> {
    ensure_fonts();
    root.fill(&WHITE).map_err(draw_err)?;
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let (lo, hi) = if hi > lo { (lo, hi) } else { (0.0, 1.0) };
    let pad = (hi - lo) * 0.05;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f32..x_max, (lo - pad)..(hi + pad))
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(across)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(up)
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(draw_err)?;
    Ok(chart)
}

/// One labelled line of a loss figure.
fn line<DB: DrawingBackend>(
    chart: &mut LossChart<'_, DB>,
    points: impl IntoIterator<Item = (f32, f32)>,
    color: RGBAColor,
    width: u32,
    label: &str,
) -> Result<(), PlotError> {
    chart
        .draw_series(LineSeries::new(points, color.stroke_width(width)))
        .map_err(draw_err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    Ok(())
}

/// The legend box of a loss figure.
fn legend<'a, DB: DrawingBackend + 'a>(chart: &mut LossChart<'a, DB>) -> Result<(), PlotError> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

/// A (V, V) probability table as a shaded grid with the vocabulary on both
/// axes: row = current character, column = next character.
pub struct ProbMatrix<'a> {
    /// The caption.
    pub title: String,
    /// Row-major (V, V) values.
    pub values: &'a [f64],
    /// The vocabulary, for the axis labels.
    pub chars: &'a [char],
}

impl Figure for ProbMatrix<'_> {
    fn size(&self) -> (u32, u32) {
        (640, 600)
    }

    /// The title on a line of its own, the characters along both edges in
    /// a font no larger than the title's, each cell shaded (with its value
    /// written in, up to 12 characters a side), and a colour bar on the
    /// right from 0 to the largest value.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        ensure_fonts();
        root.fill(&WHITE).map_err(draw_err)?;
        let v = self.chars.len();
        let (w, h) = root.dim_in_pixel();
        let bar = 90i32; // the colour bar and its labels
        let max = self.values.iter().cloned().fold(0.0, f64::max).max(1e-12);
        let (left, top) = (28i32, 64i32); // room for the row labels; the title, then the column labels
        let cell = ((w as i32 - left - bar - 8).min(h as i32 - top - 8) / v.max(1) as i32).max(1);
        let center = Pos::new(HPos::Center, VPos::Center);
        let title = ("sans-serif", 18).into_font().color(&BLACK).pos(center);
        root.draw(&Text::new(
            self.title.clone(),
            ((w as i32 - bar) / 2, 16),
            title,
        ))
        .map_err(draw_err)?;
        let size = (cell as f64 * 0.6).clamp(8.0, 16.0);
        let label = ("monospace", size)
            .into_font()
            .color(&RGBColor(80, 80, 80))
            .pos(center);
        let shown = |c: char| match c {
            '\n' => "\\n".to_string(),
            ' ' => "␣".to_string(),
            c => c.to_string(),
        };
        let value_font = ("sans-serif", (cell as f64 * 0.28).clamp(8.0, 14.0)).into_font();
        for i in 0..v {
            let y = top + i as i32 * cell;
            root.draw(&Text::new(
                shown(self.chars[i]),
                (left / 2, y + cell / 2),
                label.clone(),
            ))
            .map_err(draw_err)?;
            let x = left + i as i32 * cell + cell / 2;
            root.draw(&Text::new(
                shown(self.chars[i]),
                (x, top - 12),
                label.clone(),
            ))
            .map_err(draw_err)?;
            for j in 0..v {
                let x = left + j as i32 * cell;
                let t = self.values[i * v + j] / max;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    blues(t).filled(),
                ))
                .map_err(draw_err)?;
                if v <= 12 {
                    let ink = if t > 0.5 { WHITE } else { RGBColor(60, 60, 60) };
                    let font = value_font.clone().color(&ink).pos(center);
                    let text = format!("{:.2}", self.values[i * v + j]);
                    root.draw(&Text::new(text, (x + cell / 2, y + cell / 2), font))
                        .map_err(draw_err)?;
                }
            }
        }
        // the colour bar: max at the top, 0 at the bottom
        let (bx, height) = (left + v as i32 * cell + 24, v as i32 * cell);
        let steps = height.max(1);
        for k in 0..steps {
            let t = 1.0 - k as f64 / steps as f64;
            root.draw(&Rectangle::new(
                [(bx, top + k), (bx + 16, top + k + 1)],
                blues(t).filled(),
            ))
            .map_err(draw_err)?;
        }
        root.draw(&Rectangle::new(
            [(bx, top), (bx + 16, top + height)],
            BLACK.stroke_width(1),
        ))
        .map_err(draw_err)?;
        let tick = ("sans-serif", 13)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (text, y) in [(format!("{max:.2}"), top), ("0".to_string(), top + height)] {
            root.draw(&Text::new(text, (bx + 22, y), tick.clone()))
                .map_err(draw_err)?;
        }
        Ok(())
    }
}

/// Two figures side by side, each on half the width.
pub struct SideBySide<A, B>(pub A, pub B);

impl<A: Figure, B: Figure> Figure for SideBySide<A, B> {
    fn size(&self) -> (u32, u32) {
        let (a, b) = (self.0.size(), self.1.size());
        (2 * a.0.max(b.0), a.1.max(b.1))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let (w, _) = root.dim_in_pixel();
        let (left, right) = root.split_horizontally(w / 2);
        self.0.draw(&left)?;
        self.1.draw(&right)
    }
}

/// Training curves of language models (chapter 3 on): the loss of every
/// step's batch in light grey, and for each run its estimated train and
/// validation losses.
pub struct TrainCurves<'a> {
    /// The caption.
    pub title: &'a str,
    /// The loss of each step's batch (of the first run), drawn faintly.
    pub step_losses: &'a [f32],
    /// (label, estimates) per run.
    pub runs: Vec<(String, &'a [Eval])>,
}

impl Figure for TrainCurves<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 480)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let last_eval = self.runs.iter().flat_map(|(_, e)| e.iter().map(|e| e.step));
        let steps = last_eval
            .max()
            .unwrap_or(0)
            .max(self.step_losses.len())
            .max(1);
        let values = self
            .runs
            .iter()
            .flat_map(|(_, e)| e.iter().flat_map(|e| [e.train, e.val]))
            .chain(self.step_losses.iter().copied());
        let mut chart = loss_axes(root, self.title, steps as f32, values)?;
        if !self.step_losses.is_empty() {
            let points = self.step_losses.iter().enumerate();
            let points = points.map(|(i, &v)| ((i + 1) as f32, v));
            line(
                &mut chart,
                points,
                RGBColor(200, 200, 200).to_rgba(),
                1,
                "batch loss",
            )?;
        }
        for (k, (label, evals)) in self.runs.iter().enumerate() {
            let train = evals.iter().map(|e| (e.step as f32, e.train));
            let val = evals.iter().map(|e| (e.step as f32, e.val));
            let color = |j| Palette99::pick(2 * k + j).to_rgba();
            line(&mut chart, train, color(0), 2, &format!("{label}: train"))?;
            line(&mut chart, val, color(1), 2, &format!("{label}: val"))?;
        }
        legend(&mut chart)
    }
}
