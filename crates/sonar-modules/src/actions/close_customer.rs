//! `sonar.close_customer`: closes the customer's conversation (archives the thread and
//! unassigns it); Sonar then fires `customer_state_changed` if the state changed.

use async_trait::async_trait;
use weft_engine::spec::{field, out, FieldType, Kind, ModuleSpec};
use weft_engine::{Bundle, Input, Module, ModuleError, RunContext};

/// `sonar.close_customer`.
pub struct CloseCustomer;

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.close_customer",
    kind: Kind::Action,
    label: "Close a customer",
    help: "Closes the customer's conversation (`POST /v1/customers/close`): the thread is archived, unassigned and its state becomes `closed`. An unknown customer fails with a DataError.",
    app: Some("sonar"),
    fields: &[field("phone_number", FieldType::Phone)
        .required()
        .help("The customer's phone number.")
        .example("\"{{1.customer.phone_number}}\"")],
    output: &[out("success", FieldType::Boolean, "`true` when Sonar accepted it.")],
};

#[async_trait]
impl Module for CloseCustomer {
    fn spec(&self) -> &'static ModuleSpec {
        &SPEC
    }

    async fn run(&self, cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        super::post_phone(cx, input, "/v1/customers/close").await
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
    async fn closes_the_conversation() {
        let sim = Sim::start().await;
        sim.seed(json!({"users": [{"email": "dana@harborbikes.example"}]}))
            .await;
        sim.api(
            "POST",
            "/v1/customers",
            json!({"phone_number": "+13105550147", "user_email": "dana@harborbikes.example"}),
        )
        .await;
        let out = sim
            .run(&CloseCustomer, json!({"phone_number": "+1 310 555 0147"}))
            .await
            .unwrap();
        assert_eq!(out, vec![json!({"success": true})]);
        let customer = &sim.state()["customers"][0];
        assert_eq!(customer["state"], "closed");
        assert!(customer["assignee"].is_null());
    }

    #[tokio::test]
    async fn unknown_customer_is_a_data_error() {
        let sim = Sim::start().await;
        let err = sim
            .run(&CloseCustomer, json!({"phone_number": "+13105550199"}))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert!(err.message.contains("HTTP 404"), "{}", err.message);
    }
}
