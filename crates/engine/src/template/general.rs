//! General helpers: `if ifempty default get lookup toString toJson`, and the comparisons
//! `eq ne gt gte lt lte and or not` (handlebars' names, usable in `{{#if (eq a b)}}`).
//!
//! - `if cond a [b]` gives `a` when `cond` is truthy (not `null`, `false`, `0`, `""` or
//!   `[]`), else `b` (or `null`). As a block, `{{#if cond}}…{{else}}…{{/if}}` works as in
//!   handlebars.
//! - `ifempty a b` gives `b` when `a` is empty: `null`, missing, `""`, `[]` or `{}`.
//! - `default a b` gives `b` only when `a` is `null` or missing (`""` stays `""`).
//! - `get value "path.0.x"` follows a dotted path through objects and arrays (0-based);
//!   `lookup value key` takes one step. Missing steps give `null`.
//! - `toString` renders as text (whole numbers without `.0`, arrays joined with `, `,
//!   objects as JSON); `toJson` gives JSON text.
//! - `eq`/`ne` compare loosely (`4`, `4.0` and `"4"` are equal); `gt gte lt lte` compare
//!   numbers (numeric text included) numerically and anything else as text.
//!
//! The direct evaluator evaluates only the branch `if`, `ifempty` and `default` choose, so
//! `{{if (eq 1.n 0) 0 (div 10 1.n)}}` does not fail on the branch it does not take.

use std::cmp::Ordering;

use serde_json::Value;

use super::helpers::{helper, opt, req, Args, HelperSpec, Kind, Strategy};
use super::value::{as_number, is_empty, is_truthy, loose_eq, to_text};

pub(crate) static HELPERS: &[HelperSpec] = &[
    helper("and", &[req("a", Kind::Any), req("b", Kind::Any)], and).variadic(),
    helper(
        "default",
        &[req("value", Kind::Any), req("fallback", Kind::Any)],
        default,
    )
    .strategy(Strategy::Default),
    helper("eq", &[req("a", Kind::Any), req("b", Kind::Any)], eq),
    helper(
        "get",
        &[req("value", Kind::Any), req("path", Kind::Text)],
        get,
    ),
    helper("gt", &[req("a", Kind::Any), req("b", Kind::Any)], gt),
    helper("gte", &[req("a", Kind::Any), req("b", Kind::Any)], gte),
    helper(
        "if",
        &[
            req("condition", Kind::Any),
            req("then", Kind::Any),
            opt("else", Kind::Any),
        ],
        if_,
    )
    .strategy(Strategy::If),
    helper(
        "ifempty",
        &[req("value", Kind::Any), req("fallback", Kind::Any)],
        ifempty,
    )
    .strategy(Strategy::IfEmpty),
    helper(
        "lookup",
        &[req("value", Kind::Any), req("key", Kind::Text)],
        lookup,
    ),
    helper("lt", &[req("a", Kind::Any), req("b", Kind::Any)], lt),
    helper("lte", &[req("a", Kind::Any), req("b", Kind::Any)], lte),
    helper("ne", &[req("a", Kind::Any), req("b", Kind::Any)], ne),
    helper("not", &[req("value", Kind::Any)], not),
    helper("or", &[req("a", Kind::Any), req("b", Kind::Any)], or).variadic(),
    helper("toJson", &[req("value", Kind::Any)], to_json),
    helper("toString", &[req("value", Kind::Any)], to_string),
];

fn if_(a: &Args<'_, '_>) -> Result<Value, String> {
    let branch = if is_truthy(a.get(0)) { 1 } else { 2 };
    Ok(a.get(branch).clone())
}

fn ifempty(a: &Args<'_, '_>) -> Result<Value, String> {
    let pick = if is_empty(a.get(0)) { 1 } else { 0 };
    Ok(a.get(pick).clone())
}

fn default(a: &Args<'_, '_>) -> Result<Value, String> {
    let pick = if a.get(0).is_null() { 1 } else { 0 };
    Ok(a.get(pick).clone())
}

/// One step into an object (by key) or an array (by 0-based index).
pub(crate) fn step<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.trim().parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    }
}

fn get(a: &Args<'_, '_>) -> Result<Value, String> {
    let path = a.text(1)?;
    let mut current = a.get(0);
    for key in path.split('.').filter(|k| !k.is_empty()) {
        match step(current, key) {
            Some(v) => current = v,
            None => return Ok(Value::Null),
        }
    }
    Ok(current.clone())
}

fn lookup(a: &Args<'_, '_>) -> Result<Value, String> {
    let key = a.text(1)?;
    Ok(step(a.get(0), &key).cloned().unwrap_or(Value::Null))
}

fn to_string(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(Value::String(to_text(a.get(0)).into_owned()))
}

fn to_json(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(Value::String(a.get(0).to_string()))
}

fn eq(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(Value::Bool(loose_eq(a.get(0), a.get(1))))
}

fn ne(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(Value::Bool(!loose_eq(a.get(0), a.get(1))))
}

/// Numbers (numeric text included) numerically, anything else as text.
pub(crate) fn compare(x: &Value, y: &Value) -> Option<Ordering> {
    match (as_number(x), as_number(y)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => Some(to_text(x).cmp(&to_text(y))),
    }
}

