//! The store and queue contract, run against SQLite and Postgres alike.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{Backend, TestDb};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use wcs::queue::{Backoff, JobHandler, Outcome, Queue, QueueConfig, WorkerPool};
use wcs::store::{now_ms, DynStore, Job, JobState, NewJob, Release};

const LEASE: i64 = 30_000;
const T0: i64 = 1_700_000_000_000;

fn job(key: &str, run_at: i64) -> NewJob {
    NewJob {
        kind: "test".into(),
        pairing: Some("persons_customers".into()),
        dedupe_key: key.into(),
        payload: json!({ "key": key }),
        run_at,
        max_attempts: 3,
    }
}

async fn waiting(store: &DynStore) -> i64 {
    store
        .job_counts()
        .await
        .unwrap()
        .iter()
        .filter(|c| c.state == "pending" || c.state == "failed")
        .map(|c| c.count)
        .sum()
}

async fn enqueue_same_key_collapses_into_one_waiting_job(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = store.enqueue(&job("rec-1", T0 + 500), T0).await.unwrap();
    let mut later = job("rec-1", T0 + 100);
    later.payload = json!({ "newest": true });
    let b = store.enqueue(&later, T0 + 1).await.unwrap();
    let mut newest = job("rec-1", T0 + 900);
    newest.payload = json!({ "third": true });
    let c = store.enqueue(&newest, T0 + 2).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(b, c);
    assert_eq!(waiting(&store).await, 1);
    let j = store.get_job(a).await.unwrap().unwrap();
    assert_eq!(j.run_at, T0 + 100, "the earliest run_at wins");
    assert_eq!(
        j.payload_json(),
        json!({ "third": true }),
        "the newest payload wins"
    );
    store.enqueue(&job("rec-2", T0), T0).await.unwrap();
    assert_eq!(waiting(&store).await, 2);
}

/// Chargebee events for one record can arrive out of order and merge into one waiting job:
/// the job keeps the payload naming the newest `resource_version`, through both the plain
/// enqueue and the intake's event-and-jobs statement.
async fn merging_keeps_the_payload_of_the_newest_chargebee_version(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let versioned = |v: serde_json::Value| {
        let mut j = job("sync:rec", T0);
        j.payload = json!({ "side": "chargebee", "id": "c1", "hint": { "resource_version": v } });
        j
    };
    let version_of = |id: i64| {
        let store = store.clone();
        async move {
            store.get_job(id).await.unwrap().unwrap().payload_json()["hint"]["resource_version"]
                .clone()
        }
    };
    let id = store.enqueue(&versioned(json!(5)), T0).await.unwrap();
    store.enqueue(&versioned(json!(3)), T0).await.unwrap();
    assert_eq!(
        version_of(id).await,
        json!(5),
        "an older event does not replace it"
    );
    let event = |n: i64| wcs::store::NewInboundEvent {
        source: "chargebee".into(),
        event_id: Some(format!("ev_{n}")),
        event_type: Some("customer_changed".into()),
        outcome: "accepted".into(),
        detail: None,
        body: None,
        received_at: T0,
        subject: None,
    };
    store
        .record_inbound(&event(7), &[versioned(json!(7))], T0)
        .await
        .unwrap();
    assert_eq!(version_of(id).await, json!(7), "a newer one does");
    store
        .record_inbound(&event(6), &[versioned(json!(6))], T0)
        .await
        .unwrap();
    assert_eq!(version_of(id).await, json!(7));
    // A payload without a number for a version (a dependency's, or a malformed hint) does
    // not displace a versioned one, and breaks nothing.
    store.enqueue(&versioned(json!("x")), T0).await.unwrap();
    store.enqueue(&job("sync:rec", T0), T0).await.unwrap();
    assert_eq!(version_of(id).await, json!(7));
    assert_eq!(waiting(&store).await, 1);
    // Without versions the newest payload still wins, as before.
    let plain = store.enqueue(&job("sync:other", T0), T0).await.unwrap();
    let mut newer = job("sync:other", T0);
    newer.payload = json!({ "newest": true });
    store.enqueue(&newer, T0).await.unwrap();
    assert_eq!(
        store.get_job(plain).await.unwrap().unwrap().payload_json(),
        json!({ "newest": true })
    );
}

