//! A stateful, in-memory simulator of the Sonar SMS API.
//!
//! The simulator is the other side of the wire for weft's Sonar modules: it serves the HTTP API
//! of the contract (`shared/sonar-api.md`) under `/api`, keeps customers, messages, agents
//! (users), tags, campaigns and webhooks in memory, and POSTs webhook events to registered URLs
//! whenever its state changes. A control surface under `/_sim` (no token) lets tests and demos
//! inspect and drive it: state, reset, seed, inbound SMS, agent assignment, message tags and
//! fault injection.
//!
//! Main types: [`SimConfig`] (tokens, keys, webhook retry schedule), [`Simulator`] (the state and
//! its [`axum::Router`]) and [`RunningSim`] (a simulator bound to a socket).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use weft_sonar_sim::{SimConfig, Simulator};
//!
//! let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap()).await?;
//! let base_url = sim.base_url(); // "http://127.0.0.1:PORT/api", token "sim-token"
//! # let _ = base_url;
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod api;
mod auth;
mod control;
mod delivery;
mod error;
mod events;
mod faults;
mod form;
mod ids;
mod params;
mod phone;
mod ring;
mod state;
#[cfg(test)]
mod test_support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::serve::ListenerExt;
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::faults::Faults;
use crate::state::State;

/// How a [`Simulator`] behaves: which credentials it accepts and how it delivers webhooks.
#[derive(Clone)]
pub struct SimConfig {
    /// Private API tokens accepted as `X-Token` / `Token` header or `token` query parameter.
    pub tokens: Vec<String>,
    /// The publishable key: accepted as `X-Publishable-Key` and sent in every webhook payload.
    pub publishable_key: String,
    /// The company's name, used as `from_name` / `to_name` of message webhooks.
    pub company_name: String,
    /// Delay before each webhook redelivery after a failed attempt; one retry per entry.
    pub retry_delays: Vec<Duration>,
    /// How long one webhook delivery attempt may take before it counts as failed.
    pub delivery_timeout: Duration,
}

impl Default for SimConfig {
    /// Token `sim-token`, key `sim-publishable-key`, the contract's retry schedule
    /// (10 s, 30 s, 3 min, 30 min) and a 5 s delivery timeout.
    fn default() -> Self {
        Self {
            tokens: vec!["sim-token".to_owned()],
            publishable_key: "sim-publishable-key".to_owned(),
            company_name: "Sonar Simulator".to_owned(),
            retry_delays: vec![
                Duration::from_secs(10),
                Duration::from_secs(30),
                Duration::from_secs(180),
                Duration::from_secs(1800),
            ],
            delivery_timeout: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for SimConfig {
    /// Tokens are secrets: only their number is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("tokens", &format_args!("<{} redacted>", self.tokens.len()))
            .field("publishable_key", &self.publishable_key)
            .field("company_name", &self.company_name)
            .field("retry_delays", &self.retry_delays)
            .field("delivery_timeout", &self.delivery_timeout)
            .finish()
    }
}

/// Everything one simulator owns; handlers and background tasks share it through an `Arc`.
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    state: Mutex<State>,
    pub(crate) faults: Faults,
    /// The client webhook deliveries use; `None` when it could not be built (deliveries fail).
    pub(crate) client: Option<reqwest::Client>,
}

impl Shared {
    /// Locks the state. A panic while the lock was held leaves plain data behind, so a
    /// poisoned lock is recovered rather than propagated.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An in-memory Sonar: its state plus the router that serves `/api/...` and `/_sim/...`.
///
/// Cloning is cheap and yields a handle on the same state.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

impl Simulator {
    /// A simulator with empty state.
    pub fn new(config: SimConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(config.delivery_timeout)
            .no_proxy()
            .build()
            .map_err(|error| tracing::error!(message = "Cannot build the webhook client.", %error))
            .ok();
        let shared = Arc::new_cyclic(|weak| Shared {
            state: Mutex::new(State::new(
                weak.clone(),
                config.publishable_key.clone(),
                config.company_name.clone(),
            )),
            config,
            faults: Faults::default(),
            client,
        });
        Self { shared }
    }

    /// The simulator's routes: the Sonar API under `/api` and the control surface under `/_sim`.
    pub fn router(&self) -> Router {
        Router::new()
            .nest("/api", api::router(&self.shared))
            .nest("/_sim", control::router())
            .fallback(api::not_found)
            .with_state(self.shared.clone())
    }

