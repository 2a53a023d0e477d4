//! Queue throughput: jobs claimed and completed per second through the worker pool with a
//! no-op handler, for 1, 4 and 16 workers, on SQLite and Postgres.
//!
//! `cargo bench --bench queue` (Postgres from `DATABASE_URL`, else a throwaway server as in
//! the tests). `QUEUE_BENCH_JOBS` sets the jobs per run (default 4000).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::{Backend, TestDb};
use tokio_util::sync::CancellationToken;
use wcs::queue::{JobHandler, Outcome, Queue, QueueConfig, WorkerPool};
use wcs::store::{now_ms, Job, NewJob};

struct Noop;

#[async_trait]
impl JobHandler for Noop {
    async fn handle(&self, _job: &Job) -> Outcome {
        Outcome::Done
    }
}

async fn run(backend: Backend, workers: usize, jobs: usize) -> f64 {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let now = now_ms();
    for i in 0..jobs {
        let job = NewJob {
            kind: "bench".into(),
            pairing: None,
            dedupe_key: format!("rec-{i}"),
            payload: serde_json::json!({}),
            run_at: now,
            max_attempts: 3,
        };
        store.enqueue(&job, now).await.expect("enqueue");
    }
    let queue = Queue::new(store.clone(), 3);
    let pool = WorkerPool::new(
        queue,
        Arc::new(Noop),
        QueueConfig {
            concurrency: workers,
            idle_poll: Duration::from_millis(5),
            ..QueueConfig::default()
        },
    );
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let handle = tokio::spawn(pool.run(cancel.clone()));
    loop {
        let left: i64 = store
            .job_counts()
            .await
            .expect("counts")
            .iter()
            .map(|c| c.count)
            .sum();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let elapsed = started.elapsed();
    cancel.cancel();
    handle.await.expect("pool");
    jobs as f64 / elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let jobs: usize = std::env::var("QUEUE_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    println!("queue throughput, {jobs} no-op jobs per run (claim 1 + complete per job)\n");
    println!("| backend | workers | jobs/s |");
    println!("|---|---:|---:|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        for workers in [1, 4, 16] {
            let rate = run(backend, workers, jobs).await;
            println!("| {backend:?} | {workers} | {rate:.0} |");
        }
    }
}
