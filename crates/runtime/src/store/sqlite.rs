//! The embedded SQLite store (WAL, `synchronous=FULL`).
//!
//! One thread owns the connection. Callers send it operations over a channel; it takes
//! every operation waiting, runs each inside its own savepoint of one transaction, commits
//! once and only then answers them all. Many webhooks therefore share one fsync (group
//! commit) while each is acknowledged only after it is durable.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;
use weft_engine::exec::{ExecutionRecord, Incomplete};

use super::{
    parse_json, payload_text, to_json, Enqueued, ExecutionFilter, ExecutionSummary, Hook,
    IncompleteRow, Job, JobKind, NewJob, OnQueued, Registration, Store, StoreError,
};

/// Most operations committed in one transaction.
const MAX_GROUP: usize = 512;
/// WAL frames (4 KiB pages) past which the writer finishes a checkpoint itself (see
/// [`writer_loop`]): the WAL file then stays near 64 MiB however long the load lasts.
const WAL_RESET_FRAMES: u32 = 16_384;
/// Longest a deferred operation waits for its group.
const LATER_WAIT: Duration = Duration::from_millis(10);
/// Deferred operations that make a group due at once.
const LATER_MAX: usize = 256;

/// Answers an operation's caller once its group is committed (or failed); may leave work to
/// do after every caller of the group is answered ([`After`]).
type Reply = Box<dyn FnOnce(Result<(), String>) -> Option<After> + Send>;
/// Work left by an operation for after its group's callers are answered.
type After = Box<dyn FnOnce() + Send>;

/// What an operation runs inside the group's transaction.
type Run = Box<dyn FnOnce(&Connection) -> Reply + Send>;

/// An operation's work.
enum Work {
    /// Statements to run in the transaction.
    Ready(Run),
    /// Work to do first, outside any transaction (serializing and compressing a record),
    /// giving the statements: see [`writer_loop`].
    Prepare(Box<dyn FnOnce() -> Run + Send>),
}

impl Work {
    /// The statements, preparing them first if needed.
    fn ready(self) -> Run {
        match self {
            Work::Ready(run) => run,
            Work::Prepare(prepare) => prepare(),
        }
    }
}

/// An operation for the storage thread.
struct Op {
    work: Work,
    /// Run inside its own savepoint, so that a failure part-way rolls back only its own
    /// writes. Operations whose writes are one statement (atomic by itself), or whose partial
    /// failure leaves nothing wrong, skip it: a savepoint copies every page the operation
    /// touches into the statement journal.
    savepoint: bool,
    /// May wait (up to [`LATER_WAIT`]) to be committed with others: see [`writer_loop`].
    deferred: bool,
}

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    tx: mpsc::Sender<Op>,
    /// Dropped with the store: stops the checkpoint thread.
    _checkpoints: mpsc::Sender<()>,
}

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scenario TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    dedup_key TEXT UNIQUE,
    sequential INTEGER NOT NULL DEFAULT 0,
    enqueued_at INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    lease_until INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_scenario ON queue (scenario, id);
CREATE TABLE dedup (
    key TEXT PRIMARY KEY,
    seen_at INTEGER NOT NULL
);
CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    scenario TEXT NOT NULL,
    status TEXT NOT NULL,
    operations INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX executions_started ON executions (started_at);
CREATE INDEX executions_scenario ON executions (scenario, started_at);
CREATE TABLE incomplete (
    id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    scenario TEXT NOT NULL,
    state TEXT NOT NULL,
    trigger TEXT NOT NULL,
    next_retry_at INTEGER,
    resolved INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX incomplete_due ON incomplete (resolved, next_retry_at);
CREATE TABLE hooks (
    token TEXT PRIMARY KEY,
    scenario TEXT NOT NULL,
    module_id INTEGER NOT NULL,
    UNIQUE (scenario, module_id)
);
CREATE TABLE registrations (
    scenario TEXT NOT NULL,
    module_id INTEGER NOT NULL,
    hook_url TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (scenario, module_id)
);
"#,
    // Every commit writes each B-tree page it touched. A queued webhook touched four: the queue,
    // its index by scenario, the dedup key's (which indexes NULL keys too) and sqlite_sequence.
    // Only keys that are set, and only the jobs that hold a scenario's order (sequential jobs and
    // resumes: what `claim` and `has_pending` look for), are indexed now.
    r#"
CREATE TABLE queue_next (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scenario TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    dedup_key TEXT,
    sequential INTEGER NOT NULL DEFAULT 0,
    enqueued_at INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    lease_until INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0
);
INSERT INTO queue_next SELECT id, scenario, kind, payload, dedup_key, sequential, enqueued_at, available_at, lease_until, attempts FROM queue;
DELETE FROM sqlite_sequence WHERE name = 'queue_next';
INSERT INTO sqlite_sequence (name, seq) SELECT 'queue_next', seq FROM sqlite_sequence WHERE name = 'queue';
DROP TABLE queue;
ALTER TABLE queue_next RENAME TO queue;
CREATE UNIQUE INDEX queue_dedup ON queue (dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX queue_ordered ON queue (scenario, id) WHERE (sequential = 1 OR kind = 'resume');
"#,
    // A history row went into four B-trees: the table, its text primary key, `started_at` and
    // `scenario, started_at`; each commit of finished executions rewrote the last leaf of
    // every one. The history is listed in the order it was written (the rowid) instead, so the
    // index by `started_at` goes and the one by scenario keys on the scenario alone (SQLite
    // appends the rowid to every index key). Pruning scans from the oldest row.
    r#"
DROP INDEX executions_started;
DROP INDEX executions_scenario;
CREATE INDEX executions_scenario ON executions (scenario);
"#,
];

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A lease in milliseconds (an absurd one stays far from overflowing `now_ms() + it`).
fn millis(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2)
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;",
    )?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}

