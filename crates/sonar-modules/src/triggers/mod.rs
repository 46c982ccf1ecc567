//! Sonar's instant triggers: one file per module declaring its spec and event; the
//! behaviour they share lives here.
//!
//! - **activate** (`weft serve` activating a scenario): list Sonar's webhooks and reuse one
//!   whose `url` is the scenario's hook URL and whose `settings[event]` is `"true"` (made
//!   active again if it was switched off), else create
//!   `{"webhook": {name, active: "true", url, http_method: "POST", settings: {event: "true"}}}`.
//!   The registration kept for deactivation is `{"webhook_id": N, "reused": bool}`.
//! - **deactivate**: `DELETE /v1/webhooks/{id}`; a webhook already gone (404) is fine.
//! - **parse**: one bundle per delivery, the payload as received (contract §7.6). A delivery
//!   of another event is acknowledged and ignored; only `uuid`, `action` and
//!   `customer.phone_number` are required, anything else may be missing.

mod watch_customer_state_changed;
mod watch_message_tag_added;
mod watch_message_tags_removed;
mod watch_new_assigned_message;
mod watch_new_customer;
mod watch_new_outbound_message;
mod watch_new_unassigned_message;

use std::any::Any;
use std::sync::Arc;

use reqwest::{Method, Url};
use serde_json::{json, Map, Value};
use weft_engine::{Bundle, ModuleError};

use crate::client::Call;
use crate::connection::SonarConnection;

pub use watch_customer_state_changed::WatchCustomerStateChanged;
pub use watch_message_tag_added::WatchMessageTagAdded;
pub use watch_message_tags_removed::WatchMessageTagsRemoved;
pub use watch_new_assigned_message::WatchNewAssignedMessage;
pub use watch_new_customer::WatchNewCustomer;
pub use watch_new_outbound_message::WatchNewOutboundMessage;
pub use watch_new_unassigned_message::WatchNewUnassignedMessage;

/// The `webhook_name` field every Sonar trigger takes.
pub(crate) const WEBHOOK_NAME: weft_engine::FieldSpec = weft_engine::field("webhook_name", weft_engine::FieldType::Text)
    .required()
    .param()
    .help("Name of the webhook weft registers with Sonar for this scenario (shown in Sonar's webhook settings).")
    .example("new customers");

/// Implements `Module` and `Trigger` for a trigger unit struct from its `SPEC` and `EVENT`.
macro_rules! sonar_trigger {
    ($ty:ident) => {
        #[::async_trait::async_trait]
        impl ::weft_engine::Module for $ty {
            fn spec(&self) -> &'static ::weft_engine::ModuleSpec {
                &SPEC
            }

            async fn run(
                &self,
                _cx: &::weft_engine::RunContext<'_>,
                _input: ::weft_engine::Input,
            ) -> Result<Vec<::weft_engine::Bundle>, ::weft_engine::ModuleError> {
                Err(::weft_engine::ModuleError::runtime(
                    "triggers are not run as actions",
                ))
            }

            fn as_trigger(&self) -> Option<&dyn ::weft_engine::Trigger> {
                Some(self)
            }
        }

        #[::async_trait::async_trait]
        impl ::weft_engine::Trigger for $ty {
            fn trigger_kind(&self) -> ::weft_engine::module::TriggerKind {
                ::weft_engine::module::TriggerKind::Instant
            }

            fn event(&self) -> Option<&'static str> {
                Some(EVENT)
            }

            fn parse(
                &self,
                _params: &::serde_json::Map<String, ::serde_json::Value>,
                body: ::serde_json::Value,
            ) -> Result<Vec<::weft_engine::Bundle>, ::weft_engine::ModuleError> {
                $crate::triggers::parse_delivery(EVENT, body)
            }

            fn passes_through(
                &self,
                _params: &::serde_json::Map<String, ::serde_json::Value>,
                body: &::serde_json::Value,
            ) -> Option<Result<bool, ::weft_engine::ModuleError>> {
                Some($crate::triggers::check_delivery(EVENT, body))
            }

            async fn activate(
                &self,
                connection: Option<&::std::sync::Arc<dyn ::std::any::Any + Send + Sync>>,
                params: &::serde_json::Map<String, ::serde_json::Value>,
                hook_url: &str,
            ) -> Result<::serde_json::Value, ::weft_engine::ModuleError> {
                $crate::triggers::activate(EVENT, connection, params, hook_url).await
            }

            async fn deactivate(
                &self,
                connection: Option<&::std::sync::Arc<dyn ::std::any::Any + Send + Sync>>,
                registration: &::serde_json::Value,
            ) -> Result<(), ::weft_engine::ModuleError> {
                $crate::triggers::deactivate(connection, registration).await
            }
        }
    };
}
pub(crate) use sonar_trigger;

/// One delivery → one bundle (the payload as received), or none for another event.
pub(crate) fn parse_delivery(event: &str, body: Value) -> Result<Vec<Bundle>, ModuleError> {
    Ok(if check_delivery(event, &body)? {
        vec![body]
    } else {
        Vec::new()
    })
}

