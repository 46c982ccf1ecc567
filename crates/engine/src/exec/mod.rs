//! The executor: runs one trigger payload through a scenario's graph with Make's semantics.
//!
//! - Each module runs once per input bundle (one operation) and outputs 0..n bundles; each
//!   output bundle goes all the way downstream (depth first) before the next one.
//! - A filter that fails stops that bundle on that link only.
//! - A router passes each bundle to every route whose filter passes, in order; fallback
//!   routes run only when no other route passed.
//! - An aggregator collects the bundles that descend from each operation of its `source`
//!   and emits once that operation's bundles are all processed.
//! - A failed module runs its error-handler flow, then its directive applies.
//!
//! The result is an [`ExecutionRecord`]; `break` adds [`Incomplete`] entries that
//! [`Executor::resume`] continues from the failed module.

pub mod record;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use petgraph::graph::NodeIndex;
use serde_json::{json, Map, Value};
use tracing::Instrument;

use crate::coerce::coerce;
use crate::graph::{Node, Role};
use crate::module::{ErrorKind, Input, ModuleError, RunContext};
use crate::scenario::Directive;
use crate::template::Scope;
use crate::validate::Scenario;
pub use record::{new_id, ExecutionRecord, Incomplete, Status, Step, StepError};

/// The HTTP client shared by generic HTTP modules (one connection pool per process).
pub fn http_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("weft/", env!("CARGO_PKG_VERSION")))
            .build()
            // Building only fails when the TLS backend cannot initialize; the default
            // client has the same backend, so there is nothing better to fall back to.
            .unwrap_or_default()
    })
}

/// Which execution the current task runs: for log events of modules (and the code they
/// call) to name it. The `execution` span says the same, but at `debug` level: entered at
/// every poll and its fields formatted at every start, an `info` span cost about 10 % of
/// `weft serve`'s CPU per webhook (docs/performance.md).
#[derive(Clone, Debug)]
pub struct ExecutionContext {
    /// Scenario name.
    pub scenario: String,
    /// Execution id.
    pub execution_id: String,
}

tokio::task_local! {
    static EXECUTION: ExecutionContext;
}

/// The execution the current task runs, if any (for log events).
pub fn current_execution() -> Option<ExecutionContext> {
    EXECUTION.try_with(Clone::clone).ok()
}

/// Runs executions of one scenario.
pub struct Executor<'s> {
    scenario: &'s Scenario,
    id: Option<String>,
}

/// Why an execution stopped early.
enum Halt {
    /// `commit`: stop, success.
    Commit,
    /// `rollback` or a guard: stop, error.
    Rollback(StepError),
}

type Flow = Result<(), Halt>;
type BoxFlow<'a> = Pin<Box<dyn Future<Output = Flow> + Send + 'a>>;

/// One bundle collected by an aggregator.
struct Collected {
    key: Option<Value>,
    item: Value,
    separator: Option<String>,
}

struct Run<'s> {
    sc: &'s Scenario,
    exec_id: String,
    steps: Vec<Step>,
    operations: u64,
    warnings: Vec<String>,
    incomplete: Vec<Incomplete>,
    accumulators: HashMap<NodeIndex, Vec<Collected>>,
    response: Option<Value>,
}

impl<'s> Executor<'s> {
    /// An executor for `scenario`.
    pub fn new(scenario: &'s Scenario) -> Self {
        Executor { scenario, id: None }
    }

