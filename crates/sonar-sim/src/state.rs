//! The simulator's in-memory state and the state changes shared by several endpoints.
//!
//! One [`State`] lives behind one mutex in [`crate::Shared`]. Handlers validate and mint ids
//! before taking the lock, change the state under it, and serialize their answer; webhook
//! deliveries leave through a channel (see [`crate::delivery`]), never under the lock.
//! Serializing a `State` gives the body of `GET /_sim/state`.

use std::collections::HashMap;
use std::sync::Weak;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::delivery::{Delivery, Job};
use crate::events::Event;
use crate::ids;
use crate::ring::Ring;
use crate::Shared;

/// The company number texting every customer (`assigned_phone_number`).
pub(crate) const COMPANY_NUMBER: &str = "+13105550100";

/// How many messages the simulator keeps (the oldest are dropped): bounded memory under load.
pub(crate) const MAX_MESSAGES: usize = 100_000;
/// How many webhook deliveries the simulator keeps (the oldest are dropped).
pub(crate) const MAX_DELIVERIES: usize = 10_000;

/// Identical outbound messages to one customer within this window are duplicates (§5.6).
const DUPLICATE_WINDOW_MS: i64 = 7_000;

/// An agent of the company (§6.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct User {
    #[serde(default)]
    pub(crate) first_name: String,
    #[serde(default)]
    pub(crate) last_name: String,
    pub(crate) email: String,
}

impl User {
    /// "First Last", or the email when both names are empty.
    pub(crate) fn display_name(&self) -> String {
        full_name(Some(&self.first_name), Some(&self.last_name))
            .unwrap_or_else(|| self.email.clone())
    }
}

/// "First Last" with blanks dropped; `None` when both are empty.
fn full_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let name = [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!name.is_empty()).then_some(name)
}

/// A conversation's status in the Sonar UI (§6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ThreadState {
    Unreplied,
    Replied,
    Closed,
}

impl ThreadState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ThreadState::Unreplied => "unreplied",
            ThreadState::Replied => "replied",
            ThreadState::Closed => "closed",
        }
    }
}

/// A customer (§6.1); serializes to the contract's customer object.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Customer {
    pub(crate) phone_number: String,
    pub(crate) first_name: Option<String>,
    pub(crate) last_name: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) picture_url: Option<String>,
    pub(crate) subscribed: bool,
    pub(crate) unsubscribed_at: Option<String>,
    /// Property name → string value.
    pub(crate) properties: Map<String, Value>,
    pub(crate) assigned_phone_number: &'static str,
    pub(crate) external_id: Option<String>,
    pub(crate) assignee: Option<User>,
    pub(crate) zip_code: Option<String>,
    pub(crate) timezone: Option<String>,
    pub(crate) state: ThreadState,
    /// The last queued outbound message, for the duplicate check.
    #[serde(skip)]
    last_outbound: Option<u64>,
}

impl Customer {
    fn new(phone_number: String) -> Self {
        Self {
            phone_number,
            first_name: None,
            last_name: None,
            email: None,
            picture_url: None,
            subscribed: true,
            unsubscribed_at: None,
            properties: Map::new(),
            assigned_phone_number: COMPANY_NUMBER,
            external_id: Some(ids::new_customer_id()),
            assignee: None,
            zip_code: None,
            timezone: None,
            state: ThreadState::Unreplied,
            last_outbound: None,
        }
    }

    /// "First Last", or the phone number when both names are empty (§7.2).
    pub(crate) fn display_name(&self) -> String {
        full_name(self.first_name.as_deref(), self.last_name.as_deref())
            .unwrap_or_else(|| self.phone_number.clone())
    }
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Direction {
    Inbound,
    Outbound,
}

/// What happened to a message: received from a customer, queued for sending, or not sent
/// because the customer unsubscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MessageStatus {
    Received,
    Queued,
    Unsubscribed,
}

impl MessageStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Received => "received",
            MessageStatus::Queued => "queued",
            MessageStatus::Unsubscribed => "unsubscribed",
        }
    }
}

