//! Filter operators, with Make's names and semantics.
//!
//! | operator | true when |
//! |---|---|
//! | `exists` | the value is present and not `null` (empty text, `0`, `false` and `[]` exist) |
//! | `not_exists` | the value is missing or `null` |
//! | `text.equal`, `text.not_equal` | the texts are (not) equal |
//! | `text.contains`, `text.not_contains` | the left text (does not) contain the right |
//! | `text.starts_with`, `text.ends_with` | the left text starts / ends with the right |
//! | `text.matches` | the regular expression (right) matches somewhere in the left text |
//! | `number.equal` … `number.less_or_equal` | both are numbers and compare so |
//! | `date.before`, `date.after`, `date.equal` | both are dates and compare so |
//! | `boolean.equal` | both are booleans and equal |
//! | `array.contains`, `array.not_contains` | the array (does not) have an element equal to the right |
//! | `array.length_equal`, `array.length_greater` | the array's length is equal to / greater than the right |
//!
//! Every `text.*` operator has a case-insensitive twin ending in `_ci`
//! (`text.equal_ci`, `text.matches_ci`).
//!
//! Reading operands: text operators read both sides as text (`null` is empty text,
//! `4.0` is `4`). Number operators take numbers and numeric text; date operators take
//! what [`crate::template`]'s date helpers read (RFC 3339, `YYYY-MM-DD`, unix seconds, …);
//! `boolean.equal` takes booleans and the text `true`/`false`/`yes`/`no`/`1`/`0`. When an
//! operand cannot be read so, the condition is false (every operator, `*.not_equal`
//! included), never an error. Array operators read `null` as an empty array and any
//! other non-array as a one-element array; elements compare loosely (`"4"` equals `4`).

use std::fmt;

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::template::date;
use crate::template::value::{as_bool, as_number, loose_eq, to_text};

/// The text operators (each has a `_ci` twin).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextOp {
    /// `text.equal`
    Equal,
    /// `text.not_equal`
    NotEqual,
    /// `text.contains`
    Contains,
    /// `text.not_contains`
    NotContains,
    /// `text.starts_with`
    StartsWith,
    /// `text.ends_with`
    EndsWith,
    /// `text.matches`
    Matches,
}

/// The number operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberOp {
    /// `number.equal`
    Equal,
    /// `number.not_equal`
    NotEqual,
    /// `number.greater`
    Greater,
    /// `number.less`
    Less,
    /// `number.greater_or_equal`
    GreaterOrEqual,
    /// `number.less_or_equal`
    LessOrEqual,
}

/// The date operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateOp {
    /// `date.before`
    Before,
    /// `date.after`
    After,
    /// `date.equal`
    Equal,
}

/// The array operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArrayOp {
    /// `array.contains`
    Contains,
    /// `array.not_contains`
    NotContains,
    /// `array.length_equal`
    LengthEqual,
    /// `array.length_greater`
    LengthGreater,
}

/// A filter operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `exists`
    Exists,
    /// `not_exists`
    NotExists,
    /// `text.*`; `true` for the `_ci` twin.
    Text(TextOp, bool),
    /// `number.*`
    Number(NumberOp),
    /// `date.*`
    Date(DateOp),
    /// `boolean.equal`
    BooleanEqual,
    /// `array.*`
    Array(ArrayOp),
}

