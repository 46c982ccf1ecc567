//! The example scenarios `scenarios/sonar-*.yaml`, each loaded with the `sonar` connection
//! pointed at a simulator and run on its `.input.json`, checking what the simulator
//! received. Also: every Sonar module appears in the registry next to the built-ins, and
//! the token stays out of execution records.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Map, Value};
use weft_engine::exec::{ExecutionRecord, Executor, Status};
use weft_engine::validate::{load_str, ConnectionOverrides, LoadOptions};
use weft_engine::Registry;
use weft_sonar_sim::{RunningSim, SimConfig, Simulator};

/// A token unlike anything else in the records, to look for leaks.
const TOKEN: &str = "sim-token-3c9e71";

fn registry() -> Registry {
    Registry::new(
        [weft_engine::builtin::modules(), weft_sonar::modules()],
        [weft_sonar::apps()],
    )
    .unwrap()
}

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

async fn sim() -> RunningSim {
    let config = SimConfig {
        tokens: vec![TOKEN.into()],
        ..SimConfig::default()
    };
    Simulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn seed(sim: &RunningSim, body: Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/_sim/seed", sim.root_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
}

/// Loads `scenarios/<name>.yaml` against `sim`, with its input file.
fn load_scenario(name: &str, sim: &RunningSim) -> (weft_engine::validate::Scenario, Value) {
    let dir = scenarios_dir();
    let file = dir.join(format!("{name}.yaml"));
    let source = std::fs::read_to_string(&file).unwrap();
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{name}.input.json"))).unwrap(),
    )
    .unwrap();
    let mut fields = Map::new();
    fields.insert("base_url".into(), Value::String(sim.base_url()));
    let mut overrides = ConnectionOverrides::new();
    overrides.insert("sonar".into(), fields);
    let env = |var: &str| (var == "SONAR_TOKEN").then(|| TOKEN.to_owned());
    let opts = LoadOptions {
        env: &env,
        overrides: &overrides,
    };
    let registry = registry();
    let scenario = match load_str(&file.display().to_string(), &source, &registry, &opts) {
        Ok(s) => s,
        Err(e) => panic!("{name} does not load:\n{e}"),
    };
    (scenario, input)
}

/// Loads `scenarios/<name>.yaml` against `sim` and runs it on its input file.
async fn run_scenario(name: &str, sim: &RunningSim) -> ExecutionRecord {
    let (scenario, input) = load_scenario(name, sim);
    let record = Executor::new(&scenario).run(input.clone()).await;
    assert_eq!(record.trigger(), &input, "{name}: the record's trigger");
    let text = serde_json::to_string_pretty(&record).unwrap();
    assert_eq!(record.status, Status::Success, "{name}:\n{text}");
    assert!(
        !text.contains(TOKEN),
        "{name}: the token leaked into the record"
    );
    record
}

/// The outputs of module `id`, by step.
fn outputs(record: &ExecutionRecord, id: u32) -> Vec<Value> {
    record
        .steps
        .iter()
        .filter(|s| s.module_id == id)
        .flat_map(|s| s.output.clone())
        .collect()
}

#[tokio::test]
async fn customers() {
    let sim = sim().await;
    seed(&sim, json!({"users": [{"email": "dana@harborbikes.example", "first_name": "Dana", "last_name": "Reyes"}]})).await;
    let record = run_scenario("sonar-customers", &sim).await;
    assert_eq!(record.steps.len(), 6);
    let state = sim.simulator().state_json();
    let customer = &state["customers"][0];
    assert_eq!(customer["phone_number"], "+13105550162");
    assert!(customer["first_name"].is_null(), "a name is never invented");
    assert_eq!(customer["zip_code"], "90401");
    assert_eq!(customer["timezone"], "America/Los_Angeles");
    assert_eq!(customer["state"], "closed");
    assert!(customer["assignee"].is_null());
    assert_eq!(
        customer["properties"],
        json!({"source": "weft", "signed_up_on": "2024-03-05T17:20:11.301Z"})
    );
    assert_eq!(
        outputs(&record, 2)[0]["assignee"]["email"],
        "dana@harborbikes.example"
    );
    assert_eq!(outputs(&record, 3)[0]["properties"]["signup_step"], "1");
    assert_eq!(outputs(&record, 4)[0]["property_value"], "1");
    assert_eq!(outputs(&record, 6)[0], json!({"success": true}));
}

#[tokio::test]
async fn messages() {
    let sim = sim().await;
    seed(&sim, json!({"tags": ["auto-reply", "follow-up"]})).await;
    let record = run_scenario("sonar-messages", &sim).await;
    let state = sim.simulator().state_json();
    let message = &state["messages"][0];
    assert_eq!(message["phone_number"], "+13105550147");
    assert_eq!(
        message["text"],
        "Hi Maya, thanks for your message! An agent will answer shortly."
    );
    assert_eq!(message["tag_names"], json!(["auto-reply", "follow-up"]));
    assert_eq!(
        outputs(&record, 3)[0]["tag_names"],
        json!(["auto-reply", "follow-up"])
    );
}

