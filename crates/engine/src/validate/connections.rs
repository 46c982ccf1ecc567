//! `connections:` — each names an app from the registry; its fields are checked against the
//! app's spec, secrets must come from the environment, and the app builds the handle.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::coerce::coerce;
use crate::diagnostic::Reporter;
use crate::registry::Registry;
use crate::scenario::yaml::Spans;
use crate::suggest::did_you_mean as suggest;

/// Fields forced on every connection of an app, by app name (e.g. `sonar` →
/// `{base_url: "http://127.0.0.1:4010/api"}` to point at the simulator).
pub type ConnectionOverrides = BTreeMap<String, Map<String, Value>>;

/// A built connection.
pub struct Connection {
    /// The app name.
    pub app: String,
    /// The app's handle (`None` if building it failed; the error is reported).
    pub handle: Option<Arc<dyn Any + Send + Sync>>,
}

pub(super) fn build(
    defs: &Map<String, Value>,
    registry: &Registry,
    overrides: &ConnectionOverrides,
    spans: &Spans,
    rep: &mut Reporter<'_>,
    from_env: &[String],
    secrets: &mut Vec<String>,
) -> BTreeMap<String, Connection> {
    let mut out = BTreeMap::new();
    for (name, def) in defs {
        let path = format!("connections.{name}");
        let Some(obj) = def.as_object() else {
            let d = rep
                .at(
                    spans.locate(&path),
                    format!("connection `{name}` must be a mapping"),
                )
                .field(path.clone())
                .help("write `{ app: sonar, token: ${SONAR_TOKEN} }`");
            rep.push(d);
            continue;
        };
        let Some(app_name) = obj.get("app").and_then(Value::as_str) else {
            let d = rep
                .at(
                    spans.locate(&path),
                    format!("connection `{name}` has no `app`"),
                )
                .field(format!("{path}.app"))
                .help("add `app: sonar` (run `weft modules` to see the apps)");
            rep.push(d);
            continue;
        };
        let Some(app) = registry.app(app_name) else {
            let help = match suggest(app_name, registry.apps().map(|a| a.name())) {
                Some(s) => format!("did you mean `{s}`?"),
                None => {
                    let names: Vec<String> =
                        registry.apps().map(|a| format!("`{}`", a.name())).collect();
                    format!("known apps: {}", names.join(", "))
                }
            };
            let d = rep
                .at(
                    spans
                        .value(&format!("{path}.app"))
                        .unwrap_or_else(|| spans.locate(&path)),
                    format!("unknown app `{app_name}`"),
                )
                .field(format!("{path}.app"))
                .help(help);
            rep.push(d);
            continue;
        };
        let mut fields = Map::new();
        let mut ok = true;
        for (key, value) in obj.iter().filter(|(k, _)| k.as_str() != "app") {
            let fpath = format!("{path}.{key}");
            let Some(spec) = app.fields().iter().find(|f| f.name == key) else {
                let help = match suggest(key, app.fields().iter().map(|f| f.name)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => {
                        let names: Vec<String> = app
                            .fields()
                            .iter()
                            .map(|f| format!("`{}`", f.name))
                            .collect();
                        format!("`{app_name}` connections take: {}", names.join(", "))
                    }
                };
                let d = rep
                    .at(
                        spans.locate(&fpath),
                        format!("unknown field `{key}` for a `{app_name}` connection"),
                    )
                    .field(fpath.clone())
                    .help(help);
                rep.push(d);
                ok = false;
                continue;
            };
            if app.secret_fields().contains(&key.as_str()) {
                let from_env = from_env.contains(&fpath);
                if !from_env {
                    let var = format!("{}_{}", name.to_uppercase(), key.to_uppercase());
                    let mut d = rep
                        .at(
                            spans.value(&fpath).unwrap_or_else(|| spans.locate(&fpath)),
                            format!("`{key}` is a secret and must not be written in the scenario"),
                        )
                        .field(fpath.clone())
                        .help(format!("read it from the environment: `{key}: ${{{var}}}`"));
                    // The excerpt must not print the secret back.
                    let written = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    if !written.is_empty() {
                        d.source_line = d.source_line.map(|l| l.replace(&written, "***"));
                    }
                    rep.push(d);
                    ok = false;
                    continue;
                }
            }
            match coerce(value.clone(), spec.ty) {
                Ok(v) => {
                    fields.insert(key.clone(), v);
                }
                Err(e) => {
                    let d = rep
                        .at(
                            spans.value(&fpath).unwrap_or_else(|| spans.locate(&fpath)),
                            format!("`{key}` must be a {}: {}", spec.ty, e.reason),
                        )
                        .field(fpath.clone())
                        .help(if spec.example.is_empty() {
                            spec.help.to_owned()
                        } else {
                            format!("for example `{key}: {}`", spec.example)
                        });
                    rep.push(d);
                    ok = false;
                }
            }
        }
        if let Some(forced) = overrides.get(app_name) {
            for (k, v) in forced {
                fields.insert(k.clone(), v.clone());
            }
        }
        for f in app.fields().iter().filter(|f| f.required) {
            // A field given but refused above is already reported.
            if !fields.contains_key(f.name) && !obj.contains_key(f.name) {
                let d = rep
                    .at(
                        spans.locate(&path),
                        format!("connection `{name}` is missing `{}`", f.name),
                    )
                    .field(format!("{path}.{}", f.name))
                    .help(format!("add `{}: {}`", f.name, f.example));
                rep.push(d);
                ok = false;
            }
        }
        for secret in app.secret_fields() {
            if let Some(Value::String(s)) = fields.get(*secret) {
                if s.len() >= crate::scenario::MIN_SECRET_LEN {
                    secrets.push(s.clone());
                }
            }
        }
        let handle = if ok {
            match app.connect(&fields) {
                Ok(h) => Some(h),
                Err(message) => {
                    let d = rep
                        .at(
                            spans.locate(&path),
                            format!("connection `{name}`: {message}"),
                        )
                        .field(path.clone())
                        .help("fix the connection's fields");
                    rep.push(d);
                    None
                }
            }
        } else {
            None
        };
        out.insert(
            name.clone(),
            Connection {
                app: app_name.to_owned(),
                handle,
            },
        );
    }
    out
}
