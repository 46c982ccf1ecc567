//! Sonar actions, one file per module (file name = id suffix, type = its UpperCamel).
//! Each answers Sonar's response body as its output bundle.

mod append_message_tag;
mod close_customer;
mod create_update_customer;
mod delete_customer_property;
mod get_customer;
mod make_api_call;
mod send_campaign;
mod send_message;
mod unassign_agent;

pub use append_message_tag::AppendMessageTag;
pub use close_customer::CloseCustomer;
pub use create_update_customer::CreateUpdateCustomer;
pub use delete_customer_property::DeleteCustomerProperty;
pub use get_customer::GetCustomer;
pub use make_api_call::{check_path, MakeApiCall};
pub use send_campaign::SendCampaign;
pub use send_message::SendMessage;
pub use unassign_agent::UnassignAgent;

/// The input of actions that take only the customer's phone number.
#[derive(serde::Deserialize)]
struct PhoneInput {
    phone_number: String,
}

/// Posts `{ phone_number }` (normalized to E.164) to `path`; Sonar's answer is the output
/// bundle. Shared by the actions whose whole request is the customer's phone number.
pub(crate) async fn post_phone(
    cx: &weft_engine::RunContext<'_>,
    input: weft_engine::Input,
    path: &str,
) -> Result<Vec<weft_engine::Bundle>, weft_engine::ModuleError> {
    let sonar = cx.connection::<crate::connection::SonarConnection>()?;
    let input: PhoneInput = input.into_typed()?;
    let phone = crate::phone::normalize_field("phone_number", &input.phone_number, sonar.country)?;
    let answer = sonar
        .post(path, serde_json::json!({ "phone_number": phone }))
        .await?;
    Ok(vec![answer])
}

/// `Some(trimmed)` for non-blank text, `None` otherwise (an empty mapped field is left out,
/// so Sonar keeps what it has).
pub(crate) fn nonempty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}