fn ordered(a: &Args<'_, '_>, ok: fn(Ordering) -> bool) -> Result<Value, String> {
    Ok(Value::Bool(compare(a.get(0), a.get(1)).is_some_and(ok)))
}

fn gt(a: &Args<'_, '_>) -> Result<Value, String> {
    ordered(a, Ordering::is_gt)
}

fn gte(a: &Args<'_, '_>) -> Result<Value, String> {
    ordered(a, Ordering::is_ge)
}

fn lt(a: &Args<'_, '_>) -> Result<Value, String> {
    ordered(a, Ordering::is_lt)
}

fn lte(a: &Args<'_, '_>) -> Result<Value, String> {
    ordered(a, Ordering::is_le)
}

fn and(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(Value::Bool(a.all().all(is_truthy)))
}

fn or(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(Value::Bool(a.all().any(is_truthy)))
}

fn not(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(Value::Bool(!is_truthy(a.get(0))))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::template::tests::{load_err, render, render_text};
    use serde_json::json;

    #[test]
    fn inline_if_and_fallbacks() {
        let d = json!({"1": {"vip": true, "n": 0, "empty": "", "name": "Ada", "arr": []}});
        assert_eq!(render("{{if 1.vip \"gold\" \"std\"}}", &d), json!("gold"));
        assert_eq!(render("{{if 1.n \"yes\" \"no\"}}", &d), json!("no"));
        assert_eq!(render("{{if 1.missing 1}}", &d), json!(null));
        assert_eq!(render("{{if 1.vip 1.name}}", &d), json!("Ada"));
        assert_eq!(render("{{ifempty 1.empty \"n/a\"}}", &d), json!("n/a"));
        assert_eq!(render("{{ifempty 1.arr \"none\"}}", &d), json!("none"));
        assert_eq!(render("{{ifempty 1.name \"n/a\"}}", &d), json!("Ada"));
        assert_eq!(render("{{default 1.missing 5}}", &d), json!(5));
        assert_eq!(render("{{default 1.empty 5}}", &d), json!(""));
        assert_eq!(render("{{default 1.n 5}}", &d), json!(0));
        // Only the chosen branch is evaluated.
        assert_eq!(render("{{if (eq 1.n 0) 0 (div 10 1.n)}}", &d), json!(0));
        assert_eq!(render("{{ifempty 1.name (div 1 0)}}", &d), json!("Ada"));
        assert_eq!(
            render_text("Hi {{if 1.vip \"VIP \"}}{{1.name}}", &d),
            "Hi VIP Ada"
        );
        assert!(load_err("{{if 1.vip}}").contains("takes 2 to 3 arguments"));
    }

    #[test]
    fn get_lookup_to_string_to_json() {
        let d = json!({"1": {"o": {"items": [{"sku": "A1"}, {"sku": "B2"}]}, "x": 2.0}});
        assert_eq!(render("{{get 1.o \"items.1.sku\"}}", &d), json!("B2"));
        assert_eq!(render("{{get 1.o \"items.9.sku\"}}", &d), json!(null));
        assert_eq!(render("{{get 1.o.items 0}}", &d), json!({"sku": "A1"}));
        assert_eq!(render("{{lookup 1.o.items 1}}", &d), json!({"sku": "B2"}));
        assert_eq!(
            render("{{lookup 1.o \"items\"}}", &d),
            json!([{"sku": "A1"}, {"sku": "B2"}])
        );
        assert_eq!(render("{{toString 1.x}}", &d), json!("2"));
        assert_eq!(
            render("{{toString 1.o.items.0}}", &d),
            json!("{\"sku\":\"A1\"}")
        );
        assert_eq!(
            render("{{toJson 1.o.items}}", &d),
            json!("[{\"sku\":\"A1\"},{\"sku\":\"B2\"}]")
        );
        assert_eq!(render("{{toJson \"a&b\"}}", &d), json!("\"a&b\""));
    }

    #[test]
    fn comparisons() {
        let d = json!({"1": {"n": "10", "m": 9, "s": "abc"}});
        assert_eq!(render("{{eq 1.n 10}}", &d), json!(true));
        assert_eq!(render("{{ne 1.n 10}}", &d), json!(false));
        assert_eq!(render("{{gt 1.n 1.m}}", &d), json!(true));
        assert_eq!(render("{{gte 1.m 9}}", &d), json!(true));
        assert_eq!(render("{{lt 1.n 1.m}}", &d), json!(false));
        assert_eq!(render("{{lte 1.s \"abd\"}}", &d), json!(true));
        assert_eq!(render("{{and 1.n 1.s true}}", &d), json!(true));
        assert_eq!(render("{{and 1.n 1.missing}}", &d), json!(false));
        assert_eq!(render("{{or 1.missing 1.s}}", &d), json!(true));
        assert_eq!(render("{{not 1.missing}}", &d), json!(true));
        assert_eq!(
            render_text("{{#if (gt 1.n 5)}}big{{else}}small{{/if}}", &d),
            "big"
        );
    }
}
