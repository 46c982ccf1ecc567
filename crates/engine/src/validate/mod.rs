//! Load-time validation: a parsed scenario file becomes a runnable [`Scenario`], or a
//! [`LoadError`] listing every problem with its line, module, field and fix.
//!
//! Checked here: module ids (positive, unique), module names (with "did you mean"),
//! triggers first and only first, connections, every `params`/`map` field against the
//! module's spec (unknown, missing, static-only, coercion of static values), templates
//! (syntax, helpers) and that every `{{N.field}}` names a module upstream on the path,
//! filters, routers, aggregators and error handlers.

mod connections;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use petgraph::graph::NodeIndex;
use serde_json::{Map, Value};

use crate::coerce::coerce;
use crate::diagnostic::{Diagnostic, LoadError, Reporter};
use crate::exec::record::Redactor;
use crate::filter::{Filter, FilterDef};
use crate::graph::{ErrorPolicy, Link, LinkKind, MappedField, ModuleGraph, Node, Role};
use crate::module::Module;
use crate::registry::Registry;
use crate::scenario::duration::parse_duration;
use crate::scenario::yaml::Spans;
use crate::scenario::{self, Directive, EnvLookup, ModuleDef, Parsed, Settings};
use crate::spec::{FieldSpec, Kind};
use crate::suggest::did_you_mean as suggest;
use crate::template::{Reference, Templates, ValueTemplate};

pub use connections::ConnectionOverrides;

/// Largest scenario file accepted.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// A validated scenario, ready to run.
pub struct Scenario {
    /// Name (unique among loaded scenarios).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// The file it came from.
    pub file: String,
    /// Settings.
    pub settings: Settings,
    /// The module graph.
    pub graph: ModuleGraph,
    /// The trigger node.
    pub trigger: NodeIndex,
    /// Every compiled template.
    pub templates: Templates,
    /// Redacts the scenario's secret values from records and logs (its searchers are built
    /// once, at load, not per execution).
    pub redactor: Redactor,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .field("file", &self.file)
            .field("modules", &self.graph.len())
            .finish()
    }
}

impl Scenario {
    /// The trigger module.
    pub fn trigger_module(&self) -> &'static dyn Module {
        self.graph.node(self.trigger).module
    }
    /// The trigger's static parameters.
    pub fn trigger_params(&self) -> &Map<String, Value> {
        &self.graph.node(self.trigger).params
    }
}

/// How to load: where `${VAR}` values come from and connection overrides.
pub struct LoadOptions<'a> {
    /// Environment lookup for `${VAR}`.
    pub env: EnvLookup<'a>,
    /// Fields forced on every connection of an app (e.g. the simulator's `base_url`).
    pub overrides: &'a ConnectionOverrides,
}

impl Default for LoadOptions<'_> {
    fn default() -> Self {
        static NONE: ConnectionOverrides = ConnectionOverrides::new();
        LoadOptions {
            env: &scenario::process_env,
            overrides: &NONE,
        }
    }
}

/// Reads and validates a scenario file with the process environment.
pub fn load_file(path: &Path, registry: &Registry) -> Result<Scenario, LoadError> {
    load_file_with(path, registry, &LoadOptions::default())
}

