//! The helper table: every helper's name, parameters and function, the argument
//! reader the functions share, load-time argument checks, and the adapter that registers
//! each helper with handlebars (for templates that need handlebars' block helpers).
//!
//! A helper is a plain function of its evaluated arguments. The direct evaluator
//! ([`super::eval`]) calls it without handlebars; [`HbsHelper`] calls the same function
//! from inside handlebars, so both paths give the same results.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, JsonTruthy, Output, RenderContext,
    RenderError, RenderErrorReason, Renderable, ScopedJson,
};
use serde_json::Value;

use super::value::{as_number, kind_name, preview, to_text, NULL};
use super::{array, date, encoding, general, math, text};

/// Where `now` comes from; tests and golden runs fix it.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What a helper may read besides its arguments.
#[derive(Clone)]
pub(crate) struct Env {
    /// The clock `now` reads.
    pub clock: Clock,
}

impl Env {
    pub(crate) fn system() -> Self {
        Env {
            clock: Arc::new(Utc::now),
        }
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Env")
    }
}

/// A helper function: evaluated arguments in, a JSON value or an error message out.
pub(crate) type HelperFn = fn(&Args<'_, '_>) -> Result<Value, String>;

/// What an argument must be; literal arguments are checked against it at load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Anything.
    Any,
    /// Text, a number or a boolean (not an array or object).
    Text,
    /// A number or numeric text.
    Number,
    /// A whole number.
    Integer,
    /// An array.
    Array,
    /// A date: RFC 3339 or a common format, or unix seconds.
    Date,
    /// A date format with Make's tokens (`YYYY-MM-DD HH:mm`).
    DateFormat,
    /// A time zone: `UTC` or an offset such as `+02:00`.
    TimeZone,
    /// Text to search for, or a `/regex/flags`.
    Search,
}

impl Kind {
    /// Checks a literal argument; returns what was expected when it does not fit.
    fn check_literal(self, v: &Value) -> Result<(), String> {
        let ok = match self {
            Kind::Any => true,
            Kind::Text => !matches!(v, Value::Array(_) | Value::Object(_)),
            Kind::Number => as_number(v).is_some(),
            Kind::Integer => as_number(v).is_some_and(|f| f.fract() == 0.0),
            Kind::Array => matches!(v, Value::Array(_) | Value::Null),
            Kind::Date => date::parse_value(v).is_some(),
            Kind::DateFormat => {
                return match v {
                    Value::String(s) => date::MomentFormat::parse(s).map(|_| ()),
                    _ => Err("a date format as text, such as `YYYY-MM-DD`".to_owned()),
                }
            }
            Kind::TimeZone => {
                return match v {
                    Value::String(s) => date::parse_time_zone(s).map(|_| ()),
                    _ => Err("a time zone as text, such as `UTC` or `+02:00`".to_owned()),
                }
            }
            Kind::Search => {
                return match v {
                    Value::Array(_) | Value::Object(_) => Err("text".to_owned()),
                    _ => text::search_pattern(&to_text(v)).map(|_| ()),
                }
            }
        };
        if ok {
            Ok(())
        } else {
            Err(self.expected().to_owned())
        }
    }

    /// What this kind is, for messages ("expects {expected}").
    pub(crate) const fn expected(self) -> &'static str {
        match self {
            Kind::Any => "a value",
            Kind::Text => "text",
            Kind::Number => "a number",
            Kind::Integer => "a whole number",
            Kind::Array => "an array",
            Kind::Date => "a date",
            Kind::DateFormat => "a date format",
            Kind::TimeZone => "a time zone",
            Kind::Search => "text or a `/regex/`",
        }
    }
}

/// One parameter of a helper.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub optional: bool,
}

/// A required parameter.
pub(crate) const fn req(name: &'static str, kind: Kind) -> Param {
    Param {
        name,
        kind,
        optional: false,
    }
}

/// An optional parameter.
pub(crate) const fn opt(name: &'static str, kind: Kind) -> Param {
    Param {
        name,
        kind,
        optional: true,
    }
}

/// How the direct evaluator evaluates a call's arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// All arguments first, then the function.
    Strict,
    /// `if cond a b`: only the chosen branch is evaluated.
    If,
    /// `ifempty a b`: `b` only when `a` is empty.
    IfEmpty,
    /// `default a b`: `b` only when `a` is null or missing.
    Default,
}

/// One helper.
pub(crate) struct HelperSpec {
    pub name: &'static str,
    pub params: &'static [Param],
    /// The last parameter may repeat (`add a b c …`).
    pub variadic: bool,
    pub func: HelperFn,
    pub strategy: Strategy,
}

impl fmt::Debug for HelperSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HelperSpec({})", self.name)
    }
}

