//! Storage: the durable queue, execution history, incomplete executions, hook tokens and
//! app webhook registrations, behind one trait with two backends: the embedded SQLite file
//! ([`SqliteStore`], one node) and PostgreSQL ([`PostgresStore`], several nodes sharing one
//! queue).

pub mod postgres;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use weft_engine::exec::{ExecutionRecord, Incomplete};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Where the data lives: an SQLite file, or a PostgreSQL URL (`postgres://...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite database file.
    Sqlite(std::path::PathBuf),
    /// PostgreSQL connection URL.
    Postgres(String),
}

impl Backend {
    /// `postgres://` or `postgresql://` URLs select PostgreSQL; anything else is a file path.
    pub fn parse(db: &str) -> Self {
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            Backend::Postgres(db.to_owned())
        } else {
            Backend::Sqlite(db.into())
        }
    }

    /// The location without credentials, for messages.
    pub fn display(&self) -> String {
        match self {
            Backend::Sqlite(p) => p.display().to_string(),
            Backend::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    format!("{}***{}", &url[..scheme + 3], &url[at..])
                }
                _ => url.clone(),
            },
        }
    }
}

/// Opens the store. `serving`: this process will run workers, so an SQLite file (owned by
/// one node) gets back at once the jobs a crashed process left leased, and a PostgreSQL
/// store listens for work queued by other nodes. PostgreSQL leases are never given back at
/// start: other nodes may be running them; they expire instead.
pub async fn open(
    backend: &Backend,
    serving: bool,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    open_pooled(backend, serving, postgres::POOL_SIZE).await
}

/// Like [`open`], with at most `pool` connections to PostgreSQL (unused with SQLite).
pub async fn open_pooled(
    backend: &Backend,
    serving: bool,
    pool: usize,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match backend {
        Backend::Sqlite(path) => {
            let store = SqliteStore::open(path)?;
            if serving {
                let recovered = store.recover_leases().await?;
                if recovered > 0 {
                    tracing::warn!(
                        message = "Requeued jobs left running by the previous process.",
                        count = recovered
                    );
                }
            }
            Ok(std::sync::Arc::new(store))
        }
        Backend::Postgres(url) => Ok(std::sync::Arc::new(
            PostgresStore::connect_pooled(url, serving, pool).await?,
        )),
    }
}

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(String),
    /// The backend cannot be reached right now (retry later).
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    /// The storage thread is gone (shutting down).
    #[error("the storage is closed")]
    Closed,
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// A lock held across every node sharing the store until it is dropped (see
/// [`Store::cluster_lock`]).
pub struct ClusterLock {
    /// Whatever holds the lock (a database session); `None` for a local lock.
    guard: Option<Box<dyn Send + Sync>>,
}

impl ClusterLock {
    /// A lock nobody else can contend for: the store belongs to this process alone.
    pub fn local() -> Self {
        ClusterLock { guard: None }
    }

    /// A lock released when `guard` is dropped.
    pub fn held(guard: Box<dyn Send + Sync>) -> Self {
        ClusterLock { guard: Some(guard) }
    }
}

impl std::fmt::Debug for ClusterLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLock")
            .field("shared", &self.guard.is_some())
            .finish()
    }
}

/// What a queued job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Run the scenario from a trigger payload.
    Trigger,
    /// Resume an incomplete execution (payload: `{ "incomplete_id": ... }`).
    Resume,
}

impl JobKind {
    fn as_str(self) -> &'static str {
        match self {
            JobKind::Trigger => "trigger",
            JobKind::Resume => "resume",
        }
    }
    fn parse(s: &str) -> Self {
        if s == "resume" {
            JobKind::Resume
        } else {
            JobKind::Trigger
        }
    }
}

