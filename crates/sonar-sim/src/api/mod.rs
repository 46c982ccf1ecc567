//! The Sonar HTTP API under `/api` (contract §5): routes, shared helpers, and the layers
//! every route gets — fault injection first, then the token check (except for the
//! publishable-key endpoint).

mod campaigns;
mod customers;
mod messages;
mod phone_numbers;
mod webhooks;

use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Serialize;

use crate::error::{ApiError, Resource};
use crate::params::Params;
use crate::phone;
use crate::{auth, faults, Shared};

pub(crate) use messages::MessageTags;

/// The `/api` routes, to be nested by [`crate::Simulator::router`].
pub(crate) fn router(shared: &Arc<Shared>) -> Router<Arc<Shared>> {
    let private = Router::new()
        .route(
            "/v1/customers",
            get(customers::show).post(customers::upsert),
        )
        .route("/v1/customers/unassign", post(customers::unassign))
        .route("/v1/customers/close", post(customers::close))
        .route(
            "/v1/customers/properties",
            delete(customers::delete_property),
        )
        .route("/v1/messages", post(messages::send))
        .route("/v1/messages/tags", post(messages::append_tag))
        .route("/v1/campaigns", post(campaigns::send))
        .route("/v1/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::show)
                .put(webhooks::update)
                .patch(webhooks::update)
                .delete(webhooks::remove),
        )
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/v1/phone_numbers/available", get(phone_numbers::available))
        .merge(private)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            faults::inject,
        ))
}

/// 404 for unknown paths, in Sonar's error shape.
pub(crate) async fn not_found() -> Response {
    ApiError::NotFound(Resource::Route).into_response()
}

/// 405 for a known path with another method, in Sonar's error shape.
async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

/// `body` as a JSON response with `status`.
pub(crate) fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            bytes,
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// `{"success": true}` with `status`.
pub(crate) fn success(status: StatusCode) -> Response {
    json_response(status, &serde_json::json!({ "success": true }))
}

/// The required phone param `key`, normalized to E.164.
pub(crate) fn phone_param(params: &Params, key: &'static str) -> Result<String, ApiError> {
    params.require(&[key])?;
    let raw = params.text(key)?.unwrap_or_default();
    phone::normalize(&raw)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::StatusCode;
    use serde_json::json;

    use crate::test_support::*;

    /// Every token-protected route.
    const PRIVATE: [(&str, &str); 12] = [
        ("GET", "/api/v1/customers?phone_number=3105550147"),
        ("POST", "/api/v1/customers"),
        ("POST", "/api/v1/customers/unassign"),
        ("POST", "/api/v1/customers/close"),
        ("DELETE", "/api/v1/customers/properties"),
        ("POST", "/api/v1/messages"),
        ("POST", "/api/v1/messages/tags"),
        ("POST", "/api/v1/campaigns"),
        ("GET", "/api/v1/webhooks"),
        ("POST", "/api/v1/webhooks"),
        ("GET", "/api/v1/webhooks/1"),
        ("DELETE", "/api/v1/webhooks/1"),
    ];

    #[tokio::test]
    async fn every_private_route_wants_a_token() {
        let router = sim().router();
        let unauthorized = fixture("error_unauthorized.json");
        for (method, path) in PRIVATE {
            for headers in [vec![], vec![("X-Token", "wrong")], vec![("Token", "")]] {
                let (status, body) = request(&router, method, path, &headers, None).await;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} {headers:?}"
                );
                assert_eq!(body, unauthorized);
            }
            let wrong_query = if path.contains('?') {
                "&token=nope"
            } else {
                "?token=nope"
            };
            let (status, _) =
                request(&router, method, &format!("{path}{wrong_query}"), &[], None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} query");
        }
    }

    #[tokio::test]
    async fn the_token_is_accepted_in_three_places() {
        let router = sim().router();
        let path = "/api/v1/webhooks";
        for headers in [[("X-Token", "sim-token")], [("Token", "sim-token")]] {
            let (status, body) = request(&router, "GET", path, &headers, None).await;
            assert_eq!(status, StatusCode::OK, "{headers:?}");
            assert_eq!(body, json!([]));
        }
        let (status, _) = request(
            &router,
            "GET",
            "/api/v1/webhooks?token=sim-token",
            &[],
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = request(
            &router,
            "GET",
            "/api/v1/customers?phone_number=%2B13105550147&token=sim-token",
            &[],
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "authorized, then not found");
    }

    #[tokio::test]
    async fn configured_tokens_replace_the_default() {
        let sim = crate::Simulator::new(crate::SimConfig {
            tokens: vec!["one".to_owned(), "two".to_owned()],
            ..test_config()
        });
        let router = sim.router();
        for (token, expected) in [
            ("one", StatusCode::OK),
            ("two", StatusCode::OK),
            ("sim-token", StatusCode::UNAUTHORIZED),
        ] {
            let (status, _) = request(
                &router,
                "GET",
                "/api/v1/webhooks",
                &[("X-Token", token)],
                None,
            )
            .await;
            assert_eq!(status, expected, "{token}");
        }
    }

    #[tokio::test]
    async fn unknown_paths_and_bad_bodies() {
        let router = sim().router();
        let (status, body) = get(&router, "/api/v1/nothing").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, json!({"error": "Not Found"}));
        let (status, body) = get(&router, "/api/v1/messages").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body, json!({"error": "Method Not Allowed"}));
        let (status, body) = request(
            &router,
            "POST",
            "/api/v1/messages",
            &[TOKEN],
            Some(("application/json", b"{not json".to_vec())),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid request body"));
        let (status, body) = post_json(
            &router,
            "/api/v1/customers",
            &json!({"phone_number": "3105550147", "properties": "x"}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({"error": "properties is invalid"}));
    }
}