/// Whether a delivery is one of `event` (`false`: another event, ignored); an error when it
/// is not a Sonar delivery at all, or lacks what every bundle of the event must carry.
pub(crate) fn check_delivery(event: &str, body: &Value) -> Result<bool, ModuleError> {
    let Value::Object(payload) = body else {
        return Err(ModuleError::data(format!(
            "a Sonar webhook delivery must be a JSON object, got `{}`",
            preview(body)
        )));
    };
    let action = match payload.get("action") {
        Some(Value::String(a)) if !a.is_empty() => a.as_str(),
        _ => {
            return Err(ModuleError::data(
                "the Sonar webhook delivery has no `action`",
            ))
        }
    };
    if action != event {
        return Ok(false);
    }
    let uuid = payload.get("uuid").and_then(Value::as_str);
    if uuid.is_none_or(str::is_empty) {
        return Err(ModuleError::data(format!(
            "the Sonar `{event}` delivery has no `uuid`"
        )));
    }
    let phone = payload
        .get("customer")
        .and_then(|c| c.get("phone_number"))
        .and_then(Value::as_str);
    if phone.is_none_or(str::is_empty) {
        return Err(ModuleError::data(format!(
            "the Sonar `{event}` delivery has no `customer.phone_number`"
        )));
    }
    Ok(true)
}

fn preview(value: &Value) -> String {
    value.to_string().chars().take(60).collect()
}

fn sonar(connection: Option<&Arc<dyn Any + Send + Sync>>) -> Result<&SonarConnection, ModuleError> {
    connection
        .and_then(|c| c.downcast_ref::<SonarConnection>())
        .ok_or_else(|| ModuleError::runtime("the trigger has no `sonar` connection"))
}

