//! The direct evaluator: templates without `each`/`with` blocks never reach handlebars
//! at render time. A compiled expression is a path (walked straight through the JSON), a
//! literal, or a helper call whose arguments are expressions; a text template is a list
//! of parts: text, expressions and `{{#if}}`/`{{#unless}}` conditionals.

use std::borrow::Cow;

use serde_json::Value;

use super::helpers::{Args, Env, HelperSpec, Strategy};
use super::value::{is_empty, is_truthy, truthy, write_text, NULL};
use super::TemplateError;

/// One path segment, with its array index read at compile time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    key: String,
    index: Option<usize>,
}

impl Segment {
    pub(crate) fn new(key: &str) -> Self {
        Segment {
            key: key.to_owned(),
            index: key.parse().ok(),
        }
    }
}

/// A compiled expression.
#[derive(Clone, Debug)]
pub(crate) enum Expr {
    /// A path from the scope's root (`1.items.0.sku`).
    Path(Vec<Segment>),
    /// A literal (`"x"`, `2`, `true`, `null`).
    Literal(Value),
    /// A helper call; arity was checked at compile time.
    Call {
        helper: &'static HelperSpec,
        args: Vec<Expr>,
    },
}

/// A piece of a text template.
#[derive(Clone, Debug)]
pub(crate) enum Part {
    /// Literal text.
    Text(String),
    /// `{{expression}}`: its value as text.
    Expr(Expr),
    /// `{{#if cond}}then{{else}}otherwise{{/if}}` (`negate` for `unless`).
    Cond {
        cond: Expr,
        include_zero: bool,
        negate: bool,
        then: Vec<Part>,
        otherwise: Vec<Part>,
    },
}

/// Renders parts as text into `out`.
pub(crate) fn write_parts(
    parts: &[Part],
    data: &Value,
    env: &Env,
    out: &mut String,
) -> Result<(), TemplateError> {
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Expr(expr) => expr.write(data, env, out)?,
            Part::Cond {
                cond,
                include_zero,
                negate,
                then,
                otherwise,
            } => {
                let value = cond.eval(data, env)?;
                let branch = if truthy(&value, *include_zero) != *negate {
                    then
                } else {
                    otherwise
                };
                write_parts(branch, data, env, out)?;
            }
        }
    }
    Ok(())
}

/// Walks a path; `None` when a step is missing (a non-numeric step into an array, or a
/// step into a scalar, is missing too).
pub(crate) fn lookup<'a>(data: &'a Value, path: &[Segment]) -> Option<&'a Value> {
    let mut current = data;
    for seg in path {
        current = match current {
            Value::Object(map) => map.get(&seg.key)?,
            Value::Array(items) => items.get(seg.index?)?,
            _ => return None,
        };
    }
    Some(current)
}

impl Expr {
    /// Evaluates against the scope's data; paths borrow, helper results are owned.
    pub(crate) fn eval<'a>(
        &'a self,
        data: &'a Value,
        env: &Env,
    ) -> Result<Cow<'a, Value>, TemplateError> {
        match self {
            Expr::Path(path) => Ok(Cow::Borrowed(lookup(data, path).unwrap_or(&NULL))),
            Expr::Literal(v) => Ok(Cow::Borrowed(v)),
            Expr::Call { helper, args } => {
                let arg = |i: usize| match args.get(i) {
                    Some(e) => e.eval(data, env),
                    None => Ok(Cow::Borrowed(&NULL)),
                };
                match helper.strategy {
                    Strategy::Strict => {}
                    Strategy::If => {
                        let cond = arg(0)?;
                        return arg(if is_truthy(&cond) { 1 } else { 2 });
                    }
                    Strategy::IfEmpty => {
                        let v = arg(0)?;
                        return if is_empty(&v) { arg(1) } else { Ok(v) };
                    }
                    Strategy::Default => {
                        let v = arg(0)?;
                        return if v.is_null() { arg(1) } else { Ok(v) };
                    }
                }
                let values = args
                    .iter()
                    .map(|e| e.eval(data, env))
                    .collect::<Result<Vec<_>, _>>()?;
                (helper.func)(&Args::new(helper.name, &values, env))
                    .map(Cow::Owned)
                    .map_err(|message| TemplateError::Render { message })
            }
        }
    }

    /// Evaluates and appends the result as text.
    pub(crate) fn write(
        &self,
        data: &Value,
        env: &Env,
        out: &mut String,
    ) -> Result<(), TemplateError> {
        let value = self.eval(data, env)?;
        write_text(value.as_ref(), out);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookup_walks_objects_and_arrays() {
        let d = json!({"1": {"items": [{"sku": "A"}, {"sku": "B"}]}});
        let path: Vec<_> = ["1", "items", "1", "sku"].map(Segment::new).to_vec();
        assert_eq!(lookup(&d, &path), Some(&json!("B")));
        let bad: Vec<_> = ["1", "items", "x"].map(Segment::new).to_vec();
        assert_eq!(lookup(&d, &bad), None);
        let deep: Vec<_> = ["1", "items", "0", "sku", "more"]
            .map(Segment::new)
            .to_vec();
        assert_eq!(lookup(&d, &deep), None);
    }
}
