//! Text helpers: `lower upper capitalize trim substring replace length split contains
//! startsWith`.
//!
//! Text arguments accept numbers and booleans (read as text) and `null` (empty text).
//! Positions count characters, not bytes, from 0.
//!
//! `replace text search replacement` replaces every occurrence of `search`. Written as
//! `/pattern/flags`, `search` is a regular expression: flag `g` replaces every match
//! (otherwise only the first), `i` ignores case, and the replacement may use `$1`.

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use super::helpers::{helper, req, Args, HelperSpec, Kind};
use super::value::{loose_eq, to_text};

pub(crate) static HELPERS: &[HelperSpec] = &[
    helper("capitalize", &[req("text", Kind::Text)], capitalize),
    helper(
        "contains",
        &[req("haystack", Kind::Any), req("needle", Kind::Any)],
        contains,
    ),
    helper("length", &[req("value", Kind::Any)], length),
    helper("lower", &[req("text", Kind::Text)], lower),
    helper(
        "replace",
        &[
            req("text", Kind::Text),
            req("search", Kind::Search),
            req("replacement", Kind::Text),
        ],
        replace,
    ),
    helper(
        "split",
        &[req("text", Kind::Text), req("separator", Kind::Text)],
        split,
    ),
    helper(
        "startsWith",
        &[req("text", Kind::Text), req("prefix", Kind::Text)],
        starts_with,
    ),
    helper(
        "substring",
        &[
            req("text", Kind::Text),
            req("start", Kind::Integer),
            super::helpers::opt("end", Kind::Integer),
        ],
        substring,
    ),
    helper("trim", &[req("text", Kind::Text)], trim),
    helper("upper", &[req("text", Kind::Text)], upper),
];

fn lower(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(Value::String(a.text(0)?.to_lowercase()))
}

fn upper(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(Value::String(a.text(0)?.to_uppercase()))
}

fn capitalize(a: &Args<'_, '_>) -> Result<Value, String> {
    let text = a.text(0)?;
    let mut chars = text.chars();
    let out = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    Ok(Value::String(out))
}

fn trim(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(Value::String(a.text(0)?.trim().to_owned()))
}

/// `substring text start [end]`, as JavaScript's `substring`: positions are clamped to
/// the text, and swapped when `start > end`.
fn substring(a: &Args<'_, '_>) -> Result<Value, String> {
    let text = a.text(0)?;
    let len = text.chars().count();
    let clamp = |i: i64| usize::try_from(i.max(0)).unwrap_or(usize::MAX).min(len);
    let start = clamp(a.integer(1)?);
    let end = a.opt_integer(2)?.map_or(len, clamp);
    let (from, to) = if start <= end {
        (start, end)
    } else {
        (end, start)
    };
    Ok(Value::String(
        text.chars().skip(from).take(to - from).collect(),
    ))
}

/// A `replace` search: plain text, or a regex written `/pattern/flags`.
pub(crate) enum Search {
    Text(String),
    Regex { regex: Regex, all: bool },
}

/// Reads a `replace` search argument; a bad `/regex/` is an error.
pub(crate) fn search_pattern(s: &str) -> Result<Search, String> {
    let regex_parts = s
        .strip_prefix('/')
        .and_then(|rest| rest.rfind('/').map(|end| (&rest[..end], &rest[end + 1..])))
        .filter(|(_, flags)| flags.chars().all(|c| matches!(c, 'g' | 'i' | 'm' | 's')));
    let Some((pattern, flags)) = regex_parts else {
        return Ok(Search::Text(s.to_owned()));
    };
    let regex = RegexBuilder::new(pattern)
        .case_insensitive(flags.contains('i'))
        .multi_line(flags.contains('m'))
        .dot_matches_new_line(flags.contains('s'))
        .build()
        .map_err(|e| format!("a valid regular expression, but `{pattern}` is not: {e}"))?;
    Ok(Search::Regex {
        regex,
        all: flags.contains('g'),
    })
}

fn replace(a: &Args<'_, '_>) -> Result<Value, String> {
    let text = a.text(0)?;
    let search = search_pattern(&a.text(1)?).map_err(|e| a.fail(format!("expects {e}")))?;
    let replacement = a.text(2)?;
    let out = match search {
        Search::Text(s) if s.is_empty() => text.into_owned(),
        Search::Text(s) => text.replace(&s, &replacement),
        Search::Regex { regex, all: true } => {
            regex.replace_all(&text, replacement.as_ref()).into_owned()
        }
        Search::Regex { regex, all: false } => {
            regex.replace(&text, replacement.as_ref()).into_owned()
        }
    };
    Ok(Value::String(out))
}

/// Characters of text, elements of an array, keys of an object; `null` is 0.
fn length(a: &Args<'_, '_>) -> Result<Value, String> {
    let n = match a.get(0) {
        Value::Null => 0,
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        v => to_text(v).chars().count(),
    };
    Ok(Value::from(n))
}

