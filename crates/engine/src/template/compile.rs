//! Compiling a template: parse with handlebars, check every helper call, collect every
//! module reference, and choose how it will render.
//!
//! - No `{{` → the text itself.
//! - Text, comments, `{{expressions}}` and `{{#if}}`/`{{#unless}}` blocks (with `{{else}}`
//!   and `{{else if}}` chains) → compiled to [`Expr`]s and [`Part`]s and evaluated
//!   directly ([`super::eval`]), without handlebars.
//! - `{{#each}}`, `{{#with}}` or raw blocks anywhere → registered once with handlebars and
//!   rendered by it, with the same helpers. Before registering, every `{{path}}` is
//!   rewritten to `{{toString path}}`, so values print as in the direct path (`4`, not
//!   `4.0`; arrays joined with `, `). One difference remains: inside those templates a
//!   non-numeric step into an array (`{{1.list.name}}`) is a render error, where the
//!   direct path gives `null`.
//!
//! # References
//!
//! Every path that resolves from the scope root is a [`Reference`]: paths in
//! expressions, helper arguments, subexpressions and block helper arguments, at any depth.
//! Inside `{{#each}}` and `{{#with}}` the context is the element (or object), so plain
//! paths there (`sku`, `this.sku`, `@index`, a block parameter such as `item.sku`) are not
//! module references and are not collected. To reach a module from inside such a block,
//! write `@root.1.name` or climb out with `../1.name`; those are collected (with `root`
//! `1` and `path` as written). Literals are never references, and neither is `now`
//! written as a bare name (it is the helper).

use std::collections::HashMap;

use handlebars::template::{
    BlockParam, HelperTemplate, Parameter, Subexpression, Template as HbsTemplate, TemplateElement,
};
use handlebars::{Path, PathSeg};
use serde_json::Value;

use super::eval::{Expr, Part, Segment};
use super::helpers::{self, HelperSpec, BLOCK_HELPERS, CONTEXT_HELPERS};
use super::{Reference, TemplateError};
use crate::suggest::did_you_mean;

/// How a template renders.
#[derive(Clone, Debug)]
pub(crate) enum Plan {
    /// No expressions: this text.
    Static(String),
    /// Exactly one expression: its JSON value.
    Single(Expr),
    /// Text, expressions and `{{#if}}`/`{{#unless}}` blocks: their concatenated text.
    Parts(Vec<Part>),
    /// Context blocks (`each`, `with`, raw): the name under which handlebars holds it.
    Handlebars(String),
}

/// A compiled template before it gets its registry name.
pub(crate) struct Compiled {
    pub plan: Option<Plan>,
    /// Set when handlebars must render it: the rewritten template.
    pub handlebars: Option<HbsTemplate>,
    pub references: Vec<Reference>,
}

/// The column (1-based) of the first `{{` with no `}}` after it.
fn unclosed_braces(source: &str) -> Option<usize> {
    let mut rest = source;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                offset += open + 2 + close + 2;
                rest = &after[close + 2..];
            }
            None => return Some(source[..offset + open].chars().count() + 1),
        }
    }
    None
}

/// Where in the block structure an element sits.
#[derive(Clone, Debug, Default)]
struct Frame {
    /// How many context-changing blocks (`each`, `with`) enclose it.
    depth: usize,
    /// Block parameters in scope (`as |item index|`).
    params: Vec<String>,
}

/// Compiles a template source (which contains `{{`).
pub(crate) fn compile(source: &str) -> Result<Compiled, TemplateError> {
    if let Some(column) = unclosed_braces(source) {
        return Err(TemplateError::Syntax {
            message: "`{{` is not closed by `}}`".to_owned(),
            line: Some(1),
            column: Some(column),
        });
    }
    let tpl = HbsTemplate::compile(source).map_err(|e| {
        let (line, column) = e.pos().unzip();
        TemplateError::Syntax {
            message: e.reason().to_string(),
            line,
            column,
        }
    })?;
    let mut walker = Walker::default();
    let parts = walker.elements(&tpl, &Frame::default())?;
    if walker.needs_handlebars {
        let mut tpl = tpl;
        rewrite_template(&mut tpl);
        return Ok(Compiled {
            plan: None,
            handlebars: Some(tpl),
            references: walker.refs,
        });
    }
    let plan = match parts.as_slice() {
        [] => Plan::Static(String::new()),
        [Part::Text(t)] => Plan::Static(t.clone()),
        [Part::Expr(e)] => Plan::Single(e.clone()),
        _ => Plan::Parts(parts),
    };
    Ok(Compiled {
        plan: Some(plan),
        handlebars: None,
        references: walker.refs,
    })
}