/// A message about to be stored; its ids and time are minted before the lock is taken.
#[derive(Debug)]
pub(crate) struct NewMessage {
    pub(crate) message_id: String,
    pub(crate) external_id: String,
    pub(crate) text: String,
    pub(crate) media_url: Option<String>,
    pub(crate) tag_names: Vec<String>,
    pub(crate) created: DateTime<Utc>,
    pub(crate) created_at: String,
}

impl NewMessage {
    pub(crate) fn new(text: String, media_url: Option<String>, tag_names: Vec<String>) -> Self {
        let created = Utc::now();
        Self {
            message_id: ids::new_uuid(),
            external_id: ids::new_external_id(),
            text,
            media_url,
            tag_names,
            created,
            created_at: ids::timestamp(created),
        }
    }
}

/// A stored message, inbound or outbound.
#[derive(Debug, Serialize)]
pub(crate) struct Message {
    pub(crate) message_id: String,
    pub(crate) external_id: String,
    pub(crate) direction: Direction,
    pub(crate) phone_number: String,
    pub(crate) text: String,
    pub(crate) media_url: Option<String>,
    pub(crate) tag_names: Vec<String>,
    /// The agent: the assignee for inbound messages, the sender for outbound (null for API sends).
    pub(crate) user: Option<User>,
    pub(crate) status: MessageStatus,
    pub(crate) created_at: String,
    #[serde(skip)]
    created: DateTime<Utc>,
}

/// A campaign seeded through `/_sim/seed`; sent by id or slug.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Campaign {
    pub(crate) id: String,
    pub(crate) slug: String,
    pub(crate) text: String,
}

/// Where a campaign send stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SendStatus {
    Scheduled,
    Sent,
    Unsubscribed,
}

/// One `POST /v1/campaigns`: sent at once or scheduled for `send_at`.
#[derive(Debug, Serialize)]
pub(crate) struct CampaignSend {
    pub(crate) id: u64,
    pub(crate) campaign_id: String,
    pub(crate) slug: String,
    pub(crate) to: String,
    pub(crate) text: String,
    pub(crate) status: SendStatus,
    pub(crate) send_at: Option<String>,
    pub(crate) created_at: String,
    pub(crate) sent_at: Option<String>,
    pub(crate) message_id: Option<String>,
}

/// A webhook registration (§5.10); serializes to the contract's webhook object.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Webhook {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) active: bool,
    pub(crate) url: String,
    pub(crate) http_method: String,
    /// Event name → `"true"` / `"false"`.
    pub(crate) settings: Map<String, Value>,
    pub(crate) payload: String,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

impl Webhook {
    /// Whether this webhook wants deliveries of `event`.
    pub(crate) fn wants(&self, event: Event) -> bool {
        self.active
            && self
                .settings
                .get(event.as_str())
                .is_some_and(|value| value.as_str() == Some("true"))
    }
}

/// Everything the simulator holds. Serializes to
/// `{customers, messages, users, tags, campaigns, campaign_sends, webhooks, deliveries}`.
#[derive(Serialize)]
pub(crate) struct State {
    pub(crate) customers: Vec<Customer>,
    /// The newest [`MAX_MESSAGES`] messages, by sequence number.
    pub(crate) messages: Ring<Message>,
    pub(crate) users: Vec<User>,
    pub(crate) tags: Vec<String>,
    pub(crate) campaigns: Vec<Campaign>,
    pub(crate) campaign_sends: Vec<CampaignSend>,
    pub(crate) webhooks: Vec<Webhook>,
    /// The newest [`MAX_DELIVERIES`] deliveries; a delivery's id is its sequence number + 1.
    pub(crate) deliveries: Ring<Delivery>,
    #[serde(skip)]
    customer_index: HashMap<String, usize>,
    #[serde(skip)]
    /// External id → sequence number of every retained message.
    message_index: HashMap<String, u64>,
    #[serde(skip)]
    pub(crate) next_webhook_id: u64,
    /// Bumped by every reset: work started before it (retries, scheduled sends) is dropped.
    #[serde(skip)]
    pub(crate) generation: u64,
    /// Whether identical messages within 7 s are refused (§5.6); off by default.
    #[serde(skip)]
    pub(crate) duplicate_check: bool,
    #[serde(skip)]
    pub(crate) shared: Weak<Shared>,
    /// The channel to the delivery dispatcher, started on first use.
    #[serde(skip)]
    pub(crate) outbox: Option<UnboundedSender<Job>>,
    #[serde(skip)]
    pub(crate) publishable_key: String,
    #[serde(skip)]
    pub(crate) company_name: String,
}

