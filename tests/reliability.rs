//! Reliability and security suites (issue 7): try to break `weft serve` and check that
//! nothing is lost, leaked or let through. `docs/reliability.md` has the figures these tests
//! print (`cargo test -p weft --test reliability -- --nocapture`) and the bad-input table.
//!
//! - Crash safety: webhooks under load while `weft serve` is SIGKILLed at random moments and
//!   restarted on the same database; every webhook answered 200 ran exactly once (Sonar
//!   duplicates, which the at-least-once design allows, are counted and bounded). SIGTERM in
//!   the middle of the same load exits 0 and loses nothing. Both run on SQLite and, as
//!   `..._on_postgres` (issue 9), on a fresh PostgreSQL database of the server named by
//!   `WEFT_TEST_DATABASE_URL` (skipped, saying so, when it is not set).
//! - Faults of the other side: 30 % 5xx, 429 bursts with `Retry-After`, latency spikes and a
//!   full outage, injected by the simulator; every webhook ends delivered (automatically or
//!   after `weft executions retry`), exactly once, with a bounded number of requests.
//! - Bad input: scenario files (`weft validate`) and webhook bodies the other tests do not
//!   cover; each gets a clear message or 4xx, and valid traffic around them is unaffected.
//! - Security: a canary token never shows up in logs (trace level, text and JSON), history,
//!   CLI output or the database file; hook tokens are 128-bit; `sonar.make_api_call` cannot be
//!   steered to another host; `/metrics` wants the admin token off loopback.
//!
//! Everything is on loopback, bounded in time, and uses `support/` (a `weft serve` child
//! killed on drop, temporary folders). The Sonar simulator runs in this process behind a
//! small counting layer, so the tests know every request weft made.

#![allow(clippy::unwrap_used)]

mod support;

#[path = "../crates/runtime/tests/pg/mod.rs"]
mod pg;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use serde_json::{json, Value};
use support::*;
use weft_runtime::store::{Backend, ExecutionFilter, Store};
use weft_sonar_sim::{SimConfig, Simulator};

const POLL: Duration = Duration::from_millis(250);
/// The phone number every test message goes to.
const PHONE: &str = "+13105550142";

// ---------------------------------------------------------------------------------------
// A simulator that counts what it is asked
// ---------------------------------------------------------------------------------------

/// Every `/api` request the simulator answered.
#[derive(Debug, Default)]
struct Tally {
    /// `(path, status)` in order.
    requests: Vec<(String, u16)>,
    /// Statuses of `POST /v1/messages` by the webhook id in the text (`msg ID`).
    by_id: BTreeMap<String, Vec<u16>>,
}