/// A job to queue.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// Scenario name.
    pub scenario: String,
    /// Trigger or resume.
    pub kind: JobKind,
    /// The trigger payload (or the resume reference).
    pub payload: Value,
    /// `payload` as JSON text when the caller already has it (a webhook's body as it came):
    /// stored as is instead of serializing `payload` again. It must parse to `payload`.
    pub payload_json: Option<String>,
    /// Jobs with the same key are queued once (e.g. a Sonar delivery `uuid`).
    pub dedup_key: Option<String>,
    /// Run this scenario's jobs one at a time, in order.
    pub sequential: bool,
    /// Queue it already claimed by this node under a lease this long (its first attempt):
    /// the node runs it straight from memory, without a claim (see `worker`). `None`: any
    /// node claims it.
    pub lease: Option<Duration>,
}

/// A value as the JSON text a store keeps.
fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Stored JSON text read back.
fn parse_json(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The text a job's payload is stored as: the JSON it came as (`given`), else `payload`
/// serialized.
fn payload_text(payload: &Value, given: Option<String>) -> Result<String, StoreError> {
    given.map_or_else(|| to_json(payload), Ok)
}

/// What to do with a job once it is committed (see [`Store::enqueue`]).
pub type OnQueued = Box<dyn FnOnce(Job) + Send + Sync>;

/// The result of queueing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued with this id.
    Queued(i64),
    /// A job with the same dedup key was queued before; nothing was added.
    Duplicate,
}

/// A claimed job.
#[derive(Clone, Debug)]
pub struct Job {
    /// Queue id.
    pub id: i64,
    /// Scenario name.
    pub scenario: String,
    /// Trigger or resume.
    pub kind: JobKind,
    /// Payload.
    pub payload: Value,
    /// How many times it was claimed (1 the first time).
    pub attempts: u32,
}

/// An execution in a listing.
#[derive(Clone, Debug, Serialize)]
pub struct ExecutionSummary {
    /// Execution id.
    pub id: String,
    /// Scenario name.
    pub scenario: String,
    /// Status.
    pub status: String,
    /// Operations.
    pub operations: u64,
    /// Wall time.
    pub duration_ms: u64,
    /// Start time.
    pub started_at: String,
}

