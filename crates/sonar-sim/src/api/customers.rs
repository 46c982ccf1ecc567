//! Customer endpoints (contract §5.1–5.5): get, create/update (upsert), unassign, close and
//! delete a property.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{json_response, phone_param, success};
use crate::error::{ApiError, Resource};
use crate::events::Event;
use crate::ids;
use crate::params::{scalar_text, Params};
use crate::phone;
use crate::state::{Customer, State as SimState, ThreadState};
use crate::Shared;

/// `GET /v1/customers?phone_number=...` → 200 customer, 404 when unknown.
pub(crate) async fn show(
    State(shared): State<Arc<Shared>>,
    params: Params,
) -> Result<Response, ApiError> {
    let phone = phone_param(&params, "phone_number")?;
    let state = shared.lock();
    let customer = state
        .customer_idx(&phone)
        .ok_or(ApiError::NotFound(Resource::Customer))?;
    Ok(json_response(StatusCode::OK, &state.customers[customer]))
}

/// The optional fields of a create/update, read before the lock is taken.
#[derive(Debug, Default)]
struct CustomerUpdate {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    picture_url: Option<String>,
    zip_code: Option<String>,
    timezone: Option<String>,
    properties: Option<Map<String, Value>>,
    subscribed: Option<bool>,
    user_email: Option<String>,
}

impl CustomerUpdate {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let properties = match params.get("properties") {
            None => None,
            Some(Value::Object(map)) => Some(stringify_properties(map)),
            Some(_) => return Err(ApiError::InvalidParam("properties")),
        };
        Ok(Self {
            first_name: params.string("first_name")?,
            last_name: params.string("last_name")?,
            email: params.string("email")?,
            picture_url: params.string("picture_url")?,
            zip_code: params.string("zip_code")?,
            timezone: params.string("timezone")?,
            properties,
            subscribed: params.bool("subscribed")?,
            user_email: params
                .string("user_email")?
                .filter(|email| !email.is_empty()),
        })
    }

    /// Applies the plain fields and merges the properties.
    fn apply(self, customer: &mut Customer) {
        let fields = [
            (self.first_name, &mut customer.first_name),
            (self.last_name, &mut customer.last_name),
            (self.email, &mut customer.email),
            (self.picture_url, &mut customer.picture_url),
            (self.zip_code, &mut customer.zip_code),
            (self.timezone, &mut customer.timezone),
        ];
        for (value, field) in fields {
            if value.is_some() {
                *field = value;
            }
        }
        if let Some(properties) = self.properties {
            customer.properties.extend(properties);
        }
    }
}

/// Property values are stored as strings: `42` → `"42"`, `true` → `"true"`; nulls are skipped
/// and nested values kept as JSON text.
fn stringify_properties(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(name, value)| {
            let text =
                scalar_text(value).map_or_else(|| value.to_string(), |text| text.into_owned());
            (name.clone(), Value::String(text))
        })
        .collect()
}

/// `POST /v1/customers` → 201 new customer, 200 updated customer.
pub(crate) async fn upsert(
    State(shared): State<Arc<Shared>>,
    params: Params,
) -> Result<Response, ApiError> {
    let phone = phone_param(&params, "phone_number")?;
    let mut update = CustomerUpdate::from_params(&params)?;
    let subscribed = update.subscribed.take();
    let user_email = update.user_email.take();
    let mut state = shared.lock();
    let assignee = match user_email {
        Some(email) => Some(state.user(&email).cloned().ok_or(ApiError::UserNotFound)?),
        None => None,
    };
    let (customer, created) = match state.customer_idx(&phone) {
        Some(customer) => (customer, false),
        None => (state.create_customer(phone), true),
    };
    update.apply(&mut state.customers[customer]);
    if created {
        // A new customer is announced once, as given: no flip or assignment events.
        let entry = &mut state.customers[customer];
        if subscribed == Some(false) {
            entry.subscribed = false;
            entry.unsubscribed_at = Some(ids::now());
        }
        entry.assignee = assignee;
        state.emit_customer_event(Event::CustomerCreated, customer);
    } else {
        if let Some(subscribed) = subscribed {
            state.set_subscribed(customer, subscribed);
        }
        if let Some(user) = assignee {
            if state.assign(customer, Some(user)) {
                state.emit_user_assignment(customer);
            }
        }
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, &state.customers[customer]))
}

