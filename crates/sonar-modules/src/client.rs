//! The one way every Sonar module talks to Sonar: [`SonarConnection::request`] (and
//! [`SonarConnection::call`] for `sonar.make_api_call`).
//!
//! - JSON bodies; the token goes only in the `X-Token` header (marked sensitive), never in a
//!   URL, a log line, an error message or an output.
//! - Statuses become typed errors (contract §3; classified by status, never by text):
//!   401/403 → InvalidAccessTokenError, 400/422 (and other 4xx) → DataError carrying Sonar's
//!   `error` message, 404 → DataError (not found), 429 → RateLimitError with the
//!   `Retry-After` delay, 5xx, timeouts and unreachable hosts → ConnectionError.
//! - Rate-limit and connection errors are retried here, at most `max_retries` times, with
//!   exponential backoff and jitter or the server's `Retry-After` (both capped by
//!   `retry_max_ms`); then the error is returned and the module's error directive applies.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Url};
use serde_json::{Map, Value};
use weft_engine::{ErrorKind, ModuleError};

use crate::connection::SonarConnection;

/// Largest response body read.
const MAX_BODY: usize = 10 * 1024 * 1024;
/// Longest part of an error body quoted in a message.
const MAX_QUOTE: usize = 300;

/// The body of a request.
#[derive(Clone, Debug)]
pub enum RequestBody {
    /// Sent as JSON (`Content-Type: application/json`).
    Json(Value),
    /// Sent as given (the caller sets `Content-Type` if it matters).
    Text(String),
}

/// A fully built request (the URL is already checked to be on the connection's host).
#[derive(Clone, Debug)]
pub struct Call {
    /// HTTP method.
    pub method: Method,
    /// The absolute URL.
    pub url: Url,
    /// Extra request headers (never `X-Token`: the connection sets it).
    pub headers: HeaderMap,
    /// The body, if any.
    pub body: Option<RequestBody>,
    /// Non-2xx statuses answered as a response instead of an error (e.g. `404` when
    /// deleting something that may already be gone).
    pub ok_statuses: &'static [u16],
}

/// A successful (2xx, or one of [`Call::ok_statuses`]) response.
#[derive(Clone, Debug)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// The headers as received (see [`SonarConnection::headers_json`] for their output form).
    pub headers: HeaderMap,
    /// The body: parsed JSON, else text (`""` when empty).
    pub body: Value,
}

