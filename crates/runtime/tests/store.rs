//! Store conformance: one suite every backend must pass (SQLite, and PostgreSQL when
//! `WEFT_TEST_DATABASE_URL` names a server: each test then creates its own database), plus
//! what only a shared PostgreSQL store does (several nodes, lost connections).
#![allow(clippy::unwrap_used)]

mod pg;
mod values;

use std::sync::Arc;
use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::json;
use weft_engine::exec::{ExecutionRecord, Incomplete, Status, Step, StepError};
use weft_engine::ErrorKind;
use weft_runtime::store::{
    Enqueued, ExecutionFilter, JobKind, NewJob, Registration, SqliteStore, Store,
};

fn job(scenario: &str, n: u32) -> NewJob {
    NewJob {
        scenario: scenario.into(),
        kind: JobKind::Trigger,
        payload: json!({ "n": n }),
        payload_json: None,
        dedup_key: None,
        sequential: false,
        lease: None,
    }
}

fn record(
    id: &str,
    scenario: &str,
    status: Status,
    incomplete: Vec<Incomplete>,
) -> Arc<ExecutionRecord> {
    let mut record = ExecutionRecord::new(
        id,
        scenario,
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        json!({"n": 1}),
    );
    record.status = status;
    record.operations = 2;
    record.duration_ms = 1;
    record.incomplete = incomplete;
    Arc::new(record)
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
    let Enqueued::Queued(a) = store.enqueue(job("s", 1), None).await.unwrap() else {
        panic!("not queued")
    };
    store.enqueue(job("s", 2), None).await.unwrap();
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
    store.enqueue(job("s", 1), None).await.unwrap();
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

/// Whatever order leases are granted in, each job comes back once its own lease expires:
/// a long lease granted first must not hide a short one granted after it (the SQLite store
/// sweeps expired leases from the earliest expiry it knows of).
async fn a_short_lease_after_a_long_one_still_expires_on_time(store: Arc<dyn Store>) {
    let mut long = job("s", 1);
    long.lease = Some(LEASE);
    store.enqueue(long, None).await.unwrap();
    // A claim now finds nothing (and may sweep: nothing has expired).
    assert!(store.claim(10, LEASE).await.unwrap().is_empty());
    store.enqueue(job("s", 2), None).await.unwrap();
    let short = store.claim(10, Duration::from_millis(1)).await.unwrap();
    assert_eq!(short.len(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = store.claim(10, LEASE).await.unwrap();
    assert_eq!(
        again.len(),
        1,
        "the job under the expired short lease, not the long one"
    );
    assert_eq!(again[0].id, short[0].id);
    assert_eq!(again[0].attempts, 2);
    assert!(store.claim(10, LEASE).await.unwrap().is_empty());
}

/// A job queued already claimed by its node (the intake's handover) is no work for claims
/// until its lease expires; then it is claimed as its second attempt.
async fn jobs_queued_under_a_lease_are_not_claimed_until_it_expires(store: Arc<dyn Store>) {
    let mut held = job("s", 1);
    held.lease = Some(Duration::from_millis(300));
    // The store hands the committed job back, payload included, before `enqueue` returns.
    let (tx, rx) = std::sync::mpsc::channel();
    let then: weft_runtime::store::OnQueued = Box::new(move |j| tx.send(j).unwrap());
    let Enqueued::Queued(id) = store.enqueue(held, Some(then)).await.unwrap() else {
        panic!("not queued")
    };
    let handed = rx.try_recv().expect("`then` ran before enqueue returned");
    assert_eq!((handed.id, handed.attempts), (id, 1));
    assert_eq!(handed.payload, json!({"n": 1}));
    store.enqueue(job("s", 2), None).await.unwrap();
    assert_eq!(store.queue_depth().await.unwrap(), 2);
    let claimed = store.claim(10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1, "only the job nobody holds");
    assert_ne!(claimed[0].id, id);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = store.claim(10, LEASE).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, id);
    assert_eq!(after[0].payload, json!({"n": 1}));
    assert_eq!(
        after[0].attempts, 2,
        "the handover counted as the first attempt"
    );
}

/// A payload given as JSON text is stored as that text and claimed back as the same value.
async fn payload_text_is_stored_as_given(store: Arc<dyn Store>) {
    let mut j = job("s", 1);
    j.payload = json!({ "b": [1, 2.5, "x"], "a": { "z": null, "y": true } });
    j.payload_json =
        Some("{ \"b\" : [1, 2.5, \"x\"],\n  \"a\": {\"z\": null, \"y\": true} }".into());
    store.enqueue(j, None).await.unwrap();
    let claimed = store.claim(1, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        claimed[0].payload,
        json!({ "b": [1, 2.5, "x"], "a": { "z": null, "y": true } })
    );
    // Key order as sent.
    let keys: Vec<&String> = claimed[0].payload.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["b", "a"]);
}

async fn dedup_keys_queue_once(store: Arc<dyn Store>) {
    let mut j = job("s", 1);
    j.dedup_key = Some("s:uuid-1".into());
    assert!(matches!(
        store.enqueue(j.clone(), None).await.unwrap(),
        Enqueued::Queued(_)
    ));
    let never: weft_runtime::store::OnQueued = Box::new(|j| panic!("duplicate handed back: {j:?}"));
    assert_eq!(
        store.enqueue(j.clone(), Some(never)).await.unwrap(),
        Enqueued::Duplicate
    );
    // Still a duplicate after the first one ran.
    let c = store.claim(1, LEASE).await.unwrap();
    store
        .complete(&c[0], &record("d1", "s", Status::Success, vec![]), None)
        .await
        .unwrap();
    assert_eq!(
        store.enqueue(j.clone(), None).await.unwrap(),
        Enqueued::Duplicate
    );
    assert_eq!(store.queue_depth().await.unwrap(), 0);
}

async fn sequential_scenarios_run_in_order_one_at_a_time(store: Arc<dyn Store>) {
    for n in 0..3 {
        let mut j = job("seq", n);
        j.sequential = true;
        store.enqueue(j.clone(), None).await.unwrap();
    }
    store.enqueue(job("free", 9), None).await.unwrap();
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
    store.enqueue(job("b", 1), None).await.unwrap();
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

/// Whatever JSON a bundle holds, its execution record is read back exactly as it was written:
/// its trigger, a step's input and outputs, and the response (64 generated values, the same
/// ones every run).
async fn any_record_data_is_read_back_exactly(store: Arc<dyn Store>) {
    let mut runner = TestRunner::deterministic();
    for i in 0..64 {
        let data = values::json_value()
            .new_tree(&mut runner)
            .unwrap()
            .current();
        store.enqueue(job("data", i), None).await.unwrap();
        let claimed = store.claim(1, LEASE).await.unwrap();
        let mut written = (*record(&format!("data-{i}"), "data", Status::Success, vec![])).clone();
        written.set_trigger(data.clone());
        written.steps.push(Step {
            module_id: 1,
            module: "webhook.custom".into(),
            input: data.clone(),
            output: vec![data.clone(), json!({"nested": data.clone()})],
            error: None,
            duration_us: 7,
        });
        written.response = Some(data);
        store
            .complete(&claimed[0], &Arc::new(written.clone()), None)
            .await
            .unwrap();
        let read = store.execution(&written.id).await.unwrap();
        assert_eq!(read.as_ref(), Some(&written), "case {i}");
    }
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
        store.enqueue(job(s, 0), None).await.unwrap();
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

macro_rules! postgres_conformance {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some(db) = pg::TestDb::create().await else { return };
                super::$name(db.store(true).await).await;
            }
        )*
    };
}

