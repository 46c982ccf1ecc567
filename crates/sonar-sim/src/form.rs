//! Form-encoded bodies (and query strings) to JSON, with Rails-style nested keys.
//!
//! `properties[great_customer]=true` → `{"properties": {"great_customer": "true"}}`,
//! `webhook[settings][customer_created]=true` nests twice, `tag_names[]=a&tag_names[]=b` →
//! `{"tag_names": ["a", "b"]}`. Values stay strings; the handlers coerce them.

use serde_json::{Map, Value};

/// The body could not be decoded as `application/x-www-form-urlencoded`.
#[derive(Debug, thiserror::Error)]
#[error("malformed form data: {0}")]
pub(crate) struct FormError(#[from] serde_urlencoded::de::Error);

/// Decodes `input` into a JSON object, nesting bracketed keys.
pub(crate) fn parse(input: &[u8]) -> Result<Map<String, Value>, FormError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(input)?;
    let mut root = Map::new();
    for (key, value) in pairs {
        let (base, path) = split_key(&key);
        insert(&mut root, base, &path, value);
    }
    Ok(root)
}

/// `a[b][]` → `("a", ["b", ""])`. A key with unbalanced brackets is taken literally.
fn split_key(key: &str) -> (&str, Vec<&str>) {
    let Some(open) = key.find('[') else {
        return (key, Vec::new());
    };
    let (base, mut rest) = key.split_at(open);
    let mut path = Vec::new();
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix('[') else {
            return (key, Vec::new());
        };
        let Some(close) = inner.find(']') else {
            return (key, Vec::new());
        };
        path.push(&inner[..close]);
        rest = &inner[close + 1..];
    }
    if base.is_empty() {
        return (key, Vec::new());
    }
    (base, path)
}

/// Stores `value` at `key` + `path` inside `target`; an empty path segment appends to an array.
fn insert(target: &mut Map<String, Value>, key: &str, path: &[&str], value: String) {
    let Some((&next, tail)) = path.split_first() else {
        target.insert(key.to_owned(), Value::String(value));
        return;
    };
    let slot = target.entry(key.to_owned()).or_insert(Value::Null);
    if next.is_empty() {
        if !slot.is_array() {
            *slot = Value::Array(Vec::new());
        }
        let Value::Array(items) = slot else {
            return;
        };
        let Some((&field, _)) = tail.split_first() else {
            items.push(Value::String(value));
            return;
        };
        // `a[][name]=x&a[][id]=1`: fill the last object until a key repeats, as Rails does.
        let reuse_last =
            matches!(items.last(), Some(Value::Object(last)) if !last.contains_key(field));
        if !reuse_last {
            items.push(Value::Object(Map::new()));
        }
        if let Some(Value::Object(last)) = items.last_mut() {
            insert(last, field, &tail[1..], value);
        }
    } else {
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        if let Value::Object(inner) = slot {
            insert(inner, next, tail, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(input: &str) -> Value {
        Value::Object(parse(input.as_bytes()).expect("valid form"))
    }

    #[test]
    fn flat_and_nested_keys() {
        assert_eq!(
            parsed("phone_number=%2B13105550147&properties[great_customer]=true&properties[n]=2"),
            json!({"phone_number": "+13105550147", "properties": {"great_customer": "true", "n": "2"}})
        );
        assert_eq!(
            parsed("webhook[name]=n&webhook[settings][customer_created]=true&webhook[active]=true"),
            json!({"webhook": {"name": "n", "settings": {"customer_created": "true"}, "active": "true"}})
        );
    }

    #[test]
    fn arrays() {
        assert_eq!(
            parsed("tag_names[]=a&tag_names[]=b+c"),
            json!({"tag_names": ["a", "b c"]})
        );
        assert_eq!(
            parsed("users[][email]=a%40x&users[][first_name]=A&users[][email]=b%40x"),
            json!({"users": [{"email": "a@x", "first_name": "A"}, {"email": "b@x"}]})
        );
    }

    #[test]
    fn odd_keys_are_literal() {
        assert_eq!(parsed("a[b=1&[c]=2"), json!({"a[b": "1", "[c]": "2"}));
        assert_eq!(parsed(""), json!({}));
    }
}
