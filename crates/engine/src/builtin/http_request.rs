//! `http.request`: calls any HTTP API. Output `{ status, headers, body }`, the body parsed
//! when it is JSON. Non-2xx answers are errors typed as Make types them, so error
//! directives and retries apply.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::module::{Bundle, ErrorKind, Input, Module, ModuleError, RunContext};
use crate::spec::{field, out, FieldType, Kind, ModuleSpec};

/// `http.request`.
pub struct HttpRequest;

static SPEC: ModuleSpec = ModuleSpec {
    id: "http.request",
    kind: Kind::Action,
    label: "Make an HTTP request",
    help: "Sends an HTTP request and outputs `{ status, headers, body }` (body parsed when the response is JSON). 401/403 fail as InvalidAccessTokenError, 429 as RateLimitError, other 4xx as DataError, 5xx and network failures as ConnectionError.",
    app: None,
    fields: &[
        field("url", FieldType::Url).required().help("Absolute http(s) URL.").example("https://api.example.com/v1/items"),
        field("method", FieldType::Text).help("GET (default), POST, PUT, PATCH, DELETE or HEAD.").example("POST"),
        field("headers", FieldType::Collection).help("Request headers, name to value.").example("{ Accept: application/json }"),
        field("query", FieldType::Collection).help("Query string parameters, name to value.").example("{ page: 2 }"),
        field("body", FieldType::Any).help("Request body: an object or array is sent as JSON, text as is.").example("{ name: \"{{1.name}}\" }"),
        field("timeout", FieldType::Number).help("Seconds before giving up (default 30, at most 300).").example("10"),
    ],
    output: &[
        out("status", FieldType::Number, "HTTP status code."),
        out("headers", FieldType::Collection, "Response headers, lowercase names."),
        out("body", FieldType::Any, "Response body: parsed JSON, or text."),
    ],
};

/// Largest response body read.
const MAX_BODY: usize = 10 * 1024 * 1024;

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Classifies a non-2xx status as Make does.
pub fn error_for_status(status: u16, body: &str, retry_after: Option<Duration>) -> ModuleError {
    let snippet: String = body.chars().take(300).collect();
    let kind = ErrorKind::from_http_status(status).unwrap_or(ErrorKind::ConnectionError);
    ModuleError::new(kind, format!("HTTP {status}: {snippet}")).with_retry_after(retry_after)
}

#[async_trait]
impl Module for HttpRequest {
    fn spec(&self) -> &'static ModuleSpec {
        &SPEC
    }

    async fn run(&self, cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        let url = input.require_text("url")?;
        let method_text = input.text("method").unwrap_or("GET").to_ascii_uppercase();
        let method = match method_text.as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            "PATCH" => reqwest::Method::PATCH,
            "DELETE" => reqwest::Method::DELETE,
            "HEAD" => reqwest::Method::HEAD,
            other => {
                return Err(ModuleError::data(format!(
                    "unsupported method `{other}`; use GET, POST, PUT, PATCH, DELETE or HEAD"
                )))
            }
        };
        let timeout = input
            .get("timeout")
            .and_then(Value::as_f64)
            .unwrap_or(30.0)
            .clamp(0.1, 300.0);
        let mut req = cx
            .http
            .request(method, url)
            .timeout(Duration::from_secs_f64(timeout));
        if let Some(Value::Object(h)) = input.get("headers") {
            for (k, v) in h {
                req = req.header(k.as_str(), scalar_text(v));
            }
        }
        if let Some(Value::Object(q)) = input.get("query") {
            let pairs: Vec<(String, String)> =
                q.iter().map(|(k, v)| (k.clone(), scalar_text(v))).collect();
            req = req.query(&pairs);
        }
        match input.get("body") {
            Some(v @ (Value::Object(_) | Value::Array(_))) => req = req.json(v),
            Some(Value::String(s)) => req = req.body(s.clone()),
            Some(other) => req = req.body(other.to_string()),
            None => {}
        }
        let resp = req.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else {
                "failed"
            };
            ModuleError::connection(format!(
                "request to `{}` {what}: {}",
                redact_url(url),
                root_cause(&e)
            ))
        })?;
        let status = resp.status().as_u16();
        let mut headers = Map::new();
        for (k, v) in resp.headers() {
            headers.insert(
                k.as_str().to_owned(),
                Value::String(v.to_str().unwrap_or_default().to_owned()),
            );
        }
        let retry_after = headers
            .get("retry-after")
            .and_then(Value::as_str)
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let is_json = headers
            .get("content-type")
            .and_then(Value::as_str)
            .is_some_and(|c| c.contains("json"));
        let bytes = resp.bytes().await.map_err(|e| {
            ModuleError::connection(format!("reading the response failed: {}", root_cause(&e)))
        })?;
        if bytes.len() > MAX_BODY {
            return Err(ModuleError::data(format!(
                "response body is larger than {MAX_BODY} bytes"
            )));
        }
        let text = String::from_utf8_lossy(&bytes);
        if !(200..300).contains(&status) {
            return Err(error_for_status(status, &text, retry_after));
        }
        let body = if is_json {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(text.into_owned()))
        } else {
            Value::String(text.into_owned())
        };
        Ok(vec![
            json!({ "status": status, "headers": headers, "body": body }),
        ])
    }
}

/// The URL without its query string (which may hold keys).
fn redact_url(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The innermost error message of a reqwest error chain.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
