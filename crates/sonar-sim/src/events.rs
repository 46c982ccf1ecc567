//! Webhook events (contract §7): their names and payloads.
//!
//! A state change calls one of the `emit_*` methods while the state is locked. Nothing is built
//! unless an active webhook subscribes to the event; otherwise the payload (common envelope plus
//! the event's fields) is built once per subscribed webhook, each with its own `uuid`, and handed
//! to [`State::enqueue_delivery`] — the HTTP request happens later, in the delivery task.

use serde_json::{Map, Value};

use crate::ids;
use crate::state::{Direction, State, ThreadState};

/// Sonar's webhook event names (`settings` keys and payload `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    CustomerCreated,
    CustomerStateChanged,
    CustomerSubscribed,
    CustomerUnsubscribed,
    UserAssignment,
    NewAssignedMessage,
    NewUnassignedMessage,
    OutboundMessage,
    TagAddedToMessage,
    TagRemovedFromMessage,
}

impl Event {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Event::CustomerCreated => "customer_created",
            Event::CustomerStateChanged => "customer_state_changed",
            Event::CustomerSubscribed => "customer_subscribed",
            Event::CustomerUnsubscribed => "customer_unsubscribed",
            Event::UserAssignment => "user_assignment",
            Event::NewAssignedMessage => "new_assigned_message",
            Event::NewUnassignedMessage => "new_unassigned_message",
            Event::OutboundMessage => "outbound_message",
            Event::TagAddedToMessage => "tag_added_to_message",
            Event::TagRemovedFromMessage => "tag_removed_from_message",
        }
    }
}

/// The thread link of a message in the Sonar UI.
fn thread_link(external_id: &str) -> String {
    format!(
        "https://www.sendsonar.com/threads/{}",
        external_id.trim_end_matches('=')
    )
}

impl State {
    /// An envelope-only event about a customer: `customer_created`, `customer_subscribed`,
    /// `customer_unsubscribed` (§7.4).
    pub(crate) fn emit_customer_event(&mut self, event: Event, customer: usize) {
        self.emit(event, customer, |_, _| {});
    }

    /// `customer_state_changed` with the current `state` and `previous_state` (§7.5).
    pub(crate) fn emit_state_changed(&mut self, customer: usize, previous: ThreadState) {
        self.emit(Event::CustomerStateChanged, customer, |state, payload| {
            let current = state.customers[customer].state;
            payload.insert("state".into(), current.as_str().into());
            payload.insert("previous_state".into(), previous.as_str().into());
        });
    }

    /// `user_assignment`: the envelope plus `user`, the new assignee or null.
    pub(crate) fn emit_user_assignment(&mut self, customer: usize) {
        self.emit(Event::UserAssignment, customer, |state, payload| {
            let user =
                serde_json::to_value(&state.customers[customer].assignee).unwrap_or(Value::Null);
            payload.insert("user".into(), user);
        });
    }

    /// A message event: `new_assigned_message`, `new_unassigned_message`, `outbound_message` (§7.2).
    pub(crate) fn emit_message_event(&mut self, event: Event, message: u64) {
        let Some(customer) = self.message_customer(message) else {
            return;
        };
        self.emit(event, customer, |state, payload| {
            state.message_fields(message, customer, payload);
        });
    }

    /// A tag event: the message fields plus `tag_name` (§7.3).
    pub(crate) fn emit_tag_event(&mut self, event: Event, message: u64, tag: &str) {
        let Some(customer) = self.message_customer(message) else {
            return;
        };
        self.emit(event, customer, |state, payload| {
            payload.insert("tag_name".into(), tag.into());
            state.message_fields(message, customer, payload);
        });
    }

