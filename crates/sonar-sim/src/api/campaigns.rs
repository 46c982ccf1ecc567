//! `POST /v1/campaigns` (contract §5.8): send a seeded campaign to a customer, now or at
//! `send_at`. Campaign copy may hold `{{first_name}}`-style placeholders.

use std::sync::{Arc, Weak};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{json_response, phone_param};
use crate::error::{ApiError, Resource};
use crate::ids;
use crate::params::Params;
use crate::state::{
    CampaignSend, Customer, MessageStatus, NewMessage, SendStatus, State as SimState,
};
use crate::Shared;

/// The 202 body; `send_at` only for scheduled sends.
#[derive(Serialize)]
struct SendCampaignResponse<'a> {
    to: &'a str,
    text: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    send_at: Option<&'a str>,
}

/// `POST /v1/campaigns` `{to, campaign_id, send_at?}` → 202, `queued` or `scheduled`
/// (`unsubscribed` when the customer opted out).
pub(crate) async fn send(
    State(shared): State<Arc<Shared>>,
    params: Params,
) -> Result<Response, ApiError> {
    params.require(&["to", "campaign_id"])?;
    let to = phone_param(&params, "to")?;
    let campaign_key = params.text("campaign_id")?.unwrap_or_default();
    let send_at_text = params
        .string("send_at")?
        .filter(|text| !text.trim().is_empty());
    let send_at = match &send_at_text {
        Some(text) => Some(parse_send_at(text)?),
        None => None,
    };
    let now = Utc::now();
    let scheduled_at = send_at.filter(|at| *at > now);

    let mut state = shared.lock();
    let campaign = state
        .campaigns
        .iter()
        .find(|campaign| campaign.id == campaign_key || campaign.slug == campaign_key)
        .cloned()
        .ok_or(ApiError::NotFound(Resource::Campaign))?;
    let customer = state.ensure_customer(&to);
    let text = render(&campaign.text, &state.customers[customer]);
    let send_id = state.campaign_sends.len();
    let mut record = CampaignSend {
        id: send_id as u64 + 1,
        campaign_id: campaign.id,
        slug: campaign.slug,
        to,
        text,
        status: SendStatus::Scheduled,
        send_at: send_at_text,
        created_at: ids::timestamp(now),
        sent_at: None,
        message_id: None,
    };
    let status = match scheduled_at {
        Some(at) => {
            let delay = (at - now).to_std().unwrap_or_default();
            tokio::spawn(send_when_due(
                state.shared.clone(),
                state.generation,
                send_id,
                delay,
            ));
            "scheduled"
        }
        None => {
            let sent = send_now(&mut state, customer, record.text.clone());
            let status = sent.status.as_str();
            sent.record_on(&mut record);
            status
        }
    };
    state.campaign_sends.push(record);
    let record = &state.campaign_sends[send_id];
    let body = SendCampaignResponse {
        to: &record.to,
        text: &record.text,
        status,
        send_at: scheduled_at.and(record.send_at.as_deref()),
    };
    Ok(json_response(StatusCode::ACCEPTED, &body))
}

/// An ISO 8601 time with offset, or a naive one taken as UTC.
fn parse_send_at(text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(at.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S%.f")
        .map(|naive| naive.and_utc())
        .map_err(|_| ApiError::InvalidSendAt)
}

/// The outcome of sending campaign copy, to be written on its [`CampaignSend`].
struct Sent {
    status: MessageStatus,
    sent_at: String,
    message_id: String,
}

impl Sent {
    fn record_on(self, send: &mut CampaignSend) {
        send.status = match self.status {
            MessageStatus::Unsubscribed => SendStatus::Unsubscribed,
            MessageStatus::Queued | MessageStatus::Received => SendStatus::Sent,
        };
        send.sent_at = Some(self.sent_at);
        send.message_id = Some(self.message_id);
    }
}

/// Sends the campaign copy as an outbound message (an `outbound_message` like any other).
fn send_now(state: &mut SimState, customer: usize, text: String) -> Sent {
    let message = NewMessage::new(text, None, Vec::new());
    let sent_at = message.created_at.clone();
    let message_id = message.message_id.clone();
    let (_, status) = state.send_outbound(customer, message);
    Sent {
        status,
        sent_at,
        message_id,
    }
}

/// Performs a scheduled send when it is due, unless the state was reset meanwhile.
async fn send_when_due(
    shared: Weak<Shared>,
    generation: u64,
    send_id: usize,
    delay: std::time::Duration,
) {
    tokio::time::sleep(delay).await;
    let Some(shared) = shared.upgrade() else {
        return;
    };
    let mut state = shared.lock();
    if state.generation != generation {
        return;
    }
    let (to, text) = match state.campaign_sends.get(send_id) {
        Some(send) if send.status == SendStatus::Scheduled => (send.to.clone(), send.text.clone()),
        _ => return,
    };
    let customer = state.ensure_customer(&to);
    let sent = send_now(&mut state, customer, text);
    if let Some(send) = state.campaign_sends.get_mut(send_id) {
        sent.record_on(send);
    }
}

/// Fills `{{field}}` placeholders from the customer (`first_name`, `last_name`, `email`,
/// `phone_number`, `zip_code`, `timezone`, `properties.<name>`); unknown ones become empty.
fn render(template: &str, customer: &Customer) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else {
            break;
        };
        out.push_str(&rest[..open]);
        let field = rest[open + 2..open + 2 + close].trim();
        out.push_str(&lookup(customer, field));
        rest = &rest[open + 2 + close + 2..];
    }
    out.push_str(rest);
    out
}

