//! The `Module` trait every trigger, action and flow module implements, the typed
//! `ModuleError` it fails with, and the context it runs in.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::spec::{FieldSpec, ModuleSpec};

/// A bundle: one JSON object flowing between modules.
pub type Bundle = Value;

/// Make's error types; directives and retries match on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The other side could not be reached, timed out or answered 5xx.
    ConnectionError,
    /// The other side asked us to slow down (HTTP 429).
    RateLimitError,
    /// The input was refused (HTTP 400/404/422, bad value, failed coercion).
    DataError,
    /// The credentials were refused (HTTP 401/403).
    InvalidAccessTokenError,
    /// Anything else that went wrong while running.
    RuntimeError,
    /// Data needed to run was not there yet.
    IncompleteDataError,
}

impl ErrorKind {
    /// The name as Make writes it (also `{{error.type}}`).
    pub const fn name(self) -> &'static str {
        match self {
            ErrorKind::ConnectionError => "ConnectionError",
            ErrorKind::RateLimitError => "RateLimitError",
            ErrorKind::DataError => "DataError",
            ErrorKind::InvalidAccessTokenError => "InvalidAccessTokenError",
            ErrorKind::RuntimeError => "RuntimeError",
            ErrorKind::IncompleteDataError => "IncompleteDataError",
        }
    }

    /// Make's type for an HTTP error status: 401/403 InvalidAccessTokenError, 429
    /// RateLimitError, other 4xx DataError, 5xx ConnectionError; `None` for anything else
    /// (the caller decides what an unexpected status means).
    pub const fn from_http_status(status: u16) -> Option<Self> {
        match status {
            401 | 403 => Some(ErrorKind::InvalidAccessTokenError),
            429 => Some(ErrorKind::RateLimitError),
            400..=499 => Some(ErrorKind::DataError),
            500..=599 => Some(ErrorKind::ConnectionError),
            _ => None,
        }
    }

    /// Whether trying again later may succeed.
    pub const fn is_transient(self) -> bool {
        matches!(self, ErrorKind::ConnectionError | ErrorKind::RateLimitError)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A module failed. The kind is data so that error directives can match on it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ModuleError {
    /// Make's error type.
    pub kind: ErrorKind,
    /// What went wrong, for users; never contains a secret.
    pub message: String,
    /// How long the other side asked us to wait (rate limits).
    pub retry_after: Option<Duration>,
}

impl ModuleError {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ModuleError {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }
    /// A `DataError`.
    pub fn data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::DataError, message)
    }
    /// A `RuntimeError`.
    pub fn runtime(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::RuntimeError, message)
    }
    /// A `ConnectionError`.
    pub fn connection(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ConnectionError, message)
    }
    /// Sets the `Retry-After` delay.
    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }
}

/// A module's input after mapping and coercion: field name → value.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Input(pub Map<String, Value>);

impl Input {
    /// A field's value, if given.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }
    /// A text field, if given and non-empty.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
    /// A required text field, or a `DataError` naming it.
    pub fn require_text(&self, name: &str) -> Result<&str, ModuleError> {
        self.text(name)
            .ok_or_else(|| ModuleError::data(format!("field `{name}` is required but empty")))
    }
    /// The whole input as a typed struct (field names as serde keys).
    pub fn into_typed<T: DeserializeOwned>(self) -> Result<T, ModuleError> {
        serde_json::from_value(Value::Object(self.0))
            .map_err(|e| ModuleError::data(format!("invalid input: {e}")))
    }
    /// The input as a JSON object.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// What a running module can see: where it runs and its connection.
pub struct RunContext<'a> {
    /// Scenario name.
    pub scenario: &'a str,
    /// Execution id.
    pub execution_id: &'a str,
    /// The module's id in the scenario.
    pub module_id: u32,
    /// The module's connection, if it declares an app.
    pub connection: Option<&'a Arc<dyn Any + Send + Sync>>,
    /// The shared HTTP client for generic HTTP modules.
    pub http: &'a reqwest::Client,
}

impl RunContext<'_> {
    /// The module's connection as the app's concrete type.
    pub fn connection<T: Any + Send + Sync>(&self) -> Result<&T, ModuleError> {
        self.connection
            .and_then(|c| c.downcast_ref::<T>())
            .ok_or_else(|| {
                ModuleError::runtime(format!(
                    "module `{}` has no connection of the expected app",
                    self.module_id
                ))
            })
    }
}