    /// Uses a given execution id instead of a random one.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    fn start(&self) -> Run<'s> {
        Run {
            sc: self.scenario,
            exec_id: self.id.clone().unwrap_or_else(new_id),
            steps: Vec::new(),
            operations: 0,
            warnings: Vec::new(),
            incomplete: Vec::new(),
            accumulators: HashMap::new(),
            response: None,
        }
    }

    /// Runs one execution from a trigger payload.
    pub async fn run(&self, payload: Value) -> ExecutionRecord {
        let mut run = self.start();
        let span = tracing::debug_span!("execution", scenario = %self.scenario.name, execution_id = %run.exec_id);
        let context = run.context();
        let started = Instant::now();
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // The payload for the record, when it is not also the trigger step's bundle.
        let mut trigger = None;
        let outcome = EXECUTION
            .scope(
                context,
                run.run_trigger(payload, &mut trigger).instrument(span),
            )
            .await;
        run.finish(outcome, trigger, started, started_at)
    }

    /// Continues an incomplete execution from its failed module.
    pub async fn resume(&self, incomplete: &Incomplete, trigger: Value) -> ExecutionRecord {
        let mut run = self.start();
        let span = tracing::debug_span!("execution", scenario = %self.scenario.name, execution_id = %run.exec_id, resumed_module = incomplete.module_id);
        let context = run.context();
        let started = Instant::now();
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let outcome = async {
            let Some(ix) = self.scenario.graph.by_id(incomplete.module_id) else {
                return Err(Halt::Rollback(StepError {
                    kind: ErrorKind::RuntimeError,
                    message: format!(
                        "module `{}` is no longer in the scenario; the incomplete execution cannot resume",
                        incomplete.module_id
                    ),
                }));
            };
            let mut scope = Scope::new();
            if let Value::Object(map) = &incomplete.scope {
                for (k, v) in map {
                    scope.set(k, v.clone());
                }
            }
            run.run_node(ix, &mut scope).await
        };
        let outcome = EXECUTION.scope(context, outcome.instrument(span)).await;
        let mut record = run.finish(outcome, Some(trigger), started, started_at);
        // Carry the retry count forward for a module that fails again.
        for inc in &mut record.incomplete {
            if inc.module_id == incomplete.module_id {
                inc.attempts = incomplete.attempts + 1;
            }
        }
        record
    }
}

impl<'s> Run<'s> {
    fn context(&self) -> ExecutionContext {
        ExecutionContext {
            scenario: self.sc.name.clone(),
            execution_id: self.exec_id.clone(),
        }
    }

    /// The record of the run. `trigger`: the payload, or `None` when it is the trigger step's
    /// bundle ([`ExecutionRecord::trigger`]).
    fn finish(
        self,
        outcome: Flow,
        trigger: Option<Value>,
        started: Instant,
        started_at: String,
    ) -> ExecutionRecord {
        let (status, error) = match outcome {
            Err(Halt::Rollback(e)) => (Status::Error, Some(e)),
            _ if !self.incomplete.is_empty() => (Status::Incomplete, None),
            _ if !self.warnings.is_empty() => (Status::Warning, None),
            _ => (Status::Success, None),
        };
        let kept_in_steps = trigger.is_none();
        let mut record = ExecutionRecord::new(
            self.exec_id,
            self.sc.name.clone(),
            started_at,
            trigger.unwrap_or(Value::Null),
        );
        record.status = status;
        record.operations = self.operations;
        record.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        record.steps = self.steps;
        record.error = error;
        record.warnings = self.warnings;
        record.incomplete = self.incomplete;
        record.response = self.response;
        if kept_in_steps {
            record.keep_trigger_as_first_bundle();
        }
        record.redact(&self.sc.redactor);
        record
    }

    /// Counts one more operation, or stops the execution if it would pass the limit (the
    /// refused operation is not counted, so operations always equal steps).
    fn count_operation(&mut self) -> Flow {
        let max = self.sc.settings.max_operations;
        if self.operations >= max {
            return Err(Halt::Rollback(StepError {
                kind: ErrorKind::RuntimeError,
                message: format!(
                    "the execution exceeded `max_operations` ({max}); raise it under `settings:` or reduce the fan-out"
                ),
            }));
        }
        self.operations += 1;
        Ok(())
    }

    /// Runs the trigger on `payload`. When the payload becomes the trigger step's one bundle
    /// unchanged, it is kept there only; otherwise it goes to `trigger`, for the record.
    async fn run_trigger(&mut self, payload: Value, trigger: &mut Option<Value>) -> Flow {
        let sc = self.sc;
        let ix = sc.trigger;
        let node = sc.graph.node(ix);
        if let Err(halt) = self.count_operation() {
            *trigger = Some(payload);
            return Err(halt);
        }
        let started = Instant::now();
        let parsed = match node.module.as_trigger() {
            // A module that is not a trigger takes the payload as its bundle.
            None => Ok(vec![payload]),
            Some(t) => match t.passes_through(&node.params, &payload) {
                Some(Ok(true)) => Ok(vec![payload]),
                Some(Ok(false)) => {
                    *trigger = Some(payload);
                    Ok(Vec::new())
                }
                Some(Err(e)) => {
                    *trigger = Some(payload);
                    Err(e)
                }
                None => {
                    *trigger = Some(payload.clone());
                    t.parse(&node.params, payload)
                }
            },
        };
        let step = |output, error| Step {
            module_id: node.id,
            module: node.module.spec().id.to_owned(),
            input: Value::Object(node.params.clone()),
            output,
            error,
            duration_us: micros(started),
        };
        match parsed {
            Ok(bundles) => {
                let mut scope = Scope::new();
                self.record_and_continue(step(Vec::new(), None), ix, bundles, &mut scope)
                    .await
            }
            Err(e) => {
                let err = StepError::from(&e);
                self.steps.push(step(Vec::new(), Some(err.clone())));
                Err(Halt::Rollback(err))
            }
        }
    }

