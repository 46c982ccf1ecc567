//! `sonar.delete_customer_property`: removes one custom property from a customer and
//! outputs the removed value. An unknown customer or property fails with a DataError.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use weft_engine::spec::{field, out, FieldType, Kind, ModuleSpec};
use weft_engine::{Bundle, Input, Module, ModuleError, RunContext};

use super::nonempty;
use crate::connection::SonarConnection;
use crate::phone;

/// `sonar.delete_customer_property`.
pub struct DeleteCustomerProperty;

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.delete_customer_property",
    kind: Kind::Action,
    label: "Delete a customer property",
    help: "Removes a custom property from the customer (`DELETE /v1/customers/properties`) and outputs the removed value. An unknown customer or property fails with a DataError.",
    app: Some("sonar"),
    fields: &[
        field("phone_number", FieldType::Phone).required().help("The customer's phone number.").example("\"{{1.customer.phone_number}}\""),
        field("property_name", FieldType::Text).required().help("Name of the property to remove.").example("bikes_owned"),
    ],
    output: &[
        out("property_name", FieldType::Text, "The removed property's name."),
        out("property_value", FieldType::Text, "The value it had."),
        out("phone_number", FieldType::Phone, "The customer's phone number."),
        out("email", FieldType::Email, "The customer's email, or null."),
        out("deleted", FieldType::Boolean, "`true`."),
    ],
};

#[derive(Deserialize)]
struct DeleteCustomerPropertyInput {
    phone_number: String,
    #[serde(default)]
    property_name: Option<String>,
}

#[async_trait]
impl Module for DeleteCustomerProperty {
    fn spec(&self) -> &'static ModuleSpec {
        &SPEC
    }

    async fn run(&self, cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        let sonar = cx.connection::<SonarConnection>()?;
        let input: DeleteCustomerPropertyInput = input.into_typed()?;
        let phone = phone::normalize_field("phone_number", &input.phone_number, sonar.country)?;
        let name = nonempty(input.property_name)
            .ok_or_else(|| ModuleError::data("field `property_name` is required but empty"))?;
        let body = json!({ "phone_number": phone, "property_name": name });
        let answer = sonar
            .request(
                reqwest::Method::DELETE,
                "/v1/customers/properties",
                &[],
                Some(body),
            )
            .await?;
        Ok(vec![answer])
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
    async fn deletes_and_echoes_the_value() {
        let sim = Sim::start().await;
        sim.api("POST", "/v1/customers", json!({"phone_number": "+13105550147", "email": "maya@example.com", "properties": {"plan": "annual", "bikes_owned": "2"}})).await;
        let out = sim
            .run(
                &DeleteCustomerProperty,
                json!({"phone_number": "3105550147", "property_name": "bikes_owned"}),
            )
            .await
            .unwrap();
        assert_eq!(
            out,
            vec![
                json!({"property_name": "bikes_owned", "property_value": "2", "email": "maya@example.com", "phone_number": "+13105550147", "deleted": true})
            ]
        );
        assert_eq!(
            sim.state()["customers"][0]["properties"],
            json!({"plan": "annual"})
        );

        let err = sim
            .run(
                &DeleteCustomerProperty,
                json!({"phone_number": "3105550147", "property_name": "bikes_owned"}),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert!(
            err.message.contains("`Property not found`"),
            "{}",
            err.message
        );
    }
}
