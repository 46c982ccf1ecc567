//! `flow.set_variables`: outputs one bundle holding the mapped fields, so later modules
//! can map computed values by name (`{{5.note}}`).

use async_trait::async_trait;

use crate::module::{Bundle, Input, Module, ModuleError, RunContext};
use crate::spec::{field, FieldType, Kind, ModuleSpec};

/// `flow.set_variables`.
pub struct SetVariables;

static SPEC: ModuleSpec = ModuleSpec {
    id: "flow.set_variables",
    kind: Kind::Flow,
    label: "Set variables",
    help: "Outputs one bundle with the mapped fields (any names), so later modules can map computed values by name.",
    app: None,
    fields: &[field("*", FieldType::Any)
        .help("Any field name: its mapped value is output unchanged.")
        .example("\"{{upper 1.name}}\"")],
    output: &[],
};

#[async_trait]
impl Module for SetVariables {
    fn spec(&self) -> &'static ModuleSpec {
        &SPEC
    }

    async fn run(&self, _cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        Ok(vec![input.into_value()])
    }
}
