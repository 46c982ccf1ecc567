//! Filters on the links between modules: an OR of AND groups of conditions, as in Make.
//!
//! ```yaml
//! filter:
//!   name: subscribed only
//!   any:                       # passes when any group passes
//!     - all:                   # a group passes when all its conditions hold
//!         - { left: "{{1.customer.subscribed}}", op: boolean.equal, right: true }
//!         - { left: "{{1.customer.phone_number}}", op: exists }
//! ```
//!
//! `left` and `right` are values whose strings are templates (see [`crate::template`]):
//! `"{{1.tags}}"` gives the array itself, `"{{1.n}} items"` text. The operators and how
//! they read their operands are in [`operators`]. `exists` means present and not `null`:
//! empty text exists (test it with `text.equal` and `right: ""`).
//!
//! Everything that can be checked is checked at load ([`Filter::compile`]): the operator
//! name (with a suggestion), `right` given exactly when the operator needs it, non-empty
//! groups, the templates, and the regular expression of `text.matches` when it is static.
//!
//! ```
//! use serde_json::json;
//! use weft_engine::filter::{Filter, FilterDef};
//! use weft_engine::template::{Scope, Templates};
//!
//! let def: FilterDef = serde_json::from_value(json!({
//!     "any": [{"all": [{"left": "{{1.n}}", "op": "number.greater", "right": 3}]}]
//! })).unwrap();
//! let mut templates = Templates::new();
//! let filter = Filter::compile(&def, &mut templates).unwrap();
//! let mut scope = Scope::new();
//! scope.set("1", json!({"n": "5"}));
//! assert!(filter.passes(&templates, &scope).unwrap());
//! ```

pub mod operators;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::suggest::did_you_mean;
use crate::template::{Reference, Scope, TemplateError, Templates, ValueTemplate};
pub use operators::Operator;

/// A filter as written in a scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterDef {
    /// A label for people (shown in execution records and graphs).
    #[serde(default)]
    pub name: Option<String>,
    /// The groups; the filter passes when any of them passes.
    pub any: Vec<AllDef>,
}

/// An AND group as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllDef {
    /// The conditions; the group passes when all of them hold.
    pub all: Vec<ConditionDef>,
}

/// One condition as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionDef {
    /// The value tested (usually a template such as `"{{1.email}}"`).
    pub left: Value,
    /// The operator name, e.g. `text.equal`.
    pub op: String,
    /// What `left` is compared with; absent for `exists`/`not_exists`.
    #[serde(default)]
    pub right: Option<Value>,
}

/// A filter that failed to compile, located by group and condition (0-based, as in
/// `any[group].all[condition]`) and field.
#[derive(Debug, thiserror::Error)]
#[error("`any[{group}].all[{condition}].{field}`: {message}")]
pub struct FilterError {
    /// Index of the group in `any`.
    pub group: usize,
    /// Index of the condition in the group's `all`.
    pub condition: usize,
    /// `"left"`, `"op"` or `"right"` (`"all"`/`"any"` for an empty list).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
    /// The fix, when there is an obvious one.
    pub help: Option<String>,
}

/// One compiled condition.
#[derive(Clone, Debug)]
struct Condition {
    left: ValueTemplate,
    op: Operator,
    right: Option<ValueTemplate>,
    /// `text.matches` with a static `right`: compiled once, here.
    regex: Option<Regex>,
}

/// A compiled filter: an OR of AND groups.
#[derive(Clone, Debug)]
pub struct Filter {
    name: Option<String>,
    groups: Vec<Vec<Condition>>,
}

