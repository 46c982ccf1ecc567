//! Workers: claim queued jobs under a lease, run their executions, record them.
//!
//! One dispatcher claims jobs in batches as worker slots free up and runs each on its own
//! task. A job's execution record and the removal of its queue entry are committed in one
//! transaction, so a crash before that commit leaves the job to be run again
//! (at-least-once); after it, the job is never run twice.
//!
//! Idle, the dispatcher waits for this node's intake, for a store notification (another node
//! queued work: PostgreSQL `LISTEN`), or for its next poll. When the store fails, it backs off
//! (up to [`MAX_BACKOFF`]) instead of hammering a database that is down.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Semaphore;
use weft_engine::exec::{ExecutionRecord, Executor, Status, StepError};
use weft_engine::ErrorKind;

use crate::server::{Shared, Waiter};
use crate::store::{IncompleteRow, Job, JobKind};

/// Most jobs claimed at once.
const MAX_BATCH: usize = 64;
/// Idle dispatchers claim again after this long even without a wakeup (expired leases of dead
/// nodes, missed notifications).
const POLL: Duration = Duration::from_millis(500);
/// Under a backlog, how long the dispatcher waits for more free slots before claiming.
const GATHER: Duration = Duration::from_millis(2);
/// Longest wait between two claims while the store fails.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The wait after `failures` failed claims in a row: 250 ms, doubling, at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(5);
    (Duration::from_millis(250) * (1u32 << doublings)).min(MAX_BACKOFF)
}

