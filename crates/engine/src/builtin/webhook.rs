//! `webhook.custom` (instant trigger: any JSON or form body becomes the bundle) and
//! `webhook.respond` (sets the HTTP response of the call that started the execution).

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::module::{Bundle, Input, Module, ModuleError, RunContext, Trigger, TriggerKind};
use crate::spec::{field, out, FieldType, Kind, ModuleSpec};

/// `webhook.custom`.
pub struct CustomWebhook;
/// `webhook.respond`.
pub struct WebhookRespond;

static CUSTOM: ModuleSpec = ModuleSpec {
    id: "webhook.custom",
    kind: Kind::Trigger,
    label: "Custom webhook",
    help: "Starts an execution for each HTTP request to the scenario's hook URL (`POST /hooks/{token}`). A JSON object body (or a form body) is the bundle; any other JSON value arrives as `{ value }`. `weft run --input FILE` feeds the file's JSON directly.",
    app: None,
    fields: &[field("name", FieldType::Text)
        .required()
        .param()
        .help("A name for the hook, shown by `weft hooks list`.")
        .example("orders")],
    output: &[],
};

static RESPOND: ModuleSpec = ModuleSpec {
    id: "webhook.respond",
    kind: Kind::Action,
    label: "Webhook response",
    help: "Sets the HTTP response returned to the caller of the scenario's `webhook.custom` hook (the first one that runs wins). Without it, the hook answers 200 `{\"status\":\"queued\",\"id\":N}` as soon as the request is durably queued. With it, the hook waits (up to 30 s) for the execution and answers with the response it set.",
    app: None,
    fields: &[
        field("status", FieldType::Number).help("HTTP status (default 200).").example("201"),
        field("body", FieldType::Any).help("Response body: an object or array is sent as JSON, text as is.").example("{ ok: true }"),
        field("headers", FieldType::Collection).help("Response headers.").example("{ X-Request-Id: \"{{1.id}}\" }"),
    ],
    output: &[
        out("status", FieldType::Number, "The status set."),
        out("headers", FieldType::Collection, "The headers set."),
        out("body", FieldType::Any, "The body set."),
    ],
};

#[async_trait]
impl Module for CustomWebhook {
    fn spec(&self) -> &'static ModuleSpec {
        &CUSTOM
    }

    async fn run(&self, _cx: &RunContext<'_>, _input: Input) -> Result<Vec<Bundle>, ModuleError> {
        Err(ModuleError::runtime("triggers are not run as actions"))
    }

    fn as_trigger(&self) -> Option<&dyn Trigger> {
        Some(self)
    }
}

impl Trigger for CustomWebhook {
    fn trigger_kind(&self) -> TriggerKind {
        TriggerKind::Instant
    }

    fn parse(&self, _params: &Map<String, Value>, body: Value) -> Result<Vec<Bundle>, ModuleError> {
        Ok(vec![match body {
            Value::Object(_) => body,
            other => json!({ "value": other }),
        }])
    }

    fn passes_through(
        &self,
        _params: &Map<String, Value>,
        body: &Value,
    ) -> Option<Result<bool, ModuleError>> {
        // An object is the bundle as it is; anything else is wrapped by `parse`.
        body.is_object().then_some(Ok(true))
    }
}

#[async_trait]
impl Module for WebhookRespond {
    fn spec(&self) -> &'static ModuleSpec {
        &RESPOND
    }

    async fn run(&self, _cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        let status = input.get("status").and_then(Value::as_u64).unwrap_or(200);
        if !(100..=599).contains(&status) {
            return Err(ModuleError::data(format!(
                "`status` must be an HTTP status code, not `{status}`"
            )));
        }
        Ok(vec![json!({
            "status": status,
            "headers": input.get("headers").cloned().unwrap_or_else(|| json!({})),
            "body": input.get("body").cloned().unwrap_or(Value::Null),
        })])
    }
}
