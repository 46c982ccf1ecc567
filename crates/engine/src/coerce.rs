//! Coercion of mapped values to a field's declared [`FieldType`].
//!
//! A mapping renders to JSON (the value itself for a single `{{expression}}`, text
//! otherwise); [`coerce`] turns it into what the module declared, or says why it cannot.
//!
//! | type | accepts | gives |
//! |---|---|---|
//! | `text` | text, numbers, booleans | text; whole numbers without `.0` |
//! | `number` | numbers, numeric text (trimmed) | the number; integers stay integers |
//! | `boolean` | booleans, text `true`/`false`/`yes`/`no`/`1`/`0` (any case), numbers `1`/`0` | a boolean |
//! | `date` | RFC 3339, `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]`, unix seconds (see [`crate::template`]'s date helpers) | RFC 3339 text in UTC |
//! | `array` | anything | arrays unchanged, anything else as a one-element array (text is never split at commas) |
//! | `collection` | objects, JSON text of an object | an object |
//! | `url` | absolute `http`/`https` URLs with a host | the URL, trimmed |
//! | `phone` | non-empty text, numbers | text (modules normalize the number) |
//! | `email` | text with exactly one `@` and text on both sides | the address, trimmed |
//! | `any` | anything | unchanged |
//!
//! `null` stays `null` for every type; whether the field may be empty is the caller's
//! decision. Empty (or blank) text counts as no value for every type but `text` and `any`
//! and becomes `null` too: an optional number mapped from `"{{1.maybe}} "` is left out
//! rather than failing, and a required one fails as missing, not as malformed.

use serde_json::Value;

use crate::spec::FieldType;
use crate::template::date;
use crate::template::value::{as_bool, kind_name, parse_number_text, preview, write_number};

/// A value that cannot be coerced to the field's type.
#[derive(Debug, thiserror::Error)]
#[error("expected {expected}, got `{}`: {reason}", preview(.value))]
pub struct CoerceError {
    /// The field's type.
    pub expected: FieldType,
    /// The value as rendered.
    pub value: Value,
    /// Why it does not fit, and what would.
    pub reason: String,
}

/// Coerces a rendered value to a field type (see the module docs for the rules).
pub fn coerce(value: Value, ty: FieldType) -> Result<Value, CoerceError> {
    let blank = matches!(&value, Value::String(s) if s.trim().is_empty());
    if value.is_null() || (blank && !matches!(ty, FieldType::Text | FieldType::Any)) {
        return Ok(Value::Null);
    }
    let fail = |value: Value, reason: String| {
        Err(CoerceError {
            expected: ty,
            value,
            reason,
        })
    };
    match ty {
        FieldType::Any => Ok(value),
        FieldType::Text => match value {
            Value::String(_) => Ok(value),
            Value::Number(ref n) => {
                let mut s = String::new();
                write_number(n, &mut s);
                Ok(Value::String(s))
            }
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            Value::Array(_) => fail(
                value,
                "an array is not text; map one element, or join them with `{{join 1.list \", \"}}`"
                    .to_owned(),
            ),
            _ => fail(
                value,
                "an object is not text; map one of its fields, or use `{{toJson …}}`".to_owned(),
            ),
        },
        FieldType::Number => match &value {
            Value::Number(_) => Ok(value),
            Value::String(s) => match parse_number_text(s) {
                Some(n) => Ok(n),
                None => fail(value, "text that is not a number".to_owned()),
            },
            other => {
                let reason = format!("{} is not a number", kind_name(other));
                fail(value, reason)
            }
        },
        FieldType::Boolean => match as_bool(&value) {
            Some(b) => Ok(Value::Bool(b)),
            None => fail(
                value,
                "not a boolean; use `true`/`false`, `yes`/`no` or `1`/`0`".to_owned(),
            ),
        },
        FieldType::Date => match date::parse_value(&value) {
            Some(dt) => Ok(Value::String(date::to_rfc3339(dt))),
            None => fail(
                value,
                "not a date; use RFC 3339 (`2024-05-01T09:30:00Z`), `YYYY-MM-DD`, `YYYY-MM-DD HH:MM` or unix seconds"
                    .to_owned(),
            ),
        },
        FieldType::Array => match value {
            Value::Array(_) => Ok(value),
            other => Ok(Value::Array(vec![other])),
        },
        FieldType::Collection => match value {
            Value::Object(_) => Ok(value),
            Value::String(ref s) => match serde_json::from_str::<Value>(s) {
                Ok(obj @ Value::Object(_)) => Ok(obj),
                _ => fail(value, "text that is not a JSON object".to_owned()),
            },
            ref other => {
                let reason = format!(
                    "{} is not a collection; map an object (`{{{{1.customer}}}}`)",
                    kind_name(other)
                );
                fail(value, reason)
            }
        },
        FieldType::Url => match &value {
            Value::String(s) => match check_url(s.trim()) {
                Ok(()) => Ok(Value::String(s.trim().to_owned())),
                Err(reason) => fail(value, reason),
            },
            other => {
                let reason = format!("{} is not a URL", kind_name(other));
                fail(value, reason)
            }
        },
        FieldType::Phone => match &value {
            Value::String(s) => Ok(Value::String(s.trim().to_owned())),
            Value::Number(n) => {
                let mut s = String::new();
                write_number(n, &mut s);
                Ok(Value::String(s))
            }
            other => {
                let reason = format!("{} is not a phone number", kind_name(other));
                fail(value, reason)
            }
        },
        FieldType::Email => match &value {
            Value::String(s) => match check_email(s.trim()) {
                Ok(()) => Ok(Value::String(s.trim().to_owned())),
                Err(reason) => fail(value, reason),
            },
            other => {
                let reason = format!("{} is not an email address", kind_name(other));
                fail(value, reason)
            }
        },
    }
}

