//! Test helpers: calling the router without a socket, loading the shared fixtures, comparing
//! JSON shapes, and a webhook receiver on `127.0.0.1:0` that records what it gets.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::post;
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::{SimConfig, Simulator};

/// The default token header.
pub(crate) const TOKEN: (&str, &str) = ("X-Token", "sim-token");

/// A config with fast retries (50 ms) and a short delivery timeout, for tests.
pub(crate) fn test_config() -> SimConfig {
    SimConfig {
        retry_delays: vec![Duration::from_millis(50); 4],
        delivery_timeout: Duration::from_secs(2),
        company_name: "Harbor Bikes".to_owned(),
        ..SimConfig::default()
    }
}

pub(crate) fn sim() -> Simulator {
    Simulator::new(test_config())
}

/// A simulator with the fixtures' agent (Dana Reyes) and tags `service`, `follow-up`.
pub(crate) fn sim_with_agent() -> Simulator {
    let sim = sim();
    {
        let mut state = sim.shared.lock();
        state.users.push(crate::state::User {
            first_name: "Dana".to_owned(),
            last_name: "Reyes".to_owned(),
            email: "dana@harborbikes.example".to_owned(),
        });
        state
            .tags
            .extend(["service".to_owned(), "follow-up".to_owned()]);
    }
    sim
}

/// A fixture body from `shared/fixtures/sonar/`.
pub(crate) fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/{name}",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/sonar"
        )
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_json::from_str(&text).unwrap()
}

/// Objects under these keys are free-form maps: their keys may differ, their value types not.
const MAP_KEYS: [&str; 2] = ["properties", "settings"];

/// Asserts that `actual` has the same keys and JSON types as `expected`, recursively. A `null`
/// on either side matches any type (the field is nullable); arrays are checked against the
/// fixture's first element.
pub(crate) fn assert_same_shape(actual: &Value, expected: &Value) {
    let mut errors = Vec::new();
    shape_diff(actual, expected, "$", false, &mut errors);
    assert!(
        errors.is_empty(),
        "shape differs from the fixture:\n{}\nactual: {actual:#}",
        errors.join("\n")
    );
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn shape_diff(actual: &Value, expected: &Value, path: &str, map: bool, errors: &mut Vec<String>) {
    match (actual, expected) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(actual), Value::Object(expected)) if map => {
            if let Some(sample) = expected.values().next() {
                for (key, value) in actual {
                    shape_diff(value, sample, &format!("{path}.{key}"), false, errors);
                }
            }
        }
        (Value::Object(actual), Value::Object(expected)) => {
            for key in expected.keys().filter(|key| !actual.contains_key(*key)) {
                errors.push(format!("{path}.{key}: missing"));
            }
            for key in actual.keys().filter(|key| !expected.contains_key(*key)) {
                errors.push(format!("{path}.{key}: not in the fixture"));
            }
            for (key, value) in actual {
                if let Some(sample) = expected.get(key) {
                    let is_map = MAP_KEYS.contains(&key.as_str());
                    shape_diff(value, sample, &format!("{path}.{key}"), is_map, errors);
                }
            }
        }
        (Value::Array(actual), Value::Array(expected)) => {
            if let Some(sample) = expected.first() {
                for (index, value) in actual.iter().enumerate() {
                    shape_diff(value, sample, &format!("{path}[{index}]"), false, errors);
                }
            }
        }
        _ if type_name(actual) == type_name(expected) => {}
        _ => errors.push(format!(
            "{path}: {} where the fixture has {}",
            type_name(actual),
            type_name(expected)
        )),
    }
}

/// One request through the router (no socket); the body parsed as JSON (`null` when empty).
pub(crate) async fn request_full(
    router: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> (StatusCode, HeaderMap, Value) {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = match body {
        Some((content_type, bytes)) => builder
            .header("content-type", content_type)
            .body(Body::from(bytes)),
        None => builder.body(Body::empty()),
    }
    .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, headers, value)
}

