//! `sonar.send_message`: texts a customer. Unknown numbers become new customers; an
//! unsubscribed customer is not texted (`status` is `unsubscribed`). Tags must already
//! exist in the Sonar account, or the message is refused (DataError `Tag not found`).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value};
use weft_engine::spec::{field, out, FieldType, Kind, ModuleSpec};
use weft_engine::{Bundle, Input, Module, ModuleError, RunContext};

use super::nonempty;
use crate::connection::SonarConnection;
use crate::phone;

/// `sonar.send_message`.
pub struct SendMessage;

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.send_message",
    kind: Kind::Action,
    label: "Send a message",
    help: "Sends an SMS (or MMS with `media_url`) to a customer (`POST /v1/messages`); an unknown number becomes a new customer. Outputs the queued message; `status` is `queued`, or `unsubscribed` when the customer opted out and nothing was sent.",
    app: Some("sonar"),
    fields: &[
        field("phone_number", FieldType::Phone).required().help("The recipient's phone number: E.164 or a national number of the connection's `default_country`.").example("\"{{1.customer.phone_number}}\""),
        field("text", FieldType::Text).help("The message; required unless `media_url` is given.").example("\"Hi {{1.customer.first_name}}, your bike is ready.\""),
        field("media_url", FieldType::Url).help("A picture (MMS) or `.vcf` file to attach.").example("https://cdn.example.com/receipt.png"),
        field("tag_names", FieldType::Array).items(FieldType::Text).help("Tags to put on the message; each must exist in the Sonar account.").example("[service, welcome]"),
    ],
    output: &[
        out("to", FieldType::Phone, "The recipient, E.164."),
        out("text", FieldType::Text, "The text sent."),
        out("status", FieldType::Text, "`queued` (sent within seconds) or `unsubscribed` (not sent)."),
        out("external_id", FieldType::Text, "External id of the message (for `sonar.append_message_tag`)."),
        out("message_id", FieldType::Text, "Sonar's id of the message."),
        out("media_url", FieldType::Url, "The attachment, or null."),
        out("tag_names", FieldType::Array, "Tags on the message."),
        out("created_at", FieldType::Date, "When Sonar accepted it."),
    ],
};

#[derive(Deserialize)]
struct SendMessageInput {
    phone_number: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    media_url: Option<String>,
    #[serde(default)]
    tag_names: Option<Value>,
}

#[async_trait]
impl Module for SendMessage {
    fn spec(&self) -> &'static ModuleSpec {
        &SPEC
    }

    async fn run(&self, cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        let sonar = cx.connection::<SonarConnection>()?;
        let input: SendMessageInput = input.into_typed()?;
        let to = phone::normalize_field("phone_number", &input.phone_number, sonar.country)?;
        // Keep the text as written (leading spaces may matter); only a blank one is absent.
        let text = input.text.filter(|t| !t.trim().is_empty());
        let media_url = nonempty(input.media_url);
        if text.is_none() && media_url.is_none() {
            return Err(ModuleError::data(
                "field `text` is required unless `media_url` is given",
            ));
        }
        let mut body = Map::new();
        body.insert("to".into(), Value::String(to));
        if let Some(text) = text {
            body.insert("text".into(), Value::String(text));
        }
        if let Some(url) = media_url {
            body.insert("media_url".into(), Value::String(url));
        }
        let tags = tag_names(input.tag_names)?;
        if !tags.is_empty() {
            body.insert(
                "tag_names".into(),
                Value::Array(tags.into_iter().map(Value::String).collect()),
            );
        }
        let answer = sonar.post("/v1/messages", Value::Object(body)).await?;
        Ok(vec![answer])
    }
}

/// Tag names from an array of text (numbers are rendered); blanks and repeats dropped.
fn tag_names(value: Option<Value>) -> Result<Vec<String>, ModuleError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => vec![other],
    };
    let mut tags: Vec<String> = Vec::new();
    for item in items {
        let tag = match item {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            Value::Null => continue,
            other => {
                return Err(ModuleError::data(format!(
                    "field `tag_names`: each tag must be text, got `{other}`"
                )))
            }
        };
        if !tag.is_empty() && !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;
    use weft_engine::ErrorKind;

    use super::*;
    use crate::test_support::Sim;

    #[tokio::test]
    async fn sends_with_tags_and_media() {
        let sim = Sim::start().await;
        sim.seed(json!({"tags": ["service", "welcome"]})).await;
        let out = sim
            .run(
                &SendMessage,
                json!({
                    "phone_number": "(310) 555-0147", "text": "Hi Maya, your bike is ready for pickup.",
                    "media_url": "https://cdn.example.com/receipts/r-1042.png", "tag_names": ["service", " welcome", "service", ""]
                }),
            )
            .await
            .unwrap();
        assert_eq!(out[0]["to"], "+13105550147");
        assert_eq!(out[0]["status"], "queued");
        assert_eq!(out[0]["tag_names"], json!(["service", "welcome"]));
        let state = sim.state();
        let message = &state["messages"][0];
        assert_eq!(message["text"], "Hi Maya, your bike is ready for pickup.");
        assert_eq!(
            message["media_url"],
            "https://cdn.example.com/receipts/r-1042.png"
        );
        assert_eq!(message["external_id"], out[0]["external_id"]);
        assert_eq!(
            state["customers"][0]["phone_number"], "+13105550147",
            "unknown numbers become customers"
        );
    }

    #[tokio::test]
    async fn media_only_is_fine_but_nothing_is_not() {
        let sim = Sim::start().await;
        let out = sim
            .run(&SendMessage, json!({"phone_number": "+13105550147", "text": "  ", "media_url": "https://cdn.example.com/a.png"}))
            .await
            .unwrap();
        assert_eq!(out[0]["status"], "queued");
        let err = sim
            .run(
                &SendMessage,
                json!({"phone_number": "+13105550147", "text": ""}),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert_eq!(
            err.message,
            "field `text` is required unless `media_url` is given"
        );
    }

    #[tokio::test]
    async fn unknown_tag_is_a_data_error_with_sonars_message() {
        let sim = Sim::start().await;
        let err = sim
            .run(
                &SendMessage,
                json!({"phone_number": "+13105550147", "text": "hi", "tag_names": ["vip"]}),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert!(
            err.message.contains("HTTP 400") && err.message.contains("`Tag not found: vip`"),
            "{}",
            err.message
        );
        assert_eq!(sim.state()["messages"], json!([]));
    }

    #[tokio::test]
    async fn unsubscribed_customers_are_not_texted() {
        let sim = Sim::start().await;
        sim.api(
            "POST",
            "/v1/customers",
            json!({"phone_number": "+13105550147", "subscribed": false}),
        )
        .await;
        let out = sim
            .run(
                &SendMessage,
                json!({"phone_number": "+13105550147", "text": "hi"}),
            )
            .await
            .unwrap();
        assert_eq!(out[0]["status"], "unsubscribed");
    }
}
