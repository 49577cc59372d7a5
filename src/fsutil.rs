//! Writing files safely: everything charlm writes (figures, checkpoints,
//! downloads, notebook data) goes to a temporary name in the destination's
//! folder first and is renamed over the destination only when complete, so an
//! error or a Ctrl-C never leaves a half-written file or destroys the old one.
//!
//! Introduced with the project skeleton (chapter 1).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A temporary path next to `dest`, unique to this process and call, that
/// keeps `dest`'s extension (plotters picks the image format from it).
pub fn temp_path_for(dest: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = dest
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    let ext = dest
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let tmp = format!(".{name}.{}-{n}.tmp{ext}", std::process::id());
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(tmp),
        _ => PathBuf::from(tmp),
    }
}

/// Creates `dest`'s parent folder when it does not exist yet.
pub fn ensure_parent(dest: &Path) -> io::Result<()> {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => fs::create_dir_all(p),
        _ => Ok(()),
    }
}

/// Runs `write` against a temporary file next to `dest`, then renames it over
/// `dest`. On any error the temporary file is removed and `dest` is untouched.
pub fn write_atomic_with<F>(dest: &Path, write: F) -> io::Result<()>
where
    F: FnOnce(&Path) -> io::Result<()>,
{
    ensure_parent(dest)?;
    let tmp = temp_path_for(dest);
    let result = write(&tmp).and_then(|()| fs::rename(&tmp, dest));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `dest` atomically (temporary file, flush, rename).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(dest, |tmp| {
        let mut f = fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })
}
