//! Validation tests: each problem gives its exact message, position, module, field and fix.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::diagnostic::Diagnostic;

fn registry() -> Registry {
    Registry::new([crate::builtin::modules()], []).unwrap()
}

fn env(name: &str) -> Option<String> {
    (name == "HOOK_NAME").then(|| "orders".to_owned())
}

fn errors(src: &str) -> Vec<Diagnostic> {
    let opts = LoadOptions {
        env: &env,
        ..LoadOptions::default()
    };
    match load_str("bad.yaml", src, &registry(), &opts) {
        Ok(_) => panic!("expected a load error"),
        Err(e) => e.diagnostics,
    }
}

fn one(src: &str) -> Diagnostic {
    let mut d = errors(src);
    assert_eq!(d.len(), 1, "{d:#?}");
    d.remove(0)
}

const HEAD: &str = "name: t\nflow:\n  - { id: 1, module: webhook.custom, params: { name: in } }\n";

#[test]
fn a_valid_scenario_loads() {
    let src = format!(
        "{HEAD}  - {{ id: 2, module: flow.set_variables, map: {{ a: \"{{{{1.x}}}}\" }} }}\n"
    );
    let opts = LoadOptions {
        env: &env,
        ..LoadOptions::default()
    };
    let s = load_str("ok.yaml", &src, &registry(), &opts).unwrap();
    assert_eq!(s.graph.len(), 2);
    assert_eq!(s.name, "t");
}

#[test]
fn unknown_module_suggests_the_closest() {
    let d = one(&format!("{HEAD}  - id: 2\n    module: flow.set_variable\n"));
    assert_eq!(d.message, "unknown module `flow.set_variable`");
    assert_eq!((d.pos.line, d.pos.column), (5, 13));
    assert_eq!(d.module_id, Some(2));
    assert_eq!(d.field.as_deref(), Some("module"));
    assert_eq!(
        d.help.as_deref(),
        Some("did you mean `flow.set_variables`?")
    );
    assert_eq!(
        d.short(),
        "bad.yaml:5:13: unknown module `flow.set_variable` (module `2`, field `module`)\n  help: did you mean `flow.set_variables`?"
    );
}

#[test]
fn reference_to_a_later_module_is_not_upstream() {
    let src = format!(
        "{HEAD}  - id: 2\n    module: flow.set_variables\n    map:\n      a: \"{{{{3.id}}}}\"\n  - {{ id: 3, module: flow.set_variables, map: {{ b: 1 }} }}\n"
    );
    let d = one(&src);
    assert_eq!(
        d.message,
        "module `2` maps `{{3.id}}`, but module `3` is not upstream of it"
    );
    assert_eq!((d.pos.line, d.pos.column), (7, 10));
    assert_eq!(d.field.as_deref(), Some("map.a"));
    assert_eq!(
        d.help.as_deref(),
        Some("module `3` runs after module `2`; modules upstream on this path: `1`")
    );
}

#[test]
fn reference_into_a_sibling_route_is_not_upstream() {
    let src = format!(
        "{HEAD}  - id: 2\n    module: flow.router\n    routes:\n      - flow: [ {{ id: 3, module: flow.set_variables, map: {{ a: 1 }} }} ]\n      - flow: [ {{ id: 4, module: flow.set_variables, map: {{ b: \"{{{{3.a}}}}\" }} }} ]\n"
    );
    let d = one(&src);
    assert_eq!(
        d.message,
        "module `4` maps `{{3.a}}`, but module `3` is not upstream of it"
    );
}

#[test]
fn reference_to_a_missing_module() {
    let d = one(&format!(
        "{HEAD}  - {{ id: 2, module: flow.set_variables, map: {{ a: \"{{{{9.x}}}}\" }} }}\n"
    ));
    assert_eq!(
        d.message,
        "module `2` maps `{{9.x}}`, but module `9` is not upstream of it"
    );
    assert_eq!(
        d.help.as_deref(),
        Some("there is no module `9`; modules upstream on this path: `1`")
    );
}

#[test]
fn missing_environment_variable_is_named() {
    let src = "name: t\nconnections:\n  x: { app: nothing, token: \"${MISSING_TOKEN}\" }\nflow:\n  - { id: 1, module: webhook.custom, params: { name: in } }\n";
    let d = one(src);
    assert_eq!(d.message, "environment variable `MISSING_TOKEN` is not set");
    assert_eq!(d.pos.line, 3);
    assert_eq!(
        d.help.as_deref(),
        Some("set it before running: `export MISSING_TOKEN=...`")
    );
}