/// Empty text gives an empty array; an empty separator splits into characters.
fn split(a: &Args<'_, '_>) -> Result<Value, String> {
    let text = a.text(0)?;
    let sep = a.text(1)?;
    let parts: Vec<Value> = if text.is_empty() {
        Vec::new()
    } else if sep.is_empty() {
        text.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        text.split(sep.as_ref())
            .map(|p| Value::String(p.to_owned()))
            .collect()
    };
    Ok(Value::Array(parts))
}

/// Array: has an element loosely equal to the needle; object: has the key; text:
/// contains the needle's text; `null`: false.
fn contains(a: &Args<'_, '_>) -> Result<Value, String> {
    let needle = a.get(1);
    let found = match a.get(0) {
        Value::Null => false,
        Value::Array(items) => items.iter().any(|i| loose_eq(i, needle)),
        Value::Object(map) => map.contains_key(to_text(needle).as_ref()),
        v => to_text(v).contains(to_text(needle).as_ref()),
    };
    Ok(Value::Bool(found))
}

fn starts_with(a: &Args<'_, '_>) -> Result<Value, String> {
    Ok(Value::Bool(a.text(0)?.starts_with(a.text(1)?.as_ref())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::template::tests::{load_err, render, render_text};
    use serde_json::json;

    #[test]
    fn case_helpers() {
        let d = json!({"1": {"name": "ada LOVELACE", "n": 42}});
        assert_eq!(render_text("{{lower 1.name}}", &d), "ada lovelace");
        assert_eq!(render_text("{{upper 1.name}}", &d), "ADA LOVELACE");
        assert_eq!(render_text("{{capitalize 1.name}}", &d), "Ada LOVELACE");
        assert_eq!(render_text("{{capitalize \"élan\"}}", &d), "Élan");
        assert_eq!(render_text("{{upper 1.n}}", &d), "42");
        assert_eq!(render_text("{{upper 1.missing}}", &d), "");
        assert_eq!(render_text("{{trim \"  x y \"}}", &d), "x y");
    }

    #[test]
    fn substring_counts_characters() {
        let d = json!({"1": {"s": "héllo world"}});
        assert_eq!(render_text("{{substring 1.s 0 5}}", &d), "héllo");
        assert_eq!(render_text("{{substring 1.s 6}}", &d), "world");
        assert_eq!(render_text("{{substring 1.s 5 0}}", &d), "héllo");
        assert_eq!(render_text("{{substring 1.s -3 99}}", &d), "héllo world");
        assert!(load_err("{{substring 1.s}}").contains("takes 2 to 3 arguments"));
        assert!(load_err("{{substring 1.s \"a\"}}").contains("expects a whole number"));
    }

    #[test]
    fn replace_text_and_regex() {
        let d = json!({"1": {"s": "a-b-c"}});
        assert_eq!(render_text("{{replace 1.s \"-\" \"+\"}}", &d), "a+b+c");
        assert_eq!(render_text("{{replace 1.s \"/-/\" \"+\"}}", &d), "a+b-c");
        assert_eq!(render_text("{{replace 1.s \"/-/g\" \"\"}}", &d), "abc");
        assert_eq!(
            render_text("{{replace 1.s \"/([a-z])-/g\" \"$1$1\"}}", &d),
            "aabbc"
        );
        assert_eq!(render_text("{{replace \"ABC\" \"/b/i\" \"x\"}}", &d), "AxC");
        assert!(load_err("{{replace 1.s \"/(/g\" \"\"}}").contains("regular expression"));
    }

    #[test]
    fn length_split_contains_starts_with() {
        let d = json!({"1": {"s": "a,b,c", "arr": [1, "x", 3], "o": {"k": 1}}});
        assert_eq!(render("{{length 1.s}}", &d), json!(5));
        assert_eq!(render("{{length 1.arr}}", &d), json!(3));
        assert_eq!(render("{{length 1.o}}", &d), json!(1));
        assert_eq!(render("{{length 1.none}}", &d), json!(0));
        assert_eq!(render("{{split 1.s \",\"}}", &d), json!(["a", "b", "c"]));
        assert_eq!(render("{{split \"\" \",\"}}", &d), json!([]));
        assert_eq!(render("{{split \"ab\" \"\"}}", &d), json!(["a", "b"]));
        assert_eq!(render("{{contains 1.s \"b,\"}}", &d), json!(true));
        assert_eq!(render("{{contains 1.s \"z\"}}", &d), json!(false));
        assert_eq!(render("{{contains 1.arr \"3\"}}", &d), json!(true));
        assert_eq!(render("{{contains 1.arr \"y\"}}", &d), json!(false));
        assert_eq!(render("{{contains 1.o \"k\"}}", &d), json!(true));
        assert_eq!(render("{{contains 1.none \"k\"}}", &d), json!(false));
        assert_eq!(render("{{startsWith 1.s \"a,\"}}", &d), json!(true));
        assert_eq!(render("{{startsWith 1.s \"b\"}}", &d), json!(false));
        assert!(load_err("{{lower [1, 2]}}").contains("expects text"));
    }
}
