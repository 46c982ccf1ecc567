//! `weft graph FILE --format mermaid|dot`: draw a scenario's module graph.

use std::path::PathBuf;

use clap::ValueEnum;
use weft_engine::graph::render;

use super::CmdResult;
use crate::Outcome;

/// Output format of `weft graph`.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// Mermaid flowchart (renders on GitHub).
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// Arguments of `weft graph`.
#[derive(clap::Args)]
pub struct Args {
    /// The scenario file.
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Mermaid)]
    format: Format,
}

/// Runs `weft graph`.
pub fn run(args: Args) -> CmdResult {
    let registry = crate::registry::registry();
    match weft_engine::validate::load_file(&args.file, &registry) {
        Ok(s) => {
            let text = match args.format {
                Format::Mermaid => render::mermaid(&s.graph),
                Format::Dot => render::dot(&s.graph, &s.name),
            };
            out!("{text}");
            Ok(Outcome::Success)
        }
        Err(e) => {
            eprint!("{e}");
            Ok(Outcome::Failed)
        }
    }
}
