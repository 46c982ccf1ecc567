//! The execution record: what ran, with which input, what came out, how it ended.
//! Serializes to the JSON of DESIGN.md (`weft run --json`, `weft executions show --json`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::module::{ErrorKind, ModuleError};

/// A new execution (or other record) id: a UUID v7, so that ids sort by creation time (history
/// inserts append to their index). Its random bits come from the thread-local generator, not
/// a system call per id.
pub fn new_id() -> String {
    let millis = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random())
        .into_uuid()
        .to_string()
}

/// How an execution ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything ran (or `commit` stopped it).
    Success,
    /// Ran to the end, but some bundles were dropped by `ignore`.
    Warning,
    /// Stopped by an error (`rollback`, the default).
    Error,
    /// At least one bundle is waiting to be retried (`break`).
    Incomplete,
}

impl Status {
    /// The name as stored and shown.
    pub const fn name(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Warning => "warning",
            Status::Error => "error",
            Status::Incomplete => "incomplete",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An error as recorded: its Make type and message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    /// Make's error type.
    #[serde(rename = "type")]
    pub kind: ErrorKind,
    /// What went wrong.
    pub message: String,
}

impl From<&ModuleError> for StepError {
    fn from(e: &ModuleError) -> Self {
        StepError {
            kind: e.kind,
            message: e.message.clone(),
        }
    }
}

/// One operation: a module run on one input bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The module's id in the scenario.
    pub module_id: u32,
    /// The module type, e.g. `sonar.send_message`.
    pub module: String,
    /// The input after mapping and coercion.
    pub input: Value,
    /// The output bundles.
    pub output: Vec<Value>,
    /// The error, if the module failed.
    pub error: Option<StepError>,
    /// How long the operation took, in microseconds.
    #[serde(default)]
    pub duration_us: u64,
}

/// What a `break` stored: enough to run the failed module again, and everything after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incomplete {
    /// The module that failed.
    pub module_id: u32,
    /// The outputs of the modules upstream of it, keyed by id (the render data).
    pub scope: Value,
    /// Why it failed.
    pub error: StepError,
    /// Automatic retries allowed by the directive.
    pub retries: u32,
    /// Seconds between automatic retries.
    pub interval_secs: u64,
    /// Retries made so far.
    #[serde(default)]
    pub attempts: u32,
}

impl Incomplete {
    /// Seconds until the next automatic retry, when one is left (`None`: it waits for
    /// `weft executions retry`). Capped so that it stays representable in milliseconds.
    pub fn next_retry_secs(&self) -> Option<u64> {
        (self.attempts < self.retries).then(|| self.interval_secs.min(u64::MAX / 2_000))
    }
}

/// One execution of a scenario.
///
/// Serializes with every field, `trigger` included, whether or not the executor kept the
/// payload once (see [`ExecutionRecord::trigger`]).
#[derive(Clone, Debug, Deserialize)]
pub struct ExecutionRecord {
    /// Unique id.
    pub id: String,
    /// Scenario name.
    pub scenario: String,
    /// How it ended.
    pub status: Status,
    /// Operations run (one per module run on one bundle).
    pub operations: u64,
    /// Wall time.
    pub duration_ms: u64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// The trigger payload, unless `trigger_is_first_bundle` (then `Null`).
    trigger: Value,
    /// The trigger payload is the trigger step's one output bundle, kept there only: the
    /// executor sets it for triggers that pass the payload through unchanged, which saves a
    /// deep copy of every webhook.
    #[serde(skip)]
    trigger_is_first_bundle: bool,
    /// One step per operation, in order.
    pub steps: Vec<Step>,
    /// Why it stopped, for `error` executions.
    pub error: Option<StepError>,
    /// Bundles dropped by `ignore`, and other things worth knowing.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Bundles stored by `break`, to retry.
    #[serde(default)]
    pub incomplete: Vec<Incomplete>,
    /// The response set by `webhook.respond`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
}

