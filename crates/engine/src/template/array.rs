//! Array helpers: `join first last slice distinct sort`.
//!
//! `null` reads as an empty array. Indexes are 0-based; `slice` takes negative positions
//! from the end, as JavaScript's `slice`.
//!
//! - `join array [separator]` joins the elements' text (separator `, ` by default).
//! - `distinct array [key]` keeps the first of equal elements (or of elements with an
//!   equal `key` field).
//! - `sort array [order] [key]`: `order` is `asc` (default), `desc`, `asc ci` or
//!   `desc ci` (ignore case); any other second argument is the key, sorted ascending.
//!   Numbers sort numerically, text by code point; `null` first, then booleans, numbers,
//!   text, arrays, objects.

use std::cmp::Ordering;

use serde_json::Value;

use super::general::step;
use super::helpers::{helper, opt, req, Args, HelperSpec, Kind};
use super::value::{as_number, to_text};

pub(crate) static HELPERS: &[HelperSpec] = &[
    helper(
        "distinct",
        &[req("array", Kind::Array), opt("key", Kind::Text)],
        distinct,
    ),
    helper("first", &[req("array", Kind::Array)], first),
    helper(
        "join",
        &[req("array", Kind::Array), opt("separator", Kind::Text)],
        join,
    ),
    helper("last", &[req("array", Kind::Array)], last),
    helper(
        "slice",
        &[
            req("array", Kind::Array),
            req("start", Kind::Integer),
            opt("end", Kind::Integer),
        ],
        slice,
    ),
    helper(
        "sort",
        &[
            req("array", Kind::Array),
            opt("order", Kind::Text),
            opt("key", Kind::Text),
        ],
        sort,
    ),
];

fn join(a: &Args<'_, '_>) -> Result<Value, String> {
    let items = a.array(0)?;
    let sep = a.opt_text(1)?;
    let sep = sep.as_deref().unwrap_or(", ");
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        super::value::write_text(item, &mut out);
    }
    Ok(Value::String(out))
}

fn first(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(a.array(0)?.first().cloned().unwrap_or(Value::Null))
}

fn last(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(a.array(0)?.last().cloned().unwrap_or(Value::Null))
}

fn slice(a: &Args<'_, '_>) -> Result<Value, String> {
    let items = a.array(0)?;
    let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let position = |i: i64| {
        let p = if i < 0 { (len + i).max(0) } else { i.min(len) };
        usize::try_from(p).unwrap_or(0)
    };
    let start = position(a.integer(1)?);
    let end = a.opt_integer(2)?.map_or(items.len(), position);
    Ok(Value::Array(
        items.get(start..end.max(start)).unwrap_or(&[]).to_vec(),
    ))
}

/// The field `key` of an element (the element itself without a key).
fn keyed<'v>(item: &'v Value, key: Option<&str>) -> &'v Value {
    match key {
        Some(k) => step(item, k).unwrap_or(&super::value::NULL),
        None => item,
    }
}

fn distinct(a: &Args<'_, '_>) -> Result<Value, String> {
    let items = a.array(0)?;
    let key = a.opt_text(1)?;
    let mut kept: Vec<Value> = Vec::with_capacity(items.len());
    for item in items {
        let k = keyed(item, key.as_deref());
        if !kept.iter().any(|seen| keyed(seen, key.as_deref()) == k) {
            kept.push(item.clone());
        }
    }
    Ok(Value::Array(kept))
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

fn order(x: &Value, y: &Value, ignore_case: bool) -> Ordering {
    match (x, y) {
        (Value::Number(_), Value::Number(_)) => {
            let (x, y) = (as_number(x).unwrap_or(0.0), as_number(y).unwrap_or(0.0));
            x.total_cmp(&y)
        }
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) if ignore_case => {
            x.to_lowercase().cmp(&y.to_lowercase())
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ if rank(x) == rank(y) => to_text(x).cmp(&to_text(y)),
        _ => rank(x).cmp(&rank(y)),
    }
}

fn sort(a: &Args<'_, '_>) -> Result<Value, String> {
    let mut items = a.array(0)?.to_vec();
    let second = a.opt_text(1)?;
    let (mode, key) = match second.as_deref().map(str::trim) {
        None | Some("") => ("asc", a.opt_text(2)?),
        Some(m @ ("asc" | "desc" | "asc ci" | "desc ci")) => (m, a.opt_text(2)?),
        Some(_) => ("asc", second.clone()),
    };
    let ignore_case = mode.ends_with(" ci");
    let descending = mode.starts_with("desc");
    // Stable, so equal elements keep their order.
    items.sort_by(|x, y| {
        let o = order(
            keyed(x, key.as_deref()),
            keyed(y, key.as_deref()),
            ignore_case,
        );
        if descending {
            o.reverse()
        } else {
            o
        }
    });
    Ok(Value::Array(items))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::template::tests::{load_err, render};
    use serde_json::json;

    #[test]
    fn join_first_last_slice() {
        let d = json!({"1": {"a": ["x", 2, 3.0], "e": []}});
        assert_eq!(render("{{join 1.a \"|\"}}", &d), json!("x|2|3"));
        assert_eq!(render("{{join 1.a}}", &d), json!("x, 2, 3"));
        assert_eq!(render("{{join 1.missing \",\"}}", &d), json!(""));
        assert_eq!(render("{{first 1.a}}", &d), json!("x"));
        assert_eq!(render("{{last 1.a}}", &d), json!(3.0));
        assert_eq!(render("{{first 1.e}}", &d), json!(null));
        assert_eq!(render("{{slice 1.a 1}}", &d), json!([2, 3.0]));
        assert_eq!(render("{{slice 1.a 0 2}}", &d), json!(["x", 2]));
        assert_eq!(render("{{slice 1.a -1}}", &d), json!([3.0]));
        assert_eq!(render("{{slice 1.a 2 1}}", &d), json!([]));
        assert_eq!(render("{{slice 1.a 5}}", &d), json!([]));
        assert!(load_err("{{first \"abc\"}}").contains("expects an array"));
        assert!(load_err("{{slice 1.a}}").contains("takes 2 to 3 arguments"));
    }

    #[test]
    fn distinct_and_sort() {
        let d = json!({"1": {
            "a": [3, 1, "b", 1, "B", null, 2.5],
            "people": [{"n": "bo", "age": 30}, {"n": "al", "age": 25}, {"n": "cy", "age": 30}]
        }});
        assert_eq!(
            render("{{distinct 1.a}}", &d),
            json!([3, 1, "b", "B", null, 2.5])
        );
        assert_eq!(
            render("{{distinct 1.people \"age\"}}", &d),
            json!([{"n": "bo", "age": 30}, {"n": "al", "age": 25}])
        );
        assert_eq!(
            render("{{sort 1.a}}", &d),
            json!([null, 1, 1, 2.5, 3, "B", "b"])
        );
        assert_eq!(
            render("{{sort 1.a \"desc\"}}", &d),
            json!(["b", "B", 3, 2.5, 1, 1, null])
        );
        assert_eq!(
            render("{{sort (split \"b,A,c\" \",\") \"asc ci\"}}", &d),
            json!(["A", "b", "c"])
        );
        assert_eq!(
            render("{{sort 1.people \"n\"}}", &d),
            json!([{"n": "al", "age": 25}, {"n": "bo", "age": 30}, {"n": "cy", "age": 30}])
        );
        assert_eq!(
            render("{{sort 1.people \"desc\" \"age\"}}", &d),
            json!([{"n": "bo", "age": 30}, {"n": "cy", "age": 30}, {"n": "al", "age": 25}])
        );
    }
}
