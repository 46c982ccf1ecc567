//! `sonar.make_api_call`: any Sonar API call, relative to the connection's base URL, with
//! the connection's token added (as Make's "Make an API Call"). Output `{status, headers,
//! body}`, the body parsed when it is JSON; error statuses fail as in every Sonar module.
//!
//! The call can never leave the connection's host: the path must start with `/` and is
//! refused when it is an absolute or scheme-relative URL (`https://…`, `//host`, `http:x`),
//! has `.`/`..` or empty segments, a backslash, an `@` or control characters, or
//! percent-encodes `/`, `\`, `.` or `%` (`%2e%2e`, `%2F`, `%255c`). After those checks the
//! final URL is built and must still have the base URL's scheme, host and port and a path
//! below its path. A query string may hold anything (`?u=http://x` stays on the host).
//! `X-Token`, `Token`, `Host`, `Content-Length`, `Transfer-Encoding` and `Connection`
//! headers cannot be set: the token is the connection's alone.

use async_trait::async_trait;
use percent_encoding::percent_decode_str;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use weft_engine::spec::{field, out, FieldType, Kind, ModuleSpec};
use weft_engine::{Bundle, Input, Module, ModuleError, RunContext};

use crate::client::{Call, RequestBody};
use crate::connection::SonarConnection;

/// `sonar.make_api_call`.
pub struct MakeApiCall;

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.make_api_call",
    kind: Kind::Action,
    label: "Make an API call",
    help: "Calls any Sonar API endpoint with the connection's token. The path is relative to the connection's base URL (`/v1/webhooks`, not `https://…`) and cannot leave its host. Outputs `{ status, headers, body }`; error statuses fail with the usual Sonar error types.",
    app: Some("sonar"),
    fields: &[
        field("path", FieldType::Text).required().help("Path below the base URL, starting with `/v1/`; may carry a query string.").example("/v1/webhooks"),
        field("method", FieldType::Text).help("GET (default), POST, PUT, PATCH or DELETE.").example("GET"),
        field("headers", FieldType::Collection).help("Extra request headers, name to value (the token is added by the connection and cannot be set here).").example("{ Accept: application/json }"),
        field("query", FieldType::Collection).help("Query string parameters, name to value (an array value repeats the name).").example("{ phone_number: \"+13105550147\" }"),
        field("body", FieldType::Any).help("Request body: an object or array is sent as JSON, text as is.").example("{ webhook: { name: crm, active: \"true\", url: \"https://crm.example.com/sonar\", settings: { customer_created: \"true\" } } }"),
    ],
    output: &[
        out("status", FieldType::Number, "HTTP status code (2xx)."),
        out("headers", FieldType::Collection, "Response headers, lowercase names."),
        out("body", FieldType::Any, "Response body: parsed JSON, or text."),
    ],
};

/// Headers the caller may not set.
const RESERVED_HEADERS: &[&str] = &[
    "x-token",
    "token",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
];

#[derive(Deserialize)]
struct MakeApiCallInput {
    path: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: Option<Map<String, Value>>,
    #[serde(default)]
    query: Option<Map<String, Value>>,
    #[serde(default)]
    body: Option<Value>,
}