/// The known customer `phone_number` names.
fn existing_customer(state: &SimState, phone_number: &str) -> Result<usize, ApiError> {
    state
        .customer_idx(phone_number)
        .ok_or(ApiError::NotFound(Resource::Customer))
}

/// `POST /v1/customers/unassign` → 200 `{"success": true}` (idempotent).
pub(crate) async fn unassign(
    State(shared): State<Arc<Shared>>,
    params: Params,
) -> Result<Response, ApiError> {
    let phone = phone_param(&params, "phone_number")?;
    let mut state = shared.lock();
    let customer = existing_customer(&state, &phone)?;
    if state.assign(customer, None) {
        state.emit_user_assignment(customer);
    }
    Ok(success(StatusCode::OK))
}

/// `POST /v1/customers/close` → 201 `{"success": true}`; the thread is closed and unassigned.
pub(crate) async fn close(
    State(shared): State<Arc<Shared>>,
    params: Params,
) -> Result<Response, ApiError> {
    let phone = phone_param(&params, "phone_number")?;
    let mut state = shared.lock();
    let customer = existing_customer(&state, &phone)?;
    let unassigned = state.assign(customer, None);
    if let Some(previous) = state.change_thread_state(customer, ThreadState::Closed) {
        state.emit_state_changed(customer, previous);
    }
    if unassigned {
        state.emit_user_assignment(customer);
    }
    Ok(success(StatusCode::CREATED))
}

