//! Background loops: `schedule` triggers, automatic `break` retries, retention, and (on a
//! store shared by several nodes) the queue depth read back from the database.
//!
//! Schedules fire once per tick for the whole cluster: `every` ticks are aligned on the
//! interval since the Unix epoch, so every node computes the same tick times, and each tick is
//! queued under the dedup key `schedule:{scenario}:{tick_ms}`: the first node to commit it
//! wins, the others get `Duplicate`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
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
    if shared.store.is_shared() {
        handles.push(tokio::spawn(queue_depth(shared.clone())));
    }
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
    let mut last = tick_origin(&spec, Utc::now());
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
            payload_json: None,
            dedup_key: Some(format!("schedule:{scenario}:{}", next.timestamp_millis())),
            sequential: true,
            lease: None,
        };
        match shared.store.enqueue(job, None).await {
            Ok(Enqueued::Queued(_)) => {
                shared.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
                shared.work_queued();
            }
            Ok(Enqueued::Duplicate) => {}
            Err(e) => {
                tracing::error!(message = "Cannot queue a scheduled run.", scenario = %scenario, error = %e)
            }
        }
    }
}

/// The tick at or before `now` from which a schedule counts: for `every`, `now` rounded down
/// to a multiple of the interval since the Unix epoch, so that nodes started at different
/// moments agree on every tick; cron lines are aligned already.
fn tick_origin(spec: &ScheduleSpec, now: DateTime<Utc>) -> DateTime<Utc> {
    let ScheduleSpec::Every(every) = spec else {
        return now;
    };
    let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
    if every_ms <= 0 {
        return now;
    }
    let now_ms = now.timestamp_millis();
    DateTime::from_timestamp_millis(now_ms - now_ms.rem_euclid(every_ms)).unwrap_or(now)
}

/// Reads the queue depth back from a shared store every second: other nodes queue and finish
/// jobs too, so this node's own count drifts (intake refuses at `max_queue` by this value).
async fn queue_depth(shared: Arc<Shared>) {
    loop {
        if let Ok(depth) = shared.store.queue_depth().await {
            shared.metrics.queue_depth.store(depth, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
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
                shared.work_queued();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ticks_are_aligned_across_nodes() {
        let spec = ScheduleSpec::Every(Duration::from_secs(60));
        let a = DateTime::from_timestamp_millis(1_700_000_012_345).unwrap_or_default();
        let b = DateTime::from_timestamp_millis(1_700_000_039_999).unwrap_or_default();
        assert_eq!(tick_origin(&spec, a), tick_origin(&spec, b));
        assert_eq!(tick_origin(&spec, a).timestamp_millis() % 60_000, 0);
        let second = ScheduleSpec::Every(Duration::from_secs(1));
        assert_eq!(
            tick_origin(&second, a).timestamp_millis(),
            1_700_000_012_000
        );
    }
}