/// An absolute `http`/`https` URL with a host and no whitespace.
fn check_url(s: &str) -> Result<(), String> {
    let expected = "an absolute URL starting with `http://` or `https://`";
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!("not {expected}"));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!("the scheme `{scheme}` is not `http` or `https`"));
    }
    if s.chars().any(char::is_whitespace) {
        return Err("a URL cannot contain spaces; encode them with `{{encodeURL …}}`".to_owned());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port
            .split_once(']')
            .map_or("", |(h, _)| h.trim_start_matches('['))
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err(format!(
            "the URL has no host; expected {expected} and a host"
        ));
    }
    Ok(())
}

/// Exactly one `@`, with text on both sides and no whitespace.
fn check_email(s: &str) -> Result<(), String> {
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("an email address has exactly one `@`".to_owned());
    };
    if local.is_empty() || domain.is_empty() {
        return Err("an email address needs text before and after the `@`".to_owned());
    }
    if s.chars().any(char::is_whitespace) {
        return Err("an email address cannot contain spaces".to_owned());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value, ty: FieldType) -> Value {
        coerce(v.clone(), ty).unwrap_or_else(|e| panic!("{v} as {ty}: {e}"))
    }

    fn err(v: Value, ty: FieldType) -> CoerceError {
        coerce(v.clone(), ty).expect_err(&format!("{v} as {ty} should fail"))
    }

    const ALL: [FieldType; 10] = [
        FieldType::Text,
        FieldType::Number,
        FieldType::Boolean,
        FieldType::Date,
        FieldType::Array,
        FieldType::Collection,
        FieldType::Url,
        FieldType::Phone,
        FieldType::Email,
        FieldType::Any,
    ];

    #[test]
    fn null_passes_and_blank_is_null() {
        for ty in ALL {
            assert_eq!(ok(Value::Null, ty), Value::Null, "{ty}");
        }
        for ty in ALL {
            let expected = match ty {
                FieldType::Text | FieldType::Any => json!("  "),
                _ => Value::Null,
            };
            assert_eq!(ok(json!("  "), ty), expected, "{ty}");
        }
    }

    #[test]
    fn text() {
        assert_eq!(ok(json!("hi"), FieldType::Text), json!("hi"));
        assert_eq!(ok(json!(4.0), FieldType::Text), json!("4"));
        assert_eq!(ok(json!(4.5), FieldType::Text), json!("4.5"));
        assert_eq!(ok(json!(12), FieldType::Text), json!("12"));
        assert_eq!(ok(json!(true), FieldType::Text), json!("true"));
        assert!(err(json!(["a"]), FieldType::Text).reason.contains("join"));
        let e = err(json!({"a": 1}), FieldType::Text);
        assert_eq!(e.expected, FieldType::Text);
        assert_eq!(e.value, json!({"a": 1}));
        assert!(
            e.to_string().starts_with("expected text, got `{\"a\":1}`"),
            "{e}"
        );
    }

    #[test]
    fn number() {
        assert_eq!(ok(json!(3.5), FieldType::Number), json!(3.5));
        let n = ok(json!(" 42 "), FieldType::Number);
        assert_eq!(n, json!(42));
        assert!(n.is_i64());
        assert_eq!(ok(json!("-1.25"), FieldType::Number), json!(-1.25));
        assert_eq!(
            err(json!("12abc"), FieldType::Number).reason,
            "text that is not a number"
        );
        assert!(err(json!(true), FieldType::Number)
            .reason
            .contains("a boolean is not a number"));
        assert!(err(json!([1]), FieldType::Number)
            .reason
            .contains("an array"));
    }

    #[test]
    fn boolean() {
        for (v, b) in [
            (json!(true), true),
            (json!("TRUE"), true),
            (json!("yes"), true),
            (json!("1"), true),
            (json!(1), true),
            (json!("false"), false),
            (json!(" No "), false),
            (json!("0"), false),
            (json!(0), false),
        ] {
            assert_eq!(ok(v, FieldType::Boolean), json!(b));
        }
        assert!(err(json!("maybe"), FieldType::Boolean)
            .reason
            .contains("yes"));
        assert!(coerce(json!(2), FieldType::Boolean).is_err());
    }

    #[test]
    fn date() {
        let d = json!("2024-05-01T09:30:00Z");
        assert_eq!(ok(json!("2024-05-01T11:30:00+02:00"), FieldType::Date), d);
        assert_eq!(ok(json!("2024-05-01 09:30"), FieldType::Date), d);
        assert_eq!(ok(json!("2024-05-01 09:30:00"), FieldType::Date), d);
        assert_eq!(ok(json!(1_714_555_800), FieldType::Date), d);
        assert_eq!(
            ok(json!("2024-05-01"), FieldType::Date),
            json!("2024-05-01T00:00:00Z")
        );
        assert!(err(json!("next tuesday"), FieldType::Date)
            .reason
            .contains("RFC 3339"));
        assert!(coerce(json!(true), FieldType::Date).is_err());
    }

    #[test]
    fn array() {
        assert_eq!(ok(json!([1, 2]), FieldType::Array), json!([1, 2]));
        assert_eq!(ok(json!("a,b"), FieldType::Array), json!(["a,b"]));
        assert_eq!(ok(json!(3), FieldType::Array), json!([3]));
        assert_eq!(ok(json!({"k": 1}), FieldType::Array), json!([{"k": 1}]));
    }

    #[test]
    fn collection() {
        assert_eq!(ok(json!({"a": 1}), FieldType::Collection), json!({"a": 1}));
        assert_eq!(
            ok(json!(r#"{"a": [1]}"#), FieldType::Collection),
            json!({"a": [1]})
        );
        assert!(err(json!("[1]"), FieldType::Collection)
            .reason
            .contains("JSON object"));
        assert!(err(json!("nope"), FieldType::Collection)
            .reason
            .contains("JSON object"));
        assert!(err(json!([1]), FieldType::Collection)
            .reason
            .contains("an array is not a collection"));
    }

    #[test]
    fn url() {
        for u in [
            "https://example.com",
            "http://127.0.0.1:4010/api",
            "HTTPS://user:pw@host.example/path?q=1#frag",
            "http://[::1]:8080/x",
            " https://example.com/a ",
        ] {
            assert_eq!(ok(json!(u), FieldType::Url), json!(u.trim()), "{u}");
        }
        assert!(err(json!("example.com"), FieldType::Url)
            .reason
            .contains("absolute URL"));
        assert!(err(json!("ftp://example.com"), FieldType::Url)
            .reason
            .contains("`ftp`"));
        assert!(err(json!("https:///path"), FieldType::Url)
            .reason
            .contains("no host"));
        assert!(err(json!("https://:80"), FieldType::Url)
            .reason
            .contains("no host"));
        assert!(err(json!("https://a b.com"), FieldType::Url)
            .reason
            .contains("spaces"));
        assert!(coerce(json!(5), FieldType::Url).is_err());
    }

    #[test]
    fn phone() {
        assert_eq!(
            ok(json!("+1 555 0100"), FieldType::Phone),
            json!("+1 555 0100")
        );
        assert_eq!(ok(json!(15_550_100), FieldType::Phone), json!("15550100"));
        assert!(coerce(json!(true), FieldType::Phone).is_err());
        assert!(coerce(json!(["+1555"]), FieldType::Phone).is_err());
    }

    #[test]
    fn email() {
        assert_eq!(
            ok(json!(" ada@example.com "), FieldType::Email),
            json!("ada@example.com")
        );
        assert_eq!(
            ok(json!("root@localhost"), FieldType::Email),
            json!("root@localhost")
        );
        assert!(err(json!("ada.example.com"), FieldType::Email)
            .reason
            .contains("exactly one"));
        assert!(err(json!("a@b@c"), FieldType::Email)
            .reason
            .contains("exactly one"));
        assert!(err(json!("@example.com"), FieldType::Email)
            .reason
            .contains("before and after"));
        assert!(err(json!("ada@"), FieldType::Email)
            .reason
            .contains("before and after"));
        assert!(err(json!("a da@x.com"), FieldType::Email)
            .reason
            .contains("spaces"));
        assert!(coerce(json!(1), FieldType::Email).is_err());
    }

    #[test]
    fn any() {
        for v in [json!([1]), json!({"a": null}), json!(1.5), json!("x")] {
            assert_eq!(ok(v.clone(), FieldType::Any), v);
        }
    }
}
