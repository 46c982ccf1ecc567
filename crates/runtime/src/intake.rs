//! Webhook intake: `POST /hooks/{token}` is answered 200 only after the bundle is committed
//! to the queue. Refused requests queue nothing: unknown token 404, body too large 413,
//! unsupported content type 415, malformed or empty body 400, queue full or storage down
//! 503 with `Retry-After`. Also `GET /healthz` and `GET /metrics`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

use crate::server::{Shared, Waiter};
use crate::store::{Enqueued, Job, JobKind, NewJob, OnQueued};

/// How long a hook whose scenario has `webhook.respond` waits for the execution's response.
const RESPOND_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let limit = shared.config.body_limit;
    Router::new()
        .route("/hooks/{token}", post(hook))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

fn refuse(shared: &Shared, status: StatusCode, reason: &'static str, message: String) -> Response {
    shared.metrics.refused(reason);
    (status, Json(json!({ "error": message }))).into_response()
}

/// Deepest JSON body accepted. Execution records nest the body a few levels deeper, and
/// they must stay readable under serde_json's recursion limit of 128.
pub const MAX_DEPTH: usize = 64;

/// How deeply a value nests (a scalar is 0), without recursion.
pub fn depth(value: &Value) -> usize {
    let mut max = 0;
    // Room for a typical body's pending values: one allocation, no regrowth.
    let mut stack = Vec::with_capacity(64);
    stack.push((value, 0usize));
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    max
}

/// Parses a webhook body by content type; a JSON body comes back as text too (it is stored
/// as it came, not serialized again).
fn parse_body(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Value, Option<String>), (StatusCode, &'static str, String)> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err((
            StatusCode::BAD_REQUEST,
            "empty",
            "the request body is empty".into(),
        ));
    }
    if ctype == "application/json" || ctype.ends_with("+json") {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        if depth(&value) > MAX_DEPTH {
            return Err((
                StatusCode::BAD_REQUEST,
                "too_deep",
                format!("the body is nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        // JSON that parsed is UTF-8 (outside its strings it is ASCII).
        let text = std::str::from_utf8(body).ok().map(str::to_owned);
        Ok((value, text))
    } else if ctype == "application/x-www-form-urlencoded" {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("the body is not a valid form: {e}"),
            )
        })?;
        let mut map = Map::new();
        for (k, v) in pairs {
            map.insert(k, Value::String(v));
        }
        Ok((Value::Object(map), None))
    } else {
        Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type",
            format!("content type `{ctype}` is not supported; send application/json or application/x-www-form-urlencoded"),
        ))
    }
}