/// A strict helper spec.
pub(crate) const fn helper(
    name: &'static str,
    params: &'static [Param],
    func: HelperFn,
) -> HelperSpec {
    HelperSpec {
        name,
        params,
        variadic: false,
        func,
        strategy: Strategy::Strict,
    }
}

impl HelperSpec {
    /// Marks the last parameter as repeatable.
    pub(crate) const fn variadic(mut self) -> Self {
        self.variadic = true;
        self
    }

    /// Sets how arguments are evaluated.
    pub(crate) const fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    fn min_args(&self) -> usize {
        self.params.iter().filter(|p| !p.optional).count()
    }

    fn max_args(&self) -> Option<usize> {
        (!self.variadic).then_some(self.params.len())
    }

    /// The parameter an argument at `index` binds to.
    fn param(&self, index: usize) -> Option<&Param> {
        self.params
            .get(index)
            .or_else(|| self.variadic.then(|| self.params.last()).flatten())
    }

    /// How to call it, e.g. `substring text start [end]`.
    pub(crate) fn usage(&self) -> String {
        let mut s = self.name.to_owned();
        for p in self.params {
            s.push(' ');
            if p.optional {
                s.push('[');
                s.push_str(p.name);
                s.push(']');
            } else {
                s.push_str(p.name);
            }
        }
        if self.variadic {
            s.push_str(" …");
        }
        s
    }

    /// Checks the number of arguments and the literal ones; returns the problem.
    pub(crate) fn check(&self, args: &[Option<&Value>]) -> Result<(), String> {
        let (min, max) = (self.min_args(), self.max_args());
        let arity_ok = args.len() >= min && max.is_none_or(|max| args.len() <= max);
        if !arity_ok {
            let wanted = match max {
                Some(max) if max == min => plural(min, "argument"),
                Some(max) => format!("{min} to {max} arguments"),
                None => format!("at least {}", plural(min, "argument")),
            };
            return Err(format!(
                "takes {wanted} (`{}`), got {}",
                self.usage(),
                args.len()
            ));
        }
        for (i, arg) in args.iter().enumerate() {
            let (Some(value), Some(param)) = (arg, self.param(i)) else {
                continue;
            };
            if let Err(expected) = param.kind.check_literal(value) {
                return Err(format!(
                    "expects {expected} as `{}` (argument {}), got `{}`",
                    param.name,
                    i + 1,
                    preview(value)
                ));
            }
        }
        Ok(())
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Every helper, family by family.
pub(crate) fn all() -> impl Iterator<Item = &'static HelperSpec> {
    text::HELPERS
        .iter()
        .chain(math::HELPERS)
        .chain(date::HELPERS)
        .chain(general::HELPERS)
        .chain(array::HELPERS)
        .chain(encoding::HELPERS)
}

/// The helper of that name.
pub(crate) fn find(name: &str) -> Option<&'static HelperSpec> {
    all().find(|h| h.name == name)
}

/// Handlebars' block helpers that stay available (`if` is ours and works both ways).
pub(crate) const BLOCK_HELPERS: &[&str] = &["each", "if", "raw", "unless", "with"];

/// Block helpers whose body sees another context (`this` is the element or object).
pub(crate) const CONTEXT_HELPERS: &[&str] = &["each", "with"];

/// Every name a template may call, for "did you mean" suggestions.
pub(crate) fn known_names() -> impl Iterator<Item = &'static str> {
    all()
        .map(|h| h.name)
        .chain(BLOCK_HELPERS.iter().copied().filter(|n| find(n).is_none()))
}

/// A helper's evaluated arguments.
pub(crate) struct Args<'a, 'v> {
    pub name: &'static str,
    values: &'a [Cow<'v, Value>],
    pub env: &'a Env,
}

impl<'a, 'v> Args<'a, 'v> {
    pub(crate) fn new(name: &'static str, values: &'a [Cow<'v, Value>], env: &'a Env) -> Self {
        Args { name, values, env }
    }

    /// How many arguments were given.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// All arguments.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Value> {
        self.values.iter().map(AsRef::as_ref)
    }

    /// Argument `i`, `null` when not given.
    pub(crate) fn get(&self, i: usize) -> &Value {
        self.values.get(i).map_or(&NULL, AsRef::as_ref)
    }

    /// Argument `i` when given (even if `null`).
    pub(crate) fn opt(&self, i: usize) -> Option<&Value> {
        self.values.get(i).map(AsRef::as_ref)
    }

    /// The error for argument `i` not being what was expected.
    pub(crate) fn bad(&self, i: usize, expected: &str) -> String {
        let v = self.get(i);
        format!(
            "`{}` expects {expected} as argument {}, got {} `{}`",
            self.name,
            i + 1,
            kind_name(v),
            preview(v)
        )
    }

