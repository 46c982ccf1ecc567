//! `sonar.watch_new_assigned_message`: an instant trigger fired for each text from a
//! customer whose conversation is assigned to an agent (Sonar event `new_assigned_message`).
//! `user` is that agent.

use weft_engine::spec::{Kind, ModuleSpec};

use super::{sonar_trigger, WEBHOOK_NAME};
use crate::outputs::message_event_outputs;

/// `sonar.watch_new_assigned_message`.
pub struct WatchNewAssignedMessage;

/// The Sonar event it listens to.
const EVENT: &str = "new_assigned_message";

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.watch_new_assigned_message",
    kind: Kind::Trigger,
    label: "Watch new assigned messages",
    help: "Starts an execution for each text from a customer whose conversation is assigned to an agent (event `new_assigned_message`). Outputs the message, its customer and the agent (`user`).",
    app: Some("sonar"),
    fields: &[WEBHOOK_NAME],
    output: message_event_outputs!(),
};

sonar_trigger!(WatchNewAssignedMessage);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{check_trigger_lifecycle, check_trigger_parse};

    #[test]
    fn parses_deliveries() {
        check_trigger_parse(
            &WatchNewAssignedMessage,
            EVENT,
            "webhook_new_assigned_message.json",
        );
    }

    #[tokio::test]
    async fn activation_reuse_and_deactivation() {
        check_trigger_lifecycle(&WatchNewAssignedMessage, EVENT).await;
    }
}
