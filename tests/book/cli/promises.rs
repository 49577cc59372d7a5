//! What charlm promises (README, "What charlm promises"), through the command
//! line: saves that cannot destroy, runs that survive signals, bounds on
//! every number, generation that streams, messages that say what and where.
//! Unix only: the tests send signals and make FIFOs with the system's tools.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{charlm, fails, json_of, rejected, stderr, stdout};

/// A charlm process running in the background, its output collected.
struct Running {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buf);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

impl Running {
    fn start(args: &[&str], cwd: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_charlm"))
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the charlm binary runs");
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        Self { child, out, err }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// Waits (at most two minutes) until `ready` holds of (stdout, stderr).
    fn wait_until(&mut self, what: &str, ready: impl Fn(&str, &str) -> bool) {
        let start = Instant::now();
        while !ready(&self.stdout(), &self.stderr()) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("charlm ended ({status}) before {what}: {}", self.stderr());
            }
            if start.elapsed() > Duration::from_secs(120) {
                let _ = self.child.kill();
                panic!("no {what} after two minutes: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
    }

    /// Waits (at most two minutes) for the exit; its code, stdout, stderr.
    fn finish(mut self) -> (Option<i32>, String, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > Duration::from_secs(120) {
                let _ = self.child.kill();
                panic!("charlm did not exit within two minutes: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // let the reader threads drain the pipes
        std::thread::sleep(Duration::from_millis(200));
        (status.code(), self.stdout(), self.stderr())
    }
}

/// Starts a long training run, sends it `signal` once it has estimated the
/// loss at step 100, and returns its exit code and stderr.
fn stopped_after_step_100(args: &[&str], cwd: &Path, signal: &str) -> (Option<i32>, String) {
    let mut run = Running::start(args, cwd);
    run.wait_until("the estimate at step 100", |_, err| {
        err.contains("step    100/")
    });
    run.signal(signal);
    let (code, _, err) = run.finish();
    (code, err)
}

fn data_file() -> PathBuf {
    let dir = std::env::var_os("CHARLM_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data"));
    let path = dir.join("tinyshakespeare.txt");
    assert!(
        path.is_file(),
        "tinyshakespeare.txt is needed at {}",
        path.display()
    );
    path
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    fs::symlink_metadata(path).unwrap().file_type().is_fifo()
}

const QUICK: [&str; 6] = ["--steps", "20", "--eval-iters", "2", "--tokens", "10"];

fn args<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(tail).copied().collect()
}

// Defect 1: --save onto the training text, a FIFO, a folder, the resumed
// checkpoint, a hard link of the text: each refused, each left as it was.
#[test]
fn save_never_replaces_an_input_or_anything_but_a_file() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = fs::read(data_file()).unwrap();
    fs::write(d.join("copy.txt"), &text).unwrap();
    let with_copy = |save: &'static str| -> Vec<&'static str> {
        args(&["bigram", "--data", "copy.txt", "--save", save], &QUICK)
    };
    fails(
        &with_copy("copy.txt"),
        d,
        "cannot write copy.txt: it is the --data file of this run",
    );
    fs::hard_link(d.join("copy.txt"), d.join("link.txt")).unwrap();
    fails(
        &with_copy("link.txt"),
        d,
        "it is the --data file of this run",
    );
    fails(
        &with_copy("./sub/../copy.txt"),
        d,
        "it is the --data file of this run",
    );
    assert_eq!(
        fs::read(d.join("copy.txt")).unwrap(),
        text,
        "the text is untouched"
    );
    mkfifo(&d.join("fifo"));
    fails(
        &with_copy("fifo"),
        d,
        "cannot write fifo: it is not a regular file (a device, FIFO or socket)",
    );
    assert!(is_fifo(&d.join("fifo")), "the FIFO is still a FIFO");
    fs::create_dir(d.join("folder")).unwrap();
    fails(
        &with_copy("folder"),
        d,
        "cannot write folder: it is a folder, not a file",
    );
    // the checkpoint a run resumes is one of its inputs too
    let o = charlm(&with_copy("run.safetensors"), d);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = fs::read(d.join("run.safetensors")).unwrap();
    let again = args(
        &[
            "bigram",
            "--data",
            "copy.txt",
            "--resume",
            "run.safetensors",
        ],
        &["--steps", "40", "--save", "run.safetensors"],
    );
    fails(&again, d, "it is the --resume checkpoint of this run");
    assert_eq!(fs::read(d.join("run.safetensors")).unwrap(), before);
    // a symbolic link is followed: the file it names is replaced, the link stays
    std::os::unix::fs::symlink("run.safetensors", d.join("latest.safetensors")).unwrap();
    let o = charlm(&with_copy("latest.safetensors"), d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(fs::symlink_metadata(d.join("latest.safetensors"))
        .unwrap()
        .file_type()
        .is_symlink());
    let (meta, _) = charlm::train::checkpoint::read_meta(&d.join("run.safetensors")).unwrap();
    assert_eq!(meta.step, 20);
}

// Defect 2: an unwritable folder is found before training, not after.
#[test]
fn the_save_path_is_checked_before_training() {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    let ro = d.join("ro");
    fs::create_dir(&ro).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    // root writes anywhere; sysfs refuses new files even to root
    let folder = if fs::write(ro.join("probe"), "x").is_err() {
        ro.clone()
    } else {
        PathBuf::from("/sys")
    };
    assert!(
        fs::write(folder.join("charlm-probe"), "x").is_err(),
        "no unwritable folder to test with ({} is writable)",
        folder.display()
    );
    let save = folder.join("x.safetensors");
    let save = save.to_str().unwrap();
    // a billion steps: only a check before training can end this run quickly
    let run = Running::start(&["bigram", "--steps", "1000000000", "--save", save], d);
    let (code, _, err) = run.finish();
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "cannot write in the folder {}: permission denied",
            folder.display()
        )),
        "{err}"
    );
    assert!(!err.contains("Os {"), "no Rust debug text: {err}");
    fs::write(d.join("file"), "x").unwrap();
    fails(
        &args(&["bigram", "--save", "file/x.safetensors"], &QUICK),
        d,
        "cannot write file/x.safetensors: a part of the path is a file, not a folder",
    );
    fails(
        &args(&["bigram", "--save", "newdir/"], &QUICK),
        d,
        "the path names a folder; give a file name",
    );
    fails(
        "tour --out file",
        d,
        "cannot write in the folder file: it is a file, not a folder",
    );
}

