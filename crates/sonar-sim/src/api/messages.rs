//! Message endpoints (contract §5.6–5.7): send a message, append a tag to a message.
//!
//! `POST /v1/messages` is the benchmark's hot path: everything that can happen outside the
//! lock (parsing, phone normalization, minting ids and the timestamp) does.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::json_response;
use crate::error::{ApiError, Resource};
use crate::params::Params;
use crate::phone;
use crate::state::NewMessage;
use crate::Shared;

/// The 202 body of `POST /v1/messages`.
#[derive(Serialize)]
struct SendMessageResponse<'a> {
    to: &'a str,
    text: &'a str,
    status: &'static str,
    external_id: &'a str,
    message_id: &'a str,
    media_url: Option<&'a str>,
    tag_names: &'a [String],
    created_at: &'a str,
}

/// `POST /v1/messages` → 202 `{to, text, status, ...}`; `status` is `queued` or `unsubscribed`.
pub(crate) async fn send(
    State(shared): State<Arc<Shared>>,
    params: Params,
) -> Result<Response, ApiError> {
    let text = params.string("text")?;
    let media_url = params.string("media_url")?.filter(|url| !url.is_empty());
    let to = params.text("to")?;
    let mut missing = Vec::new();
    if text.is_none() && media_url.is_none() {
        missing.push("text");
    }
    if to.is_none() {
        missing.push("to");
    }
    if !missing.is_empty() {
        return Err(ApiError::MissingParams(missing));
    }
    let text = text.unwrap_or_default();
    if media_url.is_none() && text.trim().is_empty() {
        return Err(ApiError::BlankText);
    }
    let to = phone::normalize(&to.unwrap_or_default())?;
    let tag_names = params.strings("tag_names")?;
    let message = NewMessage::new(text, media_url, tag_names);

    let mut state = shared.lock();
    if let Some(tag) = state.unknown_tag(&message.tag_names) {
        return Err(ApiError::TagNotFound(tag.clone()));
    }
    let customer = state.ensure_customer(&to);
    if state.duplicate_check
        && state.is_duplicate(
            customer,
            &message.text,
            message.media_url.as_deref(),
            message.created,
        )
    {
        return Err(ApiError::DuplicateMessage);
    }
    let (idx, status) = state.send_outbound(customer, message);
    let stored = &state.messages[idx];
    let body = SendMessageResponse {
        to: &to,
        text: &stored.text,
        status: status.as_str(),
        external_id: &stored.external_id,
        message_id: &stored.message_id,
        media_url: stored.media_url.as_deref(),
        tag_names: &stored.tag_names,
        created_at: &stored.created_at,
    };
    Ok(json_response(StatusCode::ACCEPTED, &body))
}

/// The 200 body of `POST /v1/messages/tags` (and `/_sim/message_tags`).
#[derive(Serialize)]
pub(crate) struct MessageTags<'a> {
    pub(crate) external_id: &'a str,
    pub(crate) message_id: &'a str,
    pub(crate) tag_names: &'a [String],
}

