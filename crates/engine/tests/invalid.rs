//! Load-error snapshots: every `tests/invalid/NAME.yaml` must fail to load, and its
//! rendered [`LoadError`](weft_engine::diagnostic::LoadError) (the text `weft validate`
//! prints) must equal `NAME.expected.txt`, with the file's path shortened to its name.
//!
//! Each expected text names `file:line:column`, the module and field, and a `help:` line
//! with the fix. To add a case, write `NAME.yaml`, then rewrite the expected files and
//! **read the new one** before committing it:
//!
//! ```text
//! WEFT_BLESS=1 cargo test -p weft-engine --test invalid
//! ```
//!
//! An `*.expected.txt` without its scenario fails the test, so stale files do not linger.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use weft_engine::validate::load_file;
use weft_engine::Registry;

/// Read by `missing_env_var.yaml`; nothing sets it.
const UNSET_VAR: &str = "WEFT_TEST_SURELY_UNSET_VAR";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid")
}

fn blessing() -> bool {
    std::env::var_os("WEFT_BLESS").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Files in the folder whose names end with `suffix`, sorted.
fn files_ending(suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir())
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

fn stem(path: &Path, suffix: &str) -> String {
    let name = path.file_name().unwrap().to_str().unwrap();
    name.strip_suffix(suffix).unwrap().to_owned()
}

/// The rendered load error of one file, its path shortened to the file name; `None` when
/// it loads.
fn rendered(path: &Path, registry: &Registry) -> Option<String> {
    let err = load_file(path, registry).err()?;
    let file_name = path.file_name().unwrap().to_str().unwrap();
    Some(
        err.to_string()
            .replace(&path.display().to_string(), file_name),
    )
}

#[test]
fn load_errors_match_their_snapshots() {
    assert!(
        std::env::var_os(UNSET_VAR).is_none(),
        "{UNSET_VAR} must not be set for these tests"
    );
    let registry = Registry::new([weft_engine::builtin::modules()], []).unwrap();
    let bless = blessing();
    let cases = files_ending(".yaml");
    assert!(
        cases.len() >= 15,
        "expected the invalid scenarios in {}",
        dir().display()
    );
    let mut failures = Vec::new();
    for path in &cases {
        let name = stem(path, ".yaml");
        let Some(actual) = rendered(path, &registry) else {
            failures.push(format!("{name}.yaml loads, but it should not"));
            continue;
        };
        let expected_path = dir().join(format!("{name}.expected.txt"));
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{name}: the load error differs from {name}.expected.txt\n--- expected\n{expected}--- actual\n{actual}"
            )),
            Err(e) => failures.push(format!(
                "{name}: cannot read {name}.expected.txt ({e}); run with WEFT_BLESS=1 to write it, then read it"
            )),
        }
    }
    for expected in files_ending(".expected.txt") {
        let name = stem(&expected, ".expected.txt");
        if !dir().join(format!("{name}.yaml")).exists() {
            failures.push(format!("{name}.expected.txt has no {name}.yaml; delete it"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} load-error snapshots failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Every snapshot locates its problem and says how to fix it.
#[test]
fn every_snapshot_has_a_location_and_a_fix() {
    for path in files_ending(".expected.txt") {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let yaml = name.replace(".expected.txt", ".yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let blocks: Vec<&str> = text.split("\n\n").collect();
        for block in blocks {
            assert!(
                block.starts_with("error: "),
                "{name}: a diagnostic starts with `error: `:\n{block}"
            );
            assert!(
                block.contains(&format!("  --> {yaml}:")),
                "{name}: a diagnostic names {yaml}:line:column:\n{block}"
            );
            assert!(
                block.contains("\nhelp: "),
                "{name}: a diagnostic has a `help:` line:\n{block}"
            );
        }
    }
}