/// A Sonar simulator in this process, behind a layer that counts every API request.
struct CountingSim {
    sim: Simulator,
    root: String,
    tally: Arc<Mutex<Tally>>,
    task: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

async fn count(State(tally): State<Arc<Mutex<Tally>>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if !path.starts_with("/api/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let id = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["text"].as_str()?.strip_prefix("msg ").map(str::to_owned));
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = resp.status().as_u16();
    let mut tally = tally.lock().unwrap();
    if let Some(id) = id {
        tally.by_id.entry(id).or_default().push(status);
    }
    tally.requests.push((path, status));
    resp
}

impl CountingSim {
    async fn start(config: SimConfig) -> CountingSim {
        let sim = Simulator::new(config);
        let tally = Arc::new(Mutex::new(Tally::default()));
        let router = sim
            .router()
            .layer(middleware::from_fn_with_state(tally.clone(), count));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let root = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        CountingSim {
            sim,
            root,
            tally,
            task,
            http: http(),
        }
    }

    fn base_url(&self) -> String {
        format!("{}/api", self.root)
    }

    /// The environment a `weft` child needs to reach this simulator with `token`.
    fn env_with(&self, token: &str) -> Vec<(String, String)> {
        vec![
            ("SONAR_BASE_URL".to_owned(), self.base_url()),
            ("SONAR_TOKEN".to_owned(), token.to_owned()),
        ]
    }

    fn env(&self) -> Vec<(String, String)> {
        self.env_with(SIM_TOKEN)
    }

    /// `POST /_sim/faults` (`{}` clears them).
    async fn faults(&self, faults: Value) {
        let resp = self
            .http
            .post(format!("{}/_sim/faults", self.root))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "/_sim/faults {faults}");
    }

    fn state(&self) -> Value {
        self.sim.state_json()
    }

    /// Outbound messages per webhook id (`msg ID` texts).
    fn messages_by_id(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for m in self.state()["messages"].as_array().unwrap() {
            if m["direction"] != "outbound" {
                continue;
            }
            if let Some(id) = m["text"].as_str().and_then(|t| t.strip_prefix("msg ")) {
                *out.entry(id.to_owned()).or_insert(0) += 1;
            }
        }
        out
    }

    fn requests(&self) -> Vec<(String, u16)> {
        self.tally.lock().unwrap().requests.clone()
    }

    /// Statuses of the message requests made for one webhook id.
    fn attempts(&self, id: &str) -> Vec<u16> {
        self.tally
            .lock()
            .unwrap()
            .by_id
            .get(id)
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for CountingSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------
// Reading the history in bulk
// ---------------------------------------------------------------------------------------

/// The execution history, read through weft's own store (the same data `weft executions
/// list|show` print, without a process per record). A record never changes once written
/// (a retry is a new execution), so each is read once.
struct History {
    store: Arc<dyn Store>,
    cache: BTreeMap<String, Value>,
}

impl History {
    /// `db`: an SQLite file, or a `postgres://` URL (as `weft serve --db` takes it).
    async fn open(db: &Path) -> History {
        let store = weft_runtime::store::open(&Backend::parse(&db.to_string_lossy()), false)
            .await
            .unwrap();
        History {
            store,
            cache: BTreeMap::new(),
        }
    }

    /// Every execution record.
    async fn records(&mut self) -> Vec<Value> {
        let list = self
            .store
            .list_executions(ExecutionFilter {
                limit: 1_000_000,
                ..ExecutionFilter::default()
            })
            .await
            .unwrap();
        for e in list {
            if !self.cache.contains_key(&e.id) {
                let record = self.store.execution(&e.id).await.unwrap().unwrap();
                self.cache
                    .insert(e.id.clone(), serde_json::to_value(record).unwrap());
            }
        }
        self.cache.values().cloned().collect()
    }

    /// Records by the trigger's `id`, oldest first.
    async fn by_id(&mut self) -> BTreeMap<String, Vec<Value>> {
        let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for r in self.records().await {
            if let Some(id) = r["trigger"]["id"].as_str() {
                out.entry(id.to_owned()).or_default().push(r.clone());
            }
        }
        for v in out.values_mut() {
            v.sort_by(|a, b| {
                a["started_at"]
                    .as_str()
                    .cmp(&b["started_at"].as_str())
                    .then(a["id"].as_str().cmp(&b["id"].as_str()))
            });
        }
        out
    }
}

fn statuses(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Load: concurrent senders, each webhook with a unique id
// ---------------------------------------------------------------------------------------

/// What the senders saw.
#[derive(Debug, Default)]
struct SendLog {
    /// Answered 200 (durably queued).
    acked: BTreeSet<String>,
    /// No answer (connection refused or reset: the server was down or died).
    unanswered: BTreeSet<String>,
    /// Of those, the ones that had connected: the server took the request and gave no
    /// answer (the others were refused at connect: nothing listened).
    dropped: BTreeSet<String>,
    /// Answered with another status.
    refused: BTreeMap<String, u16>,
}

struct Load {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<SendLog>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    sent: Arc<AtomicU64>,
}

impl Load {
    /// `senders` tasks, each sending `{"id", "phone"}` then pausing, at most `max_each` each.
    fn start(hook: &str, prefix: &str, senders: usize, pause: Duration, max_each: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(SendLog::default()));
        let sent = Arc::new(AtomicU64::new(0));
        // A new connection per webhook: an error is then either "nothing listens" (connect)
        // or "the server took the request and did not answer", never a stale keep-alive.
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let tasks = (0..senders)
            .map(|s| {
                let (stop, log, sent, client) =
                    (stop.clone(), log.clone(), sent.clone(), client.clone());
                let hook = hook.to_owned();
                let prefix = prefix.to_owned();
                tokio::spawn(async move {
                    for i in 0..max_each {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let id = format!("{prefix}{s}-{i}");
                        sent.fetch_add(1, Ordering::Relaxed);
                        let answer = client
                            .post(&hook)
                            .json(&json!({"id": id, "phone": PHONE}))
                            .send()
                            .await;
                        {
                            let mut log = log.lock().unwrap();
                            match answer {
                                Ok(r) if r.status() == 200 => {
                                    log.acked.insert(id);
                                }
                                Ok(r) => {
                                    log.refused.insert(id, r.status().as_u16());
                                }
                                Err(e) => {
                                    if !e.is_connect() {
                                        log.dropped.insert(id.clone());
                                    }
                                    log.unanswered.insert(id);
                                }
                            }
                        }
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            log,
            tasks,
            sent,
        }
    }

    fn acked(&self) -> usize {
        self.log.lock().unwrap().acked.len()
    }

    async fn finish(self) -> SendLog {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        assert!(self.sent.load(Ordering::Relaxed) > 0);
        Arc::try_unwrap(self.log).unwrap().into_inner().unwrap()
    }
}

/// What an exactly-once check found.
#[derive(Debug, Default)]
struct Delivery {
    acked: usize,
    unanswered: usize,
    dropped: usize,
    unanswered_ran: usize,
    refused: usize,
    executions: usize,
    /// Webhook ids whose message reached Sonar more than once, with the count.
    duplicates: BTreeMap<String, usize>,
}

/// Every acknowledged webhook has exactly one execution, successful, and at least one Sonar
/// message; nothing runs that was not sent; a webhook nobody got an answer for ran at most
/// once; a refused one never ran.
fn check_exactly_once(
    log: &SendLog,
    runs: &BTreeMap<String, Vec<Value>>,
    messages: &BTreeMap<String, usize>,
) -> Delivery {
    for id in &log.acked {
        let got = runs.get(id).map(|r| statuses(r)).unwrap_or_default();
        assert_eq!(
            got,
            ["success"],
            "webhook `{id}` was answered 200: it must run exactly once, successfully"
        );
        assert!(
            messages.get(id).copied().unwrap_or(0) >= 1,
            "webhook `{id}` ran but Sonar has no message for it"
        );
    }
    let mut unanswered_ran = 0;
    for (id, records) in runs {
        assert!(
            log.acked.contains(id) || log.unanswered.contains(id),
            "execution for `{id}`, which was never queued: {records:#?}"
        );
        assert_eq!(statuses(records), ["success"], "`{id}` ran twice or failed");
        if log.unanswered.contains(id) {
            unanswered_ran += 1;
        }
    }
    for id in messages.keys() {
        assert!(
            runs.contains_key(id),
            "Sonar has a message for `{id}` but no execution recorded it"
        );
    }
    for id in log.refused.keys() {
        assert!(!runs.contains_key(id), "refused webhook `{id}` ran");
    }
    Delivery {
        acked: log.acked.len(),
        unanswered: log.unanswered.len(),
        dropped: log.dropped.len(),
        unanswered_ran,
        refused: log.refused.len(),
        executions: runs.values().map(Vec::len).sum(),
        duplicates: messages
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| (id.clone(), *n))
            .collect(),
    }
}

/// A small deterministic generator for kill moments (the seed is printed).
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Rng {
        let seed = std::env::var("WEFT_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("seed: {seed} (WEFT_TEST_SEED={seed} replays the kill moments)");
        Rng(seed)
    }

    /// SplitMix64.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

// ---------------------------------------------------------------------------------------
// Crash safety
// ---------------------------------------------------------------------------------------

/// `--lease` on PostgreSQL: a restarted node does not give back the leases of the process it
/// replaces (another node could be running them); they expire, so keep them short.
const PG_LEASE: &str = "2s";

/// Which store the crash tests run `weft serve` on.
enum Db {
    /// An SQLite file in the test's folder (`ServeOpts`' default): leases given back at start.
    Sqlite,
    /// A fresh PostgreSQL database: leases of a killed process expire after [`PG_LEASE`].
    Postgres(pg::TestDb),
}

impl Db {
    /// The fresh database on the server of `WEFT_TEST_DATABASE_URL`, or `None` (the test is
    /// skipped, saying so once) when it is not set.
    async fn postgres() -> Option<Db> {
        pg::TestDb::create().await.map(Db::Postgres)
    }

    fn name(&self) -> &'static str {
        match self {
            Db::Sqlite => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Points `opts` at this store, with the arguments it needs.
    fn apply(&self, opts: &mut ServeOpts) {
        if let Db::Postgres(db) = self {
            opts.db = PathBuf::from(&db.url);
            opts.args.extend(["--lease", PG_LEASE].map(String::from));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_acknowledged_webhook() {
    sigkill_under_load(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_acknowledged_webhook_on_postgres() {
    if let Some(db) = Db::postgres().await {
        sigkill_under_load(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_exits_0_and_loses_nothing() {
    sigterm_under_load(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_exits_0_and_loses_nothing_on_postgres() {
    if let Some(db) = Db::postgres().await {
        sigterm_under_load(db).await;
    }
}

/// Webhooks under load while `weft serve` is SIGKILLed at random moments and restarted on the
/// same database. On PostgreSQL the jobs the killed process held come back when their lease
/// expires; the duplicate rule is the same (a job killed between its Sonar call and its
/// commit runs again).
async fn sigkill_under_load(db: Db) {
    const KILLS: usize = 4;
    const SENDERS: usize = 6;
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let sim = CountingSim::start(SimConfig::default()).await;
    // A little latency on Sonar's side keeps executions in flight when the kill comes.
    sim.faults(json!({"latency_ms": 15})).await;
    let mut opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures_from("reliability/scenarios", &opts.dir, &["crash-send"]);
    opts.env = sim.env();
    db.apply(&mut opts);
    let mut serve = Serve::start(opts).await;
    let hook = serve.hook_url("crash-send").await;
    let mut rng = Rng::from_env_or_clock();

    let load = Load::start(&hook, "k", SENDERS, Duration::from_millis(25), 1_000);
    let mut acked_before_kill = Vec::new();
    for _ in 0..KILLS {
        tokio::time::sleep(rng.millis(300, 1_500)).await;
        acked_before_kill.push(load.acked());
        serve.kill();
        tokio::time::sleep(rng.millis(0, 300)).await;
        serve.restart().await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let log = load.finish().await;
    serve.wait_idle().await;
    let status = serve.terminate(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "exit status {status}");
    // Load ran between every pair of kills.
    assert!(
        acked_before_kill.windows(2).all(|w| w[1] > w[0])
            && log.acked.len() > acked_before_kill[KILLS - 1],
        "no webhook was acknowledged between two kills: {acked_before_kill:?}, {}",
        log.acked.len()
    );

    let mut history = History::open(&serve.opts.db).await;
    let runs = history.by_id().await;
    let cli_count = serve.executions(Some("crash-send")).await.len();
    assert_eq!(
        cli_count,
        history.records().await.len(),
        "weft executions list agrees"
    );
    let found = check_exactly_once(&log, &runs, &sim.messages_by_id());
    // At least once: a job killed after its Sonar call and before its commit runs again. At
    // most every execution in flight at a kill can repeat.
    let duplicates: usize = found.duplicates.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= KILLS * 16,
        "{duplicates} duplicate messages for {KILLS} kills: {:?}",
        found.duplicates
    );
    drop(history);
    let recovery = match db {
        Db::Sqlite => format!(
            "{} restarts found leased jobs to requeue",
            serve.log().matches("Requeued jobs left running").count()
        ),
        Db::Postgres(_) => format!("a killed process's leases expire after {PG_LEASE} (`--lease`)"),
    };
    println!(
        "crash ({}): {KILLS} SIGKILLs in {:.1} s; {} webhooks sent, {} answered 200, {} unanswered \
         ({} cut off mid-request, {} had been queued and ran), {} refused; {} executions, all \
         successful; {} duplicate Sonar messages {:?}; {recovery}",
        db.name(),
        started.elapsed().as_secs_f64(),
        found.acked + found.unanswered + found.refused,
        found.acked,
        found.unanswered,
        found.dropped,
        found.unanswered_ran,
        found.refused,
        found.executions,
        duplicates,
        found.duplicates,
    );
}

/// SIGTERM in the middle of the load: exit 0, nothing cut short, the rest runs after a
/// restart, nothing twice.
async fn sigterm_under_load(db: Db) {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let sim = CountingSim::start(SimConfig::default()).await;
    // Slow Sonar calls: executions are running when SIGTERM arrives.
    sim.faults(json!({"latency_ms": 150})).await;
    let mut opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures_from("reliability/scenarios", &opts.dir, &["crash-send"]);
    opts.env = sim.env();
    db.apply(&mut opts);
    let base_args = opts.args.clone();
    opts.args.extend(["--grace", "20s"].map(String::from));
    let mut serve = Serve::start(opts).await;
    let hook = serve.hook_url("crash-send").await;

    let load = Load::start(&hook, "t", 4, Duration::from_millis(10), 1_000);
    eventually("some load", EVENTUALLY, POLL, || async {
        (load.acked() >= 100).then_some(())
    })
    .await;
    let status = serve.terminate(Duration::from_secs(45)).await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}\n{}",
        serve.log()
    );
    let log = load.finish().await;

    // Whatever finished before the exit finished properly; the rest stayed queued.
    let mut history = History::open(&serve.opts.db).await;
    let before = history.records().await;
    assert!(
        before.iter().all(|r| r["status"] == "success"),
        "an execution was cut short by SIGTERM"
    );
    drop(history);
    serve.opts.args = base_args;
    sim.faults(json!({})).await;
    serve.restart().await;
    serve.wait_idle().await;
    let status = serve.terminate(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0));
    let mut history = History::open(&serve.opts.db).await;
    let found = check_exactly_once(&log, &history.by_id().await, &sim.messages_by_id());
    assert!(
        found.duplicates.is_empty(),
        "a graceful shutdown ran something twice: {:?}",
        found.duplicates
    );
    assert_eq!(
        found.unanswered_ran, 0,
        "a webhook was queued but its sender got no answer"
    );
    let stopping = log.refused.values().filter(|s| **s == 503).count();
    assert_eq!(
        stopping, found.refused,
        "only `stopping` refusals: {:?}",
        log.refused
    );
    println!(
        "sigterm ({}): {} answered 200 ({} done before the exit, the rest after the restart), \
         {} refused 503 while stopping, {} unanswered ({} taken then dropped, {} of which \
         ran); 0 lost, 0 duplicates; {:.1} s",
        db.name(),
        found.acked,
        before.len(),
        stopping,
        found.unanswered,
        found.dropped,
        found.unanswered_ran,
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------
// Faults of the other side
// ---------------------------------------------------------------------------------------

/// The `max_retries` of `flaky-send`'s connection, and its `break` retries.
const MAX_RETRIES: usize = 3;
const BREAK_RETRIES: usize = 2;

/// One fault scenario's figures.
#[derive(Debug)]
struct PhaseFigures {
    name: &'static str,
    webhooks: usize,
    requests: usize,
    by_status: BTreeMap<u16, usize>,
    max_requests: usize,
    max_executions: usize,
    manual_retries: usize,
    settled_s: f64,
    delivered_s: f64,
}

impl std::fmt::Display for PhaseFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "| {} | {} | {} ({}) | {:.2} / {} | {} | {} | {:.1} s | {:.1} s |",
            self.name,
            self.webhooks,
            self.requests,
            self.by_status
                .iter()
                .map(|(s, n)| format!("{s}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.requests as f64 / self.webhooks as f64,
            self.max_requests,
            self.max_executions,
            self.manual_retries,
            self.settled_s,
            self.delivered_s,
        )
    }
}

/// The newest record of a webhook says there is nothing more to wait for: delivered, or an
/// incomplete execution whose automatic retries are used up.
fn settled(records: &[Value]) -> Option<&Value> {
    let last = records.last()?;
    let done = last["status"] == "success"
        || (last["status"] == "incomplete"
            && last["incomplete"].as_array().is_some_and(|inc| {
                inc.iter()
                    .all(|i| i["attempts"].as_u64() >= i["retries"].as_u64())
            }));
    done.then_some(last)
}

struct FaultRun<'a> {
    serve: &'a Serve,
    sim: &'a CountingSim,
    hook: String,
    history: History,
}

impl FaultRun<'_> {
    /// Sends `count` webhooks (`gap` apart, or all at once) under `faults`; clears the faults
    /// after `outage` (or once everything settled); then retries by hand whatever used up its
    /// automatic retries, and checks each webhook was delivered exactly once, within bounds.
    async fn phase(
        &mut self,
        name: &'static str,
        faults: Value,
        count: usize,
        gap: Duration,
        outage: Option<Duration>,
    ) -> PhaseFigures {
        self.sim.faults(faults).await;
        let t0 = Instant::now();
        let ids: Vec<String> = (0..count).map(|i| format!("{name}-{i}")).collect();
        let client = http();
        let mut sends = Vec::new();
        for id in &ids {
            let (client, hook, id) = (client.clone(), self.hook.clone(), id.clone());
            sends.push(tokio::spawn(async move {
                let resp = client
                    .post(hook)
                    .json(&json!({"id": id, "phone": PHONE}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "webhook {id}");
            }));
            if !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
        }
        for s in sends {
            s.await.unwrap();
        }
        if let Some(outage) = outage {
            tokio::time::sleep(outage.saturating_sub(t0.elapsed())).await;
            self.sim.faults(json!({})).await;
        }
        let cleared = outage.map(|_| Instant::now());
        // Everything delivered, or waiting for a hand.
        let deadline = Instant::now() + Duration::from_secs(60);
        let waiting: Vec<String> = loop {
            let runs = self.history.by_id().await;
            let mut waiting = Vec::new();
            let mut pending = Vec::new();
            for id in &ids {
                match settled(runs.get(id).map_or(&[][..], Vec::as_slice)) {
                    None => pending.push(id.clone()),
                    Some(last) if last["status"] == "incomplete" => {
                        waiting.push(last["id"].as_str().unwrap().to_owned());
                    }
                    Some(_) => {}
                }
            }
            if pending.is_empty() {
                break waiting;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: still running after 60 s: {pending:?}"
            );
            tokio::time::sleep(POLL).await;
        };
        let settled_s = cleared.unwrap_or(t0).elapsed().as_secs_f64();
        if cleared.is_none() {
            self.sim.faults(json!({})).await;
        }
        let db = self.serve.db();
        for id in &waiting {
            weft(&["executions", "retry", id, "--db", &db], &[])
                .await
                .expect_code(0);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let runs = loop {
            let runs = self.history.by_id().await;
            let undelivered: Vec<&String> = ids
                .iter()
                .filter(|id| {
                    !runs
                        .get(*id)
                        .and_then(|r| r.last())
                        .is_some_and(|r| r["status"] == "success")
                })
                .collect();
            if undelivered.is_empty() {
                break runs;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: not delivered 60 s after the retries: {undelivered:?}"
            );
            tokio::time::sleep(POLL).await;
        };
        let delivered_s = cleared.unwrap_or(t0).elapsed().as_secs_f64();

        // Exactly once, and never a storm.
        let messages = self.sim.messages_by_id();
        let mut figures = PhaseFigures {
            name,
            webhooks: count,
            requests: 0,
            by_status: BTreeMap::new(),
            max_requests: 0,
            max_executions: 0,
            manual_retries: waiting.len(),
            settled_s,
            delivered_s,
        };
        for id in &ids {
            let records = &runs[id];
            let st = statuses(records);
            assert_eq!(
                st.iter().filter(|s| *s == "success").count(),
                1,
                "`{id}`: {st:?}"
            );
            assert!(
                st[..st.len() - 1].iter().all(|s| s == "incomplete"),
                "`{id}`: every attempt before the success is an incomplete execution: {st:?}"
            );
            assert_eq!(messages.get(id), Some(&1), "`{id}`: one message in Sonar");
            let manual = waiting
                .iter()
                .filter(|w| records.iter().any(|r| r["id"] == w.as_str()))
                .count();
            assert!(
                records.len() <= 1 + BREAK_RETRIES + manual,
                "`{id}`: {} executions",
                records.len()
            );
            let attempts = self.sim.attempts(id);
            assert!(
                attempts.len() <= (MAX_RETRIES + 1) * records.len(),
                "retry storm: `{id}` made {} requests in {} executions: {attempts:?}",
                attempts.len(),
                records.len()
            );
            figures.requests += attempts.len();
            figures.max_requests = figures.max_requests.max(attempts.len());
            figures.max_executions = figures.max_executions.max(records.len());
            for s in attempts {
                *figures.by_status.entry(s).or_insert(0) += 1;
            }
        }
        self.serve.wait_idle().await;
        println!("{figures}");
        figures
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sonar_faults_end_delivered_exactly_once_without_a_retry_storm() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = CountingSim::start(SimConfig::default()).await;
    let mut opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures_from("reliability/scenarios", &opts.dir, &["flaky-send"]);
    opts.env = sim.env();
    let serve = Serve::start(opts).await;
    let hook = serve.hook_url("flaky-send").await;
    let mut run = FaultRun {
        serve: &serve,
        sim: &sim,
        hook,
        history: History::open(&serve.opts.db).await,
    };
    println!(
        "| faults | webhooks | Sonar requests (by status) | requests per webhook (mean / max) \
         | executions per webhook (max) | `weft executions retry` needed | settled after | \
         all delivered after |"
    );
    let errors = run
        .phase(
            "error-30pc",
            json!({"error_rate": 0.3, "error_status": 500}),
            40,
            Duration::ZERO,
            None,
        )
        .await;
    assert!(
        errors.by_status.get(&500).copied().unwrap_or(0) > 0,
        "{errors:?}"
    );
    let limited = run
        .phase(
            "rate-limit",
            json!({"rate_limit_per_s": 5}),
            30,
            Duration::ZERO,
            None,
        )
        .await;
    assert!(
        limited.by_status.get(&429).copied().unwrap_or(0) > 0,
        "{limited:?}"
    );
    let slow = run
        .phase(
            "latency",
            json!({"latency_ms": 400}),
            20,
            Duration::ZERO,
            None,
        )
        .await;
    assert_eq!(slow.requests, 20, "latency alone causes no retry: {slow:?}");
    // A one-minute outage compressed to 5 s; webhooks keep coming during it.
    let outage = run
        .phase(
            "outage",
            json!({"error_rate": 1.0, "error_status": 503}),
            20,
            Duration::from_millis(250),
            Some(Duration::from_secs(5)),
        )
        .await;
    assert!(
        outage.by_status.get(&503).copied().unwrap_or(0) >= 20,
        "{outage:?}"
    );
    // Nothing left behind: no queued job, no incomplete execution without a success after it.
    let health = serve.health().await;
    assert_eq!(health["queue_depth"], 0, "{health}");
}

// ---------------------------------------------------------------------------------------
// Bad input: scenario files
// ---------------------------------------------------------------------------------------

#[test]
fn bad_scenario_files_are_refused_with_file_line_and_a_fix() {
    // (fixture, message, line:column) — each file has one problem.
    let cases: &[(&str, &str, &str)] = &[
        (
            "malformed-yaml",
            "invalid YAML: while parsing a flow mapping",
            "7:7",
        ),
        ("wrong-type", "`params.seconds` must be a number", "9:24"),
        ("wrong-id-type", "expected a positive whole number", "4:9"),
        ("unknown-field", "unknown field `mapp`", "9:5"),
        (
            "unknown-param",
            "unknown field `colour` for `webhook.custom`",
            "6:24",
        ),
        ("bad-template", "`{{` is not closed by `}}`", "9:22"),
        ("unknown-helper", "unknown helper `shout`", "9:22"),
        ("later-module", "module `3` is not upstream of it", "9:15"),
        ("duplicate-ids", "module id `2` is used twice", "10:5"),
        (
            "router-without-routes",
            "a router needs at least one route",
            "7:7",
        ),
        (
            "aggregator-cycle",
            "aggregator `3` collects module `3`, which is not upstream",
            "13:13",
        ),
        (
            "inline-secret",
            "`token` is a secret and must not be written in the scenario",
            "6:12",
        ),
    ];
    let mut files = Vec::new();
    for (name, message, at) in cases {
        let file = format!("tests/fixtures/reliability/invalid/{name}.yaml");
        let out = weft_sync(&["validate", &file], &[]);
        out.expect_code(1);
        let err = &out.stderr;
        assert!(err.contains(message), "{name}: no `{message}` in\n{err}");
        assert!(
            err.contains(&format!("{file}:{at}")),
            "{name}: no {file}:{at} in\n{err}"
        );
        assert!(err.contains("help: "), "{name}: no fix in\n{err}");
        assert!(!err.contains("panicked"), "{err}");
        files.push(file);
    }

    // Generated ones: 10 MB (the loader stops at 4 MiB), not UTF-8, empty.
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("ten-megabytes.yaml");
    let mut text = String::from(
        "name: big\nflow:\n  - { id: 1, module: webhook.custom, params: { name: x } }\n  - id: 2\n    module: flow.set_variables\n    map:\n",
    );
    while text.len() < 10 * 1024 * 1024 {
        text.push_str(&format!(
            "      pad{}: \"{}\"\n",
            text.len(),
            "x".repeat(1000)
        ));
    }
    std::fs::write(&big, text).unwrap();
    let binary = tmp.path().join("not-utf8.yaml");
    std::fs::write(&binary, b"name: x\nflow: [\xff\xfe]\n").unwrap();
    let empty = tmp.path().join("empty.yaml");
    std::fs::write(&empty, b"").unwrap();
    for (file, message) in [
        (&big, "more than the limit of 4194304"),
        (&binary, "scenario file is not UTF-8"),
        (&empty, "a scenario must be a YAML mapping"),
    ] {
        let path = file.to_str().unwrap();
        let started = Instant::now();
        let out = weft_sync(&["validate", path], &[]);
        out.expect_code(1);
        assert!(out.stderr.contains(message), "{path}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{path}:1:1")),
            "{}",
            out.stderr
        );
        assert!(started.elapsed() < Duration::from_secs(30));
        files.push(path.to_owned());
    }

    // All at once: each is reported, and the count is right.
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = weft_sync(&args, &[]);
    out.expect_code(1);
    assert!(
        out.stderr.contains(&format!(
            "{n} of {n} scenario(s) failed validation",
            n = files.len()
        )),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------------
// Bad input: webhooks
// ---------------------------------------------------------------------------------------

/// `weft_webhooks_refused_total` by reason.
fn refused_counts(metrics: &str) -> BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("weft_webhooks_refused_total{reason=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(reason, n)| (reason.to_owned(), n.trim().parse().unwrap()))
        .collect()
}

/// Streams a chunked body of `total` bytes with no Content-Length and returns the status
/// line of the answer.
fn chunked_post(port: u16, path: &str, total: usize) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let _ = s.write_all(head.as_bytes());
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    // The server may answer and close before the end: stop writing then.
    while sent < total {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if s.write_all(&frame).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// A webhook that must be refused.
struct Bad {
    what: &'static str,
    url: String,
    ctype: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    /// The reason counted in `weft_webhooks_refused_total` (empty: not counted).
    reason: &'static str,
}

impl Bad {
    /// A JSON request.
    fn new(what: &'static str, url: &str, body: &[u8], status: u16, reason: &'static str) -> Bad {
        Bad {
            what,
            url: url.to_owned(),
            ctype: Some(JSON),
            body: body.to_vec(),
            status,
            reason,
        }
    }

    fn ctype(self, ctype: Option<&'static str>) -> Bad {
        Bad { ctype, ..self }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhooks_get_a_clear_4xx_amid_valid_traffic_that_all_runs() {
    const VALID: u64 = 30;
    let tmp = tempfile::tempdir().unwrap();
    let opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures(&opts.dir, &["echo"]);
    let serve = Serve::start(opts).await;
    let hook = serve.hook_url("echo").await;
    let base = serve.url();

    let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let digits = |n: usize| "9".repeat(n);
    let other_token = |token: String| format!("{base}/hooks/{token}");
    let token = hook.rsplit('/').next().unwrap().to_owned();
    let refused = vec![
        Bad::new(
            "invalid UTF-8 in a JSON string",
            &hook,
            b"{\"a\": \"\xff\xfe\"}",
            400,
            "malformed",
        ),
        Bad::new(
            "lone surrogate escape",
            &hook,
            br#"{"a": "\ud800"}"#,
            400,
            "malformed",
        ),
        Bad::new("1e400", &hook, br#"{"a": 1e400}"#, 400, "malformed"),
        Bad::new("-1e400", &hook, br#"{"a": -1e400}"#, 400, "malformed"),
        Bad::new(
            "400-digit integer",
            &hook,
            format!(r#"{{"a": {}}}"#, digits(400)).as_bytes(),
            400,
            "malformed",
        ),
        Bad::new(
            "10,000 nested objects",
            &hook,
            deep_objects.as_bytes(),
            400,
            "malformed",
        ),
        Bad::new(
            "trailing characters",
            &hook,
            br#"{"a": 1} {"b": 2}"#,
            400,
            "malformed",
        ),
        Bad::new(
            "UTF-8 byte order mark",
            &hook,
            b"\xef\xbb\xbf{\"a\": 1}",
            400,
            "malformed",
        ),
        Bad::new("whitespace only", &hook, b" \r\n\t ", 400, "empty"),
        Bad::new(
            "no content type",
            &hook,
            br#"{"a": 1}"#,
            415,
            "content_type",
        )
        .ctype(None),
        Bad::new(
            "multipart form",
            &hook,
            b"--x\r\n\r\na\r\n--x--",
            415,
            "content_type",
        )
        .ctype(Some("multipart/form-data; boundary=x")),
        Bad::new(
            "10,000-character token",
            &other_token("a".repeat(10_000)),
            b"{}",
            404,
            "unknown_hook",
        ),
        Bad::new(
            "token one character short",
            &hook[..hook.len() - 1],
            b"{}",
            404,
            "unknown_hook",
        ),
        Bad::new(
            "token in upper case",
            &other_token(token.to_uppercase()),
            b"{}",
            404,
            "unknown_hook",
        ),
        Bad::new("no token", &format!("{base}/hooks/"), b"{}", 404, ""),
    ];
    // Accepted as they are: (what, content type, body, the trigger bundle recorded).
    let accepted: Vec<(&str, &str, Vec<u8>, Value)> = vec![
        (
            "300-digit integer (kept as a float)",
            JSON,
            format!(r#"{{"big": {}}}"#, digits(300)).into_bytes(),
            json!({"big": 1e300}),
        ),
        (
            "2^64 (kept as a float)",
            JSON,
            br#"{"u64_plus_1": 18446744073709551616}"#.to_vec(),
            json!({"u64_plus_1": 18_446_744_073_709_551_616.0_f64}),
        ),
        (
            "1e-400 (underflows to 0)",
            JSON,
            br#"{"tiny": 1e-400}"#.to_vec(),
            json!({"tiny": 0.0}),
        ),
        (
            "escaped NUL",
            JSON,
            br#"{"nul": "x\u0000y"}"#.to_vec(),
            json!({"nul": "x\u{0}y"}),
        ),
        (
            "duplicate keys (the last wins)",
            JSON,
            br#"{"dup": 1, "dup": 2}"#.to_vec(),
            json!({"dup": 2}),
        ),
        ("a top-level array", JSON, b"[1, 2]".to_vec(), json!([1, 2])),
        ("a top-level number", JSON, b"42".to_vec(), json!(42)),
        (
            "form with invalid UTF-8 (replaced)",
            FORM,
            b"form=\xff".to_vec(),
            json!({"form": "\u{fffd}"}),
        ),
        (
            "form with %FF (replaced)",
            FORM,
            b"pct=%FF".to_vec(),
            json!({"pct": "\u{fffd}"}),
        ),
    ];

    let client = http();
    let post = |url: String, ctype: Option<&'static str>, body: Vec<u8>| {
        let client = client.clone();
        async move {
            let mut req = client.post(url).body(body);
            if let Some(c) = ctype {
                req = req.header("content-type", c);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }
    };
    // Valid webhooks interleaved with the bad ones, all at once.
    let mut tasks = Vec::new();
    for n in 0..VALID {
        let body = serde_json::to_vec(&numbered(n)).unwrap();
        tasks.push((
            "valid",
            tokio::spawn(post(hook.clone(), Some(JSON), body)),
            200,
        ));
        if let Some(bad) = refused.get(n as usize) {
            let answer = post(bad.url.clone(), bad.ctype, bad.body.clone());
            tasks.push((bad.what, tokio::spawn(answer), bad.status));
        }
        if let Some((what, ctype, body, _)) = accepted.get(n as usize) {
            let answer = post(hook.clone(), Some(*ctype), body.clone());
            tasks.push((*what, tokio::spawn(answer), 200));
        }
    }
    for (what, task, expected) in tasks {
        let (status, text) = task.await.unwrap();
        assert_eq!(status, expected, "{what}: {text}");
        if status != 200 && what != "no token" {
            let error: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{what}: the answer is not JSON ({e}): {text}"));
            assert!(
                error["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{what}: {text}"
            );
        }
    }
    // Not a webhook at all: GET on a hook.
    let resp = client.get(&hook).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    // A body over the 1 MiB limit streamed without a Content-Length.
    let path = hook.strip_prefix(&base).unwrap().to_owned();
    let port = serve.port;
    let line = tokio::task::spawn_blocking(move || chunked_post(port, &path, 2 * 1024 * 1024))
        .await
        .unwrap();
    assert!(line.contains(" 413 "), "chunked oversized body: `{line}`");

    // The server still serves; exactly the valid and accepted webhooks ran, once each.
    let health = serve.health().await;
    assert_eq!(health["status"], "ok", "{health}");
    let expected = VALID as usize + accepted.len();
    eventually("the executions", EVENTUALLY, POLL, || async {
        (serve.executions(None).await.len() >= expected).then_some(())
    })
    .await;
    serve.wait_idle().await;
    let mut history = History::open(&serve.opts.db).await;
    let records = history.records().await;
    assert_eq!(records.len(), expected);
    assert!(records.iter().all(|r| r["status"] == "success"));
    let mut triggers: Vec<String> = records.iter().map(|r| r["trigger"].to_string()).collect();
    let mut want: Vec<String> = (0..VALID).map(|n| numbered(n).to_string()).collect();
    want.extend(accepted.iter().map(|(_, _, _, t)| t.to_string()));
    triggers.sort();
    want.sort();
    assert_eq!(triggers, want);
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for bad in refused.iter().filter(|b| !b.reason.is_empty()) {
        *counted.entry(bad.reason.to_owned()).or_insert(0) += 1;
    }
    counted.insert("too_large".to_owned(), 1); // the chunked upload
    assert_eq!(refused_counts(&serve.metrics().await), counted);
}

/// Bodies nested up to 64 levels are accepted and their records stay readable (records nest
/// the body a few levels deeper, under serde_json's limit of 128); deeper ones get a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_deep_webhook_has_a_readable_record() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures(&opts.dir, &["echo"]);
    let serve = Serve::start(opts).await;
    let hook = serve.hook_url("echo").await;
    let nested = |depth: usize| format!("{}1{}", r#"{"n":"#.repeat(depth), "}".repeat(depth));
    for depth in [65, 126] {
        let resp = http()
            .post(&hook)
            .header("content-type", "application/json")
            .body(nested(depth))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "depth {depth}");
    }
    let resp = http()
        .post(&hook)
        .header("content-type", "application/json")
        .body(nested(64))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let id = eventually("the execution", EVENTUALLY, POLL, || async {
        serve
            .executions(None)
            .await
            .first()
            .map(|e| e["id"].as_str().unwrap().to_owned())
    })
    .await;
    let db = serve.db();
    let out = weft(&["executions", "show", &id, "--db", &db, "--json"], &[]).await;
    out.expect_code(0);
}

// ---------------------------------------------------------------------------------------
// Security
// ---------------------------------------------------------------------------------------

/// The token the simulator accepts; its random middle part is what is searched for, so a
/// truncated or reformatted leak is caught too.
const CANARY: &str = "canary-7d1f9a2b-secret";
const CANARY_PART: &str = "7d1f9a2b";
/// A token the simulator refuses.
const BAD_CANARY: &str = "canary-0c4e91aa-wrong";
const BAD_CANARY_PART: &str = "0c4e91aa";

/// Panics if any canary shows up in `text`.
#[track_caller]
fn assert_no_canary(what: &str, text: &str) {
    for part in [CANARY_PART, BAD_CANARY_PART] {
        if let Some(at) = text.find(part) {
            let start = text[..at]
                .char_indices()
                .rev()
                .nth(200)
                .map_or(0, |(i, _)| i);
            let end = (at + 200).min(text.len());
            let end = (end..=text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap();
            panic!("a token leaked into {what}:\n…{}…", &text[start..end]);
        }
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_never_leak_into_logs_history_output_or_the_database() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = CountingSim::start(SimConfig {
        tokens: vec![CANARY.to_owned()],
        ..SimConfig::default()
    })
    .await;
    let mut opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures_from(
        "reliability/scenarios",
        &opts.dir,
        &["canary-good", "canary-bad", "canary-trigger"],
    );
    let mut env = sim.env_with(CANARY);
    env.push(("SONAR_BAD_TOKEN".to_owned(), BAD_CANARY.to_owned()));
    env.push(("WEFT_LOG".to_owned(), "trace".to_owned()));
    opts.env = env.clone();
    opts.args = ["--log-format", "json"].map(String::from).to_vec();
    let mut serve = Serve::start(opts).await;
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // Hook tokens: 128 random bits each.
    let hooks = serve.hooks().await;
    assert_eq!(hooks.len(), 3, "{hooks:#?}");
    let mut tokens = BTreeSet::new();
    for h in &hooks {
        let token = h["url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        assert!(
            token.len() >= 32 && token.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            "hook token `{token}` is not at least 128 bits of hex"
        );
        tokens.insert(token);
    }
    assert_eq!(tokens.len(), 3, "hook tokens are distinct");
    // The trigger with the refused token could not be registered.
    assert!(sim.state()["webhooks"].as_array().unwrap().is_empty());

    let good = serve.hook_url("canary-good").await;
    let bad = serve.hook_url("canary-bad").await;
    let trigger = serve.hook_url("canary-trigger").await;
    let text = |n: usize| json!({"phone": PHONE, "text": format!("hello {n}")});
    let mut sent = 0;
    for _ in 0..3 {
        assert_eq!(serve.post_json(&good, &text(sent)).await.status(), 200);
        sent += 1;
    }
    for _ in 0..2 {
        assert_eq!(serve.post_json(&bad, &text(sent)).await.status(), 200);
        sent += 1;
    }
    let delivery: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("scenarios/sonar-customers.input.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(serve.post_json(&trigger, &delivery).await.status(), 200);
    serve.wait_idle().await;
    // Sonar down: connection errors, retried, then stored as incomplete; retried by hand.
    sim.faults(json!({"error_rate": 1.0, "error_status": 502}))
        .await;
    for _ in 0..2 {
        assert_eq!(serve.post_json(&good, &text(sent)).await.status(), 200);
        sent += 1;
    }
    let db = serve.db();
    let incomplete = eventually("two incomplete executions", EVENTUALLY, POLL, || async {
        let list = serve.executions(Some("canary-good")).await;
        let ids: Vec<String> = list
            .iter()
            .filter(|e| e["status"] == "incomplete")
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        (ids.len() == 2).then_some(ids)
    })
    .await;
    serve.wait_idle().await;
    sim.faults(json!({})).await;
    for id in &incomplete {
        weft(&["executions", "retry", id, "--db", &db], &[])
            .await
            .expect_code(0);
    }
    eventually("the retries", EVENTUALLY, POLL, || async {
        let list = serve.executions(Some("canary-good")).await;
        (list.iter().filter(|e| e["status"] == "success").count() == 5).then_some(())
    })
    .await;
    serve.wait_idle().await;
    let mut served = vec![
        ("GET /metrics".to_owned(), serve.metrics().await),
        ("GET /healthz".to_owned(), serve.health().await.to_string()),
    ];
    let status = serve.terminate(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0));

    // Again with text logs.
    serve.opts.args = ["--log-format", "text"].map(String::from).to_vec();
    serve.restart().await;
    assert_eq!(serve.post_json(&good, &text(sent)).await.status(), 200);
    assert_eq!(serve.post_json(&bad, &text(sent + 1)).await.status(), 200);
    serve.wait_idle().await;
    served.push(("GET /metrics".to_owned(), serve.metrics().await));
    let status = serve.terminate(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0));

    // The failures happened as intended, and the tokens were used.
    let mut history = History::open(&serve.opts.db).await;
    let records = history.records().await;
    drop(history);
    let kinds: BTreeSet<String> = records
        .iter()
        .flat_map(|r| r["steps"].as_array().unwrap().clone())
        .filter_map(|s| s["error"]["type"].as_str().map(str::to_owned))
        .collect();
    assert!(kinds.contains("InvalidAccessTokenError"), "{kinds:?}");
    assert!(kinds.contains("ConnectionError"), "{kinds:?}");
    assert_eq!(
        records.iter().filter(|r| r["status"] == "success").count(),
        7
    );
    let requests = sim.requests();
    assert!(requests.iter().any(|(_, s)| *s == 401), "{requests:?}");
    assert!(requests.iter().any(|(_, s)| *s == 502), "{requests:?}");
    assert!(
        requests
            .iter()
            .filter(|(_, s)| *s == 200 || *s == 202)
            .count()
            >= 10,
        "{requests:?}"
    );
    let log = serve.log();
    assert!(
        log.contains("\"level\":\"TRACE\""),
        "no trace-level JSON log"
    );
    assert!(log.contains("TRACE"), "no trace-level text log");
    assert!(
        log.contains("InvalidAccessTokenError"),
        "the refused token is logged as such"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("Retrying Sonar request") && l.contains("execution_id")),
        "the retries are logged, naming their execution"
    );
    assert!(
        log.contains("Cannot activate the trigger"),
        "the failed activation is logged"
    );

    // Every output of every command.
    let mut outputs: Vec<(String, String)> = vec![("weft serve log".to_owned(), log)];
    outputs.extend(served);
    let mut commands: Vec<Vec<String>> = vec![
        vec![
            "executions".into(),
            "list".into(),
            "--db".into(),
            db.clone(),
        ],
        vec![
            "executions".into(),
            "list".into(),
            "--json".into(),
            "--db".into(),
            db.clone(),
        ],
        vec!["hooks".into(), "list".into(), "--db".into(), db.clone()],
        vec![
            "hooks".into(),
            "list".into(),
            "--json".into(),
            "--db".into(),
            db.clone(),
        ],
    ];
    for r in &records {
        let id = r["id"].as_str().unwrap().to_owned();
        commands.push(vec![
            "executions".into(),
            "show".into(),
            id.clone(),
            "--db".into(),
            db.clone(),
        ]);
        commands.push(vec![
            "executions".into(),
            "show".into(),
            id,
            "--json".into(),
            "--db".into(),
            db.clone(),
        ]);
    }
    let dir = serve.opts.dir.display().to_string();
    let input = tmp.path().join("input.json");
    std::fs::write(&input, text(99).to_string()).unwrap();
    let input = input.display().to_string();
    for name in ["canary-good", "canary-bad", "canary-trigger"] {
        let file = format!("{dir}/{name}.yaml");
        commands.push(vec!["validate".into(), file.clone()]);
        commands.push(vec![
            "deactivate".into(),
            file.clone(),
            "--db".into(),
            db.clone(),
        ]);
        if name != "canary-trigger" {
            commands.push(vec![
                "run".into(),
                file.clone(),
                "--input".into(),
                input.clone(),
            ]);
            commands.push(vec![
                "run".into(),
                file,
                "--input".into(),
                input.clone(),
                "--json".into(),
            ]);
        }
    }
    let mut failed_runs = 0;
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = weft(&args, &env).await;
        assert!(
            out.code == Some(0) || out.code == Some(1),
            "weft {args:?}: {out:?}"
        );
        if args[0] == "run" && out.code == Some(1) {
            failed_runs += 1;
        }
        outputs.push((format!("weft {} (stdout)", args.join(" ")), out.stdout));
        outputs.push((format!("weft {} (stderr)", args.join(" ")), out.stderr));
    }
    assert_eq!(failed_runs, 2, "`weft run` with the refused token fails");
    for (what, text) in &outputs {
        assert_no_canary(what, text);
    }
    // And the bytes of every file left behind: database, WAL, logs, scenarios.
    let files = files_under(tmp.path());
    assert!(files.iter().any(|f| f.ends_with("weft.db")));
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert_no_canary(
            &file.display().to_string(),
            &String::from_utf8_lossy(&bytes),
        );
    }
}

#[test]
fn an_inline_secret_is_not_echoed_by_validate() {
    let file = "tests/fixtures/reliability/invalid/inline-secret.yaml";
    let out = weft_sync(&["validate", file], &[]);
    out.expect_code(1);
    assert!(
        out.stderr.contains("must not be written in the scenario"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("canary-inline-5e8c-secret"),
        "the secret is printed back:\n{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_api_call_cannot_reach_another_host() {
    let sim = CountingSim::start(SimConfig::default()).await;
    // The host an attacker would like the token sent to.
    let evil = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_addr = evil.local_addr().unwrap();
    let knocks = Arc::new(AtomicU64::new(0));
    let evil_task = {
        let knocks = knocks.clone();
        tokio::spawn(async move {
            while let Ok((_conn, _)) = evil.accept().await {
                knocks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let e = evil_addr.to_string();
    let paths: Vec<Value> = [
        format!("http://{e}/v1/webhooks"),
        format!("https://{e}/v1/webhooks"),
        format!("HTTP://{e}/v1/webhooks"),
        format!("http:{e}/v1/webhooks"),
        format!("http://2130706433:{}/v1/webhooks", evil_addr.port()),
        format!("//{e}/v1/webhooks"),
        format!("///{e}/v1/webhooks"),
        format!("  //{e}/v1/webhooks"),
        format!("\t//{e}/v1/webhooks"),
        format!("\\\\{e}\\v1"),
        format!("/\\{e}/v1/webhooks"),
        format!("@{e}/v1/webhooks"),
        format!("/@{e}/v1/webhooks"),
        format!("/v1:x@{e}/webhooks"),
        format!("/v1%40{e}/webhooks"),
        format!("/%2F%2F{e}/v1/webhooks"),
        format!("/%2f%2f{e}/v1/webhooks"),
        format!("/v1/../../{e}/v1/webhooks"),
        "/v1/%2e%2e/%2e%2e/x".to_owned(),
        "/v1/%252e%252e/x".to_owned(),
        "/v1/./webhooks".to_owned(),
        "/..".to_owned(),
        format!("/v1/webhooks#@{e}"),
        format!("/v1/webhooks\r\nHost: {e}"),
        format!("/v1/%0d%0aHost:%20{e}"),
        format!("javascript:fetch('http://{e}')"),
        "file:///etc/passwd".to_owned(),
        format!("ftp://{e}/"),
    ]
    .into_iter()
    .map(|p| json!({ "value": p }))
    .chain([
        json!({"value": "/v1/webhooks", "headers": {"Host": e}}),
        json!({"value": "/v1/webhooks", "headers": {"X-Token": "stolen"}}),
        json!({"value": "/v1/webhooks", "headers": {"X-Note": format!("a\r\nHost: {e}")}}),
    ])
    .collect();
    let tricks = paths.len();
    // The one legitimate call, last: proves the scenario does reach the simulator.
    let mut all = paths;
    all.push(json!({"value": "/v1/webhooks"}));

    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("escape.yaml");
    let text = std::fs::read_to_string(fixture("reliability/scenarios/escape.yaml")).unwrap();
    std::fs::write(&scenario, loopback_only(&text)).unwrap();
    let input = tmp.path().join("input.json");
    std::fs::write(&input, json!({ "paths": all }).to_string()).unwrap();
    let env = sim.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = weft(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--json",
        ],
        &env,
    )
    .await;
    out.expect_code(0);
    let record = out.json();
    assert_eq!(record["status"], "warning", "{record:#}");
    let calls: Vec<&Value> = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["module"] == "sonar.make_api_call")
        .collect();
    assert_eq!(calls.len(), tricks + 1, "{record:#}");
    for (call, trick) in calls.iter().zip(&all) {
        if call == calls.last().unwrap() {
            assert!(call["error"].is_null(), "{call:#}");
            assert_eq!(call["output"][0]["status"], 200, "{call:#}");
            continue;
        }
        assert_eq!(call["error"]["type"], "DataError", "{trick}: {call:#}");
        let message = call["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("field `path`") || message.starts_with("field `headers`"),
            "{trick}: {message}"
        );
    }
    // Nothing reached the other host, and the simulator saw only the legitimate call.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(knocks.load(Ordering::SeqCst), 0, "a request reached {e}");
    let requests = sim.requests();
    assert_eq!(
        requests,
        [("/api/v1/webhooks".to_owned(), 200)],
        "the simulator saw a trick"
    );
    evil_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_off_loopback_need_the_admin_token() {
    const ADMIN: &str = "admin-4b1e6f0d9c2a";
    let tmp = tempfile::tempdir().unwrap();

    // Bound to every interface, no admin token: /metrics is refused outright.
    let mut opts = ServeOpts::in_dir(&tmp.path().join("open"));
    copy_fixtures(&opts.dir, &["echo"]);
    opts.listen_host = "0.0.0.0".to_owned();
    let serve = Serve::start(opts).await;
    let (status, body) = serve.get("/metrics", None).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("weft_"), "{body}");
    drop(serve);

    // With --admin-token: only with `Authorization: Bearer` and the right token.
    let mut opts = ServeOpts::in_dir(&tmp.path().join("token"));
    copy_fixtures(&opts.dir, &["echo"]);
    opts.listen_host = "0.0.0.0".to_owned();
    opts.args = vec!["--admin-token".into(), ADMIN.into()];
    let serve = Serve::start(opts).await;
    for (bearer, expected) in [
        (None, 401),
        (Some("wrong"), 401),
        (Some(&ADMIN[..ADMIN.len() - 1]), 401),
        (Some(ADMIN), 200),
    ] {
        let (status, body) = serve.get("/metrics", bearer).await;
        assert_eq!(status, expected, "bearer {bearer:?}: {body}");
        if expected == 200 {
            assert!(body.contains("weft_webhooks_received_total"), "{body}");
        } else {
            assert!(!body.contains("weft_"), "{body}");
        }
    }
    // Hooks stay open: they have their own tokens.
    let hook = serve.hook_url("echo").await;
    assert_eq!(serve.post_json(&hook, &numbered(1)).await.status(), 200);
    assert!(!serve.log().contains(ADMIN), "the admin token is logged");
    drop(serve);

    // Loopback: open as before.
    let opts = ServeOpts::in_dir(&tmp.path().join("loopback"));
    copy_fixtures(&opts.dir, &["echo"]);
    let serve = Serve::start(opts).await;
    let (status, body) = serve.get("/metrics", None).await;
    assert_eq!(status, 200, "{body}");
}