impl State {
    /// Empty state; `publishable_key` and `company_name` go into webhook payloads.
    pub(crate) fn new(shared: Weak<Shared>, publishable_key: String, company_name: String) -> Self {
        Self {
            customers: Vec::new(),
            messages: Ring::new(MAX_MESSAGES),
            users: Vec::new(),
            tags: Vec::new(),
            campaigns: Vec::new(),
            campaign_sends: Vec::new(),
            webhooks: Vec::new(),
            deliveries: Ring::new(MAX_DELIVERIES),
            customer_index: HashMap::new(),
            message_index: HashMap::new(),
            next_webhook_id: 1,
            generation: 0,
            duplicate_check: false,
            shared,
            outbox: None,
            publishable_key,
            company_name,
        }
    }

    /// Forgets everything (the configuration stays) and orphans in-flight background work.
    pub(crate) fn reset(&mut self) {
        let generation = self.generation + 1;
        let outbox = self.outbox.take();
        let fresh = State::new(
            self.shared.clone(),
            std::mem::take(&mut self.publishable_key),
            std::mem::take(&mut self.company_name),
        );
        *self = State {
            generation,
            outbox,
            ..fresh
        };
    }

    pub(crate) fn customer_idx(&self, phone_number: &str) -> Option<usize> {
        self.customer_index.get(phone_number).copied()
    }

    pub(crate) fn customer_idx_by_email(&self, email: &str) -> Option<usize> {
        self.customers
            .iter()
            .position(|customer| customer.email.as_deref() == Some(email))
    }

    /// Adds a customer with default fields; fires nothing.
    pub(crate) fn create_customer(&mut self, phone_number: String) -> usize {
        let idx = self.customers.len();
        self.customer_index.insert(phone_number.clone(), idx);
        self.customers.push(Customer::new(phone_number));
        idx
    }

    /// The customer with `phone_number`, created (firing `customer_created`) when unknown.
    pub(crate) fn ensure_customer(&mut self, phone_number: &str) -> usize {
        if let Some(idx) = self.customer_idx(phone_number) {
            return idx;
        }
        let idx = self.create_customer(phone_number.to_owned());
        self.emit_customer_event(Event::CustomerCreated, idx);
        idx
    }

    pub(crate) fn user(&self, email: &str) -> Option<&User> {
        self.users.iter().find(|user| user.email == email)
    }

    pub(crate) fn has_tag(&self, name: &str) -> bool {
        self.tags.iter().any(|tag| tag == name)
    }

