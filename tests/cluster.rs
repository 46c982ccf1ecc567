//! Several `weft serve` nodes on one PostgreSQL database (issue 9), end to end: three
//! `weft` processes share a fresh database and one public URL, a round-robin HTTP proxy
//! written here (the load balancer), and one Sonar simulator in this process.
//!
//! While the simulator delivers webhooks through the proxy, one node is SIGKILLed and
//! restarted, then every node's database connections are terminated (`pg_terminate_backend`).
//! Afterwards: every delivery the simulator saw acknowledged led to exactly one Sonar call
//! (redelivered `uuid`s included), the Sonar webhook was registered once, and a `every: 1s`
//! schedule fired once per second for the whole cluster, not once per node.
//!
//! Needs `WEFT_TEST_DATABASE_URL` (it creates and drops its own database); without it the
//! test says it was skipped and passes. Loopback only, bounded (about 25 s).

#![allow(clippy::unwrap_used)]

#[path = "../crates/runtime/tests/pg/mod.rs"]
mod pg;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use weft_sonar_sim::{RunningSim, SimConfig, Simulator};

const BIN: &str = env!("CARGO_BIN_EXE_weft");
const SIM_TOKEN: &str = "sim-token";
/// Short leases, so that the jobs of the killed node are taken over within the test.
const LEASE: &str = "3s";

const ACK_SCENARIO: &str = r#"name: cluster-ack
connections:
  sonar:
    app: sonar
    token: ${SONAR_TOKEN}
    base_url: ${SONAR_BASE_URL}
flow:
  - id: 1
    module: sonar.watch_new_unassigned_message
    connection: sonar
    params: { webhook_name: cluster }
  - id: 2
    module: sonar.send_message
    connection: sonar
    map:
      phone_number: "{{1.customer.phone_number}}"
      text: "ack {{1.uuid}}"
"#;

const TICK_SCENARIO: &str = r#"name: cluster-tick
flow:
  - id: 1
    module: schedule
    params: { every: 1s }
  - id: 2
    module: flow.set_variables
    map: { fired: "{{1.fired_at}}" }
"#;