#[test]
fn environment_variables_interpolate() {
    let src = "name: t\nflow:\n  - { id: 1, module: webhook.custom, params: { name: \"${HOOK_NAME}\" } }\n";
    let opts = LoadOptions {
        env: &env,
        ..LoadOptions::default()
    };
    let s = load_str("ok.yaml", src, &registry(), &opts).unwrap();
    assert_eq!(s.trigger_params()["name"], "orders");
}

#[test]
fn duplicate_ids_point_at_the_second() {
    let d = one(&format!(
        "{HEAD}  - {{ id: 1, module: flow.set_variables, map: {{ a: 1 }} }}\n"
    ));
    assert_eq!(d.message, "module id `1` is used twice");
    assert_eq!(d.pos.line, 4);
    assert_eq!(
        d.help.as_deref(),
        Some("it is first used on line 3; give this module a new id")
    );
}

#[test]
fn unknown_field_suggests() {
    let ds = errors(&format!(
        "{HEAD}  - {{ id: 2, module: flow.sleep, map: {{ secnds: 1 }} }}\n"
    ));
    let d = ds
        .iter()
        .find(|d| d.message.starts_with("unknown field"))
        .unwrap();
    assert_eq!(d.message, "unknown field `secnds` for `flow.sleep`");
    assert_eq!(d.help.as_deref(), Some("did you mean `seconds`?"));
    let m = ds
        .iter()
        .find(|d| d.message.starts_with("missing"))
        .unwrap();
    assert_eq!(m.message, "missing required field `seconds`");
    assert_eq!(m.help.as_deref(), Some("add `seconds: 5` under `map:`"));
}