impl SonarConnection {
    /// The absolute URL of `path` (e.g. `/v1/customers`) below the base URL, with `query`.
    pub fn endpoint(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path().trim_end_matches('/')));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends `method path` with an optional JSON body and returns the JSON body of the
    /// answer; errors are typed and transient ones retried (see the module docs).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, ModuleError> {
        let call = Call {
            method: method.clone(),
            url: self.endpoint(path, query),
            headers: HeaderMap::new(),
            body: body.map(RequestBody::Json),
            ok_statuses: &[],
        };
        let response = self.call(&call).await?;
        match response.body {
            Value::Object(_) | Value::Array(_) => Ok(response.body),
            _ => Err(ModuleError::runtime(format!(
                "the answer to `{method} {path}` (HTTP {}) is not a JSON object",
                response.status
            ))),
        }
    }

    /// `GET path?query`.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, ModuleError> {
        self.request(Method::GET, path, query, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Result<Value, ModuleError> {
        self.request(Method::POST, path, &[], Some(body)).await
    }

    /// Sends a built request with retries; the answer of the first success, or the last
    /// error.
    pub async fn call(&self, call: &Call) -> Result<ApiResponse, ModuleError> {
        let mut retries = 0;
        loop {
            match self.attempt(call).await {
                Ok(response) => return Ok(response),
                Err(error) if error.kind.is_transient() && retries < self.retry.max_retries => {
                    let delay = self.retry.delay(retries, error.retry_after);
                    retries += 1;
                    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                    let execution = weft_engine::exec::current_execution();
                    tracing::warn!(
                        message = "Retrying Sonar request.",
                        scenario = execution.as_ref().map_or("", |e| e.scenario.as_str()),
                        execution_id = execution.as_ref().map_or("", |e| e.execution_id.as_str()),
                        attempt = retries,
                        method = %call.method,
                        path = %self.relative_path(&call.url),
                        delay_ms,
                        %error
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(mut error) => {
                    if retries > 0 {
                        let noun = if retries == 1 { "retry" } else { "retries" };
                        error.message =
                            format!("{}; gave up after {retries} {noun}", error.message);
                    }
                    return Err(error);
                }
            }
        }
    }

    /// One attempt, no retry.
    async fn attempt(&self, call: &Call) -> Result<ApiResponse, ModuleError> {
        // `METHOD /path`, for error messages only: built when one is.
        let what = || format!("{} {}", call.method, self.relative_path(&call.url));
        let mut headers = call.headers.clone();
        if !headers.contains_key(ACCEPT) {
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        }
        // `insert`, not `append`: whatever the caller passed, only the connection's token goes.
        headers.insert(
            HeaderName::from_static("x-token"),
            self.token_header.clone(),
        );
        let mut req = self
            .client
            .request(call.method.clone(), call.url.clone())
            .headers(headers);
        match &call.body {
            Some(RequestBody::Json(v)) => req = req.json(v),
            Some(RequestBody::Text(t)) => req = req.body(t.clone()),
            None => {}
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| self.network_error(&what(), &e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let is_json = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.to_ascii_lowercase().contains("json"));
        let mut bytes = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_BODY {
                        return Err(ModuleError::runtime(format!(
                            "the answer to `{}` is larger than {MAX_BODY} bytes",
                            what()
                        )));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(self.network_error(&what(), &e)),
            }
        }
        if !(200..300).contains(&status) && !call.ok_statuses.contains(&status) {
            return Err(self.status_error(status, &what(), &bytes, retry_after));
        }
        let body = if bytes.is_empty() {
            Value::String(String::new())
        } else {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(mut v) if is_json || v.is_object() || v.is_array() => {
                    self.scrub_value(&mut v);
                    v
                }
                _ => Value::String(self.scrub(&String::from_utf8_lossy(&bytes))),
            }
        };
        Ok(ApiResponse {
            status,
            headers: std::mem::take(resp.headers_mut()),
            body,
        })
    }

    /// The URL's path below the base URL (no query: it may hold personal data).
    fn relative_path(&self, url: &Url) -> String {
        let base = self.base.path().trim_end_matches('/');
        let path = url.path();
        path.strip_prefix(base)
            .filter(|p| p.starts_with('/'))
            .unwrap_or(path)
            .to_owned()
    }

    /// A response's headers as a module outputs them: lowercase names, repeated headers
    /// joined with `, `, the token replaced. Built only by the modules that output headers
    /// (`sonar.make_api_call`): the others would throw the map away.
    pub fn headers_json(&self, headers: &HeaderMap) -> Map<String, Value> {
        let mut out = Map::new();
        for (name, value) in headers {
            let text = self.scrub(&String::from_utf8_lossy(value.as_bytes()));
            match out.get_mut(name.as_str()) {
                Some(Value::String(prev)) => {
                    prev.push_str(", ");
                    prev.push_str(&text);
                }
                _ => {
                    out.insert(name.as_str().to_owned(), Value::String(text));
                }
            }
        }
        out
    }

    /// A network failure (refused, reset, DNS, TLS, timeout) as a ConnectionError.
    fn network_error(&self, what: &str, e: &reqwest::Error) -> ModuleError {
        let host = match (self.base.host_str(), self.base.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => String::new(),
        };
        let message = if e.is_timeout() {
            format!("request `{what}` to Sonar at `{host}` timed out")
        } else {
            format!(
                "cannot reach Sonar at `{host}` for `{what}`: {}",
                root_cause(e)
            )
        };
        ModuleError::connection(self.scrub(&message))
    }

    /// A non-2xx status as a typed error carrying Sonar's message.
    fn status_error(
        &self,
        status: u16,
        what: &str,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> ModuleError {
        let said = self.scrub(&sonar_message(body));
        let quoted = if said.is_empty() {
            String::new()
        } else {
            format!(": `{said}`")
        };
        let kind = ErrorKind::from_http_status(status).unwrap_or(ErrorKind::DataError);
        let message = match status {
            401 => format!("the token was refused by Sonar (HTTP 401 on `{what}`){quoted}; check the connection's `token` and `sandbox`"),
            403 => format!("access was refused by Sonar (HTTP 403 on `{what}`){quoted}"),
            404 => format!("not found (HTTP 404 on `{what}`){quoted}"),
            429 => {
                let wait = retry_after.map(|d| format!("; Sonar asked to retry after {} s", d.as_secs())).unwrap_or_default();
                format!("rate limited by Sonar (HTTP 429 on `{what}`){quoted}{wait}")
            }
            500..=599 => format!("server error from Sonar (HTTP {status} on `{what}`){quoted}"),
            400..=499 => format!("request rejected by Sonar (HTTP {status} on `{what}`){quoted}"),
            _ => format!("unexpected answer from Sonar (HTTP {status} on `{what}`){quoted}"),
        };
        ModuleError::new(kind, message).with_retry_after(if status == 429 {
            retry_after
        } else {
            None
        })
    }

    /// Replaces the token in every string of a JSON value.
    fn scrub_value(&self, value: &mut Value) {
        self.scrubber.value(value);
    }
}

/// Sonar's `error` message from an error body, else the start of the body as text.
fn sonar_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => match map.get("error") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::from_utf8_lossy(body).into_owned(),
        },
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    let clean: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_QUOTE)
        .collect();
    clean.replace('`', "'")
}

