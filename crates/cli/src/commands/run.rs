//! `weft run FILE --input BUNDLE.json [--json] [--sonar-sim]`: one execution from a given
//! trigger payload, printed step by step (or as the JSON record).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use serde_json::{Map, Value};
use weft_engine::exec::{ExecutionRecord, Executor, Status};
use weft_engine::validate::{load_file_with, LoadOptions};

use super::{CliError, CmdResult};
use crate::Outcome;

/// Arguments of `weft run`.
#[derive(clap::Args)]
pub struct Args {
    /// The scenario file.
    file: PathBuf,
    /// JSON file with the trigger payload (`-` for stdin).
    #[arg(long)]
    input: PathBuf,
    /// Print the execution record as JSON.
    #[arg(long)]
    json: bool,
    /// Point every Sonar connection at a simulator started in-process (unset `${VAR}`s then
    /// read as its token, `sim-token`).
    #[arg(long)]
    sonar_sim: bool,
}

fn read_input(path: &PathBuf) -> Result<Value, CliError> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the input from stdin")
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read input file `{}`", path.display()))
    }
    .map_err(CliError::Usage)?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::Usage(anyhow!(
            "input file `{}` is not valid JSON: {e}",
            path.display()
        ))
    })
}

/// Runs `weft run`.
pub async fn run(args: Args) -> CmdResult {
    let payload = read_input(&args.input)?;
    let registry = crate::registry::registry();
    let mut overrides = BTreeMap::new();
    let sim = if args.sonar_sim {
        let sim = super::sim::start_embedded().await?;
        let mut fields = Map::new();
        fields.insert("base_url".into(), Value::String(sim.base_url()));
        fields.insert(
            "token".into(),
            Value::String(super::sim::DEFAULT_TOKEN.into()),
        );
        overrides.insert("sonar".to_owned(), fields);
        Some(sim)
    } else {
        None
    };
    // With the embedded simulator, an unset `${VAR}` (the Sonar token) reads as its token.
    let fallback = args.sonar_sim.then(|| super::sim::DEFAULT_TOKEN.to_owned());
    let env = move |name: &str| std::env::var(name).ok().or_else(|| fallback.clone());
    let opts = LoadOptions {
        env: &env,
        overrides: &overrides,
    };
    let scenario = match load_file_with(&args.file, &registry, &opts) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{e}");
            return Ok(Outcome::Failed);
        }
    };
    let record = Executor::new(&scenario).run(payload).await;
    if args.json {
        let text = serde_json::to_string_pretty(&record).map_err(|e| CliError::Failed(e.into()))?;
        outln!("{text}");
    } else {
        out!("{}", human(&record));
    }
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    Ok(match record.status {
        Status::Success | Status::Warning => Outcome::Success,
        Status::Error | Status::Incomplete => Outcome::Failed,
    })
}

fn compact(v: &Value, max: usize) -> String {
    let s = v.to_string();
    if s.chars().count() > max {
        let cut: String = s.chars().take(max.saturating_sub(3)).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// The record as text, one line per step.
pub fn human(r: &ExecutionRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}: {} ({} operations, {} ms)",
        r.scenario, r.id, r.status, r.operations, r.duration_ms
    );
    for s in &r.steps {
        match &s.error {
            None => {
                let _ = writeln!(
                    out,
                    "  ✓ {:>3} {:<28} → {} bundle(s) {}",
                    s.module_id,
                    s.module,
                    s.output.len(),
                    s.output
                        .first()
                        .map(|o| compact(o, 100))
                        .unwrap_or_default()
                );
            }
            Some(e) => {
                let _ = writeln!(
                    out,
                    "  ✗ {:>3} {:<28} {}: {}",
                    s.module_id, s.module, e.kind, e.message
                );
            }
        }
        if !s.input.is_null() && s.input.as_object().is_some_and(|o| !o.is_empty()) {
            let _ = writeln!(out, "        input {}", compact(&s.input, 120));
        }
    }
    for w in &r.warnings {
        let _ = writeln!(out, "  warning: {w}");
    }
    for inc in &r.incomplete {
        let _ = writeln!(
            out,
            "  incomplete: module {} stored for retry ({}: {})",
            inc.module_id, inc.error.kind, inc.error.message
        );
    }
    if let Some(e) = &r.error {
        let _ = writeln!(out, "  error: {}: {}", e.kind, e.message);
    }
    out
}
