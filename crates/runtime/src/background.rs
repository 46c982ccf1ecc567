//! Background loops: `schedule` triggers, automatic `break` retries, retention.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinHandle;
use weft_engine::builtin::{next_fire, ScheduleSpec};
use weft_engine::module::TriggerKind;

use crate::server::Shared;
use crate::store::{Enqueued, JobKind, NewJob};

/// Starts every background loop.
pub(crate) fn spawn_all(shared: Arc<Shared>) -> Vec<JoinHandle<()>> {
    let mut handles = vec![
        tokio::spawn(retries(shared.clone())),
        tokio::spawn(retention(shared.clone())),
    ];
    for s in shared.scenarios.values() {
        let is_schedule = s
            .trigger_module()
            .as_trigger()
            .is_some_and(|t| t.trigger_kind() == TriggerKind::Schedule);
        if !is_schedule {
            continue;
        }
        match ScheduleSpec::from_params(s.trigger_params()) {
            Ok(spec) => handles.push(tokio::spawn(schedule(shared.clone(), s.name.clone(), spec))),
            Err((_, message)) => {
                tracing::error!(message = "Invalid schedule.", scenario = %s.name, error = %message)
            }
        }
    }
    handles
}

/// Fires one scenario's schedule; skips a tick while the previous run is still queued or
/// running (no overlap).
async fn schedule(shared: Arc<Shared>, scenario: String, spec: ScheduleSpec) {
    let mut stop = shared.stopping.subscribe();
    let mut last = chrono::Utc::now();
    loop {
        let Some(next) = next_fire(&spec, last) else {
            tracing::warn!(message = "Schedule never fires again.", scenario = %scenario);
            return;
        };
        let wait = (next - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        last = next;
        match shared.store.has_pending(&scenario).await {
            Ok(true) => {
                tracing::info!(message = "Schedule skipped: the previous run is not finished.", scenario = %scenario);
                continue;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(message = "Cannot check the queue for a schedule.", scenario = %scenario, error = %e);
                continue;
            }
        }
        let fired_at = next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let job = NewJob {
            scenario: scenario.clone(),
            kind: JobKind::Trigger,
            payload: json!({ "fired_at": fired_at }),
            dedup_key: Some(format!("schedule:{scenario}:{}", next.timestamp_millis())),
            sequential: true,
        };
        match shared.store.enqueue(job).await {
            Ok(Enqueued::Queued(_)) => {
                shared.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
                shared.wake.notify_one();
            }
            Ok(Enqueued::Duplicate) => {}
            Err(e) => {
                tracing::error!(message = "Cannot queue a scheduled run.", scenario = %scenario, error = %e)
            }
        }
    }
}

/// Queues `break` retries whose time has come (and those asked for by `weft executions retry`).
async fn retries(shared: Arc<Shared>) {
    loop {
        match shared.store.schedule_due_retries().await {
            Ok(0) => {}
            Ok(n) => {
                shared
                    .metrics
                    .queue_depth
                    .fetch_add(n as u64, Ordering::Relaxed);
                shared.wake.notify_one();
            }
            Err(e) => tracing::error!(message = "Cannot schedule retries.", error = %e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes executions older than the retention period, hourly.
async fn retention(shared: Arc<Shared>) {
    loop {
        match shared.store.prune_executions(shared.config.retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(message = "Pruned old executions.", count = n),
            Err(e) => tracing::error!(message = "Cannot prune executions.", error = %e),
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
