//! Reading a scenario file: YAML with positions, `${VAR}` interpolation, the serde model.

pub mod duration;
pub mod model;
pub mod yaml;

use serde_json::Value;

use crate::diagnostic::{LoadError, Reporter};
pub use model::{Directive, ModuleDef, OnErrorDef, RouteDef, ScenarioFile, Settings};
use yaml::Spans;

/// A scenario file read and shaped, not yet validated against the registry.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The file name as given (for diagnostics).
    pub file: String,
    /// The source text.
    pub source: String,
    /// The typed model.
    pub model: ScenarioFile,
    /// Positions of every key and value.
    pub spans: Spans,
    /// Values read from the environment into `connections:`; redacted everywhere (values
    /// shorter than 4 characters are not: redacting them would mangle ordinary text).
    pub secrets: Vec<String>,
    /// Paths of the values that came from `${VAR}` (`connections.sonar.token`).
    pub from_env: Vec<String>,
}

/// Reads the environment for `${VAR}` interpolation.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Parses scenario text: YAML, then `${VAR}` interpolation, then the model.
pub fn parse(file: &str, source: &str, env: EnvLookup<'_>) -> Result<Parsed, LoadError> {
    let mut rep = Reporter::new(file, source);
    let (mut value, spans) = match yaml::parse(source) {
        Ok(v) => v,
        Err(e) => {
            let d = rep
                .at(e.pos, format!("invalid YAML: {}", e.message))
                .help("fix the YAML syntax at this position (indentation, quotes, brackets)");
            return Err(LoadError::one(d));
        }
    };
    if !value.is_object() {
        let d = rep
            .at(spans.locate(""), "a scenario must be a YAML mapping")
            .help("start the file with `name:` and `flow:` keys");
        return Err(LoadError::one(d));
    }
    let mut found = Interpolated::default();
    interpolate(
        &mut value,
        &mut String::new(),
        env,
        &spans,
        &mut rep,
        &mut found,
    );
    for d in &mut rep.diagnostics {
        if let Some(field) = &d.field {
            d.module_id = module_at(&value, field);
        }
    }
    if !rep.diagnostics.is_empty() {
        return Err(rep.into_error());
    }
    let model: ScenarioFile = match serde_path_to_error::deserialize(&value) {
        Ok(m) => m,
        Err(e) => {
            let path = dotted(e.path());
            let inner = e.into_inner().to_string();
            let wrong_type =
                inner.starts_with("invalid type") || inner.starts_with("invalid value");
            let (message, help) = explain_serde(&inner);
            // A wrong value is pointed at itself; a wrong or missing key at the key.
            let pos = if wrong_type {
                spans.value(&path).unwrap_or_else(|| spans.locate(&path))
            } else {
                spans.locate(&path)
            };
            let mut d = rep.at(pos, message).maybe_help(help);
            if let Some(id) = module_at(&value, &path) {
                d = d.module(id);
            }
            let d = if path.is_empty() { d } else { d.field(path) };
            return Err(LoadError::one(d));
        }
    };
    Ok(Parsed {
        file: file.to_owned(),
        source: source.to_owned(),
        model,
        spans,
        secrets: found.secrets,
        from_env: found.paths,
    })
}

/// serde_path_to_error's path (`flow[1].map`) as our dotted path (`flow.1.map`).
fn dotted(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        let s = match seg {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } => key.clone(),
            Segment::Enum { variant } => variant.clone(),
            Segment::Unknown => continue,
        };
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&s);
    }
    out
}

/// Turns serde's wording into ours, with a fix.
fn explain_serde(msg: &str) -> (String, Option<String>) {
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let (field, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let field = field.trim_matches('`');
        let expected_list: Vec<&str> = expected
            .trim_start_matches("one of ")
            .split(", ")
            .map(|s| s.trim_matches('`'))
            .filter(|s| !s.is_empty())
            .collect();
        let help = match crate::suggest::did_you_mean(field, expected_list.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("expected one of: {}", expected_list.join(", ")),
        };
        return (format!("unknown field `{field}`"), Some(help));
    }
    if let Some(field) = msg.strip_prefix("missing field ") {
        let field = field.trim_matches('`');
        return (
            format!("missing field `{field}`"),
            Some(format!("add `{field}:` here")),
        );
    }
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        return (
            format!("wrong type: {}", plain_types(rest)),
            Some("change the value to the expected type".into()),
        );
    }
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        return (
            format!("unknown value {rest}"),
            Some("use one of the values listed".into()),
        );
    }
    (msg.to_owned(), None)
}

/// serde's type names in the words of a YAML user.
fn plain_types(text: &str) -> String {
    text.replace("expected u64", "expected a positive whole number")
        .replace("expected u32", "expected a positive whole number")
        .replace("expected i64", "expected a whole number")
        .replace("expected a sequence", "expected a list")
        .replace("expected a map", "expected a mapping")
        .replace("expected struct ", "expected a mapping: ")
        .replace("a sequence,", "a list,")
        .replace("invalid type: map", "a mapping")
        .replace("string ", "text ")
}

