//! `sonar.send_campaign`: sends one of the account's campaigns (prepared texts with
//! `{{first_name}}`-style placeholders) to a customer, now or at `send_at`.
//!
//! `send_at` takes ISO 8601 (`2026-12-01T09:00:00-08:00`) and the common forms
//! (`2026-12-01 09:00`, `12/01/2026 9:00 AM`, `December 1, 2026 9:00 AM`, unix seconds);
//! a time without an offset is UTC. It is sent to Sonar as ISO 8601 in UTC. Anything else
//! is a DataError; a time in the past sends now.

use async_trait::async_trait;
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::{Map, Value};
use weft_engine::spec::{field, out, FieldType, Kind, ModuleSpec};
use weft_engine::{Bundle, Input, Module, ModuleError, RunContext};

use super::nonempty;
use crate::connection::SonarConnection;
use crate::{dates, phone};

/// `sonar.send_campaign`.
pub struct SendCampaign;

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.send_campaign",
    kind: Kind::Action,
    label: "Send a campaign",
    help: "Sends a campaign to a customer (`POST /v1/campaigns`), now or at `send_at`; an unknown number becomes a new customer and an unknown campaign fails with a DataError. Outputs `status` `queued` or `scheduled`.",
    app: Some("sonar"),
    fields: &[
        field("campaign_id", FieldType::Text).required().help("The campaign's id or its API slug (Sonar: Campaigns).").example("spring-tuneup"),
        field("to", FieldType::Phone).required().help("The recipient's phone number: E.164 or a national number of the connection's `default_country`.").example("\"{{1.customer.phone_number}}\""),
        field("send_at", FieldType::Text).help("When to send: ISO 8601 (`2026-12-01T09:00:00-08:00`), `2026-12-01 09:00`, `12/01/2026 9:00 AM` or unix seconds; no offset means UTC. Empty or past: now.").example("2026-12-01T09:00:00-08:00"),
    ],
    output: &[
        out("to", FieldType::Phone, "The recipient, E.164."),
        out("text", FieldType::Text, "The campaign text, placeholders filled in."),
        out("status", FieldType::Text, "`queued` (sending now) or `scheduled` (at `send_at`)."),
        out("send_at", FieldType::Date, "When it will be sent, for scheduled sends."),
    ],
};

#[derive(Deserialize)]
struct SendCampaignInput {
    #[serde(default)]
    campaign_id: Option<String>,
    to: String,
    #[serde(default)]
    send_at: Option<String>,
}

#[async_trait]
impl Module for SendCampaign {
    fn spec(&self) -> &'static ModuleSpec {
        &SPEC
    }

    async fn run(&self, cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        let sonar = cx.connection::<SonarConnection>()?;
        let input: SendCampaignInput = input.into_typed()?;
        let campaign = nonempty(input.campaign_id)
            .ok_or_else(|| ModuleError::data("field `campaign_id` is required but empty"))?;
        let to = phone::normalize_field("to", &input.to, sonar.country)?;
        let mut body = Map::new();
        body.insert("to".into(), Value::String(to));
        body.insert("campaign_id".into(), Value::String(campaign));
        if let Some(when) = nonempty(input.send_at) {
            body.insert("send_at".into(), Value::String(send_at(&when)?));
        }
        let answer = sonar.post("/v1/campaigns", Value::Object(body)).await?;
        Ok(vec![answer])
    }
}

/// `send_at` as ISO 8601 in UTC, or a DataError saying which forms work.
fn send_at(text: &str) -> Result<String, ModuleError> {
    match dates::parse(text) {
        Some(parsed) => Ok(parsed.instant().to_rfc3339_opts(SecondsFormat::Secs, true)),
        None => {
            let shown: String = text.chars().take(60).collect();
            Err(ModuleError::data(format!(
                "field `send_at`: `{shown}` is not a date; use ISO 8601 (`2026-12-01T09:00:00-08:00`), `2026-12-01 09:00` or `12/01/2026 9:00 AM` (no offset means UTC)"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;
    use weft_engine::ErrorKind;

    use super::*;
    use crate::test_support::Sim;

    const SPRING: &str = "{{first_name}}, spring tune-ups are 15% off this week.";

    async fn seeded() -> Sim {
        let sim = Sim::start().await;
        sim.seed(json!({"campaigns": [{"id": "17", "slug": "spring-tuneup", "text": SPRING}]}))
            .await;
        sim.api(
            "POST",
            "/v1/customers",
            json!({"phone_number": "+13105550147", "first_name": "Maya"}),
        )
        .await;
        sim
    }

    #[test]
    fn send_at_forms() {
        assert_eq!(
            send_at("2026-12-01T09:00:00-08:00").unwrap(),
            "2026-12-01T17:00:00Z"
        );
        assert_eq!(send_at("2026-12-01 09:00").unwrap(), "2026-12-01T09:00:00Z");
        assert_eq!(
            send_at("12/01/2026 9:00 AM").unwrap(),
            "2026-12-01T09:00:00Z"
        );
        let err = send_at("next tuesday").unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert!(
            err.message
                .starts_with("field `send_at`: `next tuesday` is not a date"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn sends_now_by_slug() {
        let sim = seeded().await;
        let out = sim
            .run(
                &SendCampaign,
                json!({"campaign_id": "spring-tuneup", "to": "3105550147"}),
            )
            .await
            .unwrap();
        assert_eq!(out[0]["status"], "queued");
        assert_eq!(
            out[0]["text"],
            "Maya, spring tune-ups are 15% off this week."
        );
        let state = sim.state();
        assert_eq!(state["campaign_sends"][0]["status"], "sent");
        assert_eq!(state["campaign_sends"][0]["to"], "+13105550147");
        assert_eq!(
            state["messages"][0]["text"],
            "Maya, spring tune-ups are 15% off this week."
        );
    }

    #[tokio::test]
    async fn schedules_with_a_common_date_format() {
        let sim = seeded().await;
        let out = sim
            .run(
                &SendCampaign,
                json!({"campaign_id": "17", "to": "+13105550147", "send_at": "12/01/2099 9:00 AM"}),
            )
            .await
            .unwrap();
        assert_eq!(out[0]["status"], "scheduled");
        let state = sim.state();
        assert_eq!(state["campaign_sends"][0]["status"], "scheduled");
        let scheduled = state["campaign_sends"][0]["send_at"].as_str().unwrap();
        assert!(scheduled.starts_with("2099-12-01T09:00:00"), "{scheduled}");
        assert_eq!(state["messages"], json!([]));
    }

    #[tokio::test]
    async fn bad_date_and_unknown_campaign() {
        let sim = seeded().await;
        let err = sim
            .run(
                &SendCampaign,
                json!({"campaign_id": "17", "to": "+13105550147", "send_at": "tomorrow"}),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert!(err.message.contains("`send_at`"), "{}", err.message);
        assert_eq!(sim.state()["campaign_sends"], json!([]));
        let err = sim
            .run(
                &SendCampaign,
                json!({"campaign_id": "nope", "to": "+13105550147"}),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert!(
            err.message.contains("`Campaign not found`"),
            "{}",
            err.message
        );
    }
}
