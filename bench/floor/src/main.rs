//! The floor of the load benchmark (issue 6): the smallest axum + reqwest program doing the
//! work of `bench/scenarios/bench-sonar.yaml` with no engine and no persistence.
//!
//! `POST /hooks/{anything}` with a Sonar-style JSON webhook: parse it, apply the scenario's
//! filter (`customer.subscribed` is `true`), format the text from three fields
//! (`customer.first_name`, `message.text`, `id`), `POST {sonar}/v1/messages` with `X-Token`,
//! and answer 200 once Sonar accepted it (502 if it did not). Nothing is stored, so a crash
//! loses what is in flight: this is what the hardware allows, not a durable service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// Arguments.
#[derive(clap::Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// The Sonar API base URL (the simulator's `/api`).
    #[arg(
        long,
        env = "SONAR_BASE_URL",
        default_value = "http://127.0.0.1:4010/api"
    )]
    sonar_base_url: String,
    /// The Sonar API token.
    #[arg(long, env = "SONAR_TOKEN", default_value = "sim-token")]
    token: String,
}

struct Floor {
    client: reqwest::Client,
    messages_url: String,
    token: String,
}

fn text_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for key in path {
        match cur.get(key) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

async fn hook(State(floor): State<Arc<Floor>>, body: Bytes) -> Response {
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not valid JSON").into_response();
    };
    if !payload.is_object() {
        return (StatusCode::BAD_REQUEST, "the body is not a JSON object").into_response();
    }
    // The scenario's filter: only subscribed customers are texted.
    let subscribed = payload
        .get("customer")
        .and_then(|c| c.get("subscribed"))
        .and_then(Value::as_bool)
        == Some(true);
    if !subscribed {
        return Json(json!({ "status": "filtered" })).into_response();
    }
    // The scenario's mapping: three fields into the text, one into the recipient.
    let text = format!(
        "Hi {}, re: {} (ref {})",
        text_of(&payload, &["customer", "first_name"]),
        text_of(&payload, &["message", "text"]),
        text_of(&payload, &["id"]),
    );
    let to = text_of(&payload, &["customer", "phone_number"]);
    let sent = floor
        .client
        .post(&floor.messages_url)
        .header("X-Token", &floor.token)
        .json(&json!({ "to": to, "text": text }))
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {
            // Read the answer as the Sonar module does (it outputs the message).
            match r.json::<Value>().await {
                Ok(_) => Json(json!({ "status": "sent" })).into_response(),
                Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
            }
        }
        Ok(r) => (
            StatusCode::BAD_GATEWAY,
            format!("Sonar answered {}", r.status()),
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = <Args as clap::Parser>::parse();
    // The same client settings as a weft Sonar connection.
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let floor = Arc::new(Floor {
        client,
        messages_url: format!("{}/v1/messages", args.sonar_base_url.trim_end_matches('/')),
        token: args.token,
    });
    let app = Router::new()
        .route("/hooks/{token}", post(hook))
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .with_state(floor);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("bench-floor listening on http://{}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let shutdown = async {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = shutdown => {},
            () = term => {},
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