// Defects 3 and 5: the checkpoint is written before generating; a signal
// stops generation at once; characters stream out as they are made; the
// bigram's generation is linear in the tokens.
#[test]
fn a_signal_stops_generation_and_the_checkpoint_is_already_saved() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = [
        "bigram",
        "--steps",
        "30",
        "--eval-iters",
        "2",
        "--tokens",
        "10000000",
        "--save",
        "g.safetensors",
    ];
    let mut run = Running::start(&train, d);
    run.wait_until("a streamed sample", |out, _| {
        out.split("\nsample\n")
            .nth(1)
            .is_some_and(|s| s.len() > 2000)
    });
    run.signal("INT");
    let (code, out, err) = run.finish();
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains(
            "SIGINT (Ctrl-C) stopped generating; the checkpoint g.safetensors was saved before"
        ),
        "{err}"
    );
    let sample = out.split("\nsample\n").nth(1).unwrap();
    assert!(sample.chars().count() < 10_000_000, "stopped early");
    let (meta, _) = charlm::train::checkpoint::read_meta(&d.join("g.safetensors")).unwrap();
    assert_eq!(meta.step, 30);
    // `generate` streams and stops on SIGTERM
    let mut run = Running::start(
        &[
            "generate",
            "--checkpoint",
            "g.safetensors",
            "--tokens",
            "10000000",
        ],
        d,
    );
    run.wait_until("generated text", |out, _| out.len() > 2000);
    run.signal("TERM");
    let (code, out, err) = run.finish();
    assert_eq!(code, Some(143), "{err}");
    assert!(err.contains("SIGTERM stopped generating"), "{err}");
    assert!(out.len() > 2000 && out.chars().count() < 10_000_001);
    // linear: 300,000 characters from the bigram (quadratic, this took hours)
    let run = Running::start(
        &[
            "generate",
            "--checkpoint",
            "g.safetensors",
            "--tokens",
            "300000",
        ],
        d,
    );
    let (code, out, err) = run.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim_end_matches('\n').chars().count(), 300_001);
}

