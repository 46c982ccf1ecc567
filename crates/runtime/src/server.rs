//! Starting and stopping `weft serve`: load every scenario (all or nothing), open the
//! store, give each instant trigger its stable hook URL, register app webhooks, then serve
//! HTTP and run the workers and background loops until shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;
use weft_engine::diagnostic::LoadError;
use weft_engine::module::TriggerKind;
use weft_engine::validate::{load_file_with, ConnectionOverrides, LoadOptions, Scenario};
use weft_engine::Registry;

use crate::metrics::Metrics;
use crate::store::{Backend, Registration, Store, StoreError};

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Folder of scenario files (`*.yaml`, `*.yml`).
    pub dir: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The database: an SQLite file or a PostgreSQL URL.
    pub db: Backend,
    /// PostgreSQL connections in this node's pool (unused with SQLite).
    pub db_pool: usize,
    /// Bearer token required on `/metrics`; without it, `/metrics` is served only when
    /// listening on loopback.
    pub admin_token: Option<String>,
    /// Base URL apps call back (`https://weft.example.com`); hook URLs are `{public_url}/hooks/{token}`.
    pub public_url: Option<String>,
    /// Without `public_url`: advertise `http://{bound address}` (local simulator setups).
    pub advertise_listen_addr: bool,
    /// Executions running at once.
    pub workers: usize,
    /// Largest webhook body accepted.
    pub body_limit: usize,
    /// Jobs queued before intake answers 503.
    pub max_queue: u64,
    /// How long in-flight executions may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// How long executions are kept.
    pub retention: Duration,
    /// Lease on a claimed job (renewed while it runs).
    pub lease: Duration,
    /// Fields forced on connections (e.g. the simulator's `base_url`).
    pub overrides: ConnectionOverrides,
    /// Unset `${VAR}`s read as this value (used with the embedded simulator).
    pub env_fallback: Option<String>,
    /// This node's name in `/healthz`, `/metrics` and logs; by default `{hostname}:{port}`.
    pub node_id: Option<String>,
}

impl ServeConfig {
    /// Defaults for a folder.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ServeConfig {
            dir: dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            db: Backend::Sqlite(PathBuf::from("weft.db")),
            db_pool: crate::store::postgres::POOL_SIZE,
            public_url: None,
            admin_token: None,
            advertise_listen_addr: false,
            workers: 64,
            body_limit: 1024 * 1024,
            max_queue: 100_000,
            shutdown_grace: Duration::from_secs(10),
            retention: Duration::from_secs(30 * 86_400),
            lease: Duration::from_secs(30),
            overrides: ConnectionOverrides::new(),
            env_fallback: None,
            node_id: None,
        }
    }
}

