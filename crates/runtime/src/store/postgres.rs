//! The PostgreSQL store: several `weft serve` nodes share one queue, one history and one set
//! of hook tokens (`--db postgres://...`).
//!
//! - **Pool**: a bounded `deadpool-postgres` pool ([`POOL_SIZE`] connections) over
//!   `tokio-postgres`; a connection the server dropped is replaced on the next checkout, so a
//!   node recovers by itself when the database returns. Why these crates:
//!   `docs/decisions/0004-postgres-driver.md`.
//! - **Migrations**: versioned, applied at open inside one transaction that holds an advisory
//!   lock, so nodes starting at the same moment apply each migration once (`schema_version`).
//! - **Group commit**: `enqueue` hands its job to a committer task that takes every job waiting
//!   and writes them with one multi-row statement (dedup check and queue rows together: one
//!   round trip, one implicit transaction, one WAL flush) before answering any of them. A batch
//!   whose connection failed is written again on another connection; should the lost answer
//!   have been a commit, jobs with a dedup key are still queued once, others possibly twice
//!   (at least once, as when a sender retries after a 503).
//! - **Completion** is group-committed the same way: each finished job's execution record,
//!   the removal of its queue row, the resumed incomplete execution and the new incomplete
//!   entries, for every job finished meanwhile, in one statement.
//! - **Claims**: `FOR UPDATE SKIP LOCKED` in batches, leases on the database's clock; a
//!   sequential scenario only ever offers its oldest row (of its sequential jobs and resumes).
//!   Expired leases are taken by any node.
//! - **Wakeups**: every commit that queues work sends `NOTIFY weft_queue` (a statement trigger
//!   on the queue, so no extra round trip); a serving node keeps one dedicated connection on
//!   `LISTEN weft_queue` (reconnecting with backoff) and wakes its idle workers. Polling stays
//!   as the fallback.
//! - **Cluster locks**: `pg_advisory_lock` on a dedicated connection, released when the guard
//!   drops the connection (or when the node dies and PostgreSQL closes its session).
//!
//! JSON is stored as text, exactly as serialized (key order kept), like the SQLite store.

use std::collections::HashSet;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Config, NoTls, Row};
use weft_engine::exec::{ExecutionRecord, Incomplete};

use super::{
    parse_json, payload_text, to_json, ClusterLock, Enqueued, ExecutionFilter, ExecutionSummary,
    Hook, IncompleteRow, Job, JobKind, NewJob, OnQueued, Registration, Store, StoreError,
};

