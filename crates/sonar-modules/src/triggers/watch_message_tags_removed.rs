//! `sonar.watch_message_tags_removed`: an instant trigger fired when tags are removed from a
//! message in the app (Sonar event `tag_removed_from_message`). Sonar sends one delivery per
//! removed tag, so each removed tag is one execution, with `tag_name` the tag removed and
//! `tag_names` the tags left.

use weft_engine::spec::{out, FieldType, Kind, ModuleSpec};

use super::{sonar_trigger, WEBHOOK_NAME};
use crate::outputs::message_event_outputs;

/// `sonar.watch_message_tags_removed`.
pub struct WatchMessageTagsRemoved;

/// The Sonar event it listens to.
const EVENT: &str = "tag_removed_from_message";

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.watch_message_tags_removed",
    kind: Kind::Trigger,
    label: "Watch tags removed from a message",
    help: "Starts an execution for each tag removed from a message (event `tag_removed_from_message`; removing two tags gives two executions). Outputs the message, `tag_name` (the tag removed) and `tag_names` (the tags left).",
    app: Some("sonar"),
    fields: &[WEBHOOK_NAME],
    output: message_event_outputs!(out("tag_name", FieldType::Text, "The tag that was removed.")),
};

sonar_trigger!(WatchMessageTagsRemoved);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{check_trigger_lifecycle, check_trigger_parse};

    #[test]
    fn parses_deliveries() {
        check_trigger_parse(
            &WatchMessageTagsRemoved,
            EVENT,
            "webhook_tags_removed_from_message.json",
        );
    }

    #[tokio::test]
    async fn activation_reuse_and_deactivation() {
        check_trigger_lifecycle(&WatchMessageTagsRemoved, EVENT).await;
    }
}