impl ExecutionRecord {
    /// A record of no operation yet: `Success`, no steps, no error.
    pub fn new(
        id: impl Into<String>,
        scenario: impl Into<String>,
        started_at: impl Into<String>,
        trigger: Value,
    ) -> Self {
        ExecutionRecord {
            id: id.into(),
            scenario: scenario.into(),
            status: Status::Success,
            operations: 0,
            duration_ms: 0,
            started_at: started_at.into(),
            trigger,
            trigger_is_first_bundle: false,
            steps: Vec::new(),
            error: None,
            warnings: Vec::new(),
            incomplete: Vec::new(),
            response: None,
        }
    }

    /// The trigger payload the execution started from. For a record the executor made from a
    /// payload that became the trigger step's bundle, it is that bundle (`steps[0].output[0]`):
    /// whoever edits that bundle edits the trigger ([`ExecutionRecord::set_trigger`] keeps a
    /// payload of its own instead).
    pub fn trigger(&self) -> &Value {
        if self.trigger_is_first_bundle {
            if let Some(bundle) = self.steps.first().and_then(|s| s.output.first()) {
                return bundle;
            }
        }
        &self.trigger
    }

    /// Replaces the trigger payload.
    pub fn set_trigger(&mut self, trigger: Value) {
        self.trigger = trigger;
        self.trigger_is_first_bundle = false;
    }

    /// Records that the trigger payload is the first step's first output bundle (the executor
    /// moved it there instead of copying it).
    pub(crate) fn keep_trigger_as_first_bundle(&mut self) {
        let kept = self.steps.first().is_some_and(|s| !s.output.is_empty());
        debug_assert!(
            kept,
            "the trigger step lost the payload it was given as its bundle"
        );
        if kept {
            self.trigger = Value::Null;
            self.trigger_is_first_bundle = true;
        }
    }
}

/// Equal when every field is, the trigger payload compared wherever it is kept.
impl PartialEq for ExecutionRecord {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.scenario == other.scenario
            && self.status == other.status
            && self.operations == other.operations
            && self.duration_ms == other.duration_ms
            && self.started_at == other.started_at
            && self.trigger() == other.trigger()
            && self.steps == other.steps
            && self.error == other.error
            && self.warnings == other.warnings
            && self.incomplete == other.incomplete
            && self.response == other.response
    }
}

impl Serialize for ExecutionRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let fields = 11 + usize::from(self.response.is_some());
        let mut st = serializer.serialize_struct("ExecutionRecord", fields)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("scenario", &self.scenario)?;
        st.serialize_field("status", &self.status)?;
        st.serialize_field("operations", &self.operations)?;
        st.serialize_field("duration_ms", &self.duration_ms)?;
        st.serialize_field("started_at", &self.started_at)?;
        st.serialize_field("trigger", self.trigger())?;
        st.serialize_field("steps", &self.steps)?;
        st.serialize_field("error", &self.error)?;
        st.serialize_field("warnings", &self.warnings)?;
        st.serialize_field("incomplete", &self.incomplete)?;
        match &self.response {
            Some(response) => st.serialize_field("response", response)?,
            None => st.skip_field("response")?,
        }
        st.end()
    }
}

/// Finds secrets and replaces them with a marker. Its searchers are built once (keep one for
/// as long as its secrets live: a scenario, a connection) and used for every string: most
/// strings hold no secret, and building a searcher for each would cost more than the search.
/// Empty secrets are ignored (they would match everywhere).
pub struct Redactor {
    secrets: Vec<(memchr::memmem::Finder<'static>, String)>,
    /// The length of the shortest secret: a shorter text holds none, and is not searched
    /// (most strings of a bundle are shorter than a token).
    shortest: usize,
    marker: String,
}

impl Redactor {
    /// A redactor replacing `secrets` with `marker`.
    pub fn new(secrets: &[String], marker: &str) -> Self {
        let secrets: Vec<_> = secrets
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| (memchr::memmem::Finder::new(s).into_owned(), s.clone()))
            .collect();
        Redactor {
            shortest: secrets.iter().map(|(_, s)| s.len()).min().unwrap_or(0),
            secrets,
            marker: marker.to_owned(),
        }
    }

