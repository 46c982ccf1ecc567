//! `sonar.watch_new_outbound_message`: an instant trigger fired for each message the company
//! sends to a customer — an agent in the app, the API, a campaign (Sonar event
//! `outbound_message`). `user` is the sending agent, or null for API sends.

use weft_engine::spec::{Kind, ModuleSpec};

use super::{sonar_trigger, WEBHOOK_NAME};
use crate::outputs::message_event_outputs;

/// `sonar.watch_new_outbound_message`.
pub struct WatchNewOutboundMessage;

/// The Sonar event it listens to.
const EVENT: &str = "outbound_message";

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.watch_new_outbound_message",
    kind: Kind::Trigger,
    label: "Watch new outbound messages",
    help: "Starts an execution for each message the company sends (event `outbound_message`): an agent in the app, the API or a campaign. Outputs the message, its customer and the sending agent (`user`, null for API sends).",
    app: Some("sonar"),
    fields: &[WEBHOOK_NAME],
    output: message_event_outputs!(),
};

sonar_trigger!(WatchNewOutboundMessage);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{check_trigger_lifecycle, check_trigger_parse};

    #[test]
    fn parses_deliveries() {
        check_trigger_parse(
            &WatchNewOutboundMessage,
            EVENT,
            "webhook_new_outbound_message.json",
        );
    }

    #[tokio::test]
    async fn activation_reuse_and_deactivation() {
        check_trigger_lifecycle(&WatchNewOutboundMessage, EVENT).await;
    }
}