#[async_trait]
impl Module for MakeApiCall {
    fn spec(&self) -> &'static ModuleSpec {
        &SPEC
    }

    async fn run(&self, cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        let sonar = cx.connection::<SonarConnection>()?;
        let input: MakeApiCallInput = input.into_typed()?;
        let method = method(input.method.as_deref())?;
        let mut url = check_path(&sonar.base, &input.path).map_err(ModuleError::data)?;
        if let Some(query) = input.query {
            let mut pairs = Vec::new();
            for (name, value) in query {
                match value {
                    Value::Null => {}
                    Value::Array(items) => {
                        for item in items {
                            pairs.push((name.clone(), scalar(&name, "query", item)?));
                        }
                    }
                    other => pairs.push((name.clone(), scalar(&name, "query", other)?)),
                }
            }
            if !pairs.is_empty() {
                url.query_pairs_mut().extend_pairs(pairs);
            }
        }
        let headers = headers(input.headers.unwrap_or_default())?;
        let body = match input.body {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
                Ok(v @ (Value::Object(_) | Value::Array(_)))
                    if !headers.contains_key(CONTENT_TYPE) =>
                {
                    Some(RequestBody::Json(v))
                }
                _ => Some(RequestBody::Text(s)),
            },
            Some(v) => Some(RequestBody::Json(v)),
        };
        let response = sonar
            .call(&Call {
                method,
                url,
                headers,
                body,
                ok_statuses: &[],
            })
            .await?;
        Ok(vec![json!({
            "status": response.status,
            "headers": sonar.headers_json(&response.headers),
            "body": response.body,
        })])
    }
}

fn method(text: Option<&str>) -> Result<Method, ModuleError> {
    let text = text
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or("GET")
        .to_ascii_uppercase();
    match text.as_str() {
        "GET" => Ok(Method::GET),
        "POST" => Ok(Method::POST),
        "PUT" => Ok(Method::PUT),
        "PATCH" => Ok(Method::PATCH),
        "DELETE" => Ok(Method::DELETE),
        other => Err(ModuleError::data(format!(
            "field `method`: `{other}` is not supported; use GET, POST, PUT, PATCH or DELETE"
        ))),
    }
}

/// A scalar header or query value as text.
fn scalar(name: &str, what: &str, value: Value) -> Result<String, ModuleError> {
    match value {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(ModuleError::data(format!(
            "field `{what}`: `{name}` must be text, a number or a boolean, not `{other}`"
        ))),
    }
}

/// The caller's headers, refusing the reserved ones and invalid names or values.
fn headers(given: Map<String, Value>) -> Result<HeaderMap, ModuleError> {
    let mut out = HeaderMap::new();
    for (name, value) in given {
        if value.is_null() {
            continue;
        }
        if RESERVED_HEADERS.contains(&name.trim().to_ascii_lowercase().as_str()) {
            return Err(ModuleError::data(format!(
                "field `headers`: `{name}` cannot be set; the connection sends the token and the transport headers"
            )));
        }
        let header = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            ModuleError::data(format!(
                "field `headers`: `{name}` is not a valid header name"
            ))
        })?;
        let text = scalar(&name, "headers", value)?;
        let value = HeaderValue::from_str(&text).map_err(|_| {
            ModuleError::data(format!(
                "field `headers`: the value of `{name}` has characters a header cannot carry"
            ))
        })?;
        out.append(header, value);
    }
    Ok(out)
}