fn lookup(customer: &Customer, field: &str) -> String {
    let value = match field {
        "first_name" => customer.first_name.as_deref(),
        "last_name" => customer.last_name.as_deref(),
        "email" => customer.email.as_deref(),
        "phone_number" => Some(customer.phone_number.as_str()),
        "zip_code" => customer.zip_code.as_deref(),
        "timezone" => customer.timezone.as_deref(),
        _ => field
            .strip_prefix("properties.")
            .and_then(|name| customer.properties.get(name))
            .and_then(|value| value.as_str()),
    };
    value.unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use axum::http::StatusCode;
    use serde_json::json;

    use crate::test_support::*;

    const SPRING: &str =
        "{{first_name}}, spring tune-ups are 15% off this week. Reply YES to book.";

    fn seeded() -> crate::Simulator {
        let sim = sim_with_agent();
        sim.shared.lock().campaigns.push(crate::state::Campaign {
            id: "17".to_owned(),
            slug: "spring-tuneup".to_owned(),
            text: SPRING.to_owned(),
        });
        sim
    }

    #[tokio::test]
    async fn send_now_by_slug_or_id() {
        let sim = seeded();
        let router = sim.router();
        post_json(
            &router,
            "/api/v1/customers",
            &fixture("request_create_customer.json"),
        )
        .await;
        let (status, body) = post_json(
            &router,
            "/api/v1/campaigns",
            &json!({"to": "+13105550147", "campaign_id": "spring-tuneup"}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_same_shape(&body, &fixture("response_send_campaign.json"));
        assert_eq!(body, fixture("response_send_campaign.json"));
        let (status, body) = post_json(
            &router,
            "/api/v1/campaigns",
            &json!({"to": "3105550148", "campaign_id": 17, "send_at": "2020-01-01T00:00:00Z"}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "a past send_at sends now");
        assert_eq!(body["status"], "queued");
        assert_eq!(
            body["text"],
            ", spring tune-ups are 15% off this week. Reply YES to book."
        );
        let state = sim.state_json();
        assert_eq!(state["campaign_sends"][0]["status"], "sent");
        assert_eq!(state["messages"].as_array().unwrap().len(), 2);
        assert_eq!(state["customers"][1]["phone_number"], "+13105550148");
    }

    #[tokio::test]
    async fn scheduled_send_goes_out_when_due() {
        let sim = seeded();
        let router = sim.router();
        post_json(
            &router,
            "/api/v1/customers",
            &fixture("request_create_customer.json"),
        )
        .await;
        let send_at =
            crate::ids::timestamp(chrono::Utc::now() + chrono::TimeDelta::milliseconds(150));
        let (status, body) = post_json(
            &router,
            "/api/v1/campaigns",
            &json!({"to": "+13105550147", "campaign_id": "spring-tuneup", "send_at": send_at}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_same_shape(&body, &fixture("response_send_campaign_scheduled.json"));
        assert_eq!(body["status"], "scheduled");
        assert_eq!(body["send_at"], json!(send_at));
        assert_eq!(sim.state_json()["messages"], json!([]));
        wait_for(Duration::from_secs(5), || {
            sim.state_json()["campaign_sends"][0]["status"] == "sent"
        })
        .await;
        let state = sim.state_json();
        assert_eq!(state["messages"][0]["text"], body["text"]);
        assert_eq!(state["customers"][0]["state"], "replied");
    }

    #[tokio::test]
    async fn failures() {
        let router = seeded().router();
        let cases = [
            (
                json!({}),
                StatusCode::BAD_REQUEST,
                "to is missing, campaign_id is missing",
            ),
            (
                json!({"to": "111", "campaign_id": "x"}),
                StatusCode::BAD_REQUEST,
                "Invalid Phone Number",
            ),
            (
                json!({"to": "3105550147", "campaign_id": "spring-tuneup", "send_at": "tomorrow"}),
                StatusCode::BAD_REQUEST,
                "Invalid send_at",
            ),
            (
                json!({"to": "3105550147", "campaign_id": "nope"}),
                StatusCode::NOT_FOUND,
                "Campaign not found",
            ),
        ];
        for (request, status, error) in cases {
            let (got, body) = post_json(&router, "/api/v1/campaigns", &request).await;
            assert_eq!(got, status, "{request}");
            assert_eq!(body, json!({ "error": error }));
        }
    }

    #[test]
    fn placeholders() {
        let mut customer =
            crate::state::State::new(std::sync::Weak::new(), String::new(), String::new());
        let idx = customer.create_customer("+13105550147".to_owned());
        let customer = &mut customer.customers[idx];
        customer.first_name = Some("Maya".to_owned());
        customer
            .properties
            .insert("plan".to_owned(), json!("annual"));
        assert_eq!(
            super::render(
                "Hi {{ first_name }} ({{properties.plan}}){{nope}} {{",
                customer
            ),
            "Hi Maya (annual) {{"
        );
    }
}
