//! YAML text → JSON value plus a span index, so every later error can point at a line.
//!
//! We read YAML with yaml-rust2's event parser (see `docs/decisions/0002-yaml-parser.md`):
//! its events carry positions, which serde_yaml does not expose for values.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

/// A position in the source, both 1-based.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// Positions of the values and mapping keys of a document, by path.
///
/// A path is the keys and indexes from the root joined by `.`: `flow.1.map.text`.
#[derive(Debug, Default, Clone)]
pub struct Spans {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl Spans {
    /// Where the value at `path` starts.
    pub fn value(&self, path: &str) -> Option<Pos> {
        self.values.get(path).copied()
    }
    /// Where the key of the entry at `path` starts (falls back to its value).
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.keys.get(path).copied().or_else(|| self.value(path))
    }
    /// The best position for `path`: its key, else the nearest enclosing path that has one.
    pub fn locate(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.key(p) {
                return pos;
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return self.value("").unwrap_or(Pos { line: 1, column: 1 }),
            }
        }
    }
}

/// The YAML could not be parsed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// What is wrong.
    pub message: String,
    /// Where.
    pub pos: Pos,
}

/// Parses one YAML document into a JSON value and the span index of its nodes.
pub fn parse(source: &str) -> Result<(Value, Spans), YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(source);
    parser.load(&mut builder, false).map_err(|e| YamlError {
        message: e.info().to_owned(),
        pos: (*e.marker()).into(),
    })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    let root = builder.root.unwrap_or(Value::Null);
    Ok((root, builder.spans))
}

enum Frame {
    Seq {
        path: String,
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        path: String,
        entries: Map<String, Value>,
        pending_key: Option<String>,
        anchor: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    spans: Spans,
    anchors: HashMap<usize, Value>,
    error: Option<YamlError>,
}

fn child_path(parent: &str, seg: &str) -> String {
    if parent.is_empty() {
        seg.to_owned()
    } else {
        format!("{parent}.{seg}")
    }
}

impl Builder {
    /// The path of the node that starts now, or `None` if it is a mapping key.
    fn next_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Seq { path, items, .. }) => {
                Some(child_path(path, &items.len().to_string()))
            }
            Some(Frame::Map {
                path, pending_key, ..
            }) => pending_key.as_ref().map(|k| child_path(path, k)),
        }
    }

    fn fail(&mut self, message: String, pos: Pos) {
        if self.error.is_none() {
            self.error = Some(YamlError { message, pos });
        }
    }

    /// Places a finished value into its parent.
    fn push(&mut self, value: Value, pos: Pos) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                path,
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                Some(key) => {
                    entries.insert(key, value);
                }
                None => {
                    let key = match value {
                        Value::String(s) => s,
                        Value::Null => "null".to_owned(),
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        _ => {
                            let msg = "a mapping key must be a plain value".to_owned();
                            self.fail(msg, pos);
                            return;
                        }
                    };
                    let full = child_path(path, &key);
                    if entries.contains_key(&key) {
                        let msg = format!("duplicate key `{key}`");
                        self.fail(msg, pos);
                        return;
                    }
                    self.spans.keys.insert(full, pos);
                    *pending_key = Some(key);
                }
            },
        }
    }
}

fn scalar(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match Yaml::from_str(&text) {
        Yaml::Integer(i) => Value::Number(i.into()),
        Yaml::Real(r) => match r.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Value::Number(n),
            None => Value::String(text),
        },
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Null => Value::Null,
        _ => Value::String(text),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = Pos::from(mark);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let value = scalar(text, style);
                if let Some(path) = self.next_path() {
                    self.spans.values.insert(path, pos);
                }
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                self.push(value, pos);
            }
            Event::Alias(anchor) => {
                let value = self.anchors.get(&anchor).cloned().unwrap_or(Value::Null);
                if let Some(path) = self.next_path() {
                    self.spans.values.insert(path, pos);
                }
                self.push(value, pos);
            }
            Event::SequenceStart(anchor, _) => {
                let Some(path) = self.next_path() else {
                    self.fail("a mapping key must be a plain value".into(), pos);
                    return;
                };
                self.spans.values.insert(path.clone(), pos);
                self.stack.push(Frame::Seq {
                    path,
                    items: Vec::new(),
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => {
                let Some(path) = self.next_path() else {
                    self.fail("a mapping key must be a plain value".into(), pos);
                    return;
                };
                self.spans.values.insert(path.clone(), pos);
                self.stack.push(Frame::Map {
                    path,
                    entries: Map::new(),
                    pending_key: None,
                    anchor,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { items, anchor, .. }) => (Value::Array(items), anchor),
                    Some(Frame::Map {
                        entries, anchor, ..
                    }) => (Value::Object(entries), anchor),
                    None => return,
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                self.push(value, pos);
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_values_with_types() {
        let (v, _) = parse("a: 1\nb: true\nc: \"true\"\nd: [x, 2.5, null]\ne: {f: g}\n").unwrap();
        assert_eq!(
            v,
            json!({"a": 1, "b": true, "c": "true", "d": ["x", 2.5, null], "e": {"f": "g"}})
        );
    }

    #[test]
    fn records_positions_of_keys_and_values() {
        let src = "name: x\nflow:\n  - id: 1\n    module: webhook.custom\n";
        let (_, spans) = parse(src).unwrap();
        assert_eq!(spans.key("flow.0.module"), Some(Pos { line: 4, column: 5 }));
        assert_eq!(
            spans.value("flow.0.module"),
            Some(Pos {
                line: 4,
                column: 13
            })
        );
        assert_eq!(
            spans.locate("flow.0.module.nothing"),
            Pos { line: 4, column: 5 }
        );
    }

    #[test]
    fn refuses_duplicate_keys_with_position() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.message, "duplicate key `a`");
        assert_eq!(err.pos.line, 3);
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1);
    }

    #[test]
    fn resolves_aliases() {
        let (v, _) = parse("a: &x {k: 1}\nb: *x\n").unwrap();
        assert_eq!(v, json!({"a": {"k": 1}, "b": {"k": 1}}));
    }
}