/// `DELETE /v1/customers/properties` with `property_name` and `phone_number` or `email`
/// (body or query) → 200 with the removed value.
pub(crate) async fn delete_property(
    State(shared): State<Arc<Shared>>,
    params: Params,
) -> Result<Response, ApiError> {
    let mut missing = Vec::new();
    if params.get("property_name").is_none() {
        missing.push("property_name");
    }
    if params.get("phone_number").is_none() && params.get("email").is_none() {
        missing.push("phone_number");
    }
    if !missing.is_empty() {
        return Err(ApiError::MissingParams(missing));
    }
    let name = params.string("property_name")?.unwrap_or_default();
    let phone = match params.text("phone_number")? {
        Some(raw) => Some(phone::normalize(&raw)?),
        None => None,
    };
    let email = params.string("email")?;
    let mut state = shared.lock();
    let customer = match (&phone, &email) {
        (Some(phone), _) => state.customer_idx(phone),
        (None, Some(email)) => state.customer_idx_by_email(email),
        (None, None) => None,
    }
    .ok_or(ApiError::NotFound(Resource::Customer))?;
    let entry = &mut state.customers[customer];
    let value = entry
        .properties
        .shift_remove(&name)
        .ok_or(ApiError::NotFound(Resource::Property))?;
    let body = json!({
        "property_name": name,
        "property_value": value,
        "email": entry.email,
        "phone_number": entry.phone_number,
        "deleted": true,
    });
    Ok(json_response(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::StatusCode;
    use serde_json::json;

    use crate::test_support::*;

    #[tokio::test]
    async fn create_then_update_matches_fixtures() {
        let sim = sim_with_agent();
        let router = sim.router();
        let create = fixture("request_create_customer.json");
        let (status, body) = post_json(&router, "/api/v1/customers", &create).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_same_shape(&body, &fixture("response_create_customer.json"));
        assert_eq!(
            body["properties"],
            json!({"plan": "annual", "bikes_owned": "2"})
        );
        assert_eq!(body["state"], "unreplied");

        let update = fixture("request_update_customer.json");
        let (status, body) = post_json(&router, "/api/v1/customers", &update).await;
        assert_eq!(status, StatusCode::OK);
        assert_same_shape(&body, &fixture("response_update_customer.json"));
        assert_eq!(body["last_name"], "Okafor", "absent fields are kept");
        assert_eq!(body["properties"]["last_service"], "2024-02-28");
        assert_eq!(body["properties"]["plan"], "annual");
        assert_eq!(body["assignee"]["email"], "dana@harborbikes.example");

        let (status, body) = get(&router, "/api/v1/customers?phone_number=%2B13105550147").await;
        assert_eq!(status, StatusCode::OK);
        assert_same_shape(&body, &fixture("response_get_customer.json"));
        assert_eq!(body["first_name"], "Maya");
    }

    #[tokio::test]
    async fn properties_are_stringified_and_phones_normalized() {
        let router = sim().router();
        let (status, body) = post_json(
            &router,
            "/api/v1/customers",
            &json!({"phone_number": "(310) 555-0147", "properties": {"n": 42, "ok": true, "r": 0.5}}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(body["phone_number"], "+13105550147");
        assert_eq!(
            body["properties"],
            json!({"n": "42", "ok": "true", "r": "0.5"})
        );
    }

    #[tokio::test]
    async fn form_encoded_upsert() {
        let router = sim().router();
        let (status, body) = post_form(
            &router,
            "/api/v1/customers",
            "phone_number=5555555557&first_name=Ann&properties[great_customer]=true&subscribed=false",
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(body["phone_number"], "+15555555557");
        assert_eq!(body["properties"]["great_customer"], "true");
        assert_eq!(body["subscribed"], false);
        assert!(body["unsubscribed_at"].is_string());
    }

    #[tokio::test]
    async fn validation_failures() {
        let router = sim().router();
        let (status, body) =
            post_json(&router, "/api/v1/customers", &json!({"first_name": "A"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({"error": "phone_number is missing"}));
        let (status, body) = post_json(
            &router,
            "/api/v1/customers",
            &json!({"phone_number": "111"}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, fixture("error_invalid_phone_number.json"));
        let (status, body) = post_json(
            &router,
            "/api/v1/customers",
            &json!({"phone_number": "3105550147", "user_email": "nobody@x"}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({"error": "User not found"}));
        let (status, body) = get(&router, "/api/v1/customers").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({"error": "phone_number is missing"}));
    }

    #[tokio::test]
    async fn not_found() {
        let router = sim().router();
        let (status, body) = get(&router, "/api/v1/customers?phone_number=3105550199").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, fixture("error_customer_not_found.json"));
        for path in ["/api/v1/customers/unassign", "/api/v1/customers/close"] {
            let (status, body) =
                post_json(&router, path, &json!({"phone_number": "3105550199"})).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(body, fixture("error_customer_not_found.json"));
        }
    }

    #[tokio::test]
    async fn unassign_and_close() {
        let sim = sim_with_agent();
        let router = sim.router();
        post_json(
            &router,
            "/api/v1/customers",
            &fixture("request_create_customer.json"),
        )
        .await;
        post_json(
            &router,
            "/api/v1/customers",
            &fixture("request_update_customer.json"),
        )
        .await;

        let (status, body) = post_json(
            &router,
            "/api/v1/customers/unassign",
            &fixture("request_unassign_customer.json"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_same_shape(&body, &fixture("response_unassign_customer.json"));
        let (status, _) = post_json(
            &router,
            "/api/v1/customers/unassign",
            &fixture("request_unassign_customer.json"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "idempotent");
        assert!(sim.state_json()["customers"][0]["assignee"].is_null());

        let (status, body) = post_json(
            &router,
            "/api/v1/customers/close",
            &fixture("request_close_customer.json"),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_same_shape(&body, &fixture("response_close_customer.json"));
        assert_eq!(sim.state_json()["customers"][0]["state"], "closed");
    }

    #[tokio::test]
    async fn delete_property_by_phone_email_or_query() {
        let router = sim().router();
        post_json(
            &router,
            "/api/v1/customers",
            &fixture("request_create_customer.json"),
        )
        .await;
        let (status, body) = send_json(
            &router,
            "DELETE",
            "/api/v1/customers/properties",
            &fixture("request_delete_customer_property.json"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_same_shape(&body, &fixture("response_delete_customer_property.json"));
        assert_eq!(body, fixture("response_delete_customer_property.json"));

        let (status, body) = send_json(
            &router,
            "DELETE",
            "/api/v1/customers/properties",
            &json!({"email": "maya.okafor@example.com", "property_name": "bikes_owned"}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, json!({"error": "Property not found"}));

        let (status, body) = request(
            &router,
            "DELETE",
            "/api/v1/customers/properties?email=maya.okafor%40example.com&property_name=plan",
            &[TOKEN],
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["property_value"], "annual");

        let (status, body) = send_form(
            &router,
            "DELETE",
            "/api/v1/customers/properties",
            "email=nobody%40x&property_name=plan",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, fixture("error_customer_not_found.json"));

        let (status, body) = send_json(
            &router,
            "DELETE",
            "/api/v1/customers/properties",
            &json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": "property_name is missing, phone_number is missing"})
        );
    }
}