/// Runs until shutdown: claims and runs jobs.
pub(crate) async fn dispatch(shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(shared.config.workers.max(1)));
    // Recording an execution (waiting for its commit) does not hold a worker slot: the slot
    // goes back as soon as the execution returns, so commits overlap the next executions.
    let recording = Arc::new(Semaphore::new(
        RECORDING_PER_WORKER * shared.config.workers.max(1),
    ));
    let running: Arc<Mutex<HashSet<i64>>> = Arc::new(Mutex::new(HashSet::new()));
    let heartbeat = tokio::spawn(heartbeat(shared.clone(), running.clone()));
    let mut stop = shared.stopping.subscribe();
    let mut failures = 0u32;
    // Whether the last claim filled every slot it asked for (there is a backlog).
    let mut busy_before = false;
    loop {
        if *stop.borrow() {
            break;
        }
        let free = slots.available_permits();
        if free == 0 {
            // Wait for a slot (or shutdown).
            tokio::select! {
                permit = slots.clone().acquire_owned() => drop(permit),
                _ = stop.changed() => {}
            }
            continue;
        }
        let workers = shared.config.workers.max(1);
        let enough = (workers / 4).max(1);
        let free = if free < enough && busy_before {
            // Nearly every slot is busy and the last claim found work: wait a moment for a
            // few more slots, so that one claim (a database round trip) takes several jobs.
            let more = u32::try_from(enough).unwrap_or(1);
            if let Ok(Ok(p)) = tokio::time::timeout(GATHER, slots.acquire_many(more)).await {
                drop(p);
            }
            slots.available_permits()
        } else {
            free
        };
        let started = Instant::now();
        let jobs = match shared
            .store
            .claim(free.min(MAX_BATCH), shared.config.lease)
            .await
        {
            Ok(jobs) => {
                if failures > 0 {
                    tracing::info!(message = "Claiming jobs again.", failed_attempts = failures);
                }
                failures = 0;
                shared
                    .metrics
                    .claimed(jobs.len(), started.elapsed().as_secs_f64());
                busy_before = jobs.len() == free.min(MAX_BATCH);
                jobs
            }
            Err(e) => {
                failures += 1;
                let wait = backoff(failures);
                if failures == 1 {
                    tracing::error!(message = "Cannot claim jobs; backing off.", error = %e);
                } else {
                    tracing::warn!(message = "Still cannot claim jobs.", error = %e, attempt = failures, retry_in_ms = wait.as_millis() as u64);
                }
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        if jobs.is_empty() {
            tokio::select! {
                () = shared.wake.notified() => {}
                () = shared.store.queue_notified() => {}
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        for job in jobs {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            if let Ok(mut r) = running.lock() {
                r.insert(job.id);
                shared
                    .metrics
                    .leases_held
                    .store(r.len() as u64, Ordering::Relaxed);
            }
            let shared = shared.clone();
            let running = running.clone();
            let recording = recording.clone();
            tokio::spawn(async move {
                let id = job.id;
                if let Some(done) = execute(&shared, &job).await {
                    // Backpressure: wait for a recording slot while still holding the worker slot.
                    let Ok(rec) = recording.acquire_owned().await else {
                        return;
                    };
                    drop(permit);
                    record(&shared, &job, done).await;
                    drop(rec);
                } else {
                    drop(permit);
                }
                if let Ok(mut r) = running.lock() {
                    r.remove(&id);
                    shared
                        .metrics
                        .leases_held
                        .store(r.len() as u64, Ordering::Relaxed);
                }
            });
        }
    }
    // Shutdown: let running executions finish within the grace period.
    let all = u32::try_from(shared.config.workers.max(1)).unwrap_or(u32::MAX);
    let all_recording = all.saturating_mul(RECORDING_PER_WORKER as u32);
    let finished = tokio::time::timeout(shared.config.shutdown_grace, async {
        let executions = slots.acquire_many(all).await;
        let records = recording.acquire_many(all_recording).await;
        (executions, records)
    })
    .await;
    heartbeat.abort();
    if finished.is_err() {
        let left: Vec<i64> = running
            .lock()
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        tracing::warn!(
            message = "Grace period over; leaving running jobs queued.",
            count = left.len()
        );
        if let Err(e) = shared.store.release(left).await {
            tracing::error!(message = "Cannot release jobs; they run again after their lease.", error = %e);
        }
    }
}

/// Renews the leases of running jobs.
async fn heartbeat(shared: Arc<Shared>, running: Arc<Mutex<HashSet<i64>>>) {
    let every = shared.config.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let ids: Vec<i64> = running
            .lock()
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        if !ids.is_empty() {
            if let Err(e) = shared.store.extend_leases(ids, shared.config.lease).await {
                tracing::error!(message = "Cannot renew leases.", error = %e);
            }
        }
    }
}

fn failed_record(scenario: &str, payload: Value, message: String) -> ExecutionRecord {
    ExecutionRecord {
        id: uuid::Uuid::now_v7().to_string(),
        scenario: scenario.to_owned(),
        status: Status::Error,
        operations: 0,
        duration_ms: 0,
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        trigger: payload,
        steps: Vec::new(),
        error: Some(StepError {
            kind: ErrorKind::RuntimeError,
            message,
        }),
        warnings: Vec::new(),
        incomplete: Vec::new(),
        response: None,
    }
}

/// Executions that may wait for their commit, per worker slot.
const RECORDING_PER_WORKER: usize = 4;

/// A finished execution waiting to be recorded.
struct Done {
    record: ExecutionRecord,
    resumed: Option<IncompleteRow>,
}

/// A job claimed this many times without finishing lost its worker each time: fail it
/// instead of looping (a bundle that crashes its node must not crash every node in turn).
pub const MAX_CLAIMS: u32 = 3;

/// Runs a job's execution (`None`: it could not start; it stays queued).
async fn execute(shared: &Shared, job: &Job) -> Option<Done> {
    let scenario = shared.scenarios.get(&job.scenario).cloned();
    let mut resumed: Option<IncompleteRow> = None;
    let record = match (&scenario, job.kind) {
        _ if job.attempts > MAX_CLAIMS => failed_record(
            &job.scenario,
            job.payload.clone(),
            format!(
                "the bundle was claimed {} times and its worker stopped each time before finishing; it is failed instead of retried again",
                job.attempts - 1
            ),
        ),
        (None, _) => failed_record(
            &job.scenario,
            job.payload.clone(),
            format!(
                "scenario `{}` is not loaded; the queued bundle cannot run",
                job.scenario
            ),
        ),
        (Some(s), JobKind::Trigger) => Executor::new(s).run(job.payload.clone()).await,
        (Some(s), JobKind::Resume) => {
            let id = job
                .payload
                .get("incomplete_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match shared.store.incomplete(id).await {
                Ok(Some(row)) => {
                    let record = Executor::new(s)
                        .resume(&row.state, row.trigger.clone())
                        .await;
                    resumed = Some(row);
                    record
                }
                Ok(None) => failed_record(
                    &job.scenario,
                    json!({}),
                    format!("incomplete execution `{id}` not found"),
                ),
                Err(e) => {
                    tracing::error!(message = "Cannot read an incomplete execution; retrying later.", error = %e);
                    return None;
                }
            }
        }
    };
    Some(Done { record, resumed })
}

/// Records a finished execution and removes its job, then tells whoever waits for it.
async fn record(shared: &Shared, job: &Job, done: Done) {
    let Done { record, resumed } = done;
    for step in &record.steps {
        shared
            .metrics
            .module_latency(&step.module, step.duration_us as f64 / 1e6);
    }
    // Successes are counted in /metrics and kept in the history; a log line for each would
    // cost more than the execution at thousands per second. Failures are logged.
    match record.status {
        Status::Success => {
            tracing::debug!(message = "Execution finished.", scenario = %record.scenario, execution_id = %record.id, status = %record.status, operations = record.operations);
        }
        _ => {
            tracing::info!(message = "Execution finished.", scenario = %record.scenario, execution_id = %record.id, status = %record.status, operations = record.operations);
        }
    }
    // Keep trying while the lease (renewed by the heartbeat) still holds: a database that comes
    // back within it gets the record, and the job does not run a second time.
    let give_up = Instant::now() + shared.config.lease;
    let mut attempt = 0u32;
    loop {
        match shared.store.complete(job, &record, resumed.as_ref()).await {
            Ok(()) => break,
            Err(e) if Instant::now() < give_up => {
                attempt += 1;
                tracing::error!(message = "Cannot record an execution; retrying.", error = %e, attempt);
                let wait = (Duration::from_millis(200) * attempt).min(Duration::from_secs(2));
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                tracing::error!(message = "Cannot record an execution; the job stays queued and runs again.", error = %e);
                return;
            }
        }
    }
    shared
        .metrics
        .execution(&record.scenario, record.status.name(), record.operations);
    shared.metrics.dequeued();
    shared.completed.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut waiters) = shared.waiters.lock() {
        match waiters.remove(&job.id) {
            Some(Waiter::Waiting(tx)) => {
                let _ = tx.send(record.response.clone());
            }
            // The hook handler has not started waiting yet: leave the answer for it.
            // (Bounded: a job requeued after a restart has no caller left to collect it.)
            _ if record.response.is_some()
                && job.kind == JobKind::Trigger
                && waiters.len() < 10_000 =>
            {
                waiters.insert(job.id, Waiter::Done(record.response.clone()));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(4), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(4));
        assert_eq!(backoff(6), MAX_BACKOFF);
        assert_eq!(backoff(50), MAX_BACKOFF);
    }
}
