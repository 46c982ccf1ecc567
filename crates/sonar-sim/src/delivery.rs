//! Webhook delivery: a background dispatcher, one ordered worker per webhook, retries.
//!
//! [`State::enqueue_delivery`] records a `pending` [`Delivery`] and sends a [`Job`] down an
//! unbounded channel; nothing touches the network under the state lock. The dispatcher (started
//! on first use) hands each job to its webhook's worker, so first attempts reach one receiver in
//! event order and a slow receiver only delays its own webhook. A failed attempt (non-2xx,
//! connection error or timeout) schedules the retries of [`crate::SimConfig::retry_delays`] in a
//! task of its own, with the same body (so the same `uuid`). Each attempt is logged on the
//! delivery; the final status is `delivered` or `failed`.
//!
//! Background tasks hold only a `Weak` handle: dropping the simulator stops them, and a
//! `/_sim/reset` (which bumps the state's generation) makes them drop their work.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::body::Bytes;
use chrono::{TimeDelta, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::events::Event;
use crate::ids;
use crate::state::State;
use crate::Shared;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DeliveryStatus {
    /// Not attempted yet, or failed with retries left.
    Pending,
    Delivered,
    /// Every attempt failed.
    Failed,
}

/// One attempt: when, and the receiver's status code or the transport error.
#[derive(Debug, Serialize)]
pub(crate) struct Attempt {
    pub(crate) at: String,
    pub(crate) status_code: Option<u16>,
    pub(crate) error: Option<String>,
}

/// One event sent to one webhook, with its attempts (shown in `/_sim/state`).
#[derive(Debug, Serialize)]
pub(crate) struct Delivery {
    pub(crate) id: u64,
    pub(crate) uuid: String,
    pub(crate) webhook_id: u64,
    pub(crate) url: String,
    pub(crate) action: &'static str,
    pub(crate) status: DeliveryStatus,
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) next_attempt_at: Option<String>,
    pub(crate) created_at: String,
    pub(crate) payload: Value,
}

/// What a worker needs to perform a delivery.
#[derive(Debug)]
pub(crate) struct Job {
    delivery_id: u64,
    generation: u64,
    webhook_id: u64,
    method: reqwest::Method,
    url: String,
    body: Bytes,
}

impl State {
    /// Records a pending delivery of `payload` and queues it for the delivery task.
    pub(crate) fn enqueue_delivery(
        &mut self,
        webhook_id: u64,
        url: String,
        method: &str,
        event: Event,
        payload: Map<String, Value>,
    ) {
        let uuid = payload
            .get("uuid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let payload = Value::Object(payload);
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        let delivery_id = self.deliveries.next_seq() + 1;
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .unwrap_or(reqwest::Method::POST);
        self.deliveries.push(Delivery {
            id: delivery_id,
            uuid,
            webhook_id,
            url: url.clone(),
            action: event.as_str(),
            status: DeliveryStatus::Pending,
            attempts: Vec::new(),
            next_attempt_at: None,
            created_at: ids::now(),
            payload,
        });
        let job = Job {
            delivery_id,
            generation: self.generation,
            webhook_id,
            method,
            url,
            body: Bytes::from(body),
        };
        self.send_job(job);
    }

    fn send_job(&mut self, job: Job) {
        let job = match &self.outbox {
            Some(outbox) => match outbox.send(job) {
                Ok(()) => return,
                // The dispatcher is gone (its runtime ended): start another below.
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.fail_now(&job, "no async runtime to deliver from");
            return;
        };
        let (outbox, inbox) = mpsc::unbounded_channel();
        let client = self.shared.upgrade().and_then(|shared| {
            let delays: Arc<[Duration]> = shared.config.retry_delays.clone().into();
            shared.client.clone().map(|client| (client, delays))
        });
        let Some((client, delays)) = client else {
            self.fail_now(&job, "no HTTP client to deliver with");
            return;
        };
        runtime.spawn(dispatch(self.shared.clone(), client, delays, inbox));
        // The receiver was just created and is alive.
        let _ = outbox.send(job);
        self.outbox = Some(outbox);
    }

    fn fail_now(&mut self, job: &Job, error: &str) {
        tracing::warn!(message = "Cannot deliver webhook.", delivery = job.delivery_id, %error);
        if let Some(delivery) = self.delivery_mut(job) {
            delivery.status = DeliveryStatus::Failed;
            delivery.attempts.push(Attempt {
                at: ids::now(),
                status_code: None,
                error: Some(error.to_owned()),
            });
        }
    }

    /// The delivery `job` is about, unless a reset happened since it was queued.
    fn delivery_mut(&mut self, job: &Job) -> Option<&mut Delivery> {
        if self.generation != job.generation {
            return None;
        }
        self.deliveries.get_mut(job.delivery_id.checked_sub(1)?)
    }
}

/// Routes jobs to one worker per webhook, starting workers as webhooks appear.
async fn dispatch(
    shared: Weak<Shared>,
    client: reqwest::Client,
    delays: Arc<[Duration]>,
    mut inbox: UnboundedReceiver<Job>,
) {
    let mut workers: HashMap<u64, UnboundedSender<Job>> = HashMap::new();
    while let Some(job) = inbox.recv().await {
        let worker = workers.entry(job.webhook_id).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(work(shared.clone(), client.clone(), delays.clone(), rx));
            tx
        });
        if worker.send(job).is_err() {
            // Workers live as long as their sender; this only happens if one panicked.
            workers.clear();
        }
    }
}