/// The storage thread: group commits, and the WAL kept from growing.
///
/// The checkpoint thread copies the WAL back into the database without blocking anyone, but
/// under constant writes it never catches up with the last frame, and SQLite starts the WAL
/// file over only once every frame is copied: the file would grow for as long as the load
/// lasts. So when the checkpoint thread reports more than [`WAL_RESET_FRAMES`] frames, the
/// writer runs one checkpoint itself between two groups (nothing is written meanwhile, so it
/// copies the last frames — those since the checkpoint thread's last pass — and completes),
/// and its next transaction writes the WAL from the start again, over blocks already on disk.
///
/// Recording a finished execution is deferred: it waits up to [`LATER_WAIT`] (or until
/// [`LATER_MAX`] wait) to be committed together. Its worker is free meanwhile, and fewer,
/// larger groups of records write fewer pages (each commit rewrites the last, partly filled
/// page of every table and index it touches), while webhooks and claims still commit at once.
/// Its record is serialized and compressed here too ([`Work::Prepare`]), after a group's
/// callers are answered and one record at a time, stopping as soon as another operation
/// arrives: with one runtime thread for the intake and the executions, this thread has the
/// room, and a webhook waits for one record's encoding at most.
fn writer_loop(conn: Connection, rx: mpsc::Receiver<Op>, wal_frames: &AtomicU32) {
    // Deferred operations (recording finished executions) wait for a group that is due.
    // Each with whether it runs in a savepoint.
    let mut later: Vec<(Run, bool)> = Vec::new();
    // Deferred operations not prepared yet (their records not encoded).
    let mut unprepared: Vec<(Work, bool)> = Vec::new();
    let mut later_since = Instant::now();
    // An operation that arrived while records were being prepared.
    let mut arrived: Option<Op> = None;
    let mut open = true;
    while open || !later.is_empty() || !unprepared.is_empty() || arrived.is_some() {
        let waiting = later.len() + unprepared.len();
        let first = if let Some(op) = arrived.take() {
            Some(op)
        } else if waiting == 0 {
            rx.recv().ok()
        } else {
            match rx.recv_timeout(LATER_WAIT.saturating_sub(later_since.elapsed())) {
                Ok(op) => Some(op),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    open = false;
                    None
                }
            }
        };
        if first.is_none() && later.is_empty() && unprepared.is_empty() {
            break;
        }
        let mut ops: Vec<(Run, bool)> = Vec::new();
        for op in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()).take(MAX_GROUP))
        {
            if op.deferred && later.len() + unprepared.len() < MAX_GROUP {
                if later.is_empty() && unprepared.is_empty() {
                    later_since = Instant::now();
                }
                unprepared.push((op.work, op.savepoint));
            } else {
                ops.push((op.work.ready(), op.savepoint));
            }
        }
        let due = !open
            || later.len() + unprepared.len() >= LATER_MAX
            || later_since.elapsed() >= LATER_WAIT;
        if due {
            later.extend(unprepared.drain(..).map(|(work, sp)| (work.ready(), sp)));
            ops.append(&mut later);
        }
        if ops.is_empty() {
            prepare_some(&mut unprepared, &mut later, &rx, &mut arrived);
            continue;
        }
        if wal_frames.load(Ordering::Relaxed) > WAL_RESET_FRAMES {
            match checkpoint(&conn) {
                Ok((false, log, done)) if log == done => wal_frames.store(0, Ordering::Relaxed),
                Ok(_) => {}
                Err(e) => tracing::warn!(message = "WAL checkpoint failed.", error = %e),
            }
        }
        // BEGIN and COMMIT go through the statement cache like the operations' statements
        // (`Connection::transaction` would parse both again for every group).
        if let Err(e) = exec(&conn, "BEGIN", []) {
            // Dropping the operations drops their reply channels: callers get `Closed`.
            tracing::error!(message = "Cannot open a transaction.", error = %e, operations = ops.len());
            continue;
        }
        let mut replies = Vec::with_capacity(ops.len());
        for (run, savepoint) in ops {
            if !savepoint {
                replies.push(run(&conn));
                continue;
            }
            if exec(&conn, "SAVEPOINT op", []).is_err() {
                continue;
            }
            replies.push(run(&conn));
            // An op that failed rolled its own savepoint back (see `call`).
            let _ = exec(&conn, "RELEASE op", []);
        }
        let outcome = exec(&conn, "COMMIT", [])
            .map(drop)
            .map_err(|e| e.to_string());
        if outcome.is_err() {
            // A COMMIT that failed may leave the transaction open: end it, as dropping a
            // `rusqlite::Transaction` would. (Without one open, this fails harmlessly.)
            let _ = exec(&conn, "ROLLBACK", []);
        }
        // Every caller first (a webhook's acknowledgement waits for this), then what the
        // operations left (handing the new jobs to workers): woken in this order, the
        // acknowledgements are not queued behind the executions they start.
        let after: Vec<After> = replies
            .into_iter()
            .filter_map(|reply| reply(outcome.clone()))
            .collect();
        after.into_iter().for_each(|a| a());
        prepare_some(&mut unprepared, &mut later, &rx, &mut arrived);
    }
}

/// Prepares the deferred operations received so far (encodes their records) between two
/// groups, one at a time, and stops as soon as another operation arrives: a webhook waits
/// for at most one record's encoding, and the callers' threads (the runtime's) do not
/// encode at all.
fn prepare_some(
    unprepared: &mut Vec<(Work, bool)>,
    later: &mut Vec<(Run, bool)>,
    rx: &mpsc::Receiver<Op>,
    arrived: &mut Option<Op>,
) {
    let mut work = std::mem::take(unprepared).into_iter();
    while arrived.is_none() {
        let Some((next, savepoint)) = work.next() else {
            break;
        };
        later.push((next.ready(), savepoint));
        *arrived = rx.try_recv().ok();
    }
    unprepared.extend(work);
}

/// A passive checkpoint (never waits for, nor blocks, the writer): whether another
/// checkpoint was running, the WAL's frames, and how many are copied into the database.
fn checkpoint(conn: &Connection) -> rusqlite::Result<(bool, u32, u32)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)? != 0,
            u32::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            u32::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
        ))
    })
}

/// Copies the WAL back into the database every 250 ms until the store is dropped, and
/// tells the writer how long the WAL is.
fn checkpoint_loop(conn: &Connection, stop: &mpsc::Receiver<()>, wal_frames: &AtomicU32) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(Duration::from_millis(250)) {
        match checkpoint(conn) {
            Ok((_, log, _)) => wal_frames.store(log, Ordering::Relaxed),
            Err(e) => tracing::warn!(message = "WAL checkpoint failed.", error = %e),
        }
    }
}