/// `weft serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Scenario files failed validation (every problem listed).
    #[error("{count} scenario file(s) failed validation")]
    Invalid {
        /// How many files failed.
        count: usize,
        /// Their errors.
        errors: Vec<LoadError>,
    },
    /// Two scenarios share a name.
    #[error(
        "scenario name `{name}` is used by both `{first}` and `{second}`; names must be unique"
    )]
    DuplicateName {
        /// The name.
        name: String,
        /// One file.
        first: String,
        /// The other.
        second: String,
    },
    /// The folder could not be read.
    #[error("cannot read scenario folder `{dir}`: {source}")]
    Dir {
        /// The folder.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Loads every scenario file of a folder; all must be valid.
pub fn load_dir(
    dir: &Path,
    registry: &Registry,
    overrides: &ConnectionOverrides,
    env_fallback: Option<&str>,
) -> Result<Vec<Scenario>, ServeError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ServeError::Dir {
        dir: dir.display().to_string(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    let fallback = env_fallback.map(str::to_owned);
    let env = move |name: &str| std::env::var(name).ok().or_else(|| fallback.clone());
    let opts = LoadOptions {
        env: &env,
        overrides,
    };
    let mut scenarios: Vec<Scenario> = Vec::new();
    let mut errors = Vec::new();
    for file in &files {
        match load_file_with(file, registry, &opts) {
            Ok(s) => scenarios.push(s),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(ServeError::Invalid {
            count: errors.len(),
            errors,
        });
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for s in &scenarios {
        if let Some(first) = seen.insert(&s.name, &s.file) {
            return Err(ServeError::DuplicateName {
                name: s.name.clone(),
                first: first.to_owned(),
                second: s.file.clone(),
            });
        }
    }
    Ok(scenarios)
}

/// A hook call waiting for its execution's `webhook.respond` answer, or the answer that
/// arrived before the call started waiting.
pub(crate) enum Waiter {
    /// The hook handler waits on this channel.
    Waiting(oneshot::Sender<Option<Value>>),
    /// The execution finished first.
    Done(Option<Value>),
}

/// Where a hook token leads.
#[derive(Clone, Debug)]
pub(crate) struct HookTarget {
    pub scenario: Arc<Scenario>,
}

/// State shared by the HTTP handlers, workers and background loops.
pub(crate) struct Shared {
    pub scenarios: HashMap<String, Arc<Scenario>>,
    pub hooks: Vec<(String, HookTarget)>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    pub wake: Notify,
    pub handoff: crate::worker::Handoff,
    pub workers: crate::worker::Workers,
    pub accepting: AtomicBool,
    pub stopping: watch::Sender<bool>,
    pub waiters: Mutex<HashMap<i64, Waiter>>,
    pub completed: AtomicU64,
    pub node_id: String,
    pub config: ServeConfig,
}

impl Shared {
    /// Work was queued for claiming (not handed over): wake this node's dispatcher.
    pub fn work_queued(&self) {
        self.handoff.mark_unclaimed();
        self.wake.notify_one();
    }

    /// The hook target for a token (constant-time comparison against each token).
    pub fn hook(&self, token: &str) -> Option<&HookTarget> {
        let mut found = None;
        for (t, target) in &self.hooks {
            if crate::hooks::tokens_equal(t, token) {
                found = Some(target);
            }
        }
        found
    }
}

/// The machine's name, for node ids (`weft` when it cannot be read).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "weft".to_owned())
}

/// The server.
pub struct Server;

/// A running server.
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    http: JoinHandle<()>,
    workers: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl Server {
    /// Validates every scenario, opens the store, binds and starts everything.
    pub async fn start(
        config: ServeConfig,
        registry: &Registry,
    ) -> Result<RunningServer, ServeError> {
        let scenarios = load_dir(
            &config.dir,
            registry,
            &config.overrides,
            config.env_fallback.as_deref(),
        )?;
        let store = crate::store::open_pooled(&config.db, true, config.db_pool).await?;
        Self::start_with(config, scenarios, store).await
    }

    /// Starts with already loaded scenarios and an open store.
    pub async fn start_with(
        config: ServeConfig,
        scenarios: Vec<Scenario>,
        store: Arc<dyn Store>,
    ) -> Result<RunningServer, ServeError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
        let public_url = match (&config.public_url, config.advertise_listen_addr) {
            (Some(u), _) => Some(u.trim_end_matches('/').to_owned()),
            (None, true) => Some(format!("http://{addr}")),
            (None, false) => None,
        };

        let mut by_name = HashMap::new();
        // Scenarios started by a hook, each with whether its trigger registers with its app.
        let mut instant = Vec::new();
        for s in scenarios {
            let s = Arc::new(s);
            by_name.insert(s.name.clone(), s.clone());
            let Some(trigger) = s.trigger_module().as_trigger() else {
                continue;
            };
            if trigger.trigger_kind() == TriggerKind::Instant {
                let registers = trigger.event().is_some();
                instant.push((s, registers));
            }
        }
        // Every hook's token asked for at once: on a new database each is an insert, and the
        // store commits them together instead of one after the other, each with its own fsync.
        let tokens = futures_util::future::try_join_all(
            instant
                .iter()
                .map(|(s, _)| store.hook_token(&s.name, s.graph.node(s.trigger).id)),
        )
        .await?;
        let mut hooks = Vec::new();
        let mut to_activate = Vec::new();
        for ((s, registers), token) in instant.into_iter().zip(tokens) {
            let path = format!("/hooks/{token}");
            match &public_url {
                Some(base) => {
                    tracing::info!(message = "Hook ready.", scenario = %s.name, url = %format!("{base}{path}"))
                }
                None => tracing::info!(message = "Hook ready.", scenario = %s.name, path = %path),
            }
            // A trigger with an app event is registered with its app (below).
            if registers {
                to_activate.push((
                    s.clone(),
                    format!("{}{path}", public_url.clone().unwrap_or_default()),
                ));
            }
            hooks.push((token, HookTarget { scenario: s }));
        }
        let (stopping, _) = watch::channel(false);
        let node_id = config
            .node_id
            .clone()
            .unwrap_or_else(|| format!("{}:{}", hostname(), addr.port()));
        let shared = Arc::new(Shared {
            scenarios: by_name,
            hooks,
            store: store.clone(),
            metrics: Metrics::default(),
            wake: Notify::new(),
            handoff: crate::worker::Handoff::new(config.workers.max(1)),
            workers: crate::worker::Workers::new(config.workers),
            accepting: AtomicBool::new(true),
            stopping,
            waiters: Mutex::new(HashMap::new()),
            completed: AtomicU64::new(0),
            node_id,
            config,
        });
        if let Ok(depth) = store.queue_depth().await {
            shared.metrics.queue_depth.store(depth, Ordering::Relaxed);
        }

        if public_url.is_some() {
            for (s, url) in to_activate {
                // Nodes starting together take turns: the first registers the webhook, the
                // next ones find it registered and reuse it.
                let lock_name = format!("activate:{}:{}", s.name, s.graph.node(s.trigger).id);
                match store.cluster_lock(&lock_name).await {
                    Ok(lock) => {
                        activate(&shared, &s, &url).await;
                        drop(lock);
                    }
                    Err(e) => {
                        tracing::error!(message = "Cannot take the activation lock; the trigger is not activated.", scenario = %s.name, error = %e)
                    }
                }
            }
        } else if !to_activate.is_empty() {
            tracing::warn!(
                message = "No --public-url: app webhooks were not registered.",
                triggers = to_activate.len()
            );
        }

        let app = crate::intake::router(shared.clone());
        let mut stop_rx = shared.stopping.subscribe();
        let http = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(message = "HTTP server failed.", error = %e);
            }
        });
        let workers = tokio::spawn(crate::worker::dispatch(shared.clone()));
        let background = crate::background::spawn_all(shared.clone());
        tracing::info!(message = "Serving.", addr = %addr, node = %shared.node_id, scenarios = shared.scenarios.len(), database = %shared.config.db.display());
        Ok(RunningServer {
            addr,
            shared,
            http,
            workers,
            background,
        })
    }
}