// Defect 4: SIGTERM (and SIGHUP) save like SIGINT, and the saved run resumes
// to exactly the run that was never stopped.
#[test]
fn sigterm_saves_a_checkpoint_that_resumes_like_an_unstopped_run() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    let common = [
        "--eval-interval",
        "100",
        "--eval-iters",
        "2",
        "--tokens",
        "20",
    ];
    let long = args(
        &[
            "bigram",
            "--steps",
            "1000000000",
            "--save",
            "cut.safetensors",
        ],
        &common,
    );
    let (code, err) = stopped_after_step_100(&long, d, "TERM");
    assert_eq!(code, Some(143), "{err}");
    assert!(err.contains("SIGTERM stopped training at step"), "{err}");
    let (meta, _) = charlm::train::checkpoint::read_meta(&d.join("cut.safetensors")).unwrap();
    assert!(meta.step >= 100, "{}", meta.step);
    let total = (meta.step + 50).to_string();
    let resumed = args(
        &[
            "bigram",
            "--resume",
            "cut.safetensors",
            "--steps",
            &total,
            "--json",
        ],
        &common,
    );
    let o = charlm(&resumed, d);
    assert!(o.status.success(), "{}", stderr(&o));
    let resumed = json_of(&o);
    let whole = args(&["bigram", "--steps", &total, "--json"], &common);
    let o = charlm(&whole, d);
    assert!(o.status.success(), "{}", stderr(&o));
    let whole = json_of(&o);
    for key in ["steps", "train_loss", "val_loss", "sample"] {
        assert_eq!(resumed[key], whole[key], "{key}");
    }
    // SIGHUP: a closed terminal
    let hup = args(
        &[
            "bigram",
            "--steps",
            "1000000000",
            "--save",
            "hup.safetensors",
        ],
        &common,
    );
    let (code, err) = stopped_after_step_100(&hup, d, "HUP");
    assert_eq!(code, Some(129), "{err}");
    assert!(charlm::train::checkpoint::read_meta(&d.join("hup.safetensors")).is_ok());
}

// Defect 7: without --save, each stopped run gets a new file.
#[test]
fn stopped_runs_without_save_never_overwrite_each_other() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("bigram-interrupted.safetensors"), "an earlier run").unwrap();
    let long = [
        "bigram",
        "--steps",
        "1000000000",
        "--eval-interval",
        "100",
        "--eval-iters",
        "2",
    ];
    let mut names = Vec::new();
    for _ in 0..2 {
        let (code, err) = stopped_after_step_100(&long, d, "INT");
        assert_eq!(code, Some(130), "{err}");
        let name = err
            .split("checkpoint saved to ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string();
        assert!(
            charlm::train::checkpoint::read_meta(&d.join(&name)).is_ok(),
            "{name}"
        );
        names.push(name);
    }
    assert_eq!(
        names,
        [
            "bigram-interrupted-2.safetensors",
            "bigram-interrupted-3.safetensors"
        ]
    );
    assert_eq!(
        fs::read_to_string(d.join("bigram-interrupted.safetensors")).unwrap(),
        "an earlier run"
    );
}

// Defect 6: every numeric flag has a range; memory is estimated first.
#[test]
fn huge_numbers_are_refused_in_one_line() {
    let here = Path::new(".");
    let max = u64::MAX.to_string();
    let m = max.as_str();
    for (command, flags) in [
        ("counts", &["--samples"][..]),
        ("onehot", &["--steps", "--samples", "--lr"][..]),
        (
            "bigram",
            &[
                "--steps",
                "--batch",
                "--block",
                "--eval-interval",
                "--eval-iters",
                "--tokens",
            ][..],
        ),
        (
            "head",
            &[
                "--steps",
                "--batch",
                "--block",
                "--eval-interval",
                "--eval-iters",
                "--tokens",
            ][..],
        ),
        ("bench", &["--threads", "--samples", "--sample-ms"][..]),
    ] {
        for flag in flags {
            let value = if *flag == "--lr" { "1e39" } else { m };
            let needle = if *flag == "--lr" {
                "finite number > 0"
            } else {
                "from"
            };
            rejected(&[command, flag, value], here, needle);
        }
    }
    rejected(
        &["generate", "--checkpoint", "x", "--tokens", m],
        here,
        "from 0 to 10000000",
    );
    rejected("counts --samples 4000000000", here, "from 0 to 1000000");
    rejected("bench --threads 100000", here, "from 1 to 1024");
    // in range for clap, beyond any machine's memory: refused before allocating
    fails(
        "head --batch 100000000",
        here,
        "a training step of batch 100000000 x block 8 needs about",
    );
    fails(
        "bigram --batch 1000000000 --block 1000",
        here,
        "use a smaller --batch or --block",
    );
}

// Defect 8: resuming with no steps left is an error, not a silent no-op.
#[test]
fn resuming_without_steps_left_is_an_error() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = charlm(&args(&["bigram", "--save", "a.safetensors"], &QUICK), d);
    assert!(o.status.success(), "{}", stderr(&o));
    for steps in ["10", "20"] {
        fails(
            &["bigram", "--resume", "a.safetensors", "--steps", steps],
            d,
            &format!("the checkpoint is already at step 20, and --steps {steps} counts from the start of the run"),
        );
    }
}