    /// Runs the node reached by one bundle (the scope holds the upstream outputs).
    fn run_node<'a>(&'a mut self, ix: NodeIndex, scope: &'a mut Scope) -> BoxFlow<'a> {
        Box::pin(async move {
            let sc = self.sc;
            let node = sc.graph.node(ix);
            match node.role {
                Role::Router => self.run_router(ix, scope).await,
                Role::Aggregator { source, text } => {
                    self.collect(ix, node, source, text, scope).await
                }
                Role::Module | Role::Trigger => self.run_module(ix, node, scope).await,
            }
        })
    }

    async fn run_router(&mut self, ix: NodeIndex, scope: &mut Scope) -> Flow {
        let sc = self.sc;
        let graph = &sc.graph;
        let mut passed = false;
        for fallback_pass in [false, true] {
            if fallback_pass && passed {
                break;
            }
            for (link, child) in graph.children(ix) {
                let is_fallback = matches!(
                    link.kind,
                    crate::graph::LinkKind::Route { fallback: true, .. }
                );
                if is_fallback != fallback_pass {
                    continue;
                }
                if !self.passes(link.filter.as_ref(), ix, scope) {
                    continue;
                }
                passed = true;
                self.run_node(child, scope).await?;
            }
        }
        Ok(())
    }

    fn passes(
        &mut self,
        filter: Option<&crate::filter::Filter>,
        from: NodeIndex,
        scope: &Scope,
    ) -> bool {
        let Some(filter) = filter else {
            return true;
        };
        match filter.passes(&self.sc.templates, scope) {
            Ok(p) => p,
            Err(e) => {
                let id = self.sc.graph.node(from).id;
                self.warnings.push(format!(
                    "the filter after module `{id}` could not be evaluated and stopped the bundle: {e}"
                ));
                false
            }
        }
    }

    async fn run_children(&mut self, ix: NodeIndex, scope: &mut Scope) -> Flow {
        let sc = self.sc;
        let graph = &sc.graph;
        for (link, child) in graph.children(ix) {
            if self.passes(link.filter.as_ref(), ix, scope) {
                self.run_node(child, scope).await?;
            }
        }
        Ok(())
    }

    /// Records `step` (its output: `outputs`) and sends each output bundle downstream. The
    /// bundles move through the scope and back into the step: they are not copied.
    async fn record_and_continue(
        &mut self,
        step: Step,
        ix: NodeIndex,
        outputs: Vec<Value>,
        scope: &mut Scope,
    ) -> Flow {
        let at = self.steps.len();
        self.steps.push(step);
        let (flow, outputs) = self.continue_with(ix, outputs, scope).await;
        if let Some(step) = self.steps.get_mut(at) {
            step.output = outputs;
        }
        flow
    }

    /// Sends each output bundle of `ix` downstream, then lets its aggregators emit; gives the
    /// bundles back.
    async fn continue_with(
        &mut self,
        ix: NodeIndex,
        outputs: Vec<Value>,
        scope: &mut Scope,
    ) -> (Flow, Vec<Value>) {
        let sc = self.sc;
        let graph = &sc.graph;
        let key = graph.node(ix).id.to_string();
        let aggregators = graph.aggregators_of(ix);
        let saved: Vec<(NodeIndex, Option<Vec<Collected>>)> = aggregators
            .iter()
            .map(|a| (*a, self.accumulators.insert(*a, Vec::new())))
            .collect();
        let mut result = Ok(());
        let mut back = Vec::with_capacity(outputs.len());
        let mut outputs = outputs.into_iter();
        for out in outputs.by_ref() {
            scope.set(&key, out);
            result = self.run_children(ix, scope).await;
            back.extend(scope.remove(&key));
            if result.is_err() {
                break;
            }
        }
        back.extend(outputs);
        for (a, previous) in saved {
            let collected = match previous {
                Some(p) => self.accumulators.insert(a, p),
                None => self.accumulators.remove(&a),
            }
            .unwrap_or_default();
            if result.is_ok() {
                result = self.emit(a, collected, scope).await;
            }
        }
        (result, back)
    }