async fn activate(shared: &Shared, s: &Arc<Scenario>, hook_url: &str) {
    let node = s.graph.node(s.trigger);
    let Some(trigger) = node.module.as_trigger() else {
        return;
    };
    match trigger
        .activate(node.connection.as_ref(), &node.params, hook_url)
        .await
    {
        Ok(data) => {
            let reg = Registration {
                scenario: s.name.clone(),
                module_id: node.id,
                hook_url: hook_url.to_owned(),
                data,
            };
            if let Err(e) = shared.store.save_registration(reg).await {
                tracing::error!(message = "Cannot save the webhook registration.", scenario = %s.name, error = %e);
            } else {
                tracing::info!(message = "Trigger activated.", scenario = %s.name, event = trigger.event().unwrap_or_default());
            }
        }
        Err(e) => {
            let msg = s.redactor.text(&e.message);
            tracing::error!(message = "Cannot activate the trigger.", scenario = %s.name, kind = %e.kind, error = %msg);
        }
    }
}

impl RunningServer {
    /// The server's base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Hook tokens by scenario name.
    pub fn hook_tokens(&self) -> Vec<(String, String)> {
        self.shared
            .hooks
            .iter()
            .map(|(t, h)| (h.scenario.name.clone(), t.clone()))
            .collect()
    }

    /// This node's id (as in `/healthz`).
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// Executions finished since start.
    pub fn completed(&self) -> u64 {
        self.shared.completed.load(Ordering::Relaxed)
    }

    /// The store.
    pub fn store(&self) -> Arc<dyn Store> {
        self.shared.store.clone()
    }

    /// Waits until the queue is empty and nothing runs, or the timeout passes.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.shared.metrics.queue_depth.load(Ordering::Relaxed) == 0 {
                if let Ok(0) = self.shared.store.queue_depth().await {
                    return true;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resolves when a shutdown signal (Ctrl-C, SIGTERM) arrives.
    pub async fn signal() {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {},
            () = term => {},
        }
    }

    /// Graceful shutdown: stop intake, let running executions finish within the grace
    /// period, leave the rest queued.
    pub async fn shutdown(self) {
        tracing::info!(message = "Shutting down.");
        self.shared.accepting.store(false, Ordering::SeqCst);
        let _ = self.shared.stopping.send(true);
        self.shared.wake.notify_waiters();
        let _ = self.http.await;
        let _ = self.workers.await;
        for b in self.background {
            b.abort();
        }
        tracing::info!(message = "Stopped.");
    }
}
