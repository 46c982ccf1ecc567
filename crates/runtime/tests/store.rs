//! Store conformance: one suite every backend must pass (SQLite here; PostgreSQL joins
//! with its own constructor).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use weft_engine::exec::{ExecutionRecord, Incomplete, Status, StepError};
use weft_engine::ErrorKind;
use weft_runtime::store::{
    Enqueued, ExecutionFilter, JobKind, NewJob, Registration, SqliteStore, Store,
};

fn job(scenario: &str, n: u32) -> NewJob {
    NewJob {
        scenario: scenario.into(),
        kind: JobKind::Trigger,
        payload: json!({ "n": n }),
        dedup_key: None,
        sequential: false,
    }
}

fn record(
    id: &str,
    scenario: &str,
    status: Status,
    incomplete: Vec<Incomplete>,
) -> ExecutionRecord {
    ExecutionRecord {
        id: id.into(),
        scenario: scenario.into(),
        status,
        operations: 2,
        duration_ms: 1,
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        trigger: json!({"n": 1}),
        steps: vec![],
        error: None,
        warnings: vec![],
        incomplete,
        response: None,
    }
}

fn incomplete(retries: u32, interval_secs: u64) -> Incomplete {
    Incomplete {
        module_id: 2,
        scope: json!({"1": {"n": 1}}),
        error: StepError {
            kind: ErrorKind::ConnectionError,
            message: "down".into(),
        },
        retries,
        interval_secs,
        attempts: 0,
    }
}

const LEASE: Duration = Duration::from_secs(30);

async fn queue_claim_complete(store: Arc<dyn Store>) {
    let Enqueued::Queued(a) = store.enqueue(job("s", 1)).await.unwrap() else {
        panic!("not queued")
    };
    store.enqueue(job("s", 2)).await.unwrap();
    assert_eq!(store.queue_depth().await.unwrap(), 2);
    let claimed = store.claim(10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[0].id, a);
    assert_eq!(claimed[0].payload, json!({"n": 1}));
    assert_eq!(claimed[0].attempts, 1);
    // Leased jobs are not claimed again.
    assert!(store.claim(10, LEASE).await.unwrap().is_empty());
    store
        .complete(
            &claimed[0],
            &record("e1", "s", Status::Success, vec![]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.queue_depth().await.unwrap(), 1);
    let got = store.execution("e1").await.unwrap().unwrap();
    assert_eq!(got.status, Status::Success);
    assert!(store.execution("nope").await.unwrap().is_none());
    // Released jobs come back.
    store.release(vec![claimed[1].id]).await.unwrap();
    let again = store.claim(10, LEASE).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, claimed[1].id);
}

async fn expired_leases_are_reclaimed(store: Arc<dyn Store>) {
    store.enqueue(job("s", 1)).await.unwrap();
    let first = store.claim(1, Duration::from_millis(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = store.claim(1, LEASE).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, first[0].id);
    assert_eq!(second[0].attempts, 2);
    // A heartbeat keeps a lease alive.
    store
        .extend_leases(vec![second[0].id], LEASE)
        .await
        .unwrap();
    assert!(store.claim(1, LEASE).await.unwrap().is_empty());
}

async fn dedup_keys_queue_once(store: Arc<dyn Store>) {
    let mut j = job("s", 1);
    j.dedup_key = Some("s:uuid-1".into());
    assert!(matches!(
        store.enqueue(j.clone()).await.unwrap(),
        Enqueued::Queued(_)
    ));
    assert_eq!(store.enqueue(j.clone()).await.unwrap(), Enqueued::Duplicate);
    // Still a duplicate after the first one ran.
    let c = store.claim(1, LEASE).await.unwrap();
    store
        .complete(&c[0], &record("d1", "s", Status::Success, vec![]), None)
        .await
        .unwrap();
    assert_eq!(store.enqueue(j).await.unwrap(), Enqueued::Duplicate);
    assert_eq!(store.queue_depth().await.unwrap(), 0);
}

async fn sequential_scenarios_run_in_order_one_at_a_time(store: Arc<dyn Store>) {
    for n in 0..3 {
        let mut j = job("seq", n);
        j.sequential = true;
        store.enqueue(j).await.unwrap();
    }
    store.enqueue(job("free", 9)).await.unwrap();
    let claimed = store.claim(10, LEASE).await.unwrap();
    let seq: Vec<_> = claimed.iter().filter(|j| j.scenario == "seq").collect();
    assert_eq!(seq.len(), 1, "only the oldest job of a sequential scenario");
    assert_eq!(seq[0].payload, json!({"n": 0}));
    assert!(claimed.iter().any(|j| j.scenario == "free"));
    assert!(store.claim(10, LEASE).await.unwrap().is_empty());
    store
        .complete(seq[0], &record("q0", "seq", Status::Success, vec![]), None)
        .await
        .unwrap();
    let next = store.claim(10, LEASE).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].payload, json!({"n": 1}));
    assert!(store.has_pending("seq").await.unwrap());
    assert!(!store.has_pending("other").await.unwrap());
}