// Defect 9: temporary files that a dead charlm left are removed by the next
// save to the same file; a live process's are not.
#[test]
fn stale_temporary_files_are_removed() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    // above Linux's largest process id: no such process runs
    let dead = [
        ".x.safetensors.charlm-4194999-0.tmp.safetensors",
        ".x.safetensors.4194998-1.tmp.safetensors",
    ];
    let live = format!(
        ".x.safetensors.charlm-{}-0.tmp.safetensors",
        std::process::id()
    );
    for name in dead.iter().chain([&live.as_str()]) {
        fs::write(d.join(name), "half a checkpoint").unwrap();
    }
    fs::write(
        d.join(".y.safetensors.charlm-4194999-0.tmp.safetensors"),
        "another file's",
    )
    .unwrap();
    let o = charlm(&args(&["bigram", "--save", "x.safetensors"], &QUICK), d);
    assert!(o.status.success(), "{}", stderr(&o));
    for name in dead {
        assert!(!d.join(name).exists(), "{name} removed");
    }
    assert!(
        d.join(&live).exists(),
        "a running process's temporary file stays"
    );
    assert!(
        d.join(".y.safetensors.charlm-4194999-0.tmp.safetensors")
            .exists(),
        "only x's"
    );
}

// Defect 10: each I/O error names the path and the operation, once.
#[test]
fn io_errors_say_what_and_where_once() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = charlm("generate --checkpoint nope.safetensors", d);
    let err = stderr(&o);
    assert_eq!(
        err.trim_end(),
        "error: cannot read nope.safetensors: no such file or folder"
    );
    fails(
        "bigram --data .",
        d,
        ". is a folder; --data takes a text file",
    );
    fails(
        "counts --data .",
        d,
        ". is a folder; --data takes a text file",
    );
    fails(
        "counts --figure fifo.svg --data missing.txt",
        d,
        "missing.txt: no such file",
    );
}

// Output to a closed pipe (`charlm counts --json | true`, `charlm bigram |
// head -c 10`) ends charlm as it ends any Unix tool: killed by SIGPIPE,
// quietly, never a panic.
#[test]
fn a_closed_pipe_ends_charlm_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = crate::tempfile::tempdir().unwrap();
    for line in [
        "counts --json",
        "bigram --steps 2 --eval-iters 1 --tokens 20",
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // the reading end is closed before charlm writes a byte
        let o = Command::new(env!("CARGO_BIN_EXE_charlm"))
            .args(line.split_whitespace())
            .current_dir(dir.path())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("the charlm binary runs");
        let err = stderr(&o);
        assert_eq!(
            o.status.signal(),
            Some(libc::SIGPIPE),
            "{line}: {:?}: {err}",
            o.status
        );
        assert!(!err.contains("panicked"), "{line}: {err}");
    }
}

// Issue 30, unclear messages: a negative count names its flag and exits as
// every range error does (2); so does a negative --min-lr; smoothing so
// large that the lecture's float32 rows overflow is refused, not printed
// as NaN.
#[test]
fn a_negative_value_is_refused_by_its_own_flag() {
    let here = Path::new(".");
    rejected("bigram --steps -1", here, "'-1' for '--steps <N>'");
    rejected("counts --samples -5", here, "'-5' for '--samples <N>'");
    rejected(
        "bigram --lr-schedule cosine --min-lr -0.1",
        here,
        "must be a finite number >= 0",
    );
    fails(
        "counts --smoothing 1e300",
        here,
        "smoothing 1e300 is too large",
    );
}

// Issue 30, hangs: a FIFO or a device given as a file is refused at once
// (opening a FIFO would block for ever, a device might never end).
#[test]
fn a_fifo_or_a_device_is_refused_without_waiting() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    mkfifo(&d.join("fifo"));
    let start = Instant::now();
    for line in [
        "generate --checkpoint fifo",
        "generate --checkpoint /dev/zero",
        "bigram --data fifo",
        "counts --data /dev/zero",
    ] {
        fails(
            line,
            d,
            "it is not a regular file (a FIFO, a device or a socket)",
        );
    }
    std::os::unix::fs::symlink("loop", d.join("loop")).unwrap();
    fails("counts --data loop", d, "its symbolic links form a loop");
    assert!(start.elapsed() < Duration::from_secs(30));
}