/// A free loopback port (the nodes must come back on the same one after a restart).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One `weft serve` process, killed on drop.
struct Node {
    addr: SocketAddr,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Node {
    fn new(addr: SocketAddr, args: Vec<String>, env: Vec<(String, String)>, dir: &Path) -> Self {
        Node {
            addr,
            args,
            env,
            dir: dir.to_owned(),
            child: None,
            starts: 0,
        }
    }

    fn log(&self) -> PathBuf {
        self.dir
            .join(format!("node-{}-{}.log", self.addr.port(), self.starts))
    }

    fn start(&mut self) {
        self.starts += 1;
        let log = File::create(self.log()).unwrap();
        let mut cmd = Command::new(BIN);
        for var in [
            "WEFT_LISTEN",
            "WEFT_DB",
            "WEFT_PUBLIC_URL",
            "WEFT_LEASE",
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "ALL_PROXY",
            "no_proxy",
        ] {
            cmd.env_remove(var);
        }
        // Anything not on loopback would go to a dead proxy.
        cmd.env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("NO_COLOR", "1")
            .env("WEFT_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().unwrap());
    }

    /// SIGKILL: no graceful shutdown, leases left behind.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                let path = self.dir.join(format!("node-{}-{n}.log", self.addr.port()));
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!(
                    "--- node {} (start {n}) ---\n{}",
                    self.addr,
                    tail.join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The load balancer: each request goes to the next node; a node that refuses the
/// connection (dead) is skipped, as nginx's `proxy_next_upstream error` does. One webhook in
/// [`LOST_ANSWER_EVERY`] reaches its node but its answer is lost on the way back (502): the
/// simulator redelivers it, with the same `uuid`.
struct Proxy {
    nodes: Vec<SocketAddr>,
    next: AtomicUsize,
    hooks: AtomicUsize,
    client: reqwest::Client,
}

const LOST_ANSWER_EVERY: usize = 9;
/// Requests with this header always get their answer (the test's own redeliveries).
const KEEP_ANSWER: &str = "x-keep-answer";

async fn forward(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let lose_answer = path.starts_with("/hooks/")
        && !parts.headers.contains_key(KEEP_ANSWER)
        && proxy.hooks.fetch_add(1, Ordering::Relaxed) % LOST_ANSWER_EVERY == LOST_ANSWER_EVERY - 1;
    let n = proxy.nodes.len();
    let first = proxy.next.fetch_add(1, Ordering::Relaxed);
    for i in 0..n {
        let node = proxy.nodes[(first + i) % n];
        let mut request = proxy
            .client
            .request(parts.method.clone(), format!("http://{node}{path}"))
            .body(body.clone());
        if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        match request.send().await {
            Ok(_) if lose_answer => return StatusCode::BAD_GATEWAY.into_response(),
            Ok(resp) => {
                let mut out = Response::builder().status(resp.status());
                for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
                    if let Some(v) = resp.headers().get(&name) {
                        out = out.header(name, v);
                    }
                }
                let bytes = resp.bytes().await.unwrap_or_default();
                return out
                    .body(Body::from(bytes))
                    .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response());
            }
            Err(e) if e.is_connect() => continue,
            Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
        }
    }
    StatusCode::BAD_GATEWAY.into_response()
}

async fn start_proxy(nodes: Vec<SocketAddr>) -> SocketAddr {
    let proxy = Arc::new(Proxy {
        nodes,
        next: AtomicUsize::new(0),
        hooks: AtomicUsize::new(0),
        client: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    });
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

async fn start_sim() -> RunningSim {
    let config = SimConfig {
        // Redeliver failed webhooks quickly (same uuid each time).
        retry_delays: [200, 400, 800, 1500, 2500, 4000, 6000]
            .into_iter()
            .map(Duration::from_millis)
            .collect(),
        delivery_timeout: Duration::from_secs(5),
        ..SimConfig::default()
    };
    Simulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn get_json(http: &reqwest::Client, url: &str) -> Option<(StatusCode, Value)> {
    let resp = http.get(url).send().await.ok()?;
    let status = resp.status();
    Some((status, resp.json().await.ok()?))
}

async fn wait_healthy(http: &reqwest::Client, node: &Node, deadline: Instant) -> Value {
    loop {
        if let Some((StatusCode::OK, body)) = get_json(http, &node.url("/healthz")).await {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "node {} did not become healthy\n{}",
            node.addr,
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many jobs the node holds under a lease right now (`/metrics`).
async fn leases_held(http: &reqwest::Client, node: &Node) -> Option<u64> {
    let text = http
        .get(node.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("weft_leases_held "))
        .and_then(|v| v.trim().parse().ok())
}

/// An inbound SMS from a new customer: the simulator emits `new_unassigned_message` and
/// delivers it (through the proxy) to the registered hook.
async fn inbound(http: &reqwest::Client, sim: &RunningSim, n: u32) {
    let resp = http
        .post(format!("{}/_sim/inbound", sim.root_url()))
        .json(&json!({ "from": format!("+447700{n:06}"), "text": format!("hello {n}") }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "inbound {n}: {}", resp.status());
}

/// `uuid` → how many `ack {uuid}` messages Sonar received.
fn acks(state: &Value) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for m in state["messages"].as_array().into_iter().flatten() {
        if let Some(uuid) = m["text"].as_str().and_then(|t| t.strip_prefix("ack ")) {
            *out.entry(uuid.to_owned()).or_default() += 1;
        }
    }
    out
}

fn deliveries(state: &Value) -> Vec<Value> {
    state["deliveries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d["action"] == "new_unassigned_message")
        .collect()
}

fn weft_json(args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("WEFT_DB")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "weft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_one_database() {
    let Some(db) = pg::TestDb::create().await else {
        return;
    };
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("scenarios");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("cluster-ack.yaml"), ACK_SCENARIO).unwrap();
    std::fs::write(dir.join("cluster-tick.yaml"), TICK_SCENARIO).unwrap();

    let sim = start_sim().await;
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let proxy = start_proxy(addrs.clone()).await;
    let public_url = format!("http://{proxy}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let env = vec![
        ("SONAR_TOKEN".to_owned(), SIM_TOKEN.to_owned()),
        ("SONAR_BASE_URL".to_owned(), sim.base_url()),
    ];
    let mut nodes: Vec<Node> = addrs
        .iter()
        .map(|addr| {
            let args = [
                "serve",
                dir.to_str().unwrap(),
                "--listen",
                &addr.to_string(),
                "--db",
                &db.url,
                "--public-url",
                &public_url,
                "--lease",
                LEASE,
                "--workers",
                "8",
                "--grace",
                "1s",
            ]
            .map(str::to_owned)
            .to_vec();
            Node::new(*addr, args, env.clone(), tmp.path())
        })
        .collect();
    // All three start at the same moment: migrations and the webhook registration race.
    for node in &mut nodes {
        node.start();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ids = BTreeSet::new();
    for node in &nodes {
        let health = wait_healthy(&http, node, deadline).await;
        assert_eq!(health["database"], "reachable");
        ids.insert(health["node"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 3, "each node has its own id: {ids:?}");
    let all_logs = |nodes: &[Node]| nodes.iter().map(Node::logs).collect::<Vec<_>>().join("\n");
    let state = sim.simulator().state_json();
    assert_eq!(
        state["webhooks"].as_array().map(Vec::len),
        Some(1),
        "one Sonar webhook for the cluster: {}\n{}",
        state["webhooks"],
        all_logs(&nodes)
    );
    // The schedule is watched over ten seconds from the next whole second on.
    let window_start = chrono::Utc::now() + chrono::Duration::seconds(1);
    let window_start = window_start
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    // Phase 1: webhooks flow while node 1 is SIGKILLed, then restarted.
    let mut sent = 0u32;
    for _ in 0..20 {
        inbound(&http, &sim, sent).await;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    // Kill it between two executions (webhooks keep arriving): a job killed half-way through
    // its Sonar call would rightly run again after its lease, which is not what this counts.
    let quiet = Instant::now() + Duration::from_secs(2);
    while leases_held(&http, &nodes[1]).await != Some(0) && Instant::now() < quiet {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    nodes[1].kill();
    let killed_at = Instant::now();
    for _ in 0..20 {
        inbound(&http, &sim, sent).await;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    nodes[1].start();
    wait_healthy(&http, &nodes[1], Instant::now() + Duration::from_secs(20)).await;
    let restarted_after = killed_at.elapsed();
    for _ in 0..20 {
        inbound(&http, &sim, sent).await;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }

    // Phase 2: every node loses its database connections, three times, under load.
    let mut terminated = 0;
    for round in 0..3 {
        for _ in 0..15 {
            inbound(&http, &sim, sent).await;
            sent += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        terminated += db.terminate_connections().await;
        let _ = round;
    }
    for _ in 0..15 {
        inbound(&http, &sim, sent).await;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(terminated > 0);

    // Everything settles: every delivery acknowledged, every acknowledged one run.
    let deadline = Instant::now() + Duration::from_secs(25);
    let state = loop {
        let state = sim.simulator().state_json();
        let ds = deliveries(&state);
        let delivered = ds.iter().filter(|d| d["status"] == "delivered").count();
        let failed = ds.iter().filter(|d| d["status"] == "failed").count();
        assert_eq!(
            failed,
            0,
            "a delivery ran out of retries\n{}",
            all_logs(&nodes)
        );
        if ds.len() == sent as usize && delivered == ds.len() && acks(&state).len() == ds.len() {
            break state;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {} sent, {} deliveries, {delivered} delivered, {} acknowledged by Sonar\n{}",
            sent,
            ds.len(),
            acks(&state).len(),
            all_logs(&nodes)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Redelivered events (the simulator's own retries, and ours now) run once.
    let ds = deliveries(&state);
    let retried = ds
        .iter()
        .filter(|d| d["attempts"].as_array().map_or(0, Vec::len) > 1)
        .count();
    assert!(retried > 0, "the simulator redelivered some webhooks");
    let refused_503 = ds
        .iter()
        .flat_map(|d| d["attempts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["status_code"] == 503)
        .count();
    for d in ds.iter().take(10) {
        let resp = http
            .post(d["url"].as_str().unwrap())
            .header(KEEP_ANSWER, "1")
            .json(&d["payload"])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "duplicate", "{body}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let state = sim.simulator().state_json();
    let acks = acks(&state);
    let uuids: BTreeSet<String> = ds
        .iter()
        .map(|d| d["uuid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(uuids.len(), sent as usize);
    let twice: Vec<_> = acks.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "each acknowledged webhook makes exactly one Sonar call: {twice:?}\n{}",
        all_logs(&nodes)
    );
    assert_eq!(
        acks.keys().cloned().collect::<BTreeSet<_>>(),
        uuids,
        "one Sonar call per delivered uuid"
    );
    assert_eq!(
        state["webhooks"].as_array().map(Vec::len),
        Some(1),
        "still one webhook after the restart"
    );

    // The schedule: about ten runs in ten seconds for the whole cluster, never one tick twice.
    let wait = (chrono::DateTime::parse_from_rfc3339(&window_start).unwrap()
        + chrono::Duration::seconds(11))
    .with_timezone(&chrono::Utc)
        - chrono::Utc::now();
    if let Ok(wait) = wait.to_std() {
        tokio::time::sleep(wait).await;
    }
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT record FROM executions WHERE scenario = 'cluster-tick'",
            &[],
        )
        .await
        .unwrap();
    let mut ticks: BTreeMap<String, u32> = BTreeMap::new();
    for row in &rows {
        let record: Value = serde_json::from_str(row.get::<_, &str>(0)).unwrap();
        let fired = record["trigger"]["fired_at"].as_str().unwrap().to_owned();
        *ticks.entry(fired).or_default() += 1;
    }
    let doubled: Vec<_> = ticks.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "a tick ran twice: {doubled:?}");
    let window_end = (chrono::DateTime::parse_from_rfc3339(&window_start).unwrap()
        + chrono::Duration::seconds(10))
    .with_timezone(&chrono::Utc)
    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let in_window = ticks
        .keys()
        .filter(|t| t.as_str() >= window_start.as_str() && t.as_str() < window_end.as_str())
        .count();
    assert!(
        (8..=10).contains(&in_window),
        "a 1 s schedule on three nodes ran {in_window} times in 10 s: {ticks:?}"
    );

    // Any node's CLI reads the shared database.
    let hooks = weft_json(&[
        "hooks",
        "list",
        "--db",
        &db.url,
        "--json",
        "--public-url",
        &public_url,
    ]);
    assert_eq!(hooks.as_array().map(Vec::len), Some(1), "{hooks}");
    assert_eq!(hooks[0]["scenario"], "cluster-ack");
    assert!(hooks[0]["url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{public_url}/hooks/")));
    let listed = weft_json(&[
        "executions",
        "list",
        "--db",
        &db.url,
        "--scenario",
        "cluster-ack",
        "--limit",
        "1000",
        "--json",
    ]);
    assert_eq!(listed.as_array().map(Vec::len), Some(sent as usize));

    // Metrics of the cluster mode.
    let metrics = http
        .get(nodes[0].url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "weft_node_info{node=",
        "weft_leases_held ",
        "weft_claims_per_second ",
        "weft_claim_duration_seconds_count ",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    println!(
        "cluster: {sent} webhooks ({retried} redelivered by the simulator, {refused_503} answers 503), node restarted after {:.1} s, {terminated} connections terminated, {in_window} ticks in 10 s, {:.1} s in all",
        restarted_after.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    for node in &mut nodes {
        node.kill();
    }
    sim.shutdown().await;
}