    /// The first of `names` that is not a known tag.
    pub(crate) fn unknown_tag<'a>(&self, names: &'a [String]) -> Option<&'a String> {
        names.iter().find(|name| !self.has_tag(name))
    }

    pub(crate) fn message_seq(&self, external_id: &str) -> Option<u64> {
        self.message_index.get(external_id).copied()
    }

    /// Sets the thread state; returns the previous one when it changed.
    pub(crate) fn change_thread_state(
        &mut self,
        customer: usize,
        state: ThreadState,
    ) -> Option<ThreadState> {
        let current = &mut self.customers[customer].state;
        if *current == state {
            return None;
        }
        Some(std::mem::replace(current, state))
    }

    /// Sets the assignee; returns whether it changed.
    pub(crate) fn assign(&mut self, customer: usize, user: Option<User>) -> bool {
        let current = &mut self.customers[customer].assignee;
        if *current == user {
            return false;
        }
        *current = user;
        true
    }

    /// Sets `subscribed`, firing `customer_subscribed` / `customer_unsubscribed` on a flip.
    pub(crate) fn set_subscribed(&mut self, customer: usize, subscribed: bool) {
        let entry = &mut self.customers[customer];
        if entry.subscribed == subscribed {
            return;
        }
        entry.subscribed = subscribed;
        entry.unsubscribed_at = (!subscribed).then(ids::now);
        let event = if subscribed {
            Event::CustomerSubscribed
        } else {
            Event::CustomerUnsubscribed
        };
        self.emit_customer_event(event, customer);
    }

    fn push_message(
        &mut self,
        customer: usize,
        message: NewMessage,
        direction: Direction,
        status: MessageStatus,
        user: Option<User>,
    ) -> u64 {
        let external_id = message.external_id.clone();
        let (seq, evicted) = self.messages.push(Message {
            message_id: message.message_id,
            external_id: message.external_id,
            direction,
            phone_number: self.customers[customer].phone_number.clone(),
            text: message.text,
            media_url: message.media_url,
            tag_names: message.tag_names,
            user,
            status,
            created_at: message.created_at,
            created: message.created,
        });
        if let Some(evicted) = evicted {
            self.message_index.remove(&evicted.external_id);
        }
        self.message_index.insert(external_id, seq);
        seq
    }

    /// Whether `text` / `media_url` repeats the customer's last queued message within 7 s.
    pub(crate) fn is_duplicate(
        &self,
        customer: usize,
        text: &str,
        media_url: Option<&str>,
        at: DateTime<Utc>,
    ) -> bool {
        let Some(last) = self.customers[customer]
            .last_outbound
            .and_then(|seq| self.messages.get(seq))
        else {
            return false;
        };
        last.text == text
            && last.media_url.as_deref() == media_url
            && (at - last.created).num_milliseconds() < DUPLICATE_WINDOW_MS
    }

    /// Stores an outbound message from the company (API or campaign). A subscribed customer's
    /// message is queued: `outbound_message` fires and the thread becomes `replied`.
    /// Returns the message's sequence number and status.
    pub(crate) fn send_outbound(
        &mut self,
        customer: usize,
        message: NewMessage,
    ) -> (u64, MessageStatus) {
        let status = if self.customers[customer].subscribed {
            MessageStatus::Queued
        } else {
            MessageStatus::Unsubscribed
        };
        let idx = self.push_message(customer, message, Direction::Outbound, status, None);
        if status == MessageStatus::Queued {
            self.customers[customer].last_outbound = Some(idx);
            let previous = self.change_thread_state(customer, ThreadState::Replied);
            self.emit_message_event(Event::OutboundMessage, idx);
            if let Some(previous) = previous {
                self.emit_state_changed(customer, previous);
            }
        }
        (idx, status)
    }

    /// Stores an inbound SMS: `new_assigned_message` or `new_unassigned_message` fires and the
    /// thread becomes `unreplied`. Returns the message's sequence number.
    pub(crate) fn receive_inbound(&mut self, customer: usize, message: NewMessage) -> u64 {
        let user = self.customers[customer].assignee.clone();
        let event = if user.is_some() {
            Event::NewAssignedMessage
        } else {
            Event::NewUnassignedMessage
        };
        let idx = self.push_message(
            customer,
            message,
            Direction::Inbound,
            MessageStatus::Received,
            user,
        );
        let previous = self.change_thread_state(customer, ThreadState::Unreplied);
        self.emit_message_event(event, idx);
        if let Some(previous) = previous {
            self.emit_state_changed(customer, previous);
        }
        idx
    }

    /// Adds `tag` to a message (firing `tag_added_to_message`); false when already there.
    pub(crate) fn add_message_tag(&mut self, message: u64, tag: &str) -> bool {
        let tags = &mut self.messages[message].tag_names;
        if tags.iter().any(|name| name == tag) {
            return false;
        }
        tags.push(tag.to_owned());
        self.emit_tag_event(Event::TagAddedToMessage, message, tag);
        true
    }

    /// Removes `tag` from a message (firing `tag_removed_from_message`); false when absent.
    pub(crate) fn remove_message_tag(&mut self, message: u64, tag: &str) -> bool {
        let tags = &mut self.messages[message].tag_names;
        let Some(position) = tags.iter().position(|name| name == tag) else {
            return false;
        };
        tags.remove(position);
        self.emit_tag_event(Event::TagRemovedFromMessage, message, tag);
        true
    }

    /// The customer a message belongs to.
    pub(crate) fn message_customer(&self, message: u64) -> Option<usize> {
        self.customer_idx(&self.messages[message].phone_number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new(
            Weak::new(),
            "sim-publishable-key".to_owned(),
            "Co".to_owned(),
        )
    }

    #[test]
    fn outbound_then_inbound_moves_the_thread() {
        let mut state = state();
        let customer = state.ensure_customer("+13105550147");
        assert_eq!(state.customers[customer].state, ThreadState::Unreplied);
        let (_, status) =
            state.send_outbound(customer, NewMessage::new("hi".to_owned(), None, Vec::new()));
        assert_eq!(status, MessageStatus::Queued);
        assert_eq!(state.customers[customer].state, ThreadState::Replied);
        state.receive_inbound(customer, NewMessage::new("yo".to_owned(), None, Vec::new()));
        assert_eq!(state.customers[customer].state, ThreadState::Unreplied);
        assert_eq!(state.messages.len(), 2);
    }

    #[test]
    fn unsubscribed_customers_get_nothing() {
        let mut state = state();
        let customer = state.ensure_customer("+13105550147");
        state.set_subscribed(customer, false);
        assert!(state.customers[customer].unsubscribed_at.is_some());
        let (_, status) =
            state.send_outbound(customer, NewMessage::new("hi".to_owned(), None, Vec::new()));
        assert_eq!(status, MessageStatus::Unsubscribed);
        assert_eq!(state.customers[customer].state, ThreadState::Unreplied);
    }

    #[test]
    fn duplicates_within_seven_seconds() {
        let mut state = state();
        let customer = state.ensure_customer("+13105550147");
        let message = NewMessage::new("hi".to_owned(), None, Vec::new());
        let at = message.created;
        state.send_outbound(customer, message);
        assert!(state.is_duplicate(customer, "hi", None, at));
        assert!(!state.is_duplicate(customer, "other", None, at));
        assert!(!state.is_duplicate(customer, "hi", None, at + chrono::TimeDelta::seconds(8)));
    }

    #[test]
    fn old_messages_are_dropped_with_their_index_entries() {
        let mut state = state();
        state.messages = Ring::new(2);
        let customer = state.ensure_customer("+13105550147");
        let ids: Vec<String> = (0..3)
            .map(|n| {
                let message = NewMessage::new(format!("m{n}"), None, Vec::new());
                let external_id = message.external_id.clone();
                state.send_outbound(customer, message);
                external_id
            })
            .collect();
        assert_eq!(state.message_seq(&ids[0]), None);
        assert_eq!(state.message_seq(&ids[1]), Some(1));
        assert_eq!(state.message_seq(&ids[2]), Some(2));
        assert_eq!(state.message_index.len(), 2);
        assert_eq!(state.messages[2].text, "m2");
    }

    #[test]
    fn reset_keeps_config_and_bumps_generation() {
        let mut state = state();
        state.ensure_customer("+13105550147");
        state.tags.push("vip".to_owned());
        state.reset();
        assert!(state.customers.is_empty() && state.tags.is_empty());
        assert!(state.customer_idx("+13105550147").is_none());
        assert_eq!(state.generation, 1);
        assert_eq!(state.publishable_key, "sim-publishable-key");
    }

    #[test]
    fn names_fall_back() {
        let mut customer = Customer::new("+13105550147".to_owned());
        assert_eq!(customer.display_name(), "+13105550147");
        customer.first_name = Some("Maya".to_owned());
        assert_eq!(customer.display_name(), "Maya");
        customer.last_name = Some("Okafor".to_owned());
        assert_eq!(customer.display_name(), "Maya Okafor");
    }
}