#[tokio::test]
async fn campaigns() {
    let sim = sim().await;
    seed(
        &sim,
        json!({"campaigns": [
            {"id": "17", "slug": "spring-tuneup", "text": "{{first_name}}, spring tune-ups are 15% off this week."},
            {"id": "18", "slug": "tuneup-reminder", "text": "Reminder: your tune-up is today."}
        ]}),
    )
    .await;
    let record = run_scenario("sonar-campaigns", &sim).await;
    let state = sim.simulator().state_json();
    assert_eq!(state["customers"][0]["phone_number"], "+13105550188");
    assert_eq!(state["customers"][0]["first_name"], "Ana");
    assert_eq!(
        state["customers"][0]["properties"],
        json!({"campaign": "spring-tuneup"})
    );
    let sends = state["campaign_sends"].as_array().unwrap();
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[0]["status"], "sent");
    assert_eq!(
        sends[0]["text"],
        "Ana, spring tune-ups are 15% off this week."
    );
    assert_eq!(sends[1]["status"], "scheduled");
    assert!(
        sends[1]["send_at"]
            .as_str()
            .unwrap()
            .starts_with("2030-12-01T09:00:00"),
        "{}",
        sends[1]
    );
    assert_eq!(
        state["messages"].as_array().unwrap().len(),
        1,
        "only the first campaign was sent now"
    );
    assert_eq!(outputs(&record, 4)[0]["status"], "scheduled");
}

#[tokio::test]
async fn api_call() {
    let sim = sim().await;
    let record = run_scenario("sonar-api-call", &sim).await;
    let state = sim.simulator().state_json();
    let webhooks = state["webhooks"].as_array().unwrap();
    assert_eq!(webhooks.len(), 1);
    assert_eq!(webhooks[0]["url"], "http://127.0.0.1:9/crm");
    assert_eq!(webhooks[0]["name"], "crm sync");
    assert_eq!(
        webhooks[0]["settings"],
        json!({"new_unassigned_message": "true", "new_assigned_message": "true"})
    );
    let vars = &outputs(&record, 4)[0];
    assert_eq!(vars["webhook_id"], webhooks[0]["id"]);
    assert_eq!(vars["webhooks"], 1);
}

#[tokio::test]
async fn followups() {
    let sim = sim().await;
    run_scenario("sonar-followups", &sim).await;
    let state = sim.simulator().state_json();
    assert_eq!(state["customers"][0]["phone_number"], "+13105550147");
    assert_eq!(
        state["customers"][0]["properties"],
        json!({"needs_follow_up": "true", "follow_up_message": "pZ3kQ8rVt2mW9xYbLc4NdA=="})
    );
}

#[tokio::test]
async fn tag_cleanup() {
    let sim = sim().await;
    run_scenario("sonar-tag-cleanup", &sim).await;
    let state = sim.simulator().state_json();
    assert_eq!(
        state["customers"][0]["properties"],
        json!({"service_done_at": "2024-03-05T18:01:37.555Z"})
    );
}

#[tokio::test]
async fn outbound_log() {
    let sim = sim().await;
    run_scenario("sonar-outbound-log", &sim).await;
    let state = sim.simulator().state_json();
    assert_eq!(
        state["customers"][0]["properties"],
        json!({"last_outbound_at": "2024-03-05T17:42:10.640Z", "last_outbound_by": "dana@harborbikes.example"})
    );
}

#[tokio::test]
async fn assigned_ack() {
    let sim = sim().await;
    run_scenario("sonar-assigned-ack", &sim).await;
    let state = sim.simulator().state_json();
    assert_eq!(state["messages"][0]["phone_number"], "+13105550147");
    assert_eq!(
        state["messages"][0]["text"],
        "Got it, Maya! Dana will answer you shortly."
    );
}

#[tokio::test]
async fn closed_survey() {
    let sim = sim().await;
    run_scenario("sonar-closed-survey", &sim).await;
    let state = sim.simulator().state_json();
    assert_eq!(
        state["messages"][0]["text"],
        "Thanks Maya! How did we do? Reply 1-5."
    );
}

#[test]
fn every_sonar_module_is_in_an_example_scenario() {
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(scenarios_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("sonar-") && name.ends_with(".yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            for m in weft_sonar::modules() {
                let id = m.spec().id;
                if text.contains(&format!("module: {id}\n")) {
                    used.entry(id.to_owned()).or_default().push(name.clone());
                }
            }
        }
    }
    for m in weft_sonar::modules() {
        let id = m.spec().id;
        assert!(
            used.contains_key(id),
            "`{id}` is in no scenarios/sonar-*.yaml"
        );
    }
}

#[test]
fn sonar_plugs_into_the_registry() {
    let registry = registry();
    assert!(registry.app("sonar").is_some());
    for m in weft_sonar::modules() {
        assert!(registry.module(m.spec().id).is_some());
    }
}

/// A Sonar trigger keeps the delivery once when it is the bundle; a delivery of another
/// event (ignored) or a broken one (an error) is still the record's trigger.
#[tokio::test]
async fn every_delivery_is_the_records_trigger_bundle_or_not() {
    let sim = sim().await;
    let (scenario, input) = load_scenario("sonar-messages", &sim);
    let record = Executor::new(&scenario).run(input.clone()).await;
    assert_eq!(record.trigger(), &input);
    assert_eq!(record.steps[0].output, vec![input.clone()]);
    let mut other = input.clone();
    other["action"] = json!("some_other_event");
    let record = Executor::new(&scenario).run(other.clone()).await;
    assert_eq!(record.status, Status::Success);
    assert_eq!(record.operations, 1);
    assert!(record.steps[0].output.is_empty());
    assert_eq!(record.trigger(), &other);
    let mut broken = input.clone();
    broken["uuid"] = json!("");
    let record = Executor::new(&scenario).run(broken.clone()).await;
    assert_eq!(record.status, Status::Error);
    assert!(record.error.as_ref().unwrap().message.contains("no `uuid`"));
    assert_eq!(record.trigger(), &broken);
    let json = serde_json::to_value(Executor::new(&scenario).run(input.clone()).await).unwrap();
    assert_eq!(json["trigger"], input);
}