/// The statements of an operation: runs `f` (rolling its savepoint back if it fails), then,
/// once the group is committed, answers `tx` and runs `then` with the result.
fn run_op<R, F, T>(
    savepoint: bool,
    f: F,
    then: T,
    tx: oneshot::Sender<Result<R, StoreError>>,
) -> Run
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    T: FnOnce(&R) -> Option<After> + Send + 'static,
{
    Box::new(move |conn: &Connection| -> Reply {
        let result = f(conn);
        if result.is_err() && savepoint {
            let _ = exec(conn, "ROLLBACK TO op", []);
        }
        Box::new(move |commit: Result<(), String>| {
            let mut after = None;
            let out = match commit {
                Ok(()) => {
                    if let Ok(r) = &result {
                        after = then(r);
                    }
                    result
                }
                Err(e) => Err(StoreError::Database(format!("commit failed: {e}"))),
            };
            let _ = tx.send(out);
            after
        })
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path).map_err(db_err)?;
        migrate(&mut conn).map_err(db_err)?;
        // Checkpoints run on their own thread and connection, not inside the writer's commits;
        // a WAL file larger than 64 MiB is cut back when it starts over.
        conn.execute_batch("PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=67108864")
            .map_err(db_err)?;
        // Every statement the store runs stays prepared (rusqlite keeps 16 by default).
        conn.set_prepared_statement_cache_capacity(64);
        // Plans that do not depend on bound values (the query planner stability guarantee).
        // Otherwise SQLite, built with STAT4, prepares a cached statement again whenever a value
        // it planned with changes: the claim, whose limit and clock change from call to call,
        // was prepared again on every call, about 280k instructions each.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .map_err(db_err)?;
        let checkpoints = Connection::open(path).map_err(db_err)?;
        checkpoints
            .execute_batch("PRAGMA busy_timeout=5000")
            .map_err(db_err)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let wal_frames = Arc::new(AtomicU32::new(0));
        let frames = wal_frames.clone();
        std::thread::Builder::new()
            .name("weft-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpoints, &stopped, &frames))
            .map_err(db_err)?;
        let (tx, rx) = mpsc::channel::<Op>();
        std::thread::Builder::new()
            .name("weft-sqlite".into())
            .spawn(move || writer_loop(conn, rx, &wal_frames))
            .map_err(db_err)?;
        Ok(SqliteStore {
            tx,
            _checkpoints: stop,
        })
    }

    /// Runs `f` on the storage thread inside its own savepoint of the current group's
    /// transaction and returns its result once the transaction is committed.
    async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        self.call_with(true, false, f).await
    }

    /// Like [`Self::call`]; without a savepoint when `savepoint` is false, and allowed to wait
    /// for a later group when `deferred` (see [`Op`]).
    async fn call_with<R, F>(&self, savepoint: bool, deferred: bool, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        self.call_then(savepoint, deferred, f, |_: &R| None).await
    }

    /// Like [`Self::call_with`], and runs `then` with the result on the storage thread once
    /// the transaction is committed (whether or not the caller still waits); what `then`
    /// returns runs on the storage thread too, once every caller of the group is answered.
    async fn call_then<R, F, T>(
        &self,
        savepoint: bool,
        deferred: bool,
        f: F,
        then: T,
    ) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        T: FnOnce(&R) -> Option<After> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<R, StoreError>>();
        let work = Work::Ready(run_op(savepoint, f, then, tx));
        self.submit(work, savepoint, deferred, rx).await
    }

    /// Like [`Self::call_with`] for a deferred operation whose statements `prepare` gives:
    /// the storage thread calls it between two groups, outside any transaction, so that
    /// encoding a record costs the callers' threads nothing (see [`writer_loop`]).
    async fn call_prepared<R, F, P>(&self, savepoint: bool, prepare: P) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        P: FnOnce() -> F + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<R, StoreError>>();
        let work = Work::Prepare(Box::new(move || {
            run_op(savepoint, prepare(), |_: &R| None, tx)
        }));
        self.submit(work, savepoint, true, rx).await
    }

    /// Sends an operation to the storage thread and waits for its answer.
    async fn submit<R>(
        &self,
        work: Work,
        savepoint: bool,
        deferred: bool,
        answer: oneshot::Receiver<Result<R, StoreError>>,
    ) -> Result<R, StoreError> {
        self.tx
            .send(Op {
                work,
                savepoint,
                deferred,
            })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Gives back every lease (one node owns an SQLite file: whatever was running when it
    /// stopped is runnable again at once).
    pub async fn recover_leases(&self) -> Result<u64, StoreError> {
        self.call(|c| {
            exec(
                c,
                "UPDATE queue SET lease_until = NULL WHERE lease_until IS NOT NULL",
                [],
            )
            .map(|n| n as u64)
            .map_err(db_err)
        })
        .await
    }
}

/// The history newest first (rowid order, decision 0010), `?2` a status or NULL (`?1`, the
/// scenario, is NULL and unused: the same parameters bind both queries).
const LIST_ALL: &str =
    "SELECT id, scenario, status, operations, duration_ms, started_at FROM executions
     WHERE (?2 IS NULL OR status = ?2) ORDER BY rowid DESC LIMIT ?3";
/// One scenario's history (`?1`), newest first: a condition `?1 IS NULL OR scenario = ?1`
/// could not use the index by scenario and would read the whole table for a rare scenario.
const LIST_SCENARIO: &str =
    "SELECT id, scenario, status, operations, duration_ms, started_at FROM executions
     WHERE scenario = ?1 AND (?2 IS NULL OR status = ?2) ORDER BY rowid DESC LIMIT ?3";

/// Largest record [`unpack_record`] accepts (a corrupt length must not allocate gigabytes).
const MAX_RECORD: usize = 1 << 30;

/// Set in a packed record's length when its body is MessagePack rather than JSON (lengths stay
/// below [`MAX_RECORD`], so the bit was never set before).
const MESSAGEPACK: u32 = 1 << 31;

/// An execution record as stored: MessagePack with field names, LZ4-compressed, the
/// uncompressed length first (4 bytes little-endian, [`MESSAGEPACK`] set). Records are most of
/// what the store writes and encodes: compressed, a typical one takes about half the bytes, so
/// each commit writes fewer WAL pages and the checkpoints copy fewer (decision 0008); and
/// MessagePack costs the writer less to produce than JSON (no escaping, no number formatting;
/// decision 0013). Records written before are read as they were stored: JSON text, or
/// LZ4-compressed JSON (the flag clear).
fn pack_record(record: &ExecutionRecord) -> Result<Vec<u8>, StoreError> {
    let mut body = Vec::with_capacity(2048);
    rmp_serde::encode::write_named(&mut body, record)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode a record: {e}")))?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&n| (n as usize) <= MAX_RECORD)
        .ok_or_else(|| StoreError::Corrupt(format!("a record of {} bytes", body.len())))?;
    let mut packed = lz4_flex::block::compress_prepend_size(&body);
    packed[..4].copy_from_slice(&(len | MESSAGEPACK).to_le_bytes());
    Ok(packed)
}

/// A record stored in a BLOB by [`pack_record`] (or, before it, as LZ4-compressed JSON).
fn unpack_record(stored: &[u8]) -> Result<ExecutionRecord, String> {
    let (len, body) = stored
        .split_first_chunk::<4>()
        .ok_or("a compressed record shorter than its length")?;
    let len = u32::from_le_bytes(*len);
    let messagepack = len & MESSAGEPACK != 0;
    let len = (len & !MESSAGEPACK) as usize;
    if len > MAX_RECORD {
        return Err(format!("a compressed record claims {len} bytes"));
    }
    let bytes =
        lz4_flex::block::decompress(body, len).map_err(|e| format!("a compressed record: {e}"))?;
    if messagepack {
        rmp_serde::from_slice(&bytes).map_err(|e| format!("a stored record: {e}"))
    } else {
        serde_json::from_slice(&bytes).map_err(|e| format!("a stored record: {e}"))
    }
}

/// An incomplete entry, serialized before it reaches the storage thread.
struct NewIncomplete {
    state: String,
    trigger: String,
    next_retry_at: Option<i64>,
}

/// What the storage thread encodes of a finished execution before writing it.
struct Completion {
    /// The record, compressed ([`pack_record`]).
    packed: Vec<u8>,
    incomplete: Vec<NewIncomplete>,
}

/// Serializes and compresses a finished execution for [`Store::complete`].
fn encode_completion(record: &ExecutionRecord) -> Result<Completion, StoreError> {
    let incomplete = if record.incomplete.is_empty() {
        Vec::new()
    } else {
        let trigger = to_json(record.trigger())?;
        record
            .incomplete
            .iter()
            .map(|inc| {
                Ok(NewIncomplete {
                    state: to_json(inc)?,
                    trigger: trigger.clone(),
                    next_retry_at: next_retry(inc),
                })
            })
            .collect::<Result<_, StoreError>>()?
    };
    Ok(Completion {
        packed: pack_record(record)?,
        incomplete,
    })
}

/// When `break` retries automatically next (`None`: it waits for `weft executions retry`).
fn next_retry(inc: &Incomplete) -> Option<i64> {
    inc.next_retry_secs()
        .map(|secs| now_ms().saturating_add(i64::try_from(secs * 1000).unwrap_or(i64::MAX)))
}

/// Leases up to `?3` runnable jobs until `?1`, at time `?2`: the oldest first, and of a
/// scenario whose order holds (sequential jobs and resumes) only its oldest such job.
const CLAIM: &str = "UPDATE queue SET lease_until = ?1, attempts = attempts + 1
     WHERE id IN (
       SELECT q.id FROM queue q
       WHERE (q.lease_until IS NULL OR q.lease_until < ?2) AND q.available_at <= ?2
         AND (q.sequential = 0 OR q.id = (SELECT MIN(q2.id) FROM queue q2 WHERE q2.scenario = q.scenario AND (q2.sequential = 1 OR q2.kind = 'resume')))
       ORDER BY q.id LIMIT ?3)
     RETURNING id, scenario, kind, payload, attempts";

/// Runs a statement through the connection's statement cache (no SQL parsing per call).
fn exec(c: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

#[async_trait]
impl Store for SqliteStore {
    async fn enqueue(&self, job: NewJob, then: Option<OnQueued>) -> Result<Enqueued, StoreError> {
        let NewJob {
            scenario,
            kind,
            payload: value,
            payload_json,
            dedup_key,
            sequential,
            lease,
        } = job;
        let payload = payload_text(&value, payload_json)?;
        let lease_ms = lease.map(millis);
        let row_scenario = scenario.clone();
        // Without a dedup key the job is one INSERT: no savepoint needed.
        let savepoint = dedup_key.is_some();
        self.call_then(
            savepoint,
            false,
            move |c| {
                let now = now_ms();
                if let Some(key) = &dedup_key {
                    let fresh = exec(c, "INSERT OR IGNORE INTO dedup (key, seen_at) VALUES (?1, ?2)", params![key, now])
                        .map_err(db_err)?;
                    if fresh == 0 {
                        return Ok(Enqueued::Duplicate);
                    }
                }
                let (lease_until, attempts) = match lease_ms {
                    Some(ms) => (Some(now + ms), 1),
                    None => (None, 0),
                };
                exec(c,
                    "INSERT INTO queue (scenario, kind, payload, dedup_key, sequential, enqueued_at, available_at, lease_until, attempts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8)",
                    params![row_scenario, kind.as_str(), payload, dedup_key, sequential, now, lease_until, attempts],
                )
                .map_err(db_err)?;
                Ok(Enqueued::Queued(c.last_insert_rowid()))
            },
            move |queued| {
                let (Enqueued::Queued(id), Some(then)) = (queued, then) else {
                    return None;
                };
                let job = Job {
                    id: *id,
                    scenario,
                    kind,
                    payload: value,
                    attempts: u32::from(lease.is_some()),
                };
                Some(Box::new(move || then(job)) as After)
            },
        )
        .await
    }

    async fn claim(&self, max: usize, lease: Duration) -> Result<Vec<Job>, StoreError> {
        let lease_ms = millis(lease);
        let rows = self
            .call(move |c| {
                let now = now_ms();
                let mut stmt = c.prepare_cached(CLAIM).map_err(db_err)?;
                let rows = stmt
                    .query_map(params![now + lease_ms, now, max as i64], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, u32>(4)?,
                        ))
                    })
                    .map_err(db_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
            })
            .await?;
        // Parse on the caller's thread: the storage thread only reads and writes.
        let mut jobs = Vec::with_capacity(rows.len());
        for (id, scenario, kind, payload, attempts) in rows {
            jobs.push(Job {
                id,
                scenario,
                kind: JobKind::parse(&kind),
                payload: parse_json(&payload)?,
                attempts,
            });
        }
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    async fn complete(
        &self,
        job: &Job,
        record: &Arc<ExecutionRecord>,
        resumed: Option<&IncompleteRow>,
    ) -> Result<(), StoreError> {
        let job_id = job.id;
        let resumed_id = resumed.map(|r| r.id.clone());
        // A plain completion is an INSERT then a DELETE: should the DELETE fail after the
        // INSERT, the job stays queued and runs again (at-least-once), nothing is lost; with
        // incomplete entries to keep consistent, it runs in a savepoint.
        let savepoint = resumed_id.is_some() || !record.incomplete.is_empty();
        let record = record.clone();
        // Serialized and compressed on the storage thread between two groups (the runtime's
        // threads run the executions), then written with the next deferred group.
        self.call_prepared(savepoint, move || {
            let encoded = encode_completion(&record);
            move |c: &Connection| {
                let Completion { packed, incomplete } = encoded?;
                let r = &*record;
                exec(
                    c,
                    "INSERT OR REPLACE INTO executions (id, scenario, status, operations, duration_ms, started_at, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![r.id, r.scenario, r.status.name(), r.operations as i64, r.duration_ms as i64, r.started_at, packed],
                )
                .map_err(db_err)?;
                exec(c, "DELETE FROM queue WHERE id = ?1", params![job_id]).map_err(db_err)?;
                if let Some(rid) = &resumed_id {
                    exec(c, "UPDATE incomplete SET resolved = 1, next_retry_at = NULL WHERE id = ?1", params![rid]).map_err(db_err)?;
                }
                for inc in &incomplete {
                    exec(
                        c,
                        "INSERT INTO incomplete (id, execution_id, scenario, state, trigger, next_retry_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![weft_engine::exec::new_id(), r.id, r.scenario, inc.state, inc.trigger, inc.next_retry_at],
                    )
                    .map_err(db_err)?;
                }
                Ok(())
            }
        })
        .await
    }

    async fn extend_leases(&self, job_ids: Vec<i64>, lease: Duration) -> Result<(), StoreError> {
        let lease_ms = millis(lease);
        self.call(move |c| {
            let until = now_ms() + lease_ms;
            for id in job_ids {
                exec(
                    c,
                    "UPDATE queue SET lease_until = ?2 WHERE id = ?1",
                    params![id, until],
                )
                .map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn release(&self, job_ids: Vec<i64>) -> Result<(), StoreError> {
        self.call(move |c| {
            for id in job_ids {
                exec(c, "UPDATE queue SET lease_until = NULL, attempts = MAX(attempts - 1, 0) WHERE id = ?1", params![id]).map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn queue_depth(&self) -> Result<u64, StoreError> {
        self.call(|c| {
            c.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(db_err)
        })
        .await
    }

    async fn has_pending(&self, scenario: &str) -> Result<bool, StoreError> {
        let scenario = scenario.to_owned();
        self.call(move |c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM queue WHERE scenario = ?1 AND (sequential = 1 OR kind = 'resume'))",
                params![scenario],
                |r| r.get::<_, bool>(0),
            )
            .map_err(db_err)
        })
        .await
    }

    async fn schedule_due_retries(&self) -> Result<usize, StoreError> {
        self.call(|c| {
            let now = now_ms();
            let due: Vec<(String, String)> = {
                let mut stmt = c
                    .prepare_cached("SELECT id, scenario FROM incomplete WHERE resolved = 0 AND next_retry_at IS NOT NULL AND next_retry_at <= ?1")
                    .map_err(db_err)?;
                let rows = stmt.query_map(params![now], |r| Ok((r.get(0)?, r.get(1)?))).map_err(db_err)?;
                rows.collect::<Result<_, _>>().map_err(db_err)?
            };
            for (id, scenario) in &due {
                exec(c, "UPDATE incomplete SET next_retry_at = NULL WHERE id = ?1", params![id]).map_err(db_err)?;
                let payload = serde_json::json!({ "incomplete_id": id }).to_string();
                exec(c,
                    "INSERT INTO queue (scenario, kind, payload, sequential, enqueued_at, available_at) VALUES (?1, 'resume', ?2, 0, ?3, ?3)",
                    params![scenario, payload, now],
                )
                .map_err(db_err)?;
            }
            Ok(due.len())
        })
        .await
    }

    async fn retry_now(&self, execution_id: &str) -> Result<usize, StoreError> {
        let id = execution_id.to_owned();
        self.call(move |c| {
            exec(c,
                "UPDATE incomplete SET next_retry_at = ?2 WHERE execution_id = ?1 AND resolved = 0 AND id NOT IN (SELECT json_extract(payload, '$.incomplete_id') FROM queue WHERE kind = 'resume')",
                params![id, now_ms()],
            )
            .map_err(db_err)
        })
        .await
    }

    async fn incomplete(&self, id: &str) -> Result<Option<IncompleteRow>, StoreError> {
        let id = id.to_owned();
        self.call(move |c| {
            let row = c
                .query_row(
                    "SELECT id, execution_id, scenario, state, trigger FROM incomplete WHERE id = ?1",
                    params![id],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, String>(4)?)),
                )
                .optional()
                .map_err(db_err)?;
            match row {
                None => Ok(None),
                Some((id, execution_id, scenario, state, trigger)) => {
                    let state: Incomplete = serde_json::from_str(&state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    Ok(Some(IncompleteRow { id, execution_id, scenario, state, trigger: parse_json(&trigger)? }))
                }
            }
        })
        .await
    }

    async fn hook_token(&self, scenario: &str, module_id: u32) -> Result<String, StoreError> {
        let scenario = scenario.to_owned();
        self.call(move |c| {
            let existing: Option<String> = c
                .query_row(
                    "SELECT token FROM hooks WHERE scenario = ?1 AND module_id = ?2",
                    params![scenario, module_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            if let Some(t) = existing {
                return Ok(t);
            }
            let token = crate::hooks::new_token();
            exec(
                c,
                "INSERT INTO hooks (token, scenario, module_id) VALUES (?1, ?2, ?3)",
                params![token, scenario, module_id],
            )
            .map_err(db_err)?;
            Ok(token)
        })
        .await
    }

    async fn hooks(&self) -> Result<Vec<Hook>, StoreError> {
        self.call(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT token, scenario, module_id FROM hooks ORDER BY scenario, module_id",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Hook {
                        token: r.get(0)?,
                        scenario: r.get(1)?,
                        module_id: r.get(2)?,
                    })
                })
                .map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)
        })
        .await
    }

    async fn save_registration(&self, reg: Registration) -> Result<(), StoreError> {
        let data = to_json(&reg.data)?;
        self.call(move |c| {
            exec(c,
                "INSERT OR REPLACE INTO registrations (scenario, module_id, hook_url, data) VALUES (?1, ?2, ?3, ?4)",
                params![reg.scenario, reg.module_id, reg.hook_url, data],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn registrations(&self, scenario: &str) -> Result<Vec<Registration>, StoreError> {
        let scenario = scenario.to_owned();
        self.call(move |c| {
            let mut stmt = c.prepare_cached("SELECT scenario, module_id, hook_url, data FROM registrations WHERE scenario = ?1").map_err(db_err)?;
            let rows = stmt
                .query_map(params![scenario], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?)))
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (scenario, module_id, hook_url, data) = row.map_err(db_err)?;
                out.push(Registration { scenario, module_id, hook_url, data: parse_json(&data)? });
            }
            Ok(out)
        })
        .await
    }

    async fn delete_registration(&self, scenario: &str, module_id: u32) -> Result<(), StoreError> {
        let scenario = scenario.to_owned();
        self.call(move |c| {
            exec(
                c,
                "DELETE FROM registrations WHERE scenario = ?1 AND module_id = ?2",
                params![scenario, module_id],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn list_executions(
        &self,
        filter: ExecutionFilter,
    ) -> Result<Vec<ExecutionSummary>, StoreError> {
        self.call(move |c| {
            let limit = if filter.limit == 0 { 50 } else { filter.limit } as i64;
            let sql = if filter.scenario.is_some() {
                LIST_SCENARIO
            } else {
                LIST_ALL
            };
            let mut stmt = c.prepare_cached(sql).map_err(db_err)?;
            let rows = stmt
                .query_map(params![filter.scenario, filter.status, limit], |r| {
                    Ok(ExecutionSummary {
                        id: r.get(0)?,
                        scenario: r.get(1)?,
                        status: r.get(2)?,
                        operations: r.get::<_, i64>(3)? as u64,
                        duration_ms: r.get::<_, i64>(4)? as u64,
                        started_at: r.get(5)?,
                    })
                })
                .map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)
        })
        .await
    }

    async fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let id = id.to_owned();
        self.call(move |c| {
            c.query_row(
                "SELECT record FROM executions WHERE id = ?1",
                params![id],
                |r| {
                    Ok(match r.get_ref(0)? {
                        ValueRef::Blob(b) => unpack_record(b),
                        // Records written before they were compressed: JSON text.
                        other => other
                            .as_bytes()
                            .map_err(|e| e.to_string())
                            .and_then(|json| {
                                serde_json::from_slice(json)
                                    .map_err(|e| format!("a stored record: {e}"))
                            }),
                    })
                },
            )
            .optional()
            .map_err(db_err)?
            .transpose()
            .map_err(StoreError::Corrupt)
        })
        .await
    }

    async fn prune_executions(&self, older_than: Duration) -> Result<u64, StoreError> {
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::days(36_500));
        let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.call(move |c| {
            // Rows are in the order they were written, which is the order executions
            // finished: every row before the first one started after the cutoff started
            // before it. (One that started before it but finished after a newer one goes in a
            // later pass, once that newer one is old enough too.)
            let n = c
                .execute(
                    "DELETE FROM executions WHERE rowid < COALESCE(
                       (SELECT rowid FROM executions WHERE started_at >= ?1 ORDER BY rowid LIMIT 1),
                       9223372036854775807)",
                    params![cutoff],
                )
                .map_err(db_err)?;
            exec(
                c,
                "DELETE FROM dedup WHERE seen_at < ?1",
                params![now_ms() - 7 * 86_400_000],
            )
            .map_err(db_err)?;
            Ok(n as u64)
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use serde_json::{json, Value};
    use weft_engine::exec::{Status, Step, StepError};
    use weft_engine::ErrorKind;

    /// A record with every field set, `trigger` and the first step's output being `data`.
    fn record_with(data: Value, status: Status, kind: ErrorKind) -> ExecutionRecord {
        let error = StepError {
            kind,
            message: "Sonar answered 422: «phone_number» is invalid".into(),
        };
        let mut record = ExecutionRecord::new(
            "01a24820-df25-78ec-90c1-c4b44041c5f4",
            "welcome",
            "2026-12-05T21:34:03.557Z",
            data.clone(),
        );
        record.status = status;
        record.operations = 3;
        record.duration_ms = u64::MAX;
        record.steps = vec![
            Step {
                module_id: 1,
                module: "webhook.custom".into(),
                input: json!({"name": "bench"}),
                output: vec![data.clone()],
                error: None,
                duration_us: 0,
            },
            Step {
                module_id: 2,
                module: "sonar.send_message".into(),
                input: Value::Null,
                output: Vec::new(),
                error: Some(error.clone()),
                duration_us: 1438,
            },
        ];
        record.error = Some(error.clone());
        record.warnings = vec!["a bundle was dropped by `ignore`".into()];
        record.incomplete = vec![Incomplete {
            module_id: 2,
            scope: json!({"1": data.clone()}),
            error,
            retries: 3,
            interval_secs: 600,
            attempts: 1,
        }];
        record.response = Some(json!({"status": 202, "body": data}));
        record
    }

    fn bench_like() -> Value {
        json!({
            "uuid": "m1-87495", "event": "new_unassigned_message", "id": "m1-87495-1796506443554170",
            "customer": {"phone_number": "+13105550195", "first_name": "Kenji", "subscribed": true,
                         "state": "unassigned", "score": -2.5, "visits": 18446744073709551615u64,
                         "balance": -9223372036854775808i64},
            "message": {"direction": "inbound", "text": "What time do you close today? \"ok\"\n\u{1} ✓", "media_url": null},
            "lines": [1, 2.25, [], {}, "", null, false]
        })
    }

    #[test]
    fn records_round_trip_as_compressed_messagepack() {
        for status in [
            Status::Success,
            Status::Warning,
            Status::Error,
            Status::Incomplete,
        ] {
            let record = record_with(bench_like(), status, ErrorKind::DataError);
            let packed = pack_record(&record).unwrap();
            let flagged = u32::from_le_bytes(packed[..4].try_into().unwrap());
            assert_ne!(flagged & MESSAGEPACK, 0);
            let json = serde_json::to_string(&record).unwrap();
            assert!(
                packed.len() < json.len() / 2,
                "{} bytes against {}",
                packed.len(),
                json.len()
            );
            assert_eq!(unpack_record(&packed).unwrap(), record);
        }
        let mut bare = record_with(Value::Null, Status::Success, ErrorKind::RuntimeError);
        bare.response = None;
        bare.error = None;
        bare.incomplete.clear();
        assert_eq!(unpack_record(&pack_record(&bare).unwrap()).unwrap(), bare);
    }

    #[test]
    fn records_stored_before_are_read_as_they_were_stored() {
        // LZ4-compressed JSON, the flag clear.
        let record = record_with(bench_like(), Status::Error, ErrorKind::ConnectionError);
        let json = serde_json::to_string(&record).unwrap();
        let packed = lz4_flex::block::compress_prepend_size(json.as_bytes());
        assert_eq!(unpack_record(&packed).unwrap(), record);
    }

    #[tokio::test]
    async fn records_of_every_format_are_read_back_from_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.db");
        let store = SqliteStore::open(&path).unwrap();
        let job = store
            .enqueue(
                NewJob {
                    scenario: "welcome".into(),
                    kind: JobKind::Trigger,
                    payload: bench_like(),
                    payload_json: None,
                    dedup_key: None,
                    sequential: false,
                    lease: None,
                },
                None,
            )
            .await
            .unwrap();
        let Enqueued::Queued(job_id) = job else {
            panic!("not queued: {job:?}");
        };
        let mut record = record_with(bench_like(), Status::Success, ErrorKind::DataError);
        record.incomplete.clear();
        let job = Job {
            id: job_id,
            scenario: "welcome".into(),
            kind: JobKind::Trigger,
            payload: Value::Null,
            attempts: 1,
        };
        store
            .complete(&job, &Arc::new(record.clone()), None)
            .await
            .unwrap();
        assert_eq!(
            store.execution(&record.id).await.unwrap(),
            Some(record.clone())
        );
        drop(store);

        // Rows as earlier versions wrote them: JSON text, and LZ4-compressed JSON.
        let json = serde_json::to_string(&record).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE executions SET id = 'text', record = ?1 WHERE id = ?2",
            params![json, record.id],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO executions (id, scenario, status, operations, duration_ms, started_at, record) VALUES ('lz4', 'welcome', 'success', 3, 1, 'x', ?1)",
            params![lz4_flex::block::compress_prepend_size(json.as_bytes())],
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.execution("text").await.unwrap(), Some(record.clone()));
        assert_eq!(store.execution("lz4").await.unwrap(), Some(record));
        assert_eq!(store.execution("none").await.unwrap(), None);
    }

    #[test]
    fn corrupt_records_are_refused() {
        assert!(unpack_record(&[1, 0]).is_err());
        assert!(unpack_record(&u32::MAX.to_le_bytes()).is_err());
        assert!(unpack_record(&(MAX_RECORD as u32 + 1).to_le_bytes()).is_err());
        let record = record_with(bench_like(), Status::Success, ErrorKind::DataError);
        let mut packed = pack_record(&record).unwrap();
        packed.truncate(packed.len() - 2);
        assert!(unpack_record(&packed).is_err());
        // JSON under the MessagePack flag, and MessagePack without it.
        let json = serde_json::to_string(&record).unwrap();
        let mut wrong = lz4_flex::block::compress_prepend_size(json.as_bytes());
        let len = u32::from_le_bytes(wrong[..4].try_into().unwrap()) | MESSAGEPACK;
        wrong[..4].copy_from_slice(&len.to_le_bytes());
        assert!(unpack_record(&wrong).is_err());
        let mut wrong = pack_record(&record).unwrap();
        let len = u32::from_le_bytes(wrong[..4].try_into().unwrap()) & !MESSAGEPACK;
        wrong[..4].copy_from_slice(&len.to_le_bytes());
        assert!(unpack_record(&wrong).is_err());
    }

    #[tokio::test]
    async fn the_queue_migration_keeps_jobs_and_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.db");
        {
            // A database of the first schema: two jobs queued, a third already gone.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "PRAGMA user_version = 1;
                 INSERT INTO queue (scenario, kind, payload, dedup_key, sequential, enqueued_at, available_at) VALUES
                   ('s', 'trigger', '{\"n\":1}', 'k1', 1, 0, 0),
                   ('s', 'trigger', '{\"n\":2}', NULL, 1, 0, 0),
                   ('s', 'trigger', '{\"n\":3}', NULL, 0, 0, 0);
                 DELETE FROM queue WHERE id = 3;",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let job = |key: Option<&str>| NewJob {
            scenario: "s".into(),
            kind: JobKind::Trigger,
            payload: serde_json::json!({ "n": 4 }),
            payload_json: None,
            dedup_key: key.map(str::to_owned),
            sequential: true,
            lease: None,
        };
        // Ids go on after the highest ever given, and queued keys are still unique.
        assert!(matches!(
            store.enqueue(job(None), None).await.unwrap(),
            Enqueued::Queued(4)
        ));
        let dup = store
            .call(|c| {
                exec(c, "INSERT INTO queue (scenario, kind, payload, dedup_key, enqueued_at, available_at) VALUES ('s', 'trigger', '{}', 'k1', 0, 0)", [])
                    .map_err(db_err)
            })
            .await;
        assert!(dup.is_err(), "a second row with key k1 was accepted");
        // The sequential scenario still offers only its oldest job.
        let claimed = store.claim(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(claimed[0].payload, serde_json::json!({ "n": 1 }));
        assert!(store.has_pending("s").await.unwrap());
        assert!(!store.has_pending("other").await.unwrap());
    }

    /// The claim runs from the statement cache as it was first prepared, whatever its limit
    /// and clock: with SQLite's planner free to plan with bound values (STAT4), each new value
    /// prepared the statement again.
    #[tokio::test]
    async fn claims_are_not_prepared_again_when_their_values_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("weft.db")).unwrap();
        for n in 0..300 {
            let job = NewJob {
                scenario: "s".into(),
                kind: JobKind::Trigger,
                payload: serde_json::json!({ "n": n }),
                payload_json: None,
                dedup_key: None,
                sequential: false,
                lease: (n % 3 != 0).then_some(Duration::from_secs(60)),
            };
            store.enqueue(job, None).await.unwrap();
        }
        let mut claimed = 0;
        for max in 1..=13 {
            claimed += store
                .claim(max, Duration::from_secs(60))
                .await
                .unwrap()
                .len();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(claimed, 91);
        let reprepared = store
            .call(|c| {
                let stmt = c.prepare_cached(CLAIM).map_err(db_err)?;
                Ok(stmt.get_status(rusqlite::StatementStatus::RePrepare))
            })
            .await
            .unwrap();
        assert_eq!(
            reprepared, 0,
            "the claim was prepared again {reprepared} times"
        );
    }

    /// Completions are encoded on the storage thread between groups while webhooks keep
    /// committing; more of them than make a deferred group due at once, so that both the
    /// full and the timed group run. Every record is stored, readable and its job gone.
    #[tokio::test]
    async fn completions_prepared_by_the_storage_thread_are_all_recorded() {
        fn new_job(scenario: &str, payload: serde_json::Value, lease: Option<Duration>) -> NewJob {
            NewJob {
                scenario: scenario.into(),
                kind: JobKind::Trigger,
                payload,
                payload_json: None,
                dedup_key: None,
                sequential: false,
                lease,
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("weft.db")).unwrap());
        let n = LATER_MAX + 44;
        let mut ids = Vec::new();
        for i in 0..n {
            let job = new_job(
                "s",
                serde_json::json!({ "n": i }),
                Some(Duration::from_secs(60)),
            );
            match store.enqueue(job, None).await.unwrap() {
                Enqueued::Queued(id) => ids.push(id),
                Enqueued::Duplicate => panic!("no dedup key was given"),
            }
        }
        let mut tasks = Vec::new();
        for (i, id) in ids.into_iter().enumerate() {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let job = Job {
                    id,
                    scenario: "s".into(),
                    kind: JobKind::Trigger,
                    payload: serde_json::Value::Null,
                    attempts: 1,
                };
                let mut record = ExecutionRecord::new(
                    format!("e{i}"),
                    "s",
                    "2026-01-01T00:00:00.000Z",
                    serde_json::json!({ "n": i }),
                );
                record.operations = 1;
                let record = Arc::new(record);
                // A webhook queued beside each completion commits in its own group.
                let beside = store.enqueue(new_job("t", serde_json::json!({}), None), None);
                let (done, queued) = tokio::join!(store.complete(&job, &record, None), beside);
                done.unwrap();
                assert!(matches!(queued.unwrap(), Enqueued::Queued(_)));
            }));
        }
        // A completion left unprepared would never be answered: fail instead of hanging.
        tokio::time::timeout(Duration::from_secs(60), async {
            for t in tasks {
                t.await.unwrap();
            }
        })
        .await
        .expect("every completion is answered");
        assert_eq!(
            store.queue_depth().await.unwrap(),
            n as u64,
            "the `t` jobs stay"
        );
        for i in [0, n / 2, n - 1] {
            let record = store.execution(&format!("e{i}")).await.unwrap().unwrap();
            assert_eq!(*record.trigger(), serde_json::json!({ "n": i }));
        }
        let stored = store
            .call(|c| {
                c.query_row("SELECT COUNT(*) FROM executions", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(db_err)
            })
            .await
            .unwrap();
        assert_eq!(stored, n as i64);
    }

    #[tokio::test]
    async fn history_is_listed_and_pruned_in_the_order_it_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("weft.db")).unwrap();
        // Written in this order; `late` started long ago but finished after `new`.
        let an_hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let rows = [
            ("old-1", "a", "2020-01-01T00:00:00.000Z".to_owned()),
            ("old-2", "b", "2020-01-02T00:00:00.000Z".to_owned()),
            ("new", "a", an_hour_ago),
            ("late", "b", "2020-01-03T00:00:00.000Z".to_owned()),
        ];
        store
            .call(move |c| {
                for (id, scenario, started) in rows {
                    exec(c, "INSERT INTO executions (id, scenario, status, operations, duration_ms, started_at, record) VALUES (?1, ?2, 'success', 1, 1, ?3, '{}')", params![id, scenario, started])
                        .map_err(db_err)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let ids = |filter: ExecutionFilter| {
            let store = &store;
            async move {
                let listed = store.list_executions(filter).await.unwrap();
                listed.into_iter().map(|e| e.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(
            ids(ExecutionFilter::default()).await,
            ["late", "new", "old-2", "old-1"]
        );
        let only_a = ExecutionFilter {
            scenario: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(ids(only_a.clone()).await, ["new", "old-1"]);
        // The scenario filter searches its index, not the whole table.
        let plan = store
            .call(|c| {
                c.query_row(
                    &format!("EXPLAIN QUERY PLAN {LIST_SCENARIO}"),
                    params!["a", None::<String>, 50],
                    |r| r.get::<_, String>(3),
                )
                .map_err(db_err)
            })
            .await
            .unwrap();
        assert!(plan.contains("USING INDEX executions_scenario"), "{plan}");
        // A year's retention: the rows before the first one started within it go; `late`
        // waits behind `new`.
        let pruned = store
            .prune_executions(Duration::from_secs(365 * 86_400))
            .await
            .unwrap();
        assert_eq!(pruned, 2);
        assert_eq!(ids(ExecutionFilter::default()).await, ["late", "new"]);
        assert_eq!(store.prune_executions(Duration::ZERO).await.unwrap(), 2);
        assert!(ids(only_a).await.is_empty());
    }

    #[tokio::test]
    async fn records_stored_as_text_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.db");
        let store = SqliteStore::open(&path).unwrap();
        store
            .call(|c| {
                let record = r#"{"id":"old-1","scenario":"s","status":"success","operations":1,"duration_ms":3,"started_at":"2026-01-01T00:00:00.000Z","trigger":{"a":1},"steps":[],"error":null,"warnings":[],"incomplete":[]}"#;
                exec(c, "INSERT INTO executions (id, scenario, status, operations, duration_ms, started_at, record) VALUES ('old-1', 's', 'success', 1, 3, '2026-01-01T00:00:00.000Z', ?1)", params![record])
                    .map_err(db_err)
            })
            .await
            .unwrap();
        let record = store.execution("old-1").await.unwrap().unwrap();
        assert_eq!(*record.trigger(), serde_json::json!({ "a": 1 }));
        assert_eq!(record.operations, 1);
    }
}
