//! Progress for training, on stderr: a bar (step, loss, tokens/s, steps/s,
//! time left) and a line
//! per loss estimate when stderr is a terminal; when it is not (a log file, a
//! job scheduler), each loss estimate as one plain line, written as it
//! happens. Nothing under `--json`. A signal (see [`super::signals`]) stops
//! a run before its next step.

use std::io::{IsTerminal, Write as _};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use charlm::fsutil;
use charlm::train::{Eval, Event, TrainConfig, Watch};

use super::signals;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Show {
    /// A bar and loss lines (stderr is a terminal).
    Bar,
    /// Loss lines only, each written at once (stderr is a file or a pipe).
    Lines,
    /// Nothing (`--json`).
    Nothing,
}

/// A training run's [`Watch`]: progress, and the stop on a signal.
pub struct Bar {
    bar: ProgressBar,
    /// The run's last step: its `--steps`, counted from the start (a
    /// resumed run's own, from the settings resolved with its checkpoint).
    steps: usize,
    show: Show,
    /// Tokens per step (B·T), for tokens/s, where the run has them.
    tokens_per_step: Option<usize>,
    /// The first step seen in this process, and when (a resumed run starts late).
    start: Option<(usize, std::time::Instant)>,
    /// `--json-log`: a JSON line per estimate, and the first error writing it.
    log: Option<Log>,
    /// Whether each estimate gets a line (not in the tour, whose summaries
    /// print the losses).
    estimates: bool,
}

/// `--json-log PATH`: one JSON object per loss estimate, a line each,
/// flushed as it is written (for plotting while the run goes).
pub struct Log {
    path: std::path::PathBuf,
    /// Opened at the first estimate, when the run has passed every check: a
    /// refused run leaves an old log as it was.
    file: Option<std::io::BufWriter<std::fs::File>>,
    config: TrainConfig,
    started: std::time::Instant,
    error: Option<std::io::Error>,
}

impl Log {
    /// The log at `path` (checked up front with [`fsutil::check_output`]),
    /// for a run with `config`; the file is created, or emptied, at the
    /// run's first estimate.
    pub fn create(path: &std::path::Path, config: TrainConfig) -> Self {
        Self {
            path: path.to_path_buf(),
            file: None,
            config,
            started: std::time::Instant::now(),
            error: None,
        }
    }

    /// Writes one estimate's line: step, losses, the learning rate of the
    /// step that follows, tokens trained on, seconds since the run started.
    fn write(&mut self, e: Eval) {
        let c = &self.config;
        let line = serde_json::json!({
            "step": e.step,
            "train_loss": e.train,
            "val_loss": e.val,
            "lr": c.lr_at(e.step),
            "tokens": e.step * c.batch_size * c.block_size,
            "seconds": self.started.elapsed().as_secs_f64(),
        });
        let file = match self.file.take() {
            Some(file) => Ok(file),
            None => std::fs::File::create(&self.path).map(std::io::BufWriter::new),
        };
        let written = file.and_then(|mut file| {
            writeln!(file, "{line}").and_then(|()| file.flush())?;
            self.file = Some(file);
            Ok(())
        });
        if let (Err(e), None) = (written, &self.error) {
            self.error = Some(e);
        }
    }
}

impl Bar {
    /// Progress of a run of `steps` steps; none when `hidden`.
    pub fn new(steps: usize, hidden: bool) -> Self {
        let show = if hidden {
            Show::Nothing
        } else if std::io::stderr().is_terminal() {
            Show::Bar
        } else {
            Show::Lines
        };
        let target = match show {
            Show::Bar => ProgressDrawTarget::stderr(),
            _ => ProgressDrawTarget::hidden(),
        };
        let bar = ProgressBar::with_draw_target(Some(steps as u64), target);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} step {pos}/{len} {msg} ({per_sec}, {eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self {
            bar,
            steps,
            show,
            tokens_per_step: None,
            start: None,
            log: None,
            estimates: true,
        }
    }

    /// This bar, for one run of `charlm tour`: named by `label` in a line on
    /// stderr before the bar, without a line per estimate.
    pub fn labelled(mut self, label: &str) -> Self {
        if self.show != Show::Nothing {
            eprintln!("-- {label}: {} steps", self.steps);
        }
        self.estimates = false;
        self
    }

    /// This bar, also writing each estimate to `log`.
    pub fn with_log(mut self, log: Option<Log>) -> Self {
        self.log = log;
        self
    }

    /// The first error writing the log, as a one-line message.
    pub fn log_error(&self) -> Option<String> {
        let log = self.log.as_ref()?;
        let e = log.error.as_ref()?;
        Some(format!(
            "writing --json-log {} failed: {}",
            log.path.display(),
            fsutil::plain(e)
        ))
    }

    /// This bar, showing tokens/s for steps of `tokens` tokens (B·T).
    pub fn with_tokens(mut self, tokens: usize) -> Self {
        self.tokens_per_step = Some(tokens);
        self
    }
}

impl Watch for Bar {
    fn event(&mut self, event: Event) {
        match event {
            Event::Step { step, loss } => {
                if self.start.is_none() {
                    // The first step this process saw: a resumed run's jump
                    // from 0 to its checkpoint's step is not progress, and
                    // when the step began is unknown, so the rate (and the
                    // time left) is measured from here on.
                    self.bar.set_position(step as u64);
                    self.bar.reset_eta();
                }
                let (first, since) = *self.start.get_or_insert((step, std::time::Instant::now()));
                let message = match self.tokens_per_step {
                    Some(n) if step > first => {
                        let seconds = since.elapsed().as_secs_f64().max(1e-9);
                        let rate = ((step - first) * n) as f64 / seconds;
                        format!("loss {loss:.4}, {rate:.0} tokens/s")
                    }
                    _ => format!("loss {loss:.4}"),
                };
                self.bar.set_message(message);
                self.bar.set_position(step as u64);
            }
            Event::Eval(e) => {
                if let Some(log) = &mut self.log {
                    log.write(e);
                }
                let line = format!(
                    "step {:>6}/{}: train loss {:.4}, val loss {:.4}",
                    e.step, self.steps, e.train, e.val
                );
                match self.show {
                    _ if !self.estimates => {}
                    Show::Bar => self.bar.println(line),
                    // stderr is unbuffered: the line is out when this returns
                    Show::Lines => eprintln!("{line}"),
                    Show::Nothing => {}
                }
            }
        }
    }

    fn stop(&self, _next: usize) -> bool {
        let log_failed = self.log.as_ref().is_some_and(|l| l.error.is_some());
        signals::received().is_some() || log_failed
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps `first..first + n`, `pause` apart, then the bar's rate.
    fn rate_after(first: usize, n: usize, pause: std::time::Duration) -> f64 {
        let mut bar = Bar::new(first + 1000, true);
        for step in first..first + n {
            bar.event(Event::Step { step, loss: 1.0 });
            std::thread::sleep(pause);
        }
        bar.bar.per_sec()
    }

    #[test]
    fn a_resumed_run_counts_only_the_steps_it_made() {
        let pause = std::time::Duration::from_millis(20);
        // 20 ms a step is 50 steps/s; the jump to step 5000 must not count
        let resumed = rate_after(5000, 6, pause);
        assert!(
            resumed > 5.0 && resumed < 100.0,
            "a resumed run at 50 steps/s shows {resumed:.0} steps/s"
        );
        let fresh = rate_after(1, 6, pause);
        assert!(
            fresh > 5.0 && fresh < 100.0,
            "a fresh run shows {fresh:.0} steps/s"
        );
    }
}
