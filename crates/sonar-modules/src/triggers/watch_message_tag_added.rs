//! `sonar.watch_message_tag_added`: an instant trigger fired when a tag is put on a message,
//! in the app or by `sonar.append_message_tag` (Sonar event `tag_added_to_message`). The
//! bundle is the message with `tag_name` (the tag added) and `tag_names` (all its tags now).

use weft_engine::spec::{out, FieldType, Kind, ModuleSpec};

use super::{sonar_trigger, WEBHOOK_NAME};
use crate::outputs::message_event_outputs;

/// `sonar.watch_message_tag_added`.
pub struct WatchMessageTagAdded;

/// The Sonar event it listens to.
const EVENT: &str = "tag_added_to_message";

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.watch_message_tag_added",
    kind: Kind::Trigger,
    label: "Watch tag added to a message",
    help: "Starts an execution each time a tag is put on a message (event `tag_added_to_message`), in the app or by the API. Outputs the message, `tag_name` (the tag added) and `tag_names` (all tags now on it).",
    app: Some("sonar"),
    fields: &[WEBHOOK_NAME],
    output: message_event_outputs!(out("tag_name", FieldType::Text, "The tag that was added.")),
};

sonar_trigger!(WatchMessageTagAdded);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{check_trigger_lifecycle, check_trigger_parse};

    #[test]
    fn parses_deliveries() {
        check_trigger_parse(
            &WatchMessageTagAdded,
            EVENT,
            "webhook_tag_added_to_message.json",
        );
    }

    #[tokio::test]
    async fn activation_reuse_and_deactivation() {
        check_trigger_lifecycle(&WatchMessageTagAdded, EVENT).await;
    }
}
