//! A request to stop, shared by everything that waits: the CLI's signal
//! handlers set it (SIGINT, SIGTERM, SIGHUP), and every long wait in the
//! library checks it: a loss estimate between batches, a download between
//! reads. A library user who never sets it never sees it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

static REQUESTED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// The flag itself, for a signal handler to set to the signal's number
/// (0: no request).
pub fn flag() -> &'static Arc<AtomicUsize> {
    REQUESTED.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// Whether a stop was requested, and by which signal number.
pub fn requested() -> Option<usize> {
    match flag().load(Ordering::SeqCst) {
        0 => None,
        n => Some(n),
    }
}

/// A wait ended by a stop request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stopped by signal {0} before it finished")]
pub struct Interrupted(pub usize);

/// `Err` once a stop was requested: what a long wait calls between its parts.
pub fn check() -> Result<(), Interrupted> {
    requested().map_or(Ok(()), |n| Err(Interrupted(n)))
}