pub(crate) async fn request(
    router: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> (StatusCode, Value) {
    let (status, _, value) = request_full(router, method, path, headers, body).await;
    (status, value)
}

/// `GET` with the default token.
pub(crate) async fn get(router: &Router, path: &str) -> (StatusCode, Value) {
    request(router, "GET", path, &[TOKEN], None).await
}

/// A JSON body with the default token.
pub(crate) async fn send_json(
    router: &Router,
    method: &str,
    path: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    request(
        router,
        method,
        path,
        &[TOKEN],
        Some(("application/json", bytes)),
    )
    .await
}

pub(crate) async fn post_json(router: &Router, path: &str, body: &Value) -> (StatusCode, Value) {
    send_json(router, "POST", path, body).await
}

/// A form-encoded body with the default token.
pub(crate) async fn send_form(
    router: &Router,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, Value) {
    let content_type = "application/x-www-form-urlencoded";
    let bytes = body.as_bytes().to_vec();
    request(router, method, path, &[TOKEN], Some((content_type, bytes))).await
}

pub(crate) async fn post_form(router: &Router, path: &str, body: &str) -> (StatusCode, Value) {
    send_form(router, "POST", path, body).await
}

/// Polls `condition` every 5 ms until it holds; panics after `timeout`.
pub(crate) async fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(Default)]
struct ReceiverState {
    bodies: Mutex<Vec<Value>>,
    /// Statuses to answer with, in order; 200 once they run out.
    script: Mutex<VecDeque<u16>>,
    /// How long to wait before answering the first request.
    first_delay: Mutex<Option<Duration>>,
}

/// A webhook receiver on `127.0.0.1:0` that records every JSON body it gets.
pub(crate) struct Receiver {
    pub(crate) url: String,
    state: Arc<ReceiverState>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Answers 200 to everything.
    pub(crate) async fn start() -> Self {
        Self::scripted(&[], None).await
    }

    /// Answers `statuses` in order (then 200), the first after `first_delay`.
    pub(crate) async fn scripted(statuses: &[u16], first_delay: Option<Duration>) -> Self {
        let state = Arc::new(ReceiverState {
            script: Mutex::new(statuses.iter().copied().collect()),
            first_delay: Mutex::new(first_delay),
            ..ReceiverState::default()
        });
        async fn record(State(state): State<Arc<ReceiverState>>, body: String) -> StatusCode {
            let delay = state.first_delay.lock().unwrap().take();
            state
                .bodies
                .lock()
                .unwrap()
                .push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            let status = state.script.lock().unwrap().pop_front().unwrap_or(200);
            StatusCode::from_u16(status).unwrap()
        }
        let router = Router::new()
            .route("/hook", post(record))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { url, state, server }
    }

    pub(crate) fn bodies(&self) -> Vec<Value> {
        self.state.bodies.lock().unwrap().clone()
    }

    /// Waits (at most 5 s) until `count` bodies arrived and returns them all.
    pub(crate) async fn wait_for(&self, count: usize) -> Vec<Value> {
        wait_for(Duration::from_secs(5), || self.bodies().len() >= count).await;
        self.bodies()
    }

    /// Registers a webhook for `events` pointing at this receiver; returns its id.
    pub(crate) async fn register(&self, router: &Router, events: &[&str]) -> u64 {
        let settings: serde_json::Map<String, Value> = events
            .iter()
            .map(|event| ((*event).to_owned(), json!("true")))
            .collect();
        let (status, body) = post_json(
            router,
            "/api/v1/webhooks",
            &json!({"webhook": {"name": "test", "active": "true", "url": self.url,
                                "http_method": "POST", "settings": settings}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        body["id"].as_u64().unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Every event the simulator can fire.
pub(crate) const ALL_EVENTS: [&str; 10] = [
    "customer_created",
    "customer_state_changed",
    "customer_subscribed",
    "customer_unsubscribed",
    "user_assignment",
    "new_assigned_message",
    "new_unassigned_message",
    "outbound_message",
    "tag_added_to_message",
    "tag_removed_from_message",
];

#[test]
fn shape_check_catches_differences() {
    let expected = json!({"a": "x", "b": null, "c": [{"d": 1}], "properties": {"p": "v"}});
    assert_same_shape(
        &json!({"a": "y", "b": {"z": 1}, "c": [], "properties": {"q": "w"}}),
        &expected,
    );
    let mut errors = Vec::new();
    shape_diff(
        &json!({"a": 1, "c": [{"d": "1"}], "e": true, "properties": {"q": 2}}),
        &expected,
        "$",
        false,
        &mut errors,
    );
    assert_eq!(
        errors,
        [
            "$.b: missing",
            "$.e: not in the fixture",
            "$.a: number where the fixture has string",
            "$.c[0].d: string where the fixture has number",
            "$.properties.q: number where the fixture has string",
        ]
    );
}
