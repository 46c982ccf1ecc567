//! Mapping templates: handlebars syntax with Make's helpers, rendered against the
//! outputs of upstream modules.
//!
//! The data a template sees is a [`Scope`]: one entry per module id (`"1"`, `"2"`, …) with
//! that module's current output bundle, plus `error` in error-handler flows. `{{1.name}}`,
//! `{{1.items.0.sku}}` and `{{upper 1.name}}` read from it; a bare `1` as a helper argument
//! is the number literal.
//!
//! [`Templates`] compiles each text once, at load, into a [`Template`]: syntax errors,
//! unknown helpers (with a suggestion) and wrong arguments are load errors, and
//! [`Template::references`] lists every module the text reads, for the loader to check.
//!
//! Rendering ([`Templates::render`]):
//! - a text with no `{{` is the text;
//! - exactly one `{{expression}}` and nothing else gives its JSON value unchanged: a path
//!   gives the array, number, boolean, object or `null` it points at (`null` when
//!   missing), a helper its result (`{{add 1.a 2}}` → `5`, `{{split 1.s ","}}` → an array);
//! - anything else is text: no HTML escaping (`&` stays `&`), whole numbers without `.0`,
//!   `null` as nothing, arrays as their elements joined with `, `, objects as JSON.
//!
//! Texts are evaluated directly, without handlebars: a path is a walk through the JSON,
//! a helper a function call, `{{#if}}`/`{{#unless}}` a branch. Only texts with
//! `{{#each}}`, `{{#with}}` or raw blocks are registered with handlebars (once, at compile
//! time) and rendered by it, with the same helpers.
//!
//! ```
//! use serde_json::json;
//! use weft_engine::template::{Scope, Templates};
//!
//! let mut templates = Templates::new();
//! let text = templates.compile("Hi {{capitalize 1.first_name}}!").unwrap();
//! let tags = templates.compile("{{split 1.tags \",\"}}").unwrap();
//! assert_eq!(text.references()[0].root, "1");
//!
//! let mut scope = Scope::new();
//! scope.set("1", json!({"first_name": "ada", "tags": "vip,new"}));
//! assert_eq!(templates.render(&text, &scope).unwrap(), json!("Hi Ada!"));
//! assert_eq!(templates.render(&tags, &scope).unwrap(), json!(["vip", "new"]));
//! ```
//!
//! Helpers, one file per family: text `lower upper capitalize trim substring
//! replace length split contains startsWith`; math `add sub mul div round floor ceil
//! parseNumber formatNumber`; dates `now formatDate parseDate addDays addHours addMinutes`;
//! general `if ifempty default get lookup toString toJson eq ne gt gte lt lte and or not`;
//! arrays `join first last slice distinct sort`; encoding `base64 encodeURL md5 sha256`.
//! Each file's docs give the exact behaviour.

mod array;
mod compile;
pub(crate) mod date;
mod encoding;
mod eval;
mod general;
mod helpers;
mod math;
mod text;
pub(crate) mod value;

use std::fmt;

use handlebars::{Context, Handlebars};
use serde_json::{Map, Value};

use compile::Plan;
pub use helpers::Clock;
use helpers::Env;

/// The data templates render against: module outputs keyed by module id (`"1"`, `"2"`,
/// …), plus `error` in error-handler flows.
///
/// It wraps a handlebars [`Context`] so that rendering never copies the data.
#[derive(Clone, Debug)]
pub struct Scope {
    ctx: Context,
}

impl Scope {
    /// An empty scope (an empty JSON object).
    pub fn new() -> Self {
        Scope {
            ctx: Context::from(Value::Object(Map::new())),
        }
    }

    fn map_mut(&mut self) -> &mut Map<String, Value> {
        let data = self.ctx.data_mut();
        if !data.is_object() {
            *data = Value::Object(Map::new());
        }
        match data {
            Value::Object(map) => map,
            _ => unreachable!("set to an object above"),
        }
    }

    /// Sets one entry, e.g. a module's output under its id.
    pub fn set(&mut self, key: &str, value: Value) {
        self.map_mut().insert(key.to_owned(), value);
    }