mod postgres_backend {
    use super::*;
    postgres_conformance!(
        queue_claim_complete,
        expired_leases_are_reclaimed,
        a_short_lease_after_a_long_one_still_expires_on_time,
        jobs_queued_under_a_lease_are_not_claimed_until_it_expires,
        dedup_keys_queue_once,
        payload_text_is_stored_as_given,
        sequential_scenarios_run_in_order_one_at_a_time,
        break_retries_are_scheduled_then_wait_for_manual_retry,
        history_lists_and_filters,
        any_record_data_is_read_back_exactly,
        hook_tokens_and_registrations,
    );
}

mod sqlite_backend {
    use super::*;
    conformance!(
        queue_claim_complete,
        expired_leases_are_reclaimed,
        a_short_lease_after_a_long_one_still_expires_on_time,
        jobs_queued_under_a_lease_are_not_claimed_until_it_expires,
        dedup_keys_queue_once,
        payload_text_is_stored_as_given,
        sequential_scenarios_run_in_order_one_at_a_time,
        break_retries_are_scheduled_then_wait_for_manual_retry,
        history_lists_and_filters,
        any_record_data_is_read_back_exactly,
        hook_tokens_and_registrations,
    );
}

#[tokio::test]
async fn sqlite_queue_survives_reopen_and_recovers_leases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store.enqueue(job("s", 1), None).await.unwrap();
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
        tasks.push(tokio::spawn(
            async move { s.enqueue(job("g", n), None).await },
        ));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap().unwrap(), Enqueued::Queued(_)));
    }
    assert_eq!(store.queue_depth().await.unwrap(), 200);
}

