//! Writing files safely. Everything charlm writes (checkpoints, figures, the
//! book's numbers, downloads) goes through this module, which promises:
//!
//! - **Nothing half-written.** Bytes go to a temporary file in the
//!   destination's folder (named `.NAME.charlm-PID-N.tmpEXT`), are flushed to
//!   disk, and only then renamed over the destination. A crash, an error or a
//!   signal leaves the old file as it was; a later write to the same
//!   destination removes temporary files that a dead charlm process left.
//! - **Only regular files are replaced.** A folder, a device, a FIFO or a
//!   socket at the destination is refused, never replaced by a regular file.
//! - **Symbolic links are followed**: writing to a link replaces the file it
//!   names (atomically, in that file's folder) and keeps the link.
//! - **Outputs are checked before the work.** [`check_output`] tells, before a
//!   run spends minutes training, whether its output can be written, and
//!   refuses an output that is one of the run's own inputs (`--data`,
//!   `--resume`) or another of its outputs.
//! - **Errors say what was being done, to which path, in plain words**, once
//!   ([`FsError`]).
//!
//! Introduced with the project skeleton (chapter 1); made strict in issue 12.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file operation that failed: what was being done, to which path, and why,
/// in plain words: `cannot write out/x.safetensors: it is a folder, not a file`.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}: {reason}", path.display())]
pub struct FsError {
    /// What was being done ("read", "write", "create the folder").
    pub op: &'static str,
    /// The path it was done to.
    pub path: PathBuf,
    /// Why it failed, in plain words.
    pub reason: String,
    /// The operating system's error kind, when there was one.
    pub kind: Option<io::ErrorKind>,
}

impl FsError {
    /// `op` on `path` failed with the operating system's error `e`.
    pub fn io(op: &'static str, path: &Path, e: &io::Error) -> Self {
        Self {
            op,
            path: path.to_path_buf(),
            reason: plain(e),
            kind: Some(e.kind()),
        }
    }

    /// `op` on `path` is refused by charlm, for `reason`.
    pub fn refused(op: &'static str, path: &Path, reason: impl Into<String>) -> Self {
        Self {
            op,
            path: path.to_path_buf(),
            reason: reason.into(),
            kind: None,
        }
    }
}

/// An operating-system error in plain words, without its error number.
pub fn plain(e: &io::Error) -> String {
    use io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "no such file or folder".to_string(),
        K::PermissionDenied => "permission denied".to_string(),
        K::IsADirectory => "it is a folder, not a file".to_string(),
        K::NotADirectory => "a part of the path is a file, not a folder".to_string(),
        K::ReadOnlyFilesystem => "the file system is read-only".to_string(),
        K::StorageFull => "the disk is full".to_string(),
        K::AlreadyExists => "it already exists".to_string(),
        K::FileTooLarge => "it would pass the file-size limit (ulimit -f)".to_string(),
        #[cfg(unix)]
        _ if e.raw_os_error() == Some(libc::ELOOP) => "its symbolic links form a loop".to_string(),
        #[cfg(unix)]
        _ if e.raw_os_error() == Some(libc::ENAMETOOLONG) => {
            "the name is too long for the file system".to_string()
        }
        _ => {
            let text = e.to_string();
            let text = match text.find(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            let mut chars = text.chars();
            match chars.next() {
                Some(c) => c.to_lowercase().chain(chars).collect(),
                None => "unknown error".to_string(),
            }
        }
    }
}

/// Reads a whole file; the error names the path, once. Only a regular file
/// is read (a FIFO would block, a device might never end), and only one that
/// fits in the free memory: its size is checked before anything is
/// allocated.
pub fn read(path: &Path) -> Result<Vec<u8>, FsError> {
    let size = check_readable(path)?;
    crate::train::fits(u128::from(size)).map_err(|(size, free)| {
        FsError::refused(
            "read",
            path,
            format!("it is {size}, more than the {free} of free memory"),
        )
    })?;
    let mut file = fs::File::open(path).map_err(|e| FsError::io("read", path, &e))?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // No more than the size it had: a file that grows while read is cut there.
    io::Read::read_to_end(&mut io::Read::take(&mut file, size), &mut bytes)
        .map_err(|e| FsError::io("read", path, &e))?;
    Ok(bytes)
}