    /// Removes one entry and returns it.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.map_mut().shift_remove(key)
    }

    /// One entry.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.ctx.data().get(key)
    }

    /// The whole object.
    pub fn data(&self) -> &Value {
        self.ctx.data()
    }
}

impl Default for Scope {
    fn default() -> Self {
        Scope::new()
    }
}

/// A module reference in a template: a path read from the scope root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The first path segment: a module id (`"1"`), `"error"`, or whatever was written.
    pub root: String,
    /// The path as written, e.g. `1.customer.phone_number` or `@root.1.name`.
    pub path: String,
}

/// A compiled template.
#[derive(Clone, Debug)]
pub struct Template {
    source: String,
    references: Vec<Reference>,
    plan: Plan,
}

impl Template {
    /// The text it was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every module reference, in order of appearance, without duplicates.
    pub fn references(&self) -> &[Reference] {
        &self.references
    }

    /// Whether it has no `{{expressions}}` (it renders to its own text).
    pub fn is_static(&self) -> bool {
        matches!(self.plan, Plan::Static(_))
    }
}

/// A compiled JSON value: every string is a template, other scalars are literal.
#[derive(Clone, Debug)]
pub enum ValueTemplate {
    /// A number, boolean or `null`.
    Literal(Value),
    /// A string: a template.
    Text(Template),
    /// An array of values.
    Array(Vec<ValueTemplate>),
    /// An object; keys are literal.
    Object(Vec<(String, ValueTemplate)>),
}

impl ValueTemplate {
    /// Every module reference in the tree.
    pub fn references(&self) -> Vec<&Reference> {
        let mut out = Vec::new();
        self.collect_references(&mut out);
        out
    }

    fn collect_references<'a>(&'a self, out: &mut Vec<&'a Reference>) {
        match self {
            ValueTemplate::Literal(_) => {}
            ValueTemplate::Text(t) => out.extend(t.references()),
            ValueTemplate::Array(items) => {
                for item in items {
                    item.collect_references(out);
                }
            }
            ValueTemplate::Object(fields) => {
                for (_, v) in fields {
                    v.collect_references(out);
                }
            }
        }
    }

    /// Whether the whole tree is literal (no `{{expressions}}` anywhere).
    pub fn is_static(&self) -> bool {
        match self {
            ValueTemplate::Literal(_) => true,
            ValueTemplate::Text(t) => t.is_static(),
            ValueTemplate::Array(items) => items.iter().all(ValueTemplate::is_static),
            ValueTemplate::Object(fields) => fields.iter().all(|(_, v)| v.is_static()),
        }
    }
}

/// A template failed to compile or to render.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The text is not valid handlebars.
    #[error("invalid template syntax{}: {message}", at(*.line, *.column))]
    Syntax {
        /// What the parser expected.
        message: String,
        /// 1-based line in the template text.
        line: Option<usize>,
        /// Column in the template text.
        column: Option<usize>,
    },
    /// A helper that does not exist.
    #[error("unknown helper `{name}`")]
    UnknownHelper {
        /// The name as written.
        name: String,
        /// The closest known helper (see [`TemplateError::help`]).
        suggestion: Option<String>,
    },
    /// Wrong number or kind of arguments.
    #[error("`{helper}` {message}")]
    BadArguments {
        /// The helper as written (`#each` for block helpers).
        helper: String,
        /// What is wrong, and how to call it.
        message: String,
    },
    /// A handlebars feature mappings do not support.
    #[error("{what} are not supported in mappings")]
    Unsupported {
        /// The feature.
        what: &'static str,
    },
    /// Rendering failed: a helper got data it cannot use (division by zero, a text that is
    /// not a date, …).
    #[error("{message}")]
    Render {
        /// What went wrong.
        message: String,
    },
}