/// Reads and validates a scenario file.
pub fn load_file_with(
    path: &Path,
    registry: &Registry,
    opts: &LoadOptions<'_>,
) -> Result<Scenario, LoadError> {
    let file = path.display().to_string();
    let rep = Reporter::new(&file, "");
    let pos = crate::scenario::yaml::Pos { line: 1, column: 1 };
    let meta = std::fs::metadata(path).map_err(|e| {
        LoadError::one(
            rep.at(pos, format!("cannot read scenario file: {e}"))
                .help("check the path and its permissions"),
        )
    })?;
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(LoadError::one(
            rep.at(
                pos,
                format!(
                    "scenario file is {} bytes, more than the limit of {MAX_FILE_BYTES}",
                    meta.len()
                ),
            )
            .help("split the scenario into smaller scenarios"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        LoadError::one(
            rep.at(pos, format!("cannot read scenario file: {e}"))
                .help("check the path and its permissions"),
        )
    })?;
    let source = String::from_utf8(bytes).map_err(|e| {
        LoadError::one(
            rep.at(pos, format!("scenario file is not UTF-8: {e}"))
                .help("save the file as UTF-8"),
        )
    })?;
    load_str(&file, &source, registry, opts)
}

/// Validates scenario text (`file` names it in diagnostics).
pub fn load_str(
    file: &str,
    source: &str,
    registry: &Registry,
    opts: &LoadOptions<'_>,
) -> Result<Scenario, LoadError> {
    if source.len() > MAX_FILE_BYTES {
        let rep = Reporter::new(file, "");
        return Err(LoadError::one(
            rep.at(
                crate::scenario::yaml::Pos { line: 1, column: 1 },
                format!("scenario is larger than the limit of {MAX_FILE_BYTES} bytes"),
            )
            .help("split the scenario into smaller scenarios"),
        ));
    }
    let parsed = scenario::parse(file, source, opts.env)?;
    build(parsed, registry, opts.overrides)
}

/// The module ids whose outputs a module may map, in path order, and whether `error` is.
#[derive(Clone, Debug, Default)]
struct Scope {
    ids: Vec<u32>,
    error: bool,
}

struct Builder<'a> {
    registry: &'a Registry,
    spans: &'a Spans,
    rep: Reporter<'a>,
    templates: Templates,
    graph: ModuleGraph,
    connections: BTreeMap<String, connections::Connection>,
    /// id → (path of its declaration, scope at its input)
    declared: HashMap<u32, (String, Scope)>,
    /// ids in declaration order, to tell "later" from "elsewhere".
    order: Vec<u32>,
    all_ids: HashMap<u32, String>,
}

fn build(
    parsed: Parsed,
    registry: &Registry,
    overrides: &ConnectionOverrides,
) -> Result<Scenario, LoadError> {
    let Parsed {
        file,
        source,
        model,
        spans,
        mut secrets,
        from_env,
    } = parsed;
    let mut b = Builder {
        registry,
        spans: &spans,
        rep: Reporter::new(&file, &source),
        templates: Templates::new(),
        graph: ModuleGraph::default(),
        connections: BTreeMap::new(),
        declared: HashMap::new(),
        order: Vec::new(),
        all_ids: HashMap::new(),
    };
    if model.name.trim().is_empty() {
        let d = b
            .rep
            .at(spans.locate("name"), "scenario `name` is empty")
            .field("name")
            .help("give the scenario a unique name, e.g. `name: welcome-new-customer`");
        b.rep.push(d);
    }
    if model.settings.max_operations == 0 {
        let d = b
            .rep
            .at(
                spans.locate("settings.max_operations"),
                "`max_operations` must be at least 1",
            )
            .field("settings.max_operations")
            .help("remove it to use the default of 10000");
        b.rep.push(d);
    }
    b.connections = connections::build(
        &model.connections,
        registry,
        overrides,
        &spans,
        &mut b.rep,
        &from_env,
        &mut secrets,
    );
    b.collect_ids(&model.flow, "flow");
    if model.flow.is_empty() {
        let d = b
            .rep
            .at(spans.locate("flow"), "the flow has no modules")
            .field("flow")
            .help("start the flow with a trigger, e.g. `- { id: 1, module: webhook.custom, params: { name: my-hook } }`");
        b.rep.push(d);
    }
    let trigger = b.add_flow(&model.flow, "flow", None, &Scope::default(), true);
    let trigger = match trigger {
        Some(t) if b.rep.diagnostics.is_empty() => t,
        _ => return Err(b.rep.into_error()),
    };
    let Builder {
        templates, graph, ..
    } = b;
    secrets.sort();
    secrets.dedup();
    Ok(Scenario {
        name: model.name,
        description: model.description,
        file,
        settings: model.settings,
        graph,
        trigger,
        templates,
        redactor: Redactor::new(&secrets, "***"),
    })
}

/// Concatenates a path and a segment.
fn join(path: &str, seg: impl std::fmt::Display) -> String {
    format!("{path}.{seg}")
}

fn contains_template(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("{{"),
        Value::Array(a) => a.iter().any(contains_template),
        Value::Object(o) => o.values().any(contains_template),
        _ => false,
    }
}

