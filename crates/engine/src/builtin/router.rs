//! `flow.router`: sends each bundle down every route whose filter passes, in order; a
//! `fallback: true` route runs only when no other route passed. The executor walks the
//! routes; the module itself never runs.

use async_trait::async_trait;

use crate::module::{Bundle, Input, Module, ModuleError, RunContext};
use crate::spec::{Kind, ModuleSpec};

/// `flow.router`.
pub struct Router;

static SPEC: ModuleSpec = ModuleSpec {
    id: "flow.router",
    kind: Kind::Flow,
    label: "Router",
    help: "Sends each bundle down every route whose filter passes, in order. A route with `fallback: true` runs only when no other route passed. Declare the routes under `routes:`, each with `name`, `filter` and `flow`. A router does not count as an operation.",
    app: None,
    fields: &[],
    output: &[],
};

#[async_trait]
impl Module for Router {
    fn spec(&self) -> &'static ModuleSpec {
        &SPEC
    }

    async fn run(&self, _cx: &RunContext<'_>, _input: Input) -> Result<Vec<Bundle>, ModuleError> {
        Err(ModuleError::runtime(
            "`flow.router` is walked by the executor, not run",
        ))
    }
}