/// Checks, without opening it, that `path` is a regular file charlm can
/// read, and returns its size: a folder, a FIFO, a device, a socket, a
/// missing file or a loop of symbolic links is refused in plain words.
pub fn check_readable(path: &Path) -> Result<u64, FsError> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(m.len()),
        Ok(m) if m.is_dir() => Err(FsError::refused("read", path, "it is a folder, not a file")),
        Ok(_) => Err(FsError::refused(
            "read",
            path,
            "it is not a regular file (a FIFO, a device or a socket); give a file",
        )),
        Err(e) => Err(FsError::io("read", path, &e)),
    }
}

/// Where a write to `dest` really goes: `dest` itself, or, when `dest` is a
/// symbolic link, the file it names (links are followed; a chain of links too).
pub fn resolve(dest: &Path) -> Result<PathBuf, FsError> {
    let mut path = dest.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&path).map_err(|e| FsError::io("follow", &path, &e))?;
                path = match path.parent() {
                    Some(p) if target.is_relative() => p.join(target),
                    _ => target,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(FsError::refused(
        "write",
        dest,
        "too many levels of symbolic links",
    ))
}

/// The folder a file is written in ("." for a bare file name).
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Refuses a destination that is not (or would not be) a regular file: a
/// path ending in a separator, a folder, a device, a FIFO, a socket.
fn refuse_non_regular(dest: &Path, shown: &Path) -> Result<(), FsError> {
    let text = shown.as_os_str().to_string_lossy();
    if text.is_empty() {
        return Err(FsError::refused("write", shown, "the path is empty"));
    }
    if text.ends_with('/') || text.ends_with(std::path::MAIN_SEPARATOR) {
        return Err(FsError::refused(
            "write",
            shown,
            "the path names a folder; give a file name (for example run.safetensors)",
        ));
    }
    match fs::metadata(dest) {
        Ok(m) if m.is_dir() => Err(FsError::refused(
            "write",
            shown,
            "it is a folder, not a file; give a file name",
        )),
        Ok(m) if !m.is_file() => Err(FsError::refused(
            "write",
            shown,
            "it is not a regular file (a device, FIFO or socket); charlm only replaces regular files",
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FsError::io("write", shown, &e)),
    }
}

/// Whether two paths name the same existing file (same canonical path, or on
/// Unix the same device and inode: hard links too).
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (fs::metadata(a), fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Whether two paths would be the same destination, existing or not: the
/// same file, or the same [`planned`] path once links are followed
/// (`new/../data.txt` is data.txt once `new` is made).
fn same_destination(a: &Path, b: &Path) -> bool {
    if same_file(a, b) {
        return true;
    }
    let key = |p: &Path| planned(&resolve(p).ok()?);
    matches!((key(a), key(b)), (Some(x), Some(y)) if x == y)
}

// ANCHOR: check_output
/// Checks, before any work starts, that `dest` can be written: it is (or will
/// be) a regular file, its folder exists or can be made, a file can be
/// created there, its temporary name fits the file system, and it is none of
/// `others`, each a (role, path) pair such as `("the --data file", data)`:
/// the run's inputs and its other outputs. Nothing is created: a refused run
/// leaves no empty folder. Returns where the bytes will go (`dest`, or the
/// file a symbolic link at `dest` names).
pub fn check_output(dest: &Path, others: &[(&str, &Path)]) -> Result<PathBuf, FsError> {
    let target = resolve(dest)?;
    refuse_non_regular(&target, dest)?;
    check_folder(&folder_of(&target))?;
    check_name_fits(&target, dest)?;
    for (role, other) in others {
        if same_destination(&target, other) {
            return Err(FsError::refused(
                "write",
                dest,
                format!("it is {role} of this run; choose another path"),
            ));
        }
    }
    Ok(target)
}
// ANCHOR_END: check_output

/// The longest file name most file systems take, in bytes.
const NAME_MAX: usize = 255;

/// Refuses a destination whose temporary file (`.NAME.charlm-PID-N.tmpEXT`)
/// would have too long a name: the save would fail only after the work.
fn check_name_fits(target: &Path, shown: &Path) -> Result<(), FsError> {
    let tmp = temp_path_for(target);
    let len = tmp.file_name().map_or(0, |n| n.len());
    // room for the counter N to grow
    let spare = 8;
    if len + spare > NAME_MAX {
        let name = target.file_name().map_or(0, |n| n.len());
        let most = name.saturating_sub(len + spare - NAME_MAX);
        return Err(FsError::refused(
            "write",
            shown,
            format!(
                "the file name is too long: charlm writes through a temporary file named \
                 .NAME.charlm-PID-N.tmp beside it, which must fit in {NAME_MAX} bytes; \
                 use a name of at most {most} bytes"
            ),
        ));
    }
    Ok(())
}

/// Where `path` will be once its missing folders are made: its longest
/// existing beginning, canonical, then the rest with `.` and `..` applied
/// (the folders made will be real folders, not links). `None` if not even
/// the working folder can be read.
fn planned(path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let parts: Vec<Component<'_>> = path.components().collect();
    for k in (0..=parts.len()).rev() {
        let start: PathBuf = parts[..k].iter().collect();
        let start = if start.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            start
        };
        let Ok(mut out) = fs::canonicalize(&start) else {
            continue;
        };
        for part in &parts[k..] {
            match part {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                other => out.push(other.as_os_str()),
            }
        }
        return Some(out);
    }
    None
}

/// Checks, before any work starts, that files can be written into `dir`:
/// it is a folder, or can be made one (its nearest existing ancestor is a
/// folder), and a file can be created there. Nothing is left behind: the
/// folder is not made until something is written into it.
pub fn check_folder(dir: &Path) -> Result<(), FsError> {
    let mut existing = dir.to_path_buf();
    loop {
        match fs::metadata(&existing) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(FsError::refused(
                    "write in the folder",
                    &existing,
                    "it is a file, not a folder",
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                existing = match existing.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
            }
            Err(e) => return Err(FsError::io("write in the folder", dir, &e)),
        }
    }
    let probe = temp_path_for(&existing.join("probe"));
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| FsError::io("write in the folder", dir, &e))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// The prefix of this process's temporary files for `dest`: `.NAME.charlm-`.
fn temp_prefix(dest: &Path) -> String {
    let name = dest
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    format!(".{name}.charlm-")
}

/// `dest`'s extension with its dot ("" if none): temporary files keep it,
/// since plotters picks the image format from it.
fn dot_ext(dest: &Path) -> String {
    dest.extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default()
}

/// A temporary path next to `dest`, unique to this process and call:
/// `.NAME.charlm-PID-N.tmpEXT`, keeping `dest`'s extension.
pub fn temp_path_for(dest: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!(
        "{}{}-{n}.tmp{}",
        temp_prefix(dest),
        std::process::id(),
        dot_ext(dest)
    );
    folder_of(dest).join(name)
}

/// Whether the process `pid` is gone (on Linux, by `/proc`; elsewhere a
/// temporary file counts as stale once it is a day old).
fn process_gone(pid: u32, modified: Option<std::time::SystemTime>) -> bool {
    if pid == std::process::id() {
        return false;
    }
    if cfg!(target_os = "linux") {
        return !Path::new(&format!("/proc/{pid}")).exists();
    }
    let day = std::time::Duration::from_secs(24 * 3600);
    modified
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age > day)
}

