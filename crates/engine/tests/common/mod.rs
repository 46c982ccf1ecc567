//! Helpers shared by the golden-file tests (`scenarios.rs`, `invalid.rs`).

use std::path::{Path, PathBuf};

/// `WEFT_BLESS=1`: rewrite the expected files instead of comparing.
pub fn blessing() -> bool {
    std::env::var_os("WEFT_BLESS").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Files in `dir` whose names end with `suffix`, sorted.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix))
        })
        .collect();
    out.sort();
    out
}

/// `NAME` of `dir/NAME.suffix`.
pub fn stem(path: &Path, suffix: &str) -> String {
    let name = path.file_name().unwrap().to_str().unwrap();
    name.strip_suffix(suffix).unwrap().to_owned()
}
