//! End-to-end tests of the `weft` binary.
//!
//! - One-shot commands: `validate` (every example; diagnostics with file:line:col, module and
//!   fix), `run` (the order-summary record, `--sonar-sim`), usage errors (exit 2), `graph`,
//!   `modules` (`--markdown` is `docs/modules.md`, `--json` lists every module).
//! - `weft serve` against a Sonar simulator started in this process: registration of every
//!   Sonar trigger, events through the simulator's control API, stable hook URLs across
//!   restarts, `hooks list`, `deactivate`, refused requests (404/415/400/413) queue nothing,
//!   concurrent webhooks, SIGKILL and SIGTERM durability, the grace period, `break` retries,
//!   duplicate deliveries, `webhook.respond`, `sequential`, schedules, retention, and
//!   refusing to start with an invalid scenario.
//! - `weft demo`.
//!
//! Everything runs on loopback: example scenarios are copied with their Sonar connection
//! pointed at `${SONAR_BASE_URL}`, and every child gets a dead proxy for any other host.
//! Helpers live in `support/`, scenario fixtures in `fixtures/`.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

// ---------------------------------------------------------------------------------------
// One-shot commands
// ---------------------------------------------------------------------------------------

#[test]
fn validate_accepts_every_example_scenario() {
    let names = example_names();
    assert!(names.len() >= 10, "examples: {names:?}");
    for name in &names {
        assert!(
            repo(&format!("scenarios/{name}.input.json")).is_file(),
            "scenarios/{name}.yaml has no {name}.input.json"
        );
    }
    let files: Vec<String> = names
        .iter()
        .map(|n| format!("scenarios/{n}.yaml"))
        .collect();
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = weft_sync(&args, &[("SONAR_TOKEN", SIM_TOKEN)]);
    out.expect_code(0);
    for file in &files {
        assert!(
            out.stdout.contains(&format!("ok: {file} (")),
            "no `ok` line for {file}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn validate_reports_file_line_column_module_and_a_fix() {
    let broken = "tests/fixtures/invalid/unknown-module.yaml";
    let out = weft_sync(&["validate", broken], &[]);
    out.expect_code(1);
    let err = &out.stderr;
    assert!(err.contains("unknown module `flow.set_variabels`"), "{err}");
    assert!(
        err.contains(&format!("{broken}:10:13")),
        "no file:line:col in\n{err}"
    );
    assert!(err.contains("module `2`"), "no module id in\n{err}");
    assert!(
        err.contains("help: did you mean `flow.set_variables`?"),
        "no help line in\n{err}"
    );

    // A valid and a broken file: both checked, exit 1.
    let out = weft_sync(&["validate", "scenarios/order-summary.yaml", broken], &[]);
    out.expect_code(1);
    assert!(
        out.stdout.contains("ok: scenarios/order-summary.yaml"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("1 of 2 scenario(s) failed validation"),
        "{}",
        out.stderr
    );

    // A missing environment variable names it, at its line.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("needs-env.yaml");
    std::fs::write(
        &file,
        "name: needs-env\nconnections:\n  sonar:\n    app: sonar\n    token: ${WEFT_TEST_NEVER_SET}\n    base_url: http://127.0.0.1:9/api\nflow:\n  - { id: 1, module: webhook.custom, params: { name: x } }\n",
    )
    .unwrap();
    let out = weft_sync(&["validate", file.to_str().unwrap()], &[]);
    out.expect_code(1);
    assert!(
        out.stderr
            .contains("environment variable `WEFT_TEST_NEVER_SET` is not set"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("{}:5:12", file.display())),
        "{}",
        out.stderr
    );
}

#[test]
fn run_order_summary_prints_the_execution_record() {
    let out = weft_sync(
        &[
            "run",
            "scenarios/order-summary.yaml",
            "--input",
            "scenarios/order-summary.input.json",
            "--json",
        ],
        &[],
    );
    out.expect_code(0);
    let record = out.json();
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("scenarios/order-summary.input.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["scenario"], "order-summary");
    assert_eq!(record["status"], "success", "{record:#}");
    assert_eq!(record["trigger"], input);
    assert!(record["id"].as_str().is_some_and(|id| !id.is_empty()));
    let steps = record["steps"].as_array().unwrap();
    let modules: Vec<(u64, &str)> = steps
        .iter()
        .map(|s| {
            (
                s["module_id"].as_u64().unwrap(),
                s["module"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        modules,
        [
            (1, "webhook.custom"),
            (2, "flow.iterator"),
            (3, "flow.set_variables"),
            (3, "flow.set_variables"),
            (4, "flow.array_aggregator"),
            (5, "flow.iterator"),
            (6, "flow.text_aggregator"),
            (8, "flow.set_variables"),
        ],
        "one step per operation, depth first; the out-of-stock line is filtered out and the \
         big-order route runs, not the fallback"
    );
    assert_eq!(record["operations"], 8);
    assert!(steps.iter().all(|s| s["error"].is_null()), "{record:#}");
    assert_eq!(steps[2]["output"], json!([{"sku": "TEA-01", "amount": 9}]));
    assert_eq!(steps[3]["output"], json!([{"sku": "POT-03", "amount": 30}]));
    assert_eq!(
        steps[4]["output"],
        json!([{"array": [{"sku": "TEA-01", "amount": 9}, {"sku": "POT-03", "amount": 30}]}])
    );
    assert_eq!(
        steps[7]["output"][0]["message"],
        "Big order A-1001 for Ada: TEA-01 (9,00), POT-03 (30,00)"
    );

    // Without --json: the human summary.
    let out = weft_sync(
        &[
            "run",
            "scenarios/order-summary.yaml",
            "--input",
            "scenarios/order-summary.input.json",
        ],
        &[],
    );
    out.expect_code(0);
    assert!(out.stdout.contains("order-summary"), "{}", out.stdout);
    assert!(out.stdout.contains("success"), "{}", out.stdout);
    assert!(
        out.stdout.contains("flow.text_aggregator"),
        "{}",
        out.stdout
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = weft_sync(
        &[
            "run",
            "scenarios/order-summary.yaml",
            "--input",
            "tests/fixtures/does-not-exist.json",
        ],
        &[],
    );
    out.expect_code(2);
    assert!(out.stderr.contains("does-not-exist.json"), "{}", out.stderr);

    let tmp = tempfile::tempdir().unwrap();
    let not_json = tmp.path().join("input.json");
    std::fs::write(&not_json, "{ not json").unwrap();
    let out = weft_sync(
        &[
            "run",
            "scenarios/order-summary.yaml",
            "--input",
            not_json.to_str().unwrap(),
        ],
        &[],
    );
    out.expect_code(2);
    assert!(out.stderr.contains("not valid JSON"), "{}", out.stderr);

    let out = weft_sync(&["frobnicate"], &[]);
    out.expect_code(2);
    assert!(out.stderr.contains("frobnicate"), "{}", out.stderr);

    weft_sync(&[], &[]).expect_code(2);
    weft_sync(&["run", "scenarios/order-summary.yaml"], &[]).expect_code(2);
    weft_sync(
        &["graph", "scenarios/order-summary.yaml", "--format", "png"],
        &[],
    )
    .expect_code(2);

    let missing_db = tmp.path().join("none.db");
    let out = weft_sync(
        &["executions", "list", "--db", missing_db.to_str().unwrap()],
        &[],
    );
    out.expect_code(2);
    assert!(
        !missing_db.exists(),
        "a missing database must not be created"
    );
}

#[test]
fn graph_draws_dot_and_mermaid() {
    let out = weft_sync(
        &["graph", "scenarios/order-summary.yaml", "--format", "dot"],
        &[],
    );
    out.expect_code(0);
    let dot = &out.stdout;
    assert!(dot.trim_start().starts_with("digraph"), "{dot}");
    assert!(dot.trim_end().ends_with('}'), "{dot}");
    for module in [
        "webhook.custom",
        "flow.iterator",
        "flow.router",
        "flow.text_aggregator",
    ] {
        assert!(dot.contains(module), "{module} missing in\n{dot}");
    }
    assert!(dot.contains("->"), "{dot}");

    let out = weft_sync(
        &[
            "graph",
            "scenarios/order-summary.yaml",
            "--format",
            "mermaid",
        ],
        &[],
    );
    out.expect_code(0);
    let mermaid = &out.stdout;
    assert!(mermaid.trim_start().starts_with("flowchart"), "{mermaid}");
    assert!(
        mermaid.contains("-->") || mermaid.contains("-.->"),
        "{mermaid}"
    );
    assert!(mermaid.contains("flow.array_aggregator"), "{mermaid}");
    // Mermaid is the default.
    let default = weft_sync(&["graph", "scenarios/order-summary.yaml"], &[]);
    default.expect_code(0);
    assert_eq!(default.stdout, out.stdout);

    // A broken file: exit 1 with the diagnostic.
    let out = weft_sync(
        &["graph", "tests/fixtures/invalid/unknown-module.yaml"],
        &[],
    );
    out.expect_code(1);
    assert!(out.stderr.contains("unknown module"), "{}", out.stderr);
}

#[test]
fn modules_markdown_is_docs_modules_md() {
    let out = weft_sync(&["modules", "--markdown"], &[]);
    out.expect_code(0);
    let docs = std::fs::read_to_string(repo("docs/modules.md")).unwrap();
    assert!(
        out.stdout == docs,
        "docs/modules.md is stale: run `cargo run -- modules --markdown > docs/modules.md`"
    );
}

#[test]
fn modules_json_lists_every_module() {
    let out = weft_sync(&["modules", "--json"], &[]);
    out.expect_code(0);
    let v = out.json();
    let modules = v["modules"].as_array().unwrap();
    let ids: BTreeSet<String> = modules
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), modules.len(), "duplicate module ids");

    // The same set as the Markdown reference's headings ("### `id` — label").
    let markdown = weft_sync(&["modules", "--markdown"], &[]).stdout;
    let documented: BTreeSet<String> = markdown
        .lines()
        .filter_map(|l| l.strip_prefix("### `"))
        .filter_map(|l| l.split_once("` — "))
        .map(|(id, _)| id.to_owned())
        .collect();
    assert_eq!(ids, documented);

    // And the same as the plain listing.
    let plain = weft_sync(&["modules"], &[]).stdout;
    let listed: BTreeSet<String> = plain
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert_eq!(ids, listed);

    for id in [
        "webhook.custom",
        "webhook.respond",
        "schedule",
        "http.request",
        "flow.router",
        "flow.iterator",
        "flow.array_aggregator",
        "flow.text_aggregator",
        "flow.set_variables",
        "flow.sleep",
        "sonar.send_message",
        "sonar.watch_new_customer",
        "sonar.watch_new_unassigned_message",
        "sonar.watch_new_assigned_message",
        "sonar.watch_new_outbound_message",
        "sonar.watch_message_tag_added",
        "sonar.watch_message_tags_removed",
        "sonar.watch_customer_state_changed",
        "sonar.create_update_customer",
        "sonar.send_campaign",
        "sonar.make_api_call",
    ] {
        assert!(ids.contains(id), "`{id}` missing from weft modules --json");
    }
    for m in modules {
        assert!(m["fields"].is_array(), "{m}");
        assert!(m["kind"].is_string(), "{m}");
    }
    let apps: Vec<&str> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["app"].as_str().unwrap())
        .collect();
    assert!(apps.contains(&"sonar"), "{apps:?}");
}

// ---------------------------------------------------------------------------------------
// weft run --sonar-sim
// ---------------------------------------------------------------------------------------

/// Example Sonar scenarios whose run needs no seeded agent, tag or campaign.
const NO_SEED_EXAMPLES: &[&str] = &[
    "sonar-outbound-log",
    "sonar-api-call",
    "sonar-assigned-ack",
    "sonar-closed-survey",
    "sonar-followups",
    "sonar-tag-cleanup",
];

#[test]
fn run_with_the_embedded_simulator() {
    for name in NO_SEED_EXAMPLES {
        let file = format!("scenarios/{name}.yaml");
        let input = format!("scenarios/{name}.input.json");
        // A token the simulator does not accept: --sonar-sim must replace it (and the host).
        let out = weft_sync(
            &["run", "--sonar-sim", &file, "--input", &input, "--json"],
            &[("SONAR_TOKEN", "not-the-simulator-token")],
        );
        out.expect_code(0);
        let record = out.json();
        assert_eq!(record["status"], "success", "{name}: {record:#}");
        let steps = record["steps"].as_array().unwrap();
        assert!(steps.len() >= 2, "{name}: {record:#}");
        assert!(
            steps.iter().all(|s| s["error"].is_null()),
            "{name}: {record:#}"
        );
    }
}

#[test]
fn run_with_the_embedded_simulator_needs_no_token() {
    let out = weft_sync(
        &[
            "run",
            "--sonar-sim",
            "scenarios/sonar-outbound-log.yaml",
            "--input",
            "scenarios/sonar-outbound-log.input.json",
            "--json",
        ],
        &[],
    );
    out.expect_code(0);
    assert_eq!(out.json()["status"], "success");
}

// ---------------------------------------------------------------------------------------
// weft serve
// ---------------------------------------------------------------------------------------

/// The example scenarios with a Sonar instant trigger, and the event each one watches.
const SONAR_TRIGGERS: &[(&str, &str)] = &[
    ("sonar-assigned-ack", "new_assigned_message"),
    ("sonar-closed-survey", "customer_state_changed"),
    ("sonar-customers", "customer_created"),
    ("sonar-followups", "tag_added_to_message"),
    ("sonar-messages", "new_unassigned_message"),
    ("sonar-outbound-log", "outbound_message"),
    ("sonar-tag-cleanup", "tag_removed_from_message"),
];

const POLL: Duration = Duration::from_millis(200);

/// `http://127.0.0.1:PORT/hooks/<32 lowercase hex>`.
fn assert_hook_url(url: &str, serve: &Serve) {
    let prefix = format!("{}/hooks/", serve.url());
    let token = url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("`{url}` does not start with `{prefix}`"));
    assert!(
        token.len() == 32 && token.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
        "hook token of `{url}` is not 128 bits of hex"
    );
}

/// The webhook registered for `event`, if exactly one is.
fn webhook_for<'a>(webhooks: &'a [Value], event: &str) -> &'a Value {
    let matching: Vec<&Value> = webhooks
        .iter()
        .filter(|w| w["active"] == true && w["settings"][event] == "true")
        .collect();
    assert_eq!(matching.len(), 1, "webhooks for `{event}`: {webhooks:#?}");
    matching[0]
}

/// `(id, url)` of every registered webhook.
fn webhook_ids(webhooks: &[Value]) -> BTreeSet<(u64, String)> {
    webhooks
        .iter()
        .map(|w| {
            (
                w["id"].as_u64().unwrap(),
                w["url"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Outbound messages to `phone` whose text contains `needle`.
fn outbound<'a>(messages: &'a [Value], phone: &str, needle: &str) -> Vec<&'a Value> {
    messages
        .iter()
        .filter(|m| {
            m["direction"] == "outbound"
                && m["phone_number"] == phone
                && m["text"].as_str().is_some_and(|t| t.contains(needle))
        })
        .collect()
}

fn customer<'a>(state: &'a Value, phone: &str) -> Option<&'a Value> {
    state["customers"]
        .as_array()?
        .iter()
        .find(|c| c["phone_number"] == phone)
}

/// Executions per scenario, `{scenario: [status...]}`.
fn by_scenario(executions: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in executions {
        out.entry(e["scenario"].as_str().unwrap().to_owned())
            .or_default()
            .push(e["status"].as_str().unwrap().to_owned());
    }
    out
}

fn succeeded(map: &BTreeMap<String, Vec<String>>, scenario: &str) -> usize {
    map.get(scenario)
        .map_or(0, |v| v.iter().filter(|s| *s == "success").count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_registers_sonar_triggers_runs_their_events_and_keeps_hook_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut opts = ServeOpts::in_dir(tmp.path());
    let names = example_names();
    copy_examples(
        &opts.dir,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    opts.env = sim.env();
    let mut serve = Serve::start(opts).await;

    // Every Sonar trigger is registered once, at its scenario's hook URL.
    let webhooks = sim.webhooks().await;
    assert_eq!(webhooks.len(), SONAR_TRIGGERS.len(), "{webhooks:#?}");
    for w in &webhooks {
        assert_hook_url(w["url"].as_str().unwrap(), &serve);
    }
    let hooks = serve.hooks().await;
    let hooked: BTreeSet<String> = hooks
        .iter()
        .map(|h| h["scenario"].as_str().unwrap().to_owned())
        .collect();
    let all: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(hooked, all, "every example starts with an instant trigger");
    for h in &hooks {
        assert_hook_url(h["url"].as_str().unwrap(), &serve);
    }
    for (scenario, event) in SONAR_TRIGGERS {
        let hook = hooks.iter().find(|h| h["scenario"] == *scenario).unwrap();
        assert_eq!(
            webhook_for(&webhooks, event)["url"],
            hook["url"],
            "`{scenario}` is registered for `{event}` at its own hook URL"
        );
    }

    // A story through the simulator's control API.
    const PHONE: &str = "+13105550123";
    sim.control(
        "seed",
        json!({
            "users": [
                {"email": "dana@harborbikes.example", "first_name": "Dana", "last_name": "Reyes"},
                {"email": "alex@acme.example", "first_name": "Alex", "last_name": "Agent"}
            ],
            "tags": ["auto-reply", "follow-up", "service"]
        }),
    )
    .await;
    sim.control(
        "inbound",
        json!({"from": PHONE, "text": "Hi, is my bike ready?"}),
    )
    .await;
    // customer_created → sonar-customers (profile, agent, close) → customer_state_changed →
    // sonar-closed-survey; new_unassigned_message → sonar-messages (auto-reply, tag) →
    // outbound_message → sonar-outbound-log, tag_added_to_message → sonar-followups.
    eventually(
        "the cascade of the inbound SMS",
        EVENTUALLY,
        POLL,
        || async {
            let state = sim.state().await;
            let messages = state["messages"].as_array().cloned().unwrap_or_default();
            let reply = outbound(&messages, PHONE, "thanks for your message");
            let tagged = reply.len() == 1
                && strings(reply[0]["tag_names"].as_array().unwrap())
                    == strings(&[json!("auto-reply"), json!("follow-up")]);
            let survey = outbound(&messages, PHONE, "How did we do?").len() == 1;
            let props = &customer(&state, PHONE)?["properties"];
            let profiled = props["source"] == "weft"
                && props["needs_follow_up"] == "true"
                && props["last_outbound_at"].is_string()
                && props["signup_step"].is_null();
            (tagged && survey && profiled).then_some(())
        },
    )
    .await;
    serve.settle(&sim).await;
    let runs = by_scenario(&serve.executions(None).await);
    for scenario in [
        "sonar-customers",
        "sonar-messages",
        "sonar-closed-survey",
        "sonar-outbound-log",
        "sonar-followups",
    ] {
        assert!(
            succeeded(&runs, scenario) >= 1,
            "no successful `{scenario}`: {runs:?}"
        );
    }
    assert_eq!(runs["sonar-customers"].len(), 1, "{runs:?}");
    assert_eq!(runs["sonar-messages"].len(), 1, "{runs:?}");
    for (scenario, statuses) in &runs {
        assert!(
            statuses.iter().all(|s| s == "success"),
            "`{scenario}`: {statuses:?}"
        );
    }
    let state = sim.state().await;
    for d in state["deliveries"].as_array().unwrap() {
        assert_eq!(d["status"], "delivered", "{d:#}");
        assert_hook_url(d["url"].as_str().unwrap(), &serve);
    }

    // An agent takes the conversation, the customer writes again: sonar-assigned-ack.
    sim.control(
        "assign",
        json!({"phone_number": PHONE, "user_email": "alex@acme.example"}),
    )
    .await;
    sim.control("inbound", json!({"from": PHONE, "text": "Great, thanks!"}))
        .await;
    eventually(
        "the assigned-message acknowledgement",
        EVENTUALLY,
        POLL,
        || async {
            let messages = sim.messages().await;
            (outbound(&messages, PHONE, "Alex will answer you shortly").len() == 1).then_some(())
        },
    )
    .await;

    // The `service` tag added then removed in the Sonar UI: sonar-tag-cleanup.
    let messages = sim.messages().await;
    let first_inbound = messages
        .iter()
        .find(|m| m["direction"] == "inbound" && m["text"] == "Hi, is my bike ready?")
        .unwrap();
    let external_id = first_inbound["external_id"].as_str().unwrap().to_owned();
    sim.control(
        "message_tags",
        json!({"external_id": external_id, "add": ["service"]}),
    )
    .await;
    serve.settle(&sim).await;
    sim.control(
        "message_tags",
        json!({"external_id": external_id, "remove": ["service"]}),
    )
    .await;
    eventually(
        "service_done_at on the customer",
        EVENTUALLY,
        POLL,
        || async {
            let state = sim.state().await;
            customer(&state, PHONE)?["properties"]["service_done_at"]
                .is_string()
                .then_some(())
        },
    )
    .await;
    serve.settle(&sim).await;
    let runs = by_scenario(&serve.executions(None).await);
    assert!(succeeded(&runs, "sonar-assigned-ack") == 1, "{runs:?}");
    assert!(succeeded(&runs, "sonar-tag-cleanup") >= 1, "{runs:?}");

    // A restart reuses every registration and every hook URL.
    let before = webhook_ids(&sim.webhooks().await);
    let status = serve.terminate(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{}", serve.log());
    serve.restart().await;
    let after = sim.webhooks().await;
    assert_eq!(after.len(), SONAR_TRIGGERS.len(), "{after:#?}");
    assert_eq!(
        webhook_ids(&after),
        before,
        "registrations changed on restart"
    );
    assert_eq!(serve.hooks().await, hooks, "hook URLs changed on restart");

    // ... and events still arrive.
    const NEW_PHONE: &str = "+13105550199";
    sim.control("inbound", json!({"from": NEW_PHONE, "text": "Hello?"}))
        .await;
    eventually(
        "the auto-reply after the restart",
        EVENTUALLY,
        POLL,
        || async {
            let messages = sim.messages().await;
            (outbound(&messages, NEW_PHONE, "thanks for your message").len() == 1).then_some(())
        },
    )
    .await;
    serve.settle(&sim).await;

    // weft deactivate removes the scenario's webhook from Sonar, and only that one.
    let messages_hook = hooks
        .iter()
        .find(|h| h["scenario"] == "sonar-messages")
        .unwrap()["url"]
        .clone();
    let file = serve.opts.dir.join("sonar-messages.yaml");
    let db = serve.db();
    let out = weft(
        &["deactivate", file.to_str().unwrap(), "--db", &db],
        &serve.env(),
    )
    .await;
    out.expect_code(0);
    let left = sim.webhooks().await;
    assert_eq!(left.len(), SONAR_TRIGGERS.len() - 1, "{left:#?}");
    assert!(left.iter().all(|w| w["url"] != messages_hook), "{left:#?}");
    assert!(
        left.iter()
            .all(|w| w["settings"]["new_unassigned_message"] != "true"),
        "{left:#?}"
    );
    // Deactivating again is a no-op.
    let out = weft(
        &["deactivate", file.to_str().unwrap(), "--db", &db],
        &serve.env(),
    )
    .await;
    out.expect_code(0);
    assert!(
        out.stdout.contains("no registered webhook"),
        "{}",
        out.stdout
    );
    assert_eq!(sim.webhooks().await.len(), SONAR_TRIGGERS.len() - 1);
}

/// `weft serve DIR` on a free port that must fail to start; returns what it printed.
fn serve_must_not_start(dir: &std::path::Path, db: &std::path::Path, port: u16) -> Output {
    let mut cmd = weft_cmd();
    cmd.arg("serve")
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--db")
        .arg(db);
    let out = run_cmd(cmd, Duration::from_secs(30));
    out.expect_code(1);
    out
}

#[test]
fn serve_starts_nothing_unless_every_scenario_is_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("scenarios");
    std::fs::create_dir(&dir).unwrap();
    copy_fixtures(&dir, &["echo"]);
    std::fs::copy(
        fixture("invalid/unknown-module.yaml"),
        dir.join("unknown-module.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.join("wrong-reference.yaml"),
        "name: wrong-reference\nflow:\n  - { id: 1, module: webhook.custom, params: { name: x } }\n  - { id: 2, module: flow.set_variables, map: { y: \"{{3.z}}\" } }\n",
    )
    .unwrap();
    let db = tmp.path().join("weft.db");
    let out = serve_must_not_start(&dir, &db, free_port());
    assert!(
        out.stderr.contains("unknown module `flow.set_variabels`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("unknown-module.yaml:10:13"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("wrong-reference.yaml:4:"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("{{3.z}}"), "{}", out.stderr);
    assert!(out.stderr.contains("2 scenario file(s)"), "{}", out.stderr);
    assert!(
        !db.exists(),
        "the database was created although nothing may start"
    );

    // Two scenarios with one name.
    std::fs::remove_file(dir.join("unknown-module.yaml")).unwrap();
    std::fs::remove_file(dir.join("wrong-reference.yaml")).unwrap();
    std::fs::copy(dir.join("echo.yaml"), dir.join("echo-again.yaml")).unwrap();
    let out = serve_must_not_start(&dir, &db, free_port());
    assert!(
        out.stderr.contains("scenario name `echo` is used by both"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(dir.join("echo-again.yaml")).unwrap();

    // A port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = serve_must_not_start(&dir, &db, port);
    assert!(out.stderr.contains("cannot listen on"), "{}", out.stderr);
}

/// `weft_webhooks_refused_total` by reason.
fn refused_counts(metrics: &str) -> BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("weft_webhooks_refused_total{reason=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(reason, n)| (reason.to_owned(), n.trim().parse().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_queue_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures(&opts.dir, &["echo"]);
    let serve = Serve::start(opts).await;
    let hook = serve.hook_url("echo").await;
    assert_hook_url(&hook, &serve);
    let client = http();

    let send = |url: String, ctype: &'static str, body: Vec<u8>| {
        let client = client.clone();
        async move {
            let resp = client
                .post(url)
                .header("content-type", ctype)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }
    };
    let unknown = format!("{}/hooks/{}", serve.url(), "0123456789abcdef".repeat(2));
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(&str, String, &'static str, Vec<u8>, u16)> = vec![
        (
            "unknown token",
            unknown,
            "application/json",
            br#"{"n": 1}"#.to_vec(),
            404,
        ),
        (
            "text/plain",
            hook.clone(),
            "text/plain",
            b"n=1".to_vec(),
            415,
        ),
        (
            "malformed JSON",
            hook.clone(),
            "application/json",
            br#"{"n": "#.to_vec(),
            400,
        ),
        (
            "empty body",
            hook.clone(),
            "application/json",
            Vec::new(),
            400,
        ),
        (
            "10,000 levels",
            hook.clone(),
            "application/json",
            deep.into_bytes(),
            400,
        ),
    ];
    for (what, url, ctype, body, expected) in cases {
        let (status, text) = send(url, ctype, body).await;
        assert_eq!(status, expected, "{what}: {text}");
        let error: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{what}: the answer is not JSON ({e}): {text}"));
        assert!(error["error"].is_string(), "{what}: {text}");
    }
    // Over the default 1 MiB limit.
    let big = format!(r#"{{"pad": "{}"}}"#, "x".repeat(1024 * 1024 + 1));
    let (status, _) = send(hook.clone(), "application/json", big.into_bytes()).await;
    assert_eq!(status, 413, "body over the limit");

    // Nothing was queued and the server still serves.
    let health = serve.health().await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["queue_depth"], 0, "{health}");
    assert!(serve.executions(None).await.is_empty());
    let refused = refused_counts(&serve.metrics().await);
    assert_eq!(refused.get("unknown_hook"), Some(&1), "{refused:?}");
    assert_eq!(refused.get("content_type"), Some(&1), "{refused:?}");
    assert_eq!(refused.get("malformed"), Some(&2), "{refused:?}");
    assert_eq!(refused.get("empty"), Some(&1), "{refused:?}");

    // A valid JSON webhook and a valid form webhook still work.
    let resp = serve.post_json(&hook, &json!({"n": 7})).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "queued", "{body}");
    let (status, text) = send(
        hook.clone(),
        "application/x-www-form-urlencoded",
        b"n=8".to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    eventually("two executions", EVENTUALLY, POLL, || async {
        (serve.executions(None).await.len() >= 2).then_some(())
    })
    .await;
    serve.wait_idle().await;
    let executions = serve.executions(None).await;
    assert_eq!(executions.len(), 2, "{executions:#?}");
    let mut triggers = Vec::new();
    for e in &executions {
        assert_eq!(e["status"], "success", "{e}");
        triggers.push(serve.execution(e["id"].as_str().unwrap()).await["trigger"].clone());
    }
    triggers.sort_by_key(Value::to_string);
    assert_eq!(triggers, [json!({"n": "8"}), json!({"n": 7})]);
    let metrics = serve.metrics().await;
    assert!(
        metrics.contains("weft_webhooks_received_total 2"),
        "{metrics}"
    );
    assert_eq!(
        refused_counts(&metrics).values().sum::<u64>(),
        6,
        "{metrics}"
    );
    assert!(
        metrics.contains("weft_executions_total{scenario=\"echo\",status=\"success\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_counted_as_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures(&opts.dir, &["echo"]);
    opts.args = vec!["--body-limit".into(), "1024".into()];
    let serve = Serve::start(opts).await;
    let hook = serve.hook_url("echo").await;
    let resp = serve
        .post_json(&hook, &json!({"pad": "x".repeat(1500)}))
        .await;
    assert_eq!(resp.status(), 413);
    // Answered like every other refusal: a JSON `{"error"}`, counted as `too_large`.
    let text = resp.text().await.unwrap();
    let error: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the 413 answer is not JSON ({e}): {text}"));
    assert!(error["error"].is_string(), "{text}");
    let refused = refused_counts(&serve.metrics().await);
    assert_eq!(refused.values().sum::<u64>(), 1, "{refused:?}");
    assert_eq!(refused.get("too_large"), Some(&1), "{refused:?}");
}

/// Sends `{"n": 0..count}` to a hook; every one must be acknowledged as queued.
async fn send_numbered(serve: &Serve, hook: &str, count: u64) {
    for n in 0..count {
        let resp = serve.post_json(hook, &numbered(n)).await;
        assert_eq!(resp.status(), 200, "webhook {n}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "queued", "webhook {n}: {body}");
    }
}

/// Waits for `count` executions of `scenario` and an idle queue, then checks that each
/// `n` in `0..count` ran exactly once, successfully.
async fn assert_each_ran_once(serve: &Serve, scenario: &str, count: u64) {
    eventually(
        &format!("{count} executions of `{scenario}`"),
        EVENTUALLY,
        POLL,
        || async { (serve.executions(Some(scenario)).await.len() as u64 >= count).then_some(()) },
    )
    .await;
    serve.wait_idle().await;
    let executions = serve.executions(Some(scenario)).await;
    let mut ns = Vec::new();
    for e in &executions {
        assert_eq!(e["status"], "success", "{e}");
        let record = serve.execution(e["id"].as_str().unwrap()).await;
        ns.push(record["trigger"]["n"].as_u64().unwrap());
    }
    ns.sort_unstable();
    assert_eq!(
        ns,
        (0..count).collect::<Vec<_>>(),
        "each webhook runs exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_webhooks_each_run_exactly_once() {
    const N: u64 = 200;
    let tmp = tempfile::tempdir().unwrap();
    let opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures(&opts.dir, &["echo"]);
    let serve = Serve::start(opts).await;
    let hook = serve.hook_url("echo").await;
    let client = http();
    let sends: Vec<_> = (0..N)
        .map(|n| {
            let client = client.clone();
            let hook = hook.clone();
            tokio::spawn(async move {
                let resp = client.post(hook).json(&numbered(n)).send().await.unwrap();
                (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut ids = BTreeSet::new();
    for send in sends {
        let (status, body) = send.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "queued", "{body}");
        ids.insert(body["id"].as_i64().unwrap());
    }
    assert_eq!(ids.len() as u64, N, "queue ids are unique");
    eventually(&format!("{N} executions"), EVENTUALLY, POLL, || async {
        (serve.executions(None).await.len() as u64 >= N).then_some(())
    })
    .await;
    serve.wait_idle().await;
    let executions = serve.executions(None).await;
    assert_eq!(executions.len() as u64, N);
    assert!(executions.iter().all(|e| e["status"] == "success"));
    let metrics = serve.metrics().await;
    assert!(
        metrics.contains(&format!("weft_webhooks_received_total {N}")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "weft_executions_total{{scenario=\"echo\",status=\"success\"}} {N}"
        )),
        "{metrics}"
    );
    // Each job reached a worker once: handed over by the intake, or claimed from the queue
    // (after start-up, and when the node held its fill of waiting jobs).
    let handed = counter(&metrics, "weft_jobs_handed_off_total");
    let claimed = counter(&metrics, "weft_jobs_claimed_total");
    assert_eq!(handed + claimed, N, "{metrics}");
    assert!(
        handed > 0,
        "the intake hands jobs to idle workers: {metrics}"
    );
}

/// The value of an unlabelled counter or gauge in a `/metrics` text.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no `{name}` in {metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_work_survives_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures(&opts.dir, &["sleepy"]);
    let mut serve = Serve::start(opts).await;
    let hook = serve.hook_url("sleepy").await;

    send_numbered(&serve, &hook, 5).await;
    serve.kill();
    let done_before_restart = serve.executions(Some("sleepy")).await.len();
    assert!(
        done_before_restart < 5,
        "the executions (3 s each) finished before the kill; the crash was not tested"
    );

    serve.restart().await;
    assert_each_ran_once(&serve, "sleepy", 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_running_work_and_keeps_the_rest_queued() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures(&opts.dir, &["sleepy"]);
    // Two at a time: some webhooks are running at SIGTERM, the others still queued.
    opts.args = ["--workers", "2", "--grace", "15s"]
        .map(String::from)
        .to_vec();
    let mut serve = Serve::start(opts).await;
    let hook = serve.hook_url("sleepy").await;

    send_numbered(&serve, &hook, 4).await;
    let started = Instant::now();
    let status = serve.terminate(Duration::from_secs(40)).await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}\n{}",
        serve.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "shutdown took {:?}",
        started.elapsed()
    );
    let done = serve.executions(Some("sleepy")).await;
    assert!(done.len() < 4, "all 4 ran before the shutdown: {done:#?}");
    assert!(
        done.iter().all(|e| e["status"] == "success"),
        "a running execution was cut short: {done:#?}"
    );

    serve.restart().await;
    assert_each_ran_once(&serve, "sleepy", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_still_running_after_the_grace_period_runs_again_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures(&opts.dir, &["stalled"]);
    opts.args = ["--workers", "4", "--grace", "1s"]
        .map(String::from)
        .to_vec();
    let mark = format!("{}/_sim/seed", sim.running.root_url());
    opts.env = vec![
        ("WEFT_TEST_MARK_URL".to_owned(), mark),
        ("WEFT_TEST_SLEEP_SECONDS".to_owned(), "120".to_owned()),
    ];
    let mut serve = Serve::start(opts).await;
    let hook = serve.hook_url("stalled").await;
    send_numbered(&serve, &hook, 2).await;
    // Each execution seeds a tag `started-N` in the simulator before it sleeps.
    eventually(
        "both executions to be running",
        EVENTUALLY,
        POLL,
        || async {
            let state = sim.state().await;
            let tags = strings(state["tags"].as_array().unwrap());
            (tags.contains("started-0") && tags.contains("started-1")).then_some(())
        },
    )
    .await;

    let started = Instant::now();
    let status = serve.terminate(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "shutdown waited {:?} (the executions sleep 120 s, the grace period is 1 s)",
        started.elapsed()
    );
    assert!(serve.executions(Some("stalled")).await.is_empty());

    // After a restart (now without the sleep) each runs again, once.
    serve.opts.env[1].1 = "0".to_owned();
    serve.restart().await;
    assert_each_ran_once(&serve, "stalled", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_execution_is_retried_after_the_faults_are_cleared() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures(&opts.dir, &["break-send"]);
    opts.env = sim.env();
    let serve = Serve::start(opts).await;
    let hook = serve.hook_url("break-send").await;

    const PHONE: &str = "+13105550177";
    const TEXT: &str = "Your bike is ready (sent after a retry)";
    sim.control("faults", json!({"error_rate": 1.0, "error_status": 500}))
        .await;
    let resp = serve
        .post_json(&hook, &json!({"phone": PHONE, "text": TEXT}))
        .await;
    assert_eq!(resp.status(), 200);
    let incomplete = eventually("an incomplete execution", EVENTUALLY, POLL, || async {
        serve
            .executions(Some("break-send"))
            .await
            .into_iter()
            .find(|e| e["status"] == "incomplete")
    })
    .await;
    let id = incomplete["id"].as_str().unwrap().to_owned();
    let db = serve.db();
    let listed = weft(
        &[
            "executions",
            "list",
            "--db",
            &db,
            "--status",
            "incomplete",
            "--json",
        ],
        &[],
    )
    .await;
    let listed = listed.expect_code(0).json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed:#}");
    assert_eq!(listed[0]["id"], id.as_str());
    let record = serve.execution(&id).await;
    let failed = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| !s["error"].is_null())
        .unwrap_or_else(|| panic!("no failed step: {record:#}"));
    assert_eq!(failed["module"], "sonar.send_message", "{record:#}");
    assert!(outbound(&sim.messages().await, PHONE, TEXT).is_empty());
    let shown = weft(&["executions", "show", &id, "--db", &db], &[]).await;
    shown.expect_code(0);
    assert!(shown.stdout.contains("incomplete"), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("step 2 sonar.send_message"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains(TEXT),
        "the step input is shown:\n{}",
        shown.stdout
    );
    assert!(
        !shown.stdout.contains(SIM_TOKEN) && !record.to_string().contains(SIM_TOKEN),
        "the token leaked into the record"
    );

    sim.control("faults", json!({})).await;
    let out = weft(&["executions", "retry", &id, "--db", &db], &[]).await;
    out.expect_code(0);
    eventually("a successful retry", EVENTUALLY, POLL, || async {
        let runs = serve.executions(Some("break-send")).await;
        runs.iter().any(|e| e["status"] == "success").then_some(())
    })
    .await;
    eventually("the message in Sonar", EVENTUALLY, POLL, || async {
        (outbound(&sim.messages().await, PHONE, TEXT).len() == 1).then_some(())
    })
    .await;
    serve.wait_idle().await;
    let statuses: Vec<String> = serve
        .executions(Some("break-send"))
        .await
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| *s == "success").count(),
        1,
        "{statuses:?}"
    );
    // The incomplete execution is resolved: nothing is left to retry.
    weft(&["executions", "retry", &id, "--db", &db], &[])
        .await
        .expect_code(1);
    assert_eq!(outbound(&sim.messages().await, PHONE, TEXT).len(), 1);
    // At the default log level, a failing module's warning names its execution.
    let log = serve.log();
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Module failed."))
        .collect();
    assert!(
        failed.iter().any(|l| l.contains("scenario=break-send")
            && l.contains(&format!("execution_id={id}"))),
        "no `Module failed.` naming execution {id}:\n{}",
        failed.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_sonar_delivery_runs_once() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures(&opts.dir, &["new-customer-log"]);
    opts.env = sim.env();
    let serve = Serve::start(opts).await;
    let hook = serve.hook_url("new-customer-log").await;
    let webhooks = sim.webhooks().await;
    assert_eq!(
        webhook_for(&webhooks, "customer_created")["url"],
        hook.as_str()
    );

    let delivery: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("scenarios/sonar-customers.input.json")).unwrap(),
    )
    .unwrap();
    let resp = serve.post_json(&hook, &delivery).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "queued");
    let resp = serve.post_json(&hook, &delivery).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"status": "duplicate"})
    );
    eventually("the execution", EVENTUALLY, POLL, || async {
        (!serve.executions(None).await.is_empty()).then_some(())
    })
    .await;
    serve.wait_idle().await;
    assert_eq!(serve.executions(None).await.len(), 1);

    // Another delivery (another uuid) runs, and so does a real one from the simulator.
    let mut other = delivery.clone();
    other["uuid"] = json!("0f7e3c1a-5b2d-4e6f-8a9b-1c2d3e4f5a6b");
    let resp = serve.post_json(&hook, &other).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "queued");
    sim.control("inbound", json!({"from": "+13105550166", "text": "hi"}))
        .await;
    eventually("three executions", EVENTUALLY, POLL, || async {
        (serve.executions(None).await.len() >= 3).then_some(())
    })
    .await;
    serve.settle(&sim).await;
    let executions = serve.executions(None).await;
    assert_eq!(executions.len(), 3, "{executions:#?}");
    assert!(executions.iter().all(|e| e["status"] == "success"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_respond_sets_the_hook_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures(&opts.dir, &["respond"]);
    opts.args = vec!["--log-format".into(), "json".into()];
    let serve = Serve::start(opts).await;
    let hook = serve.hook_url("respond").await;
    let resp = serve.post_json(&hook, &json!({"x": "hello"})).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"ok": true, "echo": "hello"})
    );
    let resp = serve.post_json(&hook, &json!({"x": 42})).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"ok": true, "echo": 42}),
        "a lone `{{1.x}}` passes the JSON value through"
    );

    // --log-format json: the log lines (stderr) are JSON objects.
    let log = serve.log();
    let json_lines: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        json_lines.iter().any(|l| l["level"] == "INFO"),
        "no JSON log line in\n{log}"
    );
    assert!(!log.contains(" INFO "), "text log lines in\n{log}");
}

/// `(start, end)` of each execution, in milliseconds since the epoch, by start.
fn spans(executions: &[Value]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = executions
        .iter()
        .map(|e| {
            let start = chrono::DateTime::parse_from_rfc3339(e["started_at"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            (start, start + e["duration_ms"].as_i64().unwrap())
        })
        .collect();
    out.sort_unstable();
    out
}

/// Each execution ends before the next one starts (1 ms of rounding allowed).
fn assert_no_overlap(executions: &[Value]) {
    let spans = spans(executions);
    for pair in spans.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0 + 1,
            "executions overlap: {spans:?}\n{executions:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequential_scenario_runs_one_at_a_time_in_arrival_order() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures(&opts.dir, &["in-order"]);
    let serve = Serve::start(opts).await;
    let hook = serve.hook_url("in-order").await;
    send_numbered(&serve, &hook, 4).await;
    assert_each_ran_once(&serve, "in-order", 4).await;
    let executions = serve.executions(Some("in-order")).await;
    assert_no_overlap(&executions);
    let mut by_start = Vec::new();
    for e in &executions {
        let record = serve.execution(e["id"].as_str().unwrap()).await;
        let n = record["trigger"]["n"].as_u64().unwrap();
        by_start.push((e["started_at"].as_str().unwrap().to_owned(), n));
    }
    by_start.sort();
    let order: Vec<u64> = by_start.iter().map(|(_, n)| *n).collect();
    assert_eq!(order, [0, 1, 2, 3], "arrival order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_without_overlapping_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures(&opts.dir, &["every-second"]);
    let serve = Serve::start(opts).await;
    let executions = eventually("two scheduled runs", EVENTUALLY, POLL, || async {
        let runs = serve.executions(Some("every-second")).await;
        (runs.len() >= 2).then_some(runs)
    })
    .await;
    assert!(executions.iter().all(|e| e["status"] == "success"));
    assert_no_overlap(&executions);
    let record = serve.execution(executions[0]["id"].as_str().unwrap()).await;
    assert!(record["trigger"]["fired_at"].is_string(), "{record:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_old_executions() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures(&opts.dir, &["echo"]);
    let mut serve = Serve::start(opts).await;
    let hook = serve.hook_url("echo").await;
    send_numbered(&serve, &hook, 1).await;
    eventually("the execution", EVENTUALLY, POLL, || async {
        (serve.executions(None).await.len() == 1).then_some(())
    })
    .await;
    let status = serve.terminate(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0));

    // Restarted with a 1 s retention once the execution is older than that.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    serve.opts.args = vec!["--retention".into(), "1s".into()];
    serve.restart().await;
    eventually(
        "the old execution to be pruned",
        EVENTUALLY,
        POLL,
        || async { serve.executions(None).await.is_empty().then_some(()) },
    )
    .await;
    // The hook is unchanged and new work is recorded.
    assert_eq!(serve.hook_url("echo").await, hook);
    send_numbered(&serve, &hook, 1).await;
    eventually("the new execution", EVENTUALLY, POLL, || async {
        (serve.executions(None).await.len() == 1).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// weft demo
// ---------------------------------------------------------------------------------------

#[test]
fn demo_tells_its_story_within_a_minute() {
    let started = Instant::now();
    let mut cmd = weft_cmd();
    cmd.arg("demo");
    let out = run_cmd(cmd, Duration::from_secs(60));
    out.expect_code(0);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(out.stdout.contains("Executions ("), "{}", out.stdout);
    assert!(out.stdout.contains("What Sonar received"), "{}", out.stdout);
}

/// How many runtime worker threads a process runs (Linux: `/proc/PID/task/*/comm`).
fn runtime_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|name| name.trim() == "tokio-rt-worker")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_as_many_runtime_threads_as_asked_and_one_per_core_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = ServeOpts::in_dir(tmp.path());
    copy_fixtures(&opts.dir, &["echo"]);
    opts.args = vec!["--threads".into(), "3".into()];
    let serve = Serve::start(opts.clone()).await;
    assert_eq!(runtime_threads(serve.pid()), 3);
    drop(serve);

    opts.args.clear();
    let serve = Serve::start(opts).await;
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(runtime_threads(serve.pid()), cores);

    let out = weft_sync(&["serve", "--threads", "0"], &[]);
    out.expect_code(2);
    assert!(out.stderr.contains("--threads"), "{}", out.stderr);
}