impl Filter {
    /// Compiles a filter; its templates go into `templates`.
    pub fn compile(def: &FilterDef, templates: &mut Templates) -> Result<Filter, FilterError> {
        if def.any.is_empty() {
            return Err(FilterError {
                group: 0,
                condition: 0,
                field: "any",
                message: "`any` is empty, so the filter could never pass".to_owned(),
                help: Some("add a group: `any: [ { all: [ { left: \"{{1.field}}\", op: exists } ] } ]`, or remove the filter".to_owned()),
            });
        }
        let mut groups = Vec::with_capacity(def.any.len());
        for (g, group) in def.any.iter().enumerate() {
            if group.all.is_empty() {
                return Err(FilterError {
                    group: g,
                    condition: 0,
                    field: "all",
                    message: format!("group {g} has no conditions"),
                    help: Some("add a condition under `all:` or remove the group".to_owned()),
                });
            }
            let conditions = group
                .all
                .iter()
                .enumerate()
                .map(|(c, cond)| compile_condition(cond, templates, g, c))
                .collect::<Result<Vec<_>, _>>()?;
            groups.push(conditions);
        }
        Ok(Filter {
            name: def.name.clone(),
            groups,
        })
    }

    /// The filter's label, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Every module reference in its conditions.
    pub fn references(&self) -> Vec<&Reference> {
        let mut out = Vec::new();
        for cond in self.groups.iter().flatten() {
            out.extend(cond.left.references());
            if let Some(right) = &cond.right {
                out.extend(right.references());
            }
        }
        out
    }

