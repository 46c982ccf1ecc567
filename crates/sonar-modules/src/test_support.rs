//! Test helpers: a simulator on `127.0.0.1:0`, connections to it, running a module on one
//! input, fixtures, and the checks every trigger goes through.

#![allow(clippy::unwrap_used)]

use std::any::Any;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use weft_engine::module::TriggerKind;
use weft_engine::{App, Bundle, ErrorKind, Input, Kind, Module, ModuleError, RunContext};
use weft_sonar_sim::{RunningSim, SimConfig, Simulator};

use crate::connection::SonarApp;

/// The token the simulator accepts.
pub(crate) const TOKEN: &str = "sim-token";

/// A fixture of `shared/fixtures/sonar/`.
pub(crate) fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../../shared/fixtures/sonar/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read `{path}`: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// A running simulator and a client for its control surface.
pub(crate) struct Sim {
    pub(crate) running: RunningSim,
    http: reqwest::Client,
}

impl Sim {
    /// A fresh simulator accepting [`TOKEN`].
    pub(crate) async fn start() -> Sim {
        Sim::start_with_tokens(&[TOKEN]).await
    }

    /// A fresh simulator accepting `tokens`.
    pub(crate) async fn start_with_tokens(tokens: &[&str]) -> Sim {
        let config = SimConfig {
            tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
            ..SimConfig::default()
        };
        let running = Simulator::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        Sim {
            running,
            http: reqwest::Client::new(),
        }
    }

    /// The API base URL.
    pub(crate) fn base_url(&self) -> String {
        self.running.base_url()
    }

    /// Everything the simulator holds.
    pub(crate) fn state(&self) -> Value {
        self.running.simulator().state_json()
    }

    /// `POST /_sim/{path}` with a JSON body; panics unless 2xx.
    pub(crate) async fn control(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/_sim/{path}", self.running.root_url());
        let resp = self.http.post(&url).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// Seeds users, tags and campaigns.
    pub(crate) async fn seed(&self, body: Value) {
        self.control("seed", body).await;
    }

    /// Sets the fault injection (`{}` clears it).
    pub(crate) async fn faults(&self, body: Value) {
        self.control("faults", body).await;
    }

    /// Calls the API directly (to set the scene); panics unless 2xx.
    pub(crate) async fn api(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base_url());
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .http
            .request(method, &url)
            .header("X-Token", TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// `POST path` with another token; panics unless 2xx.
    pub(crate) async fn api_with_token(&self, token: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base_url());
        let resp = self
            .http
            .post(&url)
            .header("X-Token", token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// A connection to this simulator with fast retries; `extra` fields override.
    pub(crate) fn connection(&self, extra: Value) -> Arc<dyn Any + Send + Sync> {
        let mut fields = json!({
            "token": TOKEN,
            "base_url": self.base_url(),
            "max_retries": 2,
            "retry_base_ms": 5,
            "retry_max_ms": 20,
        })
        .as_object()
        .unwrap()
        .clone();
        if let Value::Object(extra) = extra {
            fields.extend(extra);
        }
        SonarApp.connect(&fields).unwrap()
    }

    /// Runs `module` once on `input` with the default connection.
    pub(crate) async fn run(
        &self,
        module: &dyn Module,
        input: Value,
    ) -> Result<Vec<Bundle>, ModuleError> {
        run_with(module, &self.connection(json!({})), input).await
    }
}

/// Runs `module` once on `input` (already in coerced form) with `connection`.
pub(crate) async fn run_with(
    module: &dyn Module,
    connection: &Arc<dyn Any + Send + Sync>,
    input: Value,
) -> Result<Vec<Bundle>, ModuleError> {
    let cx = RunContext {
        scenario: "test",
        execution_id: "test-execution",
        module_id: 2,
        connection: Some(connection),
        http: weft_engine::exec::http_client(),
    };
    let Value::Object(map) = input else {
        panic!("input must be an object")
    };
    module.run(&cx, Input(map)).await
}

/// Parsing checks every trigger goes through: its fixture, a minimal delivery, another
/// event, and deliveries missing a required key.
pub(crate) fn check_trigger_parse(module: &dyn Module, event: &str, fixture_name: &str) {
    let spec = module.spec();
    assert_eq!(spec.kind, Kind::Trigger);
    assert_eq!(spec.app, Some("sonar"));
    let trigger = module.as_trigger().unwrap();
    assert_eq!(trigger.trigger_kind(), TriggerKind::Instant);
    assert_eq!(trigger.event(), Some(event));
    let params: Map<String, Value> = json!({"webhook_name": "w"}).as_object().unwrap().clone();

    let delivery = fixture(fixture_name);
    assert_eq!(
        delivery["action"], event,
        "fixture `{fixture_name}` is for another event"
    );
    assert_eq!(
        trigger.parse(&params, delivery.clone()).unwrap(),
        vec![delivery.clone()]
    );

    let minimal = json!({"uuid": "u-1", "action": event, "customer": {"phone_number": "+13105550147"}, "extra": 1});
    assert_eq!(
        trigger.parse(&params, minimal.clone()).unwrap(),
        vec![minimal]
    );

    let mut other = delivery.clone();
    other["action"] = json!(if event == "outbound_message" {
        "customer_created"
    } else {
        "outbound_message"
    });
    assert_eq!(trigger.parse(&params, other).unwrap(), Vec::<Value>::new());

    for remove in ["uuid", "action", "customer", "customer.phone_number"] {
        let mut broken = delivery.clone();
        match remove.split_once('.') {
            Some((outer, inner)) => {
                broken[outer].as_object_mut().unwrap().remove(inner);
            }
            None => {
                broken.as_object_mut().unwrap().remove(remove);
            }
        }
        let err = trigger.parse(&params, broken).unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError, "without `{remove}`");
        assert!(
            err.message.contains(&format!("`{remove}`")) || remove == "customer",
            "{}",
            err.message
        );
    }
    let err = trigger.parse(&params, json!("text")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::DataError);
}

/// Activation registers the hook URL for the event, a second activation reuses it, and
/// deactivation deletes it (twice is fine).
pub(crate) async fn check_trigger_lifecycle(module: &dyn Module, event: &str) {
    let sim = Sim::start().await;
    let conn = sim.connection(json!({}));
    let trigger = module.as_trigger().unwrap();
    let hook = "https://weft.example.net/hooks/h7TqP2";
    let params: Map<String, Value> = json!({"webhook_name": "weft test"})
        .as_object()
        .unwrap()
        .clone();

    let first = trigger.activate(Some(&conn), &params, hook).await.unwrap();
    assert_eq!(first["reused"], false);
    let id = first["webhook_id"].as_u64().unwrap();
    let state = sim.state();
    let webhooks = state["webhooks"].as_array().unwrap();
    assert_eq!(webhooks.len(), 1);
    assert_eq!(webhooks[0]["id"], id);
    assert_eq!(webhooks[0]["url"], hook);
    assert_eq!(webhooks[0]["name"], "weft test");
    assert_eq!(webhooks[0]["active"], true);
    assert_eq!(webhooks[0]["http_method"], "POST");
    assert_eq!(webhooks[0]["settings"], json!({ event: "true" }));

    let second = trigger.activate(Some(&conn), &params, hook).await.unwrap();
    assert_eq!(second, json!({"webhook_id": id, "reused": true}));
    assert_eq!(sim.state()["webhooks"].as_array().unwrap().len(), 1);

    trigger.deactivate(Some(&conn), &second).await.unwrap();
    assert_eq!(sim.state()["webhooks"], json!([]));
    trigger.deactivate(Some(&conn), &second).await.unwrap();
}
