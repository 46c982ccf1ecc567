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
//!
//! `docs/errors.md`, the catalogue of load errors, is generated from these files: each
//! scenario's first comment line is its title and the next comment lines explain it. The
//! same `WEFT_BLESS=1` run rewrites it, and the test fails when it is stale.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{blessing, files_ending, stem};

use weft_engine::validate::load_file;
use weft_engine::Registry;

/// Read by `missing_env_var.yaml`; nothing sets it.
const UNSET_VAR: &str = "WEFT_TEST_SURELY_UNSET_VAR";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid")
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
    let cases = files_ending(&dir(), ".yaml");
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
    for expected in files_ending(&dir(), ".expected.txt") {
        let name = stem(&expected, ".expected.txt");
        if !dir().join(format!("{name}.yaml")).exists() {
            failures.push(format!("{name}.expected.txt has no {name}.yaml; delete it"));
        }
    }
    let doc = errors_doc(&cases, &registry);
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/errors.md");
    if bless {
        std::fs::write(&doc_path, &doc).unwrap();
    } else if std::fs::read_to_string(&doc_path).ok().as_deref() != Some(doc.as_str()) {
        failures.push(
            "docs/errors.md is stale; run with WEFT_BLESS=1 to regenerate it, then read the diff"
                .to_owned(),
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} load-error snapshots failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// `docs/errors.md`: one section per invalid scenario, titled and explained by the
/// scenario's leading comment lines, with the file and the error it gives.
fn errors_doc(cases: &[PathBuf], registry: &Registry) -> String {
    let mut doc = String::from(
        "# Load errors\n\n\
         <!-- Generated from crates/engine/tests/invalid/ by \
         `WEFT_BLESS=1 cargo test -p weft-engine --test invalid`; do not edit by hand. -->\n\n\
         weft checks a scenario whole before running anything (`weft validate FILE`, and `weft run`\n\
         and `weft serve` before they start) and reports every problem at once. Each names\n\
         `file:line:column`, the module and the field, quotes the line, and ends with a `help:`\n\
         line saying how to fix it. This page shows one example of each kind of problem: the\n\
         scenario file, then exactly what weft prints for it (the load-error snapshot tests\n\
         check both). The format itself is in [scenario-format.md](scenario-format.md).\n",
    );
    for path in cases {
        let name = path.file_name().unwrap().to_str().unwrap();
        let source = std::fs::read_to_string(path).unwrap();
        let comments: Vec<&str> = source
            .lines()
            .map_while(|l| l.strip_prefix('#'))
            .map(str::trim)
            .collect();
        let (title, explanation) = comments
            .split_first()
            .unwrap_or_else(|| panic!("{name}: start with a `# Title` comment line"));
        let rendered = rendered(path, registry).unwrap_or_default();
        doc.push_str(&format!("\n## {title}\n\n"));
        if !explanation.is_empty() {
            doc.push_str(&explanation.join("\n"));
            doc.push_str("\n\n");
        }
        doc.push_str(&format!(
            "`{name}`:\n\n```yaml\n{source}```\n\n```text\n{rendered}```\n"
        ));
    }
    doc
}

/// Every snapshot locates its problem and says how to fix it.
#[test]
fn every_snapshot_has_a_location_and_a_fix() {
    for path in files_ending(&dir(), ".expected.txt") {
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