    /// Renders a node's mapped inputs and merges its static params.
    fn map_input(&self, node: &Node, scope: &Scope) -> Result<Map<String, Value>, ModuleError> {
        let mut input = node.params.clone();
        let spec = node.module.spec();
        for f in &node.inputs {
            let raw = self
                .sc
                .templates
                .render_value(&f.template, scope)
                .map_err(|e| {
                    ModuleError::data(format!("module `{}` field `{}`: {e}", node.id, f.name))
                })?;
            let value = coerce(raw, f.ty).map_err(|e| {
                ModuleError::data(format!(
                    "module `{}` field `{}`: cannot use `{}` as {} ({}); the mapping is `{}`",
                    node.id,
                    f.name,
                    short(&e.value),
                    f.ty,
                    e.reason,
                    f.template_source()
                ))
            })?;
            let empty = value.is_null() || value.as_str().is_some_and(str::is_empty);
            if empty && spec.field(&f.name).is_some_and(|s| s.required) {
                return Err(ModuleError::data(format!(
                    "module `{}` field `{}` is required, but `{}` gave nothing",
                    node.id,
                    f.name,
                    f.template_source()
                )));
            }
            input.insert(f.name.clone(), value);
        }
        Ok(input)
    }

    async fn run_module(&mut self, ix: NodeIndex, node: &'s Node, scope: &mut Scope) -> Flow {
        let spec = node.module.spec();
        let started = Instant::now();
        let input = match self.map_input(node, scope) {
            Ok(i) => i,
            Err(e) => {
                self.steps.push(Step {
                    module_id: node.id,
                    module: spec.id.to_owned(),
                    input: Value::Null,
                    output: Vec::new(),
                    error: Some(StepError::from(&e)),
                    duration_us: micros(started),
                });
                return self.handle_error(ix, node, e, scope).await;
            }
        };
        self.count_operation()?;
        let recorded_input = Value::Object(input.clone());
        let cx = RunContext {
            scenario: &self.sc.name,
            execution_id: &self.exec_id,
            module_id: node.id,
            connection: node.connection.as_ref(),
            http: http_client(),
        };
        // Debug level: one span per operation is too costly to keep at info under load.
        let span = tracing::debug_span!("module", id = node.id, module = spec.id);
        let result = node.module.run(&cx, Input(input)).instrument(span).await;
        match result {
            Ok(outputs) => {
                if spec.id == "webhook.respond" && self.response.is_none() {
                    self.response = outputs.first().cloned();
                }
                let step = Step {
                    module_id: node.id,
                    module: spec.id.to_owned(),
                    input: recorded_input,
                    output: Vec::new(),
                    error: None,
                    duration_us: micros(started),
                };
                self.record_and_continue(step, ix, outputs, scope).await
            }
            Err(e) => {
                tracing::warn!(message = "Module failed.", scenario = %self.sc.name, execution_id = %self.exec_id, module_id = node.id, module = spec.id, kind = %e.kind, error = %self.sc.redactor.text(&e.message));
                self.steps.push(Step {
                    module_id: node.id,
                    module: spec.id.to_owned(),
                    input: recorded_input,
                    output: Vec::new(),
                    error: Some(StepError::from(&e)),
                    duration_us: micros(started),
                });
                self.handle_error(ix, node, e, scope).await
            }
        }
    }

    async fn handle_error(
        &mut self,
        ix: NodeIndex,
        node: &'s Node,
        e: ModuleError,
        scope: &mut Scope,
    ) -> Flow {
        let sc = self.sc;
        let graph = &sc.graph;
        if let Some((link, handler)) = graph.handler(ix) {
            scope.set(
                "error",
                json!({"type": e.kind.name(), "message": e.message, "module_id": node.id}),
            );
            let result = if self.passes(link.filter.as_ref(), ix, scope) {
                self.run_node(handler, scope).await
            } else {
                Ok(())
            };
            scope.remove("error");
            result?;
        }
        let policy = &node.on_error;
        match policy.directive {
            Directive::Ignore => {
                self.warnings.push(format!(
                    "module `{}` failed and its bundle was dropped (ignore): {}: {}",
                    node.id, e.kind, e.message
                ));
                Ok(())
            }
            Directive::Resume => {
                let output = match &policy.output {
                    Some(t) => self
                        .sc
                        .templates
                        .render_value(t, scope)
                        .unwrap_or_else(|err| json!({"error": err.to_string()})),
                    None => Value::Object(Map::new()),
                };
                self.continue_with(ix, vec![output], scope).await.0
            }
            Directive::Commit => Err(Halt::Commit),
            Directive::Rollback => Err(Halt::Rollback(StepError::from(&e))),
            Directive::Break => {
                self.incomplete.push(Incomplete {
                    module_id: node.id,
                    scope: scope.data().clone(),
                    error: StepError::from(&e),
                    retries: policy.retries,
                    interval_secs: policy.interval.as_secs(),
                    attempts: 0,
                });
                Ok(())
            }
        }
    }

