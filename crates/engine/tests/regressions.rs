//! Engine bugs found while writing the golden tests, each pinned by a test of the behaviour
//! Make users expect, so that they stay fixed.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use weft_engine::exec::{ExecutionRecord, Executor};
use weft_engine::validate::{load_str, LoadOptions};
use weft_engine::Registry;

fn run(src: &str, payload: Value) -> ExecutionRecord {
    let registry = Registry::new([weft_engine::builtin::modules()], []).unwrap();
    let scenario = match load_str("regression.yaml", src, &registry, &LoadOptions::default()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(Executor::new(&scenario).run(payload))
}

/// The output of the step of module `id` (its only operation).
fn output_of(record: &ExecutionRecord, id: u32) -> &Vec<Value> {
    &record
        .steps
        .iter()
        .find(|s| s.module_id == id)
        .unwrap_or_else(|| panic!("no step of module {id}: {record:#?}"))
        .output
}

/// `group_by` written first in an array aggregator's `map` must not reorder the kept
/// fields: `exec/mod.rs` (`Run::collect`) took it out with `Map::remove`, which with
/// serde_json's `preserve_order` is a `swap_remove` (the last field moved into its place).
#[test]
fn group_by_keeps_the_mapped_field_order() {
    let src = r#"
name: group-order
flow:
  - { id: 1, module: webhook.custom, params: { name: in } }
  - { id: 2, module: flow.iterator, map: { array: "{{1.items}}" } }
  - { id: 3, module: flow.array_aggregator, source: 2, map: { group_by: "{{2.kind}}", name: "{{2.name}}", price: "{{2.price}}" } }
"#;
    let record = run(
        src,
        json!({"items": [{"kind": "tea", "name": "oolong", "price": 6}]}),
    );
    let text = serde_json::to_string(&output_of(&record, 3)[0]).unwrap();
    assert_eq!(
        text,
        r#"{"key":"tea","array":[{"name":"oolong","price":6}]}"#
    );
}

/// `formatNumber` rounds exact ties away from zero, as `round` and Make (JavaScript's
/// `toFixed`) do: `template/math.rs` (`format_number`) used Rust's `{:.N}` alone, which
/// rounds them to even (`2.5` with 0 decimals showed `2`, `0.125` with 2 showed `0.12`).
#[test]
fn format_number_rounds_ties_like_round() {
    let src = r#"
name: format-ties
flow:
  - { id: 1, module: webhook.custom, params: { name: in } }
  - id: 2
    module: flow.set_variables
    map:
      whole: "{{formatNumber 2.5 0}}"
      cents: "{{formatNumber 0.125 2 \".\"}}"
      rounded: "{{round 0.125 2}}"
"#;
    let record = run(src, json!({}));
    assert_eq!(
        output_of(&record, 2)[0],
        json!({"whole": "3", "cents": "0.13", "rounded": 0.13})
    );
}