/// Connections in a node's pool, by default (`weft serve --db-pool`).
pub const POOL_SIZE: usize = 16;
/// Most jobs written by one group commit.
const MAX_GROUP: usize = 512;
/// Group commits in flight at once (each on its own connection); while they run, the next
/// batch gathers.
const MAX_INFLIGHT_BATCHES: usize = 4;
/// How long a batch of finished executions keeps gathering before it is written.
const RECORD_LINGER: Duration = Duration::from_millis(10);
/// Enqueues waiting for the committer before `enqueue` itself waits (back pressure).
const PENDING_CAPACITY: usize = 16_384;
/// How often a batch is written again after its connection failed.
const BATCH_ATTEMPTS: u32 = 3;
/// How long one store operation may take before it counts as the database being unreachable.
const OP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long checking out, creating or recycling a pooled connection may take.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// The channel of `NOTIFY`/`LISTEN`.
const CHANNEL: &str = "weft_queue";
/// First key of weft's advisory locks (`'weft'` in ASCII); the second is 0 for migrations,
/// `hashtext(name)` for [`Store::cluster_lock`].
const LOCK_SPACE: i32 = 0x7765_6674;
/// Dedup keys older than this are forgotten by `prune_executions` (as in SQLite).
const DEDUP_DAYS: i32 = 7;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE queue (
    id BIGSERIAL PRIMARY KEY,
    scenario TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    dedup_key TEXT UNIQUE,
    sequential BOOLEAN NOT NULL DEFAULT FALSE,
    enqueued_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    available_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until TIMESTAMPTZ,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_scenario ON queue (scenario, id);
-- Every statement that queues work wakes the listening nodes when it commits (one
-- notification per transaction, however many rows).
CREATE FUNCTION weft_queue_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('weft_queue', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER queue_notify AFTER INSERT ON queue
    FOR EACH STATEMENT EXECUTE FUNCTION weft_queue_notify();
CREATE TABLE dedup (
    key TEXT PRIMARY KEY,
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX dedup_seen ON dedup (seen_at);
CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    seq BIGSERIAL NOT NULL,
    scenario TEXT NOT NULL,
    status TEXT NOT NULL,
    operations BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    started_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX executions_started ON executions (started_at, seq);
CREATE INDEX executions_scenario ON executions (scenario, started_at);
CREATE TABLE incomplete (
    id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    scenario TEXT NOT NULL,
    state TEXT NOT NULL,
    trigger TEXT NOT NULL,
    next_retry_at TIMESTAMPTZ,
    resolved BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX incomplete_due ON incomplete (next_retry_at) WHERE NOT resolved;
CREATE INDEX incomplete_execution ON incomplete (execution_id);
CREATE TABLE hooks (
    token TEXT PRIMARY KEY,
    scenario TEXT NOT NULL,
    module_id BIGINT NOT NULL,
    UNIQUE (scenario, module_id)
);
CREATE TABLE registrations (
    scenario TEXT NOT NULL,
    module_id BIGINT NOT NULL,
    hook_url TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (scenario, module_id)
);
"#,
    r#"
-- Rows queued already claimed by the node that received them (run from its memory) are no
-- work for the other nodes: notify only for a row nobody holds (PostgreSQL delivers one
-- notification per transaction however many rows ask).
DROP TRIGGER queue_notify ON queue;
CREATE TRIGGER queue_notify AFTER INSERT ON queue
    FOR EACH ROW WHEN (NEW.lease_until IS NULL) EXECUTE FUNCTION weft_queue_notify();
"#,
];

/// Writes a batch of jobs: dedup keys and queue rows in one statement (one implicit
/// transaction, one round trip). A row with a lease (`$6`, seconds) is queued already claimed
/// by the node that received it (its first attempt). Ids are drawn in arrival order (`ord`), so a sequential
/// scenario runs its jobs in the order they came; answers `(ord, id)` for each row queued.
const ENQUEUE_BATCH: &str = "
WITH input AS MATERIALIZED (
    SELECT nextval('queue_id_seq') AS id, t.*
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::float8[])
        WITH ORDINALITY AS t(scenario, kind, payload, dedup_key, sequential, lease, ord)
    ORDER BY t.ord
), fresh AS (
    INSERT INTO dedup (key) SELECT dedup_key FROM input WHERE dedup_key IS NOT NULL
    ON CONFLICT DO NOTHING RETURNING key
), inserted AS (
    INSERT INTO queue (id, scenario, kind, payload, dedup_key, sequential, lease_until, attempts)
    SELECT id, scenario, kind, payload, dedup_key, sequential,
        now() + make_interval(secs => lease), CASE WHEN lease IS NULL THEN 0 ELSE 1 END
    FROM input
    WHERE dedup_key IS NULL OR dedup_key IN (SELECT key FROM fresh)
    ORDER BY id
    ON CONFLICT DO NOTHING RETURNING id
)
SELECT input.ord, inserted.id FROM input JOIN inserted ON inserted.id = input.id";

/// Records finished jobs in one statement (one row of `$1`..`$9` per job, one row of
/// `$10`..`$15` per new incomplete entry): each execution (replacing a record with the same
/// id), the removal of its queue row, the resolution of the incomplete execution it resumed,
/// and its new incomplete entries. When a job's queue row was already gone and its record
/// already there, an earlier attempt whose answer was lost committed all this: its incomplete
/// entries are not written twice.
const COMPLETE_BATCH: &str = "
WITH input AS MATERIALIZED (
    SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[],
                         $7::text[], $8::text[], $9::text[])
        AS t(job_id, id, scenario, status, operations, duration_ms, started_at, record, resumed_id)
), del AS (
    DELETE FROM queue WHERE id = ANY($1) RETURNING id
), ups AS (
    INSERT INTO executions (id, scenario, status, operations, duration_ms, started_at, record)
    SELECT id, scenario, status, operations, duration_ms, started_at, record FROM input
    ON CONFLICT (id) DO UPDATE SET scenario = EXCLUDED.scenario, status = EXCLUDED.status,
        operations = EXCLUDED.operations, duration_ms = EXCLUDED.duration_ms,
        started_at = EXCLUDED.started_at, record = EXCLUDED.record
    RETURNING id, (xmax = 0) AS inserted
), resolved AS (
    UPDATE incomplete SET resolved = TRUE, next_retry_at = NULL WHERE id = ANY($9) RETURNING id
), fresh AS (
    SELECT i.id FROM input i
    WHERE i.job_id IN (SELECT id FROM del) OR i.id IN (SELECT id FROM ups WHERE inserted)
), added AS (
    INSERT INTO incomplete (id, execution_id, scenario, state, trigger, next_retry_at)
    SELECT n.id, n.execution_id, n.scenario, n.state, n.trigger,
        CASE WHEN n.secs IS NULL THEN NULL ELSE now() + make_interval(secs => n.secs) END
    FROM unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::float8[])
        AS n(id, execution_id, scenario, state, trigger, secs)
    WHERE n.execution_id IN (SELECT id FROM fresh)
    RETURNING id
)
SELECT count(*) FROM added";