/// What only a store shared by several nodes does: each test opens two or more
/// `PostgresStore`s (nodes) on one fresh database.
mod postgres_cluster {
    use std::collections::HashSet;

    use super::*;
    use weft_runtime::store::{Backend, StoreError};

    #[tokio::test]
    async fn nodes_starting_together_migrate_once() {
        let Some(db) = pg::TestDb::create().await else {
            return;
        };
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = db.url.clone();
                tokio::spawn(async move {
                    weft_runtime::store::PostgresStore::connect(&url, false).await
                })
            })
            .collect();
        for open in opens {
            open.await.unwrap().unwrap();
        }
        let client = db.client().await;
        let rows = client
            .query("SELECT version FROM schema_version", &[])
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, i32>(0), 2, "every migration applied once");
    }

    /// `--db-pool`: however many callers, a node opens at most that many connections.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_stays_within_its_size() {
        let Some(db) = pg::TestDb::create().await else {
            return;
        };
        let store: Arc<dyn Store> = Arc::new(
            weft_runtime::store::PostgresStore::connect_pooled(&db.url, false, 2)
                .await
                .unwrap(),
        );
        let tasks: Vec<_> = (0..64u32)
            .map(|n| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.enqueue(job("p", n), None).await.unwrap();
                    s.claim(1, LEASE).await.unwrap();
                    s.queue_depth().await.unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(store.queue_depth().await.unwrap(), 64);
        let client = db.client().await;
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'weft'",
                &[&db.name],
            )
            .await
            .unwrap();
        let open: i64 = row.get(0);
        assert!((1..=2).contains(&open), "{open} connections open");
    }

    #[tokio::test]
    async fn concurrent_claims_never_overlap() {
        let Some(db) = pg::TestDb::create().await else {
            return;
        };
        let a = db.store(false).await;
        let b = db.store(false).await;
        for n in 0..200 {
            a.enqueue(job("s", n), None).await.unwrap();
        }
        let claim_all = |store: Arc<dyn Store>| {
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let jobs = store.claim(7, LEASE).await.unwrap();
                    if jobs.is_empty() {
                        return ids;
                    }
                    ids.extend(jobs.iter().map(|j| j.id));
                }
            })
        };
        let (x, y) = (claim_all(a.clone()), claim_all(b.clone()));
        let (x, y) = (x.await.unwrap(), y.await.unwrap());
        let xs: HashSet<i64> = x.iter().copied().collect();
        let ys: HashSet<i64> = y.iter().copied().collect();
        assert_eq!(xs.len() + ys.len(), 200, "every job claimed once");
        assert!(xs.is_disjoint(&ys), "no job claimed by both nodes");
    }

    #[tokio::test]
    async fn group_commit_answers_every_caller_and_dedups_within_a_batch() {
        let Some(db) = pg::TestDb::create().await else {
            return;
        };
        let store = db.store(false).await;
        let mut tasks = Vec::new();
        for n in 0..300 {
            let s = store.clone();
            tasks.push(tokio::spawn(
                async move { s.enqueue(job("g", n), None).await },
            ));
        }
        let mut ids = HashSet::new();
        for t in tasks {
            match t.await.unwrap().unwrap() {
                Enqueued::Queued(id) => assert!(ids.insert(id)),
                Enqueued::Duplicate => panic!("no dedup key, no duplicate"),
            }
        }
        assert_eq!(store.queue_depth().await.unwrap(), 300);
        // The same delivery arriving 50 times at once, through two nodes.
        let other = db.store(false).await;
        let mut tasks = Vec::new();
        for n in 0..50 {
            let s = if n % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            let mut j = job("g", n);
            j.dedup_key = Some("g:same-uuid".into());
            tasks.push(tokio::spawn(
                async move { s.enqueue(j.clone(), None).await },
            ));
        }
        let mut queued = 0;
        for t in tasks {
            if let Enqueued::Queued(_) = t.await.unwrap().unwrap() {
                queued += 1;
            }
        }
        assert_eq!(queued, 1);
        assert_eq!(store.queue_depth().await.unwrap(), 301);
    }

    #[tokio::test]
    async fn sequential_order_holds_across_nodes() {
        let Some(db) = pg::TestDb::create().await else {
            return;
        };
        let a = db.store(false).await;
        let b = db.store(false).await;
        for n in 0..3 {
            let mut j = job("seq", n);
            j.sequential = true;
            a.enqueue(j.clone(), None).await.unwrap();
        }
        let first = a.claim(10, LEASE).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].payload, json!({"n": 0}));
        assert!(
            b.claim(10, LEASE).await.unwrap().is_empty(),
            "the oldest runs"
        );
        a.complete(
            &first[0],
            &record("s0", "seq", Status::Success, vec![]),
            None,
        )
        .await
        .unwrap();
        let second = b.claim(10, LEASE).await.unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].payload, json!({"n": 1}));
    }

    #[tokio::test]
    async fn a_node_dying_loses_its_leases_not_its_jobs() {
        let Some(db) = pg::TestDb::create().await else {
            return;
        };
        let a = db.store(false).await;
        a.enqueue(job("s", 1), None).await.unwrap();
        assert_eq!(
            a.claim(1, Duration::from_millis(300)).await.unwrap().len(),
            1
        );
        drop(a);
        // A node starting meanwhile does not take leases back: their owner may be alive.
        let backend = Backend::parse(&db.url);
        let b = weft_runtime::store::open(&backend, true).await.unwrap();
        assert!(b.claim(1, LEASE).await.unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(400)).await;
        let again = b.claim(1, LEASE).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 2);
    }

    #[tokio::test]
    async fn hook_tokens_are_shared_by_nodes_starting_together() {
        let Some(db) = pg::TestDb::create().await else {
            return;
        };
        let a = db.store(false).await;
        let b = db.store(false).await;
        let (x, y) = tokio::join!(a.hook_token("s", 1), b.hook_token("s", 1));
        assert_eq!(x.unwrap(), y.unwrap());
        assert_eq!(b.hooks().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn cluster_locks_exclude_other_nodes_until_dropped() {
        let Some(db) = pg::TestDb::create().await else {
            return;
        };
        let a = db.store(false).await;
        let b = db.store(false).await;
        let held = a.cluster_lock("activate:s:1").await.unwrap();
        let waiting = tokio::spawn(async move { b.cluster_lock("activate:s:1").await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "the second node waits");
        // Another name is free.
        drop(a.cluster_lock("activate:t:1").await.unwrap());
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the lock is released with its session")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn listeners_are_woken_by_other_nodes_enqueueing() {
        let Some(db) = pg::TestDb::create().await else {
            return;
        };
        let listener = db.store(true).await;
        // The listener wakes once when it starts listening.
        tokio::time::timeout(Duration::from_secs(5), listener.queue_notified())
            .await
            .expect("listening");
        let other = db.store(false).await;
        // A job queued under its node's lease is that node's: nobody else is woken.
        let mut held = job("s", 0);
        held.lease = Some(LEASE);
        other.enqueue(held, None).await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(500), listener.queue_notified())
                .await
                .is_err(),
            "woken for a job another node holds"
        );
        other.enqueue(job("s", 1), None).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), listener.queue_notified())
            .await
            .expect("woken by NOTIFY");
    }

    #[tokio::test]
    async fn terminated_connections_are_replaced() {
        let Some(db) = pg::TestDb::create().await else {
            return;
        };
        let store = db.store(true).await;
        for n in 0..20 {
            store.enqueue(job("s", n), None).await.unwrap();
        }
        assert!(db.terminate_connections().await > 0);
        // Every operation recovers by itself on new connections.
        for n in 0..20 {
            store.enqueue(job("s", n), None).await.unwrap();
        }
        assert_eq!(store.queue_depth().await.unwrap(), 40);
        let claimed = store.claim(64, LEASE).await.unwrap();
        assert_eq!(claimed.len(), 40);
        assert!(db.terminate_connections().await > 0);
        let mut done = 0;
        for (i, j) in claimed.iter().enumerate() {
            // A claim or completion that lost its connection reports it; the worker retries.
            let rec = record(&format!("t{i}"), "s", Status::Success, vec![]);
            for _ in 0..3 {
                if store.complete(j, &rec, None).await.is_ok() {
                    done += 1;
                    break;
                }
            }
        }
        assert_eq!(done, 40);
        assert_eq!(store.queue_depth().await.unwrap(), 0);
        // The listener came back too.
        let other = db.store(false).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        other.enqueue(job("s", 99), None).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), store.queue_notified())
            .await
            .expect("listening again");
    }

    #[tokio::test]
    async fn completing_twice_after_a_lost_answer_writes_once() {
        let Some(db) = pg::TestDb::create().await else {
            return;
        };
        let store = db.store(false).await;
        store.enqueue(job("b", 1), None).await.unwrap();
        let c = store.claim(1, LEASE).await.unwrap();
        let rec = record("twice", "b", Status::Incomplete, vec![incomplete(0, 0)]);
        store.complete(&c[0], &rec, None).await.unwrap();
        store.complete(&c[0], &rec, None).await.unwrap();
        let client = db.client().await;
        let n: i64 = client
            .query_one("SELECT count(*) FROM incomplete", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn an_unreachable_server_is_reported_unavailable() {
        // Nothing listens on port 1: no WEFT_TEST_DATABASE_URL needed.
        let started = std::time::Instant::now();
        let err = weft_runtime::store::PostgresStore::connect(
            "postgres://postgres@127.0.0.1:1/weft",
            false,
        )
        .await
        .err()
        .expect("no server");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

/// Under constant writes the WAL file does not grow without bound: the writer finishes a
/// checkpoint once it passes 64 MiB, and the WAL starts over (cut back to 64 MiB). (Without
/// that, a checkpoint running beside the writer never catches up with the last frame, and
/// SQLite starts the WAL over only once every frame is copied.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_stays_bounded_under_constant_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.db");
    let wal = dir.path().join("weft.db-wal");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let largest = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Four writers keep the storage thread busy: 1 MiB of payload per job, written twice
    // (queue row, record), about 240 MiB in all.
    let writers: Vec<_> = (0..4u32)
        .map(|w| {
            let store = store.clone();
            let largest = largest.clone();
            let wal = wal.clone();
            tokio::spawn(async move {
                let big = "x".repeat(1 << 20);
                for n in 0..30u32 {
                    let mut j = job("s", w * 100 + n);
                    j.payload = json!({ "n": n, "blob": big });
                    j.lease = Some(LEASE);
                    let Enqueued::Queued(id) = store.enqueue(j.clone(), None).await.unwrap() else {
                        panic!("not queued")
                    };
                    let claimed = weft_runtime::store::Job {
                        id,
                        scenario: "s".into(),
                        kind: JobKind::Trigger,
                        payload: j.payload.clone(),
                        attempts: 1,
                    };
                    let mut r = record(&format!("e{w}-{n}"), "s", Status::Success, vec![]);
                    Arc::make_mut(&mut r).set_trigger(j.payload);
                    store.complete(&claimed, &r, None).await.unwrap();
                    let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                    largest.fetch_max(size, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let largest = largest.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        largest < 100 << 20,
        "about 240 MiB written, but the WAL file reached {largest} bytes"
    );
}