/// Performs first attempts in order; failures continue in a retry task of their own.
async fn work(
    shared: Weak<Shared>,
    client: reqwest::Client,
    delays: Arc<[Duration]>,
    mut inbox: UnboundedReceiver<Job>,
) {
    while let Some(job) = inbox.recv().await {
        if !attempt(&shared, &client, &job, 0, &delays).await {
            tokio::spawn(retry(shared.clone(), client.clone(), delays.clone(), job));
        }
    }
}

async fn retry(shared: Weak<Shared>, client: reqwest::Client, delays: Arc<[Duration]>, job: Job) {
    for (index, delay) in delays.iter().enumerate() {
        tokio::time::sleep(*delay).await;
        if attempt(&shared, &client, &job, index + 1, &delays).await {
            return;
        }
    }
}

/// Attempt number `number` (0 = first). Returns true when the delivery is settled: delivered,
/// out of retries, or orphaned by a reset or a dropped simulator.
async fn attempt(
    shared: &Weak<Shared>,
    client: &reqwest::Client,
    job: &Job,
    number: usize,
    delays: &[Duration],
) -> bool {
    if !is_current(shared, job) {
        return true;
    }
    let result = client
        .request(job.method.clone(), &job.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(job.body.clone())
        .send()
        .await;
    let (delivered, status_code, error) = match result {
        Ok(response) => {
            let status = response.status();
            let error = (!status.is_success()).then(|| format!("HTTP {status}"));
            (status.is_success(), Some(status.as_u16()), error)
        }
        Err(error) => (false, None, Some(describe(&error))),
    };
    let next = if delivered {
        None
    } else {
        delays.get(number).copied()
    };
    let Some(shared) = shared.upgrade() else {
        return true;
    };
    let mut state = shared.lock();
    let Some(delivery) = state.delivery_mut(job) else {
        return true;
    };
    delivery.attempts.push(Attempt {
        at: ids::now(),
        status_code,
        error,
    });
    delivery.status = match (delivered, next) {
        (true, _) => DeliveryStatus::Delivered,
        (false, Some(_)) => DeliveryStatus::Pending,
        (false, None) => DeliveryStatus::Failed,
    };
    delivery.next_attempt_at = next.map(|delay| {
        let delay = TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX);
        ids::timestamp(Utc::now().checked_add_signed(delay).unwrap_or(Utc::now()))
    });
    delivered || next.is_none()
}

fn is_current(shared: &Weak<Shared>, job: &Job) -> bool {
    shared
        .upgrade()
        .is_some_and(|shared| shared.lock().generation == job.generation)
}

