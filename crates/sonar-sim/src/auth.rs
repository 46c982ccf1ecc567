//! Credentials (contract §2): the private token as `X-Token` header, `Token` header or `token`
//! query parameter; the publishable key as `X-Publishable-Key` header (or `publishable_key`
//! query parameter). Anything else is 401 `Token or publishable_key not found`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::Shared;

/// Middleware on the token-protected `/api` routes.
pub(crate) async fn require_token(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    if has_token(&shared.config.tokens, req.headers(), req.uri()) {
        next.run(req).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// Whether the request carries one of `tokens` in any of the three accepted places.
pub(crate) fn has_token(tokens: &[String], headers: &HeaderMap, uri: &Uri) -> bool {
    let accepted = |candidate: &str| tokens.iter().any(|token| token == candidate);
    for name in ["x-token", "token"] {
        if let Some(value) = headers.get(name).and_then(|value| value.to_str().ok()) {
            if accepted(value) {
                return true;
            }
        }
    }
    query_value(uri, "token").is_some_and(|value| accepted(&value))
}

/// Whether the request carries the publishable key.
pub(crate) fn has_publishable_key(key: &str, headers: &HeaderMap, uri: &Uri) -> bool {
    let header = headers
        .get("x-publishable-key")
        .and_then(|value| value.to_str().ok());
    header == Some(key) || query_value(uri, "publishable_key").is_some_and(|value| value == key)
}

/// The decoded value of query parameter `name`.
fn query_value(uri: &Uri, name: &str) -> Option<String> {
    let query = uri.query()?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    pairs
        .into_iter()
        .find_map(|(key, value)| (key == name).then_some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn tokens() -> Vec<String> {
        vec!["a".to_owned(), "b+c".to_owned()]
    }

    #[test]
    fn three_places() {
        let mut headers = HeaderMap::new();
        let uri: Uri = "/api/v1/customers".parse().expect("uri");
        assert!(!has_token(&tokens(), &headers, &uri));
        headers.insert("X-Token", HeaderValue::from_static("a"));
        assert!(has_token(&tokens(), &headers, &uri));
        let mut headers = HeaderMap::new();
        headers.insert("Token", HeaderValue::from_static("b+c"));
        assert!(has_token(&tokens(), &headers, &uri));
        let uri: Uri = "/x?phone_number=1&token=b%2Bc".parse().expect("uri");
        assert!(has_token(&tokens(), &HeaderMap::new(), &uri));
        let uri: Uri = "/x?token=nope".parse().expect("uri");
        assert!(!has_token(&tokens(), &HeaderMap::new(), &uri));
    }

    #[test]
    fn publishable_key() {
        let mut headers = HeaderMap::new();
        let uri: Uri = "/x".parse().expect("uri");
        assert!(!has_publishable_key("pk", &headers, &uri));
        headers.insert("X-Publishable-Key", HeaderValue::from_static("pk"));
        assert!(has_publishable_key("pk", &headers, &uri));
        let uri: Uri = "/x?publishable_key=pk".parse().expect("uri");
        assert!(has_publishable_key("pk", &HeaderMap::new(), &uri));
    }
}
