//! `flow.array_aggregator` and `flow.text_aggregator`: collect the bundles that descend
//! from each operation of their `source` module and emit once, after the last one.
//!
//! The executor does the collecting (it knows when the source is done); these specs
//! declare the fields for validation and docs.

use async_trait::async_trait;

use crate::module::{Bundle, Input, Module, ModuleError, RunContext};
use crate::spec::{field, out, FieldType, Kind, ModuleSpec};

/// `flow.array_aggregator`.
pub struct ArrayAggregator;
/// `flow.text_aggregator`.
pub struct TextAggregator;

static ARRAY: ModuleSpec = ModuleSpec {
    id: "flow.array_aggregator",
    kind: Kind::Flow,
    label: "Array aggregator",
    help: "Collects the bundles produced under its `source` module (usually an iterator) into one bundle `{ array }`. Map the fields to keep (any names); with no field mapped, the source's bundles are kept whole. With `group_by`, emits one bundle `{ key, array }` per distinct key, in first-seen order. After the aggregator, modules may map from it and from modules before `source`.",
    app: None,
    fields: &[
        field("group_by", FieldType::Any)
            .help("Groups the collected bundles by this value; one output bundle per group.")
            .example("\"{{3.category}}\""),
        field("*", FieldType::Any)
            .help("Any other field: kept in each element of `array`.")
            .example("\"{{3.sku}}\""),
    ],
    output: &[
        out("array", FieldType::Array, "The collected elements."),
        out("key", FieldType::Any, "The group's key (only with `group_by`)."),
    ],
};

static TEXT: ModuleSpec = ModuleSpec {
    id: "flow.text_aggregator",
    kind: Kind::Flow,
    label: "Text aggregator",
    help: "Renders `text` for each bundle produced under its `source` module and joins the results with `separator` into one bundle `{ text }`. With `group_by`, one bundle `{ key, text }` per distinct key.",
    app: None,
    fields: &[
        field("text", FieldType::Text)
            .required()
            .help("The text rendered for each collected bundle.")
            .example("\"{{3.name}}\""),
        field("separator", FieldType::Text)
            .help("Put between the texts (default: nothing).")
            .example("\", \""),
        field("group_by", FieldType::Any)
            .help("Groups the collected bundles by this value; one output bundle per group.")
            .example("\"{{3.category}}\""),
    ],
    output: &[
        out("text", FieldType::Text, "The joined text."),
        out("key", FieldType::Any, "The group's key (only with `group_by`)."),
    ],
};

#[async_trait]
impl Module for ArrayAggregator {
    fn spec(&self) -> &'static ModuleSpec {
        &ARRAY
    }

    async fn run(&self, _cx: &RunContext<'_>, _input: Input) -> Result<Vec<Bundle>, ModuleError> {
        Err(ModuleError::runtime("aggregators are run by the executor"))
    }
}

#[async_trait]
impl Module for TextAggregator {
    fn spec(&self) -> &'static ModuleSpec {
        &TEXT
    }

    async fn run(&self, _cx: &RunContext<'_>, _input: Input) -> Result<Vec<Bundle>, ModuleError> {
        Err(ModuleError::runtime("aggregators are run by the executor"))
    }
}
