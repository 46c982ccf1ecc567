//! Output-field tables shared by several specs: the customer object (contract §6.1) and
//! the webhook payloads (§7). They are macros because a spec's `output` is one `static`
//! slice, and const slices cannot be concatenated.

/// The customer object's output fields, each name prefixed with `$p` (`""` for actions
/// that answer a customer, `"customer."` for webhook payloads), between `before` and
/// `after` fields.
macro_rules! customer_outputs {
    ($p:literal; [$($before:expr),* $(,)?]; [$($after:expr),* $(,)?]) => {
        &[
            $($before,)*
            ::weft_engine::out(concat!($p, "phone_number"), ::weft_engine::FieldType::Phone, "The customer's phone number, E.164 (their unique key)."),
            ::weft_engine::out(concat!($p, "first_name"), ::weft_engine::FieldType::Text, "First name, or null."),
            ::weft_engine::out(concat!($p, "last_name"), ::weft_engine::FieldType::Text, "Last name, or null."),
            ::weft_engine::out(concat!($p, "email"), ::weft_engine::FieldType::Email, "Email address, or null."),
            ::weft_engine::out(concat!($p, "picture_url"), ::weft_engine::FieldType::Url, "Picture URL, or null."),
            ::weft_engine::out(concat!($p, "subscribed"), ::weft_engine::FieldType::Boolean, "Whether the customer receives messages (false once they opted out)."),
            ::weft_engine::out(concat!($p, "unsubscribed_at"), ::weft_engine::FieldType::Date, "When they opted out, or null."),
            ::weft_engine::out(concat!($p, "properties"), ::weft_engine::FieldType::Collection, "Custom properties, name to text value (`{}` when none)."),
            ::weft_engine::out(concat!($p, "assigned_phone_number"), ::weft_engine::FieldType::Phone, "The company number texting this customer, E.164."),
            ::weft_engine::out(concat!($p, "external_id"), ::weft_engine::FieldType::Text, "Sonar's external id of the customer, or null."),
            ::weft_engine::out(concat!($p, "assignee"), ::weft_engine::FieldType::Collection, "The agent the conversation is assigned to (`email`, `first_name`, `last_name`), or null."),
            ::weft_engine::out(concat!($p, "assignee.email"), ::weft_engine::FieldType::Email, "The assigned agent's email."),
            ::weft_engine::out(concat!($p, "zip_code"), ::weft_engine::FieldType::Text, "ZIP code, or null."),
            ::weft_engine::out(concat!($p, "timezone"), ::weft_engine::FieldType::Text, "IANA time zone, or null."),
            ::weft_engine::out(concat!($p, "state"), ::weft_engine::FieldType::Text, "Conversation state: `unreplied`, `replied` or `closed`."),
            $($after,)*
        ]
    };
}

/// A webhook payload's output fields: the envelope (§7.1), the customer, then `extra`.
macro_rules! event_outputs {
    ($($extra:expr),* $(,)?) => {
        $crate::outputs::customer_outputs!("customer."; [
            ::weft_engine::out("uuid", ::weft_engine::FieldType::Text, "Unique id of the delivery (the same on Sonar's redeliveries; use it to drop duplicates)."),
            ::weft_engine::out("action", ::weft_engine::FieldType::Text, "The event name."),
            ::weft_engine::out("company_publishable_key", ::weft_engine::FieldType::Text, "The account's publishable key (tells which Sonar account sent it)."),
            ::weft_engine::out("created_at", ::weft_engine::FieldType::Date, "When the event happened."),
            ::weft_engine::out("customer", ::weft_engine::FieldType::Collection, "The customer the event is about."),
        ]; [$($extra),*])
    };
}

/// A message event's output fields (§7.2): the envelope, the customer, the message, then
/// `extra`.
macro_rules! message_event_outputs {
    ($($extra:expr),* $(,)?) => {
        $crate::outputs::event_outputs!(
            ::weft_engine::out("message_id", ::weft_engine::FieldType::Text, "Sonar's id of the message (UUID)."),
            ::weft_engine::out("external_id", ::weft_engine::FieldType::Text, "External id of the message (what `sonar.append_message_tag` takes)."),
            ::weft_engine::out("text", ::weft_engine::FieldType::Text, "The message text (may be empty for a picture-only message)."),
            ::weft_engine::out("media_url", ::weft_engine::FieldType::Url, "Attached picture or file, or null."),
            ::weft_engine::out("from_name", ::weft_engine::FieldType::Text, "Sender's name (customer, agent or company)."),
            ::weft_engine::out("to_name", ::weft_engine::FieldType::Text, "Recipient's name (customer, agent or company)."),
            ::weft_engine::out("link", ::weft_engine::FieldType::Url, "The conversation in Sonar's web app."),
            ::weft_engine::out("user", ::weft_engine::FieldType::Collection, "The agent involved (`email`, `first_name`, `last_name`), or null."),
            ::weft_engine::out("user.email", ::weft_engine::FieldType::Email, "The agent's email."),
            ::weft_engine::out("tag_names", ::weft_engine::FieldType::Array, "Tags on the message."),
            ::weft_engine::out("direction", ::weft_engine::FieldType::Text, "`inbound` (from the customer) or `outbound` (to the customer)."),
            $($extra),*
        )
    };
}

pub(crate) use {customer_outputs, event_outputs, message_event_outputs};