    /// Binds `addr` (e.g. `127.0.0.1:0`) and serves a new simulator on it in a background task.
    pub async fn start(config: SimConfig, addr: SocketAddr) -> std::io::Result<RunningSim> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let simulator = Simulator::new(config);
        let router = simulator.router();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let listener = listener.tap_io(|stream| {
            // Small request/response pairs: never wait for Nagle.
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(message = "Cannot set TCP_NODELAY.", %error);
            }
        });
        let task = tokio::spawn(async move {
            let stop = async move {
                // A dropped sender also means "stop".
                let _ = stop_rx.await;
            };
            if let Err(error) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(message = "Sonar simulator stopped.", %error);
            }
        });
        Ok(RunningSim {
            addr,
            simulator,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// Everything the simulator holds, as served by `GET /_sim/state`:
    /// `{customers, messages, users, tags, campaigns, campaign_sends, webhooks, deliveries}`.
    pub fn state_json(&self) -> serde_json::Value {
        let state = self.shared.lock();
        serde_json::to_value(&*state).unwrap_or_else(|error| {
            // Serializing plain maps, strings and numbers cannot fail.
            serde_json::json!({ "error": error.to_string() })
        })
    }
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// A simulator serving on a socket. Dropping it stops the server too.
#[derive(Debug)]
pub struct RunningSim {
    /// The bound address (the real port when `:0` was asked for).
    pub addr: SocketAddr,
    simulator: Simulator,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningSim {
    /// The base URL of the API, the connection's `base_url`: `http://127.0.0.1:PORT/api`.
    pub fn base_url(&self) -> String {
        format!("{}/api", self.root_url())
    }

    /// The server root, where the `/_sim/...` control surface lives: `http://127.0.0.1:PORT`.
    pub fn root_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The simulator being served (its state can be read and driven directly).
    pub fn simulator(&self) -> &Simulator {
        &self.simulator
    }

    /// Stops accepting connections, lets in-flight requests finish (at most 5 s) and returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    /// Serves until ctrl-c, then shuts down.
    pub async fn until_ctrl_c(self) -> std::io::Result<()> {
        let result = tokio::signal::ctrl_c().await;
        self.shutdown().await;
        result
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves a simulator on `addr` until ctrl-c. Prints nothing; callers that want to show the
/// URL should use [`Simulator::start`], print [`RunningSim::base_url`], then
/// [`RunningSim::until_ctrl_c`].
pub async fn serve(config: SimConfig, addr: SocketAddr) -> std::io::Result<()> {
    Simulator::start(config, addr).await?.until_ctrl_c().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{json, Value};

    use super::*;

    #[tokio::test]
    async fn start_serves_on_a_real_socket_until_shutdown() {
        let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let port = sim.addr.port();
        assert_ne!(port, 0);
        assert_eq!(sim.base_url(), format!("http://127.0.0.1:{port}/api"));
        assert_eq!(sim.root_url(), format!("http://127.0.0.1:{port}"));

        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let response = client
            .post(format!("{}/v1/messages", sim.base_url()))
            .header("X-Token", "sim-token")
            .json(&json!({"to": "+13105550147", "text": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "queued");

        let state: Value = client
            .get(format!("{}/_sim/state", sim.root_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(state, sim.simulator().state_json());
        assert_eq!(state["messages"].as_array().unwrap().len(), 1);

        let url = sim.base_url();
        sim.shutdown().await;
        let after = client.get(format!("{url}/v1/webhooks")).send().await;
        assert!(after.is_err(), "the port is closed after shutdown");
    }

    #[test]
    fn unspecified_addresses_get_loopback_urls() {
        let running = RunningSim {
            addr: "0.0.0.0:4010".parse().unwrap(),
            simulator: Simulator::new(SimConfig::default()),
            stop: None,
            task: None,
        };
        assert_eq!(running.base_url(), "http://127.0.0.1:4010/api");
    }

    #[test]
    fn debug_output_hides_tokens() {
        let sim = Simulator::new(SimConfig {
            tokens: vec!["s3cret".to_owned()],
            ..SimConfig::default()
        });
        let text = format!("{sim:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("<1 redacted>"), "{text}");
    }

    #[test]
    fn default_config_follows_the_contract() {
        let config = SimConfig::default();
        assert_eq!(config.tokens, ["sim-token"]);
        assert_eq!(config.publishable_key, "sim-publishable-key");
        let delays: Vec<u64> = config.retry_delays.iter().map(Duration::as_secs).collect();
        assert_eq!(delays, [10, 30, 180, 1800]);
        assert_eq!(config.delivery_timeout, Duration::from_secs(5));
    }
}