impl Builder<'_> {
    fn diag(&self, path: &str, module: Option<u32>, message: impl Into<String>) -> Diagnostic {
        let d = self.rep.at(self.spans.locate(path), message);
        match module {
            Some(id) => d.module(id),
            None => d,
        }
    }

    fn diag_value(&self, path: &str, module: u32, message: impl Into<String>) -> Diagnostic {
        let pos = self
            .spans
            .value(path)
            .unwrap_or_else(|| self.spans.locate(path));
        self.rep.at(pos, message).module(module)
    }

    /// First pass: every id with its declaration path, so references to later or unknown
    /// modules can be told apart, and duplicates found.
    fn collect_ids(&mut self, flow: &[ModuleDef], prefix: &str) {
        for (i, def) in flow.iter().enumerate() {
            let path = join(prefix, i);
            if def.id == 0 {
                let d = self
                    .diag(&join(&path, "id"), None, "module id `0` is not allowed")
                    .field("id")
                    .help("ids are positive integers: 1, 2, 3...");
                self.rep.push(d);
            } else if let Some(first) = self.all_ids.get(&def.id) {
                let line = self.spans.locate(first).line;
                let d = self
                    .diag(
                        &join(&path, "id"),
                        Some(def.id),
                        format!("module id `{}` is used twice", def.id),
                    )
                    .field("id")
                    .help(format!(
                        "it is first used on line {line}; give this module a new id"
                    ));
                self.rep.push(d);
            } else {
                self.all_ids.insert(def.id, path.clone());
                self.order.push(def.id);
            }
            if let Some(routes) = &def.routes {
                for (r, route) in routes.iter().enumerate() {
                    self.collect_ids(&route.flow, &join(&join(&join(&path, "routes"), r), "flow"));
                }
            }
            if let Some(on_error) = &def.on_error {
                self.collect_ids(&on_error.flow, &join(&join(&path, "on_error"), "flow"));
            }
        }
    }

    /// Adds a flow (list of modules) below `parent`; returns the first node added.
    fn add_flow(
        &mut self,
        flow: &[ModuleDef],
        prefix: &str,
        parent: Option<(NodeIndex, LinkKind, Option<Filter>)>,
        scope: &Scope,
        is_main: bool,
    ) -> Option<NodeIndex> {
        let mut scope = scope.clone();
        let mut parent = parent;
        let mut first = None;
        for (i, def) in flow.iter().enumerate() {
            let path = join(prefix, i);
            let is_trigger_slot = is_main && i == 0;
            let Some(module) = self.resolve_module(def, &path, is_trigger_slot) else {
                // Keep going so later problems are reported too.
                scope.ids.push(def.id);
                continue;
            };
            let spec = module.spec();
            // The filter on the link into this module.
            let mut link_filter = None;
            let route_filter = parent.as_mut().and_then(|p| p.2.take());
            if let Some(def_filter) = &def.filter {
                if is_trigger_slot {
                    let d = self
                        .diag(
                            &join(&path, "filter"),
                            Some(def.id),
                            "a trigger takes no filter",
                        )
                        .field("filter")
                        .help("put the filter on the module after the trigger");
                    self.rep.push(d);
                } else if route_filter.is_some() {
                    let d = self
                        .diag(
                            &join(&path, "filter"),
                            Some(def.id),
                            "this module has a filter and so does its route",
                        )
                        .field("filter")
                        .help("give the condition once: on the route or on its first module");
                    self.rep.push(d);
                } else {
                    link_filter =
                        self.compile_filter(def_filter, &join(&path, "filter"), def.id, &scope);
                }
            }
            let link_filter = link_filter.or(route_filter);

            let role = self.role(def, module, &path, &scope, is_trigger_slot);
            let connection = self.connection_for(def, module, &path);
            let params = self.check_params(def, module, &path);
            let inputs = self.check_map(def, module, &path, &scope);
            self.check_required(def, spec.fields, &path, &params);
            let on_error = self.error_policy(def, &path, &scope);

            if def.routes.is_some() {
                if !matches!(role, Some(Role::Router)) {
                    let d = self
                        .diag(
                            &join(&path, "routes"),
                            Some(def.id),
                            format!("`routes` belongs to `flow.router`, not `{}`", spec.id),
                        )
                        .field("routes")
                        .help("remove `routes`, or change the module to `flow.router`");
                    self.rep.push(d);
                } else if i + 1 < flow.len() {
                    let d = self
                        .diag(
                            &join(&join(prefix, i + 1), "module"),
                            Some(flow[i + 1].id),
                            "modules after a router never run",
                        )
                        .help("move this module into one of the router's routes");
                    self.rep.push(d);
                }
            }

            let node = Node {
                id: def.id,
                module,
                name: def.name.clone(),
                role: role.unwrap_or(Role::Module),
                connection,
                params,
                inputs,
                on_error,
                pos: self.spans.locate(&path),
            };
            let ix = self.graph.add_node(node);
            self.declared.insert(def.id, (path.clone(), scope.clone()));
            if first.is_none() {
                first = Some(ix);
            }
            if let Some((p, kind, _)) = parent.take() {
                self.graph.add_link(
                    p,
                    ix,
                    Link {
                        kind,
                        filter: link_filter,
                    },
                );
            }
            if let Some(Role::Aggregator { source, .. }) = role {
                self.graph.add_aggregator(source, ix);
            }

            // Error-handler flow: sees what the failed module saw, plus `error`.
            if let Some(on_error) = &def.on_error {
                if !on_error.flow.is_empty() {
                    let handler_scope = Scope {
                        ids: scope.ids.clone(),
                        error: true,
                    };
                    self.add_flow(
                        &on_error.flow,
                        &join(&join(&path, "on_error"), "flow"),
                        Some((ix, LinkKind::ErrorHandler, None)),
                        &handler_scope,
                        false,
                    );
                }
            }

            // What the next module may map.
            match role {
                Some(Role::Router) => {
                    self.add_routes(def, ix, &path, &scope);
                    break;
                }
                Some(Role::Aggregator { source, .. }) => {
                    let source_id = self.graph.node(source).id;
                    let mut after = self
                        .declared
                        .get(&source_id)
                        .map(|(_, s)| s.clone())
                        .unwrap_or_default();
                    after.error = scope.error;
                    after.ids.push(def.id);
                    scope = after;
                }
                _ => scope.ids.push(def.id),
            }
            parent = Some((ix, LinkKind::Next, None));
        }
        first
    }

    fn add_routes(&mut self, def: &ModuleDef, router: NodeIndex, path: &str, scope: &Scope) {
        let routes = def.routes.as_deref().unwrap_or_default();
        if routes.is_empty() {
            let d = self
                .diag(path, Some(def.id), "a router needs at least one route")
                .field("routes")
                .help("add `routes:` with a list of `{ name, filter, flow }`");
            self.rep.push(d);
            return;
        }
        let mut fallbacks = 0;
        for (r, route) in routes.iter().enumerate() {
            let rpath = join(&join(path, "routes"), r);
            let mut filter = None;
            if route.fallback {
                fallbacks += 1;
                if fallbacks > 1 {
                    let d = self
                        .diag(
                            &join(&rpath, "fallback"),
                            Some(def.id),
                            "a router has more than one fallback route",
                        )
                        .field(format!("routes.{r}.fallback"))
                        .help("keep `fallback: true` on one route only");
                    self.rep.push(d);
                }
                if route.filter.is_some() {
                    let d = self
                        .diag(
                            &join(&rpath, "filter"),
                            Some(def.id),
                            "a fallback route takes no filter",
                        )
                        .field(format!("routes.{r}.filter"))
                        .help("remove the filter: the fallback runs when no other route passed");
                    self.rep.push(d);
                }
            } else if let Some(f) = &route.filter {
                filter = self.compile_filter(f, &join(&rpath, "filter"), def.id, scope);
            }
            if route.flow.is_empty() {
                let d = self
                    .diag(
                        &join(&rpath, "flow"),
                        Some(def.id),
                        format!("route {} has no modules", r + 1),
                    )
                    .field(format!("routes.{r}.flow"))
                    .help("add modules to the route's `flow:` or remove the route");
                self.rep.push(d);
                continue;
            }
            let kind = LinkKind::Route {
                index: r,
                name: route.name.clone(),
                fallback: route.fallback,
            };
            self.add_flow(
                &route.flow,
                &join(&rpath, "flow"),
                Some((router, kind, filter)),
                scope,
                false,
            );
        }
    }

    fn resolve_module(
        &mut self,
        def: &ModuleDef,
        path: &str,
        is_trigger_slot: bool,
    ) -> Option<&'static dyn Module> {
        let mpath = join(path, "module");
        let Some(module) = self.registry.module(&def.module) else {
            let help = match self.registry.suggest_module(&def.module) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "run `weft modules` to list the available modules".to_owned(),
            };
            let d = self
                .diag_value(&mpath, def.id, format!("unknown module `{}`", def.module))
                .field("module")
                .help(help);
            self.rep.push(d);
            return None;
        };
        let kind = module.spec().kind;
        if is_trigger_slot && kind != Kind::Trigger {
            let d = self
                .diag_value(
                    &mpath,
                    def.id,
                    format!("the flow starts with `{}`, which is not a trigger", def.module),
                )
                .field("module")
                .help("start the flow with a trigger such as `webhook.custom`, `schedule` or a `sonar.watch_*` module");
            self.rep.push(d);
        } else if !is_trigger_slot && kind == Kind::Trigger {
            let d = self
                .diag_value(
                    &mpath,
                    def.id,
                    format!("trigger `{}` can only be the first module", def.module),
                )
                .field("module")
                .help("a scenario has one trigger, first in `flow:`; use an action here");
            self.rep.push(d);
        }
        Some(module)
    }

    fn role(
        &mut self,
        def: &ModuleDef,
        module: &'static dyn Module,
        path: &str,
        scope: &Scope,
        is_trigger_slot: bool,
    ) -> Option<Role> {
        let id = module.spec().id;
        let aggregator_text = match id {
            "flow.array_aggregator" => Some(false),
            "flow.text_aggregator" => Some(true),
            _ => None,
        };
        if def.source.is_some() && aggregator_text.is_none() {
            let d = self
                .diag(
                    &join(path, "source"),
                    Some(def.id),
                    format!("`source` belongs to aggregators, not `{id}`"),
                )
                .field("source")
                .help("remove `source`");
            self.rep.push(d);
        }
        if let Some(text) = aggregator_text {
            let Some(source_id) = def.source else {
                let d = self
                    .diag(path, Some(def.id), "an aggregator needs `source`")
                    .field("source")
                    .help("add `source: N`, the id of the module whose bundles it collects (usually an iterator)");
                self.rep.push(d);
                return None;
            };
            let spath = join(path, "source");
            if !scope.ids.contains(&source_id) {
                let d = self
                    .diag_value(
                        &spath,
                        def.id,
                        format!("aggregator `{}` collects module `{source_id}`, which is not upstream of it", def.id),
                    )
                    .field("source")
                    .help(self.upstream_help(scope));
                self.rep.push(d);
                return None;
            }
            let source = self.graph.by_id(source_id)?;
            return Some(Role::Aggregator { source, text });
        }
        if is_trigger_slot {
            return Some(Role::Trigger);
        }
        if id == "flow.router" {
            if def.routes.is_none() {
                let d = self
                    .diag(path, Some(def.id), "a router needs at least one route")
                    .field("routes")
                    .help("add `routes:` with a list of `{ name, filter, flow }`");
                self.rep.push(d);
            }
            return Some(Role::Router);
        }
        Some(Role::Module)
    }

    /// Whether `id` is declared after `than` in the file (ids in file order).
    fn runs_later(&self, id: u32, than: u32) -> bool {
        let pos = |x| self.order.iter().position(|o| *o == x);
        matches!((pos(id), pos(than)), (Some(a), Some(b)) if a > b)
    }

    fn upstream_help(&self, scope: &Scope) -> String {
        if scope.ids.is_empty() {
            "nothing is upstream here".to_owned()
        } else {
            let ids: Vec<String> = scope.ids.iter().map(|i| format!("`{i}`")).collect();
            format!("modules upstream on this path: {}", ids.join(", "))
        }
    }

    fn connection_for(
        &mut self,
        def: &ModuleDef,
        module: &'static dyn Module,
        path: &str,
    ) -> Option<std::sync::Arc<dyn std::any::Any + Send + Sync>> {
        let spec = module.spec();
        let cpath = join(path, "connection");
        let Some(app) = spec.app else {
            if def.connection.is_some() {
                let d = self
                    .diag_value(&cpath, def.id, format!("`{}` takes no connection", spec.id))
                    .field("connection")
                    .help("remove `connection:`");
                self.rep.push(d);
            }
            return None;
        };
        let name = match &def.connection {
            Some(n) => n.clone(),
            None => {
                let of_app: Vec<&String> = self
                    .connections
                    .iter()
                    .filter(|(_, c)| c.app == app)
                    .map(|(n, _)| n)
                    .collect();
                if of_app.len() == 1 {
                    of_app[0].clone()
                } else {
                    let d = self
                        .diag(path, Some(def.id), format!("`{}` needs a `{app}` connection", spec.id))
                        .field("connection")
                        .help(format!(
                            "add `connection: NAME`, naming a connection under `connections:` with `app: {app}`"
                        ));
                    self.rep.push(d);
                    return None;
                }
            }
        };
        match self.connections.get(&name) {
            Some(c) if c.app == app => c.handle.clone(),
            Some(c) => {
                let d = self
                    .diag_value(
                        &cpath,
                        def.id,
                        format!(
                            "connection `{name}` is for app `{}`, but `{}` needs `{app}`",
                            c.app, spec.id
                        ),
                    )
                    .field("connection")
                    .help(format!("name a connection with `app: {app}`"));
                self.rep.push(d);
                None
            }
            None => {
                let help = match suggest(&name, self.connections.keys().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("declare it under `connections:` with `app: {app}`"),
                };
                let d = self
                    .diag_value(&cpath, def.id, format!("unknown connection `{name}`"))
                    .field("connection")
                    .help(help);
                self.rep.push(d);
                None
            }
        }
    }

    fn field_spec(
        &self,
        spec_fields: &'static [FieldSpec],
        name: &str,
    ) -> Option<&'static FieldSpec> {
        spec_fields
            .iter()
            .find(|f| f.name == name)
            .or_else(|| spec_fields.iter().find(|f| f.name == "*"))
    }

    fn unknown_field(
        &mut self,
        def: &ModuleDef,
        module: &'static dyn Module,
        fpath: &str,
        section: &str,
        name: &str,
    ) {
        let spec = module.spec();
        let names = spec.fields.iter().map(|f| f.name);
        let help = match suggest(name, names) {
            Some(s) => format!("did you mean `{s}`?"),
            None if spec.fields.is_empty() => format!("`{}` takes no fields", spec.id),
            None => {
                let all: Vec<String> = spec
                    .fields
                    .iter()
                    .map(|f| format!("`{}`", f.name))
                    .collect();
                format!("`{}` takes: {}", spec.id, all.join(", "))
            }
        };
        let d = self
            .diag(
                fpath,
                Some(def.id),
                format!("unknown field `{name}` for `{}`", spec.id),
            )
            .field(format!("{section}.{name}"))
            .help(help);
        self.rep.push(d);
    }

    fn check_params(
        &mut self,
        def: &ModuleDef,
        module: &'static dyn Module,
        path: &str,
    ) -> Map<String, Value> {
        let spec = module.spec();
        let mut out = Map::new();
        for (name, value) in &def.params {
            let fpath = join(&join(path, "params"), name);
            let Some(field) = self.field_spec(spec.fields, name) else {
                self.unknown_field(def, module, &fpath, "params", name);
                continue;
            };
            if def.map.contains_key(name) {
                let d = self
                    .diag(
                        &fpath,
                        Some(def.id),
                        format!("`{name}` is given under both `params:` and `map:`"),
                    )
                    .field(format!("params.{name}"))
                    .help("keep one of them");
                self.rep.push(d);
                continue;
            }
            if contains_template(value) {
                let d = self
                    .diag_value(
                        &fpath,
                        def.id,
                        format!("`params.{name}` is static and cannot hold a template"),
                    )
                    .field(format!("params.{name}"))
                    .help(format!(
                        "move `{name}` under `map:` to map it from other modules"
                    ));
                self.rep.push(d);
                continue;
            }
            match coerce(value.clone(), field.ty) {
                Ok(v) => {
                    out.insert(name.clone(), v);
                }
                Err(e) => {
                    let d = self
                        .diag_value(
                            &fpath,
                            def.id,
                            format!(
                                "`params.{name}` must be {}: {}",
                                article(field.ty.name()),
                                e.reason
                            ),
                        )
                        .field(format!("params.{name}"))
                        .help(example_help(field));
                    self.rep.push(d);
                }
            }
        }
        if let Err((field, message)) = module.check_params(&out) {
            let fpath = join(&join(path, "params"), &field);
            let d = self
                .diag(&fpath, Some(def.id), message)
                .field(format!("params.{field}"))
                .maybe_help(self.field_spec(spec.fields, &field).map(example_help));
            self.rep.push(d);
        }
        out
    }

    fn check_map(
        &mut self,
        def: &ModuleDef,
        module: &'static dyn Module,
        path: &str,
        scope: &Scope,
    ) -> Vec<MappedField> {
        let spec = module.spec();
        let mut out = Vec::new();
        for (name, value) in &def.map {
            let fpath = join(&join(path, "map"), name);
            let Some(field) = self.field_spec(spec.fields, name) else {
                self.unknown_field(def, module, &fpath, "map", name);
                continue;
            };
            if field.param_only {
                let d = self
                    .diag(
                        &fpath,
                        Some(def.id),
                        format!("`{name}` is static configuration, not a mapped input"),
                    )
                    .field(format!("map.{name}"))
                    .help(format!("move `{name}` under `params:`"));
                self.rep.push(d);
                continue;
            }
            if !contains_template(value) {
                if let Err(e) = coerce(value.clone(), field.ty) {
                    let d = self
                        .diag_value(
                            &fpath,
                            def.id,
                            format!(
                                "`map.{name}` must be {}: {}",
                                article(field.ty.name()),
                                e.reason
                            ),
                        )
                        .field(format!("map.{name}"))
                        .help(example_help(field));
                    self.rep.push(d);
                    continue;
                }
            }
            let Some(template) =
                self.compile_template(value, &fpath, def.id, &format!("map.{name}"), scope)
            else {
                continue;
            };
            out.push(MappedField {
                name: name.clone(),
                template,
                ty: field.ty,
            });
        }
        out
    }

    fn check_required(
        &mut self,
        def: &ModuleDef,
        fields: &'static [FieldSpec],
        path: &str,
        params: &Map<String, Value>,
    ) {
        for f in fields.iter().filter(|f| f.required && f.name != "*") {
            if params.contains_key(f.name)
                || def.map.contains_key(f.name)
                || def.params.contains_key(f.name)
            {
                continue;
            }
            let section = if f.param_only { "params" } else { "map" };
            let d = self
                .diag(
                    path,
                    Some(def.id),
                    format!("missing required field `{}`", f.name),
                )
                .field(format!("{section}.{}", f.name))
                .help(if f.example.is_empty() {
                    format!("add `{}:` under `{section}:`", f.name)
                } else {
                    format!("add `{}: {}` under `{section}:`", f.name, f.example)
                });
            self.rep.push(d);
        }
    }

    fn compile_template(
        &mut self,
        value: &Value,
        fpath: &str,
        module_id: u32,
        field: &str,
        scope: &Scope,
    ) -> Option<ValueTemplate> {
        match self.templates.compile_value(value) {
            Ok(t) => {
                let refs: Vec<Reference> = t.references().into_iter().cloned().collect();
                let ok = self.check_references(&refs, fpath, module_id, field, scope);
                ok.then_some(t)
            }
            Err(e) => {
                let d = self
                    .diag_value(
                        fpath,
                        module_id,
                        format!("invalid template in `{field}`: {e}"),
                    )
                    .field(field.to_owned())
                    .help(template_help(&e));
                self.rep.push(d);
                None
            }
        }
    }

    fn check_references(
        &mut self,
        refs: &[Reference],
        fpath: &str,
        module_id: u32,
        field: &str,
        scope: &Scope,
    ) -> bool {
        let mut ok = true;
        for r in refs {
            if r.root == "error" && scope.error {
                continue;
            }
            let message;
            let help;
            if r.root == "error" {
                message = format!("module `{module_id}` maps `{{{{{}}}}}`, but `error` exists only in error-handler flows", r.path);
                help = "use `{{error.type}}`/`{{error.message}}` inside `on_error.flow:` modules"
                    .to_owned();
            } else if let Ok(id) = r.root.parse::<u32>() {
                if scope.ids.contains(&id) {
                    continue;
                }
                message = format!("module `{module_id}` maps `{{{{{}}}}}`, but module `{id}` is not upstream of it", r.path);
                help = if id == module_id {
                    "a module cannot map its own output; map from a module before it".to_owned()
                } else if !self.all_ids.contains_key(&id) {
                    format!("there is no module `{id}`; {}", self.upstream_help(scope))
                } else if self.runs_later(id, module_id) {
                    format!(
                        "module `{id}` runs after module `{module_id}`; {}",
                        self.upstream_help(scope)
                    )
                } else {
                    format!(
                        "module `{id}` is on another route, or its bundles were folded by an aggregator; {}",
                        self.upstream_help(scope)
                    )
                };
            } else {
                message = format!(
                    "module `{module_id}` maps `{{{{{}}}}}`, which names no module",
                    r.path
                );
                help = format!(
                    "start references with a module id, e.g. `{{{{1.{}}}}}`; {}",
                    r.path,
                    self.upstream_help(scope)
                );
            }
            ok = false;
            let d = self
                .diag_value(fpath, module_id, message)
                .field(field.to_owned())
                .help(help);
            self.rep.push(d);
        }
        ok
    }

    fn compile_filter(
        &mut self,
        def: &FilterDef,
        path: &str,
        module_id: u32,
        scope: &Scope,
    ) -> Option<Filter> {
        match Filter::compile(def, &mut self.templates) {
            Ok(f) => {
                let refs: Vec<Reference> = f.references().into_iter().cloned().collect();
                self.check_references(&refs, path, module_id, "filter", scope)
                    .then_some(f)
            }
            Err(e) => {
                let cpath = format!("{path}.any.{}.all.{}.{}", e.group, e.condition, e.field);
                let d = self
                    .diag_value(&cpath, module_id, format!("invalid filter: {}", e.message))
                    .field(format!(
                        "filter.any.{}.all.{}.{}",
                        e.group, e.condition, e.field
                    ))
                    .maybe_help(e.help.clone());
                self.rep.push(d);
                None
            }
        }
    }

    fn error_policy(&mut self, def: &ModuleDef, path: &str, scope: &Scope) -> ErrorPolicy {
        let Some(on_error) = &def.on_error else {
            return ErrorPolicy::default();
        };
        let epath = join(path, "on_error");
        let directive = on_error.directive.unwrap_or(if on_error.flow.is_empty() {
            Directive::Rollback
        } else {
            Directive::Ignore
        });
        let mut policy = ErrorPolicy {
            directive,
            ..ErrorPolicy::default()
        };
        if directive != Directive::Break
            && (on_error.retries.is_some() || on_error.interval.is_some())
        {
            let d = self
                .diag(
                    &epath,
                    Some(def.id),
                    format!(
                        "`retries` and `interval` apply to `break`, not `{}`",
                        directive.name()
                    ),
                )
                .field("on_error")
                .help("use `directive: break` to retry, or remove `retries`/`interval`");
            self.rep.push(d);
        }
        if directive == Directive::Break {
            policy.retries = on_error.retries.unwrap_or(3);
            if let Some(text) = &on_error.interval {
                match parse_duration(text) {
                    Some(d) => policy.interval = d,
                    None => {
                        let d = self
                            .diag_value(
                                &join(&epath, "interval"),
                                def.id,
                                format!("invalid interval `{text}`"),
                            )
                            .field("on_error.interval")
                            .help("write a duration such as `30s`, `10m`, `1h`");
                        self.rep.push(d);
                    }
                }
            }
        }
        match (&on_error.output, directive) {
            (Some(output), Directive::Resume) => {
                let out_path = join(&epath, "output");
                policy.output =
                    self.compile_template(output, &out_path, def.id, "on_error.output", scope);
            }
            (None, Directive::Resume) => {
                let d = self
                    .diag(
                        &epath,
                        Some(def.id),
                        "`resume` needs an `output` to stand in for the failed module's",
                    )
                    .field("on_error.output")
                    .help("add `output: { ... }` with the fields later modules map");
                self.rep.push(d);
            }
            (Some(_), _) => {
                let d = self
                    .diag(
                        &join(&epath, "output"),
                        Some(def.id),
                        format!("`output` applies to `resume`, not `{}`", directive.name()),
                    )
                    .field("on_error.output")
                    .help("use `directive: resume`, or remove `output`");
                self.rep.push(d);
            }
            (None, _) => {}
        }
        policy
    }
}

fn article(ty: &str) -> String {
    match ty.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {ty}"),
        _ => format!("a {ty}"),
    }
}

fn example_help(field: &FieldSpec) -> String {
    if field.example.is_empty() {
        format!("give {} value", article(field.ty.name()))
    } else {
        format!("for example `{}: {}`", field.name, field.example)
    }
}

fn template_help(e: &crate::template::TemplateError) -> String {
    use crate::template::TemplateError;
    match (e, e.help()) {
        (_, Some(help)) => help,
        (TemplateError::UnknownHelper { .. }, None) => {
            "see Helpers in docs/scenario-format.md for the list".to_owned()
        }
        _ => "write templates as `{{1.field}}` or `{{helper 1.field \"arg\"}}`".to_owned(),
    }
}

#[cfg(test)]
mod tests;