    /// Whether it has no secret to look for.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The secrets it looks for.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(|(_, s)| s.as_str())
    }

    fn holds_secret(&self, text: &str) -> bool {
        text.len() >= self.shortest
            && self
                .secrets
                .iter()
                .any(|(finder, _)| finder.find(text.as_bytes()).is_some())
    }

    /// `text` with every secret replaced.
    pub fn text(&self, text: &str) -> String {
        if self.holds_secret(text) {
            self.replaced(text)
        } else {
            text.to_owned()
        }
    }

    /// Replaces every secret in `text`.
    pub fn in_place(&self, text: &mut String) {
        if self.holds_secret(text) {
            *text = self.replaced(text);
        }
    }

    /// `text` with every secret replaced, once it is known to hold one.
    fn replaced(&self, text: &str) -> String {
        let mut t = text.to_owned();
        for (_, secret) in &self.secrets {
            t = t.replace(secret.as_str(), &self.marker);
        }
        t
    }

    /// Replaces every secret in every string of `value` (object keys are left as they are).
    pub fn value(&self, value: &mut Value) {
        if self.secrets.is_empty() {
            return;
        }
        match value {
            Value::String(s) => self.in_place(s),
            Value::Array(a) => a.iter_mut().for_each(|v| self.value(v)),
            Value::Object(o) => o.values_mut().for_each(|v| self.value(v)),
            _ => {}
        }
    }
}

impl ExecutionRecord {
    /// Redacts every secret from every bundle, input, error and warning.
    pub fn redact(&mut self, r: &Redactor) {
        if r.is_empty() {
            return;
        }
        // Null when the payload is the first step's bundle, which is redacted below.
        r.value(&mut self.trigger);
        for step in &mut self.steps {
            r.value(&mut step.input);
            step.output.iter_mut().for_each(|v| r.value(v));
            if let Some(e) = &mut step.error {
                r.in_place(&mut e.message);
            }
        }
        if let Some(e) = &mut self.error {
            r.in_place(&mut e.message);
        }
        self.warnings.iter_mut().for_each(|w| r.in_place(w));
        for inc in &mut self.incomplete {
            r.value(&mut inc.scope);
            r.in_place(&mut inc.error.message);
        }
        if let Some(v) = &mut self.response {
            r.value(v);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn redaction_replaces_every_secret_everywhere_and_ignores_empty_ones() {
        let secrets = vec!["tok-123".to_owned(), String::new(), "pw".to_owned()];
        let mut v = serde_json::json!({
            "a": "Bearer tok-123 and tok-123",
            "b": [{ "c": "pw=pw" }, 7, null, "clean"],
            "tok-123": "keys are left as they are"
        });
        super::Redactor::new(&secrets, "[x]").value(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "a": "Bearer [x] and [x]",
                "b": [{ "c": "[x]=[x]" }, 7, null, "clean"],
                "tok-123": "keys are left as they are"
            })
        );
        let r = super::Redactor::new(&secrets, "***");
        assert_eq!(r.text("no secret here"), "no secret here");
        assert_eq!(r.text("xtok-123x"), "x***x");
        let mut untouched = serde_json::json!("pw");
        super::Redactor::new(&[String::new()], "***").value(&mut untouched);
        assert_eq!(untouched, serde_json::json!("pw"));
    }

    #[test]
    fn the_next_retry_is_due_while_retries_are_left_and_stays_representable() {
        let mut inc = super::Incomplete {
            module_id: 2,
            scope: serde_json::json!({}),
            error: super::StepError {
                kind: super::ErrorKind::ConnectionError,
                message: "down".into(),
            },
            retries: 2,
            interval_secs: 60,
            attempts: 1,
        };
        assert_eq!(inc.next_retry_secs(), Some(60));
        inc.interval_secs = u64::MAX;
        assert_eq!(inc.next_retry_secs(), Some(u64::MAX / 2_000));
        inc.attempts = 2;
        assert_eq!(inc.next_retry_secs(), None);
    }

    #[test]
    fn new_ids_are_v7_unique_and_time_ordered() {
        let a = super::new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::new_id();
        let ua = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(ua.get_version_num(), 7);
        assert_ne!(a, b);
        assert!(a < b, "{a} sorts before {b}");
    }
}