/// `Retry-After`: delay-seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The innermost error message of an error chain (the part that says what happened).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use serde_json::json;

    use crate::actions::{GetCustomer, MakeApiCall, SendMessage};
    use crate::test_support::{run_with, Sim, TOKEN};

    /// The connection as its concrete type.
    fn sonar(conn: &Arc<dyn std::any::Any + Send + Sync>) -> &SonarConnection {
        conn.downcast_ref::<SonarConnection>().unwrap()
    }

    #[tokio::test]
    async fn bad_token_is_invalid_access_token_and_not_retried() {
        let sim = Sim::start().await;
        let conn = sim.connection(json!({"token": "not-the-token", "retry_base_ms": 2000}));
        let started = Instant::now();
        let err = run_with(&GetCustomer, &conn, json!({"phone_number": "+13105550147"}))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidAccessTokenError);
        assert!(
            err.message.contains("HTTP 401")
                && err.message.contains("`Token or publishable_key not found`"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("not-the-token"));
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "a 401 is not retried"
        );
    }

    /// Connections with the same timeout share one HTTP client and its pooled connections:
    /// each request still carries its own connection's token, whichever goes first.
    #[tokio::test]
    async fn connections_sharing_a_client_each_send_their_own_token() {
        let sim = Sim::start().await;
        let good = sim.connection(json!({}));
        let bad = sim.connection(json!({"token": "not-the-token"}));
        for _ in 0..2 {
            sonar(&good).get("/v1/webhooks", &[]).await.unwrap();
            let err = sonar(&bad).get("/v1/webhooks", &[]).await.unwrap_err();
            assert_eq!(
                err.kind,
                ErrorKind::InvalidAccessTokenError,
                "{}",
                err.message
            );
        }
        let err = sonar(&bad).get("/v1/webhooks", &[]).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidAccessTokenError);
        sonar(&good).get("/v1/webhooks", &[]).await.unwrap();
    }

    #[tokio::test]
    async fn sonar_400_messages_are_carried() {
        let sim = Sim::start().await;
        let conn = sim.connection(json!({}));
        let err = sonar(&conn)
            .post("/v1/customers", json!({"phone_number": "111"}))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert_eq!(
            err.message,
            "request rejected by Sonar (HTTP 400 on `POST /v1/customers`): `Invalid Phone Number`"
        );
        let err = sonar(&conn)
            .post("/v1/messages", json!({}))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert!(
            err.message.contains("text is missing") && err.message.contains("to is missing"),
            "{}",
            err.message
        );
        let err = sonar(&conn)
            .get("/v1/customers", &[("phone_number", "+13105550199")])
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert_eq!(
            err.message,
            "not found (HTTP 404 on `GET /v1/customers`): `Customer not found`"
        );
        let err = sonar(&conn).get("/v1/nothing-here", &[]).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
    }

    #[tokio::test]
    async fn injected_statuses_map_to_their_types() {
        let sim = Sim::start().await;
        let conn = sim.connection(json!({}));
        for (status, kind, retried) in [
            (403, ErrorKind::InvalidAccessTokenError, false),
            (422, ErrorKind::DataError, false),
            (409, ErrorKind::DataError, false),
            (500, ErrorKind::ConnectionError, true),
            (502, ErrorKind::ConnectionError, true),
            (503, ErrorKind::ConnectionError, true),
        ] {
            sim.faults(json!({"error_rate": 1.0, "error_status": status}))
                .await;
            let err = sonar(&conn).get("/v1/webhooks", &[]).await.unwrap_err();
            assert_eq!(err.kind, kind, "HTTP {status}");
            assert!(
                err.message
                    .contains(&format!("HTTP {status} on `GET /v1/webhooks`")),
                "{}",
                err.message
            );
            assert!(
                err.message.contains("`Request Timed Out`"),
                "{}",
                err.message
            );
            assert_eq!(
                err.message.ends_with("gave up after 2 retries"),
                retried,
                "{}",
                err.message
            );
        }
    }

    #[tokio::test]
    async fn rate_limits_are_retried_then_fail_with_retry_after() {
        let sim = Sim::start().await;
        sim.faults(json!({"rate_limit_per_s": 1})).await;
        let conn = sim.connection(json!({}));
        sonar(&conn).get("/v1/webhooks", &[]).await.unwrap();
        let err = sonar(&conn).get("/v1/webhooks", &[]).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::RateLimitError);
        assert_eq!(err.retry_after, Some(Duration::from_secs(1)));
        assert!(
            err.message.contains("HTTP 429") && err.message.contains("`Rate Limit Exceeded`"),
            "{}",
            err.message
        );
        assert!(
            err.message.ends_with("gave up after 2 retries"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn retry_after_is_honoured() {
        let sim = Sim::start().await;
        sim.faults(json!({"rate_limit_per_s": 1})).await;
        // Backoff alone (5 ms, 10 ms) would give up long before the window reopens; only
        // waiting for `Retry-After` (1 s, under the 3 s cap) succeeds.
        let conn = sim.connection(json!({"retry_max_ms": 3000}));
        sonar(&conn).get("/v1/webhooks", &[]).await.unwrap();
        let started = Instant::now();
        sonar(&conn).get("/v1/webhooks", &[]).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_recovering_server_succeeds_through_retries() {
        let sim = Sim::start().await;
        sim.faults(json!({"error_rate": 1.0, "error_status": 503}))
            .await;
        let conn =
            sim.connection(json!({"max_retries": 10, "retry_base_ms": 20, "retry_max_ms": 100}));
        let root = sim.running.root_url();
        let clear = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            reqwest::Client::new()
                .post(format!("{root}/_sim/faults"))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
        });
        let out = run_with(
            &SendMessage,
            &conn,
            json!({"phone_number": "+13105550147", "text": "hello"}),
        )
        .await
        .unwrap();
        clear.await.unwrap();
        assert_eq!(out[0]["status"], "queued");
        assert_eq!(
            sim.state()["messages"].as_array().unwrap().len(),
            1,
            "failed attempts sent nothing"
        );
    }

    #[tokio::test]
    async fn half_failing_server_succeeds_with_enough_retries() {
        let sim = Sim::start().await;
        sim.faults(json!({"error_rate": 0.5})).await;
        let conn =
            sim.connection(json!({"max_retries": 10, "retry_base_ms": 1, "retry_max_ms": 5}));
        for _ in 0..5 {
            sonar(&conn).get("/v1/webhooks", &[]).await.unwrap();
        }
    }

    #[tokio::test]
    async fn refused_connections_are_connection_errors() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let fields = json!({"token": TOKEN, "base_url": format!("http://127.0.0.1:{port}/api"), "max_retries": 1, "retry_base_ms": 1});
        let conn = SonarConnection::from_fields(fields.as_object().unwrap()).unwrap();
        let err = conn.get("/v1/webhooks", &[]).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::ConnectionError);
        assert!(
            err.message.starts_with(&format!(
                "cannot reach Sonar at `127.0.0.1:{port}` for `GET /v1/webhooks`"
            )),
            "{}",
            err.message
        );
        assert!(
            err.message.ends_with("gave up after 1 retry"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn slow_answers_time_out_as_connection_errors() {
        let sim = Sim::start().await;
        sim.faults(json!({"latency_ms": 2000})).await;
        let conn = sim.connection(json!({"timeout_secs": 0.1, "max_retries": 0}));
        let err = sonar(&conn).get("/v1/webhooks", &[]).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::ConnectionError);
        assert!(err.message.contains("timed out"), "{}", err.message);
    }

    /// A `tracing` writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_token_never_shows() {
        const CANARY: &str = "canary-5b7e-0d1f-secret";
        let sim = Sim::start_with_tokens(&[CANARY]).await;
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let conn = sim.connection(json!({"token": CANARY}));
        let mut shown = format!("{:?}", sonar(&conn));
        sim.api_with_token(CANARY, "/v1/webhooks", json!({"webhook": {"name": "x", "url": "https://x.example/h", "settings": {"customer_created": "true"}}})).await;
        let out = run_with(
            &MakeApiCall,
            &conn,
            json!({"path": "/v1/webhooks", "query": {"note": CANARY}}),
        )
        .await
        .unwrap();
        shown.push_str(&serde_json::to_string(&out).unwrap());
        let out = run_with(
            &SendMessage,
            &conn,
            json!({"phone_number": "+13105550147", "text": "hi"}),
        )
        .await
        .unwrap();
        shown.push_str(&serde_json::to_string(&out).unwrap());
        sim.faults(json!({"error_rate": 1.0, "error_status": 500}))
            .await;
        let err = run_with(&GetCustomer, &conn, json!({"phone_number": "+13105550147"}))
            .await
            .unwrap_err();
        shown.push_str(&format!("{err:?} {err}"));
        sim.faults(json!({})).await;
        let wrong = sim.connection(json!({"token": format!("{CANARY}-x")}));
        let err = run_with(
            &GetCustomer,
            &wrong,
            json!({"phone_number": "+13105550147"}),
        )
        .await
        .unwrap_err();
        shown.push_str(&format!("{err:?} {err}"));

        let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(logged.contains("Retrying Sonar request."), "{logged}");
        assert!(!logged.contains(CANARY), "{logged}");
        assert!(!shown.contains(CANARY), "{shown}");
    }

    #[test]
    fn sonar_messages_are_quoted_safely() {
        assert_eq!(
            sonar_message(br#"{"error":"Tag not found: vip"}"#),
            "Tag not found: vip"
        );
        assert_eq!(
            sonar_message(b"<html>\nBad `gateway`</html>"),
            "<html> Bad 'gateway'</html>"
        );
        assert_eq!(sonar_message(b""), "");
    }
}
