//! weft's runtime: `weft serve`.
//!
//! - [`server`]: loads and validates every scenario of a folder, then serves HTTP:
//!   `POST /hooks/{token}` (durable intake), `GET /healthz`, `GET /metrics`;
//! - [`intake`]: a webhook is answered 200 only once it is committed to the queue;
//! - [`worker`]: claims queued jobs under a lease and runs executions;
//! - [`background`]: schedules, automatic `break` retries, retention, lease heartbeats;
//! - [`store`]: the queue, history, incomplete executions, hook tokens and registrations,
//!   behind the [`store::Store`] trait (embedded SQLite by default).

pub mod background;
pub mod hooks;
pub mod intake;
pub mod metrics;
pub mod server;
pub mod store;
pub mod worker;

pub use server::{load_dir, RunningServer, ServeConfig, ServeError, Server};