/// A trigger, action, search or flow module.
///
/// Implementations are unit structs with a `static` [`ModuleSpec`]; the registry holds them
/// as `&'static dyn Module`.
#[async_trait]
pub trait Module: Send + Sync + 'static {
    /// The module's spec: id, kind, fields, output.
    fn spec(&self) -> &'static ModuleSpec;

    /// Checks static parameters beyond what the spec says (a cron line, a duration).
    /// Returns the field and what is wrong with it.
    fn check_params(&self, _params: &Map<String, Value>) -> Result<(), (String, String)> {
        Ok(())
    }

    /// Runs one operation: one input bundle in, zero or more bundles out.
    async fn run(&self, cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError>;

    /// The trigger side of the module, for triggers.
    fn as_trigger(&self) -> Option<&dyn Trigger> {
        None
    }
}

/// How a trigger is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerKind {
    /// Called by HTTP (`POST /hooks/{token}`).
    Instant,
    /// Fired by the clock.
    Schedule,
}

/// What the runtime needs from a trigger module.
#[async_trait]
pub trait Trigger: Send + Sync {
    /// Instant (webhook) or scheduled.
    fn trigger_kind(&self) -> TriggerKind;

    /// The app event it listens to, for app webhooks (e.g. Sonar's `customer_created`).
    fn event(&self) -> Option<&'static str> {
        None
    }

    /// Turns a received request body into trigger bundles (none: acknowledge and ignore).
    fn parse(&self, _params: &Map<String, Value>, body: Value) -> Result<Vec<Bundle>, ModuleError> {
        Ok(vec![body])
    }

    /// What [`Trigger::parse`] would make of `body`, told without taking it, for triggers whose
    /// bundle is the body itself: `Some(Ok(true))` the body is the one bundle, unchanged;
    /// `Some(Ok(false))` no bundle (acknowledged and ignored); `Some(Err(_))` the error `parse`
    /// would return; `None` (the default) only `parse` can tell. When it answers, the executor
    /// does not call `parse`, and keeps the payload once per execution (as the trigger step's
    /// bundle, not also as a copy for the record's `trigger`).
    fn passes_through(
        &self,
        _params: &Map<String, Value>,
        _body: &Value,
    ) -> Option<Result<bool, ModuleError>> {
        None
    }

    /// Registers `hook_url` with the app; returns what `deactivate` needs.
    async fn activate(
        &self,
        _connection: Option<&Arc<dyn Any + Send + Sync>>,
        _params: &Map<String, Value>,
        _hook_url: &str,
    ) -> Result<Value, ModuleError> {
        Ok(Value::Null)
    }

    /// Removes a registration made by `activate`.
    async fn deactivate(
        &self,
        _connection: Option<&Arc<dyn Any + Send + Sync>>,
        _registration: &Value,
    ) -> Result<(), ModuleError> {
        Ok(())
    }
}

/// An app's connection type (`connections: {x: {app: sonar, ...}}`).
pub trait App: Send + Sync + 'static {
    /// The `app:` name.
    fn name(&self) -> &'static str;
    /// The connection's fields (besides `app`).
    fn fields(&self) -> &'static [FieldSpec];
    /// Names of fields whose values are secrets (redacted everywhere).
    fn secret_fields(&self) -> &'static [&'static str];
    /// Builds the connection (HTTP client, base URL) from its fields.
    fn connect(&self, fields: &Map<String, Value>) -> Result<Arc<dyn Any + Send + Sync>, String>;
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    #[test]
    fn http_statuses_map_to_make_error_types() {
        assert_eq!(
            ErrorKind::from_http_status(401),
            Some(ErrorKind::InvalidAccessTokenError)
        );
        assert_eq!(
            ErrorKind::from_http_status(403),
            Some(ErrorKind::InvalidAccessTokenError)
        );
        assert_eq!(
            ErrorKind::from_http_status(429),
            Some(ErrorKind::RateLimitError)
        );
        assert_eq!(ErrorKind::from_http_status(404), Some(ErrorKind::DataError));
        assert_eq!(ErrorKind::from_http_status(422), Some(ErrorKind::DataError));
        assert_eq!(
            ErrorKind::from_http_status(503),
            Some(ErrorKind::ConnectionError)
        );
        assert_eq!(ErrorKind::from_http_status(302), None);
    }
}
