//! `weft serve [DIR]`: validate every scenario, then serve hooks, run workers and
//! schedules until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};
use weft_runtime::{RunningServer, ServeConfig, ServeError, Server};

use super::CmdResult;
use crate::Outcome;

/// Arguments of `weft serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder of scenario files.
    #[arg(default_value = "scenarios")]
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "WEFT_LISTEN")]
    pub listen: SocketAddr,
    /// The database (queue, history, hook tokens): an SQLite file, or a postgres:// URL
    /// for several nodes sharing one queue.
    #[arg(
        long,
        default_value = "weft.db",
        env = "WEFT_DB",
        hide_env_values = true
    )]
    pub db: String,
    /// Base URL apps use to reach this server (hook URLs are PUBLIC_URL/hooks/TOKEN).
    #[arg(long, env = "WEFT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Start the Sonar simulator in-process and point every Sonar connection at it.
    #[arg(long)]
    pub sonar_sim: bool,
    /// Executions running at once.
    #[arg(long, default_value_t = 64)]
    pub workers: usize,
    /// Threads for the HTTP intake and the executions; by default one per CPU core. Fewer
    /// leave cores to a database or another service on the same machine.
    #[arg(long, env = "WEFT_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Largest webhook body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// How long executions are kept (`30d`, `12h`).
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub retention: Duration,
    /// Time running executions get to finish on shutdown.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Lease on a claimed job, renewed while it runs: how long a job of a node that died
    /// waits before another node runs it.
    #[arg(long, default_value = "30s", env = "WEFT_LEASE", value_parser = parse_duration)]
    pub lease: Duration,
    /// PostgreSQL connections in this node's pool (a `LISTEN` connection comes on top); size it
    /// so that nodes × (pool + 1) stays under the server's `max_connections`. Ignored with
    /// SQLite.
    #[arg(long, default_value_t = weft_runtime::store::postgres::POOL_SIZE as u16, env = "WEFT_DB_POOL", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub db_pool: u16,
    /// Bearer token for `/metrics`. Without it, `/metrics` is served only when listening on
    /// loopback (`/healthz` and the hooks are always open).
    #[arg(long, env = "WEFT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Jobs queued (waiting or running) before webhooks are refused with 503.
    #[arg(long, default_value_t = 100_000)]
    pub max_queue: u64,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    weft_engine::scenario::duration::parse_duration(s)
        .ok_or_else(|| format!("invalid duration `{s}`; write `30s`, `10m`, `12h` or `30d`"))
}

/// Prints why serving could not start.
pub fn report(e: &ServeError) {
    if let ServeError::Invalid { errors, .. } = e {
        for err in errors {
            eprint!("{err}");
            eprintln!();
        }
    }
    eprintln!("error: {e}");
}

/// Points Sonar connections at a simulator.
pub fn sim_overrides(config: &mut ServeConfig, base_url: String) {
    let mut fields = Map::new();
    fields.insert("base_url".into(), Value::String(base_url));
    fields.insert(
        "token".into(),
        Value::String(super::sim::DEFAULT_TOKEN.into()),
    );
    config.overrides.insert("sonar".to_owned(), fields);
    config.env_fallback = Some(super::sim::DEFAULT_TOKEN.into());
}

/// Runs `weft serve`.
pub async fn run(args: Args) -> CmdResult {
    let registry = crate::registry::registry();
    let mut config = ServeConfig::new(&args.dir);
    config.listen = args.listen;
    config.db = weft_runtime::store::Backend::parse(&args.db);
    config.public_url = args.public_url;
    config.workers = args.workers;
    config.body_limit = args.body_limit;
    config.retention = args.retention;
    config.shutdown_grace = args.grace;
    config.lease = args.lease;
    config.db_pool = usize::from(args.db_pool);
    config.admin_token = args.admin_token.filter(|t| !t.is_empty());
    config.max_queue = args.max_queue;
    let sim = if args.sonar_sim {
        let sim = super::sim::start_embedded().await?;
        outln!(
            "Sonar simulator: {} (state: {}/_sim/state)",
            sim.base_url(),
            sim.root_url()
        );
        sim_overrides(&mut config, sim.base_url());
        config.advertise_listen_addr = true;
        Some(sim)
    } else {
        None
    };
    let server = match Server::start(config, &registry).await {
        Ok(s) => s,
        Err(e) => {
            report(&e);
            return Ok(Outcome::Failed);
        }
    };
    outln!("weft listening on {}", server.url());
    for (scenario, token) in server.hook_tokens() {
        outln!("  {scenario}: POST {}/hooks/{token}", server.url());
    }
    RunningServer::signal().await;
    server.shutdown().await;
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    Ok(Outcome::Success)
}