/// Every operator by name, `_ci` twins included.
const OPERATORS: &[(&str, Operator)] = &[
    ("exists", Operator::Exists),
    ("not_exists", Operator::NotExists),
    ("text.equal", Operator::Text(TextOp::Equal, false)),
    ("text.equal_ci", Operator::Text(TextOp::Equal, true)),
    ("text.not_equal", Operator::Text(TextOp::NotEqual, false)),
    ("text.not_equal_ci", Operator::Text(TextOp::NotEqual, true)),
    ("text.contains", Operator::Text(TextOp::Contains, false)),
    ("text.contains_ci", Operator::Text(TextOp::Contains, true)),
    (
        "text.not_contains",
        Operator::Text(TextOp::NotContains, false),
    ),
    (
        "text.not_contains_ci",
        Operator::Text(TextOp::NotContains, true),
    ),
    (
        "text.starts_with",
        Operator::Text(TextOp::StartsWith, false),
    ),
    (
        "text.starts_with_ci",
        Operator::Text(TextOp::StartsWith, true),
    ),
    ("text.ends_with", Operator::Text(TextOp::EndsWith, false)),
    ("text.ends_with_ci", Operator::Text(TextOp::EndsWith, true)),
    ("text.matches", Operator::Text(TextOp::Matches, false)),
    ("text.matches_ci", Operator::Text(TextOp::Matches, true)),
    ("number.equal", Operator::Number(NumberOp::Equal)),
    ("number.not_equal", Operator::Number(NumberOp::NotEqual)),
    ("number.greater", Operator::Number(NumberOp::Greater)),
    ("number.less", Operator::Number(NumberOp::Less)),
    (
        "number.greater_or_equal",
        Operator::Number(NumberOp::GreaterOrEqual),
    ),
    (
        "number.less_or_equal",
        Operator::Number(NumberOp::LessOrEqual),
    ),
    ("date.before", Operator::Date(DateOp::Before)),
    ("date.after", Operator::Date(DateOp::After)),
    ("date.equal", Operator::Date(DateOp::Equal)),
    ("boolean.equal", Operator::BooleanEqual),
    ("array.contains", Operator::Array(ArrayOp::Contains)),
    ("array.not_contains", Operator::Array(ArrayOp::NotContains)),
    ("array.length_equal", Operator::Array(ArrayOp::LengthEqual)),
    (
        "array.length_greater",
        Operator::Array(ArrayOp::LengthGreater),
    ),
];

