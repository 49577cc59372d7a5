//! The data layer: resolution order, the verified download (against a tiny
//! HTTP server on 127.0.0.1 that the test starts itself), and bad files.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread;
use std::time::Duration;

use charlm::data::{self, DataError, Dataset, Locator};
use sha2::{Digest, Sha256};

/// What the test server does with each request.
#[derive(Clone, Copy)]
enum Reply {
    /// 200 with the body.
    Body(&'static [u8]),
    /// 404.
    NotFound,
    /// Promise `len` bytes, send the first 10 of `body`, then close.
    Truncated(&'static [u8]),
    /// 200, then the body a byte every 100 ms.
    Trickle(&'static [u8]),
}

/// Serves `replies.len()` requests (one reply each, in order) on a fresh
/// loopback port, then stops. Returns the base URL.
fn serve(replies: Vec<Reply>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for reply in replies {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let _ = match reply {
                Reply::Body(body) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    stream
                        .write_all(head.as_bytes())
                        .and_then(|()| stream.write_all(body))
                }
                Reply::NotFound => stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
                Reply::Trickle(body) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    stream.write_all(head.as_bytes()).and_then(|()| {
                        for b in body {
                            thread::sleep(Duration::from_millis(100));
                            stream.write_all(&[*b])?;
                        }
                        Ok(())
                    })
                }
                Reply::Truncated(body) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    stream
                        .write_all(head.as_bytes())
                        .and_then(|()| stream.write_all(&body[..10]))
                }
            };
            // dropping the stream closes the connection
        }
    });
    format!("http://{addr}")
}

const GOOD: &[u8] = b"emma\nolivia\nava\nisabella\nsophia\n";

