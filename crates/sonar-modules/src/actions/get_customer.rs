//! `sonar.get_customer`: looks a customer up by phone number and outputs the customer
//! object. An unknown number fails with a DataError (`Customer not found`); put an error
//! handler with `ignore` or `resume` on the module to treat "not found" as a normal case.

use async_trait::async_trait;
use serde::Deserialize;
use weft_engine::spec::{field, FieldType, Kind, ModuleSpec};
use weft_engine::{Bundle, Input, Module, ModuleError, RunContext};

use crate::connection::SonarConnection;
use crate::outputs::customer_outputs;
use crate::phone;

/// `sonar.get_customer`.
pub struct GetCustomer;

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.get_customer",
    kind: Kind::Search,
    label: "Get a customer",
    help: "Looks a customer up by phone number (`GET /v1/customers`) and outputs the customer. An unknown number fails with a DataError.",
    app: Some("sonar"),
    fields: &[field("phone_number", FieldType::Phone)
        .required()
        .help("The customer's phone number: E.164 or a national number of the connection's `default_country`.")
        .example("\"{{1.customer.phone_number}}\"")],
    output: customer_outputs!(""; []; []),
};

#[derive(Deserialize)]
struct GetCustomerInput {
    phone_number: String,
}

#[async_trait]
impl Module for GetCustomer {
    fn spec(&self) -> &'static ModuleSpec {
        &SPEC
    }

    async fn run(&self, cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        let sonar = cx.connection::<SonarConnection>()?;
        let input: GetCustomerInput = input.into_typed()?;
        let phone = phone::normalize_field("phone_number", &input.phone_number, sonar.country)?;
        let customer = sonar
            .get("/v1/customers", &[("phone_number", &phone)])
            .await?;
        Ok(vec![customer])
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
    async fn finds_a_customer_by_national_number() {
        let sim = Sim::start().await;
        sim.api(
            "POST",
            "/v1/customers",
            json!({"phone_number": "+13105550147", "first_name": "Maya"}),
        )
        .await;
        let out = sim
            .run(&GetCustomer, json!({"phone_number": "(310) 555-0147"}))
            .await
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["phone_number"], "+13105550147");
        assert_eq!(out[0]["first_name"], "Maya");
        assert_eq!(out[0], sim.state()["customers"][0]);
    }

    #[tokio::test]
    async fn unknown_customer_is_a_data_error() {
        let sim = Sim::start().await;
        let err = sim
            .run(&GetCustomer, json!({"phone_number": "+13105550199"}))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert!(
            err.message.contains("HTTP 404") && err.message.contains("`Customer not found`"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn invalid_phone_is_refused_before_sending() {
        let sim = Sim::start().await;
        let err = sim
            .run(&GetCustomer, json!({"phone_number": "111"}))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert!(
            err.message.starts_with("field `phone_number`: `111`"),
            "{}",
            err.message
        );
    }
}
