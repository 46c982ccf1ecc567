//! The control surface under `/_sim` (DESIGN.md, "Sonar simulator"): open without a token,
//! JSON or form bodies. It shows the state and plays the parts the API cannot: customers
//! texting in, agents taking conversations, tags changed in the Sonar UI, seeding agents, tags
//! and campaigns, and fault injection.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::api::{json_response, phone_param, success, MessageTags};
use crate::error::{ApiError, Resource};
use crate::faults::FaultConfig;
use crate::params::{scalar_text, Params};
use crate::state::{Campaign, NewMessage, User};
use crate::Shared;

/// The `/_sim` routes, to be nested by [`crate::Simulator::router`].
pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/state", get(state))
        .route("/reset", post(reset))
        .route("/seed", post(seed))
        .route("/inbound", post(inbound))
        .route("/assign", post(assign))
        .route("/message_tags", post(message_tags))
        .route("/faults", get(faults).post(set_faults))
}

/// `GET /_sim/state` → everything the simulator holds.
async fn state(State(shared): State<Arc<Shared>>) -> Response {
    let state = shared.lock();
    json_response(StatusCode::OK, &*state)
}

/// `POST /_sim/reset` → forgets all state and faults; accepted tokens stay.
async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.lock().reset();
    shared.faults.set(FaultConfig::default());
    success(StatusCode::OK)
}

/// The object items of array param `key`, each as params of its own.
fn items(params: &Params, key: &'static str) -> Result<Vec<Params>, ApiError> {
    match params.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Object(map) => Ok(Params(map.clone())),
                _ => Err(ApiError::InvalidParam(key)),
            })
            .collect(),
        Some(_) => Err(ApiError::InvalidParam(key)),
    }
}

