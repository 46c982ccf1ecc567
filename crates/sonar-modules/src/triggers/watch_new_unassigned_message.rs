//! `sonar.watch_new_unassigned_message`: an instant trigger fired for each text from a
//! customer whose conversation nobody is assigned to (Sonar event `new_unassigned_message`);
//! new customers are unassigned. `user` is null.

use weft_engine::spec::{Kind, ModuleSpec};

use super::{sonar_trigger, WEBHOOK_NAME};
use crate::outputs::message_event_outputs;

/// `sonar.watch_new_unassigned_message`.
pub struct WatchNewUnassignedMessage;

/// The Sonar event it listens to.
const EVENT: &str = "new_unassigned_message";

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.watch_new_unassigned_message",
    kind: Kind::Trigger,
    label: "Watch new unassigned messages",
    help: "Starts an execution for each text from a customer nobody is assigned to (event `new_unassigned_message`), new customers included. Outputs the message and its customer; `user` is null.",
    app: Some("sonar"),
    fields: &[WEBHOOK_NAME],
    output: message_event_outputs!(),
};

sonar_trigger!(WatchNewUnassignedMessage);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{check_trigger_lifecycle, check_trigger_parse};

    #[test]
    fn parses_deliveries() {
        check_trigger_parse(
            &WatchNewUnassignedMessage,
            EVENT,
            "webhook_new_unassigned_message.json",
        );
    }

    #[tokio::test]
    async fn activation_reuse_and_deactivation() {
        check_trigger_lifecycle(&WatchNewUnassignedMessage, EVENT).await;
    }
}