/// Appends a part, merging adjacent text.
fn push(parts: &mut Vec<Part>, part: Part) {
    match (parts.last_mut(), part) {
        (Some(Part::Text(prev)), Part::Text(t)) => prev.push_str(&t),
        (_, part) => parts.push(part),
    }
}

fn unknown_helper(name: &str) -> TemplateError {
    TemplateError::UnknownHelper {
        name: name.to_owned(),
        suggestion: did_you_mean(name, helpers::known_names()).map(str::to_owned),
    }
}

fn bad(helper: &str, message: impl Into<String>) -> TemplateError {
    TemplateError::BadArguments {
        helper: helper.to_owned(),
        message: message.into(),
    }
}

/// The text a path was written as.
fn raw(path: &Path) -> &str {
    match path {
        Path::Relative((_, raw)) | Path::Local((_, _, raw)) => raw,
    }
}

/// A helper that takes no arguments, written as a bare name (`now`).
fn bare_helper(path: &Path) -> Option<&'static HelperSpec> {
    helpers::find(raw(path)).filter(|h| h.params.iter().all(|p| p.optional))
}

/// The name a helper is called by, if it is a plain name.
fn helper_name(name: &Parameter) -> Option<&str> {
    match name {
        Parameter::Name(n) => Some(n),
        Parameter::Path(p) => Some(raw(p)),
        _ => None,
    }
}

#[derive(Default)]
struct Walker {
    refs: Vec<Reference>,
    /// Set by blocks the direct evaluator does not handle (`each`, `with`, raw).
    needs_handlebars: bool,
}

