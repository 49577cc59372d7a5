//! The data: finding, downloading and reading the two data sets, and what
//! the models make of them.
//!
//! Introduced in chapter 1. Submodules: [`names`] (one name per line,
//! chapters 1 and 2), [`vocab`] (characters ↔ indices, chapter 1) and
//! [`text`] (a text as token ids, split and cut into batches, chapter 3).
//! A data file is looked for, in order:
//!
//! 1. at an explicit path (`--data PATH`), which must exist;
//! 2. in the folder named by `$CHARLM_DATA_DIR`;
//! 3. in `./data/` (git-ignored);
//! 4. otherwise it is downloaded from its canonical public URL into `./data/`,
//!    checked against its published SHA-256, and only then renamed into place.
//!
//! Every failure is a [`DataError`] that says what to do next; nothing here
//! panics on bad input.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::fsutil;

pub mod addition;
pub mod names;
pub mod text;
pub mod vocab;

pub use names::{load_names, parse_names, read_names};

/// The environment variable naming a folder that holds the data files.
pub const DATA_DIR_ENV: &str = "CHARLM_DATA_DIR";

/// The environment variable that replaces the download URLs' base with a
/// mirror: the file is fetched from `$CHARLM_DATA_URL/<file name>`.
pub const DATA_URL_ENV: &str = "CHARLM_DATA_URL";

/// The folder, relative to the working directory, searched after
/// `$CHARLM_DATA_DIR` and used for downloads.
pub const LOCAL_DATA_DIR: &str = "data";

// ANCHOR: dataset
/// The data sets the book uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// The names, one per line (makemore, MIT licence). Chapters 1 and 2.
    Names,
    /// About a million characters of Shakespeare (char-rnn, MIT licence). Chapter 3 on.
    TinyShakespeare,
}

impl Dataset {
    /// The file name looked for in each data folder.
    pub fn file_name(self) -> &'static str {
        match self {
            Dataset::Names => "names.txt",
            Dataset::TinyShakespeare => "tinyshakespeare.txt",
        }
    }

    /// The canonical public URL the file is downloaded from.
    pub fn url(self) -> &'static str {
        match self {
            Dataset::Names => "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
            Dataset::TinyShakespeare => "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        }
    }

    /// The SHA-256 of the published file, as lowercase hex.
    pub fn sha256(self) -> &'static str {
        match self {
            Dataset::Names => "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
            Dataset::TinyShakespeare => {
                "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
            }
        }
    }
}
// ANCHOR_END: dataset

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_name())
    }
}

