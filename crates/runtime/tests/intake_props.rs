//! Property test of the webhook intake over real HTTP: whatever body and content type arrive
//! at `POST /hooks/{token}`, the answer is 200 (and the bundle then runs exactly once, as
//! parsed) or a 4xx that queues nothing; never a 5xx, a panic or a hang, and the server keeps
//! serving. Bounded case counts keep it fast; `docs/reliability.md` says how to run more.
//!
//! `PROPTEST_CASES` raises the number of cases (default 256).

#![allow(clippy::unwrap_used)]

mod values;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};
use values::json_value;
use weft_runtime::store::{Backend, ExecutionFilter};
use weft_runtime::{RunningServer, ServeConfig, Server};

/// The largest body the test server takes.
const LIMIT: usize = 4096;

const ECHO: &str = r#"name: echo
flow:
  - { id: 1, module: webhook.custom, params: { name: echo } }
  - { id: 2, module: flow.set_variables, map: { n: "{{1.n}}" } }
"#;

async fn start(root: &std::path::Path) -> RunningServer {
    let dir = root.join("scenarios");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("echo.yaml"), ECHO).unwrap();
    let registry = weft_engine::Registry::new([weft_engine::builtin::modules()], []).unwrap();
    let mut config = ServeConfig::new(&dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.db = Backend::Sqlite(root.join("weft.db"));
    config.body_limit = LIMIT;
    config.workers = 2;
    Server::start(config, &registry).await.unwrap()
}

/// Bodies: random bytes (some over the limit), JSON, JSON with one byte changed, form-like
/// text, deep nesting.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..LIMIT + 600),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        (json_value(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, at, byte)| {
            let mut bytes = serde_json::to_vec(&v).unwrap();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            bytes
        }),
        "([a-z0-9%+&=]|%[0-9a-fA-F]{2}|%[g-z]){0,40}".prop_map(String::into_bytes),
        // Decimals with more digits than an f64 holds: recorded as the nearest f64.
        "\\[-?[0-9]{1,20}\\.[0-9]{1,30}([eE]-?[0-9]{1,3})?\\]".prop_map(String::into_bytes),
        // Up to 100 levels (recorded and read back), or far beyond the parser's limit.
        (prop_oneof![1usize..=100, 129usize..2_000], any::<bool>()).prop_map(|(depth, objects)| {
            if objects {
                format!("{}1{}", r#"{"n":"#.repeat(depth), "}".repeat(depth)).into_bytes()
            } else {
                format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
            }
        }),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(vec![
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("APPLICATION/JSON"),
        Some("application/vnd.api+json"),
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        Some(""),
        None,
    ])
}

/// What the intake must make of a body: `Some(bundle)` when it has to be accepted.
fn oracle(ctype: Option<&str>, body: &[u8]) -> Option<Value> {
    let ctype = ctype
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if body.len() > LIMIT || body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    if ctype == "application/json" || ctype.ends_with("+json") {
        serde_json::from_slice(body)
            .ok()
            .filter(|v| weft_runtime::intake::depth(v) <= weft_runtime::intake::MAX_DEPTH)
    } else if ctype == "application/x-www-form-urlencoded" {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
        let mut map = Map::new();
        for (k, v) in pairs {
            map.insert(k, Value::String(v));
        }
        Some(Value::Object(map))
    } else {
        None
    }
}

#[test]
fn any_webhook_body_is_queued_as_parsed_or_refused_with_a_4xx() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let server = rt.block_on(start(tmp.path()));
    let (_, token) = server.hook_tokens().into_iter().next().unwrap();
    let hook = format!("{}/hooks/{token}", server.url());
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let accepted: Arc<Mutex<Vec<Value>>> = Arc::default();

    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&(content_type(), body()), |(ctype, body)| {
        let expected = oracle(ctype, &body);
        let (status, text) = rt.block_on(async {
            let mut req = client.post(&hook).body(body.clone());
            if let Some(c) = ctype {
                req = req.header("content-type", c);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        });
        match (status, expected) {
            (200, Some(bundle)) => accepted.lock().unwrap().push(bundle),
            (400 | 415, None) => {
                let error: Value = serde_json::from_str(&text)
                    .map_err(|e| TestCaseError::fail(format!("{status} not JSON ({e}): {text}")))?;
                prop_assert!(
                    error["error"].as_str().is_some_and(|e| !e.is_empty()),
                    "{}",
                    text
                );
            }
            (413, None) => prop_assert!(body.len() > LIMIT),
            (status, expected) => {
                return Err(TestCaseError::fail(format!(
                    "{ctype:?} {:?}: answered {status} {text}, expected {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)]),
                    if expected.is_some() { "200" } else { "a 4xx" }
                )))
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }

    // Every accepted body ran exactly once, as parsed; nothing else ran.
    rt.block_on(async {
        assert!(server.wait_idle(Duration::from_secs(60)).await);
        let store = server.store();
        let list = store
            .list_executions(ExecutionFilter {
                limit: 1_000_000,
                ..ExecutionFilter::default()
            })
            .await
            .unwrap();
        let mut ran = Vec::new();
        for e in &list {
            let record = store.execution(&e.id).await.unwrap().unwrap();
            assert_eq!(record.status.name(), "success", "{record:?}");
            ran.push(record.trigger().to_string());
        }
        let mut want: Vec<String> = accepted
            .lock()
            .unwrap()
            .iter()
            .map(Value::to_string)
            .collect();
        ran.sort();
        want.sort();
        assert_eq!(ran.len(), want.len(), "executions vs accepted webhooks");
        assert_eq!(ran, want);
        assert!(!want.is_empty(), "no case was accepted");
        // Still serving.
        let resp = client
            .post(&hook)
            .json(&serde_json::json!({"n": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        server.shutdown().await;
    });
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_queues_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let dir = tmp.path().join("scenarios");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("slow.yaml"),
            "name: slow\nflow:\n  - { id: 1, module: webhook.custom, params: { name: slow } }\n  - { id: 2, module: flow.sleep, params: { seconds: 30 } }\n",
        )
        .unwrap();
        let registry = weft_engine::Registry::new([weft_engine::builtin::modules()], []).unwrap();
        let mut config = ServeConfig::new(&dir);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.db = Backend::Sqlite(tmp.path().join("weft.db"));
        config.workers = 1;
        config.max_queue = 2;
        config.shutdown_grace = Duration::from_millis(100);
        let server = Server::start(config, &registry).await.unwrap();
        let (_, token) = server.hook_tokens().into_iter().next().unwrap();
        let hook = format!("{}/hooks/{token}", server.url());
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut answers = Vec::new();
        for n in 0..4 {
            let resp = client
                .post(&hook)
                .json(&serde_json::json!({ "n": n }))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = resp.json().await.unwrap();
            answers.push((status, retry_after, body));
        }
        assert_eq!(answers[0].0, 200, "{answers:?}");
        assert_eq!(answers[1].0, 200, "{answers:?}");
        for (status, retry_after, body) in &answers[2..] {
            assert_eq!(*status, 503, "{answers:?}");
            assert_eq!(retry_after.as_deref(), Some("5"));
            assert!(body["error"].as_str().unwrap().contains("queue is full"), "{body}");
        }
        assert_eq!(server.store().queue_depth().await.unwrap(), 2);
        server.shutdown().await;
    });
}
