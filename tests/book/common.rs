//! Fixtures every chapter's tests share, each made once per test run: the
//! data sets (which CI always has: a missing file fails loudly), the text
//! as a corpus, and the check that the book's generated files are current.

use std::path::Path;
use std::sync::OnceLock;

use charlm::data::text::Corpus;
use charlm::data::DataSets;
use charlm::stages::Stage;

/// names.txt and tinyshakespeare.txt, read once.
pub fn data() -> &'static DataSets {
    static DATA: OnceLock<DataSets> = OnceLock::new();
    DATA.get_or_init(DataSets::new)
}

/// The 32,033 names.
pub fn words() -> &'static [String] {
    data()
        .names()
        .unwrap_or_else(|e| panic!("names.txt is needed for these tests: {e}"))
}

/// Tiny Shakespeare.
pub fn text() -> &'static str {
    data()
        .text()
        .unwrap_or_else(|e| panic!("tinyshakespeare.txt is needed for these tests: {e}"))
}

/// Tiny Shakespeare as token ids, split 90/10.
pub fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| Corpus::new(text()).unwrap())
}

/// Writes `stage`'s book files into a scratch folder and asserts that each
/// equals the committed one in `chapters/figures/<stage>`. Returns how many
/// files were compared.
pub fn assert_book_files_current(stage: &dyn Stage) -> usize {
    let fresh = crate::tempfile::tempdir().unwrap();
    stage.write_book_files(data(), fresh.path()).unwrap();
    assert_files_current(stage.id(), fresh.path())
}

/// Asserts that every file in `fresh` equals the committed one in
/// `chapters/figures/<id>`; returns how many were compared.
pub fn assert_files_current(id: &str, fresh: &Path) -> usize {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("chapters/figures")
        .join(id);
    let mut n = 0;
    for entry in std::fs::read_dir(fresh).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        let old = std::fs::read_to_string(committed.join(name)).unwrap_or_default();
        assert!(
            old == std::fs::read_to_string(&path).unwrap(),
            "chapters/figures/{}/{} is stale: run `cargo run --release -- figures`",
            id,
            name.to_string_lossy()
        );
        n += 1;
    }
    n
}

/// The largest |a − b| over two slices of the same length.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}