/// Which executions to list.
#[derive(Clone, Debug, Default)]
pub struct ExecutionFilter {
    /// Only this scenario.
    pub scenario: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// A webhook URL token of a scenario's instant trigger.
#[derive(Clone, Debug, Serialize)]
pub struct Hook {
    /// The secret part of the URL.
    pub token: String,
    /// Scenario name.
    pub scenario: String,
    /// The trigger's module id.
    pub module_id: u32,
}

/// A registration of a hook URL with an app (e.g. a Sonar webhook).
#[derive(Clone, Debug, Serialize)]
pub struct Registration {
    /// Scenario name.
    pub scenario: String,
    /// The trigger's module id.
    pub module_id: u32,
    /// The URL registered.
    pub hook_url: String,
    /// What the app returned (e.g. `{ webhook_id }`), needed to remove it.
    pub data: Value,
}

/// A stored incomplete execution.
#[derive(Clone, Debug, Serialize)]
pub struct IncompleteRow {
    /// Id.
    pub id: String,
    /// The execution that stored it.
    pub execution_id: String,
    /// Scenario name.
    pub scenario: String,
    /// What `break` stored.
    pub state: Incomplete,
    /// The trigger payload of the execution.
    pub trigger: Value,
}

/// The storage backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Queues a job durably; returns once it is committed. `then` is called with the queued
    /// job (its payload moved in, `attempts` 1 when queued under a lease) as soon as it is
    /// committed — before this returns, even if the caller stopped waiting — on the store's
    /// own thread or task: it must be quick. Not called for a duplicate or a failure.
    async fn enqueue(&self, job: NewJob, then: Option<OnQueued>) -> Result<Enqueued, StoreError>;
    /// Claims up to `max` runnable jobs under a lease.
    async fn claim(&self, max: usize, lease: Duration) -> Result<Vec<Job>, StoreError>;
    /// Records a finished execution and removes its job, in one transaction; stores the
    /// record's incomplete entries (scheduling automatic retries) and, for a resume job,
    /// resolves or reschedules the incomplete execution it resumed. The record is shared so
    /// that a store may encode it on its own thread.
    async fn complete(
        &self,
        job: &Job,
        record: &Arc<ExecutionRecord>,
        resumed: Option<&IncompleteRow>,
    ) -> Result<(), StoreError>;
    /// Extends the leases of running jobs (heartbeat).
    async fn extend_leases(&self, job_ids: Vec<i64>, lease: Duration) -> Result<(), StoreError>;
    /// Gives claimed jobs back to the queue (graceful shutdown).
    async fn release(&self, job_ids: Vec<i64>) -> Result<(), StoreError>;
    /// Jobs waiting or running.
    async fn queue_depth(&self) -> Result<u64, StoreError>;
    /// Whether the scenario has a sequential job or a resume waiting or running (what a
    /// schedule's next tick waits for: every tick is a sequential job).
    async fn has_pending(&self, scenario: &str) -> Result<bool, StoreError>;
    /// Queues resume jobs for incomplete executions whose retry time has come.
    async fn schedule_due_retries(&self) -> Result<usize, StoreError>;
    /// Marks an execution's incomplete entries for retry now; returns how many.
    async fn retry_now(&self, execution_id: &str) -> Result<usize, StoreError>;
    /// An incomplete execution.
    async fn incomplete(&self, id: &str) -> Result<Option<IncompleteRow>, StoreError>;
    /// The hook token of a trigger, created on first use and then stable.
    async fn hook_token(&self, scenario: &str, module_id: u32) -> Result<String, StoreError>;
    /// Every hook token.
    async fn hooks(&self) -> Result<Vec<Hook>, StoreError>;
    /// Saves an app registration.
    async fn save_registration(&self, reg: Registration) -> Result<(), StoreError>;
    /// The registrations of a scenario.
    async fn registrations(&self, scenario: &str) -> Result<Vec<Registration>, StoreError>;
    /// Forgets a registration.
    async fn delete_registration(&self, scenario: &str, module_id: u32) -> Result<(), StoreError>;
    /// Lists executions, newest first (SQLite: the most recently finished; PostgreSQL: the
    /// most recently started; docs/decisions/0010).
    async fn list_executions(
        &self,
        filter: ExecutionFilter,
    ) -> Result<Vec<ExecutionSummary>, StoreError>;
    /// One execution record.
    async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError>;
    /// Deletes executions that started before `cutoff` (RFC 3339); returns how many.
    async fn prune_executions(&self, older_than: Duration) -> Result<u64, StoreError>;

    /// Whether other processes use the same store at the same time (several nodes on one
    /// PostgreSQL database). Counters kept in memory, such as the queue depth, then drift and
    /// are refreshed from the store. The default: the store belongs to this process.
    fn is_shared(&self) -> bool {
        false
    }

    /// Resolves when another process may have queued work (PostgreSQL `NOTIFY`), so that idle
    /// workers claim at once instead of at their next poll. The default never resolves: only
    /// this process queues work, and it wakes its own workers.
    async fn queue_notified(&self) {
        std::future::pending::<()>().await;
    }

    /// Takes the lock `name`, shared by every process using this store, waiting while
    /// another holds it; released when the returned guard is dropped (or its process dies).
    /// Used to activate app webhooks once per cluster. The default is a lock nobody else
    /// contends for.
    async fn cluster_lock(&self, _name: &str) -> Result<ClusterLock, StoreError> {
        Ok(ClusterLock::local())
    }
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn display_masks_the_password() {
        let b = Backend::parse("postgres://weft:s3cret@db.internal:5432/weft");
        assert_eq!(b.display(), "postgres://***@db.internal:5432/weft");
        assert_eq!(Backend::parse("weft.db").display(), "weft.db");
    }
}
