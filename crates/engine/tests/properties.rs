//! Property tests: scenario loading and template rendering never panic or hang, whatever
//! the input. Bounded case counts keep them fast; `fuzz/` has cargo-fuzz targets for long runs.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::json;
use weft_engine::template::{Scope, Templates};
use weft_engine::validate::{load_str, LoadOptions};
use weft_engine::Registry;

fn registry() -> Registry {
    Registry::new([weft_engine::builtin::modules()], []).unwrap()
}

const VALID: &str = r#"name: p
flow:
  - { id: 1, module: webhook.custom, params: { name: in } }
  - id: 2
    module: flow.router
    routes:
      - filter: { any: [ { all: [ { left: "{{1.a}}", op: number.greater, right: 1 } ] } ] }
        flow: [ { id: 3, module: flow.set_variables, map: { x: "{{upper 1.b}}" } } ]
      - fallback: true
        flow:
          - { id: 4, module: flow.iterator, map: { array: "{{1.items}}" } }
          - { id: 5, module: flow.array_aggregator, source: 4 }
"#;

fn env(_: &str) -> Option<String> {
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary text: a diagnostic or a scenario, never a panic.
    #[test]
    fn loading_arbitrary_text_never_panics(src in "\\PC{0,400}") {
        let opts = LoadOptions { env: &env, ..LoadOptions::default() };
        let _ = load_str("fuzz.yaml", &src, &registry(), &opts);
    }

    /// A valid scenario with one byte replaced or removed anywhere.
    #[test]
    fn loading_mutated_scenarios_never_panics(at in 0usize..VALID.len(), byte in any::<u8>(), remove in any::<bool>()) {
        let mut bytes = VALID.as_bytes().to_vec();
        if remove { bytes.remove(at); } else { bytes[at] = byte; }
        let src = String::from_utf8_lossy(&bytes);
        let opts = LoadOptions { env: &env, ..LoadOptions::default() };
        match load_str("fuzz.yaml", &src, &registry(), &opts) {
            Ok(_) => {}
            Err(e) => {
                // Every diagnostic points into the file.
                for d in &e.diagnostics {
                    prop_assert!(d.pos.line >= 1 && d.pos.column >= 1);
                }
            }
        }
    }

    /// Arbitrary templates compile or fail cleanly, and render against odd data quickly.
    #[test]
    fn templates_compile_and_render_without_panic(body in "[ -~]{0,60}", n in any::<i64>(), s in "\\PC{0,30}") {
        let mut t = Templates::new();
        let source = format!("{{{{{body}}}}} and {{{{1.a}}}} {body}");
        let data = json!({"a": n, "b": s, "items": [1, "x", null, {"k": [n]}]});
        let mut scope = Scope::new();
        scope.set("1", data);
        if let Ok(tpl) = t.compile(&source) {
            let started = Instant::now();
            let _ = t.render(&tpl, &scope);
            prop_assert!(started.elapsed() < Duration::from_secs(1));
        }
    }

    /// Deeply nested values in the render data are handled.
    #[test]
    fn deep_data_renders(depth in 1usize..200) {
        let mut v = json!("leaf");
        for _ in 0..depth { v = json!({"x": v}); }
        let mut t = Templates::new();
        let tpl = t.compile("{{toJson 1}} {{1.x.x.x}}").unwrap();
        let mut scope = Scope::new();
        scope.set("1", v);
        let _ = t.render(&tpl, &scope);
    }
}

#[test]
fn deeply_nested_yaml_is_refused_or_loaded_without_overflow() {
    let depth = 10_000;
    let src = format!(
        "name: x\nflow: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let result = std::thread::Builder::new()
        .stack_size(8 * 1024 * 1024)
        .spawn(move || {
            let opts = LoadOptions {
                env: &env,
                ..LoadOptions::default()
            };
            load_str("deep.yaml", &src, &registry(), &opts).is_err()
        })
        .unwrap()
        .join();
    assert!(
        matches!(result, Ok(true)),
        "a 10,000-level document must be refused with a diagnostic"
    );
}