impl Walker {
    fn elements(&mut self, tpl: &HbsTemplate, frame: &Frame) -> Result<Vec<Part>, TemplateError> {
        let mut parts = Vec::with_capacity(tpl.elements.len());
        for element in &tpl.elements {
            match element {
                TemplateElement::RawString(text) => push(&mut parts, Part::Text(text.clone())),
                TemplateElement::Comment(_) => {}
                TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
                    parts.push(Part::Expr(self.expression(ht, frame)?));
                }
                TemplateElement::HelperBlock(ht) => {
                    if let Some(part) = self.block(ht, frame)? {
                        parts.push(part);
                    }
                }
                TemplateElement::PartialExpression(_) | TemplateElement::PartialBlock(_) => {
                    return Err(TemplateError::Unsupported {
                        what: "partials (`{{> name}}`)",
                    })
                }
                _ => {
                    return Err(TemplateError::Unsupported {
                        what: "decorators (`{{* name}}`)",
                    })
                }
            }
        }
        Ok(parts)
    }

    /// `{{…}}` or a subexpression `(…)`.
    fn expression(&mut self, ht: &HelperTemplate, frame: &Frame) -> Result<Expr, TemplateError> {
        if ht.params.is_empty() && ht.hash.is_empty() {
            match &ht.name {
                Parameter::Path(path) if helpers::find(raw(path)).is_none() => {
                    let name = raw(path);
                    if BLOCK_HELPERS.contains(&name) {
                        return Err(bad(
                            name,
                            format!("is a block helper; write `{{{{#{name} …}}}}…{{{{/{name}}}}}`"),
                        ));
                    }
                    return Ok(self.path(path, frame));
                }
                Parameter::Subexpression(_) | Parameter::Literal(_) => {
                    return self.param(&ht.name, frame);
                }
                _ => {}
            }
        }
        let Some(name) = helper_name(&ht.name) else {
            return Err(TemplateError::Unsupported {
                what: "computed helper names",
            });
        };
        self.call(name, &ht.params, &ht.hash, frame)
    }

    fn call(
        &mut self,
        name: &str,
        params: &[Parameter],
        hash: &HashMap<String, Parameter>,
        frame: &Frame,
    ) -> Result<Expr, TemplateError> {
        let Some(helper) = helpers::find(name) else {
            if BLOCK_HELPERS.contains(&name) {
                return Err(bad(
                    name,
                    format!("is a block helper; write `{{{{#{name} …}}}}…{{{{/{name}}}}}`"),
                ));
            }
            return Err(unknown_helper(name));
        };
        if let Some(key) = hash.keys().next() {
            return Err(bad(
                name,
                format!(
                    "takes no named arguments, got `{key}=` (`{}`)",
                    helper.usage()
                ),
            ));
        }
        let args = params
            .iter()
            .map(|p| self.param(p, frame))
            .collect::<Result<Vec<_>, _>>()?;
        let literals: Vec<Option<&Value>> = args
            .iter()
            .map(|a| match a {
                Expr::Literal(v) => Some(v),
                _ => None,
            })
            .collect();
        helper.check(&literals).map_err(|m| bad(name, m))?;
        Ok(Expr::Call { helper, args })
    }

    fn param(&mut self, p: &Parameter, frame: &Frame) -> Result<Expr, TemplateError> {
        match p {
            Parameter::Literal(v) => Ok(Expr::Literal(v.clone())),
            Parameter::Path(path) => match bare_helper(path) {
                Some(helper) => Ok(Expr::Call {
                    helper,
                    args: Vec::new(),
                }),
                None => Ok(self.path(path, frame)),
            },
            Parameter::Subexpression(sub) => match sub.as_element() {
                TemplateElement::Expression(ht) => {
                    if let (true, Parameter::Path(path)) =
                        (ht.params.is_empty() && ht.hash.is_empty(), &ht.name)
                    {
                        if helpers::find(raw(path)).is_none() {
                            let name = raw(path);
                            return Err(bad(
                                name,
                                format!(
                                    "is not a helper; parentheses call a helper, so write the path `{name}` without them"
                                ),
                            ));
                        }
                    }
                    self.expression(ht, frame)
                }
                _ => Err(TemplateError::Unsupported {
                    what: "this kind of subexpression",
                }),
            },
            Parameter::Name(n) => Err(TemplateError::Syntax {
                message: format!("unexpected name `{n}`"),
                line: None,
                column: None,
            }),
            _ => Err(TemplateError::Unsupported {
                what: "this kind of argument",
            }),
        }
    }

    /// A path: records it when it reads from the root, and compiles it as such.
    fn path(&mut self, path: &Path, frame: &Frame) -> Expr {
        let Path::Relative((segs, raw)) = path else {
            // `@index`, `@key`, …: only meaningful inside blocks.
            return Expr::Literal(Value::Null);
        };
        let names: Vec<&str> = segs
            .iter()
            .filter_map(|s| match s {
                PathSeg::Named(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        if let Some(reference) = reference(raw, &names, frame) {
            if !self.refs.contains(&reference) {
                self.refs.push(reference);
            }
        }
        Expr::Path(names.into_iter().map(Segment::new).collect())
    }

    /// `{{#name params}}…{{else}}…{{/name}}`: a [`Part::Cond`] for `if`/`unless`, `None`
    /// (and handlebars renders the template) for the others.
    fn block(&mut self, ht: &HelperTemplate, frame: &Frame) -> Result<Option<Part>, TemplateError> {
        let Some(name) = helper_name(&ht.name) else {
            return Err(TemplateError::Unsupported {
                what: "computed helper names",
            });
        };
        if !BLOCK_HELPERS.contains(&name) {
            if helpers::find(name).is_some() {
                return Err(bad(
                    name,
                    format!("is not a block helper; write `{{{{{name} …}}}}`"),
                ));
            }
            return Err(unknown_helper(name));
        }
        let wanted = usize::from(name != "raw");
        if ht.params.len() != wanted {
            let what = if wanted == 1 {
                "1 argument"
            } else {
                "no arguments"
            };
            return Err(bad(
                &format!("#{name}"),
                format!("takes {what}, got {}", ht.params.len()),
            ));
        }
        let conditional = matches!(name, "if" | "unless");
        let mut include_zero = false;
        for (key, value) in &ht.hash {
            if !(conditional && key == "includeZero") {
                return Err(bad(
                    &format!("#{name}"),
                    format!("takes no named argument `{key}=`"),
                ));
            }
            match value {
                Parameter::Literal(Value::Bool(b)) => include_zero = *b,
                _ => {
                    return Err(bad(
                        &format!("#{name}"),
                        "takes `includeZero=true` or `includeZero=false`",
                    ))
                }
            }
        }
        let mut args = ht
            .params
            .iter()
            .map(|p| self.param(p, frame))
            .collect::<Result<Vec<_>, _>>()?;
        let inner = if CONTEXT_HELPERS.contains(&name) {
            let mut params = frame.params.clone();
            match &ht.block_param {
                Some(BlockParam::Single(p)) => params.extend(helper_name(p).map(str::to_owned)),
                Some(BlockParam::Pair((a, b))) => {
                    params.extend(helper_name(a).map(str::to_owned));
                    params.extend(helper_name(b).map(str::to_owned));
                }
                _ => {}
            }
            Frame {
                depth: frame.depth + 1,
                params,
            }
        } else {
            frame.clone()
        };
        let then = match &ht.template {
            Some(t) => self.elements(t, &inner)?,
            None => Vec::new(),
        };
        // `{{else}}` renders in the outer context.
        let otherwise = match &ht.inverse {
            Some(t) => self.elements(t, frame)?,
            None => Vec::new(),
        };
        if !conditional {
            self.needs_handlebars = true;
            return Ok(None);
        }
        Ok(args.pop().map(|cond| Part::Cond {
            cond,
            include_zero,
            negate: name == "unless",
            then,
            otherwise,
        }))
    }
}

/// The module reference a path makes, if it reads from the scope root.
fn reference(raw: &str, names: &[&str], frame: &Frame) -> Option<Reference> {
    let first = *names.first()?;
    let mut rest = raw;
    for prefix in ["this.", "this/", "./"] {
        if let Some(r) = rest.strip_prefix(prefix) {
            rest = r;
            break;
        }
    }
    let from_root = rest.starts_with("@root");
    let mut ups = 0;
    while let Some(r) = rest
        .strip_prefix("../")
        .or_else(|| rest.strip_prefix("..."))
    {
        ups += 1;
        rest = r;
    }
    if !from_root && frame.params.iter().any(|p| p == first) {
        return None;
    }
    if from_root || ups >= frame.depth {
        Some(Reference {
            root: first.to_owned(),
            path: raw.to_owned(),
        })
    } else {
        None
    }
}

/// Prepares a template for handlebars: `{{path}}` → `{{toString path}}` and bare `now`
/// arguments → `(now)`, so it renders exactly as the direct evaluator would.
fn rewrite_template(tpl: &mut HbsTemplate) {
    for element in &mut tpl.elements {
        match element {
            TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
                rewrite_expression(ht);
            }
            TemplateElement::HelperBlock(ht) => {
                rewrite_arguments(ht);
                if let Some(t) = &mut ht.template {
                    rewrite_template(t);
                }
                if let Some(t) = &mut ht.inverse {
                    rewrite_template(t);
                }
            }
            _ => {}
        }
    }
}

fn rewrite_expression(ht: &mut HelperTemplate) {
    if ht.params.is_empty() && ht.hash.is_empty() {
        if let Parameter::Path(path) = &ht.name {
            if helpers::find(raw(path)).is_none() {
                let value = std::mem::replace(&mut ht.name, Parameter::Name("toString".to_owned()));
                ht.params.push(value);
                return;
            }
        }
    }
    if let Parameter::Subexpression(_) = ht.name {
        rewrite_parameter(&mut ht.name);
    }
    rewrite_arguments(ht);
}

fn rewrite_arguments(ht: &mut HelperTemplate) {
    for p in &mut ht.params {
        rewrite_parameter(p);
    }
    for p in ht.hash.values_mut() {
        rewrite_parameter(p);
    }
}

fn rewrite_parameter(p: &mut Parameter) {
    match p {
        Parameter::Path(path) => {
            if let Some(helper) = bare_helper(path) {
                *p = Parameter::Subexpression(Subexpression::new(
                    Parameter::Name(helper.name.to_owned()),
                    Vec::new(),
                    HashMap::new(),
                ));
            }
        }
        Parameter::Subexpression(sub) => {
            if let TemplateElement::Expression(ht) = sub.element.as_mut() {
                rewrite_arguments(ht);
            }
        }
        _ => {}
    }
}