#[test]
fn unknown_helper_is_a_load_error() {
    let d = one(&format!(
        "{HEAD}  - {{ id: 2, module: flow.set_variables, map: {{ a: \"{{{{uper 1.x}}}}\" }} }}\n"
    ));
    assert!(
        d.message.starts_with("invalid template in `map.a`"),
        "{}",
        d.message
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `upper`?"));
}

#[test]
fn trigger_must_come_first_and_only_first() {
    let d = one("name: t\nflow:\n  - { id: 1, module: flow.set_variables, map: { a: 1 } }\n");
    assert_eq!(
        d.message,
        "the flow starts with `flow.set_variables`, which is not a trigger"
    );
    let d = one(&format!(
        "{HEAD}  - {{ id: 2, module: webhook.custom, params: {{ name: x }} }}\n"
    ));
    assert_eq!(
        d.message,
        "trigger `webhook.custom` can only be the first module"
    );
}

#[test]
fn router_without_routes_and_modules_after_router() {
    let d = one(&format!("{HEAD}  - {{ id: 2, module: flow.router }}\n"));
    assert_eq!(d.message, "a router needs at least one route");
    let ds = errors(&format!(
        "{HEAD}  - id: 2\n    module: flow.router\n    routes: [ {{ flow: [ {{ id: 3, module: flow.set_variables, map: {{ a: 1 }} }} ] }} ]\n  - {{ id: 4, module: flow.set_variables, map: {{ a: 1 }} }}\n"
    ));
    assert_eq!(ds[0].message, "modules after a router never run");
}

#[test]
fn aggregator_source_must_be_upstream() {
    let d = one(&format!(
        "{HEAD}  - {{ id: 2, module: flow.array_aggregator, source: 5 }}\n"
    ));
    assert_eq!(
        d.message,
        "aggregator `2` collects module `5`, which is not upstream of it"
    );
}

#[test]
fn static_params_cannot_hold_templates() {
    let d = one(
        "name: t\nflow:\n  - { id: 1, module: webhook.custom, params: { name: \"{{1.x}}\" } }\n",
    );
    assert_eq!(
        d.message,
        "`params.name` is static and cannot hold a template"
    );
}

#[test]
fn bad_filter_operator_suggests() {
    let src = format!(
        "{HEAD}  - id: 2\n    module: flow.set_variables\n    filter: {{ any: [ {{ all: [ {{ left: \"{{{{1.a}}}}\", op: text.equals, right: x }} ] }} ] }}\n    map: {{ a: 1 }}\n"
    );
    let d = one(&src);
    assert!(d.message.starts_with("invalid filter"), "{}", d.message);
    assert_eq!(d.field.as_deref(), Some("filter.any.0.all.0.op"));
    assert_eq!(d.help.as_deref(), Some("did you mean `text.equal`?"));
}

#[test]
fn error_reference_only_in_handlers() {
    let d = one(&format!("{HEAD}  - {{ id: 2, module: flow.set_variables, map: {{ a: \"{{{{error.message}}}}\" }} }}\n"));
    assert_eq!(
        d.message,
        "module `2` maps `{{error.message}}`, but `error` exists only in error-handler flows"
    );
}

#[test]
fn bad_cron_and_interval() {
    let d = one("name: t\nflow:\n  - { id: 1, module: schedule, params: { cron: \"0 9 * *\" } }\n");
    assert!(d.message.contains("has 4 fields"), "{}", d.message);
    assert_eq!(d.field.as_deref(), Some("params.cron"));
    let d = one(&format!("{HEAD}  - {{ id: 2, module: flow.set_variables, map: {{ a: 1 }}, on_error: {{ directive: break, interval: soon }} }}\n"));
    assert_eq!(d.message, "invalid interval `soon`");
}

#[test]
fn malformed_yaml_has_a_position() {
    let d = one("name: t\nflow:\n  - { id: 1, module: webhook.custom\n");
    assert!(d.message.starts_with("invalid YAML"), "{}", d.message);
    assert!(d.pos.line >= 3);
}

#[test]
fn oversized_scenario_is_refused() {
    let big = format!("{HEAD}# {}\n", "x".repeat(MAX_FILE_BYTES));
    let d = one(&big);
    assert!(d.message.contains("larger than the limit"), "{}", d.message);
}

#[test]
fn every_problem_is_reported_at_once() {
    let src = format!(
        "{HEAD}  - {{ id: 2, module: nope.nothing }}\n  - {{ id: 3, module: flow.set_variables, map: {{ a: \"{{{{8.x}}}}\" }} }}\n"
    );
    assert_eq!(errors(&src).len(), 2);
}

/// An app with a secret `token`, for connection checks.
struct KeyApp;
impl crate::module::App for KeyApp {
    fn name(&self) -> &'static str {
        "keyed"
    }
    fn fields(&self) -> &'static [crate::spec::FieldSpec] {
        static FIELDS: [crate::spec::FieldSpec; 1] =
            [crate::spec::field("token", crate::spec::FieldType::Text)
                .required()
                .help("API token.")
                .example("${KEYED_TOKEN}")];
        &FIELDS
    }
    fn secret_fields(&self) -> &'static [&'static str] {
        &["token"]
    }
    fn connect(
        &self,
        _fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<std::sync::Arc<dyn std::any::Any + Send + Sync>, String> {
        Ok(std::sync::Arc::new(()))
    }
}

fn load_keyed(src: &str, token: &'static str) -> Result<Scenario, crate::diagnostic::LoadError> {
    static APPS: &[&dyn crate::module::App] = &[&KeyApp];
    let registry = Registry::new([crate::builtin::modules()], [APPS]).unwrap();
    let env = move |name: &str| (name == "KEYED_TOKEN").then(|| token.to_owned());
    let opts = LoadOptions {
        env: &env,
        ..LoadOptions::default()
    };
    load_str("keyed.yaml", src, &registry, &opts)
}

#[test]
fn secrets_must_come_from_the_environment_whatever_their_length() {
    let from_env = format!(
        "name: t\nconnections:\n  k: {{ app: keyed, token: \"${{KEYED_TOKEN}}\" }}\n{}",
        &HEAD["name: t\n".len()..]
    );
    let s = load_keyed(&from_env, "abc").unwrap();
    assert!(
        s.redactor.is_empty(),
        "a 3-character value is too short to redact safely"
    );
    let s = load_keyed(&from_env, "long-secret-token").unwrap();
    assert_eq!(
        s.redactor.secrets().collect::<Vec<_>>(),
        vec!["long-secret-token"]
    );

    let plain = from_env.replace("\"${KEYED_TOKEN}\"", "abc");
    let err = load_keyed(&plain, "abc").unwrap_err();
    let d = &err.diagnostics[0];
    assert_eq!(
        d.message,
        "`token` is a secret and must not be written in the scenario"
    );
    assert_eq!(
        d.help.as_deref(),
        Some("read it from the environment: `token: ${K_TOKEN}`")
    );
}