/// A transport error with its causes ("timed out" for timeouts).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use serde_json::{json, Value};

    use crate::test_support::*;
    use crate::{SimConfig, Simulator};

    fn deliveries(sim: &Simulator) -> Vec<Value> {
        sim.state_json()["deliveries"].as_array().unwrap().clone()
    }

    async fn wait_for_status(sim: &Simulator, status: &str) -> Value {
        wait_for(Duration::from_secs(5), || {
            deliveries(sim)
                .first()
                .is_some_and(|d| d["status"] == status)
        })
        .await;
        deliveries(sim).remove(0)
    }

    #[tokio::test]
    async fn redelivered_with_the_same_uuid_after_the_receiver_recovers() {
        let sim = sim();
        let router = sim.router();
        let receiver = Receiver::scripted(&[500, 503], None).await;
        receiver.register(&router, &["customer_created"]).await;
        post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "3105550147", "text": "hi"}),
        )
        .await;

        let delivery = wait_for_status(&sim, "delivered").await;
        let bodies = receiver.bodies();
        assert_eq!(bodies.len(), 3);
        assert!(
            bodies.iter().all(|body| body == &bodies[0]),
            "same body, same uuid"
        );
        assert_eq!(delivery["uuid"], bodies[0]["uuid"]);
        assert_eq!(delivery["action"], "customer_created");
        let codes: Vec<&Value> = delivery["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|attempt| &attempt["status_code"])
            .collect();
        assert_eq!(codes, [&json!(500), &json!(503), &json!(200)]);
        assert_eq!(
            delivery["attempts"][0]["error"],
            "HTTP 500 Internal Server Error"
        );
        assert_eq!(delivery["next_attempt_at"], Value::Null);
    }

    #[tokio::test]
    async fn gives_up_after_the_configured_retries() {
        let sim = Simulator::new(SimConfig {
            retry_delays: vec![Duration::from_millis(10); 2],
            ..test_config()
        });
        let router = sim.router();
        let receiver = Receiver::scripted(&[500; 10], None).await;
        receiver.register(&router, &["customer_created"]).await;
        post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "3105550147", "text": "hi"}),
        )
        .await;

        let delivery = wait_for_status(&sim, "failed").await;
        assert_eq!(delivery["attempts"].as_array().unwrap().len(), 3);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(receiver.bodies().len(), 3, "one attempt plus two retries");
    }

    #[tokio::test]
    async fn timeouts_count_as_failures() {
        let sim = Simulator::new(SimConfig {
            delivery_timeout: Duration::from_millis(100),
            ..test_config()
        });
        let router = sim.router();
        let receiver = Receiver::scripted(&[], Some(Duration::from_millis(500))).await;
        receiver.register(&router, &["customer_created"]).await;
        post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "3105550147", "text": "hi"}),
        )
        .await;

        let delivery = wait_for_status(&sim, "delivered").await;
        let attempts = delivery["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0]["error"], "timed out");
        assert_eq!(attempts[0]["status_code"], Value::Null);
        assert_eq!(attempts[1]["status_code"], 200);
    }

    #[tokio::test]
    async fn unreachable_receivers_fail_with_the_error() {
        let sim = Simulator::new(SimConfig {
            retry_delays: vec![Duration::from_millis(10)],
            ..test_config()
        });
        let router = sim.router();
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        post_json(
            &router,
            "/api/v1/webhooks",
            &json!({"webhook": {"active": true, "url": format!("http://127.0.0.1:{port}/x"),
                                "settings": {"customer_created": "true"}}}),
        )
        .await;
        post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "3105550147", "text": "hi"}),
        )
        .await;
        let delivery = wait_for_status(&sim, "failed").await;
        let attempts = delivery["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2);
        assert!(attempts[0]["error"]
            .as_str()
            .unwrap()
            .contains("error sending request"));
    }

    #[tokio::test]
    async fn a_reset_drops_pending_retries() {
        let sim = Simulator::new(SimConfig {
            retry_delays: vec![Duration::from_millis(100)],
            ..test_config()
        });
        let router = sim.router();
        let receiver = Receiver::scripted(&[500], None).await;
        receiver.register(&router, &["customer_created"]).await;
        post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "3105550147", "text": "hi"}),
        )
        .await;
        receiver.wait_for(1).await;
        post_json(&router, "/_sim/reset", &json!({})).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(receiver.bodies().len(), 1);
        assert!(deliveries(&sim).is_empty());
    }
}
