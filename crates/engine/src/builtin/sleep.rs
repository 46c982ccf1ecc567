//! `flow.sleep`: waits, then passes the bundle on (Make's Sleep, at most 300 seconds).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::module::{Bundle, Input, Module, ModuleError, RunContext};
use crate::spec::{field, out, FieldType, Kind, ModuleSpec};

/// `flow.sleep`.
pub struct Sleep;

/// The longest sleep allowed, as in Make.
pub const MAX_SECONDS: f64 = 300.0;

static SPEC: ModuleSpec = ModuleSpec {
    id: "flow.sleep",
    kind: Kind::Flow,
    label: "Sleep",
    help: "Waits the given number of seconds (at most 300) before the bundle goes on.",
    app: None,
    fields: &[field("seconds", FieldType::Number)
        .required()
        .help("How long to wait, 0 to 300 seconds.")
        .example("5")],
    output: &[out(
        "slept_seconds",
        FieldType::Number,
        "How long it waited.",
    )],
};

fn seconds(value: Option<&Value>) -> Result<f64, String> {
    let s = value.and_then(Value::as_f64).unwrap_or(0.0);
    if !(0.0..=MAX_SECONDS).contains(&s) {
        return Err(format!(
            "`seconds` must be between 0 and {MAX_SECONDS}, not `{s}`"
        ));
    }
    Ok(s)
}

#[async_trait]
impl Module for Sleep {
    fn spec(&self) -> &'static ModuleSpec {
        &SPEC
    }

    fn check_params(
        &self,
        params: &serde_json::Map<String, Value>,
    ) -> Result<(), (String, String)> {
        match params.get("seconds") {
            Some(v) => seconds(Some(v))
                .map(|_| ())
                .map_err(|m| ("seconds".to_owned(), m)),
            None => Ok(()),
        }
    }

    async fn run(&self, _cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        let s = seconds(input.get("seconds")).map_err(ModuleError::data)?;
        tokio::time::sleep(Duration::from_secs_f64(s)).await;
        Ok(vec![json!({ "slept_seconds": s })])
    }
}