impl TemplateError {
    /// The fix, when there is an obvious one (for a `help:` line).
    pub fn help(&self) -> Option<String> {
        match self {
            TemplateError::UnknownHelper {
                suggestion: Some(s),
                ..
            } => Some(format!("did you mean `{s}`?")),
            TemplateError::BadArguments { helper, .. } => Some(format!(
                "see `{}` under Helpers in docs/scenario-format.md",
                helper.trim_start_matches('#')
            )),
            TemplateError::Syntax { .. } => Some(
                "write `{{1.field}}`, `{{helper 1.field \"text\"}}`, or `\\{{` for a literal `{{`"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        _ => String::new(),
    }
}

/// A compiled scenario's templates: one handlebars registry with every helper
/// registered, and the templates that need it.
pub struct Templates {
    registry: Handlebars<'static>,
    env: Env,
    registered: usize,
}

impl Templates {
    /// A registry with every helper; HTML escaping off.
    pub fn new() -> Self {
        let env = Env::system();
        let mut registry = Handlebars::new();
        registry.register_escape_fn(handlebars::no_escape);
        helpers::register_all(&mut registry, &env);
        Templates {
            registry,
            env,
            registered: 0,
        }
    }

    /// Replaces the clock `now` reads (fixed time in tests and golden runs).
    pub fn set_clock(&mut self, clock: Clock) {
        self.env = Env { clock };
        helpers::register_all(&mut self.registry, &self.env);
    }

    /// Compiles one text. Load-time errors: syntax, unknown helper (with a "did you mean"
    /// suggestion), wrong number of arguments, literal arguments of the wrong kind.
    pub fn compile(&mut self, source: &str) -> Result<Template, TemplateError> {
        if !source.contains("{{") {
            return Ok(Template {
                source: source.to_owned(),
                references: Vec::new(),
                plan: Plan::Static(source.to_owned()),
            });
        }
        let compiled = compile::compile(source)?;
        let plan = match (compiled.plan, compiled.handlebars) {
            (Some(plan), _) => plan,
            (None, Some(tpl)) => {
                self.registered += 1;
                let name = format!("t{}", self.registered);
                self.registry.register_template(&name, tpl);
                Plan::Handlebars(name)
            }
            (None, None) => Plan::Static(String::new()),
        };
        Ok(Template {
            source: source.to_owned(),
            references: compiled.references,
            plan,
        })
    }

    /// Compiles a JSON value tree: every string is a template, other scalars are
    /// literal; arrays and objects recurse.
    pub fn compile_value(&mut self, value: &Value) -> Result<ValueTemplate, TemplateError> {
        Ok(match value {
            Value::String(s) => ValueTemplate::Text(self.compile(s)?),
            Value::Array(items) => ValueTemplate::Array(
                items
                    .iter()
                    .map(|v| self.compile_value(v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => ValueTemplate::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.compile_value(v)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            scalar => ValueTemplate::Literal(scalar.clone()),
        })
    }

    /// Renders one template: its text, or the JSON value of its single expression.
    pub fn render(&self, t: &Template, scope: &Scope) -> Result<Value, TemplateError> {
        let data = scope.data();
        match &t.plan {
            Plan::Static(text) => Ok(Value::String(text.clone())),
            Plan::Single(expr) => Ok(expr.eval(data, &self.env)?.into_owned()),
            Plan::Parts(parts) => {
                let mut out = String::with_capacity(t.source.len() + 16);
                eval::write_parts(parts, data, &self.env, &mut out)?;
                Ok(Value::String(out))
            }
            Plan::Handlebars(name) => self
                .registry
                .render_with_context(name, &scope.ctx)
                .map(Value::String)
                .map_err(|e| TemplateError::Render {
                    message: e.reason().to_string(),
                }),
        }
    }

    /// Renders a value tree.
    pub fn render_value(&self, t: &ValueTemplate, scope: &Scope) -> Result<Value, TemplateError> {
        Ok(match t {
            ValueTemplate::Literal(v) => v.clone(),
            ValueTemplate::Text(t) => self.render(t, scope)?,
            ValueTemplate::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_value(v, scope))
                    .collect::<Result<_, _>>()?,
            ),
            ValueTemplate::Object(fields) => {
                let mut map = Map::with_capacity(fields.len());
                for (k, v) in fields {
                    map.insert(k.clone(), self.render_value(v, scope)?);
                }
                Value::Object(map)
            }
        })
    }
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates")
            .field("handlebars_templates", &self.registered)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    fn scope_of(data: &Value) -> Scope {
        let mut scope = Scope::new();
        for (k, v) in data.as_object().unwrap() {
            scope.set(k, v.clone());
        }
        scope
    }

    /// Compiles and renders; panics on errors.
    pub(crate) fn render(source: &str, data: &Value) -> Value {
        let mut t = Templates::new();
        let tpl = t
            .compile(source)
            .unwrap_or_else(|e| panic!("{source}: {e}"));
        t.render(&tpl, &scope_of(data))
            .unwrap_or_else(|e| panic!("{source}: {e}"))
    }

    /// Compiles and renders; the result must be text.
    pub(crate) fn render_text(source: &str, data: &Value) -> String {
        match render(source, data) {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }

    /// The render error's message.
    pub(crate) fn render_err(source: &str, data: &Value) -> String {
        let mut t = Templates::new();
        let tpl = t.compile(source).unwrap();
        let err = t.render(&tpl, &scope_of(data)).unwrap_err();
        assert!(matches!(err, TemplateError::Render { .. }), "{err:?}");
        err.to_string()
    }

    /// The load error's message.
    pub(crate) fn load_err(source: &str) -> String {
        Templates::new().compile(source).unwrap_err().to_string()
    }

    fn refs(source: &str) -> Vec<(String, String)> {
        Templates::new()
            .compile(source)
            .unwrap()
            .references()
            .iter()
            .map(|r| (r.root.clone(), r.path.clone()))
            .collect()
    }

    fn r(root: &str, path: &str) -> (String, String) {
        (root.to_owned(), path.to_owned())
    }

    fn sample() -> Value {
        json!({
            "1": {
                "name": "ada",
                "items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}],
                "count": 4,
                "ratio": 4.0,
                "half": 0.5,
                "vip": true,
                "nothing": null,
                "customer": {"phone_number": "+15550100", "tags": ["a", "b"]},
                "company": "Smith & Sons"
            },
            "2": {"id": 7}
        })
    }

    #[test]
    fn scope_entries() {
        let mut s = Scope::default();
        assert_eq!(s.data(), &json!({}));
        s.set("1", json!({"a": 1}));
        s.set("error", json!({"type": "DataError"}));
        assert_eq!(s.get("1"), Some(&json!({"a": 1})));
        assert_eq!(s.remove("error"), Some(json!({"type": "DataError"})));
        assert_eq!(s.get("error"), None);
        assert_eq!(s.clone().data(), &json!({"1": {"a": 1}}));
    }

    #[test]
    fn static_text() {
        let mut t = Templates::new();
        let tpl = t.compile("no expressions & more").unwrap();
        assert!(tpl.is_static());
        assert_eq!(tpl.source(), "no expressions & more");
        assert_eq!(
            t.render(&tpl, &Scope::new()).unwrap(),
            json!("no expressions & more")
        );
        let escaped = t.compile(r"literal \{{1.name}}").unwrap();
        assert!(escaped.is_static());
        assert!(escaped.references().is_empty());
        assert_eq!(
            t.render(&escaped, &Scope::new()).unwrap(),
            json!("literal {{1.name}}")
        );
    }

    #[test]
    fn single_expression_passes_values_through() {
        let d = sample();
        assert_eq!(render("{{1.items}}", &d), d["1"]["items"]);
        assert_eq!(render("{{1.count}}", &d), json!(4));
        assert_eq!(render("{{1.vip}}", &d), json!(true));
        assert_eq!(render("{{1.customer}}", &d), d["1"]["customer"]);
        assert_eq!(render("{{1.nothing}}", &d), json!(null));
        assert_eq!(render("{{1.missing.deeper}}", &d), json!(null));
        assert_eq!(render("{{3.anything}}", &d), json!(null));
        assert_eq!(render("{{1.items.1.sku}}", &d), json!("B2"));
        assert_eq!(render("{{1.items.[0].sku}}", &d), json!("A1"));
        assert_eq!(render("{{1/items/0/qty}}", &d), json!(2));
        assert_eq!(render("{{{1.company}}}", &d), json!("Smith & Sons"));
        assert_eq!(render("{{1}}", &d), d["1"]);
        // A helper's JSON result.
        assert_eq!(render("{{add 1.count 2}}", &d), json!(6));
        assert_eq!(render("{{split \"a,b\" \",\"}}", &d), json!(["a", "b"]));
        assert_eq!(
            render("{{contains 1.customer.tags \"a\"}}", &d),
            json!(true)
        );
        assert_eq!(render("{{first 1.items}}", &d), d["1"]["items"][0]);
        // Literals pass through too.
        assert_eq!(render("{{lookup 1.items 1}}", &d), d["1"]["items"][1]);
        assert_eq!(render("{{! a comment }}{{1.count}}", &d), json!(4));
    }

    #[test]
    fn text_rendering() {
        let d = sample();
        assert_eq!(render_text("{{1.company}}!", &d), "Smith & Sons!");
        assert_eq!(render_text("<{{1.company}}>", &d), "<Smith & Sons>");
        assert_eq!(render_text("n={{1.ratio}}", &d), "n=4");
        assert_eq!(render_text("n={{1.half}}", &d), "n=0.5");
        assert_eq!(render_text("[{{1.nothing}}]", &d), "[]");
        assert_eq!(render_text("tags: {{1.customer.tags}}", &d), "tags: a, b");
        assert_eq!(render_text("{{2.id}}-{{1.count}}", &d), "7-4");
        assert_eq!(render_text(" {{1.count}}", &d), " 4");
        assert_eq!(
            render_text("Hi {{capitalize 1.name}}, welcome!", &d),
            "Hi Ada, welcome!"
        );
        assert_eq!(
            render_text("{{upper (substring 1.name 0 1)}}{{substring 1.name 1}}", &d),
            "Ada"
        );
    }

    #[test]
    fn block_helpers_render_through_handlebars() {
        let d = sample();
        assert_eq!(
            render_text("{{#if 1.vip}}VIP {{1.company}}{{else}}std{{/if}}", &d),
            "VIP Smith & Sons"
        );
        assert_eq!(
            render_text("{{#if 1.nothing}}yes{{else}}no{{/if}}", &d),
            "no"
        );
        assert_eq!(
            render_text("{{#unless 1.vip}}x{{else}}y{{/unless}}", &d),
            "y"
        );
        assert_eq!(
            render_text(
                "{{#each 1.items}}{{@index}}:{{sku}}x{{qty}}@{{@root.2.id}}/{{../1.ratio}};{{/each}}",
                &d
            ),
            "0:A1x2@7/4;1:B2x1@7/4;"
        );
        assert_eq!(
            render_text(
                "{{#each 1.items as |item|}}{{upper item.sku}} {{/each}}",
                &d
            ),
            "A1 B2 "
        );
        assert_eq!(
            render_text("{{#with 1.customer}}{{phone_number}} {{tags}}{{/with}}", &d),
            "+15550100 a, b"
        );
        assert_eq!(
            render_text("{{#each 1.missing}}x{{else}}none{{/each}}", &d),
            "none"
        );
        assert_eq!(
            render_text("{{#if (gt 1.count 3)}}{{add 1.count 1}}{{/if}}", &d),
            "5"
        );
        assert_eq!(
            render_text("{{#if 1.nothing}}a{{else if 1.vip}}b{{else}}c{{/if}}", &d),
            "b"
        );
        assert_eq!(render_text("{{#if 1.half}}{{1.half}}{{/if}}", &d), "0.5");
        assert_eq!(
            render_text(
                "{{#each 1.items}}{{if (eq qty 2) \"two\" \"other\"}} {{/each}}",
                &d
            ),
            "two other "
        );
        assert_eq!(
            render_text("{{{{raw}}}}{{1.name}}{{{{/raw}}}}", &d),
            "{{1.name}}"
        );
        let err = render_err("{{#if 1.vip}}{{div 1 0}}{{/if}}", &d);
        assert!(err.contains("division by zero"), "{err}");
    }

    #[test]
    fn conditionals_render_directly() {
        let d = sample();
        let mut t = Templates::new();
        let tpl = t
            .compile("{{#if 1.items.x}}a{{else if 1.vip}}{{#unless 1.nothing}}b{{/unless}}{{else}}c{{/if}}")
            .unwrap();
        assert!(matches!(tpl.plan, Plan::Parts(_)), "{:?}", tpl.plan);
        assert_eq!(t.render(&tpl, &scope_of(&d)).unwrap(), json!("b"));
        let zero = json!({"1": {"zero": 0}});
        assert_eq!(
            render_text("{{#if 1.zero includeZero=true}}z{{/if}}", &zero),
            "z"
        );
        assert_eq!(
            render_text("{{#if 1.zero}}z{{else}}none{{/if}}", &zero),
            "none"
        );
        assert!(load_err("{{#if 1.a includeZero=1.b}}x{{/if}}").contains("includeZero=true"));
        // Inside `each` (rendered by handlebars) `if` still works as a block.
        let tpl = t
            .compile("{{#each 1.items}}{{#if (eq qty 2)}}two{{else}}{{qty}}{{/if}},{{/each}}")
            .unwrap();
        assert!(matches!(tpl.plan, Plan::Handlebars(_)));
        assert_eq!(t.render(&tpl, &scope_of(&d)).unwrap(), json!("two,1,"));
    }

    #[test]
    fn references_are_collected_everywhere() {
        assert_eq!(
            refs("{{1.customer.phone_number}}"),
            vec![r("1", "1.customer.phone_number")]
        );
        assert_eq!(
            refs("Hi {{upper (substring 2.name 0 (add 3.n 1))}} {{1.a}} {{1.a}}"),
            vec![r("2", "2.name"), r("3", "3.n"), r("1", "1.a")]
        );
        assert_eq!(
            refs("{{#if 4.ok}}{{5.x}}{{else}}{{6.y}}{{/if}}"),
            vec![r("4", "4.ok"), r("5", "5.x"), r("6", "6.y")]
        );
        assert_eq!(
            refs("{{#each 1.items}}{{sku}}{{this.qty}}{{@index}}{{@root.2.id}}{{../3.z}}{{lookup ../4.map sku}}{{/each}}"),
            vec![r("1", "1.items"), r("2", "@root.2.id"), r("3", "../3.z"), r("4", "../4.map")]
        );
        assert_eq!(
            refs("{{#each 1.items as |item i|}}{{item.sku}}{{i}}{{#with item}}{{../../2.x}}{{../y}}{{/with}}{{/each}}"),
            vec![r("1", "1.items"), r("2", "../../2.x")]
        );
        assert_eq!(
            refs("{{#with 1.customer}}{{phone_number}}{{else}}{{2.fallback}}{{/with}}"),
            vec![r("1", "1.customer"), r("2", "2.fallback")]
        );
        assert_eq!(refs("{{error.message}}"), vec![r("error", "error.message")]);
        assert_eq!(refs("{{this.1.a}}"), vec![r("1", "this.1.a")]);
        assert!(refs("{{add 1 2}} {{upper \"x\"}} {{now}} {{formatDate now \"YYYY\"}} {{if true null false}}").is_empty());
    }

    #[test]
    fn unknown_helpers_suggest() {
        let mut t = Templates::new();
        match t.compile("{{uper 1.name}}").unwrap_err() {
            TemplateError::UnknownHelper { name, suggestion } => {
                assert_eq!(name, "uper");
                assert_eq!(suggestion.as_deref(), Some("upper"));
            }
            other => panic!("{other:?}"),
        }
        let err = t.compile("{{formatdate 1.d \"YYYY\"}}").unwrap_err();
        assert_eq!(err.to_string(), "unknown helper `formatdate`");
        assert_eq!(err.help().as_deref(), Some("did you mean `formatDate`?"));
        let help = |s: &str| Templates::new().compile(s).unwrap_err().help();
        assert_eq!(
            help("{{add 1 (lenght 1.x)}}").as_deref(),
            Some("did you mean `length`?")
        );
        assert_eq!(
            help("{{#iff 1.x}}y{{/iff}}").as_deref(),
            Some("did you mean `if`?")
        );
        assert_eq!(help("{{frobnicate 1.x}}"), None);
        assert_eq!(
            load_err("{{frobnicate 1.x}}"),
            "unknown helper `frobnicate`"
        );
    }

    #[test]
    fn bad_arguments_are_load_errors() {
        assert_eq!(
            load_err("{{upper 1.a 1.b}}"),
            "`upper` takes 1 argument (`upper text`), got 2"
        );
        assert!(load_err("{{upper}}").contains("takes 1 argument"));
        assert!(load_err("{{upper x=1.a}}").contains("takes no named arguments"));
        assert!(load_err("{{#upper 1.a}}x{{/upper}}").contains("is not a block helper"));
        assert!(load_err("{{each 1.a}}").contains("is a block helper"));
        assert!(load_err("{{#each}}x{{/each}}").contains("`#each` takes 1 argument"));
        assert!(load_err("{{#if 1.a x=1}}x{{/if}}").contains("no named argument `x=`"));
        assert!(load_err("{{upper (1.name)}}").contains("without them"));
        assert!(load_err("{{> partial}}").contains("partials"));
        assert!(Templates::new()
            .compile("{{#if 1.a includeZero=true}}x{{/if}}")
            .is_ok());
    }

    #[test]
    fn syntax_errors() {
        let mut t = Templates::new();
        let err = t.compile("Hi {{1.name").unwrap_err();
        assert!(matches!(err, TemplateError::Syntax { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("invalid template syntax"),
            "{err}"
        );
        let err = t.compile("{{#if 1.a}}x{{/each}}").unwrap_err();
        assert!(matches!(err, TemplateError::Syntax { .. }), "{err:?}");
    }

    #[test]
    fn value_templates() {
        let mut t = Templates::new();
        let vt = t
            .compile_value(&json!({
                "phone": "{{1.customer.phone_number}}",
                "count": 3,
                "tags": ["welcome", "{{1.customer.tags}}"],
                "note": "for {{upper 1.name}}",
                "flag": null
            }))
            .unwrap();
        assert!(!vt.is_static());
        let refs: Vec<_> = vt.references().iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            refs,
            ["1.customer.phone_number", "1.customer.tags", "1.name"]
        );
        let out = t.render_value(&vt, &scope_of(&sample())).unwrap();
        assert_eq!(
            out,
            json!({
                "phone": "+15550100",
                "count": 3,
                "tags": ["welcome", ["a", "b"]],
                "note": "for ADA",
                "flag": null
            })
        );
        assert!(t
            .compile_value(&json!(["a", 1, {"b": true}]))
            .unwrap()
            .is_static());
        assert!(t.compile_value(&json!({"x": "{{nope 1}}"})).is_err());
    }

    #[test]
    fn templates_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Templates>();
        check::<Template>();
        check::<Scope>();
    }

    /// Not an assertion on time: prints what a render costs.
    #[test]
    fn timing() {
        let mut t = Templates::new();
        let sources = [
            "{{1.customer.phone_number}}",
            "{{1.items}}",
            "Hi {{capitalize 1.name}}, welcome!",
            "{{add 1.count 2}}",
            "{{2.id}}",
            "order {{2.id}} for {{1.name}} ({{1.count}} items)",
            "{{formatDate \"2024-05-01T09:30:00Z\" \"YYYY-MM-DD\"}}",
            "{{#if 1.vip}}VIP{{else}}std{{/if}}",
            "{{#each 1.items}}{{sku}} {{/each}}",
        ];
        let mut scope = Scope::new();
        for (k, v) in sample().as_object().unwrap() {
            scope.set(k, v.clone());
        }
        for i in 3..=10 {
            scope.set(
                &i.to_string(),
                json!({"id": i, "name": "x", "tags": ["a", "b"]}),
            );
        }
        let compiled: Vec<_> = sources.iter().map(|s| t.compile(s).unwrap()).collect();
        let iterations = 20_000u32;
        for tpl in &compiled {
            let start = std::time::Instant::now();
            for _ in 0..iterations {
                std::hint::black_box(t.render(tpl, &scope).unwrap());
            }
            let ns = start.elapsed().as_nanos() / u128::from(iterations);
            println!("{ns:>6} ns/render  {}", tpl.source());
        }
        // A 25-render mix: 15 single paths, 6 texts, 3 helpers, 1 block.
        let mix: Vec<&Template> = std::iter::repeat_n(&compiled[0], 15)
            .chain(std::iter::repeat_n(&compiled[5], 6))
            .chain(std::iter::repeat_n(&compiled[3], 3))
            .chain(std::iter::once(&compiled[7]))
            .collect();
        let start = std::time::Instant::now();
        for _ in 0..2_000 {
            for tpl in &mix {
                std::hint::black_box(t.render(tpl, &scope).unwrap());
            }
        }
        println!(
            "{:>6} ns per 25-render mix",
            start.elapsed().as_nanos() / 2_000
        );
    }
}
