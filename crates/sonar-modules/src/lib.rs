//! weft's Sonar app: the `sonar` connection, its HTTP client, and every Sonar trigger and
//! action as a [`Module`] (contract: `shared/sonar-api.md`).
//!
//! - [`connection`]: the `sonar` [`App`] ([`SonarApp`]) and the [`SonarConnection`] handle
//!   (base URL, token, one pooled HTTP client, phone and retry settings).
//! - [`client`]: the one request path every module uses: JSON, `X-Token`, statuses mapped to
//!   Make's error types, bounded retries with backoff and jitter.
//! - [`actions`]: `sonar.get_customer`, `sonar.create_update_customer`,
//!   `sonar.unassign_agent`, `sonar.close_customer`, `sonar.delete_customer_property`,
//!   `sonar.send_message`, `sonar.append_message_tag`, `sonar.send_campaign`,
//!   `sonar.make_api_call`.
//! - [`triggers`]: the seven instant triggers (`sonar.watch_*`), each registering the
//!   scenario's hook URL with Sonar for its event.
//! - [`phone`] and [`dates`]: what users type, normalized to E.164 and ISO 8601.
//!
//! The modules plug into the engine's registry with no change to the engine:
//!
//! ```no_run
//! # fn demo() -> Result<(), weft_engine::registry::DuplicateId> {
//! let registry = weft_engine::Registry::new(
//!     [weft_engine::builtin::modules(), weft_sonar::modules()],
//!     [weft_sonar::apps()],
//! )?;
//! assert!(registry.module("sonar.send_message").is_some());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod actions;
pub mod client;
pub mod connection;
pub mod dates;
mod outputs;
pub mod phone;
#[cfg(test)]
mod test_support;
pub mod triggers;

use weft_engine::{App, Module};

pub use connection::{RetryPolicy, SonarApp, SonarConnection};

/// Every Sonar module, sorted by id.
pub fn modules() -> &'static [&'static dyn Module] {
    &[
        &actions::AppendMessageTag,
        &actions::CloseCustomer,
        &actions::CreateUpdateCustomer,
        &actions::DeleteCustomerProperty,
        &actions::GetCustomer,
        &actions::MakeApiCall,
        &actions::SendCampaign,
        &actions::SendMessage,
        &actions::UnassignAgent,
        &triggers::WatchCustomerStateChanged,
        &triggers::WatchMessageTagAdded,
        &triggers::WatchMessageTagsRemoved,
        &triggers::WatchNewAssignedMessage,
        &triggers::WatchNewCustomer,
        &triggers::WatchNewOutboundMessage,
        &triggers::WatchNewUnassignedMessage,
    ]
}

/// The Sonar app (`app: sonar` connections).
pub fn apps() -> &'static [&'static dyn App] {
    &[&SonarApp]
}

#[cfg(test)]
mod tests {
    use weft_engine::Kind;

    #[test]
    fn ids_are_sorted_unique_and_documented() {
        let ids: Vec<&str> = super::modules().iter().map(|m| m.spec().id).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted, "Sonar modules must be listed sorted and once");
        assert_eq!(ids.len(), 16, "9 actions and 7 triggers");
        for m in super::modules() {
            let spec = m.spec();
            let suffix = spec.id.strip_prefix("sonar.").unwrap_or_default();
            assert!(
                !suffix.is_empty() && suffix.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                spec.id
            );
            assert_eq!(spec.app, Some("sonar"), "{}", spec.id);
            assert!(
                !spec.label.is_empty() && !spec.help.is_empty(),
                "{} has no label or help",
                spec.id
            );
            assert!(!spec.output.is_empty(), "{} documents no output", spec.id);
            for f in spec
                .fields
                .iter()
                .chain(spec.fields.iter().flat_map(|f| f.fields.iter()))
            {
                assert!(!f.help.is_empty(), "{}.{} has no help", spec.id, f.name);
                assert!(
                    !f.example.is_empty(),
                    "{}.{} has no example",
                    spec.id,
                    f.name
                );
            }
            for o in spec.output {
                assert!(
                    !o.help.is_empty(),
                    "{} output `{}` has no help",
                    spec.id,
                    o.name
                );
            }
            let is_trigger = spec.kind == Kind::Trigger;
            assert_eq!(is_trigger, m.as_trigger().is_some(), "{}", spec.id);
            assert_eq!(is_trigger, suffix.starts_with("watch_"), "{}", spec.id);
        }
    }

    #[test]
    fn the_app_and_its_secret() {
        let apps = super::apps();
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].name(), "sonar");
        assert_eq!(apps[0].secret_fields(), &["token"]);
        for f in apps[0].fields() {
            assert!(
                !f.help.is_empty() && !f.example.is_empty(),
                "connection field `{}`",
                f.name
            );
        }
    }
}
