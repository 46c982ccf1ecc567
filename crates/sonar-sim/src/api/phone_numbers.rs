//! `GET /v1/phone_numbers/available` (contract §5.9): the browser-safe call, authorized by the
//! publishable key (a private token is accepted too).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::json_response;
use crate::auth;
use crate::error::ApiError;
use crate::state::COMPANY_NUMBER;
use crate::Shared;

/// 200 `{"available_number": "3105550100"}`: the company number in its observed 10-digit form.
pub(crate) async fn available(
    State(shared): State<Arc<Shared>>,
    req: Request,
) -> Result<Response, ApiError> {
    let (headers, uri) = (req.headers(), req.uri());
    let allowed = auth::has_publishable_key(&shared.config.publishable_key, headers, uri)
        || auth::has_token(&shared.config.tokens, headers, uri);
    if !allowed {
        return Err(ApiError::Unauthorized);
    }
    let ten_digits = COMPANY_NUMBER.trim_start_matches("+1");
    Ok(json_response(
        StatusCode::OK,
        &json!({ "available_number": ten_digits }),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::StatusCode;

    use crate::test_support::*;

    #[tokio::test]
    async fn publishable_key_required() {
        let router = sim().router();
        let path = "/api/v1/phone_numbers/available";
        let (status, body) = request(
            &router,
            "GET",
            path,
            &[("X-Publishable-Key", "sim-publishable-key")],
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_same_shape(&body, &fixture("response_available_phone_number.json"));
        assert_eq!(body["available_number"], "3105550100");

        let (status, body) = request(
            &router,
            "GET",
            path,
            &[("X-Publishable-Key", "wrong")],
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, fixture("error_unauthorized.json"));
        let (status, _) = request(&router, "GET", path, &[], None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}