impl Operator {
    /// The operator of that name.
    pub fn from_name(name: &str) -> Option<Operator> {
        OPERATORS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, op)| *op)
    }

    /// Every operator name.
    pub fn names() -> impl Iterator<Item = &'static str> {
        OPERATORS.iter().map(|(n, _)| *n)
    }

    /// The operator's name as written in scenarios.
    pub fn name(self) -> &'static str {
        OPERATORS
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(n, _)| n)
    }

    /// Whether it compares with a `right` value (all but `exists`/`not_exists`).
    pub fn takes_right(self) -> bool {
        !matches!(self, Operator::Exists | Operator::NotExists)
    }

    /// Whether `right` is a regular expression.
    pub fn is_regex(self) -> bool {
        matches!(self, Operator::Text(TextOp::Matches, _))
    }

    /// Compiles the regular expression of `text.matches` / `text.matches_ci`.
    pub(crate) fn regex(self, pattern: &str) -> Result<Regex, String> {
        let ci = matches!(self, Operator::Text(_, true));
        RegexBuilder::new(pattern)
            .case_insensitive(ci)
            .build()
            .map_err(|e| {
                let reason = e.to_string();
                let reason = reason.lines().last().unwrap_or_default().trim().to_owned();
                format!("`{pattern}` is not a valid regular expression ({reason})")
            })
    }

    /// Applies the operator. `regex` is the compiled `right` of `text.matches` when it
    /// was static; otherwise it is compiled here (a bad one is the error).
    pub(crate) fn apply(
        self,
        left: &Value,
        right: &Value,
        regex: Option<&Regex>,
    ) -> Result<bool, String> {
        Ok(match self {
            Operator::Exists => !left.is_null(),
            Operator::NotExists => left.is_null(),
            Operator::Text(TextOp::Matches, _) => {
                let text = to_text(left);
                match regex {
                    Some(re) => re.is_match(&text),
                    None => self.regex(&to_text(right))?.is_match(&text),
                }
            }
            Operator::Text(op, ci) => {
                let (l, r) = (to_text(left), to_text(right));
                let (l, r) = if ci {
                    (l.to_lowercase().into(), r.to_lowercase().into())
                } else {
                    (l, r)
                };
                match op {
                    TextOp::Equal => l == r,
                    TextOp::NotEqual => l != r,
                    TextOp::Contains => l.contains(r.as_ref()),
                    TextOp::NotContains => !l.contains(r.as_ref()),
                    TextOp::StartsWith => l.starts_with(r.as_ref()),
                    TextOp::EndsWith => l.ends_with(r.as_ref()),
                    TextOp::Matches => false,
                }
            }
            Operator::Number(op) => match (as_number(left), as_number(right)) {
                (Some(l), Some(r)) => match op {
                    NumberOp::Equal => l == r,
                    NumberOp::NotEqual => l != r,
                    NumberOp::Greater => l > r,
                    NumberOp::Less => l < r,
                    NumberOp::GreaterOrEqual => l >= r,
                    NumberOp::LessOrEqual => l <= r,
                },
                _ => false,
            },
            Operator::Date(op) => match (date::parse_value(left), date::parse_value(right)) {
                (Some(l), Some(r)) => match op {
                    DateOp::Before => l < r,
                    DateOp::After => l > r,
                    DateOp::Equal => l == r,
                },
                _ => false,
            },
            Operator::BooleanEqual => match (as_bool(left), as_bool(right)) {
                (Some(l), Some(r)) => l == r,
                _ => false,
            },
            Operator::Array(op) => {
                let items: &[Value] = match left {
                    Value::Array(items) => items,
                    Value::Null => &[],
                    other => std::slice::from_ref(other),
                };
                match op {
                    ArrayOp::Contains => items.iter().any(|i| loose_eq(i, right)),
                    ArrayOp::NotContains => !items.iter().any(|i| loose_eq(i, right)),
                    ArrayOp::LengthEqual | ArrayOp::LengthGreater => {
                        // Lengths are small; the cast is exact below 2^53.
                        #[allow(clippy::cast_precision_loss)]
                        let len = items.len() as f64;
                        match as_number(right) {
                            Some(n) if op == ArrayOp::LengthEqual => len == n,
                            Some(n) => len > n,
                            None => false,
                        }
                    }
                }
            }
        })
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(name: &str, left: Value, right: Value) -> bool {
        let op = Operator::from_name(name).unwrap();
        op.apply(&left, &right, None).unwrap()
    }

    #[test]
    fn names_round_trip() {
        for name in Operator::names() {
            assert_eq!(Operator::from_name(name).unwrap().name(), name);
        }
        assert_eq!(Operator::names().count(), 30);
        assert!(Operator::from_name("text.equals").is_none());
        assert!(!Operator::Exists.takes_right());
        assert!(Operator::BooleanEqual.takes_right());
    }

    #[test]
    fn exists() {
        assert!(op("exists", json!("x"), Value::Null));
        assert!(op("exists", json!(""), Value::Null));
        assert!(op("exists", json!(0), Value::Null));
        assert!(op("exists", json!(false), Value::Null));
        assert!(op("exists", json!([]), Value::Null));
        assert!(!op("exists", Value::Null, Value::Null));
        assert!(op("not_exists", Value::Null, Value::Null));
        assert!(!op("not_exists", json!(""), Value::Null));
    }

    #[test]
    fn text_operators() {
        let s = json!("Hello World");
        assert!(op("text.equal", s.clone(), json!("Hello World")));
        assert!(!op("text.equal", s.clone(), json!("hello world")));
        assert!(op("text.equal_ci", s.clone(), json!("hello world")));
        assert!(!op("text.equal_ci", s.clone(), json!("hello")));
        assert!(op("text.not_equal", s.clone(), json!("hello world")));
        assert!(!op("text.not_equal", s.clone(), json!("Hello World")));
        assert!(!op("text.not_equal_ci", s.clone(), json!("HELLO WORLD")));
        assert!(op("text.not_equal_ci", s.clone(), json!("bye")));
        assert!(op("text.contains", s.clone(), json!("o W")));
        assert!(!op("text.contains", s.clone(), json!("o w")));
        assert!(op("text.contains_ci", s.clone(), json!("O w")));
        assert!(!op("text.contains_ci", s.clone(), json!("xyz")));
        assert!(op("text.not_contains", s.clone(), json!("xyz")));
        assert!(!op("text.not_contains", s.clone(), json!("World")));
        assert!(op("text.not_contains_ci", s.clone(), json!("xyz")));
        assert!(!op("text.not_contains_ci", s.clone(), json!("world")));
        assert!(op("text.starts_with", s.clone(), json!("Hell")));
        assert!(!op("text.starts_with", s.clone(), json!("hell")));
        assert!(op("text.starts_with_ci", s.clone(), json!("hELL")));
        assert!(!op("text.starts_with_ci", s.clone(), json!("World")));
        assert!(op("text.ends_with", s.clone(), json!("World")));
        assert!(!op("text.ends_with", s.clone(), json!("world")));
        assert!(op("text.ends_with_ci", s.clone(), json!("WORLD")));
        assert!(!op("text.ends_with_ci", s.clone(), json!("hello")));
        assert!(op("text.matches", s.clone(), json!("^H.*d$")));
        assert!(!op("text.matches", s.clone(), json!("^h")));
        assert!(op("text.matches_ci", s.clone(), json!("^h")));
        assert!(!op("text.matches_ci", s.clone(), json!("^x")));
        // Operands as text.
        assert!(op("text.equal", json!(4.0), json!("4")));
        assert!(op("text.equal", Value::Null, json!("")));
        let bad = Operator::from_name("text.matches").unwrap();
        assert!(bad
            .apply(&s, &json!("("), None)
            .unwrap_err()
            .contains("not a valid regular expression"));
    }

    #[test]
    fn number_operators() {
        assert!(op("number.equal", json!(4), json!("4.0")));
        assert!(!op("number.equal", json!(4), json!(5)));
        assert!(op("number.not_equal", json!(4), json!(5)));
        assert!(!op("number.not_equal", json!(" 5 "), json!(5)));
        assert!(op("number.greater", json!("10"), json!(9)));
        assert!(!op("number.greater", json!(9), json!(9)));
        assert!(op("number.less", json!(-1), json!(0)));
        assert!(!op("number.less", json!(1), json!(0)));
        assert!(op("number.greater_or_equal", json!(9), json!(9)));
        assert!(!op("number.greater_or_equal", json!(8.5), json!(9)));
        assert!(op("number.less_or_equal", json!(9), json!("9")));
        assert!(!op("number.less_or_equal", json!(10), json!(9)));
        // Not numbers: false, also for not_equal.
        assert!(!op("number.equal", json!("abc"), json!("abc")));
        assert!(!op("number.not_equal", json!("abc"), json!(1)));
        assert!(!op("number.greater", Value::Null, json!(1)));
    }

    #[test]
    fn date_operators() {
        let d = json!("2024-05-01T09:30:00Z");
        assert!(op("date.before", d.clone(), json!("2024-05-02")));
        assert!(!op("date.before", d.clone(), json!("2024-05-01")));
        assert!(op("date.after", d.clone(), json!("2024-05-01")));
        assert!(!op(
            "date.after",
            d.clone(),
            json!("2024-06-01T00:00:00+02:00")
        ));
        assert!(op(
            "date.equal",
            d.clone(),
            json!("2024-05-01T11:30:00+02:00")
        ));
        assert!(op("date.equal", d.clone(), json!(1_714_555_800)));
        assert!(!op("date.equal", d.clone(), json!("2024-05-01")));
        assert!(!op("date.before", json!("not a date"), json!("2024-05-01")));
    }

    #[test]
    fn boolean_operator() {
        assert!(op("boolean.equal", json!(true), json!(true)));
        assert!(op("boolean.equal", json!("true"), json!(true)));
        assert!(op("boolean.equal", json!("FALSE"), json!(false)));
        assert!(op("boolean.equal", json!(false), json!("false")));
        assert!(!op("boolean.equal", json!(true), json!(false)));
        assert!(!op("boolean.equal", Value::Null, json!(false)));
        assert!(!op("boolean.equal", json!("maybe"), json!(true)));
    }

    #[test]
    fn array_operators() {
        let a = json!(["vip", 4, {"k": 1}]);
        assert!(op("array.contains", a.clone(), json!("vip")));
        assert!(op("array.contains", a.clone(), json!("4")));
        assert!(op("array.contains", a.clone(), json!({"k": 1})));
        assert!(!op("array.contains", a.clone(), json!("new")));
        assert!(op("array.not_contains", a.clone(), json!("new")));
        assert!(!op("array.not_contains", a.clone(), json!("vip")));
        assert!(op("array.contains", json!("vip"), json!("vip")));
        assert!(!op("array.contains", Value::Null, json!("vip")));
        assert!(op("array.not_contains", Value::Null, json!("vip")));
        assert!(op("array.length_equal", a.clone(), json!(3)));
        assert!(!op("array.length_equal", a.clone(), json!("2")));
        assert!(op("array.length_equal", Value::Null, json!(0)));
        assert!(op("array.length_greater", a.clone(), json!(2)));
        assert!(!op("array.length_greater", a.clone(), json!(3)));
        assert!(!op("array.length_greater", a, json!("many")));
    }
}