/// The id of the module whose entry contains `path` (`flow.2.routes.0.flow.1.map.x` → the
/// id at `flow.2.routes.0.flow.1.id`).
pub fn module_at(root: &Value, path: &str) -> Option<u32> {
    let segs: Vec<&str> = path.split('.').collect();
    let mut best = None;
    let mut node = root;
    for (i, seg) in segs.iter().enumerate() {
        node = match node {
            Value::Object(o) => o.get(*seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return best,
        };
        // A module entry is an element of a `flow` list.
        let in_flow = i >= 1 && segs[i - 1] == "flow";
        if in_flow {
            if let Some(id) = node.get("id").and_then(Value::as_u64) {
                best = u32::try_from(id).ok();
            }
        }
    }
    best
}

/// Shorter secret values are not redacted: replacing every `abc` in every record would
/// mangle ordinary text more than it protects.
pub const MIN_SECRET_LEN: usize = 4;

/// What interpolation read from the environment.
#[derive(Default)]
struct Interpolated {
    secrets: Vec<String>,
    paths: Vec<String>,
}

/// Replaces `${VAR}` in every string with the variable's value; `$${` stays a literal `${`.
fn interpolate(
    value: &mut Value,
    path: &mut String,
    env: EnvLookup<'_>,
    spans: &Spans,
    rep: &mut Reporter<'_>,
    found: &mut Interpolated,
) {
    match value {
        Value::String(s) if s.contains("${") => {
            let in_connections = path.starts_with("connections.");
            match expand(s, env) {
                Ok((text, values)) => {
                    if in_connections {
                        found.paths.push(path.clone());
                        found
                            .secrets
                            .extend(values.into_iter().filter(|v| v.len() >= 4));
                    }
                    *s = text;
                }
                Err(ExpandError::Missing(name)) => {
                    let d = rep
                        .at(
                            spans.value(path).unwrap_or_else(|| spans.locate(path)),
                            format!("environment variable `{name}` is not set"),
                        )
                        .field(path.clone())
                        .help(format!("set it before running: `export {name}=...`"));
                    rep.push(d);
                }
                Err(ExpandError::Unclosed) => {
                    let d = rep
                        .at(spans.locate(path), "`${` without a closing `}`")
                        .field(path.clone())
                        .help("write `${NAME}`, or `$${` for a literal `${`");
                    rep.push(d);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                push_seg(path, &i.to_string());
                interpolate(item, path, env, spans, rep, found);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let len = path.len();
                push_seg(path, k);
                interpolate(v, path, env, spans, rep, found);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn push_seg(path: &mut String, seg: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(seg);
}

enum ExpandError {
    Missing(String),
    Unclosed,
}

/// Expands `${VAR}`; returns the text and the values substituted.
fn expand(s: &str, env: EnvLookup<'_>) -> Result<(String, Vec<String>), ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut values = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or(ExpandError::Unclosed)?;
            let name = after[..end].trim();
            let value = env(name).ok_or_else(|| ExpandError::Missing(name.to_owned()))?;
            out.push_str(&value);
            values.push(value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok((out, values))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "SONAR_TOKEN").then(|| "secret-token-123".to_owned())
    }

    #[test]
    fn interpolates_and_collects_secrets() {
        let src = "name: x\nconnections:\n  sonar: { app: sonar, token: \"${SONAR_TOKEN}\" }\nflow:\n  - { id: 1, module: webhook.custom, params: { name: \"cost $${SONAR_TOKEN}\" } }\n";
        let p = parse("x.yaml", src, &env).unwrap();
        assert_eq!(p.secrets, vec!["secret-token-123".to_owned()]);
        assert_eq!(
            p.model.connections["sonar"]["token"],
            Value::String("secret-token-123".into())
        );
        assert_eq!(
            p.model.flow[0].params["name"],
            Value::String("cost ${SONAR_TOKEN}".into())
        );
    }

    #[test]
    fn missing_variable_names_it_and_its_line() {
        let src = "name: x\nconnections:\n  sonar:\n    app: sonar\n    token: ${NOPE}\nflow: []\n";
        let err = parse("x.yaml", src, &env).unwrap_err();
        let d = &err.diagnostics[0];
        assert_eq!(d.message, "environment variable `NOPE` is not set");
        assert_eq!((d.pos.line, d.pos.column), (5, 12));
        assert_eq!(
            d.help.as_deref(),
            Some("set it before running: `export NOPE=...`")
        );
    }

    #[test]
    fn unknown_field_points_at_the_key_with_suggestion() {
        let src = "name: x\nflow:\n  - id: 1\n    module: webhook.custom\n    parms: {}\n";
        let err = parse("x.yaml", src, &env).unwrap_err();
        let d = &err.diagnostics[0];
        assert_eq!(d.message, "unknown field `parms`");
        assert_eq!(d.pos.line, 5);
        assert_eq!(d.help.as_deref(), Some("did you mean `params`?"));
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let src = "name: x\nflow:\n  - id: one\n    module: webhook.custom\n";
        let err = parse("x.yaml", src, &env).unwrap_err();
        let d = &err.diagnostics[0];
        assert!(d.message.starts_with("wrong type"), "{}", d.message);
        assert_eq!(d.pos.line, 3);
        assert_eq!(d.field.as_deref(), Some("flow.0.id"));
    }
}
