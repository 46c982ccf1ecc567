//! `sonar.watch_customer_state_changed`: an instant trigger fired when a customer's
//! conversation changes state — `unreplied` (they texted), `replied` (the company answered),
//! `closed` (Sonar event `customer_state_changed`). The bundle carries `state` and
//! `previous_state`.

use weft_engine::spec::{out, FieldType, Kind, ModuleSpec};

use super::{sonar_trigger, WEBHOOK_NAME};
use crate::outputs::event_outputs;

/// `sonar.watch_customer_state_changed`.
pub struct WatchCustomerStateChanged;

/// The Sonar event it listens to.
const EVENT: &str = "customer_state_changed";

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.watch_customer_state_changed",
    kind: Kind::Trigger,
    label: "Watch customer state changed",
    help: "Starts an execution each time a conversation changes state (event `customer_state_changed`): `unreplied`, `replied`, `closed`. Outputs the delivery with the customer, `state` and `previous_state`.",
    app: Some("sonar"),
    fields: &[WEBHOOK_NAME],
    output: event_outputs!(
        out("state", FieldType::Text, "The new state: `unreplied`, `replied` or `closed`."),
        out("previous_state", FieldType::Text, "The state before."),
    ),
};

sonar_trigger!(WatchCustomerStateChanged);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{check_trigger_lifecycle, check_trigger_parse};

    #[test]
    fn parses_deliveries() {
        check_trigger_parse(
            &WatchCustomerStateChanged,
            EVENT,
            "webhook_customer_state_changed.json",
        );
    }

    #[tokio::test]
    async fn activation_reuse_and_deactivation() {
        check_trigger_lifecycle(&WatchCustomerStateChanged, EVENT).await;
    }
}