/// Takes up to `$2` runnable jobs under a lease of `$1` seconds. `SKIP LOCKED`: nodes claiming
/// at the same moment take different rows. A sequential scenario offers only its oldest row
/// (of its sequential jobs and resumes), and none while that row is leased.
const CLAIM: &str = "
UPDATE queue SET lease_until = now() + make_interval(secs => $1), attempts = attempts + 1
WHERE id IN (
    SELECT q.id FROM queue q
    WHERE (q.lease_until IS NULL OR q.lease_until < now()) AND q.available_at <= now()
      AND (NOT q.sequential OR q.id = (SELECT min(q2.id) FROM queue q2 WHERE q2.scenario = q.scenario AND (q2.sequential OR q2.kind = 'resume')))
    ORDER BY q.id
    LIMIT $2
    FOR UPDATE SKIP LOCKED)
RETURNING id, scenario, kind, payload, attempts";

/// Resume jobs for due retries; rows are locked by the `UPDATE`, so two nodes never queue the
/// same retry.
const SCHEDULE_DUE_RETRIES: &str = "
WITH due AS (
    UPDATE incomplete SET next_retry_at = NULL
    WHERE NOT resolved AND next_retry_at IS NOT NULL AND next_retry_at <= now()
    RETURNING id, scenario
)
INSERT INTO queue (scenario, kind, payload, sequential)
SELECT scenario, 'resume', json_build_object('incomplete_id', id)::text, FALSE FROM due
RETURNING id";

/// PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    pool: Pool,
    config: Config,
    pending: mpsc::Sender<Pending>,
    completions: mpsc::Sender<Completion>,
    wake: Arc<Notify>,
    listener: Option<JoinHandle<()>>,
}

/// An enqueue waiting for its group commit.
struct Pending {
    scenario: String,
    kind: JobKind,
    payload: String,
    dedup_key: Option<String>,
    sequential: bool,
    lease: Option<f64>,
    /// The parsed payload and what to do with the job once committed.
    then: Option<(Value, OnQueued)>,
    reply: oneshot::Sender<Result<Enqueued, StoreError>>,
}

/// A finished job waiting for its group commit.
struct Completion {
    job_id: i64,
    record_id: String,
    scenario: String,
    status: &'static str,
    operations: i64,
    duration_ms: i64,
    started_at: String,
    record: String,
    resumed_id: Option<String>,
    /// The trigger of the new incomplete entries (empty without any).
    trigger: String,
    /// New incomplete entries: id, state, seconds until the automatic retry.
    incomplete: Vec<(String, String, Option<f64>)>,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// Whether the error says the server or the connection is gone (retry later), rather than
/// that the statement itself failed.
fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08")
                || c.starts_with("57P")
                || *code == SqlState::TOO_MANY_CONNECTIONS
                || *code == SqlState::CANNOT_CONNECT_NOW
        }
        // No SQLSTATE: the socket, the connection or a timeout failed.
        None => {
            e.is_closed()
                || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
                || e.to_string().starts_with("error connecting")
                || e.to_string().starts_with("timeout")
        }
    }
}

fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if is_unavailable(&e) {
        StoreError::Unavailable(db_message(&e))
    } else {
        StoreError::Database(db_message(&e))
    }
}

/// The same error for each caller of a batch (`StoreError` holds no source to share).
fn copy_err(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Database(m) => StoreError::Database(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::Closed => StoreError::Closed,
    }
}

