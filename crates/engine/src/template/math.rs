//! Math helpers: `add sub mul div round floor ceil parseNumber formatNumber`.
//!
//! Arguments are numbers or numeric text. `add`, `sub` and `mul` stay exact on whole
//! numbers (JSON integers in, JSON integer out); other results are floats, stored as
//! integers when whole. `div` by zero is an error, as is a missing operand: a sum with a
//! hole in it is a data problem, not `0`.
//!
//! `formatNumber n decimals [decimalSeparator] [thousandsSeparator]` uses Make's defaults:
//! `,` before the decimals and `.` between thousands (`formatNumber 1234.5 2` →
//! `1.234,50`); pass `"." ","` for `1,234.50`.
//! `parseNumber text [decimalSeparator]` reads text written with separators; without a
//! separator `.` is the decimal point and `,`, spaces and `_` are ignored.

use serde_json::Value;

use super::helpers::{helper, opt, req, Args, HelperSpec, Kind};
use super::value::{number_value, parse_number_text, to_text};

pub(crate) static HELPERS: &[HelperSpec] = &[
    helper(
        "add",
        &[req("a", Kind::Number), req("b", Kind::Number)],
        add,
    )
    .variadic(),
    helper("ceil", &[req("number", Kind::Number)], ceil),
    helper(
        "div",
        &[req("a", Kind::Number), req("b", Kind::Number)],
        div,
    ),
    helper("floor", &[req("number", Kind::Number)], floor),
    helper(
        "formatNumber",
        &[
            req("number", Kind::Number),
            req("decimals", Kind::Integer),
            opt("decimalSeparator", Kind::Text),
            opt("thousandsSeparator", Kind::Text),
        ],
        format_number,
    ),
    helper(
        "mul",
        &[req("a", Kind::Number), req("b", Kind::Number)],
        mul,
    )
    .variadic(),
    helper(
        "parseNumber",
        &[req("text", Kind::Text), opt("decimalSeparator", Kind::Text)],
        parse_number,
    ),
    helper(
        "round",
        &[req("number", Kind::Number), opt("digits", Kind::Integer)],
        round,
    ),
    helper(
        "sub",
        &[req("a", Kind::Number), req("b", Kind::Number)],
        sub,
    ),
];