// Issue 30, data lost: a refused run leaves the old --json-log as it was,
// and makes none of the folders its --save would have needed; a --save
// name too long for its temporary file is refused before training.
#[test]
fn a_refused_run_changes_nothing() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("log.jsonl"), "an old log\n").unwrap();
    fails(
        "bigram --json-log log.jsonl --resume missing.safetensors",
        d,
        "missing.safetensors",
    );
    fails(
        "bigram --json-log log.jsonl --dropout 0.5",
        d,
        "the bigram model has no dropout",
    );
    fails(
        "bigram --save new1/new2/x.safetensors --batch 1000000000 --block 1000",
        d,
        "use a smaller --batch",
    );
    assert_eq!(
        fs::read_to_string(d.join("log.jsonl")).unwrap(),
        "an old log\n"
    );
    assert!(!d.join("new1").exists(), "no empty folder left");
    let long = format!("{}.safetensors", "x".repeat(230));
    fails(&["bigram", "--save", &long], d, "the file name is too long");
    let entries: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["log.jsonl"], "nothing else was written");
}

// Issue 30, hangs: a loss estimate of a million batches ends at Ctrl-C;
// the run's checkpoint goes beside --save, and resumes.
#[test]
fn ctrl_c_ends_a_long_estimate_and_saves_beside_save() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("out")).unwrap();
    let run = Running::start(
        &[
            "bigram",
            "--steps",
            "5",
            "--eval-iters",
            "1000000",
            "--save",
            "out/run.safetensors",
        ],
        d,
    );
    // once its handlers are installed (Linux: SigCgt in /proc), the run is
    // in its first estimate, of a million batches, within a second
    let caught = |pid: u32| -> bool {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .unwrap_or("0");
        u64::from_str_radix(mask.trim(), 16).unwrap_or(0) & (1 << (libc::SIGINT - 1)) != 0
    };
    let start = Instant::now();
    while !caught(run.child.id()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{}",
            run.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));
    let sent = Instant::now();
    run.signal("INT");
    let (code, _, err) = run.finish();
    assert!(sent.elapsed() < Duration::from_secs(20), "{err}");
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains("checkpoint saved to out/bigram-interrupted.safetensors"),
        "{err}"
    );
    let (meta, _) =
        charlm::train::checkpoint::read_meta(&d.join("out/bigram-interrupted.safetensors"))
            .unwrap();
    // cut during the estimate before the first step: not recorded
    assert_eq!(meta.step, 0);
    assert!(
        meta.history.evals.is_empty(),
        "the cut estimate is not recorded"
    );
}

// Issue 30, data lost: a write past the file-size limit (`ulimit -f`) is an
// error like any failed write: the old file stays, no temporary file is
// left, in the folder or in the temporary folder.
#[test]
fn the_file_size_limit_is_a_plain_error() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("tmp")).unwrap();
    fs::write(d.join("x.safetensors"), "old").unwrap();
    let o = Command::new("bash")
        .args([
            "-c",
            &format!(
                "ulimit -f 8; exec {} bigram --steps 2 --eval-iters 1 --tokens 0 --save x.safetensors",
                env!("CARGO_BIN_EXE_charlm")
            ),
        ])
        .env("TMPDIR", d.join("tmp"))
        .current_dir(d)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{:?}: {err}", o.status);
    assert!(err.contains("file-size limit"), "{err}");
    assert_eq!(fs::read_to_string(d.join("x.safetensors")).unwrap(), "old");
    let left = |p: &Path| fs::read_dir(p).unwrap().count();
    assert_eq!(left(&d.join("tmp")), 0, "no temporary file in $TMPDIR");
    assert_eq!(left(d), 2, "x.safetensors and tmp, nothing else");
}

// Issue 30, text read as the lecture reads it: Windows line ends and a
// byte-order mark change nothing a model learns.
#[test]
fn windows_line_ends_and_a_bom_are_read_as_python_reads_them() {
    let dir = crate::tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = fs::read_to_string(data_file()).unwrap();
    let text: String = text.chars().take(20_000).collect();
    fs::write(d.join("unix.txt"), &text).unwrap();
    fs::write(
        d.join("windows.txt"),
        format!("\u{feff}{}", text.replace('\n', "\r\n")),
    )
    .unwrap();
    let run = |file: &str| {
        let o = charlm(
            &[
                "bigram",
                "--data",
                file,
                "--steps",
                "3",
                "--eval-iters",
                "1",
                "--json",
            ],
            d,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let j = json_of(&o);
        ["params", "initial_loss", "best_val_loss", "sample"].map(|k| j[k].clone())
    };
    assert_eq!(run("unix.txt"), run("windows.txt"));
    fs::write(d.join("names.txt"), "\u{feff}emma\r\nolivia\r\n").unwrap();
    let o = charlm("counts --data names.txt --json", d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["vocab_size"], 8, "{}", stdout(&o));
}
