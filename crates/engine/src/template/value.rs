//! JSON value helpers shared by templates, filters and coercion: how a value reads as
//! text, as a number or as a truth value, and how numbers are normalized.
//!
//! Make shows whole numbers without a fraction (`4`, not `4.0`); every number a helper
//! computes goes through [`number_value`], which stores whole results as JSON integers,
//! and [`write_text`] prints whole floats from the data the same way.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::{Number, Value};

/// A `null` to borrow when a path is missing.
pub(crate) static NULL: Value = Value::Null;

/// Largest magnitude at which every whole `f64` is exactly an `i64` (2^53).
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// A computed number as JSON: whole values become integers; `None` for NaN or infinity.
pub(crate) fn number_value(f: f64) -> Option<Value> {
    if !f.is_finite() {
        return None;
    }
    if f.fract() == 0.0 && f.abs() <= EXACT_INT {
        // Exact: |f| <= 2^53 and whole, so the cast loses nothing.
        #[allow(clippy::cast_possible_truncation)]
        return Some(Value::from(f as i64));
    }
    Number::from_f64(f).map(Value::Number)
}

/// Appends a number as Make shows it: whole numbers without `.0`.
pub(crate) fn write_number(n: &Number, out: &mut String) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        if f.fract() == 0.0 && f.abs() <= EXACT_INT {
            #[allow(clippy::cast_possible_truncation)]
            let i = f as i64;
            let _ = write!(out, "{i}");
        } else {
            let _ = write!(out, "{f}");
        }
    }
}

/// Appends a value as text: strings as they are, whole numbers without `.0`, `null` as
/// nothing, arrays as their elements joined with `, ` (as Make shows them) and objects
/// as compact JSON.
pub(crate) fn write_text(v: &Value, out: &mut String) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_text(item, out);
            }
        }
        Value::Object(_) => out.push_str(&v.to_string()),
    }
}

/// A value as text (see [`write_text`]); borrows strings.
pub(crate) fn to_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        Value::Null => Cow::Borrowed(""),
        _ => {
            let mut s = String::new();
            write_text(v, &mut s);
            Cow::Owned(s)
        }
    }
}

/// Whether `s` (already trimmed) looks like a decimal number: sign, digits, fraction,
/// exponent. Rejects `inf`, `NaN`, hex and empty text, which `f64::from_str` would take
/// or which no user means as a number.
fn looks_numeric(s: &str) -> bool {
    let mut digits = false;
    for c in s.chars() {
        match c {
            '0'..='9' => digits = true,
            '+' | '-' | '.' | 'e' | 'E' => {}
            _ => return false,
        }
    }
    digits
}

/// Parses numeric text (trimmed) to JSON: integers stay integers, others become floats.
pub(crate) fn parse_number_text(s: &str) -> Option<Value> {
    let s = s.trim();
    if !looks_numeric(s) {
        return None;
    }
    if let Ok(i) = s.parse::<i64>() {
        return Some(Value::from(i));
    }
    if let Ok(u) = s.parse::<u64>() {
        return Some(Value::from(u));
    }
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .and_then(|f| Number::from_f64(f).map(Value::Number))
}

/// A value as a number: JSON numbers, and numeric text (trimmed).
pub(crate) fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let s = s.trim();
            if looks_numeric(s) {
                s.parse::<f64>().ok().filter(|f| f.is_finite())
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A value as a boolean: JSON booleans, the text `true`/`false`/`yes`/`no`/`1`/`0`
/// (any case, trimmed) and the numbers `1`/`0`.
pub(crate) fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => {
            let s = s.trim();
            if ["true", "yes", "1"]
                .iter()
                .any(|t| s.eq_ignore_ascii_case(t))
            {
                Some(true)
            } else if ["false", "no", "0"]
                .iter()
                .any(|t| s.eq_ignore_ascii_case(t))
            {
                Some(false)
            } else {
                None
            }
        }
        Value::Number(n) => n.as_f64().and_then(|f| {
            if f == 1.0 {
                Some(true)
            } else if f == 0.0 {
                Some(false)
            } else {
                None
            }
        }),
        _ => None,
    }
}

