//! Golden scenario tests: every `tests/scenarios/NAME.yaml` runs from the trigger payload
//! in `NAME.input.json`, and its whole execution record must equal `NAME.expected.json`.
//! A scenario run with several payloads has one pair per case instead:
//! `NAME.CASE.input.json` → `NAME.CASE.expected.json`.
//!
//! The record is made reproducible first: the execution id is `exec-golden`, `started_at`
//! is the fixed clock's time, `duration_ms` and every step's `duration_us` are `0`, and
//! `{{now}}` reads the fixed clock `2024-05-01T09:30:00.000Z`.
//!
//! To add a scenario, write `NAME.yaml` and `NAME.input.json`, then rewrite the expected
//! files and **read the new one** before committing it:
//!
//! ```text
//! WEFT_BLESS=1 cargo test -p weft-engine --test scenarios
//! ```
//!
//! An `*.expected.json` without its input fails the test, so stale files do not linger.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{blessing, files_ending, stem};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use weft_engine::exec::{ExecutionRecord, Executor};
use weft_engine::validate::{load_file, Scenario};
use weft_engine::{
    field, Bundle, ErrorKind, FieldType, Input, Kind, Module, ModuleError, ModuleSpec, Registry,
    RunContext,
};

/// The time `{{now}}` and `started_at` show in golden records.
const FIXED_NOW: &str = "2024-05-01T09:30:00.000Z";

/// `test.fail`: fails when `fail` is true, with the Make error type named by `kind`
/// (default `DataError`) and `message` (default `asked to fail`); otherwise outputs its
/// input unchanged.
struct Fail;

static FAIL: ModuleSpec = ModuleSpec {
    id: "test.fail",
    kind: Kind::Action,
    label: "Fail on demand",
    help: "Test module: fails when `fail` is true, else echoes its input.",
    app: None,
    fields: &[
        field("fail", FieldType::Boolean).help("Fail this operation?"),
        field("kind", FieldType::Text).help("The Make error type to fail with."),
        field("message", FieldType::Text).help("The error message."),
        field("value", FieldType::Any).help("Echoed when it does not fail."),
    ],
    output: &[],
};

#[async_trait]
impl Module for Fail {
    fn spec(&self) -> &'static ModuleSpec {
        &FAIL
    }

    async fn run(&self, _cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        if input.get("fail") != Some(&Value::Bool(true)) {
            return Ok(vec![input.into_value()]);
        }
        let kind = match input.text("kind").unwrap_or("DataError") {
            "ConnectionError" => ErrorKind::ConnectionError,
            "RateLimitError" => ErrorKind::RateLimitError,
            "DataError" => ErrorKind::DataError,
            "InvalidAccessTokenError" => ErrorKind::InvalidAccessTokenError,
            "RuntimeError" => ErrorKind::RuntimeError,
            "IncompleteDataError" => ErrorKind::IncompleteDataError,
            other => {
                return Err(ModuleError::runtime(format!(
                    "test.fail: unknown error kind `{other}`"
                )))
            }
        };
        let message = input.text("message").unwrap_or("asked to fail");
        Err(ModuleError::new(kind, message))
    }
}

static TEST_MODULES: &[&dyn Module] = &[&Fail];

fn registry() -> Registry {
    Registry::new([weft_engine::builtin::modules(), TEST_MODULES], []).unwrap()
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

fn fixed_clock() -> weft_engine::template::Clock {
    let now = chrono::DateTime::parse_from_rfc3339(FIXED_NOW)
        .unwrap()
        .with_timezone(&chrono::Utc);
    Arc::new(move || now)
}

/// Loads a scenario with the fixed clock, or panics with its rendered load error.
fn load(path: &Path) -> Scenario {
    let mut scenario = match load_file(path, &registry()) {
        Ok(s) => s,
        Err(e) => panic!("{} does not load:\n{e}", path.display()),
    };
    scenario.templates.set_clock(fixed_clock());
    scenario
}

/// Makes a record reproducible: fixed id and start, zero durations.
fn normalize(mut record: ExecutionRecord) -> ExecutionRecord {
    record.id = "exec-golden".to_owned();
    FIXED_NOW.clone_into(&mut record.started_at);
    record.duration_ms = 0;
    for step in &mut record.steps {
        step.duration_us = 0;
    }
    record
}

/// The payload stems of scenario `name`: `NAME` for `NAME.input.json`, `NAME.CASE` for
/// each `NAME.CASE.input.json`.
fn cases(name: &str) -> Vec<String> {
    files_ending(&dir(), ".input.json")
        .iter()
        .map(|p| stem(p, ".input.json"))
        .filter(|c| {
            c == name
                || c.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|case| !case.is_empty() && !case.contains('.'))
        })
        .collect()
}

