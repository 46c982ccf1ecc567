//! Serves the Sonar simulator on the address given as the first argument (default
//! `127.0.0.1:4010`) until ctrl-c, with the default token `sim-token`. Used by the load
//! benchmark in `bench/sim-load/`:
//!
//! ```text
//! cargo run --release -p weft-sonar-sim --example sim_server -- 127.0.0.1:4010
//! ```

use std::net::SocketAddr;

use weft_sonar_sim::{SimConfig, Simulator};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:4010")
        .parse()?;
    let config = SimConfig::default();
    let token = config.tokens.join(", ");
    let sim = Simulator::start(config, addr).await?;
    println!("Sonar simulator on {} (token: {token})", sim.base_url());
    sim.until_ctrl_c().await?;
    Ok(())
}