/// Handlebars' truthiness (as `{{#if}}` uses it): `null`, `false`, `0`, `""` and `[]`
/// are false; everything else, objects included, is true.
pub(crate) fn is_truthy(v: &Value) -> bool {
    truthy(v, false)
}

/// [`is_truthy`], where `include_zero` makes `0` true (`{{#if x includeZero=true}}`).
pub(crate) fn truthy(v: &Value, include_zero: bool) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| include_zero || f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

/// Make's "empty": `null`, `""`, `[]` and `{}`.
pub(crate) fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Loose equality: equal JSON, equal numbers (`4` and `4.0`, `"4"` and `4`), or equal
/// text of two scalars (`true` and `"true"`).
pub(crate) fn loose_eq(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Value::Number(_), _) | (_, Value::Number(_)) => {
            matches!((as_number(a), as_number(b)), (Some(x), Some(y)) if x == y)
        }
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        (Value::Null, _) | (_, Value::Null) => false,
        _ => to_text(a) == to_text(b),
    }
}

/// What kind of JSON value this is, for messages.
pub(crate) fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value for error messages: compact JSON, cut after 60 characters.
pub(crate) fn preview(v: &Value) -> String {
    const MAX: usize = 60;
    let s = v.to_string();
    if s.chars().count() <= MAX {
        s
    } else {
        let mut cut: String = s.chars().take(MAX).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_numbers_render_without_fraction() {
        assert_eq!(to_text(&json!(4.0)), "4");
        assert_eq!(to_text(&json!(-12.0)), "-12");
        assert_eq!(to_text(&json!(4.5)), "4.5");
        assert_eq!(to_text(&json!(7)), "7");
        assert_eq!(number_value(4.0).unwrap(), json!(4));
        assert!(number_value(4.0).unwrap().is_i64());
        assert_eq!(number_value(0.5).unwrap(), json!(0.5));
        assert!(number_value(f64::NAN).is_none());
    }

    #[test]
    fn text_of_arrays_and_objects() {
        assert_eq!(to_text(&json!(["a", 1, null])), "a, 1, ");
        assert_eq!(to_text(&json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(to_text(&json!(null)), "");
        assert_eq!(to_text(&json!(true)), "true");
    }

    #[test]
    fn numeric_text() {
        assert_eq!(as_number(&json!(" 4.5 ")), Some(4.5));
        assert_eq!(as_number(&json!("1e3")), Some(1000.0));
        assert_eq!(as_number(&json!("inf")), None);
        assert_eq!(as_number(&json!("NaN")), None);
        assert_eq!(as_number(&json!("")), None);
        assert_eq!(as_number(&json!("-")), None);
        assert_eq!(parse_number_text("42").unwrap(), json!(42));
        assert!(parse_number_text("42").unwrap().is_i64());
        assert_eq!(parse_number_text("4.25").unwrap(), json!(4.25));
        assert!(parse_number_text("4x").is_none());
    }

    #[test]
    fn loose_equality() {
        assert!(loose_eq(&json!(4), &json!(4.0)));
        assert!(loose_eq(&json!("4"), &json!(4)));
        assert!(loose_eq(&json!(true), &json!("true")));
        assert!(!loose_eq(&json!(null), &json!("")));
        assert!(!loose_eq(&json!([1]), &json!("1")));
    }

    #[test]
    fn truthiness_and_emptiness() {
        assert!(!is_truthy(&json!(0)));
        assert!(!is_truthy(&json!("")));
        assert!(!is_truthy(&json!([])));
        assert!(is_truthy(&json!({})));
        assert!(is_empty(&json!({})));
        assert!(!is_empty(&json!(0)));
        assert_eq!(as_bool(&json!("Yes")), Some(true));
        assert_eq!(as_bool(&json!(0)), Some(false));
        assert_eq!(as_bool(&json!("maybe")), None);
    }

    #[test]
    fn preview_cuts_long_values() {
        let long = "x".repeat(100);
        assert!(preview(&json!(long)).ends_with('…'));
        assert_eq!(preview(&json!("ab")), r#""ab""#);
    }
}
