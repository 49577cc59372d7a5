//! Progress bars for training, on stderr: step, loss, steps/s, and a line per
//! loss estimate. Hidden under `--json`; indicatif hides them too when stderr
//! is not a terminal. Ctrl-C, once its handler is installed, stops a run
//! before its next step.

use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use charlm::train::{Event, Watch};

/// Set by Ctrl-C: training stops before its next step.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes Ctrl-C stop training runs (see [`INTERRUPTED`]) instead of the process.
pub fn stop_on_ctrl_c() -> anyhow::Result<()> {
    use anyhow::Context;
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")
}

/// A bar of `steps` steps; hidden when `hidden`.
pub fn bar(steps: usize, hidden: bool) -> ProgressBar {
    let target = if hidden {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(steps as u64), target);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} step {pos}/{len} {msg} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// A training run's [`Watch`]: a progress bar, and Ctrl-C.
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar for a run of `steps` steps.
    pub fn new(steps: usize, hidden: bool) -> Self {
        Self(bar(steps, hidden))
    }
}

impl Watch for Bar {
    fn event(&mut self, event: Event) {
        match event {
            Event::Step { step, loss } => {
                self.0.set_message(format!("loss {loss:.4}"));
                self.0.set_position(step as u64);
            }
            Event::Eval(e) => self.0.println(format!(
                "step {:>6}: train loss {:.4}, val loss {:.4}",
                e.step, e.train, e.val
            )),
        }
    }

    fn stop(&self, _next: usize) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
