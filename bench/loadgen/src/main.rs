//! Load generator and measurement helpers of the end-to-end load benchmark (issue 6);
//! `bench/run.sh` drives them. Loopback only, every step bounded in time.
//!
//! - `run`: closed-loop load at a fixed concurrency for a fixed time (or request count):
//!   POSTs Sonar-style JSON webhooks with unique ids and records every acknowledgement's
//!   latency (all samples kept, sorted, exact percentiles).
//! - `report`: after a run, reads the simulator's stored messages and works out executions
//!   completed per second and webhook-to-Sonar latency (see [`report`]).
//! - `wait-idle`, `startup`, `drain`, `blackhole`: the other figures of the benchmark.
//! - `table`: prints the collected results.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(clap::Parser)]
enum Cmd {
    /// Closed-loop load: CONCURRENCY connections POST webhooks for DURATION seconds.
    Run(RunArgs),
    /// Works out completions and webhook-to-Sonar latency of a run from the simulator.
    Report(ReportArgs),
    /// Waits until weft's queue is empty (`weft_queue_depth 0` in `/metrics`).
    WaitIdle(WaitArgs),
    /// Spawns a server, times spawn → `/healthz` 200, reads its idle RSS, stops it.
    Startup(StartupArgs),
    /// Spawns weft on a filled queue and times the drain per chunk of executions.
    Drain(DrainArgs),
    /// Accepts TCP connections and never answers (stalls the one worker while filling).
    Blackhole(BlackholeArgs),
    /// Prints the results table from the collected JSON lines.
    Table(TableArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The hook URL (`http://127.0.0.1:PORT/hooks/TOKEN`); repeat it for several nodes:
    /// connection i sends to URL i mod the number of URLs.
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// Connections, each sending its next request when the previous one is answered.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many requests (whichever comes first with the duration).
    #[arg(long)]
    count: Option<u64>,
    /// Paced instead of closed loop: at most this many requests per second in all (each
    /// connection sends on its own fixed schedule, or at once when late).
    #[arg(long)]
    rate: Option<f64>,
    /// Marks this run's webhooks (and so the messages they cause); no `-` in it.
    #[arg(long, default_value = "r")]
    run_id: String,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// `NAME=PID` of a process whose CPU time over the run is reported (repeatable).
    #[arg(long = "pid")]
    pids: Vec<String>,
    /// The `kind` of the JSON result (`run`, `fill`).
    #[arg(long, default_value = "run")]
    kind: String,
    /// Writes the JSON result here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// The JSON written by `run --out`.
    #[arg(long)]
    run_json: PathBuf,
    /// The simulator's root URL (`http://127.0.0.1:4010`).
    #[arg(long)]
    sim: String,
    /// `floor` or `weft`.
    #[arg(long)]
    system: String,
    /// Which run (`1`, `2`, `paced`).
    #[arg(long, default_value = "1")]
    rep: String,
    /// The server's pid (for its peak RSS).
    #[arg(long)]
    pid: Option<u32>,
    /// Appends the JSON line here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct WaitArgs {
    /// weft's `/metrics` URL.
    #[arg(long)]
    metrics: String,
    /// Give up after this many seconds (exit 1).
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
}

#[derive(clap::Args)]
struct StartupArgs {
    /// The `/healthz` URL to poll.
    #[arg(long)]
    healthz: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Idle time before the idle RSS is read, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// Where the server's output goes.
    #[arg(long, default_value = "/dev/null")]
    log: PathBuf,
    /// A label for the result line.
    #[arg(long, default_value = "startup")]
    label: String,
    /// Appends the JSON line here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The server command.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(clap::Args)]
struct DrainArgs {
    /// weft's `/metrics` URL.
    #[arg(long)]
    metrics: String,
    /// Executions to wait for.
    #[arg(long, default_value_t = 100_000)]
    total: u64,
    /// Report the rate per this many executions.
    #[arg(long, default_value_t = 10_000)]
    chunk: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// The simulator's root URL, to count the messages it got.
    #[arg(long)]
    sim: Option<String>,
    /// Where the server's output goes.
    #[arg(long, default_value = "/dev/null")]
    log: PathBuf,
    /// Appends the JSON line here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A label for the result line.
    #[arg(long, default_value = "drain")]
    label: String,
    /// The server command.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(clap::Args)]
struct BlackholeArgs {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// Exit after this many seconds.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
}

#[derive(clap::Args)]
struct TableArgs {
    /// The JSON lines collected by the other commands.
    results: PathBuf,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The `p` quantile (0..=1) of sorted samples, nearest rank.
fn quantile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0 * 100.0).round() / 100.0
}

/// User + system CPU seconds of a process (from `/proc/PID/stat`, 100 ticks/s).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After `pid (comm) `: state is field 3, utime 14, stime 15 (1-based in proc(5)).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// A `/proc/PID/status` field in kB (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn emit(line: &Value, out: Option<&PathBuf>) -> Res<()> {
    let text = line.to_string();
    println!("{text}");
    if let Some(path) = out {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{text}")?;
    }
    Ok(())
}

const FIRST_NAMES: [&str; 8] = [
    "Maya", "Noah", "Ada", "Liam", "Zoe", "Omar", "Ines", "Kenji",
];
const TEXTS: [&str; 4] = [
    "Is my bike ready?",
    "Can I pick it up at 5?",
    "Thanks, see you tomorrow",
    "What time do you close today?",
];

/// A Sonar-style `new_unassigned_message` webhook. `id` is `RUN-SEQ-SENT_US`: unique, and
/// carrying the send time into the message text (the scenario puts it there).
fn webhook_body(run_id: &str, seq: u64, sent_us: u64) -> String {
    let first = FIRST_NAMES[(seq % FIRST_NAMES.len() as u64) as usize];
    let text = TEXTS[(seq % TEXTS.len() as u64) as usize];
    // 100 customers: the simulator keeps one record per phone number.
    let phone = format!("+1310555{:04}", 100 + seq % 100);
    format!(
        r#"{{"uuid":"{run_id}-{seq}","event":"new_unassigned_message","id":"{run_id}-{seq}-{sent_us}","customer":{{"phone_number":"{phone}","first_name":"{first}","last_name":"Lopez","subscribed":true,"state":"unassigned"}},"message":{{"direction":"inbound","text":"{text}","media_url":null}},"company":{{"name":"Bench Bikes"}}}}"#
    )
}

struct Tally {
    latencies_us: Vec<u64>,
    ok: u64,
    non2xx: u64,
    errors: u64,
    statuses: BTreeMap<u16, u64>,
    last_end_us: u64,
    first_error: Option<String>,
}

async fn load(args: &RunArgs) -> Res<Value> {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(10))
        .build()?;
    // `--pid NAME=PID` may repeat a NAME: the CPU of its processes is summed.
    let cpu_before: Vec<(String, u32, Option<f64>)> = args
        .pids
        .iter()
        .filter_map(|p| {
            let (name, pid) = p.split_once('=')?;
            let pid: u32 = pid.parse().ok()?;
            Some((name.to_owned(), pid, cpu_seconds(pid)))
        })
        .collect();
    let self_before = cpu_seconds(std::process::id());
    let seq = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let start_us = now_us();
    let deadline = start + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    // With a rate, connection i sends at start + (i / concurrency + k) * period.
    let period = args
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(args.concurrency as f64 / r));
    for i in 0..args.concurrency {
        let client = client.clone();
        let url = args.urls[i % args.urls.len()].clone();
        let run_id = args.run_id.clone();
        let seq = seq.clone();
        let count = args.count;
        let concurrency = args.concurrency;
        tasks.push(tokio::spawn(async move {
            let mut t = Tally {
                latencies_us: Vec::with_capacity(1 << 14),
                ok: 0,
                non2xx: 0,
                errors: 0,
                statuses: BTreeMap::new(),
                last_end_us: 0,
                first_error: None,
            };
            let mut due = period.map(|p| start + p.mul_f64(i as f64 / concurrency as f64));
            loop {
                if let (Some(at), Some(p)) = (due, period) {
                    if at >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(at.into()).await;
                    due = Some(at + p);
                }
                if Instant::now() >= deadline {
                    break;
                }
                let n = seq.fetch_add(1, Ordering::Relaxed);
                if count.is_some_and(|c| n >= c) {
                    break;
                }
                let sent_us = now_us();
                let body = webhook_body(&run_id, n, sent_us);
                let began = Instant::now();
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let outcome = match answer {
                    Ok(r) => {
                        let status = r.status();
                        // Read the whole answer: the acknowledgement is the complete response.
                        match r.bytes().await {
                            Ok(_) => Ok(status),
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                };
                let took = began.elapsed().as_micros() as u64;
                match outcome {
                    Ok(status) => {
                        *t.statuses.entry(status.as_u16()).or_default() += 1;
                        if status.is_success() {
                            t.ok += 1;
                            t.latencies_us.push(took);
                        } else {
                            t.non2xx += 1;
                        }
                    }
                    Err(e) => {
                        t.errors += 1;
                        if t.first_error.is_none() {
                            t.first_error = Some(e.to_string());
                        }
                        // Do not spin on a refused connection.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                t.last_end_us = now_us();
            }
            t
        }));
    }
    let mut all = Tally {
        latencies_us: Vec::new(),
        ok: 0,
        non2xx: 0,
        errors: 0,
        statuses: BTreeMap::new(),
        last_end_us: start_us,
        first_error: None,
    };
    for task in tasks {
        let t = task.await?;
        all.latencies_us.extend(t.latencies_us);
        all.ok += t.ok;
        all.non2xx += t.non2xx;
        all.errors += t.errors;
        for (s, n) in t.statuses {
            *all.statuses.entry(s).or_default() += n;
        }
        all.last_end_us = all.last_end_us.max(t.last_end_us);
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let end_us = all.last_end_us;
    all.latencies_us.sort_unstable();
    let l = &all.latencies_us;
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for (name, pid, before) in cpu_before {
        if let (Some(b), Some(a)) = (before, cpu_seconds(pid)) {
            *sums.entry(name).or_default() += a - b;
        }
    }
    let mut cpu = Map::new();
    for (name, s) in sums {
        cpu.insert(name, json!((s * 100.0).round() / 100.0));
    }
    if let (Some(b), Some(a)) = (self_before, cpu_seconds(std::process::id())) {
        cpu.insert("loadgen".into(), json!(((a - b) * 100.0).round() / 100.0));
    }
    let statuses: Map<String, Value> = all
        .statuses
        .iter()
        .map(|(s, n)| (s.to_string(), json!(n)))
        .collect();
    Ok(json!({
        "kind": args.kind,
        "run_id": args.run_id,
        "rate": args.rate,
        "concurrency": args.concurrency,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "start_us": start_us,
        "end_us": end_us,
        "sent": all.ok + all.non2xx + all.errors,
        "ok": all.ok,
        "non2xx": all.non2xx,
        "errors": all.errors,
        "statuses": statuses,
        "first_error": all.first_error,
        "ack_per_s": (all.ok as f64 / elapsed).round(),
        "ack_p50_ms": ms(quantile(l, 0.50)),
        "ack_p90_ms": ms(quantile(l, 0.90)),
        "ack_p99_ms": ms(quantile(l, 0.99)),
        "ack_max_ms": ms(l.last().copied().unwrap_or(0)),
        "cpu_s": cpu,
    }))
}

/// The `RUN-SEQ-SENT_US` reference at the end of a message text (`... (ref ID)`).
fn parse_ref(text: &str) -> Option<(&str, u64, u64)> {
    let start = text.rfind("(ref ")? + 5;
    let id = text[start..].strip_suffix(')')?;
    let mut parts = id.rsplitn(3, '-');
    let sent_us = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let run = parts.next()?;
    Some((run, seq, sent_us))
}

async fn sim_messages(sim: &str) -> Res<Vec<Value>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let state: Value = client
        .get(format!("{}/_sim/state", sim.trim_end_matches('/')))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    match state.get("messages") {
        Some(Value::Array(m)) => Ok(m.clone()),
        _ => Err("the simulator's state has no `messages` array".into()),
    }
}

/// The simulator keeps the newest this many messages.
const SIM_MAX_MESSAGES: usize = 100_000;

/// Webhook-to-Sonar latency: the webhook's `id` carries the loadgen's send time (µs, wall
/// clock); the scenario (and the floor) copy it into the message text; the simulator stamps
/// each message with `created_at` (wall clock, milliseconds, truncated) when it accepts the
/// `POST /v1/messages`. Same machine, same clock, so latency = created_at + 0.5 ms − sent
/// (the half millisecond un-biases the truncation; resolution ±0.5 ms). Completed
/// executions per second = messages of the run created inside the load window / window.
async fn report(args: &ReportArgs) -> Res<Value> {
    let run: Value = serde_json::from_str(&std::fs::read_to_string(&args.run_json)?)?;
    let run_id = run["run_id"].as_str().unwrap_or_default().to_owned();
    let start_us = run["start_us"].as_u64().unwrap_or(0);
    let end_us = run["end_us"].as_u64().unwrap_or(0);
    let window_s = (end_us.saturating_sub(start_us)) as f64 / 1e6;
    let ok = run["ok"].as_u64().unwrap_or(0);
    let messages = sim_messages(&args.sim).await?;
    // `run.sh` sends at most SIM_MAX_MESSAGES webhooks per run, so none is dropped.
    let capped = messages.len() >= SIM_MAX_MESSAGES && ok > SIM_MAX_MESSAGES as u64;
    let mut latencies = Vec::new();
    let mut in_window = 0u64;
    let mut seen = std::collections::HashSet::new();
    let mut duplicates = 0u64;
    let mut last_created_us = 0u64;
    for m in &messages {
        let Some((run, seq, sent_us)) = m["text"].as_str().and_then(parse_ref) else {
            continue;
        };
        if run != run_id {
            continue;
        }
        if !seen.insert(seq) {
            duplicates += 1;
            continue;
        }
        let Some(created) = m["created_at"]
            .as_str()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        else {
            continue;
        };
        let created_us = created.timestamp_micros().max(0) as u64 + 500;
        last_created_us = last_created_us.max(created_us);
        if created_us <= end_us {
            in_window += 1;
        }
        latencies.push(created_us.saturating_sub(sent_us));
    }
    latencies.sort_unstable();
    let delivered = seen.len() as u64;
    let rss_peak = args.pid.and_then(|p| status_kb(p, "VmHWM"));
    let rss_now = args.pid.and_then(|p| status_kb(p, "VmRSS"));
    let mut line = json!({
        "kind": "load",
        "system": args.system,
        "rep": args.rep,
        "window_s": (window_s * 1000.0).round() / 1000.0,
        "completed_in_window": in_window,
        "completed_per_s": if window_s > 0.0 { (in_window as f64 / window_s).round() } else { 0.0 },
        "delivered": delivered,
        "lost": ok.saturating_sub(delivered),
        "duplicates": duplicates,
        "backlog_drained_s": if last_created_us > end_us { ((last_created_us - end_us) as f64 / 1e4).round() / 100.0 } else { 0.0 },
        "sim_capped": capped,
        "e2e_p50_ms": ms(quantile(&latencies, 0.50)),
        "e2e_p90_ms": ms(quantile(&latencies, 0.90)),
        "e2e_p99_ms": ms(quantile(&latencies, 0.99)),
        "e2e_max_ms": ms(latencies.last().copied().unwrap_or(0)),
        "peak_rss_kb": rss_peak,
        "rss_after_kb": rss_now,
    });
    if let (Value::Object(l), Value::Object(r)) = (&mut line, run) {
        for (k, v) in r {
            if k != "kind" {
                l.entry(k).or_insert(v);
            }
        }
    }
    Ok(line)
}

/// Reads weft's `/metrics`: (executions finished, queue depth).
async fn weft_metrics(client: &reqwest::Client, url: &str) -> Option<(u64, u64)> {
    let text = client.get(url).send().await.ok()?.text().await.ok()?;
    let mut executions = 0;
    let mut depth = None;
    for line in text.lines() {
        if line.starts_with("weft_executions_total{") {
            executions += line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("weft_queue_depth ") {
            depth = v.trim().parse().ok();
        }
    }
    Some((executions, depth?))
}

async fn wait_idle(args: &WaitArgs) -> Res<Value> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let start = Instant::now();
    loop {
        if let Some((_, 0)) = weft_metrics(&client, &args.metrics).await {
            return Ok(json!({ "idle_after_s": start.elapsed().as_secs_f64() }));
        }
        if start.elapsed().as_secs_f64() > args.timeout {
            return Err(format!("the queue is not empty after {} s", args.timeout).into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spawn(command: &[String], log: &PathBuf) -> Res<std::process::Child> {
    let (program, rest) = command.split_first().ok_or("no command given")?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    Ok(Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()?)
}

/// SIGTERM (graceful), then SIGKILL after 15 s.
fn stop(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

async fn startup(args: &StartupArgs) -> Res<Value> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let begin = Instant::now();
    let mut child = spawn(&args.command, &args.log)?;
    let pid = child.id();
    let result = loop {
        if let Ok(r) = client.get(&args.healthz).send().await {
            if r.status().is_success() {
                break Ok(begin.elapsed());
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("the server exited early: {status}"));
        }
        if begin.elapsed().as_secs_f64() > args.timeout {
            break Err(format!("no /healthz 200 within {} s", args.timeout));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let took = match result {
        Ok(t) => t,
        Err(e) => {
            stop(&mut child);
            return Err(e.into());
        }
    };
    let rss_ready = status_kb(pid, "VmRSS");
    tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
    let rss_idle = status_kb(pid, "VmRSS");
    let hwm = status_kb(pid, "VmHWM");
    stop(&mut child);
    Ok(json!({
        "kind": "startup",
        "label": args.label,
        "startup_ms": (took.as_secs_f64() * 1e5).round() / 100.0,
        "rss_ready_kb": rss_ready,
        "rss_idle_kb": rss_idle,
        "peak_rss_kb": hwm,
    }))
}

async fn drain(args: &DrainArgs) -> Res<Value> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let begin = Instant::now();
    let mut child = spawn(&args.command, &args.log)?;
    let pid = child.id();
    let mut ready_s = None;
    let mut depth_at_start = None;
    let mut crossings: Vec<f64> = Vec::new();
    let mut next = args.chunk;
    let (mut prev_t, mut prev_n) = (0.0, 0u64);
    let mut last = (0u64, 0u64);
    let outcome: Result<(), String> = async {
        loop {
            let t = begin.elapsed().as_secs_f64();
            if t > args.timeout {
                return Err(format!(
                    "drain not finished after {} s ({} executions)",
                    args.timeout, last.0
                ));
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("weft exited during the drain: {status}"));
            }
            if let Some((n, depth)) = weft_metrics(&client, &args.metrics).await {
                if ready_s.is_none() {
                    ready_s = Some(t);
                    depth_at_start = Some(depth);
                }
                last = (n, depth);
                // Interpolate the time each chunk boundary was crossed.
                while n >= next && next <= args.total {
                    let frac = if n > prev_n {
                        (next - prev_n) as f64 / (n - prev_n) as f64
                    } else {
                        1.0
                    };
                    crossings.push(prev_t + frac * (t - prev_t));
                    next += args.chunk;
                }
                prev_t = t;
                prev_n = n;
                if n >= args.total {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    .await;
    let peak = status_kb(pid, "VmHWM");
    let cpu = cpu_seconds(pid);
    stop(&mut child);
    outcome?;
    let ready = ready_s.unwrap_or(0.0);
    // Timed from the spawn: the first chunk includes the start-up (`ready_s`).
    let mut chunks = Vec::new();
    let mut from = 0.0;
    for (i, t) in crossings.iter().enumerate() {
        let secs = t - from;
        chunks.push(json!({
            "upto": (i as u64 + 1) * args.chunk,
            "seconds": (secs * 1000.0).round() / 1000.0,
            "per_s": if secs > 0.0 { (args.chunk as f64 / secs).round() } else { 0.0 },
        }));
        from = *t;
    }
    let total_s = crossings.last().copied().unwrap_or(0.0);
    let delivered = match &args.sim {
        Some(sim) => Some(sim_messages(sim).await?.len()),
        None => None,
    };
    Ok(json!({
        "kind": "drain",
        "label": args.label,
        "total": args.total,
        "queue_at_start": depth_at_start,
        "ready_s": (ready * 1000.0).round() / 1000.0,
        "drain_s": (total_s * 1000.0).round() / 1000.0,
        "per_s": if total_s > 0.0 { (args.total as f64 / total_s).round() } else { 0.0 },
        "chunks": chunks,
        "sim_messages": delivered,
        "peak_rss_kb": peak,
        "cpu_s": cpu,
    }))
}

async fn blackhole(args: &BlackholeArgs) -> Res<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("blackhole listening on {}", listener.local_addr()?);
    let mut held = Vec::new();
    let until = tokio::time::sleep(Duration::from_secs(args.seconds));
    tokio::pin!(until);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((socket, _)) = accepted {
                    held.push(socket);
                }
            }
            () = &mut until => return Ok(()),
        }
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn mb(kb: &Value) -> String {
    kb.as_f64()
        .map_or("–".into(), |k| format!("{:.1} MB", k / 1024.0))
}

fn table(args: &TableArgs) -> Res<()> {
    let text = std::fs::read_to_string(&args.results)?;
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let loads: Vec<&Value> = lines
        .iter()
        .filter(|l| l["kind"] == "load" && l["rate"].is_null())
        .collect();
    let paced: Vec<&Value> = lines
        .iter()
        .filter(|l| l["kind"] == "load" && !l["rate"].is_null())
        .collect();
    println!("| system | run | acked webhooks/s | completed executions/s | ack p50 | ack p99 | webhook→Sonar p50 | webhook→Sonar p99 | errors (non-2xx + failed) | lost | peak RSS |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for l in &loads {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {:.1} ms | {:.1} ms | {} | {} | {} |",
            l["system"].as_str().unwrap_or("?"),
            l["rep"].as_str().unwrap_or("?"),
            f(&l["ack_per_s"]),
            f(&l["completed_per_s"]),
            f(&l["ack_p50_ms"]),
            f(&l["ack_p99_ms"]),
            f(&l["e2e_p50_ms"]),
            f(&l["e2e_p99_ms"]),
            l["non2xx"].as_u64().unwrap_or(0) + l["errors"].as_u64().unwrap_or(0),
            l["lost"],
            mb(&l["peak_rss_kb"]),
        );
    }
    let mean = |system: &str, key: &str| -> f64 {
        let v: Vec<f64> = loads
            .iter()
            .filter(|l| l["system"] == system)
            .map(|l| f(&l[key]))
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    println!();
    println!("| ratio weft/floor (mean of runs) | value |");
    println!("|---|---|");
    let floor_rps = mean("floor", "ack_per_s");
    println!(
        "| weft completed executions/s ÷ floor requests/s | {:.2} (target ≥ 0.60) |",
        mean("weft", "completed_per_s") / floor_rps
    );
    println!(
        "| weft acked webhooks/s ÷ floor requests/s | {:.2} |",
        mean("weft", "ack_per_s") / floor_rps
    );
    for (label, key) in [
        ("ack p50", "ack_p50_ms"),
        ("ack p99", "ack_p99_ms"),
        ("webhook→Sonar p50", "e2e_p50_ms"),
        ("webhook→Sonar p99", "e2e_p99_ms"),
        ("peak RSS", "peak_rss_kb"),
    ] {
        println!(
            "| {label} | {:.2}× |",
            mean("weft", key) / mean("floor", key)
        );
    }
    let cpu_per_req = |system: &str, proc_name: &str| -> f64 {
        let v: Vec<f64> = loads
            .iter()
            .filter(|l| l["system"] == system)
            .filter_map(|l| {
                let cpu = l["cpu_s"][proc_name].as_f64()?;
                let n = l["ok"].as_f64()?;
                Some(cpu / n * 1e6)
            })
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    println!();
    let mut systems: Vec<&str> = Vec::new();
    for l in &loads {
        let s = l["system"].as_str().unwrap_or("?");
        if !systems.contains(&s) {
            systems.push(s);
        }
    }
    let with_pg = systems.iter().any(|s| s.starts_with("weft-pg"));
    println!("| CPU per acknowledged webhook (µs, during the load window) | server (all nodes) | simulator | loadgen |{}", if with_pg { " PostgreSQL |" } else { "" });
    println!("|---|---|---|---|{}", if with_pg { "---|" } else { "" });
    for system in &systems {
        let pg = if system.starts_with("weft-pg") {
            format!(" {:.0} |", cpu_per_req(system, "pg"))
        } else if with_pg {
            " – |".to_owned()
        } else {
            String::new()
        };
        println!(
            "| {system} | {:.0} | {:.0} | {:.0} |{pg}",
            cpu_per_req(system, "server"),
            cpu_per_req(system, "sim"),
            cpu_per_req(system, "loadgen"),
        );
    }
    if with_pg {
        let sqlite_done = mean("weft", "completed_per_s");
        println!();
        println!("| PostgreSQL ÷ SQLite (mean of runs, same run) | completed executions/s | acked webhooks/s | ack p99 |");
        println!("|---|---|---|---|");
        for system in systems.iter().filter(|s| s.starts_with("weft-pg")) {
            println!(
                "| {system} | {:.2} (target for pg1 ≥ 0.50) | {:.2} | {:.2} ms (target ≤ 20 ms) |",
                mean(system, "completed_per_s") / sqlite_done,
                mean(system, "ack_per_s") / mean("weft", "ack_per_s"),
                mean(system, "ack_p99_ms"),
            );
        }
    }
    if !paced.is_empty() {
        println!();
        println!("| paced (below saturation) | offered webhooks/s | acked/s | completed executions/s | ack p50 | ack p99 | webhook→Sonar p50 | webhook→Sonar p99 | errors | lost |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for l in &paced {
            println!(
                "| {} | {:.0} | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {:.1} ms | {:.1} ms | {} | {} |",
                l["system"].as_str().unwrap_or("?"),
                f(&l["rate"]),
                f(&l["ack_per_s"]),
                f(&l["completed_per_s"]),
                f(&l["ack_p50_ms"]),
                f(&l["ack_p99_ms"]),
                f(&l["e2e_p50_ms"]),
                f(&l["e2e_p99_ms"]),
                l["non2xx"].as_u64().unwrap_or(0) + l["errors"].as_u64().unwrap_or(0),
                l["lost"],
            );
        }
    }
    println!();
    for l in lines.iter().filter(|l| l["kind"] == "startup") {
        println!(
            "- {}: start-up {:.1} ms to /healthz 200; RSS at ready {}, idle after 1 s {}",
            l["label"].as_str().unwrap_or("?"),
            f(&l["startup_ms"]),
            mb(&l["rss_ready_kb"]),
            mb(&l["rss_idle_kb"]),
        );
    }
    for l in lines.iter().filter(|l| l["kind"] == "fill") {
        println!(
            "- {} (intake only, 1 stalled worker): {} webhooks acked at {:.0}/s, ack p50 {:.2} ms, p99 {:.2} ms, {} errors; weft CPU {:.0} µs per webhook",
            l["run_id"].as_str().unwrap_or("fill"),
            l["ok"],
            f(&l["ack_per_s"]),
            f(&l["ack_p50_ms"]),
            f(&l["ack_p99_ms"]),
            l["non2xx"].as_u64().unwrap_or(0) + l["errors"].as_u64().unwrap_or(0),
            f(&l["cpu_s"]["server"]) / f(&l["ok"]) * 1e6,
        );
    }
    for l in lines.iter().filter(|l| l["kind"] == "drain") {
        let chunks: Vec<String> = l["chunks"]
            .as_array()
            .map(|c| c.iter().map(|c| format!("{:.0}", f(&c["per_s"]))).collect())
            .unwrap_or_default();
        println!(
            "- {}: {} queued webhooks, /metrics answered {:.2} s after spawn, all executed {:.1} s after spawn = {:.0} executions/s (steady state under load: {:.0}/s); per {}: {}; simulator got {}; peak RSS {}; CPU {:.0} µs per execution",
            l["label"].as_str().unwrap_or("drain"),
            l["total"],
            f(&l["ready_s"]),
            f(&l["drain_s"]),
            f(&l["per_s"]),
            mean("weft", "completed_per_s"),
            l["chunks"][0]["upto"],
            chunks.join(", "),
            l["sim_messages"],
            mb(&l["peak_rss_kb"]),
            f(&l["cpu_s"]) / f(&l["total"]) * 1e6,
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cmd = <Cmd as clap::Parser>::parse();
    let threads = match &cmd {
        Cmd::Run(a) => a.threads.max(1),
        _ => 1,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result: Res<()> = rt.block_on(async {
        match &cmd {
            Cmd::Run(a) => {
                let v = load(a).await?;
                if let Some(path) = &a.out {
                    std::fs::write(path, v.to_string())?;
                }
                println!("{v}");
                Ok(())
            }
            Cmd::Report(a) => emit(&report(a).await?, a.out.as_ref()),
            Cmd::WaitIdle(a) => emit(&wait_idle(a).await?, None),
            Cmd::Startup(a) => emit(&startup(a).await?, a.out.as_ref()),
            Cmd::Drain(a) => emit(&drain(a).await?, a.out.as_ref()),
            Cmd::Blackhole(a) => blackhole(a).await,
            Cmd::Table(a) => table(a),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn refs_round_trip_through_the_text() {
        let body: Value =
            serde_json::from_str(&webhook_body("w1", 42, 1_700_000_000_123_456)).unwrap();
        let text = format!(
            "Hi {}, re: {} (ref {})",
            body["customer"]["first_name"].as_str().unwrap(),
            body["message"]["text"].as_str().unwrap(),
            body["id"].as_str().unwrap()
        );
        assert_eq!(parse_ref(&text), Some(("w1", 42, 1_700_000_000_123_456)));
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&[], 0.99), 0);
    }
}