/// Removes temporary files for `dest` that a charlm process which no longer
/// runs left in `dest`'s folder (a save killed with SIGKILL, a power cut):
/// `.NAME.charlm-PID-N.tmpEXT`, and `.NAME.PID-N.tmpEXT` as charlm before
/// issue 12 named them. Returns how many it removed.
pub fn remove_stale_temps(dest: &Path) -> usize {
    let prefix = temp_prefix(dest);
    let older = prefix.trim_end_matches("charlm-").to_string();
    let suffix = format!(".tmp{}", dot_ext(dest));
    let Ok(entries) = fs::read_dir(folder_of(dest)) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(middle) = name
            .strip_prefix(&prefix)
            .or_else(|| name.strip_prefix(&older))
            .and_then(|rest| rest.strip_suffix(&suffix))
        else {
            continue;
        };
        let Some(pid) = middle
            .split_once('-')
            .filter(|(_, n)| n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let modified = entry.metadata().ok().and_then(|m| m.modified().ok());
        if process_gone(pid, modified) && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Runs `write` against a temporary file next to `dest`, flushes it, then
/// renames it over `dest` (following a symbolic link at `dest`). On any error
/// the temporary file is removed and `dest` is untouched. Refuses to replace
/// anything but a regular file.
pub fn write_atomic_with<F>(dest: &Path, write: F) -> Result<(), FsError>
where
    F: FnOnce(&Path) -> io::Result<()>,
{
    persist(dest, write, Replace::Yes).map(|_| ())
}

/// Writes `bytes` to `dest` atomically (temporary file, flush, rename).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_atomic_with(dest, |tmp| write_file(tmp, bytes))
}

/// Writes `bytes` to a file that does not exist yet: `dest`, or, when that
/// name is taken, `dest` with `-2`, `-3`, ... before its extension. Never
/// replaces a file, even one created at the same moment by another process.
/// Returns the path written.
pub fn write_new(dest: &Path, bytes: &[u8]) -> Result<PathBuf, FsError> {
    let stem = dest
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    for n in 1..10_000u32 {
        let candidate = if n == 1 {
            dest.to_path_buf()
        } else {
            dest.with_file_name(format!("{stem}-{n}{}", dot_ext(dest)))
        };
        if fs::symlink_metadata(&candidate).is_ok() {
            continue;
        }
        match persist(&candidate, |tmp| write_file(tmp, bytes), Replace::No) {
            Ok(path) => return Ok(path),
            Err(e) if e.kind == Some(io::ErrorKind::AlreadyExists) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(FsError::refused(
        "write",
        dest,
        "every numbered name beside it is taken; remove some",
    ))
}

/// Writes, flushes and syncs one file.
fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[derive(PartialEq)]
enum Replace {
    Yes,
    No,
}

fn persist<F>(dest: &Path, write: F, replace: Replace) -> Result<PathBuf, FsError>
where
    F: FnOnce(&Path) -> io::Result<()>,
{
    let target = resolve(dest)?;
    refuse_non_regular(&target, dest)?;
    let made = make_folders(&folder_of(&target))?;
    remove_stale_temps(&target);
    let tmp = temp_path_for(&target);
    let mut result = write(&tmp).map_err(|e| FsError::io("write", dest, &e));
    if result.is_ok() {
        result = match replace {
            Replace::Yes => fs::rename(&tmp, &target).map_err(|e| FsError::io("write", dest, &e)),
            // A hard link fails if the name exists: no race can clobber it.
            Replace::No => match fs::hard_link(&tmp, &target) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    Err(FsError::io("write", dest, &e))
                }
                // No hard links on this file system: rename if still free.
                Err(_) if fs::symlink_metadata(&target).is_err() => {
                    fs::rename(&tmp, &target).map_err(|e| FsError::io("write", dest, &e))
                }
                Err(e) => Err(FsError::io("write", dest, &e)),
            },
        };
    }
    let _ = fs::remove_file(&tmp);
    if result.is_err() {
        remove_made(&made);
    }
    result.map(|()| target)
}

/// Makes `dir` and its missing ancestors; returns those it made, outermost
/// first, for [`remove_made`] to take back if what goes in them fails.
pub fn make_folders(dir: &Path) -> Result<Vec<PathBuf>, FsError> {
    let missing: Vec<PathBuf> = dir
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .take_while(|a| fs::symlink_metadata(a).is_err())
        .map(Path::to_path_buf)
        .collect();
    fs::create_dir_all(dir).map_err(|e| FsError::io("create the folder", dir, &e))?;
    Ok(missing.into_iter().rev().collect())
}

/// Removes the folders [`make_folders`] made, innermost first, as long as
/// they are empty: a failed write leaves no empty folder behind.
pub fn remove_made(made: &[PathBuf]) {
    for dir in made.iter().rev() {
        if fs::remove_dir(dir).is_err() {
            break;
        }
    }
}