fn sha(bytes: &[u8]) -> String {
    data::hex(&Sha256::digest(bytes))
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Downloads `{server}/names.txt` into a fresh folder, expecting GOOD's
/// checksum, from a server that answers once with `reply`.
fn fetch(
    reply: Reply,
) -> (
    crate::tempfile::TempDir,
    std::path::PathBuf,
    Result<(), DataError>,
) {
    let base = serve(vec![reply]);
    let dir = crate::tempfile::tempdir().unwrap();
    let dest = dir.path().join("sub/names.txt");
    let result = data::download(
        &format!("{base}/names.txt"),
        &dest,
        &sha(GOOD),
        (Duration::from_secs(5), Duration::from_secs(2)),
    );
    (dir, dest, result)
}

#[test]
fn good_download_is_verified_and_renamed_into_place() {
    let (dir, dest, result) = fetch(Reply::Body(GOOD));
    result.unwrap();
    assert_eq!(fs::read(&dest).unwrap(), GOOD);
    assert_eq!(files_in(&dir.path().join("sub")), ["names.txt"]);
}

#[test]
fn wrong_checksum_is_rejected_and_leaves_nothing() {
    let (dir, _, result) = fetch(Reply::Body(b"not the names file\n"));
    let err = result.unwrap_err();
    assert!(matches!(err, DataError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("nothing was saved"), "{err}");
    assert!(!dir.path().join("sub").exists(), "no empty folder left");
}

#[test]
fn dropped_connection_is_an_error_and_leaves_nothing() {
    let (dir, _, result) = fetch(Reply::Truncated(GOOD));
    let err = result.unwrap_err();
    assert!(
        matches!(err, DataError::Download { .. } | DataError::Checksum { .. }),
        "{err}"
    );
    assert!(!dir.path().join("sub").exists(), "no empty folder left");
}

#[test]
fn http_error_status_is_reported() {
    let (dir, _, result) = fetch(Reply::NotFound);
    let err = result.unwrap_err();
    assert!(matches!(err, DataError::Download { .. }), "{err}");
    assert!(err.to_string().contains("404"), "{err}");
    assert!(!dir.path().join("sub").exists(), "no empty folder left");
}

/// A locator that reads nothing from the environment.
fn locator(local: &Path, base: Option<String>) -> Locator {
    Locator {
        env_dir: None,
        local_dir: local.to_path_buf(),
        base_url: base,
        allow_download: true,
        timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(60),
    }
}

// A server that sends a byte now and then never times out a read, but the
// whole download has a deadline; nothing is left behind.
#[test]
fn a_trickling_download_ends_at_its_deadline() {
    let started = std::time::Instant::now();
    let (dir, _, result) = fetch(Reply::Trickle(GOOD));
    let err = result.unwrap_err();
    assert!(err.to_string().contains("took longer than 2 s"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!dir.path().join("sub").exists(), "no empty folder left");
}

// Text is read as the lecture's Python reads it: no byte-order mark, and
// Windows or old Mac line ends as '\n'.
#[test]
fn text_is_read_with_universal_newlines_and_no_bom() {
    let dir = crate::tempfile::tempdir().unwrap();
    let path = dir.path().join("t.txt");
    fs::write(&path, "\u{feff}one\r\ntwo\rthree\n").unwrap();
    assert_eq!(data::read_text(&path).unwrap(), "one\ntwo\nthree\n");
    fs::write(&path, "\u{feff}emma\r\nolivia\r\n").unwrap();
    assert_eq!(data::read_names(&path).unwrap(), ["emma", "olivia"]);
    fs::write(&path, "\u{feff}").unwrap();
    assert!(matches!(
        data::read_text(&path),
        Err(DataError::Empty { .. })
    ));
}

#[test]
fn resolution_order_explicit_env_local_download() {
    let root = crate::tempfile::tempdir().unwrap();
    let (env_dir, local_dir) = (root.path().join("env"), root.path().join("local"));
    fs::create_dir_all(&env_dir).unwrap();
    fs::create_dir_all(&local_dir).unwrap();
    let explicit = root.path().join("mine.txt");
    fs::write(&explicit, "x\n").unwrap();

    // Nothing anywhere and the server sends the wrong bytes: an error, nothing saved.
    let base = serve(vec![Reply::Body(GOOD)]);
    let mut l = locator(&local_dir, Some(base));
    let err = l.resolve(Dataset::Names, None).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("SHA-256"), "{err}");
    assert!(files_in(&local_dir).is_empty());

    // Nothing anywhere and the server sends the real names.txt: downloaded
    // into the local folder, verified, and found there from now on.
    let real = Locator::from_env()
        .resolve(Dataset::Names, None)
        .expect("names.txt for the test server");
    let real: &'static [u8] = Box::leak(fs::read(real).unwrap().into_boxed_slice());
    l.base_url = Some(serve(vec![Reply::Body(real)]));
    let got = l.resolve(Dataset::Names, None).unwrap();
    assert_eq!(got, local_dir.join("names.txt"));
    assert_eq!(data::sha256_file(&got).unwrap(), Dataset::Names.sha256());
    assert_eq!(files_in(&local_dir), ["names.txt"]);
    l.base_url = Some("http://127.0.0.1:9/unused".into());
    assert_eq!(
        l.resolve(Dataset::Names, None).unwrap(),
        got,
        "no second download"
    );

    // In $CHARLM_DATA_DIR too: that one wins.
    fs::write(env_dir.join("names.txt"), "env\n").unwrap();
    l.env_dir = Some(env_dir.clone());
    assert_eq!(
        l.resolve(Dataset::Names, None).unwrap(),
        env_dir.join("names.txt")
    );
    // An explicit path beats both.
    assert_eq!(
        l.resolve(Dataset::Names, Some(&explicit)).unwrap(),
        explicit
    );
}

#[test]
fn missing_explicit_path_does_not_fall_back() {
    let dir = crate::tempfile::tempdir().unwrap();
    fs::write(dir.path().join("names.txt"), "ok\n").unwrap();
    let l = locator(dir.path(), None);
    let err = l
        .resolve(Dataset::Names, Some(&dir.path().join("nope.txt")))
        .unwrap_err();
    assert!(matches!(err, DataError::MissingExplicit { .. }), "{err}");
}

#[test]
fn unreachable_server_gives_an_error_that_says_what_to_do() {
    // A port nothing listens on: bind, note the port, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = crate::tempfile::tempdir().unwrap();
    let l = locator(
        &dir.path().join("data"),
        Some(format!("http://127.0.0.1:{port}")),
    );
    let msg = l
        .resolve(Dataset::TinyShakespeare, None)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("tinyshakespeare.txt not found"), "{msg}");
    assert!(
        msg.contains("Put tinyshakespeare.txt in ./data or set CHARLM_DATA_DIR"),
        "{msg}"
    );
    assert!(files_in(&dir.path().join("data")).is_empty());
    let off = Locator {
        allow_download: false,
        ..l
    };
    assert!(off
        .resolve(Dataset::Names, None)
        .unwrap_err()
        .to_string()
        .contains("turned off"));
}

#[test]
fn bad_files_give_clear_errors() {
    let dir = crate::tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n);
    fs::write(path("empty.txt"), "").unwrap();
    fs::write(path("blank.txt"), "\n \n\n").unwrap();
    fs::write(path("latin1.txt"), b"emma\nzo\xeb\n").unwrap();
    fs::write(path("dots.txt"), "emma\nj.r.r\n").unwrap();

    assert!(matches!(
        data::read_names(&path("empty.txt")),
        Err(DataError::Empty { .. })
    ));
    assert!(matches!(
        data::read_names(&path("blank.txt")),
        Err(DataError::NoWords { .. })
    ));
    match data::read_names(&path("latin1.txt")) {
        Err(DataError::NotUtf8 { line, offset, .. }) => assert_eq!((line, offset), (2, 7)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        data::read_names(&path("dots.txt")),
        Err(DataError::ReservedChar { line: 2, .. })
    ));
    assert!(matches!(
        data::read_names(&path("missing.txt")),
        Err(DataError::Io(_))
    ));
    assert!(
        matches!(data::read_text(dir.path()), Err(DataError::Io(_))),
        "a folder is not a file"
    );
}

#[test]
fn shipped_checksums_match_the_shared_data() {
    // The real files, wherever the locator finds them, are the published ones.
    for ds in [Dataset::Names, Dataset::TinyShakespeare] {
        let path = Locator::from_env()
            .resolve(ds, None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            data::sha256_file(&path).unwrap(),
            ds.sha256(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn names_parsing_trims_and_skips_blank_lines() {
    let w = data::parse_names("emma\r\n\n  olivia \nava", Path::new("x")).unwrap();
    assert_eq!(w, ["emma", "olivia", "ava"]);
}

#[test]
fn a_reserved_dot_is_rejected_with_its_line() {
    let e = data::parse_names("emma\nj.r\n", Path::new("x")).unwrap_err();
    assert!(matches!(e, DataError::ReservedChar { line: 2, .. }), "{e}");
}

#[test]
fn the_url_override_appends_the_file_name() {
    let l = Locator {
        base_url: Some("http://127.0.0.1:1/d/".into()),
        ..Locator::default()
    };
    assert_eq!(l.url_for(Dataset::Names), "http://127.0.0.1:1/d/names.txt");
    assert_eq!(
        Locator::default().url_for(Dataset::Names),
        Dataset::Names.url()
    );
}
