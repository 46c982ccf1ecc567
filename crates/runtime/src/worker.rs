//! Workers: run queued jobs under a lease, record their executions.
//!
//! Jobs reach this node's workers two ways. The intake queues a webhook already claimed by
//! this node (its row carries this node's lease) and hands it over in memory, so the common
//! case costs no claim and no second parse of the payload ([`Handoff`]). Everything else —
//! a backlog beyond what the node holds, sequential scenarios, resumes, schedule ticks, work
//! queued by other nodes, jobs left by a crash — is claimed from the store in batches.
//! Either way the job is durable in the store before it runs: a job's execution record and
//! the removal of its queue entry are committed in one transaction, so a crash before that
//! commit leaves the job to be run again (at-least-once); after it, the job never runs twice.
//!
//! The node holds at most `workers` jobs waiting for a worker slot beside the `workers`
//! running. Idle, the dispatcher waits for a handed-over job, this node's intake, a store
//! notification (another node queued work: PostgreSQL `LISTEN`), or its next poll. When the
//! store fails, it backs off (up to [`MAX_BACKOFF`]) instead of hammering a database that is
//! down.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use weft_engine::exec::{ExecutionRecord, Executor, Status, StepError};
use weft_engine::ErrorKind;

use crate::server::{Shared, Waiter};
use crate::store::{IncompleteRow, Job, JobKind, StoreError};

/// Most jobs claimed at once.
const MAX_BATCH: usize = 64;
/// Idle dispatchers claim again after this long even without a wakeup (expired leases of dead
/// nodes, missed notifications).
const POLL: Duration = Duration::from_millis(500);
/// Longest wait between two claims while the store fails.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The wait after `failures` failed claims in a row: 250 ms, doubling, at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(5);
    (Duration::from_millis(250) * (1u32 << doublings)).min(MAX_BACKOFF)
}

/// The intake's shortcut to this node's workers: webhooks queued already claimed by this
/// node and handed over in memory.
pub(crate) struct Handoff {
    /// Free places among the jobs this node holds but does not run yet (handed over or
    /// claimed); a job gives its place back when it gets a worker slot.
    places: Arc<Semaphore>,
    /// Work may be queued that no node holds. The intake then queues for claiming instead of
    /// handing over, so that new webhooks do not overtake older ones; the dispatcher clears
    /// it when a claim finds the queue drained.
    unclaimed: AtomicBool,
    tx: mpsc::UnboundedSender<Job>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
}

impl Handoff {
    /// A handoff holding at most `capacity` waiting jobs.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Handoff {
            places: Arc::new(Semaphore::new(capacity.max(1))),
            // Until the first claim: jobs a previous process left are queued.
            unclaimed: AtomicBool::new(true),
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// Reserves a place for a job the intake is about to queue claimed by this node (the place
    /// goes back if the permit is dropped unused); `None`: queue it for claiming instead.
    pub fn reserve(&self) -> Option<OwnedSemaphorePermit> {
        if self.unclaimed.load(Ordering::Acquire) {
            return None;
        }
        self.places.clone().try_acquire_owned().ok()
    }

    /// Takes a job queued claimed by this node (with its reserved place) to a worker: at once
    /// when a worker slot is free, otherwise through the dispatcher's waiting jobs. Called by
    /// the store right after the commit, possibly on its own thread.
    pub fn take(shared: &Arc<Shared>, job: Job, place: OwnedSemaphorePermit) {
        // The place is accounted by hand from here: given back when the job starts.
        place.forget();
        shared
            .metrics
            .jobs_handed_off
            .fetch_add(1, Ordering::Relaxed);
        hold(shared, &job);
        match shared.workers.slots.clone().try_acquire_owned() {
            Ok(permit) => start(shared, job, permit),
            Err(_) => {
                if let Err(e) = shared.handoff.tx.send(job) {
                    // The dispatcher is gone (shutting down): the job stays queued under its
                    // lease and runs after it (or at the next start).
                    let job = e.0;
                    forget(shared, job.id);
                }
            }
        }
    }

    /// Work was queued that no node holds (see [`Shared::work_queued`]).
    pub fn mark_unclaimed(&self) {
        self.unclaimed.store(true, Ordering::Release);
    }
}

/// This node's worker pool.
pub(crate) struct Workers {
    /// One permit per execution running.
    slots: Arc<Semaphore>,
    /// Recording an execution (waiting for its commit) does not hold a worker slot: the slot
    /// goes back as soon as the execution returns, so commits overlap the next executions.
    recording: Arc<Semaphore>,
    /// Every job this node holds under a lease, waiting or running: the heartbeat renews them.
    held: Arc<Mutex<HashSet<i64>>>,
    /// Where executions run (jobs may be handed over from a storage thread).
    runtime: tokio::runtime::Handle,
}

