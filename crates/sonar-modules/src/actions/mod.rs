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

/// `Some(trimmed)` for non-blank text, `None` otherwise (an empty mapped field is left out,
/// so Sonar keeps what it has).
pub(crate) fn nonempty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}
