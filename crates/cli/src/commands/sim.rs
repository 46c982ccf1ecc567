//! `weft sonar-sim [--listen ADDR] [--token T]...`: the Sonar API simulator as a server,
//! and the embedded simulator behind `--sonar-sim`.

use std::net::SocketAddr;

use anyhow::Context;
use weft_sonar_sim::{RunningSim, SimConfig, Simulator};

use super::{CliError, CmdResult};
use crate::Outcome;

/// The token the simulator accepts when none is given.
pub const DEFAULT_TOKEN: &str = "sim-token";

/// Arguments of `weft sonar-sim`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (loopback by default: it is a test tool with no real auth).
    #[arg(long, default_value = "127.0.0.1:4010")]
    listen: SocketAddr,
    /// Accepted API token (repeatable; default `sim-token`).
    #[arg(long = "token")]
    tokens: Vec<String>,
}

/// Starts a simulator on an ephemeral loopback port, accepting [`DEFAULT_TOKEN`].
pub async fn start_embedded() -> Result<RunningSim, CliError> {
    let config = SimConfig {
        tokens: vec![DEFAULT_TOKEN.to_owned()],
        ..SimConfig::default()
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    Simulator::start(config, addr)
        .await
        .context("cannot start the embedded Sonar simulator")
        .map_err(CliError::Failed)
}

/// Runs `weft sonar-sim` until Ctrl-C.
pub async fn run(args: Args) -> CmdResult {
    let tokens = if args.tokens.is_empty() {
        vec![DEFAULT_TOKEN.to_owned()]
    } else {
        args.tokens
    };
    let config = SimConfig {
        tokens: tokens.clone(),
        ..SimConfig::default()
    };
    let sim = Simulator::start(config, args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))
        .map_err(CliError::Failed)?;
    outln!("Sonar simulator listening on {}", sim.base_url());
    outln!("control surface: {}/_sim/state", sim.root_url());
    outln!("accepted token(s): {}", tokens.join(", "));
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")
        .map_err(CliError::Failed)?;
    sim.shutdown().await;
    Ok(Outcome::Success)
}