async fn claim_takes_only_due_jobs_in_order(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let late = store.enqueue(&job("late", T0 + 10_000), T0).await.unwrap();
    let second = store.enqueue(&job("second", T0 + 20), T0).await.unwrap();
    let first = store.enqueue(&job("first", T0 + 10), T0).await.unwrap();
    let claimed = store.claim("w", T0 + 100, LEASE, 10).await.unwrap();
    let mut ids: Vec<i64> = claimed.iter().map(|j| j.id).collect();
    ids.sort();
    let mut expected = vec![first, second];
    expected.sort();
    assert_eq!(ids, expected);
    for j in &claimed {
        assert_eq!(j.state, "running");
        assert_eq!(j.attempts, 1);
        assert_eq!(j.lease_until, Some(T0 + 100 + LEASE));
        assert_eq!(j.locked_by.as_deref(), Some("w"));
    }
    assert!(store
        .claim("w", T0 + 100, LEASE, 10)
        .await
        .unwrap()
        .is_empty());
    let l = store.claim("w", T0 + 10_000, LEASE, 10).await.unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].id, late);
}

async fn complete_removes_the_job_only_for_its_holder(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = store.enqueue(&job("k", T0), T0).await.unwrap();
    store.claim("a", T0, LEASE, 1).await.unwrap();
    assert!(!store.complete(id, "b").await.unwrap());
    assert!(store.complete(id, "a").await.unwrap());
    assert!(store.get_job(id).await.unwrap().is_none());
    assert!(!store.complete(id, "a").await.unwrap());
}

async fn two_workers_on_separate_pools_never_claim_the_same_job(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store_a = db.store().await;
    let store_b = db.unmigrated_store().await;
    let now = now_ms();
    for i in 0..400 {
        store_a
            .enqueue(&job(&format!("rec-{i}"), now), now)
            .await
            .unwrap();
    }
    let seen: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    let mut tasks = Vec::new();
    for (name, store) in [("a", store_a.clone()), ("b", store_b.clone())] {
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = 0;
            loop {
                let jobs = store.claim(name, now_ms(), LEASE, 7).await.unwrap();
                if jobs.is_empty() {
                    return mine;
                }
                for j in jobs {
                    *seen.lock().unwrap().entry(j.id).or_default() += 1;
                    assert!(store.complete(j.id, name).await.unwrap());
                    mine += 1;
                }
            }
        }));
    }
    let mut per_worker = Vec::new();
    for t in tasks {
        per_worker.push(t.await.unwrap());
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 400, "every job claimed");
    assert!(seen.values().all(|&n| n == 1), "no job claimed twice");
    assert_eq!(per_worker.iter().sum::<usize>(), 400);
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "both workers took part: {per_worker:?}"
    );
    assert_eq!(waiting(&store_a).await, 0);
}

async fn expired_lease_is_reclaimed_and_the_old_holder_is_fenced(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = store.enqueue(&job("k", T0), T0).await.unwrap();
    assert_eq!(store.claim("dies", T0, LEASE, 1).await.unwrap().len(), 1);
    // The worker "dies": nobody completes. Before the lease ends nobody else gets the job.
    assert_eq!(store.reclaim_expired(T0 + LEASE - 1).await.unwrap(), 0);
    assert!(store
        .claim("other", T0 + LEASE - 1, LEASE, 1)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.reclaim_expired(T0 + LEASE + 1).await.unwrap(), 1);
    let again = store
        .claim("other", T0 + LEASE + 1, LEASE, 1)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, id);
    assert_eq!(again[0].attempts, 2);
    assert!(
        !store.complete(id, "dies").await.unwrap(),
        "the old holder is fenced off"
    );
    assert!(!store.extend_lease(id, "dies", T0 + 99_999).await.unwrap());
    assert!(store.complete(id, "other").await.unwrap());
}

async fn expired_job_with_a_newer_waiting_job_gives_way_to_it(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let first = store.enqueue(&job("k", T0), T0).await.unwrap();
    store.claim("dies", T0, LEASE, 1).await.unwrap();
    let second = store.enqueue(&job("k", T0 + 1), T0 + 1).await.unwrap();
    assert_eq!(store.reclaim_expired(T0 + LEASE + 1).await.unwrap(), 1);
    assert!(store.get_job(first).await.unwrap().is_none());
    let next = store.claim("w", T0 + LEASE + 1, LEASE, 5).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].id, second);
}