/// Runs scenario `name` with the payload of `case` (a stem from [`cases`]).
fn run(name: &str, case: &str) -> ExecutionRecord {
    let scenario = load(&dir().join(format!("{name}.yaml")));
    let input_path = dir().join(format!("{case}.input.json"));
    let input = std::fs::read_to_string(&input_path)
        .unwrap_or_else(|e| panic!("{}: {e}", input_path.display()));
    let payload: Value =
        serde_json::from_str(&input).unwrap_or_else(|e| panic!("{}: {e}", input_path.display()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let record = rt.block_on(Executor::new(&scenario).with_id("exec-golden").run(payload));
    normalize(record)
}

/// The first line where two texts differ, with a few lines of each around it.
fn first_difference(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let at = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    let window = |lines: &[&str]| {
        lines
            .iter()
            .enumerate()
            .skip(at.saturating_sub(3))
            .take(7)
            .map(|(i, l)| format!("{:>5} {l}", i + 1))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "first difference at line {}\n--- expected\n{}\n--- actual\n{}",
        at + 1,
        window(&e),
        window(&a)
    )
}

#[test]
fn golden_scenarios() {
    let bless = blessing();
    let scenarios = files_ending(&dir(), ".yaml");
    assert!(
        scenarios.len() >= 10,
        "expected the golden scenarios in {}",
        dir().display()
    );
    let mut failures = Vec::new();
    let mut runs = 0;
    for path in &scenarios {
        let name = stem(path, ".yaml");
        let cases = cases(&name);
        if cases.is_empty() {
            failures.push(format!(
                "{name}: no {name}.input.json (nor {name}.CASE.input.json)"
            ));
        }
        for case in cases {
            runs += 1;
            let record = run(&name, &case);
            let mut actual = serde_json::to_string_pretty(&record).unwrap();
            actual.push('\n');
            let expected_path = dir().join(format!("{case}.expected.json"));
            if bless {
                std::fs::write(&expected_path, &actual).unwrap();
                continue;
            }
            match std::fs::read_to_string(&expected_path) {
                Ok(expected) if expected == actual => {}
                Ok(expected) => failures.push(format!(
                    "{case}: the execution record differs from {case}.expected.json; {}",
                    first_difference(&expected, &actual)
                )),
                Err(e) => failures.push(format!(
                    "{case}: cannot read {case}.expected.json ({e}); run with WEFT_BLESS=1 to write it, then read it"
                )),
            }
        }
    }
    for expected in files_ending(&dir(), ".expected.json") {
        let case = stem(&expected, ".expected.json");
        if !dir().join(format!("{case}.input.json")).exists() {
            failures.push(format!(
                "{case}.expected.json has no {case}.input.json; delete it"
            ));
        }
    }
    for input in files_ending(&dir(), ".input.json") {
        let case = stem(&input, ".input.json");
        let name = case.split('.').next().unwrap_or_default();
        if !dir().join(format!("{name}.yaml")).exists() {
            failures.push(format!("{case}.input.json has no {name}.yaml"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} golden runs failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The `break` golden record holds everything needed to resume: resuming its incomplete
/// entry runs the failed module again (it fails again, so the attempt is counted) and,
/// once the cause is gone, everything downstream of it.
#[test]
fn break_record_resumes_from_the_failed_module() {
    let record = run("error_break", "error_break");
    assert_eq!(record.incomplete.len(), 1, "{record:#?}");
    let scenario = load(&dir().join("error_break.yaml"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();

    // Same scope: the module fails the same way, and the entry comes back with one more attempt.
    let inc = record.incomplete[0].clone();
    let again = rt.block_on(Executor::new(&scenario).resume(&inc, record.trigger().clone()));
    assert_eq!(again.status.name(), "incomplete", "{again:#?}");
    assert_eq!(again.incomplete.len(), 1);
    assert_eq!(again.incomplete[0].attempts, 1);
    assert_eq!(again.incomplete[0].scope, inc.scope);
    assert_eq!(again.steps.len(), 1);
    assert_eq!(again.steps[0].module_id, inc.module_id);

    // The data fixed (as a person would before `weft executions retry`): it goes on from
    // the failed module, with the upstream outputs from the stored scope.
    let mut fixed = inc.clone();
    fixed.scope["2"]["broken"] = Value::Bool(false);
    let done = rt.block_on(Executor::new(&scenario).resume(&fixed, record.trigger().clone()));
    assert_eq!(done.status.name(), "success", "{done:#?}");
    let ran: Vec<u32> = done.steps.iter().map(|s| s.module_id).collect();
    assert_eq!(ran, vec![3, 4, 5], "{done:#?}");
}
