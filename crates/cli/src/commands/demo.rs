//! `weft demo`: serve `scenarios/` against the embedded Sonar simulator, drive a short
//! story through it (a new customer texts in, a message is tagged, an agent takes the
//! conversation, the customer texts again), wait for the executions and print what ran
//! and what Sonar received.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use serde_json::{json, Value};
use weft_runtime::store::{ExecutionFilter, Store};
use weft_runtime::{RunningServer, ServeConfig, Server};

use super::{CliError, CmdResult};
use crate::Outcome;

/// Arguments of `weft demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder of scenario files.
    #[arg(default_value = "scenarios")]
    dir: PathBuf,
    /// Give up waiting for the executions after this many seconds.
    #[arg(long, default_value_t = 45)]
    timeout: u64,
}

const CUSTOMER: &str = "+13105550123";
const AGENT: &str = "alex@acme.example";

struct Story {
    http: reqwest::Client,
    sim_root: String,
}

impl Story {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(format!("{}{path}", self.sim_root))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach the simulator at {path}"))?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(anyhow!("simulator answered {status} to {path}: {value}"));
        }
        Ok(value)
    }

    async fn state(&self) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(format!("{}/_sim/state", self.sim_root))
            .send()
            .await?;
        Ok(resp.json().await?)
    }

    /// Waits until the simulator has no webhook delivery pending and weft's queue is empty,
    /// twice in a row.
    async fn settle(&self, server: &RunningServer, deadline: Instant) -> anyhow::Result<()> {
        let mut quiet = 0;
        while quiet < 2 {
            if Instant::now() > deadline {
                return Err(anyhow!("the executions did not finish in time"));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
            let state = self.state().await?;
            let pending = state["deliveries"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x["status"] == "pending"));
            let idle = server.wait_idle(Duration::from_millis(10)).await;
            quiet = if !pending && idle { quiet + 1 } else { 0 };
        }
        Ok(())
    }
}