/// Everything that can go wrong while finding or reading data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An explicit `--data` path that does not exist.
    #[error("{path}: no such file (check the path given with --data)")]
    MissingExplicit {
        /// The path that was given.
        path: PathBuf,
    },
    /// An explicit `--data` path that is a folder.
    #[error("{path} is a folder; --data takes a text file (for example {path}/input.txt)")]
    Folder {
        /// The path that was given.
        path: PathBuf,
    },
    /// The file is in no data folder and could not be downloaded.
    #[error(
        "{file} not found (looked in {searched}) and the download failed: {reason}. \
         Put {file} in ./data or set {DATA_DIR_ENV} to the folder that holds it"
    )]
    NotFound {
        /// The file name looked for.
        file: &'static str,
        /// The places that were searched, comma separated.
        searched: String,
        /// Why the download did not work.
        reason: String,
    },
    /// A download that failed (network, HTTP status, broken connection).
    #[error("downloading {url} failed: {reason}")]
    Download {
        /// What was fetched.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A download whose bytes are not the published file.
    #[error("downloaded {url} but its SHA-256 is {actual}, not the expected {expected}; nothing was saved")]
    Checksum {
        /// What was fetched.
        url: String,
        /// The published checksum.
        expected: String,
        /// The checksum of what arrived.
        actual: String,
    },
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] fsutil::FsError),
    /// The file has no content.
    #[error("{path}: the file is empty")]
    Empty {
        /// The file concerned.
        path: PathBuf,
    },
    /// The file is not valid UTF-8 text.
    #[error("{path}: not UTF-8 text (invalid bytes at line {line}, byte offset {offset})")]
    NotUtf8 {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line of the first invalid byte.
        line: usize,
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// A names file without a single name in it.
    #[error("{path}: no names in the file (only blank lines)")]
    NoWords {
        /// The file concerned.
        path: PathBuf,
    },
    /// A name containing the reserved start/end token '.'.
    #[error("{path}: line {line} contains '.', which is reserved as the start/end token")]
    ReservedChar {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DataError + 'a {
    move |e| DataError::Io(fsutil::FsError::io(op, path, &e))
}

/// Where to look for data, and where to download it from. [`Locator::from_env`]
/// is what the CLI, tests and notebooks use; the fields are public so tests can
/// point the downloader at a local server.
#[derive(Debug, Clone)]
pub struct Locator {
    /// The folder from `$CHARLM_DATA_DIR`, if set.
    pub env_dir: Option<PathBuf>,
    /// The local folder searched next and downloaded into (`./data`).
    pub local_dir: PathBuf,
    /// Overrides every data set's download URL with `{base}/{file_name}`.
    pub base_url: Option<String>,
    /// Whether a missing file may be downloaded at all.
    pub allow_download: bool,
    /// Connect/read timeout for downloads.
    pub timeout: Duration,
    /// The longest a whole download may take: a server that trickles a
    /// byte now and then is given up on.
    pub deadline: Duration,
}

impl Default for Locator {
    fn default() -> Self {
        Self {
            env_dir: None,
            local_dir: PathBuf::from(LOCAL_DATA_DIR),
            base_url: None,
            allow_download: true,
            timeout: Duration::from_secs(30),
            deadline: Duration::from_secs(300),
        }
    }
}

impl Locator {
    /// The standard locator: `$CHARLM_DATA_DIR` (when set and non-empty), then
    /// `./data`, then a download into `./data` (from the canonical URL, or
    /// from the mirror in `$CHARLM_DATA_URL` when set).
    pub fn from_env() -> Self {
        let env_dir = std::env::var_os(DATA_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let base_url = std::env::var(DATA_URL_ENV).ok().filter(|v| !v.is_empty());
        Self {
            env_dir,
            base_url,
            ..Self::default()
        }
    }

    /// The URL `dataset` is downloaded from.
    pub fn url_for(&self, dataset: Dataset) -> String {
        match &self.base_url {
            Some(base) => format!("{}/{}", base.trim_end_matches('/'), dataset.file_name()),
            None => dataset.url().to_string(),
        }
    }

    /// Finds `dataset`'s file: `explicit` if given (it must exist), else the
    /// data folders in order, else a verified download into `local_dir`.
    pub fn resolve(&self, dataset: Dataset, explicit: Option<&Path>) -> Result<PathBuf, DataError> {
        if let Some(path) = explicit {
            return match fsutil::check_readable(path) {
                Ok(_) => Ok(path.to_path_buf()),
                Err(_) if path.is_dir() => Err(DataError::Folder {
                    path: path.to_path_buf(),
                }),
                Err(e) if e.kind == Some(io::ErrorKind::NotFound) => {
                    Err(DataError::MissingExplicit {
                        path: path.to_path_buf(),
                    })
                }
                Err(e) => Err(e.into()), // a FIFO, a device, a loop of links
            };
        }
        let mut searched = Vec::new();
        for dir in self.env_dir.iter().chain(std::iter::once(&self.local_dir)) {
            let candidate = dir.join(dataset.file_name());
            if candidate.is_file() {
                return Ok(candidate);
            }
            searched.push(candidate.display().to_string());
        }
        let not_found = |reason: String| DataError::NotFound {
            file: dataset.file_name(),
            searched: searched.join(", "),
            reason,
        };
        if !self.allow_download {
            return Err(not_found("downloads are turned off".into()));
        }
        let dest = self.local_dir.join(dataset.file_name());
        download(
            &self.url_for(dataset),
            &dest,
            dataset.sha256(),
            (self.timeout, self.deadline),
        )
        .map_err(|e| not_found(e.to_string()))?;
        Ok(dest)
    }
}

/// The two data sets, each found and read the first time it is asked for:
/// what `charlm tour`, `figures`, `parity` and `bench` hand to every stage
/// (see [`crate::stages`]), so that a stage that needs no data reads none.
#[derive(Debug, Default)]
pub struct DataSets {
    names: std::sync::OnceLock<Vec<String>>,
    names_text: std::sync::OnceLock<String>,
    text: std::sync::OnceLock<String>,
}

impl DataSets {
    /// Nothing read yet; files are found with [`Locator::from_env`].
    pub fn new() -> Self {
        Self::default()
    }

    /// names.txt, as words.
    pub fn names(&self) -> Result<&[String], DataError> {
        if let Some(words) = self.names.get() {
            return Ok(words);
        }
        let words = load_names(None)?;
        Ok(self.names.get_or_init(|| words))
    }

    /// names.txt as plain text, a name a line (chapter 8 trains a GPT on
    /// it as on any text).
    pub fn names_text(&self) -> Result<&str, DataError> {
        if let Some(text) = self.names_text.get() {
            return Ok(text);
        }
        let text = load_text(Dataset::Names, None)?;
        Ok(self.names_text.get_or_init(|| text))
    }

    /// tinyshakespeare.txt, as text.
    pub fn text(&self) -> Result<&str, DataError> {
        if let Some(text) = self.text.get() {
            return Ok(text);
        }
        let text = load_text(Dataset::TinyShakespeare, None)?;
        Ok(self.text.get_or_init(|| text))
    }
}

/// Finds `dataset` with [`Locator::from_env`] and reads it as text.
pub fn load_text(dataset: Dataset, explicit: Option<&Path>) -> Result<String, DataError> {
    let path = Locator::from_env().resolve(dataset, explicit)?;
    read_text(&path)
}

// ANCHOR: download
/// Downloads `url` to `dest`, streaming through SHA-256. The bytes go to a
/// temporary file beside `dest`, which is renamed to `dest` only when the
/// checksum equals `sha256_hex`; on any failure nothing is left behind.
/// `timeout` bounds each wait for the server, `deadline` the whole download;
/// a stop request ([`crate::interrupt`]) ends it between reads.
pub fn download(
    url: &str,
    dest: &Path,
    sha256_hex: &str,
    (timeout, deadline): (Duration, Duration),
) -> Result<(), DataError> {
    let fail = |reason: String| DataError::Download {
        url: url.to_string(),
        reason,
    };
    let started = std::time::Instant::now();
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(timeout)
        .timeout_read(timeout)
        .timeout(deadline)
        .build();
    let response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let mut body = response.into_reader();
    fsutil::check_output(dest, &[])?;
    let made = fsutil::make_folders(dest.parent().unwrap_or(Path::new(".")))?;
    fsutil::remove_stale_temps(dest);
    let tmp = fsutil::temp_path_for(dest);
    let result = (|| {
        let mut file = fs::File::create(&tmp).map_err(io_err("write", &tmp))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let late = || started.elapsed() >= deadline;
        let too_long = || {
            fail(format!(
                "it took longer than {} s; try again later",
                deadline.as_secs()
            ))
        };
        loop {
            crate::interrupt::check().map_err(|e| fail(e.to_string()))?;
            if late() {
                return Err(too_long());
            }
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) if late() => return Err(too_long()),
                Err(e) => return Err(fail(format!("connection broke off: {e}"))),
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(io_err("write", &tmp))?;
        }
        file.sync_all().map_err(io_err("write", &tmp))?;
        let actual = hex(&hasher.finalize());
        if actual != sha256_hex.to_ascii_lowercase() {
            return Err(DataError::Checksum {
                url: url.to_string(),
                expected: sha256_hex.to_string(),
                actual,
            });
        }
        fs::rename(&tmp, dest).map_err(io_err("write", dest))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        fsutil::remove_made(&made); // no empty ./data left by a failed download
    }
    result
}
// ANCHOR_END: download

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, DataError> {
    let bytes = fsutil::read(path)?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// Reads a file as UTF-8 text, as the lecture's Python reads it: a leading
/// byte-order mark is dropped (it marks the encoding, it is not text), and
/// Windows (`\r\n`) and old Mac (`\r`) line ends become `\n` (Python's
/// universal newlines). An empty file and invalid UTF-8 are errors that say
/// where the problem is.
pub fn read_text(path: &Path) -> Result<String, DataError> {
    let bytes = fsutil::read(path)?;
    let mut text = decode_text(path, bytes)?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    if text.contains('\r') {
        text = text.replace("\r\n", "\n").replace('\r', "\n");
    }
    if text.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(text)
}

/// `bytes` as UTF-8, or an error that says where the first invalid byte is.
fn decode_text(path: &Path, bytes: Vec<u8>) -> Result<String, DataError> {
    if bytes.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        DataError::NotUtf8 {
            path: path.to_path_buf(),
            line,
            offset,
        }
    })
}
