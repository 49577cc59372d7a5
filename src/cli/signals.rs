//! Signals. Once [`catch`] has run, SIGINT (Ctrl-C), SIGTERM (`kill`,
//! `timeout`, job schedulers) and SIGHUP (a closed terminal) no longer end
//! the process: they are recorded, training stops before its next step and
//! saves a checkpoint, generation stops after its current character, and the
//! command exits with 128 + the signal's number (130, 143, 129). A signal
//! that arrives while a checkpoint is being written is recorded too, so the
//! save always finishes: there is never a half-written file.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use anyhow::{Context, Result};

/// The last signal received (0: none yet): the library's stop request, so
/// that its long waits (a loss estimate, a download) end too.
fn received_flag() -> &'static Arc<AtomicUsize> {
    charlm::interrupt::flag()
}

/// The signals that stop a run.
#[cfg(unix)]
const CAUGHT: &[i32] = &[
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];
#[cfg(not(unix))]
const CAUGHT: &[i32] = &[signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];

/// Records SIGINT, SIGTERM and SIGHUP instead of dying of them (see the
/// module's documentation). Safe to call more than once.
pub fn catch() -> Result<()> {
    for &sig in CAUGHT {
        let value = usize::try_from(sig).unwrap_or(usize::MAX);
        signal_hook::flag::register_usize(sig, Arc::clone(received_flag()), value)
            .with_context(|| format!("installing the handler of signal {sig}"))?;
    }
    Ok(())
}

/// A signal that was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(i32);

impl Signal {
    /// Its name: SIGINT, SIGTERM, SIGHUP.
    pub fn name(self) -> String {
        match self.0 {
            2 => "SIGINT (Ctrl-C)".to_string(),
            15 => "SIGTERM".to_string(),
            1 => "SIGHUP".to_string(),
            n => format!("signal {n}"),
        }
    }

    /// The exit code a shell gives a process this signal ended: 128 + its number.
    pub fn exit_code(self) -> u8 {
        u8::try_from(128 + self.0).unwrap_or(1)
    }
}

/// The signal received since [`catch`], if any.
pub fn received() -> Option<Signal> {
    charlm::interrupt::requested().map(|n| Signal(i32::try_from(n).unwrap_or(i32::MAX)))
}

/// A run stopped by a signal, after saving what it had.
#[derive(Debug, thiserror::Error)]
#[error("{} {what}", signal.name())]
pub struct Stopped {
    /// The signal.
    pub signal: Signal,
    /// What happened: "stopped training at step 120; checkpoint saved to ...".
    pub what: String,
}
