//! Helpers shared by the chapter tests.

use std::path::Path;

/// Asserts that every file `charlm figures` would write for a stage (here
/// written into `fresh`) equals the committed one in `chapters/figures/<stage>`.
/// Returns how many files were compared.
pub fn assert_book_files_current(fresh: &Path, stage: &str) -> usize {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("chapters/figures")
        .join(stage);
    let mut n = 0;
    for entry in std::fs::read_dir(fresh).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        let old = std::fs::read_to_string(committed.join(name)).unwrap_or_default();
        assert!(
            old == std::fs::read_to_string(&path).unwrap(),
            "chapters/figures/{stage}/{} is stale: run `cargo run --release -- figures`",
            name.to_string_lossy()
        );
        n += 1;
    }
    n
}