/// Checks a user-given path and builds the URL it names below `base`; the error says why
/// the path was refused (see the module docs for the rules).
pub fn check_path(base: &Url, path: &str) -> Result<Url, String> {
    let shown: String = path
        .chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let refuse = |why: &str| {
        format!("field `path`: `{shown}` {why}; give a path below the connection's base URL, like `/v1/webhooks`")
    };
    let path = path.trim_matches(' ');
    if path.is_empty() {
        return Err(refuse("is empty"));
    }
    if path.chars().any(char::is_control) {
        return Err(refuse("contains control characters"));
    }
    if path.contains('\\') {
        return Err(refuse("contains a backslash"));
    }
    if !path.starts_with('/') {
        let scheme_like = path
            .split('/')
            .next()
            .is_some_and(|first| first.contains(':'));
        return Err(refuse(if scheme_like {
            "is an absolute URL"
        } else {
            "does not start with `/`"
        }));
    }
    if path.starts_with("//") {
        return Err(refuse("is a scheme-relative URL (`//host`)"));
    }
    if path.contains('#') {
        return Err(refuse("has a fragment (`#`)"));
    }
    let path_part = path.split('?').next().unwrap_or_default();
    if path_part.contains('@') {
        return Err(refuse("contains `@`"));
    }
    let lower = path_part.to_ascii_lowercase();
    if ["%2f", "%5c", "%2e", "%25"]
        .iter()
        .any(|enc| lower.contains(enc))
    {
        return Err(refuse("percent-encodes `/`, `\\`, `.` or `%`"));
    }
    let decoded = percent_decode_str(path_part).decode_utf8_lossy();
    if decoded
        .chars()
        .any(|c| c.is_control() || c == '@' || c == '\\')
    {
        return Err(refuse(
            "percent-encodes a control character, `@` or a backslash",
        ));
    }
    if decoded
        .split('/')
        .skip(1)
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(refuse("has a `.` or `..` segment"));
    }
    if decoded.contains("//") {
        return Err(refuse("has an empty segment (`//`)"));
    }
    let full = format!("{}{path}", base.as_str().trim_end_matches('/'));
    let url = Url::parse(&full).map_err(|e| refuse(&format!("does not make a valid URL ({e})")))?;
    let base_path = base.path().trim_end_matches('/');
    let same_origin = url.scheme() == base.scheme()
        && url.host() == base.host()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none();
    let below = url
        .path()
        .strip_prefix(base_path)
        .is_some_and(|rest| rest.starts_with('/'));
    if !same_origin || !below {
        return Err(refuse("leaves the connection's base URL"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;
    use weft_engine::ErrorKind;

    use super::*;
    use crate::test_support::{Sim, TOKEN};

    fn base() -> Url {
        Url::parse("http://127.0.0.1:4010/api").unwrap()
    }

    #[test]
    fn legit_paths_stay_below_the_base() {
        for (path, want) in [
            ("/v1/webhooks", "http://127.0.0.1:4010/api/v1/webhooks"),
            ("/v1/webhooks/2", "http://127.0.0.1:4010/api/v1/webhooks/2"),
            (
                "/v1/customers?phone_number=%2B13105550147",
                "http://127.0.0.1:4010/api/v1/customers?phone_number=%2B13105550147",
            ),
            (
                "/v1/x?u=http://evil.com/@x",
                "http://127.0.0.1:4010/api/v1/x?u=http://evil.com/@x",
            ),
            ("/v1/a%20b", "http://127.0.0.1:4010/api/v1/a%20b"),
        ] {
            assert_eq!(check_path(&base(), path).unwrap().as_str(), want, "{path}");
        }
        let root = Url::parse("https://sonar.example.com").unwrap();
        assert_eq!(
            check_path(&root, "/v1/webhooks").unwrap().as_str(),
            "https://sonar.example.com/v1/webhooks"
        );
    }

    #[test]
    fn escapes_are_refused() {
        for (path, why) in [
            ("", "is empty"),
            ("https://evil.com/x", "absolute URL"),
            ("http:evil", "absolute URL"),
            ("http:/evil.com", "absolute URL"),
            ("javascript:alert(1)", "absolute URL"),
            ("//evil.com/x", "scheme-relative"),
            ("///evil.com", "scheme-relative"),
            ("/v1/../../x", "`..` segment"),
            ("/v1/./x", "`..` segment"),
            ("/..", "`..` segment"),
            ("%2e%2e/", "does not start with `/`"),
            ("/%2e%2e/%2e%2e/x", "percent-encodes"),
            ("/v1/%2E%2E/x", "percent-encodes"),
            ("/%2F%2Fevil.com", "percent-encodes"),
            ("/v1/%252e%252e/x", "percent-encodes"),
            ("/v1/%5cevil", "percent-encodes"),
            ("\\\\evil", "backslash"),
            ("/\\evil.com", "backslash"),
            ("@evil.com", "does not start with `/`"),
            ("/@evil.com", "contains `@`"),
            ("/v1%40evil.com", "`@`"),
            ("/v1/x\nHost: evil.com", "control characters"),
            ("/v1/x\r\n", "control characters"),
            ("/v1/%0d%0aHost:evil", "control character"),
            ("/v1//x", "empty segment"),
            ("/v1/x#frag", "fragment"),
            ("v1/webhooks", "does not start with `/`"),
        ] {
            let err = check_path(&base(), path).unwrap_err();
            assert!(err.contains(why), "{path:?}: {err}");
            assert!(err.starts_with("field `path`: `"), "{err}");
        }
    }

    #[tokio::test]
    async fn lists_and_creates_webhooks() {
        let sim = Sim::start().await;
        let out = sim
            .run(
                &MakeApiCall,
                json!({"path": "/v1/webhooks", "method": "post", "body": {"webhook": {"name": "crm", "active": "true", "url": "https://crm.example.com/sonar", "http_method": "POST", "settings": {"customer_created": "true"}}}}),
            )
            .await
            .unwrap();
        assert_eq!(out[0]["status"], 200);
        assert_eq!(out[0]["body"]["url"], "https://crm.example.com/sonar");
        assert_eq!(out[0]["headers"]["content-type"], "application/json");
        let out = sim
            .run(&MakeApiCall, json!({"path": "/v1/webhooks"}))
            .await
            .unwrap();
        assert_eq!(out[0]["status"], 200);
        assert_eq!(out[0]["body"], sim.state()["webhooks"]);
        assert_eq!(out[0]["body"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn query_and_text_bodies() {
        let sim = Sim::start().await;
        sim.api(
            "POST",
            "/v1/customers",
            json!({"phone_number": "+13105550147", "first_name": "Maya"}),
        )
        .await;
        let out = sim
            .run(
                &MakeApiCall,
                json!({"path": "/v1/customers", "query": {"phone_number": "+13105550147"}}),
            )
            .await
            .unwrap();
        assert_eq!(out[0]["body"]["first_name"], "Maya");
        let out = sim
            .run(
                &MakeApiCall,
                json!({"path": "/v1/customers", "method": "POST", "body": "{\"phone_number\": \"+13105550147\", \"last_name\": \"Okafor\"}"}),
            )
            .await
            .unwrap();
        assert_eq!(out[0]["body"]["last_name"], "Okafor");
        let out = sim
            .run(
                &MakeApiCall,
                json!({"path": "/v1/customers", "method": "POST", "headers": {"Content-Type": "application/x-www-form-urlencoded"}, "body": "phone_number=%2B13105550147&zip_code=90401"}),
            )
            .await
            .unwrap();
        assert_eq!(out[0]["body"]["zip_code"], "90401");
    }

    #[tokio::test]
    async fn errors_and_refusals() {
        let sim = Sim::start().await;
        let err = sim
            .run(
                &MakeApiCall,
                json!({"path": "/v1/webhooks/999", "method": "DELETE"}),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert!(
            err.message.contains("`Webhook not found`"),
            "{}",
            err.message
        );
        let err = sim
            .run(&MakeApiCall, json!({"path": "//evil.com/x"}))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        let err = sim
            .run(
                &MakeApiCall,
                json!({"path": "/v1/webhooks", "method": "TRACE"}),
            )
            .await
            .unwrap_err();
        assert!(
            err.message.contains("`TRACE` is not supported"),
            "{}",
            err.message
        );
        for header in ["X-Token", "token", "Host"] {
            let err = sim
                .run(
                    &MakeApiCall,
                    json!({"path": "/v1/webhooks", "headers": {header: "other-token"}}),
                )
                .await
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::DataError);
            assert!(err.message.contains("cannot be set"), "{}", err.message);
        }
        let err = sim
            .run(
                &MakeApiCall,
                json!({"path": "/v1/webhooks", "headers": {"X-Note": "a\r\nX-Token: x"}}),
            )
            .await
            .unwrap_err();
        assert!(
            err.message.contains("characters a header cannot carry"),
            "{}",
            err.message
        );
        assert!(!format!("{err:?}").contains(TOKEN));
    }
}