async fn break_retries_are_scheduled_then_wait_for_manual_retry(store: Arc<dyn Store>) {
    store.enqueue(job("b", 1)).await.unwrap();
    let c = store.claim(1, LEASE).await.unwrap();
    // One automatic retry, due at once.
    let rec = record("inc-1", "b", Status::Incomplete, vec![incomplete(1, 0)]);
    store.complete(&c[0], &rec, None).await.unwrap();
    assert_eq!(store.schedule_due_retries().await.unwrap(), 1);
    assert_eq!(store.schedule_due_retries().await.unwrap(), 0);
    let resume = store.claim(1, LEASE).await.unwrap();
    assert_eq!(resume[0].kind, JobKind::Resume);
    let id = resume[0].payload["incomplete_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let row = store.incomplete(&id).await.unwrap().unwrap();
    assert_eq!(row.execution_id, "inc-1");
    assert_eq!(row.state.module_id, 2);
    assert_eq!(row.trigger, json!({"n": 1}));
    // The retry fails again and has used its one automatic retry: it waits.
    let mut again = incomplete(1, 0);
    again.attempts = 1;
    let rec2 = record("inc-2", "b", Status::Incomplete, vec![again]);
    store.complete(&resume[0], &rec2, Some(&row)).await.unwrap();
    assert_eq!(store.schedule_due_retries().await.unwrap(), 0);
    // `weft executions retry inc-2` makes it due.
    assert_eq!(store.retry_now("inc-2").await.unwrap(), 1);
    assert_eq!(store.retry_now("unknown").await.unwrap(), 0);
    assert_eq!(store.schedule_due_retries().await.unwrap(), 1);
    let resume2 = store.claim(1, LEASE).await.unwrap();
    let id2 = resume2[0].payload["incomplete_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let row2 = store.incomplete(&id2).await.unwrap().unwrap();
    store
        .complete(
            &resume2[0],
            &record("ok", "b", Status::Success, vec![]),
            Some(&row2),
        )
        .await
        .unwrap();
    assert_eq!(store.retry_now("inc-2").await.unwrap(), 0, "resolved");
}

async fn history_lists_and_filters(store: Arc<dyn Store>) {
    for (i, (s, status)) in [
        ("a", Status::Success),
        ("a", Status::Error),
        ("b", Status::Success),
    ]
    .into_iter()
    .enumerate()
    {
        store.enqueue(job(s, 0)).await.unwrap();
        let c = store.claim(1, LEASE).await.unwrap();
        store
            .complete(&c[0], &record(&format!("h{i}"), s, status, vec![]), None)
            .await
            .unwrap();
    }
    let all = store
        .list_executions(ExecutionFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let a = store
        .list_executions(ExecutionFilter {
            scenario: Some("a".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(a.len(), 2);
    let errors = store
        .list_executions(ExecutionFilter {
            status: Some("error".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].id, "h1");
    assert_eq!(
        store
            .prune_executions(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.prune_executions(Duration::ZERO).await.unwrap(), 3);
}

async fn hook_tokens_and_registrations(store: Arc<dyn Store>) {
    let t1 = store.hook_token("s", 1).await.unwrap();
    assert_eq!(t1.len(), 32);
    assert_eq!(store.hook_token("s", 1).await.unwrap(), t1, "stable");
    let t2 = store.hook_token("t", 1).await.unwrap();
    assert_ne!(t1, t2);
    assert_eq!(store.hooks().await.unwrap().len(), 2);
    store
        .save_registration(Registration {
            scenario: "s".into(),
            module_id: 1,
            hook_url: "http://x/hooks/a".into(),
            data: json!({"webhook_id": 3}),
        })
        .await
        .unwrap();
    let regs = store.registrations("s").await.unwrap();
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].data, json!({"webhook_id": 3}));
    store.delete_registration("s", 1).await.unwrap();
    assert!(store.registrations("s").await.unwrap().is_empty());
}

async fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(&dir.path().join("weft.db")).unwrap())
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let dir = tempfile::tempdir().unwrap();
                super::$name(sqlite(&dir).await).await;
            }
        )*
    };
}

mod sqlite_backend {
    use super::*;
    conformance!(
        queue_claim_complete,
        expired_leases_are_reclaimed,
        dedup_keys_queue_once,
        sequential_scenarios_run_in_order_one_at_a_time,
        break_retries_are_scheduled_then_wait_for_manual_retry,
        history_lists_and_filters,
        hook_tokens_and_registrations,
    );
}

#[tokio::test]
async fn sqlite_queue_survives_reopen_and_recovers_leases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store.enqueue(job("s", 1)).await.unwrap();
        let c = store.claim(1, LEASE).await.unwrap();
        assert_eq!(c.len(), 1);
        // dropped while "running": as after a crash
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.queue_depth().await.unwrap(), 1);
    assert!(
        store.claim(1, LEASE).await.unwrap().is_empty(),
        "still leased"
    );
    assert_eq!(store.recover_leases().await.unwrap(), 1);
    let c = store.claim(1, LEASE).await.unwrap();
    assert_eq!(c[0].payload, json!({"n": 1}));
}

#[tokio::test]
async fn sqlite_group_commit_answers_every_caller() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("weft.db")).unwrap());
    let mut tasks = Vec::new();
    for n in 0..200 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move { s.enqueue(job("g", n)).await }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap().unwrap(), Enqueued::Queued(_)));
    }
    assert_eq!(store.queue_depth().await.unwrap(), 200);
}
