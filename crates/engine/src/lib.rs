//! weft's engine: scenarios as YAML → a graph of modules → bundles run through it with
//! Make's semantics.
//!
//! The pipeline, one folder per stage:
//! - [`scenario`]: the YAML model, `${VAR}` interpolation and source spans;
//! - [`validate`]: load-time checks that turn a [`scenario::ScenarioFile`] into a
//!   [`Scenario`](validate::Scenario) whose templates, filters and references are all checked;
//! - [`graph`]: the module graph (petgraph) with its links, filters and routes;
//! - [`template`] and [`filter`]: mapping templates (handlebars + Make's helpers) and filters;
//! - [`exec`]: the executor that runs bundles through the graph and records the execution.
//!
//! Modules plug in through the [`Module`] trait and the [`Registry`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use weft_engine::{Registry, exec::Executor, validate::load_file};
//! let registry = Registry::new([weft_engine::builtin::modules()], [])?;
//! let scenario = load_file("scenarios/welcome.yaml".as_ref(), &registry)?;
//! let record = Executor::new(&scenario).run(serde_json::json!({"name": "Ada"})).await;
//! println!("{}", record.status);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod builtin;
pub mod coerce;
pub mod diagnostic;
pub mod exec;
pub mod filter;
pub mod graph;
pub mod module;
pub mod registry;
pub mod scenario;
pub mod spec;
pub mod suggest;
pub mod template;
pub mod validate;

pub use module::{App, Bundle, ErrorKind, Input, Module, ModuleError, RunContext, Trigger};
pub use registry::Registry;
pub use spec::{field, out, FieldSpec, FieldType, Kind, ModuleSpec, OutputField};