/// `"true"` or `true`.
fn is_true(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// A webhook's integer id (also accepted as numeric text).
fn webhook_id(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Registers `hook_url` with Sonar for `event`, reusing an existing registration.
pub(crate) async fn activate(
    event: &str,
    connection: Option<&Arc<dyn Any + Send + Sync>>,
    params: &Map<String, Value>,
    hook_url: &str,
) -> Result<Value, ModuleError> {
    let sonar = sonar(connection)?;
    let name = params
        .get("webhook_name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ModuleError::data("field `webhook_name` is required but empty"))?;
    let valid_url = Url::parse(hook_url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !valid_url {
        return Err(ModuleError::data(format!(
            "the hook URL `{hook_url}` is not an absolute http(s) URL; set the public URL weft is reached at"
        )));
    }
    let listed = sonar.get("/v1/webhooks", &[]).await?;
    let Value::Array(webhooks) = listed else {
        return Err(ModuleError::runtime(
            "the answer to `GET /v1/webhooks` is not a list",
        ));
    };
    let existing = webhooks.iter().find(|w| {
        w.get("url").and_then(Value::as_str) == Some(hook_url)
            && is_true(w.get("settings").and_then(|s| s.get(event)))
    });
    if let Some(webhook) = existing {
        let id = webhook_id(webhook.get("id"))
            .ok_or_else(|| ModuleError::runtime("a webhook listed by Sonar has no numeric `id`"))?;
        if !is_true(webhook.get("active")) {
            sonar
                .request(
                    Method::PATCH,
                    &format!("/v1/webhooks/{id}"),
                    &[],
                    Some(json!({"webhook": {"active": "true"}})),
                )
                .await?;
        }
        return Ok(json!({ "webhook_id": id, "reused": true }));
    }
    let mut settings = Map::new();
    settings.insert(event.to_owned(), Value::String("true".into()));
    let created = sonar
        .post(
            "/v1/webhooks",
            json!({"webhook": {
                "name": name,
                "active": "true",
                "url": hook_url,
                "http_method": "POST",
                "settings": settings,
            }}),
        )
        .await?;
    let id = webhook_id(created.get("id")).ok_or_else(|| {
        ModuleError::runtime("the webhook was created but the answer has no numeric `id`")
    })?;
    Ok(json!({ "webhook_id": id, "reused": false }))
}

/// Deletes the webhook `activate` registered; one already gone is fine.
pub(crate) async fn deactivate(
    connection: Option<&Arc<dyn Any + Send + Sync>>,
    registration: &Value,
) -> Result<(), ModuleError> {
    if registration.is_null() {
        return Ok(());
    }
    let id = webhook_id(registration.get("webhook_id")).ok_or_else(|| {
        ModuleError::data(format!(
            "the registration `{}` has no `webhook_id`",
            preview(registration)
        ))
    })?;
    let sonar = sonar(connection)?;
    let call = Call {
        method: Method::DELETE,
        url: sonar.endpoint(&format!("/v1/webhooks/{id}"), &[]),
        headers: Default::default(),
        body: None,
        ok_statuses: &[404],
    };
    sonar.call(&call).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;
    use weft_engine::{ErrorKind, Module};

    use super::*;
    use crate::test_support::Sim;

    const HOOK: &str = "http://127.0.0.1:9/hooks/tok123";

    #[tokio::test]
    async fn other_events_on_the_same_url_are_not_reused() {
        let sim = Sim::start().await;
        sim.api(
            "POST",
            "/v1/webhooks",
            json!({"webhook": {"name": "x", "active": "true", "url": HOOK, "settings": {"outbound_message": "true", "customer_created": "false"}}}),
        )
        .await;
        let conn = sim.connection(json!({}));
        let t = WatchNewCustomer.as_trigger().unwrap();
        let params = json!({"webhook_name": "new customers"})
            .as_object()
            .unwrap()
            .clone();
        let reg = t.activate(Some(&conn), &params, HOOK).await.unwrap();
        assert_eq!(reg, json!({"webhook_id": 2, "reused": false}));
        assert_eq!(sim.state()["webhooks"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn an_inactive_registration_is_switched_back_on() {
        let sim = Sim::start().await;
        sim.api(
            "POST",
            "/v1/webhooks",
            json!({"webhook": {"name": "x", "active": false, "url": HOOK, "settings": {"customer_created": "true"}}}),
        )
        .await;
        let conn = sim.connection(json!({}));
        let t = WatchNewCustomer.as_trigger().unwrap();
        let params = json!({"webhook_name": "new customers"})
            .as_object()
            .unwrap()
            .clone();
        let reg = t.activate(Some(&conn), &params, HOOK).await.unwrap();
        assert_eq!(reg, json!({"webhook_id": 1, "reused": true}));
        assert_eq!(sim.state()["webhooks"][0]["active"], true);
    }

    #[tokio::test]
    async fn bad_activation_inputs() {
        let sim = Sim::start().await;
        let conn = sim.connection(json!({}));
        let t = WatchNewCustomer.as_trigger().unwrap();
        let empty = Map::new();
        let err = t.activate(Some(&conn), &empty, HOOK).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        let params = json!({"webhook_name": "n"}).as_object().unwrap().clone();
        let err = t
            .activate(Some(&conn), &params, "/hooks/relative")
            .await
            .unwrap_err();
        assert!(err.message.contains("not an absolute"), "{}", err.message);
        let err = t.activate(None, &params, HOOK).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::RuntimeError);
        let err = t
            .deactivate(Some(&conn), &json!({"id": 1}))
            .await
            .unwrap_err();
        assert!(err.message.contains("no `webhook_id`"), "{}", err.message);
        t.deactivate(Some(&conn), &Value::Null).await.unwrap();
    }

    #[tokio::test]
    async fn bad_token_fails_activation_as_invalid_token() {
        let sim = Sim::start().await;
        let conn = sim.connection(json!({"token": "wrong-token"}));
        let params = json!({"webhook_name": "n"}).as_object().unwrap().clone();
        let err = WatchNewCustomer
            .as_trigger()
            .unwrap()
            .activate(Some(&conn), &params, HOOK)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidAccessTokenError);
    }

    /// Every trigger's `passes_through` says what its `parse` does (the executor uses one
    /// instead of the other): the same bundle, no bundle, or the same error.
    #[test]
    fn every_trigger_tells_without_parsing_what_parsing_gives() {
        let bodies = [
            json!({"action": "customer_created", "uuid": "u1", "customer": {"phone_number": "+13105550100"}}),
            json!({"action": "new_unassigned_message", "uuid": "u2", "customer": {"phone_number": "+13105550100"}, "message": {"text": "hi"}}),
            json!({"action": "customer_created", "customer": {"phone_number": "+13105550100"}}),
            json!({"action": "customer_created", "uuid": "u3", "customer": {}}),
            json!({"action": "", "uuid": "u4"}),
            json!({"uuid": "u5"}),
            json!([1, 2]),
            json!("text"),
            Value::Null,
        ];
        let params = serde_json::Map::new();
        let mut answered = 0;
        for module in crate::modules() {
            let Some(trigger) = module.as_trigger() else {
                continue;
            };
            for body in &bodies {
                let told = trigger.passes_through(&params, body);
                let parsed = trigger.parse(&params, body.clone());
                let id = module.spec().id;
                match (told, parsed) {
                    (None, _) => {}
                    (Some(Ok(true)), Ok(bundles)) => {
                        assert_eq!(bundles, vec![body.clone()], "{id}: {body}");
                        answered += 1;
                    }
                    (Some(Ok(false)), Ok(bundles)) => {
                        assert!(bundles.is_empty(), "{id}: {body}");
                        answered += 1;
                    }
                    (Some(Err(a)), Err(b)) => {
                        assert_eq!((a.kind, a.message), (b.kind, b.message), "{id}: {body}");
                        answered += 1;
                    }
                    (told, parsed) => panic!("{id}: {body}: told {told:?}, parsed {parsed:?}"),
                }
            }
        }
        // Every Sonar trigger answers for every body.
        assert!(answered >= 7 * bodies.len(), "{answered}");
    }

    #[test]
    fn non_object_deliveries_are_refused() {
        let err = parse_delivery("customer_created", json!([1])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        let err = parse_delivery("customer_created", json!({"uuid": "u"})).unwrap_err();
        assert!(err.message.contains("no `action`"), "{}", err.message);
    }
}
