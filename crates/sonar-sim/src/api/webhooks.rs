//! Webhook registration endpoints (contract §5.10): list, create, get, update (PUT/PATCH) and
//! delete. Fields sit inside a `webhook` object (top-level fields are accepted too).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use super::{json_response, success};
use crate::error::{ApiError, Resource};
use crate::ids;
use crate::params::{as_bool, scalar_text, Params};
use crate::state::{State as SimState, Webhook};
use crate::Shared;

/// The fields of a create or update body; absent ones are `None`.
#[derive(Debug, Default)]
struct WebhookInput {
    name: Option<String>,
    active: Option<bool>,
    url: Option<String>,
    http_method: Option<String>,
    settings: Option<Map<String, Value>>,
}

impl WebhookInput {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let nested = params.nested("webhook");
        let params = nested.as_ref().unwrap_or(params);
        let settings = match params.get("settings") {
            None => None,
            Some(Value::Object(map)) => Some(settings_strings(map)?),
            Some(_) => return Err(ApiError::InvalidParam("settings")),
        };
        Ok(Self {
            name: params.string("name")?,
            active: params.bool("active")?,
            url: params.string("url")?,
            http_method: params
                .string("http_method")?
                .map(|method| method.to_ascii_uppercase()),
            settings,
        })
    }

    fn apply(self, webhook: &mut Webhook) {
        if let Some(name) = self.name {
            webhook.name = name;
        }
        if let Some(active) = self.active {
            webhook.active = active;
        }
        if let Some(url) = self.url {
            webhook.url = url;
        }
        if let Some(method) = self.http_method {
            webhook.http_method = method;
        }
        if let Some(settings) = self.settings {
            webhook.settings = settings;
        }
    }
}

/// Settings values are kept as the strings `"true"` / `"false"` (booleans are accepted).
fn settings_strings(map: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    map.iter()
        .map(|(event, value)| {
            let text = match as_bool(value) {
                Some(flag) => flag.to_string(),
                None => scalar_text(value)
                    .ok_or(ApiError::InvalidParam("settings"))?
                    .into_owned(),
            };
            Ok((event.clone(), Value::String(text)))
        })
        .collect()
}

/// The index of webhook `id` (the path segment), or 404.
fn find(state: &SimState, id: &str) -> Result<usize, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::NotFound(Resource::Webhook))?;
    state
        .webhooks
        .iter()
        .position(|webhook| webhook.id == id)
        .ok_or(ApiError::NotFound(Resource::Webhook))
}

/// `GET /v1/webhooks` → 200, every webhook, oldest first.
pub(crate) async fn list(State(shared): State<Arc<Shared>>) -> Response {
    let state = shared.lock();
    json_response(StatusCode::OK, &state.webhooks)
}

/// `POST /v1/webhooks` `{"webhook": {...}}` → 200 webhook object.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    params: Params,
) -> Result<Response, ApiError> {
    let input = WebhookInput::from_params(&params)?;
    if input.url.is_none() {
        return Err(ApiError::MissingParams(vec!["url"]));
    }
    let now = ids::now();
    let mut state = shared.lock();
    let mut webhook = Webhook {
        id: state.next_webhook_id,
        name: String::new(),
        active: false,
        url: String::new(),
        http_method: "POST".to_owned(),
        settings: Map::new(),
        payload: String::new(),
        created_at: now.clone(),
        updated_at: now,
    };
    input.apply(&mut webhook);
    state.next_webhook_id += 1;
    let response = json_response(StatusCode::OK, &webhook);
    state.webhooks.push(webhook);
    Ok(response)
}

/// `GET /v1/webhooks/{id}` → 200 webhook object, 404 when unknown.
pub(crate) async fn show(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let state = shared.lock();
    let idx = find(&state, &id)?;
    Ok(json_response(StatusCode::OK, &state.webhooks[idx]))
}

/// `PUT` / `PATCH /v1/webhooks/{id}` with the create body → 200 updated object. Only the
/// fields present change; `settings`, when present, replaces the old settings.
pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let input = WebhookInput::from_params(&params)?;
    let mut state = shared.lock();
    let idx = find(&state, &id)?;
    let webhook = &mut state.webhooks[idx];
    input.apply(webhook);
    webhook.updated_at = ids::now();
    Ok(json_response(StatusCode::OK, &*webhook))
}

/// `DELETE /v1/webhooks/{id}` → 200 `{"success": true}`, 404 when unknown.
pub(crate) async fn remove(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mut state = shared.lock();
    let idx = find(&state, &id)?;
    state.webhooks.remove(idx);
    Ok(success(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::StatusCode;
    use serde_json::json;

    use crate::test_support::*;

    #[tokio::test]
    async fn lifecycle_matches_fixtures() {
        let router = sim().router();
        let (status, created) = post_json(
            &router,
            "/api/v1/webhooks",
            &fixture("request_create_webhook.json"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_same_shape(&created, &fixture("response_create_webhook.json"));
        assert_eq!(created["id"], 1);
        assert_eq!(created["active"], true);
        assert_eq!(created["payload"], "");
        assert_eq!(created["settings"], json!({"customer_created": "true"}));

        let (status, second) = post_form(
            &router,
            "/api/v1/webhooks",
            "webhook[name]=crm+sync&webhook[active]=true&webhook[url]=https%3A%2F%2Fcrm.example.org%2Fsonar\
             &webhook[http_method]=POST&webhook[settings][new_assigned_message]=true\
             &webhook[settings][new_unassigned_message]=true",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(second["id"], 2);
        assert_eq!(second["settings"]["new_unassigned_message"], "true");

        let (status, list) = get(&router, "/api/v1/webhooks").await;
        assert_eq!(status, StatusCode::OK);
        assert_same_shape(&list, &fixture("response_list_webhooks.json"));
        assert_eq!(list.as_array().unwrap().len(), 2);
        assert_eq!(list[0]["id"], 1);

        let (status, shown) = get(&router, "/api/v1/webhooks/1").await;
        assert_eq!(status, StatusCode::OK);
        assert_same_shape(&shown, &fixture("response_get_webhook.json"));
        assert_eq!(shown, created);

        for method in ["PUT", "PATCH"] {
            let (status, updated) = send_json(
                &router,
                method,
                "/api/v1/webhooks/1",
                &json!({"webhook": {"active": false, "settings": {"outbound_message": true}}}),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{method}");
            assert_same_shape(&updated, &fixture("response_get_webhook.json"));
            assert_eq!(updated["active"], false);
            assert_eq!(updated["name"], "weft new customers");
            assert_eq!(updated["settings"], json!({"outbound_message": "true"}));
        }

        let (status, body) = send_json(&router, "DELETE", "/api/v1/webhooks/1", &json!({})).await;
        assert_eq!(status, StatusCode::OK);
        assert_same_shape(&body, &fixture("response_delete_webhook.json"));
        let (_, list) = get(&router, "/api/v1/webhooks").await;
        assert_eq!(list.as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn failures() {
        let router = sim().router();
        let (status, body) = post_json(
            &router,
            "/api/v1/webhooks",
            &json!({"webhook": {"name": "x", "active": "true"}}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({"error": "url is missing"}));
        for (method, path) in [
            ("GET", "/api/v1/webhooks/9"),
            ("PUT", "/api/v1/webhooks/9"),
            ("PATCH", "/api/v1/webhooks/abc"),
            ("DELETE", "/api/v1/webhooks/9"),
        ] {
            let (status, body) = send_json(&router, method, path, &json!({})).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(body, json!({"error": "Webhook not found"}));
        }
    }
}