async fn hook(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            return if status == StatusCode::PAYLOAD_TOO_LARGE {
                let limit = shared.config.body_limit;
                refuse(
                    &shared,
                    status,
                    "too_large",
                    format!("the body is larger than the limit of {limit} bytes"),
                )
            } else {
                refuse(&shared, status, "unreadable", rejection.body_text())
            };
        }
    };
    if !shared.accepting.load(Ordering::SeqCst) {
        return refuse(
            &shared,
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the server is shutting down".into(),
        );
    }
    let Some(target) = shared.hook(&token) else {
        return refuse(
            &shared,
            StatusCode::NOT_FOUND,
            "unknown_hook",
            "no scenario listens on this hook".into(),
        );
    };
    let scenario = target.scenario.clone();
    let (payload, payload_json) = match parse_body(&headers, &body) {
        Ok(p) => p,
        Err((status, reason, message)) => return refuse(&shared, status, reason, message),
    };
    // Counted before the job is queued: before its caller is answered (the next webhook
    // sees it) and before a worker can count it out.
    if !shared.metrics.enqueuing(shared.config.max_queue) {
        let mut r = refuse(
            &shared,
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_full",
            "the queue is full; retry later".into(),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    }
    let trigger = scenario.trigger_module().as_trigger();
    // App deliveries carry an id that stays the same across redeliveries: run each once.
    let dedup_key = match (
        trigger.and_then(|t| t.event()),
        payload.get("uuid").and_then(Value::as_str),
    ) {
        (Some(_), Some(uuid)) => Some(format!("{}:{}", scenario.name, uuid)),
        _ => None,
    };
    let sequential = scenario.settings.sequential;
    // Hand the job straight to this node's workers when they have room (a sequential
    // scenario's jobs go through the queue's ordering instead).
    let place = if sequential {
        None
    } else {
        shared.handoff.reserve()
    };
    let job = NewJob {
        scenario: scenario.name.clone(),
        kind: JobKind::Trigger,
        payload,
        payload_json,
        dedup_key,
        sequential,
        lease: place.as_ref().map(|_| shared.config.lease),
    };
    let waits_for_response = scenario
        .graph
        .graph
        .node_weights()
        .any(|n| n.module.spec().id == "webhook.respond");
    // Runs right after the commit, even if the caller has hung up meanwhile; dropped unrun
    // (giving the counted place back) when nothing was queued.
    let then: OnQueued = {
        let counted = Counted {
            shared: shared.clone(),
            kept: false,
        };
        Box::new(move |job: Job| queued(counted, job, place))
    };
    match shared.store.enqueue(job, Some(then)).await {
        Ok(Enqueued::Queued(id)) => {
            let waiter = if waits_for_response {
                let (tx, rx) = oneshot::channel();
                let mut early = None;
                if let Ok(mut w) = shared.waiters.lock() {
                    // The execution may already have finished (the worker got there first).
                    match w.remove(&id) {
                        Some(Waiter::Done(response)) => early = Some(response),
                        _ => {
                            w.insert(id, Waiter::Waiting(tx));
                        }
                    }
                }
                if let Some(Some(response)) = early {
                    return custom_response(&response);
                }
                Some(rx)
            } else {
                None
            };
            if let Some(rx) = waiter {
                if let Ok(Ok(Some(response))) = tokio::time::timeout(RESPOND_TIMEOUT, rx).await {
                    return custom_response(&response);
                }
            }
            queued_response(id)
        }
        Ok(Enqueued::Duplicate) => {
            shared
                .metrics
                .webhooks_duplicate
                .fetch_add(1, Ordering::Relaxed);
            (StatusCode::OK, Json(json!({ "status": "duplicate" }))).into_response()
        }
        Err(e) => {
            tracing::error!(message = "Cannot queue a webhook.", scenario = %scenario.name, error = %e);
            let mut r = refuse(
                &shared,
                StatusCode::SERVICE_UNAVAILABLE,
                "storage",
                "the queue is unavailable; retry later".into(),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
    }
}

/// `200 {"status":"queued","id":ID}`, the answer to every queued webhook: written directly,
/// without building a JSON map for two fields.
fn queued_response(id: i64) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        format!(r#"{{"status":"queued","id":{id}}}"#),
    )
        .into_response()
}

/// A place counted in the queue depth ([`crate::metrics::Metrics::enqueuing`]) for a webhook
/// being queued: given back when dropped, unless its job was queued.
struct Counted {
    shared: Arc<Shared>,
    kept: bool,
}

impl Drop for Counted {
    fn drop(&mut self) {
        if !self.kept {
            self.shared.metrics.dequeued();
        }
    }
}

/// A webhook's job is committed: keep its counted place, count the webhook, and hand the job
/// to this node's workers when it was queued under this node's lease (`place`), or wake the
/// claimers.
fn queued(mut counted: Counted, job: Job, place: Option<tokio::sync::OwnedSemaphorePermit>) {
    counted.kept = true;
    let shared = &counted.shared;
    shared
        .metrics
        .webhooks_received
        .fetch_add(1, Ordering::Relaxed);
    match place {
        Some(place) => crate::worker::Handoff::take(shared, job, place),
        None => shared.work_queued(),
    }
}

/// The response set by `webhook.respond`.
fn custom_response(r: &Value) -> Response {
    let status = r
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let body = r.get("body").cloned().unwrap_or(Value::Null);
    let mut resp = match body {
        Value::String(s) => (status, s).into_response(),
        Value::Null => status.into_response(),
        other => (status, Json(other)).into_response(),
    };
    if let Some(Value::Object(h)) = r.get("headers") {
        for (k, v) in h {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let (Ok(name), Ok(value)) = (
                header::HeaderName::try_from(k.as_str()),
                HeaderValue::from_str(&text),
            ) {
                resp.headers_mut().insert(name, value);
            }
        }
    }
    resp
}

/// `{status, node, database, queue_depth, scenarios}`; 503 when the database cannot be
/// reached (a load balancer then sends webhooks to another node).
async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let depth = shared.store.queue_depth().await;
    match depth {
        Ok(d) => Json(json!({
            "status": "ok",
            "node": shared.node_id,
            "database": "reachable",
            "queue_depth": d,
            "scenarios": shared.scenarios.len(),
        }))
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "node": shared.node_id,
                "database": "unreachable",
                "error": e.to_string(),
            })),
        )
            .into_response(),
    }
}

/// Whether the caller may read `/metrics`: with an admin token, only with
/// `Authorization: Bearer TOKEN`; without one, only when the server listens on loopback.
fn admin_refusal(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    match &shared.config.admin_token {
        Some(token) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if crate::hooks::tokens_equal(given.trim(), token) {
                None
            } else {
                let mut r = (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({ "error": "send the admin token as `Authorization: Bearer TOKEN`" })),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                Some(r)
            }
        }
        None if shared.config.listen.ip().is_loopback() => None,
        None => Some((
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "the admin surface is served on a non-loopback address only with --admin-token" })),
        )
            .into_response()),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(refused) = admin_refusal(&shared, &headers) {
        return refused;
    }
    let node = shared.node_id.replace('\\', "\\\\").replace('"', "\\\"");
    let text = format!(
        "# HELP weft_node_info The node serving these metrics (label `node`, as in /healthz).\n# TYPE weft_node_info gauge\nweft_node_info{{node=\"{node}\"}} 1\n{}",
        shared.metrics.render()
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
