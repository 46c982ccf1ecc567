//! `weft executions list|show|retry`: the execution history in the database.

use std::sync::Arc;

use anyhow::anyhow;
use clap::Subcommand;
use weft_runtime::store::{Backend, ExecutionFilter, Store};

use super::{CliError, CmdResult};
use crate::Outcome;

/// Arguments of `weft executions`.
#[derive(clap::Args)]
pub struct Args {
    /// The database: an SQLite file or a postgres:// URL (as given to weft serve).
    #[arg(
        long,
        default_value = "weft.db",
        env = "WEFT_DB",
        hide_env_values = true,
        global = true
    )]
    db: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List executions, newest first.
    List {
        /// Only this scenario.
        #[arg(long)]
        scenario: Option<String>,
        /// Only this status (success, warning, error, incomplete).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one execution step by step.
    Show {
        /// Execution id.
        id: String,
        /// The whole record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Retry an incomplete execution from its failed module (weft serve runs it).
    Retry {
        /// Execution id.
        id: String,
    },
}

/// Opens the store, refusing to create a database that does not exist.
pub async fn open(db: &str) -> Result<Arc<dyn Store>, CliError> {
    let backend = Backend::parse(db);
    if let Backend::Sqlite(path) = &backend {
        if !path.exists() {
            return Err(CliError::Usage(anyhow!(
                "database `{}` does not exist; pass --db PATH (as given to weft serve)",
                path.display()
            )));
        }
    }
    weft_runtime::store::open(&backend, false)
        .await
        .map_err(|e| CliError::Failed(e.into()))
}

/// Runs `weft executions`.
pub async fn run(args: Args) -> CmdResult {
    let store = open(&args.db).await?;
    match args.command {
        Cmd::List {
            scenario,
            status,
            limit,
            json,
        } => {
            let list = store
                .list_executions(ExecutionFilter {
                    scenario,
                    status,
                    limit,
                })
                .await
                .map_err(|e| CliError::Failed(e.into()))?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&list).map_err(|e| CliError::Failed(e.into()))?
                );
            } else if list.is_empty() {
                outln!("no executions");
            } else {
                outln!(
                    "{:<36}  {:<24}  {:<10}  {:>4}  {:>7}  started",
                    "id",
                    "scenario",
                    "status",
                    "ops",
                    "ms"
                );
                for e in list {
                    outln!(
                        "{:<36}  {:<24}  {:<10}  {:>4}  {:>7}  {}",
                        e.id,
                        e.scenario,
                        e.status,
                        e.operations,
                        e.duration_ms,
                        e.started_at
                    );
                }
            }
            Ok(Outcome::Success)
        }
        Cmd::Show { id, json } => {
            let Some(record) = store
                .execution(&id)
                .await
                .map_err(|e| CliError::Failed(e.into()))?
            else {
                return Err(CliError::Failed(anyhow!("no execution `{id}`")));
            };
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&record)
                        .map_err(|e| CliError::Failed(e.into()))?
                );
            } else {
                out!("{}", super::run::human(&record));
                for s in &record.steps {
                    outln!("\nstep {} {}", s.module_id, s.module);
                    outln!("  input:  {}", s.input);
                    for o in &s.output {
                        outln!("  output: {o}");
                    }
                    if let Some(e) = &s.error {
                        outln!("  error:  {}: {}", e.kind, e.message);
                    }
                }
            }
            Ok(Outcome::Success)
        }
        Cmd::Retry { id } => {
            let n = store
                .retry_now(&id)
                .await
                .map_err(|e| CliError::Failed(e.into()))?;
            if n == 0 {
                return Err(CliError::Failed(anyhow!(
                    "execution `{id}` has no incomplete bundle waiting for a retry"
                )));
            }
            outln!("{n} incomplete bundle(s) of `{id}` queued for retry; weft serve runs them");
            Ok(Outcome::Success)
        }
    }
}