    /// The §7.2 fields of a message.
    fn message_fields(&self, message: u64, customer: usize, payload: &mut Map<String, Value>) {
        let message = &self.messages[message];
        let customer = &self.customers[customer];
        let agent_or_company = || match &message.user {
            Some(user) => user.display_name(),
            None => self.company_name.clone(),
        };
        let (from_name, to_name) = match message.direction {
            Direction::Inbound => (customer.display_name(), agent_or_company()),
            Direction::Outbound => (agent_or_company(), customer.display_name()),
        };
        let user = serde_json::to_value(&message.user).unwrap_or(Value::Null);
        let direction = match message.direction {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        };
        payload.insert("tag_names".into(), message.tag_names.clone().into());
        payload.insert("message_id".into(), message.message_id.clone().into());
        payload.insert("external_id".into(), message.external_id.clone().into());
        payload.insert("text".into(), message.text.clone().into());
        payload.insert("media_url".into(), message.media_url.clone().into());
        payload.insert("from_name".into(), from_name.into());
        payload.insert("to_name".into(), to_name.into());
        payload.insert("link".into(), thread_link(&message.external_id).into());
        payload.insert("user".into(), user);
        payload.insert("direction".into(), direction.into());
    }

    /// Builds the envelope + `fill`'s fields and enqueues one delivery per subscribed webhook.
    fn emit(
        &mut self,
        event: Event,
        customer: usize,
        fill: impl FnOnce(&State, &mut Map<String, Value>),
    ) {
        // The hot path when nobody listens: no allocation at all.
        if !self.webhooks.iter().any(|webhook| webhook.wants(event)) {
            return;
        }
        let mut payload = Map::new();
        payload.insert("uuid".into(), Value::Null);
        payload.insert("action".into(), event.as_str().into());
        payload.insert(
            "company_publishable_key".into(),
            self.publishable_key.clone().into(),
        );
        payload.insert("created_at".into(), ids::now().into());
        let customer_json = serde_json::to_value(&self.customers[customer]).unwrap_or(Value::Null);
        payload.insert("customer".into(), customer_json);
        fill(self, &mut payload);
        let targets: Vec<(u64, String, String)> = self
            .webhooks
            .iter()
            .filter(|webhook| webhook.wants(event))
            .map(|webhook| (webhook.id, webhook.url.clone(), webhook.http_method.clone()))
            .collect();
        for (webhook_id, url, method) in targets {
            let mut body = payload.clone();
            body.insert("uuid".into(), ids::new_uuid().into());
            self.enqueue_delivery(webhook_id, url, &method, event, body);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{json, Value};

    use super::*;
    use crate::test_support::*;

    #[test]
    fn links_drop_the_padding() {
        assert_eq!(
            thread_link("pZ3kQ8rVt2mW9xYbLc4NdA=="),
            "https://www.sendsonar.com/threads/pZ3kQ8rVt2mW9xYbLc4NdA"
        );
    }

    fn actions(bodies: &[Value]) -> Vec<&str> {
        bodies
            .iter()
            .map(|body| body["action"].as_str().unwrap())
            .collect()
    }

    /// Checks the envelope every payload carries (§7.1).
    fn assert_envelope(body: &Value) {
        assert!(uuid::Uuid::parse_str(body["uuid"].as_str().unwrap()).is_ok());
        assert_eq!(body["company_publishable_key"], "sim-publishable-key");
        assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(body["customer"]["phone_number"], "+13105550147");
    }

    /// Drives one customer through every state change and checks each event's payload
    /// against its fixture, in delivery order.
    #[tokio::test]
    async fn every_event_is_delivered_with_the_contract_payload() {
        let sim = sim_with_agent();
        let router = sim.router();
        let receiver = Receiver::start().await;
        receiver.register(&router, &ALL_EVENTS).await;

        post_json(
            &router,
            "/api/v1/customers",
            &fixture("request_create_customer.json"),
        )
        .await;
        post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "(310) 555-0147", "text": "Hi, is my bike done yet?"}),
        )
        .await;
        post_json(
            &router,
            "/_sim/assign",
            &json!({"phone_number": "+13105550147", "user_email": "dana@harborbikes.example"}),
        )
        .await;
        post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "+13105550147", "text": "Thanks Dana! Can I come at 5pm?"}),
        )
        .await;
        let (_, sent) = post_json(
            &router,
            "/api/v1/messages",
            &fixture("request_send_message.json"),
        )
        .await;
        let external_id = sent["external_id"].as_str().unwrap();
        post_json(
            &router,
            "/api/v1/messages/tags",
            &json!({"external_id": external_id, "tag_name": "follow-up"}),
        )
        .await;
        post_json(
            &router,
            "/_sim/message_tags",
            &json!({"external_id": external_id, "remove": ["service", "follow-up"]}),
        )
        .await;
        post_json(
            &router,
            "/api/v1/customers/close",
            &fixture("request_close_customer.json"),
        )
        .await;
        for subscribed in [false, true] {
            post_json(
                &router,
                "/api/v1/customers",
                &json!({"phone_number": "+13105550147", "subscribed": subscribed}),
            )
            .await;
        }

        let expected = [
            "customer_created",
            "new_unassigned_message",
            "user_assignment",
            "new_assigned_message",
            "outbound_message",
            "customer_state_changed",
            "tag_added_to_message",
            "tag_removed_from_message",
            "tag_removed_from_message",
            "customer_state_changed",
            "user_assignment",
            "customer_unsubscribed",
            "customer_subscribed",
        ];
        let bodies = receiver.wait_for(expected.len()).await;
        assert_eq!(actions(&bodies), expected);
        bodies.iter().for_each(assert_envelope);

        let created = &bodies[0];
        assert_same_shape(created, &fixture("webhook_new_customer.json"));
        assert_eq!(created["customer"]["first_name"], "Maya");

        let unassigned = &bodies[1];
        assert_same_shape(unassigned, &fixture("webhook_new_unassigned_message.json"));
        assert_eq!(unassigned["user"], Value::Null);
        assert_eq!(unassigned["from_name"], "Maya Okafor");
        assert_eq!(unassigned["to_name"], "Harbor Bikes");
        assert_eq!(unassigned["direction"], "inbound");
        assert_eq!(unassigned["text"], "Hi, is my bike done yet?");
        let link = format!(
            "https://www.sendsonar.com/threads/{}",
            unassigned["external_id"]
                .as_str()
                .unwrap()
                .trim_end_matches('=')
        );
        assert_eq!(unassigned["link"], json!(link));

        assert_eq!(bodies[2]["user"]["email"], "dana@harborbikes.example");

        let assigned = &bodies[3];
        assert_same_shape(assigned, &fixture("webhook_new_assigned_message.json"));
        assert_eq!(assigned["user"]["first_name"], "Dana");
        assert_eq!(assigned["to_name"], "Dana Reyes");
        assert_eq!(assigned["customer"]["assignee"]["last_name"], "Reyes");

        let outbound = &bodies[4];
        assert_same_shape(outbound, &fixture("webhook_new_outbound_message.json"));
        assert_eq!(outbound["direction"], "outbound");
        assert_eq!(outbound["from_name"], "Harbor Bikes");
        assert_eq!(outbound["to_name"], "Maya Okafor");
        assert_eq!(outbound["external_id"], sent["external_id"]);
        assert_eq!(outbound["tag_names"], json!(["service"]));
        assert_eq!(outbound["customer"]["state"], "replied");

        let replied = &bodies[5];
        assert_same_shape(replied, &fixture("webhook_customer_state_changed.json"));
        assert_eq!(
            (&replied["previous_state"], &replied["state"]),
            (&json!("unreplied"), &json!("replied"))
        );

        let added = &bodies[6];
        assert_same_shape(added, &fixture("webhook_tag_added_to_message.json"));
        assert_eq!(added["tag_name"], "follow-up");
        assert_eq!(added["tag_names"], json!(["service", "follow-up"]));

        let (removed_service, removed_follow_up) = (&bodies[7], &bodies[8]);
        assert_same_shape(
            removed_service,
            &fixture("webhook_tags_removed_from_message.json"),
        );
        assert_eq!(removed_service["tag_name"], "service");
        assert_eq!(removed_service["tag_names"], json!(["follow-up"]));
        assert_eq!(removed_follow_up["tag_name"], "follow-up");
        assert_eq!(removed_follow_up["tag_names"], json!([]));

        let closed = &bodies[9];
        assert_same_shape(closed, &fixture("webhook_customer_state_changed.json"));
        assert_eq!(
            (&closed["previous_state"], &closed["state"]),
            (&json!("replied"), &json!("closed"))
        );
        assert_eq!(closed["customer"]["assignee"], Value::Null);

        assert_eq!(bodies[10]["user"], Value::Null);
        assert_eq!(bodies[11]["customer"]["subscribed"], false);
        assert!(bodies[11]["customer"]["unsubscribed_at"].is_string());
        assert_eq!(bodies[12]["customer"]["subscribed"], true);

        // Every delivery has its own uuid and is logged as delivered.
        let mut uuids: Vec<&str> = bodies.iter().map(|b| b["uuid"].as_str().unwrap()).collect();
        uuids.sort_unstable();
        uuids.dedup();
        assert_eq!(uuids.len(), expected.len());
        wait_for(std::time::Duration::from_secs(5), || {
            let state = sim.state_json();
            state["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|delivery| delivery["status"] == "delivered")
        })
        .await;
    }

    #[tokio::test]
    async fn a_state_change_to_the_same_state_fires_nothing() {
        let sim = sim_with_agent();
        let router = sim.router();
        let receiver = Receiver::start().await;
        receiver
            .register(&router, &["customer_state_changed"])
            .await;
        post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "3105550147", "text": "a"}),
        )
        .await;
        post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "3105550147", "text": "b"}),
        )
        .await;
        post_json(
            &router,
            "/api/v1/messages",
            &json!({"to": "3105550147", "text": "c"}),
        )
        .await;
        post_json(
            &router,
            "/api/v1/messages",
            &json!({"to": "3105550147", "text": "d"}),
        )
        .await;
        let bodies = receiver.wait_for(1).await;
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0]["previous_state"], "unreplied");
        assert_eq!(bodies[0]["state"], "replied");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(receiver.bodies().len(), 1);
    }

    #[tokio::test]
    async fn only_active_subscribed_webhooks_get_deliveries() {
        let sim = sim_with_agent();
        let router = sim.router();
        let wanted = Receiver::start().await;
        let inactive = Receiver::start().await;
        wanted.register(&router, &["customer_created"]).await;
        let id = inactive.register(&router, &ALL_EVENTS).await;
        send_json(
            &router,
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            &json!({"webhook": {"active": false}}),
        )
        .await;
        post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "3105550147", "text": "hi"}),
        )
        .await;
        let bodies = wanted.wait_for(1).await;
        assert_eq!(actions(&bodies), ["customer_created"]);
        let state = sim.state_json();
        assert_eq!(state["deliveries"].as_array().unwrap().len(), 1);
        assert!(inactive.bodies().is_empty());
    }

    #[tokio::test]
    async fn nothing_is_queued_without_webhooks() {
        let sim = sim_with_agent();
        let router = sim.router();
        post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "3105550147", "text": "hi"}),
        )
        .await;
        post_json(
            &router,
            "/api/v1/messages",
            &json!({"to": "3105550147", "text": "yo"}),
        )
        .await;
        assert_eq!(sim.state_json()["deliveries"], json!([]));
        assert!(
            sim.shared.lock().outbox.is_none(),
            "no delivery task started"
        );
    }

    #[tokio::test]
    async fn campaign_sends_are_outbound_messages() {
        let sim = sim_with_agent();
        let router = sim.router();
        let receiver = Receiver::start().await;
        receiver.register(&router, &["outbound_message"]).await;
        post_json(
            &router,
            "/_sim/seed",
            &json!({"campaigns": [{"id": "1", "slug": "hello", "text": "Hello {{first_name}}"}]}),
        )
        .await;
        post_json(
            &router,
            "/api/v1/customers",
            &fixture("request_create_customer.json"),
        )
        .await;
        post_json(
            &router,
            "/api/v1/campaigns",
            &json!({"to": "+13105550147", "campaign_id": "hello"}),
        )
        .await;
        let bodies = receiver.wait_for(1).await;
        assert_same_shape(&bodies[0], &fixture("webhook_new_outbound_message.json"));
        assert_eq!(bodies[0]["text"], "Hello Maya");
    }
}