impl Workers {
    /// A pool of `workers` slots on the current runtime.
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        Workers {
            slots: Arc::new(Semaphore::new(workers)),
            recording: Arc::new(Semaphore::new(RECORDING_PER_WORKER * workers)),
            held: Arc::new(Mutex::new(HashSet::new())),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

type Claim = Pin<Box<dyn Future<Output = (usize, Instant, Result<Vec<Job>, StoreError>)> + Send>>;

/// Runs until shutdown: takes handed-over and claimed jobs and runs them.
pub(crate) async fn dispatch(shared: Arc<Shared>) {
    let Some(mut handed) = shared.handoff.rx.lock().ok().and_then(|mut rx| rx.take()) else {
        tracing::error!(message = "The dispatcher started twice; this one stops.");
        return;
    };
    let workers = shared.config.workers.max(1);
    let slots = shared.workers.slots.clone();
    let recording = shared.workers.recording.clone();
    let held = shared.workers.held.clone();
    let heartbeat = tokio::spawn(heartbeat(shared.clone(), held.clone()));
    let mut stop = shared.stopping.subscribe();
    let mut ready: VecDeque<Job> = VecDeque::new();
    let mut claiming: Option<Claim> = None;
    // Whether the store may hold work nobody holds (start: whatever a previous run left).
    let mut claim_wanted = true;
    // Whether the last claim filled every place it asked for (there is a backlog).
    let mut backlog = false;
    let mut failures = 0u32;
    let mut not_before = Instant::now();
    let mut next_poll = Instant::now() + POLL;
    loop {
        if *stop.borrow() {
            break;
        }
        while let Ok(job) = handed.try_recv() {
            ready.push_back(job);
        }
        while !ready.is_empty() {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                break;
            };
            if let Some(job) = ready.pop_front() {
                start(&shared, job, permit);
            }
        }
        // Claim when the store may hold work and there is room for a batch worth a round
        // trip (under a backlog, a quarter of the places; otherwise any).
        let room = shared.handoff.places.available_permits();
        let enough = if backlog { (workers / 4).max(1) } else { 1 };
        if claiming.is_none() && claim_wanted && room >= enough && Instant::now() >= not_before {
            let asked = room.min(MAX_BATCH);
            if let Ok(permits) = shared.handoff.places.try_acquire_many(asked as u32) {
                permits.forget();
                claim_wanted = false;
                shared.handoff.unclaimed.store(false, Ordering::Release);
                next_poll = Instant::now() + POLL;
                let store = shared.store.clone();
                let lease = shared.config.lease;
                claiming = Some(Box::pin(async move {
                    let started = Instant::now();
                    (asked, started, store.claim(asked, lease).await)
                }));
            }
        }
        tokio::select! {
            job = handed.recv() => ready.extend(job),
            permit = slots.clone().acquire_owned(), if !ready.is_empty() => {
                if let (Ok(permit), Some(job)) = (permit, ready.pop_front()) {
                    start(&shared, job, permit);
                }
            }
            (asked, started, result) = claim_result(&mut claiming), if claiming.is_some() => {
                claiming = None;
                match result {
                    Ok(jobs) => {
                        if failures > 0 {
                            tracing::info!(message = "Claiming jobs again.", failed_attempts = failures);
                        }
                        failures = 0;
                        shared.metrics.claimed(jobs.len(), started.elapsed().as_secs_f64());
                        shared.handoff.places.add_permits(asked - jobs.len().min(asked));
                        backlog = jobs.len() >= asked;
                        if backlog {
                            // More may be waiting: claim again, and keep the intake from
                            // overtaking it meanwhile.
                            claim_wanted = true;
                            shared.handoff.mark_unclaimed();
                        }
                        for job in jobs {
                            hold(&shared, &job);
                            ready.push_back(job);
                        }
                    }
                    Err(e) => {
                        shared.handoff.places.add_permits(asked);
                        shared.handoff.mark_unclaimed();
                        failures += 1;
                        let wait = backoff(failures);
                        if failures == 1 {
                            tracing::error!(message = "Cannot claim jobs; backing off.", error = %e);
                        } else {
                            tracing::warn!(message = "Still cannot claim jobs.", error = %e, attempt = failures, retry_in_ms = wait.as_millis() as u64);
                        }
                        claim_wanted = true;
                        not_before = Instant::now() + wait;
                    }
                }
            }
            () = shared.wake.notified() => claim_wanted = true,
            () = shared.store.queue_notified() => {
                claim_wanted = true;
                shared.handoff.mark_unclaimed();
            }
            () = tokio::time::sleep_until(next_poll.max(not_before).into()) => {
                claim_wanted = true;
                next_poll = Instant::now() + POLL;
            }
            _ = stop.changed() => {}
        }
    }
    // Shutdown. Jobs held but not started go back to the queue at once; a claim in flight
    // is awaited so that its jobs go back too.
    handed.close();
    while let Ok(job) = handed.try_recv() {
        ready.push_back(job);
    }
    if let Some(claim) = claiming.take() {
        if let Ok((_, _, Ok(jobs))) =
            tokio::time::timeout(shared.config.shutdown_grace, claim).await
        {
            ready.extend(jobs);
        }
    }
    if !ready.is_empty() {
        let ids: Vec<i64> = ready.iter().map(|j| j.id).collect();
        for id in &ids {
            forget(&shared, *id);
        }
        if let Err(e) = shared.store.release(ids).await {
            tracing::error!(message = "Cannot give back waiting jobs; they run again after their lease.", error = %e);
        }
    }
    // Let running executions finish within the grace period.
    let all = u32::try_from(workers).unwrap_or(u32::MAX);
    let all_recording = all.saturating_mul(RECORDING_PER_WORKER as u32);
    let finished = tokio::time::timeout(shared.config.shutdown_grace, async {
        let executions = slots.acquire_many(all).await;
        let records = recording.acquire_many(all_recording).await;
        (executions, records)
    })
    .await;
    heartbeat.abort();
    if finished.is_err() {
        let left: Vec<i64> = held
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

/// The outcome of the claim in flight (never resolves without one).
async fn claim_result(claim: &mut Option<Claim>) -> (usize, Instant, Result<Vec<Job>, StoreError>) {
    match claim {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// Counts a job among those this node holds under a lease.
fn hold(shared: &Shared, job: &Job) {
    if let Ok(mut h) = shared.workers.held.lock() {
        h.insert(job.id);
        shared
            .metrics
            .leases_held
            .store(h.len() as u64, Ordering::Relaxed);
    }
}

/// No longer counts a job among those this node holds.
fn forget(shared: &Shared, id: i64) {
    if let Ok(mut h) = shared.workers.held.lock() {
        h.remove(&id);
        shared
            .metrics
            .leases_held
            .store(h.len() as u64, Ordering::Relaxed);
    }
}

/// Runs a held job on its own task with the worker slot `permit`.
fn start(shared: &Arc<Shared>, job: Job, permit: OwnedSemaphorePermit) {
    // The job leaves the waiting jobs: its place is free for another.
    shared.handoff.places.add_permits(1);
    let shared = shared.clone();
    let recording = shared.workers.recording.clone();
    shared.workers.runtime.clone().spawn(async move {
        let mut job = job;
        let id = job.id;
        if let Some(done) = execute(&shared, &mut job).await {
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
        forget(&shared, id);
    });
}

/// Renews the leases of the jobs this node holds.
async fn heartbeat(shared: Arc<Shared>, held: Arc<Mutex<HashSet<i64>>>) {
    let every = shared.config.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let ids: Vec<i64> = held
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
    let mut record = ExecutionRecord::new(
        weft_engine::exec::new_id(),
        scenario,
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        payload,
    );
    record.status = Status::Error;
    record.error = Some(StepError {
        kind: ErrorKind::RuntimeError,
        message,
    });
    record
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

/// Runs a job's execution (`None`: it could not start; it stays queued). A trigger job's
/// payload moves into the execution record.
async fn execute(shared: &Shared, job: &mut Job) -> Option<Done> {
    let scenario = shared.scenarios.get(&job.scenario).cloned();
    let mut resumed: Option<IncompleteRow> = None;
    let record = match (&scenario, job.kind) {
        _ if job.attempts > MAX_CLAIMS => failed_record(
            &job.scenario,
            std::mem::take(&mut job.payload),
            format!(
                "the bundle was claimed {} times and its worker stopped each time before finishing; it is failed instead of retried again",
                job.attempts - 1
            ),
        ),
        (None, _) => failed_record(
            &job.scenario,
            std::mem::take(&mut job.payload),
            format!(
                "scenario `{}` is not loaded; the queued bundle cannot run",
                job.scenario
            ),
        ),
        (Some(s), JobKind::Trigger) => {
            Executor::new(s)
                .run(std::mem::take(&mut job.payload))
                .await
        }
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

/// Tells whoever waits for a finished execution's response, then records it and removes its job.
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
    // The hook's caller gets its answer now: it need not wait for the record's commit (as in
    // Make, the response goes out when `webhook.respond` has run).
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
    // Keep trying while the lease (renewed by the heartbeat) still holds: a database that comes
    // back within it gets the record, and the job does not run a second time.
    let give_up = Instant::now() + shared.config.lease;
    let mut attempt = 0u32;
    let record = Arc::new(record);
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
