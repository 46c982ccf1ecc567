//! `sonar.unassign_agent`: takes the customer's conversation away from its agent, so it is
//! unassigned again. Unassigning an unassigned customer succeeds (nothing changes).

use async_trait::async_trait;
use weft_engine::spec::{field, out, FieldType, Kind, ModuleSpec};
use weft_engine::{Bundle, Input, Module, ModuleError, RunContext};

/// `sonar.unassign_agent`.
pub struct UnassignAgent;

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.unassign_agent",
    kind: Kind::Action,
    label: "Unassign agent from a customer",
    help: "Removes the agent assigned to the customer's conversation (`POST /v1/customers/unassign`); already unassigned is fine. An unknown customer fails with a DataError.",
    app: Some("sonar"),
    fields: &[field("phone_number", FieldType::Phone)
        .required()
        .help("The customer's phone number.")
        .example("\"{{1.customer.phone_number}}\"")],
    output: &[out("success", FieldType::Boolean, "`true` when Sonar accepted it.")],
};

#[async_trait]
impl Module for UnassignAgent {
    fn spec(&self) -> &'static ModuleSpec {
        &SPEC
    }

    async fn run(&self, cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        super::post_phone(cx, input, "/v1/customers/unassign").await
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
    async fn unassigns_and_is_idempotent() {
        let sim = Sim::start().await;
        sim.seed(json!({"users": [{"email": "dana@harborbikes.example"}]}))
            .await;
        sim.api(
            "POST",
            "/v1/customers",
            json!({"phone_number": "+13105550147", "user_email": "dana@harborbikes.example"}),
        )
        .await;
        assert_eq!(
            sim.state()["customers"][0]["assignee"]["email"],
            "dana@harborbikes.example"
        );
        for _ in 0..2 {
            let out = sim
                .run(&UnassignAgent, json!({"phone_number": "3105550147"}))
                .await
                .unwrap();
            assert_eq!(out, vec![json!({"success": true})]);
            assert!(sim.state()["customers"][0]["assignee"].is_null());
        }
    }

    #[tokio::test]
    async fn unknown_customer_is_a_data_error() {
        let sim = Sim::start().await;
        let err = sim
            .run(&UnassignAgent, json!({"phone_number": "+13105550199"}))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert!(
            err.message.contains("`Customer not found`"),
            "{}",
            err.message
        );
    }
}
