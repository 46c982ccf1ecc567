//! Request parameters: query string merged with a JSON or form-encoded body, as one JSON object.
//!
//! Sonar is a Rails-style server: it reads params from the query and the body alike and ignores
//! unknown ones. [`Params`] does the same (the body wins on a clash) and offers the lookups the
//! handlers need: text, booleans, string lists and "is missing" checks.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::form;

/// The parameters of one request; absent and `null` values count as missing.
#[derive(Debug, Default)]
pub(crate) struct Params(pub(crate) Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut params = match req.uri().query() {
            Some(query) if !query.is_empty() => form::parse(query.as_bytes())
                .map_err(|error| ApiError::InvalidBody(error.to_string()))?,
            _ => Map::new(),
        };
        let is_form = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|error| ApiError::InvalidBody(error.body_text()))?;
        let body = parse_body(&body, is_form)?;
        if params.is_empty() {
            params = body;
        } else {
            params.extend(body);
        }
        Ok(Params(params))
    }
}

/// A JSON object, or form data when the content type says so. An empty body is `{}`.
fn parse_body(body: &[u8], is_form: bool) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    if is_form {
        return form::parse(body).map_err(|error| ApiError::InvalidBody(error.to_string()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::InvalidBody("expected a JSON object".to_owned())),
        Err(error) => Err(ApiError::InvalidBody(error.to_string())),
    }
}

/// The text of a scalar: strings as they are, numbers and booleans as written.
pub(crate) fn scalar_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Number(number) => Some(Cow::Owned(number.to_string())),
        Value::Bool(flag) => Some(Cow::Borrowed(if *flag { "true" } else { "false" })),
        _ => None,
    }
}

/// A boolean from JSON or form text (`true`/`false`, `1`/`0`).
pub(crate) fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) => match text.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        Value::Number(number) => match number.as_u64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        _ => None,
    }
}

impl Params {
    /// The value of `key`, unless absent or `null`.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|value| !value.is_null())
    }

    /// The text of `key`; a non-scalar (object, array) is an invalid param.
    pub(crate) fn text(&self, key: &'static str) -> Result<Option<Cow<'_, str>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => scalar_text(value)
                .map(Some)
                .ok_or(ApiError::InvalidParam(key)),
        }
    }

    /// Like [`Params::text`], as an owned string.
    pub(crate) fn string(&self, key: &'static str) -> Result<Option<String>, ApiError> {
        Ok(self.text(key)?.map(Cow::into_owned))
    }

    /// A boolean param; anything but a boolean-like value is an invalid param.
    pub(crate) fn bool(&self, key: &'static str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => as_bool(value).map(Some).ok_or(ApiError::InvalidParam(key)),
        }
    }

    /// A list of strings: a JSON/form array, or one scalar taken as a one-element list.
    pub(crate) fn strings(&self, key: &'static str) -> Result<Vec<String>, ApiError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    scalar_text(item)
                        .map(Cow::into_owned)
                        .ok_or(ApiError::InvalidParam(key))
                })
                .collect(),
            Some(value) => scalar_text(value)
                .map(|text| vec![text.into_owned()])
                .ok_or(ApiError::InvalidParam(key)),
        }
    }

    /// Fails with every one of `keys` that is missing, joined in the given order.
    pub(crate) fn require(&self, keys: &[&'static str]) -> Result<(), ApiError> {
        let missing: Vec<&'static str> = keys
            .iter()
            .copied()
            .filter(|key| self.get(key).is_none())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ApiError::MissingParams(missing))
        }
    }

    /// The nested object at `key` as params of its own (empty when absent or not an object).
    pub(crate) fn nested(&self, key: &str) -> Option<Params> {
        match self.get(key) {
            Some(Value::Object(map)) => Some(Params(map.clone())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(value: Value) -> Params {
        match value {
            Value::Object(map) => Params(map),
            _ => Params::default(),
        }
    }

    #[test]
    fn missing_means_absent_or_null() {
        let p = params(json!({"to": null, "text": ""}));
        let error = p.require(&["text", "to", "x"]).expect_err("missing");
        assert_eq!(error.to_string(), "to is missing, x is missing");
    }

    #[test]
    fn coercions() {
        let p = params(json!({"a": true, "b": "false", "c": 42, "d": ["x", 1], "e": {"k": 1}}));
        assert_eq!(p.bool("a").ok().flatten(), Some(true));
        assert_eq!(p.bool("b").ok().flatten(), Some(false));
        assert_eq!(p.text("c").ok().flatten().as_deref(), Some("42"));
        assert_eq!(
            p.strings("d").ok(),
            Some(vec!["x".to_owned(), "1".to_owned()])
        );
        assert!(matches!(p.text("e"), Err(ApiError::InvalidParam("e"))));
        assert!(matches!(p.bool("c"), Err(ApiError::InvalidParam("c"))));
        assert_eq!(p.strings("zz").ok(), Some(Vec::new()));
    }

    #[test]
    fn bodies() {
        assert!(parse_body(b"  ", false).expect("empty").is_empty());
        assert_eq!(
            parse_body(b"a=1&b[]=2", true).expect("form"),
            params(json!({"a": "1", "b": ["2"]})).0
        );
        assert!(matches!(
            parse_body(b"[1]", false),
            Err(ApiError::InvalidBody(_))
        ));
        assert!(matches!(
            parse_body(b"{", false),
            Err(ApiError::InvalidBody(_))
        ));
    }
}