    /// An aggregator reached by one bundle: collect it (or, when resumed outside its
    /// source's loop, aggregate it alone).
    async fn collect(
        &mut self,
        ix: NodeIndex,
        node: &'s Node,
        source: NodeIndex,
        text: bool,
        scope: &mut Scope,
    ) -> Flow {
        let mut input = match self.map_input(node, scope) {
            Ok(i) => i,
            Err(e) => return self.handle_error(ix, node, e, scope).await,
        };
        // `shift_remove` keeps the mapped fields in the order they were written.
        let key = input.shift_remove("group_by");
        let collected = if text {
            let item = match input.remove("text") {
                Some(Value::String(s)) => Value::String(s),
                Some(Value::Null) | None => Value::String(String::new()),
                Some(other) => Value::String(other.to_string()),
            };
            let separator = input
                .remove("separator")
                .and_then(|s| s.as_str().map(str::to_owned));
            Collected {
                key,
                item,
                separator,
            }
        } else {
            let item = if input.is_empty() {
                let source_key = self.sc.graph.node(source).id.to_string();
                scope.get(&source_key).cloned().unwrap_or(Value::Null)
            } else {
                Value::Object(input)
            };
            Collected {
                key,
                item,
                separator: None,
            }
        };
        match self.accumulators.get_mut(&ix) {
            Some(acc) => {
                acc.push(collected);
                Ok(())
            }
            None => self.emit(ix, vec![collected], scope).await,
        }
    }

    /// An aggregator's one operation: its collected bundles become its output bundles.
    fn emit<'a>(
        &'a mut self,
        ix: NodeIndex,
        collected: Vec<Collected>,
        scope: &'a mut Scope,
    ) -> BoxFlow<'a> {
        Box::pin(self.emit_inner(ix, collected, scope))
    }

    async fn emit_inner(
        &mut self,
        ix: NodeIndex,
        collected: Vec<Collected>,
        scope: &mut Scope,
    ) -> Flow {
        let sc = self.sc;
        let node = sc.graph.node(ix);
        let Role::Aggregator { text, .. } = node.role else {
            return Ok(());
        };
        self.count_operation()?;
        let started = Instant::now();
        let count = collected.len();
        let grouped = collected.iter().any(|c| c.key.is_some());
        let separator = collected
            .iter()
            .rev()
            .find_map(|c| c.separator.clone())
            .unwrap_or_default();
        // Groups in first-seen order.
        let mut groups: Vec<(Value, Vec<Value>)> = Vec::new();
        for c in collected {
            let key = c.key.unwrap_or(Value::Null);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, items)) => items.push(c.item),
                None => groups.push((key, vec![c.item])),
            }
        }
        if groups.is_empty() && !grouped {
            groups.push((Value::Null, Vec::new()));
        }
        let outputs: Vec<Value> = groups
            .into_iter()
            .map(|(key, items)| {
                let mut out = Map::new();
                if grouped {
                    out.insert("key".into(), key);
                }
                if text {
                    let parts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                    out.insert("text".into(), Value::String(parts.join(&separator)));
                } else {
                    out.insert("array".into(), Value::Array(items));
                }
                Value::Object(out)
            })
            .collect();
        let step = Step {
            module_id: node.id,
            module: node.module.spec().id.to_owned(),
            input: json!({ "bundles": count }),
            output: Vec::new(),
            error: None,
            duration_us: micros(started),
        };
        self.record_and_continue(step, ix, outputs, scope).await
    }
}

fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A value shortened for an error message.
fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

impl crate::graph::MappedField {
    /// The template text as written, for error messages.
    pub fn template_source(&self) -> String {
        match &self.template {
            crate::template::ValueTemplate::Text(t) => t.source().to_owned(),
            other => format!("{other:?}").chars().take(80).collect(),
        }
    }
}

#[cfg(test)]
mod tests;
