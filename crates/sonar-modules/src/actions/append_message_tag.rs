//! `sonar.append_message_tag`: puts a tag on a message already sent or received, found by
//! its external id (from `sonar.send_message` or a message trigger). The tag must exist in
//! the Sonar account; a tag already on the message is not added twice.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use weft_engine::spec::{field, out, FieldType, Kind, ModuleSpec};
use weft_engine::{Bundle, Input, Module, ModuleError, RunContext};

use super::nonempty;
use crate::connection::SonarConnection;

/// `sonar.append_message_tag`.
pub struct AppendMessageTag;

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.append_message_tag",
    kind: Kind::Action,
    label: "Append a tag to an existing message",
    help: "Adds a tag to a message (`POST /v1/messages/tags`) and outputs the message's tags. An unknown message or tag fails with a DataError.",
    app: Some("sonar"),
    fields: &[
        field("external_id", FieldType::Text).required().help("The message's external id (`external_id` of `sonar.send_message` or of a message trigger).").example("\"{{2.external_id}}\""),
        field("tag_name", FieldType::Text).required().help("The tag; it must exist in the Sonar account.").example("follow-up"),
    ],
    output: &[
        out("external_id", FieldType::Text, "The message's external id."),
        out("message_id", FieldType::Text, "Sonar's id of the message."),
        out("tag_names", FieldType::Array, "Every tag now on the message."),
    ],
};

#[derive(Deserialize)]
struct AppendMessageTagInput {
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    tag_name: Option<String>,
}

#[async_trait]
impl Module for AppendMessageTag {
    fn spec(&self) -> &'static ModuleSpec {
        &SPEC
    }

    async fn run(&self, cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        let sonar = cx.connection::<SonarConnection>()?;
        let input: AppendMessageTagInput = input.into_typed()?;
        let external_id = nonempty(input.external_id)
            .ok_or_else(|| ModuleError::data("field `external_id` is required but empty"))?;
        let tag_name = nonempty(input.tag_name)
            .ok_or_else(|| ModuleError::data("field `tag_name` is required but empty"))?;
        let answer = sonar
            .post(
                "/v1/messages/tags",
                json!({ "external_id": external_id, "tag_name": tag_name }),
            )
            .await?;
        Ok(vec![answer])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;
    use weft_engine::ErrorKind;

    use super::*;
    use crate::test_support::Sim;

    #[tokio::test]
    async fn tags_a_message_once() {
        let sim = Sim::start().await;
        sim.seed(json!({"tags": ["service", "follow-up"]})).await;
        let sent = sim
            .api(
                "POST",
                "/v1/messages",
                json!({"to": "+13105550147", "text": "hi", "tag_names": ["service"]}),
            )
            .await;
        let external_id = sent["external_id"].as_str().unwrap().to_owned();
        for _ in 0..2 {
            let out = sim
                .run(
                    &AppendMessageTag,
                    json!({"external_id": external_id, "tag_name": "follow-up"}),
                )
                .await
                .unwrap();
            assert_eq!(out[0]["external_id"], json!(external_id));
            assert_eq!(out[0]["tag_names"], json!(["service", "follow-up"]));
        }
        assert_eq!(
            sim.state()["messages"][0]["tag_names"],
            json!(["service", "follow-up"])
        );
    }

    #[tokio::test]
    async fn unknown_message_or_tag() {
        let sim = Sim::start().await;
        sim.seed(json!({"tags": ["service"]})).await;
        let err = sim
            .run(
                &AppendMessageTag,
                json!({"external_id": "nope==", "tag_name": "service"}),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert!(
            err.message.contains("`Message not found`"),
            "{}",
            err.message
        );
        let sent = sim
            .api(
                "POST",
                "/v1/messages",
                json!({"to": "+13105550147", "text": "hi"}),
            )
            .await;
        let err = sim
            .run(
                &AppendMessageTag,
                json!({"external_id": sent["external_id"], "tag_name": "vip"}),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert!(
            err.message.contains("`Tag not found: vip`"),
            "{}",
            err.message
        );
    }
}