/// `POST /_sim/seed` `{users: [{email, first_name, last_name}], tags: [name],
/// campaigns: [{id, slug, text}]}` → adds (or updates, by email / name / id) and returns the
/// totals.
async fn seed(State(shared): State<Arc<Shared>>, params: Params) -> Result<Response, ApiError> {
    let users = items(&params, "users")?
        .into_iter()
        .map(|user| {
            user.require(&["email"])?;
            Ok(User {
                email: user.string("email")?.unwrap_or_default(),
                first_name: user.string("first_name")?.unwrap_or_default(),
                last_name: user.string("last_name")?.unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let tags = params.strings("tags")?;
    let campaigns = items(&params, "campaigns")?
        .into_iter()
        .map(|campaign| {
            campaign.require(&["id"])?;
            let id = campaign.string("id")?.unwrap_or_default();
            Ok(Campaign {
                slug: campaign.string("slug")?.unwrap_or_else(|| id.clone()),
                text: campaign.string("text")?.unwrap_or_default(),
                id,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;

    let mut state = shared.lock();
    for user in users {
        match state
            .users
            .iter_mut()
            .find(|known| known.email == user.email)
        {
            Some(known) => *known = user,
            None => state.users.push(user),
        }
    }
    for tag in tags {
        if !state.has_tag(&tag) {
            state.tags.push(tag);
        }
    }
    for campaign in campaigns {
        match state
            .campaigns
            .iter_mut()
            .find(|known| known.id == campaign.id)
        {
            Some(known) => *known = campaign,
            None => state.campaigns.push(campaign),
        }
    }
    let totals = json!({
        "users": state.users.len(),
        "tags": state.tags.len(),
        "campaigns": state.campaigns.len(),
    });
    Ok(json_response(StatusCode::OK, &totals))
}

/// `POST /_sim/inbound` `{from, text, media_url?}` → an SMS from a customer (created if
/// unknown). Answers `{customer, message}`.
async fn inbound(State(shared): State<Arc<Shared>>, params: Params) -> Result<Response, ApiError> {
    let text = params.string("text")?;
    let media_url = params.string("media_url")?.filter(|url| !url.is_empty());
    let mut missing = Vec::new();
    if params.get("from").is_none() {
        missing.push("from");
    }
    if text.is_none() && media_url.is_none() {
        missing.push("text");
    }
    if !missing.is_empty() {
        return Err(ApiError::MissingParams(missing));
    }
    let from = phone_param(&params, "from")?;
    let message = NewMessage::new(text.unwrap_or_default(), media_url, Vec::new());
    let mut state = shared.lock();
    let customer = state.ensure_customer(&from);
    let message = state.receive_inbound(customer, message);
    let body = json!({
        "customer": &state.customers[customer],
        "message": &state.messages[message],
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /_sim/assign` `{phone_number, user_email}` → the agent takes the conversation;
/// answers the customer.
async fn assign(State(shared): State<Arc<Shared>>, params: Params) -> Result<Response, ApiError> {
    params.require(&["phone_number", "user_email"])?;
    let phone = phone_param(&params, "phone_number")?;
    let email = params.text("user_email")?.unwrap_or_default();
    let mut state = shared.lock();
    let customer = state
        .customer_idx(&phone)
        .ok_or(ApiError::NotFound(Resource::Customer))?;
    let user = state.user(&email).cloned().ok_or(ApiError::UserNotFound)?;
    if state.assign(customer, Some(user)) {
        state.emit_user_assignment(customer);
    }
    Ok(json_response(StatusCode::OK, &state.customers[customer]))
}

/// `POST /_sim/message_tags` `{external_id, add: [name], remove: [name]}` → tags changed in
/// the UI, one event per tag actually added or removed. Answers `{external_id, message_id,
/// tag_names}`.
async fn message_tags(
    State(shared): State<Arc<Shared>>,
    params: Params,
) -> Result<Response, ApiError> {
    params.require(&["external_id"])?;
    let external_id = params.text("external_id")?.unwrap_or_default();
    let add = params.strings("add")?;
    let remove = params.strings("remove")?;
    let mut state = shared.lock();
    let message = state
        .message_seq(&external_id)
        .ok_or(ApiError::NotFound(Resource::Message))?;
    if let Some(tag) = state.unknown_tag(&add) {
        return Err(ApiError::TagNotFound(tag.clone()));
    }
    for tag in &add {
        state.add_message_tag(message, tag);
    }
    for tag in &remove {
        state.remove_message_tag(message, tag);
    }
    let stored = &state.messages[message];
    let body = MessageTags {
        external_id: &stored.external_id,
        message_id: &stored.message_id,
        tag_names: &stored.tag_names,
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// A number param, from JSON or form text.
fn number<T: FromStr>(params: &Params, key: &'static str) -> Result<Option<T>, ApiError> {
    match params.get(key) {
        None => Ok(None),
        Some(value) => scalar_text(value)
            .and_then(|text| text.trim().parse().ok())
            .map(Some)
            .ok_or(ApiError::InvalidParam(key)),
    }
}

fn faults_body(shared: &Shared) -> Response {
    let config = shared.faults.config();
    let duplicate_check = shared.lock().duplicate_check;
    let body = json!({
        "latency_ms": config.latency_ms,
        "error_rate": config.error_rate,
        "error_status": config.error_status,
        "rate_limit_per_s": config.rate_limit_per_s,
        "duplicate_check": duplicate_check,
    });
    json_response(StatusCode::OK, &body)
}

/// `GET /_sim/faults` → the current fault settings.
async fn faults(State(shared): State<Arc<Shared>>) -> Response {
    faults_body(&shared)
}

/// `POST /_sim/faults` `{latency_ms, error_rate, error_status, rate_limit_per_s,
/// duplicate_check}` → replaces every setting (`{}` clears them all).
async fn set_faults(
    State(shared): State<Arc<Shared>>,
    params: Params,
) -> Result<Response, ApiError> {
    let defaults = FaultConfig::default();
    let error_rate = number::<f64>(&params, "error_rate")?.unwrap_or(defaults.error_rate);
    if !(0.0..=1.0).contains(&error_rate) {
        return Err(ApiError::InvalidParam("error_rate"));
    }
    let error_status = number::<u16>(&params, "error_status")?.unwrap_or(defaults.error_status);
    if !(100..=599).contains(&error_status) {
        return Err(ApiError::InvalidParam("error_status"));
    }
    let config = FaultConfig {
        latency_ms: number(&params, "latency_ms")?.unwrap_or(defaults.latency_ms),
        error_rate,
        error_status,
        rate_limit_per_s: number::<u32>(&params, "rate_limit_per_s")?.filter(|limit| *limit > 0),
    };
    let duplicate_check = params.bool("duplicate_check")?.unwrap_or(false);
    shared.faults.set(config);
    shared.lock().duplicate_check = duplicate_check;
    Ok(faults_body(&shared))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::StatusCode;
    use serde_json::json;

    use crate::test_support::*;

    #[tokio::test]
    async fn state_lists_everything() {
        let router = sim().router();
        let (status, state) = request(&router, "GET", "/_sim/state", &[], None).await;
        assert_eq!(status, StatusCode::OK, "no token needed");
        let keys: Vec<&String> = state.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "customers",
                "messages",
                "users",
                "tags",
                "campaigns",
                "campaign_sends",
                "webhooks",
                "deliveries"
            ]
        );
    }

    #[tokio::test]
    async fn seed_adds_and_updates() {
        let sim = sim();
        let router = sim.router();
        let seed = json!({
            "users": [{"email": "dana@harborbikes.example", "first_name": "Dana", "last_name": "Reyes"}],
            "tags": ["service", "follow-up"],
            "campaigns": [{"id": 17, "slug": "spring-tuneup", "text": "Hi {{first_name}}"}],
        });
        let (status, totals) = post_json(&router, "/_sim/seed", &seed).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(totals, json!({"users": 1, "tags": 2, "campaigns": 1}));
        let (_, totals) = post_form(
            &router,
            "/_sim/seed",
            "users[][email]=dana%40harborbikes.example&users[][first_name]=D&tags[]=service&tags[]=vip",
        )
        .await;
        assert_eq!(totals, json!({"users": 1, "tags": 3, "campaigns": 1}));
        let state = sim.state_json();
        assert_eq!(state["users"][0]["first_name"], "D");
        assert_eq!(
            state["campaigns"][0],
            json!({"id": "17", "slug": "spring-tuneup", "text": "Hi {{first_name}}"})
        );
        let (status, body) = post_json(
            &router,
            "/_sim/seed",
            &json!({"users": [{"first_name": "x"}]}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({"error": "email is missing"}));
    }

    #[tokio::test]
    async fn reset_forgets_state_but_keeps_tokens() {
        let sim = sim_with_agent();
        let router = sim.router();
        post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "3105550147", "text": "hi"}),
        )
        .await;
        post_json(&router, "/_sim/faults", &json!({"error_rate": 1})).await;
        let (status, body) = post_json(&router, "/_sim/reset", &json!({})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"success": true}));
        let state = sim.state_json();
        assert_eq!(state["customers"], json!([]));
        assert_eq!(state["users"], json!([]));
        let (status, _) = get(&router, "/api/v1/webhooks").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "token still accepted, faults cleared"
        );
    }

    #[tokio::test]
    async fn inbound_creates_and_reopens() {
        let sim = sim_with_agent();
        let router = sim.router();
        let (status, body) = post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "+44 7700 900123", "text": "hello"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["customer"]["phone_number"], "+447700900123");
        assert_eq!(body["message"]["direction"], "inbound");
        assert_eq!(body["message"]["status"], "received");
        post_json(
            &router,
            "/api/v1/customers/close",
            &json!({"phone_number": "+447700900123"}),
        )
        .await;
        let (_, body) = post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "+447700900123", "text": "again"}),
        )
        .await;
        assert_eq!(body["customer"]["state"], "unreplied");
        assert_eq!(sim.state_json()["customers"].as_array().unwrap().len(), 1);

        for (request, error) in [
            (json!({}), "from is missing, text is missing"),
            (json!({"from": "111", "text": "x"}), "Invalid Phone Number"),
        ] {
            let (status, body) = post_json(&router, "/_sim/inbound", &request).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(body, json!({ "error": error }));
        }
    }

    #[tokio::test]
    async fn assign_and_its_failures() {
        let sim = sim_with_agent();
        let router = sim.router();
        post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "3105550147", "text": "hi"}),
        )
        .await;
        let (status, customer) = post_json(
            &router,
            "/_sim/assign",
            &json!({"phone_number": "3105550147", "user_email": "dana@harborbikes.example"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(customer["assignee"]["email"], "dana@harborbikes.example");
        let (_, body) = post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "3105550147", "text": "again"}),
        )
        .await;
        assert_eq!(body["message"]["user"]["first_name"], "Dana");

        let cases = [
            (
                json!({"phone_number": "3105550147", "user_email": "x@y"}),
                StatusCode::BAD_REQUEST,
                "User not found",
            ),
            (
                json!({"phone_number": "3105550100", "user_email": "dana@harborbikes.example"}),
                StatusCode::NOT_FOUND,
                "Customer not found",
            ),
            (
                json!({}),
                StatusCode::BAD_REQUEST,
                "phone_number is missing, user_email is missing",
            ),
        ];
        for (request, status, error) in cases {
            let (got, body) = post_json(&router, "/_sim/assign", &request).await;
            assert_eq!(got, status, "{request}");
            assert_eq!(body, json!({ "error": error }));
        }
    }

    #[tokio::test]
    async fn message_tags_add_and_remove() {
        let sim = sim_with_agent();
        let router = sim.router();
        let (_, body) = post_json(
            &router,
            "/_sim/inbound",
            &json!({"from": "3105550147", "text": "hi"}),
        )
        .await;
        let external_id = body["message"]["external_id"].as_str().unwrap();
        let (status, body) = post_json(
            &router,
            "/_sim/message_tags",
            &json!({"external_id": external_id, "add": ["service", "follow-up"]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_same_shape(&body, &fixture("response_append_message_tag.json"));
        assert_eq!(body["tag_names"], json!(["service", "follow-up"]));
        let (_, body) = post_json(
            &router,
            "/_sim/message_tags",
            &json!({"external_id": external_id, "remove": ["service", "never-there"]}),
        )
        .await;
        assert_eq!(body["tag_names"], json!(["follow-up"]));
        let (status, body) = post_json(
            &router,
            "/_sim/message_tags",
            &json!({"external_id": external_id, "add": ["vip"]}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, fixture("error_tag_not_found.json"));
        let (status, body) = post_json(
            &router,
            "/_sim/message_tags",
            &json!({"external_id": "nope==", "add": ["service"]}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, json!({"error": "Message not found"}));
    }
}