/// An operand: exact integer when it is one.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn float(self) -> f64 {
        match self {
            // Precision loss beyond 2^53 is accepted for float arithmetic.
            #[allow(clippy::cast_precision_loss)]
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

fn operand(a: &Args<'_, '_>, i: usize) -> Result<Num, String> {
    let v = a.get(i);
    if let Some(n) = v.as_i64() {
        return Ok(Num::Int(n));
    }
    if let Value::String(s) = v {
        if let Some(n) = parse_number_text(s).and_then(|v| v.as_i64()) {
            return Ok(Num::Int(n));
        }
    }
    a.number(i).map(Num::Float)
}

fn result(a: &Args<'_, '_>, f: f64) -> Result<Value, String> {
    number_value(f).ok_or_else(|| a.fail("the result is not a finite number"))
}

/// Folds the operands left to right, exactly while they are integers.
fn fold(
    a: &Args<'_, '_>,
    int_op: fn(i64, i64) -> Option<i64>,
    float_op: fn(f64, f64) -> f64,
) -> Result<Value, String> {
    let mut acc = operand(a, 0)?;
    for i in 1..a.len() {
        let b = operand(a, i)?;
        acc = match (acc, b) {
            (Num::Int(x), Num::Int(y)) => match int_op(x, y) {
                Some(r) => Num::Int(r),
                None => Num::Float(float_op(acc.float(), b.float())),
            },
            _ => Num::Float(float_op(acc.float(), b.float())),
        };
    }
    match acc {
        Num::Int(i) => Ok(Value::from(i)),
        Num::Float(f) => result(a, f),
    }
}

fn add(a: &Args<'_, '_>) -> Result<Value, String> {
    fold(a, i64::checked_add, |x, y| x + y)
}

fn sub(a: &Args<'_, '_>) -> Result<Value, String> {
    fold(a, i64::checked_sub, |x, y| x - y)
}

fn mul(a: &Args<'_, '_>) -> Result<Value, String> {
    fold(a, i64::checked_mul, |x, y| x * y)
}

fn div(a: &Args<'_, '_>) -> Result<Value, String> {
    let (x, y) = (a.number(0)?, a.number(1)?);
    if y == 0.0 {
        return Err(a.fail(format!(
            "division by zero (`{}` / `{}`)",
            to_text(a.get(0)),
            to_text(a.get(1))
        )));
    }
    result(a, x / y)
}

/// Rounds half away from zero, to `digits` decimals (negative: tens, hundreds, …).
fn round(a: &Args<'_, '_>) -> Result<Value, String> {
    let n = a.number(0)?;
    let digits = a.opt_integer(1)?.unwrap_or(0).clamp(-15, 15);
    // Clamped to ±15 above, so the cast is exact.
    #[allow(clippy::cast_possible_truncation)]
    let factor = 10f64.powi(digits as i32);
    result(a, (n * factor).round() / factor)
}

fn floor(a: &Args<'_, '_>) -> Result<Value, String> {
    let n = a.number(0)?;
    result(a, n.floor())
}

fn ceil(a: &Args<'_, '_>) -> Result<Value, String> {
    let n = a.number(0)?;
    result(a, n.ceil())
}

fn parse_number(a: &Args<'_, '_>) -> Result<Value, String> {
    if let Value::Number(_) = a.get(0) {
        return Ok(a.get(0).clone());
    }
    let text = a.text(0)?;
    let decimal = a.opt_text(1)?;
    let cleaned: String = match decimal.as_deref() {
        Some(sep) if !sep.is_empty() && sep != "." => {
            // Keep digits, signs, exponent and the separator; drop grouping characters.
            let mut s = String::with_capacity(text.len());
            let mut rest = text.trim();
            while let Some(c) = rest.chars().next() {
                if rest.starts_with(sep) {
                    s.push('.');
                    rest = &rest[sep.len()..];
                    continue;
                }
                if c.is_ascii_digit() || matches!(c, '-' | '+' | 'e' | 'E') {
                    s.push(c);
                }
                rest = &rest[c.len_utf8()..];
            }
            s
        }
        _ => text
            .trim()
            .chars()
            .filter(|c| !matches!(c, ',' | ' ' | '_' | '\u{a0}'))
            .collect(),
    };
    parse_number_text(&cleaned).ok_or_else(|| a.fail(format!("cannot read `{text}` as a number")))
}

fn format_number(a: &Args<'_, '_>) -> Result<Value, String> {
    let n = a.number(0)?;
    let decimals = usize::try_from(a.integer(1)?.clamp(0, 20)).unwrap_or(0);
    let decimal_sep = a
        .opt_text(2)?
        .map_or_else(|| ",".to_owned(), |s| s.into_owned());
    let thousands_sep = a
        .opt_text(3)?
        .map_or_else(|| ".".to_owned(), |s| s.into_owned());
    // Round half away from zero first, as `round` and Make do; `{:.N}` alone rounds
    // exact ties to even (`2.5` → `2`).
    // `decimals` is at most 20, so the cast is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    let factor = 10f64.powi(decimals as i32);
    let scaled = (n.abs() * factor).round() / factor;
    let fixed = format!(
        "{:.*}",
        decimals,
        if scaled.is_finite() { scaled } else { n.abs() }
    );
    let (int_part, frac_part) = fixed.split_once('.').unwrap_or((&fixed, ""));
    let mut out = String::with_capacity(fixed.len() + 8);
    // `-0.00` shows as `0.00`.
    if n < 0.0 && fixed.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.push('-');
    }
    let digits = int_part.len();
    for (i, c) in int_part.chars().enumerate() {
        if i > 0 && (digits - i) % 3 == 0 {
            out.push_str(&thousands_sep);
        }
        out.push(c);
    }
    if !frac_part.is_empty() {
        out.push_str(&decimal_sep);
        out.push_str(frac_part);
    }
    Ok(Value::String(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::template::tests::{load_err, render, render_err, render_text};
    use serde_json::json;

    #[test]
    fn arithmetic_keeps_integers() {
        let d = json!({"1": {"a": 3, "f": 1.5, "s": "4", "z": 0}});
        assert_eq!(render("{{add 1.a 2}}", &d), json!(5));
        assert!(render("{{add 1.a 2}}", &d).is_i64());
        assert_eq!(render("{{add 1.a 2 1.s}}", &d), json!(9));
        assert_eq!(render("{{add 1.f 1.f}}", &d), json!(3));
        assert!(render("{{add 1.f 1.f}}", &d).is_i64());
        assert_eq!(render("{{sub 1.a 5}}", &d), json!(-2));
        assert_eq!(render("{{mul 1.a 1.f}}", &d), json!(4.5));
        assert_eq!(render("{{mul 2 3 4}}", &d), json!(24));
        assert_eq!(render("{{div 1.a 2}}", &d), json!(1.5));
        assert_eq!(render("{{div 8 2}}", &d), json!(4));
        assert_eq!(render_text("total {{div 8 2}}", &d), "total 4");
        assert_eq!(render_text("{{add 1.f 1}}", &d), "2.5");
    }

    #[test]
    fn division_by_zero_and_non_numbers_fail() {
        let d = json!({"1": {"a": 3, "z": 0, "t": "abc"}});
        let err = render_err("{{div 1.a 1.z}}", &d);
        assert!(err.contains("division by zero"), "{err}");
        let err = render_err("{{add 1.a 1.t}}", &d);
        assert!(err.contains("expects a number as argument 2"), "{err}");
        let err = render_err("{{add 1.a 1.missing}}", &d);
        assert!(err.contains("got null"), "{err}");
        assert!(load_err("{{add 1.a \"x\"}}").contains("expects a number"));
        assert!(load_err("{{div 1}}").contains("takes 2 arguments"));
        assert!(load_err("{{div 1 2 3}}").contains("takes 2 arguments"));
    }

    #[test]
    fn rounding() {
        let d = json!({"1": {"n": 2.345, "neg": -2.5}});
        assert_eq!(render("{{round 1.n}}", &d), json!(2));
        assert_eq!(render("{{round 1.n 2}}", &d), json!(2.35));
        assert_eq!(render("{{round 1234 -2}}", &d), json!(1200));
        assert_eq!(render("{{round 1.neg}}", &d), json!(-3));
        assert_eq!(render("{{floor 1.n}}", &d), json!(2));
        assert_eq!(render("{{ceil 1.n}}", &d), json!(3));
        assert_eq!(render("{{floor \"-1.5\"}}", &d), json!(-2));
        assert!(load_err("{{round 1.n 1.5}}").contains("whole number"));
    }

    #[test]
    fn parse_and_format_numbers() {
        let d = json!({"1": {"t": "1,234.5", "eu": "1.234,5", "n": 1_234_567.891}});
        assert_eq!(render("{{parseNumber 1.t}}", &d), json!(1234.5));
        assert_eq!(render("{{parseNumber 1.eu \",\"}}", &d), json!(1234.5));
        assert_eq!(render("{{parseNumber \" 42 \"}}", &d), json!(42));
        assert_eq!(render("{{parseNumber 7}}", &d), json!(7));
        assert!(render_err("{{parseNumber \"abc\"}}", &d).contains("cannot read `abc`"));
        assert_eq!(render("{{formatNumber 1.n 2}}", &d), json!("1.234.567,89"));
        assert_eq!(
            render("{{formatNumber 1.n 2 \".\" \",\"}}", &d),
            json!("1,234,567.89")
        );
        assert_eq!(render("{{formatNumber 5 0}}", &d), json!("5"));
        assert_eq!(
            render("{{formatNumber -1234.5 1 \".\" \"\"}}", &d),
            json!("-1234.5")
        );
        assert_eq!(render("{{formatNumber -0.001 2 \".\"}}", &d), json!("0.00"));
    }
}