/// `POST /v1/messages/tags` `{external_id, tag_name}` → 200 with the message's tags.
pub(crate) async fn append_tag(
    State(shared): State<Arc<Shared>>,
    params: Params,
) -> Result<Response, ApiError> {
    params.require(&["external_id", "tag_name"])?;
    let external_id = params.text("external_id")?.unwrap_or_default();
    let tag = params.text("tag_name")?.unwrap_or_default();
    let mut state = shared.lock();
    let message = state
        .message_seq(&external_id)
        .ok_or(ApiError::NotFound(Resource::Message))?;
    if !state.has_tag(&tag) {
        return Err(ApiError::TagNotFound(tag.into_owned()));
    }
    state.add_message_tag(message, &tag);
    let stored = &state.messages[message];
    let body = MessageTags {
        external_id: &stored.external_id,
        message_id: &stored.message_id,
        tag_names: &stored.tag_names,
    };
    Ok(json_response(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::StatusCode;
    use serde_json::json;

    use crate::test_support::*;

    #[tokio::test]
    async fn send_matches_fixture_and_creates_the_customer() {
        let sim = sim_with_agent();
        let router = sim.router();
        let (status, body) = post_json(
            &router,
            "/api/v1/messages",
            &fixture("request_send_message.json"),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_same_shape(&body, &fixture("response_send_message.json"));
        assert_eq!(body["status"], "queued");
        assert_eq!(body["tag_names"], json!(["service"]));
        assert_eq!(body["external_id"].as_str().unwrap().len(), 24);
        let state = sim.state_json();
        assert_eq!(state["customers"][0]["phone_number"], "+13105550147");
        assert_eq!(state["customers"][0]["state"], "replied");
        assert_eq!(state["messages"][0]["direction"], "outbound");
    }

    #[tokio::test]
    async fn unsubscribed_customers_are_not_sent_to() {
        let router = sim().router();
        post_json(
            &router,
            "/api/v1/customers",
            &json!({"phone_number": "+13105550199", "subscribed": false}),
        )
        .await;
        let (status, body) = post_json(
            &router,
            "/api/v1/messages",
            &json!({"to": "+13105550199", "text": "Weekend sale: 20% off helmets."}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_same_shape(&body, &fixture("response_send_message_unsubscribed.json"));
        assert_eq!(body["status"], "unsubscribed");
        assert_eq!(body["media_url"], json!(null));
    }

    #[tokio::test]
    async fn form_encoded_send_with_tag_array() {
        let sim = sim_with_agent();
        let router = sim.router();
        let (status, body) = post_form(
            &router,
            "/api/v1/messages",
            "to=5555555557&text=hello+there&tag_names[]=service&tag_names[]=follow-up",
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(body["to"], "+15555555557");
        assert_eq!(body["text"], "hello there");
        assert_eq!(body["tag_names"], json!(["service", "follow-up"]));
    }

    #[tokio::test]
    async fn validation_failures() {
        let sim = sim_with_agent();
        let router = sim.router();
        let cases = [
            (json!({}), "text is missing, to is missing"),
            (json!({"to": "3105550147"}), "text is missing"),
            (json!({"text": "hi"}), "to is missing"),
            (json!({"to": "3105550147", "text": "  "}), "text is blank"),
            (json!({"to": "111", "text": "hi"}), "Invalid Phone Number"),
            (
                json!({"to": "3105550147", "text": "hi", "tag_names": ["service", "vip"]}),
                "Tag not found: vip",
            ),
        ];
        for (request, error) in cases {
            let (status, body) = post_json(&router, "/api/v1/messages", &request).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{request}");
            assert_eq!(body, json!({ "error": error }), "{request}");
        }
        let (_, body) = post_json(&router, "/api/v1/messages", &json!({})).await;
        assert_eq!(body, fixture("error_missing_params.json"));
        let (_, body) = post_json(
            &router,
            "/api/v1/messages",
            &json!({"to": "3105550147", "text": "hi", "tag_names": ["vip"]}),
        )
        .await;
        assert_eq!(body, fixture("error_tag_not_found.json"));
        // Media without text is fine.
        let (status, body) = post_json(
            &router,
            "/api/v1/messages",
            &json!({"to": "3105550147", "media_url": "https://x/y.png"}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(body["text"], "");
        assert!(sim.state_json()["messages"].as_array().unwrap().len() == 1);
    }

    #[tokio::test]
    async fn duplicate_check_is_off_by_default_and_switchable() {
        let router = sim().router();
        let message = json!({"to": "3105550147", "text": "same"});
        for _ in 0..2 {
            let (status, _) = post_json(&router, "/api/v1/messages", &message).await;
            assert_eq!(status, StatusCode::ACCEPTED);
        }
        let (status, _) =
            post_json(&router, "/_sim/faults", &json!({"duplicate_check": true})).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = post_json(&router, "/api/v1/messages", &message).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({"error": "Duplicate Message"}));
        let (status, _) = post_json(
            &router,
            "/api/v1/messages",
            &json!({"to": "3105550147", "text": "different"}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn append_tag() {
        let sim = sim_with_agent();
        let router = sim.router();
        let (_, sent) = post_json(
            &router,
            "/api/v1/messages",
            &fixture("request_send_message.json"),
        )
        .await;
        let external_id = sent["external_id"].as_str().unwrap();
        let request = json!({"external_id": external_id, "tag_name": "follow-up"});
        let (status, body) = post_json(&router, "/api/v1/messages/tags", &request).await;
        assert_eq!(status, StatusCode::OK);
        assert_same_shape(&body, &fixture("response_append_message_tag.json"));
        assert_eq!(body["tag_names"], json!(["service", "follow-up"]));
        let (status, body) = post_json(&router, "/api/v1/messages/tags", &request).await;
        assert_eq!(status, StatusCode::OK, "already there");
        assert_eq!(body["tag_names"], json!(["service", "follow-up"]));

        let (status, body) = post_json(
            &router,
            "/api/v1/messages/tags",
            &json!({"external_id": external_id, "tag_name": "vip"}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, fixture("error_tag_not_found.json"));
        let (status, body) = post_json(
            &router,
            "/api/v1/messages/tags",
            &fixture("request_append_message_tag.json"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, json!({"error": "Message not found"}));
        let (status, body) = post_json(&router, "/api/v1/messages/tags", &json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": "external_id is missing, tag_name is missing"})
        );
    }
}
