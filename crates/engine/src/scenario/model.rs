//! The scenario file as written: serde types that mirror DESIGN.md's YAML format.
//!
//! Nothing here is checked beyond shape; [`crate::validate`] turns a [`ScenarioFile`] into a
//! runnable [`crate::validate::Scenario`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::filter::FilterDef;

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Unique name of the scenario.
    pub name: String,
    /// What it does, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Named connections to apps.
    #[serde(default)]
    pub connections: Map<String, Value>,
    /// Execution settings.
    #[serde(default)]
    pub settings: Settings,
    /// The modules, starting with the trigger.
    pub flow: Vec<ModuleDef>,
}

/// `settings:` of a scenario.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// One execution at a time, in arrival order.
    pub sequential: bool,
    /// The most operations one execution may run (guards against runaway fan-out).
    pub max_operations: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sequential: false,
            max_operations: 10_000,
        }
    }
}

/// One module of a flow.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleDef {
    /// Positive integer, unique in the scenario; mappings refer to it (`{{2.id}}`).
    pub id: u32,
    /// Module id in the registry, e.g. `sonar.send_message`.
    pub module: String,
    /// Optional label shown in records and graphs.
    #[serde(default)]
    pub name: Option<String>,
    /// The connection (by name) for app modules.
    #[serde(default)]
    pub connection: Option<String>,
    /// Static configuration.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Mapped inputs (templates).
    #[serde(default)]
    pub map: Map<String, Value>,
    /// Filter on the link into this module.
    #[serde(default)]
    pub filter: Option<FilterDef>,
    /// What to do when the module fails.
    #[serde(default)]
    pub on_error: Option<OnErrorDef>,
    /// Routes of a `flow.router`.
    #[serde(default)]
    pub routes: Option<Vec<RouteDef>>,
    /// For aggregators: the id of the module whose bundles are collected.
    #[serde(default)]
    pub source: Option<u32>,
}

/// One route of a router.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDef {
    /// Label of the route.
    #[serde(default)]
    pub name: Option<String>,
    /// Filter on the route.
    #[serde(default)]
    pub filter: Option<FilterDef>,
    /// Runs only when no other route passed.
    #[serde(default)]
    pub fallback: bool,
    /// The modules of the route.
    pub flow: Vec<ModuleDef>,
}

/// Make's error directives.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Directive {
    /// Drop this bundle's path; the execution succeeds with a warning.
    Ignore,
    /// Use `output` as the module's output and go on.
    Resume,
    /// Stop the execution as a success.
    Commit,
    /// Stop the execution as an error (the default).
    Rollback,
    /// Store an incomplete execution and retry it from the failed module.
    Break,
}

impl Directive {
    /// The name as written in YAML.
    pub const fn name(self) -> &'static str {
        match self {
            Directive::Ignore => "ignore",
            Directive::Resume => "resume",
            Directive::Commit => "commit",
            Directive::Rollback => "rollback",
            Directive::Break => "break",
        }
    }
}

/// `on_error:` of a module.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnErrorDef {
    /// The directive; `ignore` when only a handler `flow` is given, else `rollback`.
    #[serde(default)]
    pub directive: Option<Directive>,
    /// Break: automatic retries before waiting for `weft executions retry`.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Break: time between retries (`30s`, `10m`, `1h`).
    #[serde(default)]
    pub interval: Option<String>,
    /// Resume: the output that stands in for the failed module's.
    #[serde(default)]
    pub output: Option<Value>,
    /// Handler modules, run with `{{error.type}}` and `{{error.message}}`.
    #[serde(default)]
    pub flow: Vec<ModuleDef>,
}
