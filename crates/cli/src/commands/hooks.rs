//! `weft hooks list`: where to point each webhook, and `weft deactivate SCENARIO`: remove
//! a scenario's app webhook registrations.

use std::path::PathBuf;

use anyhow::anyhow;
use weft_engine::validate::load_file;

use super::{CliError, CmdResult};
use crate::Outcome;

/// Arguments of `weft hooks list`.
#[derive(clap::Args)]
pub struct ListArgs {
    /// The database: an SQLite file or a postgres:// URL.
    #[arg(
        long,
        default_value = "weft.db",
        env = "WEFT_DB",
        hide_env_values = true
    )]
    db: String,
    /// Base URL to print hook URLs with.
    #[arg(long, env = "WEFT_PUBLIC_URL")]
    public_url: Option<String>,
    /// As JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `weft hooks list`.
pub async fn list(args: ListArgs) -> CmdResult {
    let store = super::executions::open(&args.db).await?;
    let hooks = store
        .hooks()
        .await
        .map_err(|e| CliError::Failed(e.into()))?;
    let base = args.public_url.unwrap_or_default();
    let base = base.trim_end_matches('/');
    if args.json {
        let rows: Vec<_> = hooks
            .iter()
            .map(|h| serde_json::json!({"scenario": h.scenario, "module_id": h.module_id, "url": format!("{base}/hooks/{}", h.token)}))
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| CliError::Failed(e.into()))?
        );
    } else {
        for h in hooks {
            outln!(
                "{:<28} module {:<3} {base}/hooks/{}",
                h.scenario,
                h.module_id,
                h.token
            );
        }
    }
    Ok(Outcome::Success)
}

/// Arguments of `weft deactivate`.
#[derive(clap::Args)]
pub struct DeactivateArgs {
    /// The scenario file.
    file: PathBuf,
    /// The database: an SQLite file or a postgres:// URL.
    #[arg(
        long,
        default_value = "weft.db",
        env = "WEFT_DB",
        hide_env_values = true
    )]
    db: String,
}

/// Runs `weft deactivate`.
pub async fn deactivate(args: DeactivateArgs) -> CmdResult {
    let registry = crate::registry::registry();
    let scenario = match load_file(&args.file, &registry) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{e}");
            return Ok(Outcome::Failed);
        }
    };
    let store = super::executions::open(&args.db).await?;
    let regs = store
        .registrations(&scenario.name)
        .await
        .map_err(|e| CliError::Failed(e.into()))?;
    if regs.is_empty() {
        outln!("`{}` has no registered webhook", scenario.name);
        return Ok(Outcome::Success);
    }
    let node = scenario.graph.node(scenario.trigger);
    let Some(trigger) = node.module.as_trigger() else {
        return Err(CliError::Failed(anyhow!(
            "`{}` does not start with a trigger",
            scenario.name
        )));
    };
    for reg in regs {
        trigger
            .deactivate(node.connection.as_ref(), &reg.data)
            .await
            .map_err(|e| {
                CliError::Failed(anyhow!(
                    "cannot remove the webhook of `{}`: {}: {}",
                    scenario.name,
                    e.kind,
                    scenario.redactor.text(&e.message)
                ))
            })?;
        store
            .delete_registration(&reg.scenario, reg.module_id)
            .await
            .map_err(|e| CliError::Failed(e.into()))?;
        outln!(
            "removed the webhook of `{}` ({})",
            scenario.name,
            reg.hook_url
        );
    }
    Ok(Outcome::Success)
}