    /// A failure of this helper.
    pub(crate) fn fail(&self, message: impl fmt::Display) -> String {
        format!("`{}`: {message}", self.name)
    }

    /// Argument `i` as text: numbers and booleans as text, `null` as empty text.
    pub(crate) fn text(&self, i: usize) -> Result<Cow<'_, str>, String> {
        match self.get(i) {
            Value::Array(_) | Value::Object(_) => Err(self.bad(i, "text")),
            v => Ok(to_text(v)),
        }
    }

    /// Optional text argument `i`.
    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<Cow<'_, str>>, String> {
        match self.opt(i) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.text(i).map(Some),
        }
    }

    /// Argument `i` as a number (numeric text is read).
    pub(crate) fn number(&self, i: usize) -> Result<f64, String> {
        as_number(self.get(i)).ok_or_else(|| self.bad(i, "a number"))
    }

    /// Argument `i` as a whole number.
    pub(crate) fn integer(&self, i: usize) -> Result<i64, String> {
        match as_number(self.get(i)) {
            // Saturating cast; whole by the check.
            #[allow(clippy::cast_possible_truncation)]
            Some(f) if f.fract() == 0.0 => Ok(f as i64),
            _ => Err(self.bad(i, "a whole number")),
        }
    }

    /// Optional whole-number argument `i`.
    pub(crate) fn opt_integer(&self, i: usize) -> Result<Option<i64>, String> {
        match self.opt(i) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.integer(i).map(Some),
        }
    }

    /// Argument `i` as an array; `null` reads as an empty array.
    pub(crate) fn array(&self, i: usize) -> Result<&[Value], String> {
        match self.get(i) {
            Value::Array(a) => Ok(a),
            Value::Null => Ok(&[]),
            _ => Err(self.bad(i, "an array")),
        }
    }

    /// Argument `i` as a date.
    pub(crate) fn date(&self, i: usize) -> Result<DateTime<Utc>, String> {
        date::parse_value(self.get(i)).ok_or_else(|| {
            self.bad(
                i,
                "a date (RFC 3339 such as `2024-05-01T09:30:00Z`, `YYYY-MM-DD`, or unix seconds)",
            )
        })
    }
}

/// A helper registered with handlebars; calls the same function as the direct evaluator.
pub(crate) struct HbsHelper {
    pub spec: &'static HelperSpec,
    pub env: Env,
}

impl HbsHelper {
    fn value<'rc>(&self, h: &Helper<'rc>) -> Result<Value, RenderError> {
        let values: Vec<Cow<'_, Value>> = h
            .params()
            .iter()
            .map(|p| Cow::Borrowed(p.value()))
            .collect();
        (self.spec.func)(&Args::new(self.spec.name, &values, &self.env))
            .map_err(|message| RenderErrorReason::Other(message).into())
    }
}

impl HelperDef for HbsHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        self.value(h).map(ScopedJson::Derived)
    }

    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        if h.is_block() {
            // Only `if` is allowed as a block (checked at load): handlebars' own behaviour.
            let include_zero = h
                .hash_get("includeZero")
                .and_then(|v| v.value().as_bool())
                .unwrap_or(false);
            let cond = h
                .param(0)
                .is_some_and(|p| p.value().is_truthy(include_zero));
            let branch = if cond { h.template() } else { h.inverse() };
            return match branch {
                Some(t) => t.render(r, ctx, rc, out),
                None => Ok(()),
            };
        }
        let value = self.value(h)?;
        out.write(&to_text(&value))?;
        Ok(())
    }
}

/// Registers every helper with a handlebars registry (replacing its `if` and `lookup`).
pub(crate) fn register_all(registry: &mut Handlebars<'static>, env: &Env) {
    for spec in all() {
        registry.register_helper(
            spec.name,
            Box::new(HbsHelper {
                spec,
                env: env.clone(),
            }),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = all().map(|h| h.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn usage_and_arity_messages() {
        let s = find("substring").unwrap();
        assert_eq!(s.usage(), "substring text start [end]");
        let err = s.check(&[None]).unwrap_err();
        assert_eq!(
            err,
            "takes 2 to 3 arguments (`substring text start [end]`), got 1"
        );
        let add = find("add").unwrap();
        assert!(add.check(&[None, None, None, None]).is_ok());
        assert!(add
            .check(&[None])
            .unwrap_err()
            .contains("at least 2 arguments"));
        let err = add.check(&[None, Some(&json!("x"))]).unwrap_err();
        assert_eq!(err, "expects a number as `b` (argument 2), got `\"x\"`");
        assert!(add.check(&[None, None, Some(&json!("x"))]).is_err());
    }
}