    /// Whether a bundle passes: any group whose conditions all hold. Fails only when a
    /// template cannot render (or a dynamic `text.matches` pattern is not a regex).
    pub fn passes(&self, templates: &Templates, scope: &Scope) -> Result<bool, TemplateError> {
        for group in &self.groups {
            let mut all = true;
            for cond in group {
                if !cond.holds(templates, scope)? {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Condition {
    fn holds(&self, templates: &Templates, scope: &Scope) -> Result<bool, TemplateError> {
        let left = templates.render_value(&self.left, scope)?;
        let right = match &self.right {
            Some(r) => templates.render_value(r, scope)?,
            None => Value::Null,
        };
        self.op
            .apply(&left, &right, self.regex.as_ref())
            .map_err(|e| TemplateError::Render {
                message: format!("`{}`: {e}", self.op),
            })
    }
}

fn compile_condition(
    def: &ConditionDef,
    templates: &mut Templates,
    group: usize,
    condition: usize,
) -> Result<Condition, FilterError> {
    let err = |field: &'static str, message: String, help: Option<String>| FilterError {
        group,
        condition,
        field,
        message,
        help,
    };
    let Some(op) = Operator::from_name(def.op.trim()) else {
        return Err(err(
            "op",
            format!("unknown operator `{}`", def.op),
            Some(suggest_operator(&def.op)),
        ));
    };
    let template = |field: &'static str, v: &Value, templates: &mut Templates| {
        templates
            .compile_value(v)
            .map_err(|e| err(field, e.to_string(), e.help()))
    };
    let left = template("left", &def.left, templates)?;
    let right = match (&def.right, op.takes_right()) {
        (Some(_), false) => {
            return Err(err(
                "right",
                format!("`{op}` takes no `right` value"),
                Some(
                    "remove `right`, or use an operator that compares, such as `text.equal`"
                        .to_owned(),
                ),
            ))
        }
        (None, true) => {
            return Err(err(
                "right",
                format!("`{op}` needs a `right` value to compare with"),
                Some(format!("add `right: …` to the condition with `op: {op}`")),
            ))
        }
        (Some(r), true) => Some(template("right", r, templates)?),
        (None, false) => None,
    };
    let regex = match (&right, op.is_regex()) {
        (Some(ValueTemplate::Text(t)), true) if t.is_static() => {
            let pattern = templates
                .render(t, &Scope::new())
                .map_err(|e| err("right", e.to_string(), None))?;
            Some(
                op.regex(&crate::template::value::to_text(&pattern))
                    .map_err(|m| err("right", m, Some(REGEX_HELP.to_owned())))?,
            )
        }
        (Some(ValueTemplate::Literal(v)), true) => Some(
            op.regex(&crate::template::value::to_text(v))
                .map_err(|m| err("right", m, Some(REGEX_HELP.to_owned())))?,
        ),
        _ => None,
    };
    Ok(Condition {
        left,
        op,
        right,
        regex,
    })
}

const REGEX_HELP: &str =
    "write the pattern in Rust `regex` syntax (like JavaScript's, without look-around or back-references)";

/// "did you mean …" for an unknown operator: the closest name, or the one with the
/// same ending (`equal` → `text.equal`), or the list of families.
fn suggest_operator(written: &str) -> String {
    let w = written.trim();
    if let Some(name) = did_you_mean(w, Operator::names()) {
        return format!("did you mean `{name}`?");
    }
    if let Some(name) = Operator::names().find(|n| n.rsplit('.').next() == Some(w)) {
        return format!("did you mean `{name}`?");
    }
    "operators are `exists`, `not_exists`, `text.*`, `number.*`, `date.*`, `boolean.equal` and `array.*`; see docs/scenario-format.md".to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(v: Value) -> Result<(Filter, Templates), FilterError> {
        let def: FilterDef = serde_json::from_value(v).unwrap();
        let mut t = Templates::new();
        Filter::compile(&def, &mut t).map(|f| (f, t))
    }

    fn one(left: Value, op: &str, right: Option<Value>) -> Value {
        let mut cond = json!({"left": left, "op": op});
        if let Some(r) = right {
            cond["right"] = r;
        }
        json!({"any": [{"all": [cond]}]})
    }

    fn scope() -> Scope {
        let mut s = Scope::new();
        s.set(
            "1",
            json!({
                "customer": {"subscribed": true, "phone_number": "+15550100", "email": null},
                "tags": ["vip", "new"],
                "n": "12",
                "text": "Order #123 shipped",
                "pattern": "#\\d+",
                "bad_pattern": "(",
                "at": "2024-05-01T09:30:00Z"
            }),
        );
        s
    }

    fn passes(v: Value) -> bool {
        let (f, t) = compile(v).unwrap();
        f.passes(&t, &scope()).unwrap()
    }

    #[test]
    fn or_of_and_groups() {
        let f = json!({
            "name": "subscribed only",
            "any": [
                {"all": [
                    {"left": "{{1.customer.subscribed}}", "op": "boolean.equal", "right": true},
                    {"left": "{{1.customer.email}}", "op": "exists"}
                ]},
                {"all": [
                    {"left": "{{1.tags}}", "op": "array.contains", "right": "vip"},
                    {"left": "{{1.n}}", "op": "number.greater", "right": "{{add 1 10}}"}
                ]}
            ]
        });
        let (filter, t) = compile(f.clone()).unwrap();
        assert_eq!(filter.name(), Some("subscribed only"));
        assert!(filter.passes(&t, &scope()).unwrap());
        let refs: Vec<_> = filter
            .references()
            .iter()
            .map(|r| r.path.as_str())
            .collect();
        assert_eq!(
            refs,
            ["1.customer.subscribed", "1.customer.email", "1.tags", "1.n"]
        );
        // Second group fails too when `n` is small.
        let mut s = scope();
        s.set(
            "1",
            json!({"customer": {"subscribed": true}, "tags": ["vip"], "n": 3}),
        );
        assert!(!filter.passes(&t, &s).unwrap());
    }

    #[test]
    fn conditions_through_templates() {
        assert!(passes(one(
            json!("{{1.customer.phone_number}}"),
            "exists",
            None
        )));
        assert!(!passes(one(json!("{{1.customer.email}}"), "exists", None)));
        assert!(passes(one(
            json!("{{1.customer.missing}}"),
            "not_exists",
            None
        )));
        assert!(passes(one(
            json!("{{1.text}}"),
            "text.contains_ci",
            Some(json!("SHIPPED"))
        )));
        assert!(passes(one(
            json!("{{1.text}}"),
            "text.matches",
            Some(json!("#\\d+ shipped$"))
        )));
        assert!(!passes(one(
            json!("{{1.text}}"),
            "text.matches",
            Some(json!("^shipped"))
        )));
        assert!(passes(one(
            json!("{{1.text}}"),
            "text.matches",
            Some(json!("{{1.pattern}}"))
        )));
        assert!(passes(one(
            json!("{{1.at}}"),
            "date.before",
            Some(json!("2024-06-01"))
        )));
        assert!(passes(one(
            json!("{{1.tags}}"),
            "array.length_equal",
            Some(json!(2))
        )));
        assert!(passes(one(
            json!("{{1.n}}"),
            "number.equal",
            Some(json!(12))
        )));
        assert!(passes(one(json!(5), "number.less", Some(json!("{{1.n}}")))));
        assert!(passes(one(
            json!("x {{1.n}}"),
            "text.equal",
            Some(json!("x 12"))
        )));
    }

    #[test]
    fn dynamic_bad_regex_is_a_render_error() {
        let (f, t) = compile(one(
            json!("{{1.text}}"),
            "text.matches",
            Some(json!("{{1.bad_pattern}}")),
        ))
        .unwrap();
        let err = f.passes(&t, &scope()).unwrap_err();
        assert!(
            err.to_string().contains("not a valid regular expression"),
            "{err}"
        );
    }

    #[test]
    fn compile_errors() {
        let e = compile(one(json!("{{1.a}}"), "text.equals", Some(json!("x")))).unwrap_err();
        assert_eq!((e.group, e.condition, e.field), (0, 0, "op"));
        assert_eq!(e.message, "unknown operator `text.equals`");
        assert_eq!(e.help.as_deref(), Some("did you mean `text.equal`?"));
        assert_eq!(
            e.to_string(),
            "`any[0].all[0].op`: unknown operator `text.equals`"
        );
        let e = compile(one(json!("{{1.a}}"), "greater", Some(json!(1)))).unwrap_err();
        assert_eq!(e.help.as_deref(), Some("did you mean `number.greater`?"));
        let e = compile(one(json!("{{1.a}}"), "like", Some(json!(1)))).unwrap_err();
        assert!(e.help.unwrap().contains("text.*"));

        let e = compile(one(json!("{{1.a}}"), "exists", Some(json!(1)))).unwrap_err();
        assert_eq!(e.field, "right");
        assert!(e.message.contains("takes no `right`"));
        let e = compile(one(json!("{{1.a}}"), "text.equal", None)).unwrap_err();
        assert_eq!(e.field, "right");
        assert!(e.message.contains("needs a `right` value"));

        let e = compile(one(json!("{{1.a}}"), "text.matches_ci", Some(json!("(")))).unwrap_err();
        assert_eq!(e.field, "right");
        assert!(
            e.message.contains("not a valid regular expression"),
            "{}",
            e.message
        );

        let e = compile(one(json!("{{uper 1.a}}"), "exists", None)).unwrap_err();
        assert_eq!(e.field, "left");
        assert_eq!(e.message, "unknown helper `uper`");
        assert_eq!(e.help.as_deref(), Some("did you mean `upper`?"));

        let e = compile(json!({"any": []})).unwrap_err();
        assert_eq!(e.field, "any");
        let e = compile(json!({"any": [
            {"all": [{"left": 1, "op": "exists"}]},
            {"all": []}
        ]}))
        .unwrap_err();
        assert_eq!((e.group, e.field), (1, "all"));
        let e = compile(json!({"any": [{"all": [
            {"left": 1, "op": "exists"},
            {"left": 1, "op": "number.equal", "right": "{{1.a"}
        ]}]}))
        .unwrap_err();
        assert_eq!((e.group, e.condition, e.field), (0, 1, "right"));
    }

    #[test]
    fn definitions_reject_unknown_fields() {
        let bad: Result<FilterDef, _> = serde_json::from_value(
            json!({"any": [{"all": [{"left": 1, "op": "exists", "rigth": 2}]}]}),
        );
        assert!(bad.is_err());
        let bad: Result<FilterDef, _> = serde_json::from_value(json!({"all": []}));
        assert!(bad.is_err());
    }
}
