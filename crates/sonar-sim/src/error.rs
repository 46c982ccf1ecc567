//! Errors the simulator answers with, shaped as Sonar's: `{"error": "<message>"}` plus the
//! contract's status code (§3).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The resource a 404 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    Customer,
    Campaign,
    Message,
    Webhook,
    Property,
    Route,
}

impl Resource {
    fn not_found(self) -> &'static str {
        match self {
            Resource::Customer => "Customer not found",
            Resource::Campaign => "Campaign not found",
            Resource::Message => "Message not found",
            Resource::Webhook => "Webhook not found",
            Resource::Property => "Property not found",
            Resource::Route => "Not Found",
        }
    }
}

/// Every error response of the simulator; the message is the body's `error` string.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// Required parameters absent (or null), in the order they were checked.
    #[error("{}", missing_message(.0))]
    MissingParams(Vec<&'static str>),
    /// A parameter is present but has the wrong type or an unusable value.
    #[error("{0} is invalid")]
    InvalidParam(&'static str),
    /// The body is neither JSON nor form data the simulator can read.
    #[error("Invalid request body: {0}")]
    InvalidBody(String),
    #[error("Invalid Phone Number")]
    InvalidPhoneNumber,
    #[error("text is blank")]
    BlankText,
    #[error("Tag not found: {0}")]
    TagNotFound(String),
    #[error("User not found")]
    UserNotFound,
    #[error("Invalid send_at")]
    InvalidSendAt,
    #[error("Duplicate Message")]
    DuplicateMessage,
    #[error("Token or publishable_key not found")]
    Unauthorized,
    #[error("{}", .0.not_found())]
    NotFound(Resource),
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    #[error("Rate Limit Exceeded")]
    RateLimited { retry_after_s: u64 },
    /// Injected by `/_sim/faults`: a server failure with the configured status.
    #[error("Request Timed Out")]
    InjectedFailure(StatusCode),
}

fn missing_message(params: &[&'static str]) -> String {
    params
        .iter()
        .map(|param| format!("{param} is missing"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingParams(_)
            | ApiError::InvalidParam(_)
            | ApiError::InvalidBody(_)
            | ApiError::InvalidPhoneNumber
            | ApiError::BlankText
            | ApiError::TagNotFound(_)
            | ApiError::UserNotFound
            | ApiError::InvalidSendAt
            | ApiError::DuplicateMessage => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::InjectedFailure(status) => *status,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() });
        let mut response = crate::api::json_response(self.status(), &body);
        if let ApiError::RateLimited { retry_after_s } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_params_are_joined_in_order() {
        let error = ApiError::MissingParams(vec!["text", "to"]);
        assert_eq!(error.to_string(), "text is missing, to is missing");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn not_found_names_the_resource() {
        assert_eq!(
            ApiError::NotFound(Resource::Webhook).to_string(),
            "Webhook not found"
        );
        assert_eq!(
            ApiError::NotFound(Resource::Property).status(),
            StatusCode::NOT_FOUND
        );
    }
}
