//! `flow.iterator`: one output bundle per element of an array. An object element's keys
//! become the bundle's fields; a scalar element becomes `{ value }`.

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::module::{Bundle, Input, Module, ModuleError, RunContext};
use crate::spec::{field, out, FieldType, Kind, ModuleSpec};

/// `flow.iterator`.
pub struct Iterator;

static SPEC: ModuleSpec = ModuleSpec {
    id: "flow.iterator",
    kind: Kind::Flow,
    label: "Iterator",
    help: "Splits an array into one bundle per element. An object element's keys become the bundle's fields; any other element becomes `{ value }`. Pair it with an aggregator (`source:` this module) to collect the results.",
    app: None,
    fields: &[field("array", FieldType::Array)
        .required()
        .help("The array to split.")
        .example("\"{{1.items}}\"")],
    output: &[out("value", FieldType::Any, "The element, when it is not an object (objects give their own fields).")],
};

#[async_trait]
impl Module for Iterator {
    fn spec(&self) -> &'static ModuleSpec {
        &SPEC
    }

    async fn run(&self, _cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        let items = match input.get("array") {
            Some(Value::Array(items)) => items.clone(),
            Some(other) => vec![other.clone()],
            None => Vec::new(),
        };
        Ok(items
            .into_iter()
            .map(|item| match item {
                Value::Object(_) => item,
                other => json!({ "value": other }),
            })
            .collect())
    }
}
