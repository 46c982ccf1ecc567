//! `weft validate FILE...`: load and check scenarios, printing every diagnostic.

use std::path::PathBuf;

use super::CmdResult;
use crate::Outcome;

/// Arguments of `weft validate`.
#[derive(clap::Args)]
pub struct Args {
    /// Scenario files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Runs `weft validate`.
pub fn run(args: Args) -> CmdResult {
    let registry = crate::registry::registry();
    let mut failed = 0;
    for file in &args.files {
        match weft_engine::validate::load_file(file, &registry) {
            Ok(s) => outln!(
                "ok: {} ({}, {} modules)",
                file.display(),
                s.name,
                s.graph.len()
            ),
            Err(e) => {
                failed += 1;
                eprint!("{e}");
                eprintln!();
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "{failed} of {} scenario(s) failed validation",
            args.files.len()
        );
        Ok(Outcome::Failed)
    } else {
        Ok(Outcome::Success)
    }
}