async fn heartbeat_keeps_a_long_job_from_being_reclaimed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = store.enqueue(&job("k", T0), T0).await.unwrap();
    store.claim("a", T0, LEASE, 1).await.unwrap();
    assert!(store.extend_lease(id, "a", T0 + 2 * LEASE).await.unwrap());
    assert_eq!(store.reclaim_expired(T0 + LEASE + 1).await.unwrap(), 0);
    assert!(store
        .claim("b", T0 + LEASE + 1, LEASE, 1)
        .await
        .unwrap()
        .is_empty());
}

async fn failed_job_waits_for_its_retry_time(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = store.enqueue(&job("k", T0), T0).await.unwrap();
    store.claim("w", T0, LEASE, 1).await.unwrap();
    let how = Release::Retry {
        run_at: T0 + 5_000,
        error: "boom".into(),
    };
    assert_eq!(
        store.release(id, "w", &how, T0 + 1).await.unwrap(),
        Some(JobState::Failed)
    );
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(j.state, "failed");
    assert_eq!(j.last_error.as_deref(), Some("boom"));
    assert_eq!(j.locked_by, None);
    assert!(store
        .claim("w", T0 + 4_999, LEASE, 1)
        .await
        .unwrap()
        .is_empty());
    let again = store.claim("w", T0 + 5_000, LEASE, 1).await.unwrap();
    assert_eq!(again[0].attempts, 2);
}

async fn job_goes_dead_after_max_attempts(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = store.enqueue(&job("k", T0), T0).await.unwrap();
    let mut states = Vec::new();
    for attempt in 0..3 {
        let t = T0 + attempt * 1_000;
        assert_eq!(store.claim("w", t, LEASE, 1).await.unwrap().len(), 1);
        let how = Release::Retry {
            run_at: t + 1,
            error: format!("fail {attempt}"),
        };
        states.push(store.release(id, "w", &how, t).await.unwrap().unwrap());
    }
    assert_eq!(
        states,
        vec![JobState::Failed, JobState::Failed, JobState::Dead]
    );
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(j.state, "dead");
    assert!(j.last_error.unwrap().contains("fail 2"));
    assert!(store
        .claim("w", T0 + 100_000, LEASE, 1)
        .await
        .unwrap()
        .is_empty());
}

async fn fatal_failure_is_dead_at_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = store.enqueue(&job("k", T0), T0).await.unwrap();
    store.claim("w", T0, LEASE, 1).await.unwrap();
    let how = Release::Dead {
        error: "rejected: email too long".into(),
    };
    assert_eq!(
        store.release(id, "w", &how, T0).await.unwrap(),
        Some(JobState::Dead)
    );
}

async fn lease_expiring_on_the_last_attempt_buries_the_job(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut j = job("k", T0);
    j.max_attempts = 1;
    let id = store.enqueue(&j, T0).await.unwrap();
    store.claim("crashes", T0, LEASE, 1).await.unwrap();
    assert_eq!(store.reclaim_expired(T0 + LEASE + 1).await.unwrap(), 1);
    assert!(store
        .claim("w", T0 + LEASE + 1, LEASE, 1)
        .await
        .unwrap()
        .is_empty());
    let dead = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(dead.state, "dead");
    assert!(dead.last_error.unwrap().contains("lease expired"));
}

async fn waiting_on_a_dependency_does_not_use_an_attempt(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = store.enqueue(&job("k", T0), T0).await.unwrap();
    for round in 0..5 {
        let t = T0 + round * 10;
        assert_eq!(store.claim("w", t, LEASE, 1).await.unwrap().len(), 1);
        let how = Release::Wait {
            run_at: t + 5,
            reason: "organisation not synced yet".into(),
        };
        assert_eq!(
            store.release(id, "w", &how, t).await.unwrap(),
            Some(JobState::Pending)
        );
    }
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(j.attempts, 0);
    assert_eq!(j.state, "pending");
}

async fn one_record_never_runs_twice_at_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let first = store.enqueue(&job("rec", T0), T0).await.unwrap();
    assert_eq!(store.claim("a", T0, LEASE, 10).await.unwrap().len(), 1);
    // A new event for the same record arrives while its job runs: a new job waits ...
    let second = store.enqueue(&job("rec", T0 + 1), T0 + 1).await.unwrap();
    assert_ne!(first, second);
    // ... and is not handed to another worker until the first finishes.
    assert!(store
        .claim("b", T0 + 2, LEASE, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.complete(first, "a").await.unwrap());
    let next = store.claim("b", T0 + 3, LEASE, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].id, second);
}

