//! Executor tests: whole scenarios from YAML, asserting on the execution record.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serde_json::{json, Value};

use super::*;
use crate::module::{Bundle, ErrorKind, Input, Module, ModuleError, RunContext};
use crate::registry::Registry;
use crate::spec::{field, FieldType, Kind, ModuleSpec};
use crate::validate::{load_str, LoadOptions};

/// `test.fail`: fails with `kind` when `fail` is true, else echoes its input.
struct Fail;
static FAIL: ModuleSpec = ModuleSpec {
    id: "test.fail",
    kind: Kind::Action,
    label: "Fail on demand",
    help: "Test module.",
    app: None,
    fields: &[
        field("fail", FieldType::Boolean).help("Fail?"),
        field("kind", FieldType::Text).help("Error kind."),
        field("value", FieldType::Any).help("Echoed."),
    ],
    output: &[],
};
#[async_trait]
impl Module for Fail {
    fn spec(&self) -> &'static ModuleSpec {
        &FAIL
    }
    async fn run(&self, _cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        if input.get("fail") == Some(&Value::Bool(true)) {
            let kind = match input.text("kind") {
                Some("ConnectionError") => ErrorKind::ConnectionError,
                _ => ErrorKind::DataError,
            };
            return Err(ModuleError::new(kind, "asked to fail"));
        }
        Ok(vec![input.into_value()])
    }
}

/// `test.flaky`: fails while `HEALTHY` is false.
struct Flaky;
static HEALTHY: AtomicBool = AtomicBool::new(false);
static FLAKY: ModuleSpec = ModuleSpec {
    id: "test.flaky",
    kind: Kind::Action,
    label: "Flaky",
    help: "Test module.",
    app: None,
    fields: &[field("value", FieldType::Any).help("Echoed.")],
    output: &[],
};
#[async_trait]
impl Module for Flaky {
    fn spec(&self) -> &'static ModuleSpec {
        &FLAKY
    }
    async fn run(&self, _cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        if HEALTHY.load(Ordering::SeqCst) {
            Ok(vec![input.into_value()])
        } else {
            Err(ModuleError::connection("service unavailable"))
        }
    }
}

static TEST_MODULES: &[&dyn Module] = &[&Fail, &Flaky];

fn registry() -> Registry {
    Registry::new([crate::builtin::modules(), TEST_MODULES], []).unwrap()
}