/// Runs `weft demo`.
pub async fn run(args: Args) -> CmdResult {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout);
    let sim = super::sim::start_embedded().await?;
    let db = std::env::temp_dir().join(format!("weft-demo-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let mut config = ServeConfig::new(&args.dir);
    config.listen = "127.0.0.1:0"
        .parse()
        .map_err(|e: std::net::AddrParseError| CliError::Failed(e.into()))?;
    config.db = weft_runtime::store::Backend::Sqlite(db.clone());
    config.advertise_listen_addr = true;
    config.workers = 8;
    super::serve::sim_overrides(&mut config, sim.base_url());
    let registry = crate::registry::registry();
    let server = match Server::start(config, &registry).await {
        Ok(s) => s,
        Err(e) => {
            super::serve::report(&e);
            return Ok(Outcome::Failed);
        }
    };
    outln!("weft demo");
    outln!(
        "  weft serving `{}` on {}",
        args.dir.display(),
        server.url()
    );
    outln!("  Sonar simulator on {}\n", sim.base_url());

    let story = Story {
        http: reqwest::Client::new(),
        sim_root: sim.root_url(),
    };
    let outcome = drive(&story, &server, &args.dir, deadline).await;
    let store = server.store();
    let summary = summarize(&story, store.as_ref()).await;
    server.shutdown().await;
    sim.shutdown().await;
    let _ = std::fs::remove_file(&db);
    let _ = std::fs::remove_file(db.with_extension("db-wal"));
    let _ = std::fs::remove_file(db.with_extension("db-shm"));
    match (outcome, summary) {
        (Ok(()), Ok(all_ok)) => {
            outln!("\nDone in {:.1} s.", started.elapsed().as_secs_f64());
            Ok(if all_ok {
                Outcome::Success
            } else {
                Outcome::Failed
            })
        }
        (Err(e), _) | (_, Err(e)) => Err(CliError::Failed(e)),
    }
}

async fn drive(
    story: &Story,
    server: &RunningServer,
    dir: &std::path::Path,
    deadline: Instant,
) -> anyhow::Result<()> {
    story
        .post(
            "/_sim/seed",
            json!({
                "users": [
                    {"email": AGENT, "first_name": "Alex", "last_name": "Agent"},
                    {"email": "dana@harborbikes.example", "first_name": "Dana", "last_name": "Reyes"}
                ],
                "tags": ["auto-reply", "follow-up", "service", "vip"],
                "campaigns": [
                    {"id": "17", "slug": "spring-tuneup", "text": "{{first_name}}, spring tune-ups are 15% off this week."},
                    {"id": "18", "slug": "tuneup-reminder", "text": "Reminder: your tune-up is today."}
                ]
            }),
        )
        .await?;
    story.settle(server, deadline).await?;

    outln!("1. A new customer texts in: {CUSTOMER} says \"Hi, do you ship to Canada?\"");
    story
        .post(
            "/_sim/inbound",
            json!({"from": CUSTOMER, "text": "Hi, do you ship to Canada?"}),
        )
        .await?;
    story.settle(server, deadline).await?;

    let state = story.state().await?;
    let inbound = state["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|x| x["direction"] == "inbound").cloned())
        .ok_or_else(|| anyhow!("the simulator recorded no inbound message"))?;
    let external_id = inbound["external_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    outln!("2. An agent tags that message `service` in the Sonar inbox, then removes the tag when done");
    story
        .post(
            "/_sim/message_tags",
            json!({"external_id": external_id, "add": ["service"]}),
        )
        .await?;
    story.settle(server, deadline).await?;
    story
        .post(
            "/_sim/message_tags",
            json!({"external_id": external_id, "remove": ["service"]}),
        )
        .await?;
    story.settle(server, deadline).await?;

    outln!("3. Agent {AGENT} takes the conversation, and the customer texts again");
    story
        .post(
            "/_sim/assign",
            json!({"phone_number": CUSTOMER, "user_email": AGENT}),
        )
        .await?;
    story
        .post(
            "/_sim/inbound",
            json!({"from": CUSTOMER, "text": "Great, thanks!"}),
        )
        .await?;
    story.settle(server, deadline).await?;

    outln!("4. A signup form posts to the `sonar-campaigns` hook: a campaign goes out");
    let tokens = server.hook_tokens();
    let Some((_, token)) = tokens.iter().find(|(s, _)| s == "sonar-campaigns") else {
        outln!(
            "   (no `sonar-campaigns` scenario in {}; skipped)",
            dir.display()
        );
        return Ok(());
    };
    let input = std::fs::read_to_string(dir.join("sonar-campaigns.input.json"))
        .context("cannot read sonar-campaigns.input.json")?;
    let resp = story
        .http
        .post(format!("{}/hooks/{token}", server.url()))
        .header("content-type", "application/json")
        .body(input)
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(anyhow!("the hook answered {}", resp.status()));
    }
    story.settle(server, deadline).await?;
    Ok(())
}

/// Prints the executions and Sonar's state; returns whether every execution succeeded.
async fn summarize(story: &Story, store: &dyn Store) -> anyhow::Result<bool> {
    let mut list = store
        .list_executions(ExecutionFilter {
            limit: 1000,
            ..Default::default()
        })
        .await?;
    list.reverse();
    outln!("\nExecutions ({}):", list.len());
    let mut all_ok = !list.is_empty();
    let mut per_scenario: BTreeMap<String, usize> = BTreeMap::new();
    for e in &list {
        *per_scenario.entry(e.scenario.clone()).or_default() += 1;
        let Some(record) = store.execution(&e.id).await? else {
            continue;
        };
        let event = record.trigger()["action"].as_str().unwrap_or("webhook");
        outln!(
            "  {} on `{}` → {} ({} operations)",
            record.scenario,
            event,
            record.status,
            record.operations
        );
        for s in &record.steps {
            match &s.error {
                None => outln!("      ✓ {} {}", s.module_id, s.module),
                Some(err) => outln!(
                    "      ✗ {} {}: {}: {}",
                    s.module_id,
                    s.module,
                    err.kind,
                    err.message
                ),
            }
        }
        if !matches!(record.status.name(), "success" | "warning") {
            all_ok = false;
        }
    }
    let state = story.state().await?;
    outln!("\nWhat Sonar received:");
    for m in state["messages"].as_array().into_iter().flatten() {
        if m["direction"] == "outbound" {
            let tags: Vec<&str> = m["tag_names"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            outln!(
                "  SMS to {}: \"{}\"{}",
                m["to"]
                    .as_str()
                    .or(m["phone_number"].as_str())
                    .unwrap_or("?"),
                m["text"].as_str().unwrap_or(""),
                if tags.is_empty() {
                    String::new()
                } else {
                    format!(" [tags: {}]", tags.join(", "))
                }
            );
        }
    }
    for c in state["campaign_sends"].as_array().into_iter().flatten() {
        outln!(
            "  campaign `{}` to {} ({})",
            c["campaign_id"]
                .as_str()
                .or(c["slug"].as_str())
                .unwrap_or("?"),
            c["to"].as_str().unwrap_or("?"),
            c["status"].as_str().unwrap_or("?")
        );
    }
    for c in state["customers"].as_array().into_iter().flatten() {
        outln!(
            "  customer {}: state {}, properties {}",
            c["phone_number"].as_str().unwrap_or("?"),
            c["state"].as_str().unwrap_or("?"),
            c["properties"]
        );
    }
    let deliveries = state["deliveries"].as_array().map_or(0, Vec::len);
    outln!("  {deliveries} webhook deliveries to weft");
    if per_scenario.is_empty() {
        outln!("\nNo execution ran: does `scenarios/` hold scenarios with Sonar triggers?");
    }
    Ok(all_ok)
}