async fn failing_job_absorbs_the_job_queued_behind_it(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let first = store.enqueue(&job("rec", T0), T0).await.unwrap();
    store.claim("a", T0, LEASE, 1).await.unwrap();
    store.enqueue(&job("rec", T0 + 1), T0 + 1).await.unwrap();
    let how = Release::Retry {
        run_at: T0 + 60_000,
        error: "rate limited".into(),
    };
    store.release(first, "a", &how, T0 + 2).await.unwrap();
    assert_eq!(
        waiting(&store).await,
        1,
        "one job per record keeps the backoff"
    );
    assert!(store
        .claim("b", T0 + 3, LEASE, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn paused_pairing_keeps_its_jobs_queued(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store.enqueue(&job("k", T0), T0).await.unwrap();
    let mut other = job("o", T0);
    other.pairing = Some("products_items".into());
    store.enqueue(&other, T0).await.unwrap();
    store
        .set_pairing_paused("persons_customers", true, T0)
        .await
        .unwrap();
    assert_eq!(
        store.paused_pairings().await.unwrap(),
        vec!["persons_customers".to_string()]
    );
    let claimed = store.claim("w", T0, LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].pairing.as_deref(), Some("products_items"));
    store
        .set_pairing_paused("persons_customers", false, T0)
        .await
        .unwrap();
    assert_eq!(store.claim("w", T0, LEASE, 10).await.unwrap().len(), 1);
}

async fn migrations_run_concurrently_and_twice_without_harm(backend: Backend) {
    let db = TestDb::new(backend).await;
    let a = db.unmigrated_store().await;
    let b = db.unmigrated_store().await;
    let reason = a.readiness().await.unwrap_err();
    assert!(reason.contains("migrations not applied"), "{reason}");
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.unwrap();
    rb.unwrap();
    a.migrate().await.unwrap();
    a.readiness().await.unwrap();
    b.readiness().await.unwrap();
}

/// Counts how often each job id is handled; fails the first `fail_first` runs of each job.
#[derive(Default)]
struct Recorder {
    runs: Mutex<HashMap<i64, usize>>,
    fail_first: usize,
}

#[async_trait]
impl JobHandler for Recorder {
    async fn handle(&self, job: &Job) -> Outcome {
        let n = {
            let mut runs = self.runs.lock().unwrap();
            let n = runs.entry(job.id).or_default();
            *n += 1;
            *n
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        if n <= self.fail_first {
            Outcome::Retry {
                error: "transient".into(),
                retry_after: Some(Duration::ZERO),
            }
        } else {
            Outcome::Done
        }
    }
}

fn fast_config(concurrency: usize) -> QueueConfig {
    QueueConfig {
        concurrency,
        idle_poll: Duration::from_millis(20),
        shutdown_grace: Duration::from_secs(5),
        ..QueueConfig::default()
    }
}

async fn worker_pools_on_two_connections_run_each_job_exactly_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store_a = db.store().await;
    let store_b = db.unmigrated_store().await;
    let queue_a = Queue::new(store_a.clone(), 5);
    let queue_b = Queue::new(store_b, 5);
    for i in 0..300 {
        let j = queue_a.job("test", None, format!("rec-{i}"), json!({}));
        queue_a.enqueue(&j).await.unwrap();
    }
    let recorder = Arc::new(Recorder {
        fail_first: 1,
        ..Recorder::default()
    });
    let cancel = CancellationToken::new();
    let pools = [
        WorkerPool::new(queue_a, recorder.clone(), fast_config(4)),
        WorkerPool::new(queue_b, recorder.clone(), fast_config(4)),
    ];
    let handles: Vec<_> = pools
        .into_iter()
        .map(|p| tokio::spawn(p.run(cancel.clone())))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left: i64 = store_a
            .job_counts()
            .await
            .unwrap()
            .iter()
            .map(|c| c.count)
            .sum();
        if left == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{left} jobs left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    for h in handles {
        h.await.unwrap();
    }
    let runs = recorder.runs.lock().unwrap();
    assert_eq!(runs.len(), 300);
    // Each job failed once (retried) and then completed once: exactly two runs.
    assert!(runs.values().all(|&n| n == 2), "{:?}", runs.values().max());
}

async fn worker_backoff_schedules_retries_within_the_jitter_window(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let queue = Queue::new(store.clone(), 5);
    let recorder = Arc::new(Recorder {
        fail_first: 10,
        ..Recorder::default()
    });
    // Handler asks for backoff (no retry_after): wrap the recorder's answer.
    struct NoHint(Arc<Recorder>);
    #[async_trait]
    impl JobHandler for NoHint {
        async fn handle(&self, job: &Job) -> Outcome {
            match self.0.handle(job).await {
                Outcome::Retry { error, .. } => Outcome::Retry {
                    error,
                    retry_after: None,
                },
                other => other,
            }
        }
    }
    let backoff = Backoff {
        base: Duration::from_secs(10),
        cap: Duration::from_secs(3600),
    };
    let pool = WorkerPool::new(
        queue.clone(),
        Arc::new(NoHint(recorder)),
        QueueConfig {
            backoff,
            ..fast_config(1)
        },
    );
    let id = queue
        .enqueue(&queue.job("test", None, "k".into(), json!({})))
        .await
        .unwrap();
    let before = now_ms();
    assert_eq!(pool.run_until_idle().await.unwrap(), 1);
    let after = now_ms();
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(j.state, "failed");
    // After attempt 1 the delay is within [base/2, base].
    assert!(
        j.run_at >= before + 5_000 && j.run_at <= after + 10_000,
        "{}",
        j.run_at - before
    );
}

async fn retry_after_from_the_api_wins_over_backoff(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let queue = Queue::new(store.clone(), 5);
    struct RateLimited;
    #[async_trait]
    impl JobHandler for RateLimited {
        async fn handle(&self, _job: &Job) -> Outcome {
            Outcome::Retry {
                error: "429".into(),
                retry_after: Some(Duration::from_secs(42)),
            }
        }
    }
    let pool = WorkerPool::new(queue.clone(), Arc::new(RateLimited), fast_config(1));
    let id = queue
        .enqueue(&queue.job("test", None, "k".into(), json!({})))
        .await
        .unwrap();
    let before = now_ms();
    pool.run_until_idle().await.unwrap();
    let j = store.get_job(id).await.unwrap().unwrap();
    let delay = j.run_at - before;
    assert!((42_000..43_000).contains(&delay), "{delay}");
}

async fn unknown_job_kind_is_dead_not_dropped(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let queue = Queue::new(store.clone(), 5);
    let pool = WorkerPool::new(
        queue.clone(),
        Arc::new(wcs::queue::Dispatcher::new()),
        fast_config(1),
    );
    let id = queue
        .enqueue(&queue.job("mystery", None, "k".into(), json!({})))
        .await
        .unwrap();
    pool.run_until_idle().await.unwrap();
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(j.state, "dead");
    assert!(j.last_error.unwrap().contains("mystery"));
}

async fn handler_panic_is_a_retryable_failure(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let queue = Queue::new(store.clone(), 5);
    struct Panics;
    #[async_trait]
    impl JobHandler for Panics {
        async fn handle(&self, _job: &Job) -> Outcome {
            panic!("handler bug")
        }
    }
    let pool = WorkerPool::new(queue.clone(), Arc::new(Panics), fast_config(1));
    let id = queue
        .enqueue(&queue.job("test", None, "k".into(), json!({})))
        .await
        .unwrap();
    pool.run_until_idle().await.unwrap();
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(j.state, "failed");
    assert!(j.last_error.unwrap().contains("crashed"));
}

on_both_backends!(
    enqueue_same_key_collapses_into_one_waiting_job,
    merging_keeps_the_payload_of_the_newest_chargebee_version,
    claim_takes_only_due_jobs_in_order,
    complete_removes_the_job_only_for_its_holder,
    two_workers_on_separate_pools_never_claim_the_same_job,
    expired_lease_is_reclaimed_and_the_old_holder_is_fenced,
    heartbeat_keeps_a_long_job_from_being_reclaimed,
    expired_job_with_a_newer_waiting_job_gives_way_to_it,
    failed_job_waits_for_its_retry_time,
    job_goes_dead_after_max_attempts,
    fatal_failure_is_dead_at_once,
    lease_expiring_on_the_last_attempt_buries_the_job,
    waiting_on_a_dependency_does_not_use_an_attempt,
    one_record_never_runs_twice_at_once,
    failing_job_absorbs_the_job_queued_behind_it,
    paused_pairing_keeps_its_jobs_queued,
    migrations_run_concurrently_and_twice_without_harm,
    worker_pools_on_two_connections_run_each_job_exactly_once,
    worker_backoff_schedules_retries_within_the_jitter_window,
    retry_after_from_the_api_wins_over_backoff,
    unknown_job_kind_is_dead_not_dropped,
    handler_panic_is_a_retryable_failure,
);