fn load(src: &str) -> crate::validate::Scenario {
    match load_str("test.yaml", src, &registry(), &LoadOptions::default()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

async fn run(src: &str, payload: Value) -> ExecutionRecord {
    let sc = load(src);
    Executor::new(&sc).with_id("exec-1").run(payload).await
}

fn trace(r: &ExecutionRecord) -> Vec<(u32, usize)> {
    r.steps
        .iter()
        .map(|s| (s.module_id, s.output.len()))
        .collect()
}

#[tokio::test]
async fn router_runs_passing_routes_and_fallback_only_when_none_passed() {
    let src = r#"
name: router
flow:
  - { id: 1, module: webhook.custom, params: { name: in } }
  - id: 2
    module: flow.router
    routes:
      - name: vip
        filter: { any: [ { all: [ { left: "{{1.tier}}", op: text.equal, right: vip } ] } ] }
        flow: [ { id: 3, module: flow.set_variables, map: { route: vip, who: "{{upper 1.name}}" } } ]
      - name: big
        filter: { any: [ { all: [ { left: "{{1.total}}", op: number.greater, right: 100 } ] } ] }
        flow: [ { id: 4, module: flow.set_variables, map: { route: big } } ]
      - name: otherwise
        fallback: true
        flow: [ { id: 5, module: flow.set_variables, map: { route: fallback } } ]
"#;
    let r = run(src, json!({"tier": "vip", "name": "ada", "total": 500})).await;
    assert_eq!(r.status, Status::Success);
    assert_eq!(trace(&r), vec![(1, 1), (3, 1), (4, 1)]);
    assert_eq!(r.steps[1].output[0], json!({"route": "vip", "who": "ADA"}));
    assert_eq!(r.operations, 3);

    let r = run(src, json!({"tier": "basic", "total": 5})).await;
    assert_eq!(trace(&r), vec![(1, 1), (5, 1)]);
}

#[tokio::test]
async fn iterator_and_aggregator_collect_per_source_operation() {
    let src = r#"
name: iterate
flow:
  - { id: 1, module: webhook.custom, params: { name: in } }
  - { id: 2, module: flow.iterator, map: { array: "{{1.items}}" } }
  - id: 3
    module: flow.set_variables
    filter: { any: [ { all: [ { left: "{{2.qty}}", op: number.greater, right: 0 } ] } ] }
    map: { sku: "{{2.sku}}", double: "{{mul 2.qty 2}}" }
  - { id: 4, module: flow.array_aggregator, source: 2, map: { sku: "{{3.sku}}", double: "{{3.double}}" } }
  - { id: 5, module: flow.set_variables, map: { count: "{{length 4.array}}", order: "{{1.order}}" } }
"#;
    let r = run(
        src,
        json!({"order": "A1", "items": [{"sku": "x", "qty": 1}, {"sku": "y", "qty": 0}, {"sku": "z", "qty": 3}]}),
    )
    .await;
    assert_eq!(r.status, Status::Success, "{r:#?}");
    assert_eq!(
        trace(&r),
        vec![(1, 1), (2, 3), (3, 1), (3, 1), (4, 1), (5, 1)]
    );
    assert_eq!(
        r.steps[4].output[0],
        json!({"array": [{"sku": "x", "double": 2}, {"sku": "z", "double": 6}]})
    );
    assert_eq!(r.steps[5].output[0], json!({"count": 2, "order": "A1"}));
}

#[tokio::test]
async fn aggregator_group_by_and_text_aggregator_inside_a_route() {
    let src = r#"
name: groups
flow:
  - { id: 1, module: webhook.custom, params: { name: in } }
  - id: 2
    module: flow.router
    routes:
      - name: all
        flow:
          - { id: 3, module: flow.iterator, map: { array: "{{1.items}}" } }
          - { id: 4, module: flow.array_aggregator, source: 3, map: { group_by: "{{3.kind}}", name: "{{3.name}}" } }
      - name: text
        flow:
          - { id: 5, module: flow.iterator, map: { array: "{{1.items}}" } }
          - { id: 6, module: flow.text_aggregator, source: 5, map: { text: "{{5.name}}", separator: ", " } }
"#;
    let items = json!({"items": [{"kind": "a", "name": "n1"}, {"kind": "b", "name": "n2"}, {"kind": "a", "name": "n3"}]});
    let r = run(src, items).await;
    assert_eq!(r.status, Status::Success, "{r:#?}");
    let agg = r.steps.iter().find(|s| s.module_id == 4).unwrap();
    assert_eq!(
        agg.output,
        vec![
            json!({"key": "a", "array": [{"name": "n1"}, {"name": "n3"}]}),
            json!({"key": "b", "array": [{"name": "n2"}]}),
        ]
    );
    let text = r.steps.iter().find(|s| s.module_id == 6).unwrap();
    assert_eq!(text.output, vec![json!({"text": "n1, n2, n3"})]);
}

#[tokio::test]
async fn nested_iterators_aggregate_per_outer_bundle() {
    let src = r#"
name: nested
flow:
  - { id: 1, module: webhook.custom, params: { name: in } }
  - { id: 2, module: flow.iterator, map: { array: "{{1.orders}}" } }
  - { id: 3, module: flow.iterator, map: { array: "{{2.lines}}" } }
  - { id: 4, module: flow.array_aggregator, source: 3 }
  - { id: 5, module: flow.set_variables, map: { order: "{{2.id}}", n: "{{length 4.array}}" } }
"#;
    let r = run(
        src,
        json!({"orders": [{"id": 1, "lines": [1, 2]}, {"id": 2, "lines": [3]}]}),
    )
    .await;
    assert_eq!(r.status, Status::Success, "{r:#?}");
    let outs: Vec<&Value> = r
        .steps
        .iter()
        .filter(|s| s.module_id == 5)
        .map(|s| &s.output[0])
        .collect();
    assert_eq!(
        outs,
        vec![&json!({"order": 1, "n": 2}), &json!({"order": 2, "n": 1})]
    );
    let agg: Vec<&Value> = r
        .steps
        .iter()
        .filter(|s| s.module_id == 4)
        .map(|s| &s.output[0])
        .collect();
    assert_eq!(agg[0], &json!({"array": [{"value": 1}, {"value": 2}]}));
}

fn directive_scenario(directive: &str) -> String {
    format!(
        r#"
name: directive
flow:
  - {{ id: 1, module: webhook.custom, params: {{ name: in }} }}
  - {{ id: 2, module: flow.iterator, map: {{ array: "{{{{1.items}}}}" }} }}
  - id: 3
    module: test.fail
    map: {{ fail: "{{{{2.bad}}}}", value: "{{{{2.n}}}}" }}
    on_error: {directive}
  - {{ id: 4, module: flow.set_variables, map: {{ got: "{{{{3.value}}}}" }} }}
"#
    )
}

fn items() -> Value {
    json!({"items": [{"n": 1, "bad": false}, {"n": 2, "bad": true}, {"n": 3, "bad": false}]})
}

#[tokio::test]
async fn ignore_drops_the_bundle_and_warns() {
    let r = run(&directive_scenario("{ directive: ignore }"), items()).await;
    assert_eq!(r.status, Status::Warning);
    let got: Vec<&Value> = r
        .steps
        .iter()
        .filter(|s| s.module_id == 4)
        .map(|s| &s.output[0]["got"])
        .collect();
    assert_eq!(got, vec![&json!(1), &json!(3)]);
    assert_eq!(r.warnings.len(), 1);
    assert!(
        r.warnings[0].contains("module `3` failed"),
        "{:?}",
        r.warnings
    );
}

#[tokio::test]
async fn resume_substitutes_output() {
    let r = run(
        &directive_scenario("{ directive: resume, output: { value: \"fallback-{{2.n}}\" } }"),
        items(),
    )
    .await;
    assert_eq!(r.status, Status::Success);
    let got: Vec<&Value> = r
        .steps
        .iter()
        .filter(|s| s.module_id == 4)
        .map(|s| &s.output[0]["got"])
        .collect();
    assert_eq!(got, vec![&json!(1), &json!("fallback-2"), &json!(3)]);
}

#[tokio::test]
async fn commit_stops_as_success() {
    let r = run(&directive_scenario("{ directive: commit }"), items()).await;
    assert_eq!(r.status, Status::Success);
    assert_eq!(trace(&r), vec![(1, 1), (2, 3), (3, 1), (4, 1), (3, 0)]);
}

#[tokio::test]
async fn rollback_is_the_default_and_stops_as_error() {
    let src = directive_scenario("{ directive: rollback }");
    let r = run(&src, items()).await;
    assert_eq!(r.status, Status::Error);
    assert_eq!(
        r.error,
        Some(StepError {
            kind: ErrorKind::DataError,
            message: "asked to fail".into()
        })
    );
    assert_eq!(trace(&r), vec![(1, 1), (2, 3), (3, 1), (4, 1), (3, 0)]);
    let no_handler = src.replace("    on_error: { directive: rollback }\n", "");
    let r2 = run(&no_handler, items()).await;
    assert_eq!(r2.status, Status::Error);
    assert_eq!(trace(&r2), trace(&r));
}

#[tokio::test]
async fn break_stores_incomplete_and_continues_other_bundles() {
    let r = run(
        &directive_scenario("{ directive: break, retries: 2, interval: 30s }"),
        items(),
    )
    .await;
    assert_eq!(r.status, Status::Incomplete);
    let got: Vec<&Value> = r
        .steps
        .iter()
        .filter(|s| s.module_id == 4)
        .map(|s| &s.output[0]["got"])
        .collect();
    assert_eq!(got, vec![&json!(1), &json!(3)]);
    assert_eq!(r.incomplete.len(), 1);
    let inc = &r.incomplete[0];
    assert_eq!((inc.module_id, inc.retries, inc.interval_secs), (3, 2, 30));
    assert_eq!(inc.scope["2"], json!({"n": 2, "bad": true}));
    assert_eq!(inc.scope["1"], items());
}

#[tokio::test]
async fn break_resumes_from_the_failed_module() {
    let src = r#"
name: resume
flow:
  - { id: 1, module: webhook.custom, params: { name: in } }
  - id: 2
    module: test.flaky
    map: { value: "{{1.n}}" }
    on_error: { directive: break, retries: 1, interval: 1s }
  - { id: 3, module: flow.set_variables, map: { done: "{{2.value}}" } }
"#;
    let sc = load(src);
    HEALTHY.store(false, Ordering::SeqCst);
    let first = Executor::new(&sc).run(json!({"n": 7})).await;
    assert_eq!(first.status, Status::Incomplete);
    let inc = first.incomplete[0].clone();
    let again = Executor::new(&sc)
        .resume(&inc, first.trigger().clone())
        .await;
    assert_eq!(again.status, Status::Incomplete);
    assert_eq!(again.incomplete[0].attempts, 1);
    HEALTHY.store(true, Ordering::SeqCst);
    let done = Executor::new(&sc)
        .resume(&again.incomplete[0], first.trigger().clone())
        .await;
    assert_eq!(done.status, Status::Success, "{done:#?}");
    assert_eq!(trace(&done), vec![(2, 1), (3, 1)]);
    assert_eq!(done.steps[1].output[0], json!({"done": 7}));
}

#[tokio::test]
async fn handler_flow_sees_error_type_and_message() {
    let src = r#"
name: handler
flow:
  - { id: 1, module: webhook.custom, params: { name: in } }
  - id: 2
    module: test.fail
    map: { fail: true, kind: ConnectionError }
    on_error:
      flow:
        - { id: 10, module: flow.set_variables, map: { type: "{{error.type}}", message: "{{error.message}}", from: "{{1.who}}" } }
  - { id: 3, module: flow.set_variables, map: { never: true } }
"#;
    let r = run(src, json!({"who": "ada"})).await;
    assert_eq!(
        r.status,
        Status::Warning,
        "handler without directive ignores"
    );
    assert_eq!(trace(&r), vec![(1, 1), (2, 0), (10, 1)]);
    assert_eq!(
        r.steps[2].output[0],
        json!({"type": "ConnectionError", "message": "asked to fail", "from": "ada"})
    );
}

#[tokio::test]
async fn max_operations_stops_runaway_fan_out() {
    let src = r#"
name: runaway
settings: { max_operations: 5 }
flow:
  - { id: 1, module: webhook.custom, params: { name: in } }
  - { id: 2, module: flow.iterator, map: { array: "{{1.items}}" } }
  - { id: 3, module: flow.set_variables, map: { v: "{{2.value}}" } }
"#;
    let r = run(src, json!({"items": [1, 2, 3, 4, 5, 6]})).await;
    assert_eq!(r.status, Status::Error);
    assert_eq!(r.operations, 5);
    assert_eq!(r.steps.len(), 5, "one step per operation");
    let e = r.error.unwrap();
    assert_eq!(e.kind, ErrorKind::RuntimeError);
    assert!(
        e.message.contains("exceeded `max_operations` (5)"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn coercion_failure_names_module_field_template_and_value() {
    let src = r#"
name: coerce
flow:
  - { id: 1, module: webhook.custom, params: { name: in } }
  - { id: 2, module: flow.sleep, map: { seconds: "{{1.wait}}" } }
"#;
    let r = run(src, json!({"wait": "soon"})).await;
    assert_eq!(r.status, Status::Error);
    let e = r.error.unwrap();
    assert_eq!(e.kind, ErrorKind::DataError);
    assert!(
        e.message.contains("module `2` field `seconds`"),
        "{}",
        e.message
    );
    assert!(e.message.contains("`soon`"), "{}", e.message);
    assert!(e.message.contains("{{1.wait}}"), "{}", e.message);
}

#[tokio::test]
async fn record_serializes_to_the_documented_shape() {
    let src = r#"
name: shape
flow:
  - { id: 1, module: webhook.custom, params: { name: in } }
  - { id: 2, module: flow.set_variables, map: { hello: "{{1.name}}" } }
"#;
    let r = run(src, json!({"name": "Ada"})).await;
    let v = serde_json::to_value(&r).unwrap();
    for key in [
        "id",
        "scenario",
        "status",
        "operations",
        "duration_ms",
        "trigger",
        "steps",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["status"], "success");
    assert_eq!(v["steps"][1]["module_id"], 2);
    assert_eq!(v["steps"][1]["module"], "flow.set_variables");
    assert_eq!(v["steps"][1]["input"], json!({"hello": "Ada"}));
    assert_eq!(v["steps"][1]["output"], json!([{"hello": "Ada"}]));
    assert_eq!(v["steps"][1]["error"], Value::Null);
}

#[tokio::test]
async fn secrets_are_redacted_from_the_record() {
    let mut rec = ExecutionRecord::new("x", "s", "", json!({"t": "tok-SECRET-1"}));
    rec.status = Status::Error;
    rec.operations = 1;
    rec.steps = vec![Step {
        module_id: 2,
        module: "m".into(),
        input: json!({"headers": {"X-Token": "tok-SECRET-1"}}),
        output: vec![],
        error: Some(StepError {
            kind: ErrorKind::DataError,
            message: "bad tok-SECRET-1".into(),
        }),
        duration_us: 0,
    }];
    rec.redact(&super::record::Redactor::new(
        &["tok-SECRET-1".to_owned()],
        "***",
    ));
    let text = serde_json::to_string(&rec).unwrap();
    assert!(!text.contains("tok-SECRET-1"), "{text}");
    assert!(text.contains("***"));
}

#[tokio::test]
async fn a_payload_passed_through_is_kept_once_and_still_recorded_as_the_trigger() {
    let src = r#"
name: once
flow:
  - { id: 1, module: webhook.custom, params: { name: in } }
  - { id: 2, module: flow.set_variables, map: { hello: "{{1.name}}" } }
"#;
    let payload = json!({"name": "Ada", "nested": {"list": [1, "two", null]}});
    let r = run(src, payload.clone()).await;
    // webhook.custom passes an object through: the trigger is the trigger step's bundle.
    assert_eq!(r.trigger(), &payload);
    assert_eq!(r.steps[0].output, vec![payload.clone()]);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["trigger"], payload);
    assert_eq!(v["steps"][0]["output"], json!([payload.clone()]));
    // Read back, the record is the same, the trigger a field of its own again.
    let back: ExecutionRecord = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.trigger(), &payload);
    let mut changed = back.clone();
    changed.set_trigger(json!({"other": true}));
    assert_ne!(changed, r);

    // A body that is not an object is wrapped into a bundle; the trigger stays as it came.
    let r = run(src, json!([1, 2])).await;
    assert_eq!(r.trigger(), &json!([1, 2]));
    assert_eq!(r.steps[0].output, vec![json!({"value": [1, 2]})]);
    assert_eq!(serde_json::to_value(&r).unwrap()["trigger"], json!([1, 2]));
}