fn pool_err(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => pg_err(e),
        PoolError::Timeout(_) => StoreError::Unavailable(format!(
            "no database connection within {} s",
            POOL_TIMEOUT.as_secs()
        )),
        PoolError::Closed => StoreError::Closed,
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Runs a store operation with a deadline: a database that does not answer counts as
/// unreachable instead of holding a webhook or a worker forever.
async fn timed<T>(op: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Unavailable(format!(
            "the database did not answer within {} s",
            OP_TIMEOUT.as_secs()
        ))),
    }
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    idx: usize,
) -> Result<T, StoreError> {
    row.try_get(idx)
        .map_err(|e| StoreError::Corrupt(db_message(&e)))
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The lease, at least one millisecond.
fn lease_secs(lease: Duration) -> f64 {
    secs(lease).max(0.001)
}

async fn migrate(client: &mut Object) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    // Held until commit: a node starting at the same moment waits here, then finds the
    // schema up to date.
    tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_SPACE])
        .await
        .map_err(pg_err)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .await
        .map_err(pg_err)?;
    let row = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await
        .map_err(pg_err)?;
    let version: i32 = get(&row, 0)?;
    let known = MIGRATIONS.len();
    let applied = usize::try_from(version).unwrap_or(0);
    if applied > known {
        return Err(StoreError::Database(format!(
            "the database schema is at version {applied}, newer than this weft knows ({known}); upgrade weft on this node"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql).await.map_err(pg_err)?;
        tracing::info!(message = "Applied a database migration.", version = i + 1);
    }
    if applied < known {
        let new_version = i32::try_from(known).unwrap_or(i32::MAX);
        tx.execute("DELETE FROM schema_version", &[])
            .await
            .map_err(pg_err)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&new_version],
        )
        .await
        .map_err(pg_err)?;
    }
    tx.commit().await.map_err(pg_err)
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`), applies pending
    /// migrations and starts the group committer. `serving`: also listen for work queued by
    /// other nodes (one extra connection).
    pub async fn connect(url: &str, serving: bool) -> Result<Self, StoreError> {
        Self::connect_pooled(url, serving, POOL_SIZE).await
    }

    /// Like [`Self::connect`], with at most `pool` connections (at least 1) in the pool; the
    /// `LISTEN` connection of a serving node comes on top.
    pub async fn connect_pooled(url: &str, serving: bool, pool: usize) -> Result<Self, StoreError> {
        let mut config = Config::from_str(url).map_err(|e| {
            StoreError::Database(format!("invalid PostgreSQL URL: {}", db_message(&e)))
        })?;
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(StoreError::Database(
                "TLS to PostgreSQL is not supported yet: remove `sslmode=require` from the URL and keep the database on a private network (see docs/deploy.md)".into(),
            ));
        }
        if config.get_application_name().is_none() {
            config.application_name("weft");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(POOL_TIMEOUT);
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool.max(1))
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Database(e.to_string()))?;
        {
            let mut client = pool.get().await.map_err(pool_err)?;
            timed(migrate(&mut client)).await?;
        }
        let (tx, rx) = mpsc::channel(PENDING_CAPACITY);
        let wake = Arc::new(Notify::new());
        // Both end by themselves once the store is dropped and the last caller is answered.
        tokio::spawn(gather(pool.clone(), rx, Duration::ZERO, commit_batch));
        let (done_tx, done_rx) = mpsc::channel(PENDING_CAPACITY);
        // Records of finished executions wait up to 10 ms for each other (their workers are
        // already free); webhooks are committed as they come.
        tokio::spawn(gather(pool.clone(), done_rx, RECORD_LINGER, complete_batch));
        let listener = serving.then(|| tokio::spawn(listen(config.clone(), wake.clone())));
        Ok(PostgresStore {
            pool,
            config,
            pending: tx,
            completions: done_tx,
            wake,
            listener,
        })
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_err)
    }

    /// Runs one statement on a pooled connection. A connection that died while idle in the
    /// pool fails its first statement: read-only and idempotent statements (all that go
    /// through here) are then tried once more on a fresh connection.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        timed(async {
            let mut last = None;
            for _ in 0..2 {
                let client = self.client().await?;
                let result = match client.prepare_cached(sql).await {
                    Ok(stmt) => client.query(&stmt, params).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(rows) => return Ok(rows),
                    Err(e) if is_unavailable(&e) => last = Some(pg_err(e)),
                    Err(e) => return Err(pg_err(e)),
                }
            }
            Err(last.unwrap_or(StoreError::Closed))
        })
        .await
    }

    /// Like [`Self::query`], for a statement that changes rows; returns how many.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        timed(async {
            let mut last = None;
            for _ in 0..2 {
                let client = self.client().await?;
                let result = match client.prepare_cached(sql).await {
                    Ok(stmt) => client.execute(&stmt, params).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(n) => return Ok(n),
                    Err(e) if is_unavailable(&e) => last = Some(pg_err(e)),
                    Err(e) => return Err(pg_err(e)),
                }
            }
            Err(last.unwrap_or(StoreError::Closed))
        })
        .await
    }

    async fn notify_queue(&self) {
        if let Err(e) = self.execute("SELECT pg_notify($1, '')", &[&CHANNEL]).await {
            tracing::debug!(message = "Cannot notify other nodes; they find the work at their next poll.", error = %e);
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The listener would otherwise reconnect forever.
        if let Some(listener) = &self.listener {
            listener.abort();
        }
    }
}

/// Gathers what waits on `rx` into batches (up to [`MAX_GROUP`]) and hands each to `commit`,
/// with up to [`MAX_INFLIGHT_BATCHES`] batches in flight; ends when `rx` closes. With a
/// `linger`, a batch keeps gathering for that long after its first item (fewer, larger
/// transactions for work nobody waits on closely).
async fn gather<T, F, Fut>(pool: Pool, mut rx: mpsc::Receiver<T>, linger: Duration, commit: F)
where
    T: Send + 'static,
    F: Fn(Pool, Vec<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let lanes = Arc::new(Semaphore::new(MAX_INFLIGHT_BATCHES));
    while let Some(first) = rx.recv().await {
        // Wait for a free lane before gathering: the batch grows meanwhile.
        let Ok(lane) = lanes.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + linger;
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) if linger.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(p)) => batch.push(p),
                    _ => break,
                },
            }
        }
        let done = commit(pool.clone(), batch);
        tokio::spawn(async move {
            done.await;
            drop(lane);
        });
    }
}

/// Commits one batch of enqueues and answers each.
async fn commit_batch(pool: Pool, batch: Vec<Pending>) {
    // A dedup key seen twice in one batch: the first one counts.
    let mut keys = HashSet::new();
    let mut rows = Vec::with_capacity(batch.len());
    let mut outcome: Vec<Option<usize>> = Vec::with_capacity(batch.len());
    for p in &batch {
        let first = p.dedup_key.as_ref().is_none_or(|k| keys.insert(k.clone()));
        if first {
            outcome.push(Some(rows.len()));
            rows.push(p);
        } else {
            outcome.push(None);
        }
    }
    match timed(write_batch(&pool, &rows)).await {
        Ok(ids) => {
            for (p, slot) in batch.into_iter().zip(outcome) {
                let answer = match slot.and_then(|i| ids.get(i).copied().flatten()) {
                    Some(id) => {
                        if let Some((payload, then)) = p.then {
                            then(Job {
                                id,
                                scenario: p.scenario,
                                kind: p.kind,
                                payload,
                                attempts: u32::from(p.lease.is_some()),
                            });
                        }
                        Enqueued::Queued(id)
                    }
                    None => Enqueued::Duplicate,
                };
                let _ = p.reply.send(Ok(answer));
            }
        }
        Err(e) => {
            tracing::error!(message = "Cannot commit queued jobs.", error = %e, jobs = batch.len());
            for p in batch {
                let _ = p.reply.send(Err(copy_err(&e)));
            }
        }
    }
}

/// Writes the rows; returns, in row order, the id of each row queued (`None`: a duplicate).
async fn write_batch(pool: &Pool, rows: &[&Pending]) -> Result<Vec<Option<i64>>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let scenarios: Vec<&str> = rows.iter().map(|p| p.scenario.as_str()).collect();
    let kinds: Vec<&str> = rows.iter().map(|p| p.kind.as_str()).collect();
    let payloads: Vec<&str> = rows.iter().map(|p| p.payload.as_str()).collect();
    let keys: Vec<Option<&str>> = rows.iter().map(|p| p.dedup_key.as_deref()).collect();
    let sequential: Vec<bool> = rows.iter().map(|p| p.sequential).collect();
    let leases: Vec<Option<f64>> = rows.iter().map(|p| p.lease).collect();
    let params: [&(dyn ToSql + Sync); 6] =
        [&scenarios, &kinds, &payloads, &keys, &sequential, &leases];
    let answer = query_batch(pool, ENQUEUE_BATCH, &params, rows.len()).await?;
    let mut ids = vec![None; rows.len()];
    for row in &answer {
        let ord: i64 = get(row, 0)?;
        let slot = usize::try_from(ord - 1)
            .ok()
            .and_then(|i| ids.get_mut(i))
            .ok_or_else(|| {
                StoreError::Corrupt(format!("the database answered row {ord} of {}", rows.len()))
            })?;
        *slot = Some(get(row, 1)?);
    }
    Ok(ids)
}

/// Runs one batch statement, writing it again (up to [`BATCH_ATTEMPTS`] times) when the
/// connection is lost: the statements are idempotent (dedup keys, upserts).
async fn query_batch(
    pool: &Pool,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    jobs: usize,
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let mut last = StoreError::Closed;
    for attempt in 0..BATCH_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
        }
        let client = match pool.get().await {
            Ok(c) => c,
            Err(e) => {
                last = pool_err(e);
                if matches!(last, StoreError::Unavailable(_)) {
                    continue;
                }
                return Err(last);
            }
        };
        let result = match client.prepare_cached(sql).await {
            Ok(stmt) => client.query(&stmt, params).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(rows) => return Ok(rows),
            Err(e) if is_unavailable(&e) => {
                tracing::warn!(message = "Group commit lost its connection; writing the batch again.", error = %db_message(&e), jobs, attempt = attempt + 1);
                last = pg_err(e);
            }
            Err(e) => return Err(pg_err(e)),
        }
    }
    Err(last)
}

/// Commits one batch of finished jobs and answers each. A record id may appear once per
/// statement (an upsert touches a row once), so a repeated one waits for the next round; a
/// batch the database refuses is written job by job, so that one bad job fails alone.
async fn complete_batch(pool: Pool, batch: Vec<Completion>) {
    let mut rest = batch;
    while !rest.is_empty() {
        let mut seen = HashSet::new();
        let (now, later): (Vec<_>, Vec<_>) = rest
            .into_iter()
            .partition(|c| seen.insert(c.record_id.clone()));
        rest = later;
        match timed(write_completions(&pool, &now)).await {
            Ok(()) => {
                for c in now {
                    let _ = c.reply.send(Ok(()));
                }
            }
            Err(StoreError::Database(e)) if now.len() > 1 => {
                tracing::warn!(message = "A batch of finished jobs was refused; recording them one by one.", error = %e, jobs = now.len());
                for c in now {
                    let result = timed(write_completions(&pool, std::slice::from_ref(&c))).await;
                    let _ = c.reply.send(result);
                }
            }
            Err(e) => {
                for c in now {
                    let _ = c.reply.send(Err(copy_err(&e)));
                }
            }
        }
    }
}

/// Runs [`COMPLETE_BATCH`]; on a lost connection, runs it again on another (the statement
/// recognizes what an earlier attempt committed).
async fn write_completions(pool: &Pool, batch: &[Completion]) -> Result<(), StoreError> {
    let job_ids: Vec<i64> = batch.iter().map(|c| c.job_id).collect();
    let ids: Vec<&str> = batch.iter().map(|c| c.record_id.as_str()).collect();
    let scenarios: Vec<&str> = batch.iter().map(|c| c.scenario.as_str()).collect();
    let statuses: Vec<&str> = batch.iter().map(|c| c.status).collect();
    let operations: Vec<i64> = batch.iter().map(|c| c.operations).collect();
    let durations: Vec<i64> = batch.iter().map(|c| c.duration_ms).collect();
    let started: Vec<&str> = batch.iter().map(|c| c.started_at.as_str()).collect();
    let records: Vec<&str> = batch.iter().map(|c| c.record.as_str()).collect();
    let resumed: Vec<Option<&str>> = batch.iter().map(|c| c.resumed_id.as_deref()).collect();
    let mut inc_ids = Vec::new();
    let mut inc_executions = Vec::new();
    let mut inc_scenarios = Vec::new();
    let mut inc_states = Vec::new();
    let mut inc_triggers = Vec::new();
    let mut inc_secs: Vec<Option<f64>> = Vec::new();
    for c in batch {
        for (id, state, secs) in &c.incomplete {
            inc_ids.push(id.as_str());
            inc_executions.push(c.record_id.as_str());
            inc_scenarios.push(c.scenario.as_str());
            inc_states.push(state.as_str());
            inc_triggers.push(c.trigger.as_str());
            inc_secs.push(*secs);
        }
    }
    let params: [&(dyn ToSql + Sync); 15] = [
        &job_ids,
        &ids,
        &scenarios,
        &statuses,
        &operations,
        &durations,
        &started,
        &records,
        &resumed,
        &inc_ids,
        &inc_executions,
        &inc_scenarios,
        &inc_states,
        &inc_triggers,
        &inc_secs,
    ];
    query_batch(pool, COMPLETE_BATCH, &params, batch.len())
        .await
        .map(|_| ())
}

/// Keeps a connection on `LISTEN weft_queue` and wakes idle workers on each notification;
/// reconnects with backoff. After each (re)connection it wakes them once, for whatever was
/// queued while it was away.
async fn listen(config: Config, wake: Arc<Notify>) {
    let mut backoff = Duration::from_millis(100);
    let mut was_connected = false;
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let listen = client.batch_execute("LISTEN weft_queue");
                tokio::pin!(listen);
                let mut listening = false;
                loop {
                    tokio::select! {
                        r = &mut listen, if !listening => match r {
                            Ok(()) => {
                                listening = true;
                                backoff = Duration::from_millis(100);
                                if was_connected {
                                    tracing::info!(message = "Listening for queued work again.");
                                }
                                was_connected = true;
                                wake.notify_one();
                            }
                            Err(e) => {
                                tracing::warn!(message = "Cannot listen for queued work; polling meanwhile.", error = %db_message(&e));
                                break;
                            }
                        },
                        msg = std::future::poll_fn(|cx| connection.poll_message(cx)) => match msg {
                            Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::warn!(message = "Lost the notification connection; polling until it is back.", error = %db_message(&e));
                                break;
                            }
                            None => break,
                        },
                    }
                }
            }
            Err(e) => {
                tracing::debug!(message = "Cannot open the notification connection.", error = %db_message(&e));
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// A session holding an advisory lock. Dropping the client ends the session (its connection
/// task sends Terminate and returns), and PostgreSQL releases the lock with it.
struct LockSession {
    _client: tokio_postgres::Client,
    _connection: JoinHandle<()>,
}

fn to_job(row: &Row) -> Result<Job, StoreError> {
    let attempts: i32 = get(row, 4)?;
    let kind: String = get(row, 2)?;
    let payload: String = get(row, 3)?;
    Ok(Job {
        id: get(row, 0)?,
        scenario: get(row, 1)?,
        kind: JobKind::parse(&kind),
        payload: parse_json(&payload)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
    })
}

#[async_trait]
impl Store for PostgresStore {
    async fn enqueue(&self, job: NewJob, then: Option<OnQueued>) -> Result<Enqueued, StoreError> {
        let payload = payload_text(&job.payload, job.payload_json)?;
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            scenario: job.scenario,
            kind: job.kind,
            payload,
            dedup_key: job.dedup_key,
            sequential: job.sequential,
            lease: job.lease.map(lease_secs),
            then: then.map(|t| (job.payload, t)),
            reply,
        };
        self.pending
            .send(pending)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn claim(&self, max: usize, lease: Duration) -> Result<Vec<Job>, StoreError> {
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        // A claim is not idempotent (it counts an attempt): no second try on a lost
        // connection; rows it may have leased come back when the lease expires.
        let rows = timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(CLAIM).await.map_err(pg_err)?;
            client
                .query(&stmt, &[&lease_secs(lease), &limit])
                .await
                .map_err(pg_err)
        })
        .await?;
        let mut jobs = rows.iter().map(to_job).collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    async fn complete(
        &self,
        job: &Job,
        record: &Arc<ExecutionRecord>,
        resumed: Option<&IncompleteRow>,
    ) -> Result<(), StoreError> {
        let mut incomplete = Vec::with_capacity(record.incomplete.len());
        for inc in &record.incomplete {
            let secs = inc.next_retry_secs().map(|s| s as f64);
            incomplete.push((weft_engine::exec::new_id(), to_json(inc)?, secs));
        }
        let trigger = if record.incomplete.is_empty() {
            String::new()
        } else {
            to_json(record.trigger())?
        };
        let (reply, answer) = oneshot::channel();
        let done = Completion {
            job_id: job.id,
            record_id: record.id.clone(),
            scenario: record.scenario.clone(),
            status: record.status.name(),
            operations: i64_of(record.operations),
            duration_ms: i64_of(record.duration_ms),
            started_at: record.started_at.clone(),
            record: to_json(record.as_ref())?,
            resumed_id: resumed.map(|r| r.id.clone()),
            trigger,
            incomplete,
            reply,
        };
        timed(async {
            self.completions
                .send(done)
                .await
                .map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        })
        .await
    }

    async fn extend_leases(&self, job_ids: Vec<i64>, lease: Duration) -> Result<(), StoreError> {
        self.execute(
            "UPDATE queue SET lease_until = now() + make_interval(secs => $2) WHERE id = ANY($1)",
            &[&job_ids, &lease_secs(lease)],
        )
        .await
        .map(drop)
    }

    async fn release(&self, job_ids: Vec<i64>) -> Result<(), StoreError> {
        let n = self
            .execute(
                // Only leased rows: a second attempt after a lost answer changes nothing.
                "UPDATE queue SET lease_until = NULL, attempts = GREATEST(attempts - 1, 0)
                 WHERE id = ANY($1) AND lease_until IS NOT NULL",
                &[&job_ids],
            )
            .await?;
        if n > 0 {
            self.notify_queue().await;
        }
        Ok(())
    }

    async fn queue_depth(&self) -> Result<u64, StoreError> {
        let rows = self.query("SELECT count(*) FROM queue", &[]).await?;
        match rows.first() {
            Some(row) => Ok(u64_of(get(row, 0)?)),
            None => Ok(0),
        }
    }

    async fn has_pending(&self, scenario: &str) -> Result<bool, StoreError> {
        let rows = self
            .query(
                "SELECT EXISTS (SELECT 1 FROM queue WHERE scenario = $1 AND (sequential OR kind = 'resume'))",
                &[&scenario],
            )
            .await?;
        match rows.first() {
            Some(row) => get(row, 0),
            None => Ok(false),
        }
    }

    async fn schedule_due_retries(&self) -> Result<usize, StoreError> {
        // Not retried on a lost connection: a lost answer leaves the retries queued (or not)
        // exactly once either way.
        let rows = timed(async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(SCHEDULE_DUE_RETRIES)
                .await
                .map_err(pg_err)?;
            client.query(&stmt, &[]).await.map_err(pg_err)
        })
        .await?;
        Ok(rows.len())
    }

    async fn retry_now(&self, execution_id: &str) -> Result<usize, StoreError> {
        let n = self
            .execute(
                "UPDATE incomplete i SET next_retry_at = now()
                 WHERE i.execution_id = $1 AND NOT i.resolved
                   AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.kind = 'resume'
                                   AND q.payload::jsonb ->> 'incomplete_id' = i.id)",
                &[&execution_id],
            )
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn incomplete(&self, id: &str) -> Result<Option<IncompleteRow>, StoreError> {
        let rows = self
            .query(
                "SELECT id, execution_id, scenario, state, trigger FROM incomplete WHERE id = $1",
                &[&id],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let state: String = get(row, 3)?;
        let trigger: String = get(row, 4)?;
        let state: Incomplete =
            serde_json::from_str(&state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(IncompleteRow {
            id: get(row, 0)?,
            execution_id: get(row, 1)?,
            scenario: get(row, 2)?,
            state,
            trigger: parse_json(&trigger)?,
        }))
    }

    async fn hook_token(&self, scenario: &str, module_id: u32) -> Result<String, StoreError> {
        let module_id = i64::from(module_id);
        let select = "SELECT token FROM hooks WHERE scenario = $1 AND module_id = $2";
        if let Some(row) = self.query(select, &[&scenario, &module_id]).await?.first() {
            return get(row, 0);
        }
        // Nodes starting together may both get here: the first insert wins and both read it.
        let token = crate::hooks::new_token();
        self.execute(
            "INSERT INTO hooks (token, scenario, module_id) VALUES ($1, $2, $3)
             ON CONFLICT (scenario, module_id) DO NOTHING",
            &[&token, &scenario, &module_id],
        )
        .await?;
        match self.query(select, &[&scenario, &module_id]).await?.first() {
            Some(row) => get(row, 0),
            None => Err(StoreError::Database(format!(
                "the hook token of `{scenario}` module {module_id} vanished after it was created"
            ))),
        }
    }

    async fn hooks(&self) -> Result<Vec<Hook>, StoreError> {
        let rows = self
            .query(
                "SELECT token, scenario, module_id FROM hooks ORDER BY scenario, module_id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let module_id: i64 = get(row, 2)?;
                Ok(Hook {
                    token: get(row, 0)?,
                    scenario: get(row, 1)?,
                    module_id: u32::try_from(module_id)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            })
            .collect()
    }

    async fn save_registration(&self, reg: Registration) -> Result<(), StoreError> {
        let data = to_json(&reg.data)?;
        self.execute(
            "INSERT INTO registrations (scenario, module_id, hook_url, data) VALUES ($1, $2, $3, $4)
             ON CONFLICT (scenario, module_id) DO UPDATE SET hook_url = EXCLUDED.hook_url, data = EXCLUDED.data",
            &[&reg.scenario, &i64::from(reg.module_id), &reg.hook_url, &data],
        )
        .await
        .map(drop)
    }

    async fn registrations(&self, scenario: &str) -> Result<Vec<Registration>, StoreError> {
        let rows = self
            .query(
                "SELECT scenario, module_id, hook_url, data FROM registrations WHERE scenario = $1",
                &[&scenario],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let module_id: i64 = get(row, 1)?;
                let data: String = get(row, 3)?;
                Ok(Registration {
                    scenario: get(row, 0)?,
                    module_id: u32::try_from(module_id)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    hook_url: get(row, 2)?,
                    data: parse_json(&data)?,
                })
            })
            .collect()
    }

    async fn delete_registration(&self, scenario: &str, module_id: u32) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM registrations WHERE scenario = $1 AND module_id = $2",
            &[&scenario, &i64::from(module_id)],
        )
        .await
        .map(drop)
    }

    async fn list_executions(
        &self,
        filter: ExecutionFilter,
    ) -> Result<Vec<ExecutionSummary>, StoreError> {
        let limit =
            i64::try_from(if filter.limit == 0 { 50 } else { filter.limit }).unwrap_or(i64::MAX);
        let rows = self
            .query(
                "SELECT id, scenario, status, operations, duration_ms, started_at FROM executions
                 WHERE ($1::text IS NULL OR scenario = $1) AND ($2::text IS NULL OR status = $2)
                 ORDER BY started_at DESC, seq DESC LIMIT $3",
                &[&filter.scenario, &filter.status, &limit],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ExecutionSummary {
                    id: get(row, 0)?,
                    scenario: get(row, 1)?,
                    status: get(row, 2)?,
                    operations: u64_of(get(row, 3)?),
                    duration_ms: u64_of(get(row, 4)?),
                    started_at: get(row, 5)?,
                })
            })
            .collect()
    }

    async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let rows = self
            .query("SELECT record FROM executions WHERE id = $1", &[&id])
            .await?;
        rows.first()
            .map(|row| {
                let text: String = get(row, 0)?;
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .transpose()
    }

    async fn prune_executions(&self, older_than: Duration) -> Result<u64, StoreError> {
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::days(36_500));
        let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let n = self
            .execute("DELETE FROM executions WHERE started_at < $1", &[&cutoff])
            .await?;
        self.execute(
            "DELETE FROM dedup WHERE seen_at < now() - make_interval(days => $1)",
            &[&DEDUP_DAYS],
        )
        .await?;
        Ok(n)
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn queue_notified(&self) {
        self.wake.notified().await;
    }

    async fn cluster_lock(&self, name: &str) -> Result<ClusterLock, StoreError> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(pg_err)?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        // Waits while another node holds the lock (no timeout of ours: the holder's session
        // ends at the latest when its node dies).
        client
            .execute(
                "SELECT pg_advisory_lock($1, hashtext($2))",
                &[&LOCK_SPACE, &name],
            )
            .await
            .map_err(pg_err)?;
        Ok(ClusterLock::held(Box::new(LockSession {
            _client: client,
            _connection: connection,
        })))
    }
}
