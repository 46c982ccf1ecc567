//! `sonar.watch_new_customer`: an instant trigger fired when a customer is created in Sonar
//! (Sonar event `customer_created`): an unknown number texted in, or a customer was added by
//! the API or in the app. The bundle is the delivery: the envelope and the new `customer`.

use weft_engine::spec::{Kind, ModuleSpec};

use super::{sonar_trigger, WEBHOOK_NAME};
use crate::outputs::event_outputs;

/// `sonar.watch_new_customer`.
pub struct WatchNewCustomer;

/// The Sonar event it listens to.
const EVENT: &str = "customer_created";

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.watch_new_customer",
    kind: Kind::Trigger,
    label: "Watch new customers",
    help: "Starts an execution for each new customer in Sonar (event `customer_created`): a first text from an unknown number, a customer created by the API or in the app. Outputs the delivery: `uuid`, `action`, `created_at` and the `customer`.",
    app: Some("sonar"),
    fields: &[WEBHOOK_NAME],
    output: event_outputs!(),
};

sonar_trigger!(WatchNewCustomer);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{check_trigger_lifecycle, check_trigger_parse};

    #[test]
    fn parses_deliveries() {
        check_trigger_parse(&WatchNewCustomer, EVENT, "webhook_new_customer.json");
    }

    #[tokio::test]
    async fn activation_reuse_and_deactivation() {
        check_trigger_lifecycle(&WatchNewCustomer, EVENT).await;
    }
}
