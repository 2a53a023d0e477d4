//! Webhook intake throughput and ack latency against a raw Postgres baseline, same run.
//!
//! `cargo bench --bench intake` (Postgres from `DATABASE_URL`, else a throwaway server).
//! `INTAKE_BENCH_SECS` (default 10) sets each phase's length; concurrency is 16.
//!
//! Phases: (1) baseline — one transaction inserting an event row and a job row, straight
//! into Postgres with sqlx; (2) intake on Postgres and (3) on SQLite — Chargebee webhooks
//! over HTTP (keep-alive) with Basic auth, each a distinct event for a distinct customer;
//! (4) intake on Postgres at a fixed 500 requests/s (open loop) for the latency target.
//! Workers are off so only intake is measured. Load generator and server share the machine.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::app::{TestApp, CB_PASSWORD, CB_USER};
use common::{Backend, TestDb};

const CONCURRENCY: usize = 16;

struct Result {
    label: String,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Result {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> f64 {
        let mut l = self.latencies.clone();
        l.sort();
        let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
        l[i].as_secs_f64() * 1000.0
    }
}

fn event(n: u64) -> String {
    serde_json::json!({
        "id": format!("ev_bench_{n}"), "occurred_at": 1_781_857_955, "source": "api",
        "object": "event", "api_version": "v2", "event_type": "customer_changed",
        "webhook_status": "scheduled",
        "content": {"customer": {"id": format!("cust_{n}"), "first_name": "Carol",
            "last_name": "Williams", "email": format!("carol{n}@example.com"),
            "company": "Initech LLC", "auto_collection": "on", "created_at": 1_781_856_124,
            "updated_at": 1_781_857_954, "resource_version": 1_781_857_954_941_i64,
            "deleted": false, "object": "customer", "preferred_currency_code": "EUR"}}
    })
    .to_string()
}

/// Runs `op` from CONCURRENCY tasks for `secs`, collecting latencies.
async fn closed_loop<F, Fut>(label: &str, secs: u64, op: F) -> Result
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let op = op.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                if !op(n).await {
                    errors += 1;
                }
                lat.push(t.elapsed());
            }
            (lat, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("task");
        latencies.extend(l);
        errors += e;
    }
    Result {
        label: label.into(),
        requests: latencies.len(),
        errors,
        elapsed: started.elapsed(),
        latencies,
    }
}

async fn baseline(secs: u64) -> Result {
    let db = TestDb::new(Backend::Postgres).await;
    let _migrated = db.store().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(CONCURRENCY as u32)
        .connect(&db.url)
        .await
        .expect("pool");
    let result = closed_loop("raw Postgres insert (event + job, one tx)", secs, move |n| {
        let pool = pool.clone();
        async move {
            let body = event(n);
            let work = async {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "insert into inbound_events (source, event_id, event_type, outcome, body, received_at)
                     values ('chargebee', $1, 'customer_changed', 'accepted', $2, 0)",
                )
                .bind(format!("ev_bench_{n}"))
                .bind(&body)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "insert into jobs (kind, pairing, dedupe_key, payload, state, max_attempts, run_at, created_at, updated_at)
                     values ('sync', 'persons_customers', $1, '{}', 'pending', 10, 0, 0, 0)",
                )
                .bind(format!("sync:persons_customers:chargebee:cust_{n}"))
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            };
            work.await.is_ok()
        }
    })
    .await;
    drop(db);
    result
}

/// The service as `serve` runs it: a pool of WORKER_CONCURRENCY + 16 connections.
async fn service(backend: Backend) -> TestApp {
    let db = TestDb::new(backend).await;
    let store = db.unmigrated_store_with_pool(20).await;
    store.migrate().await.expect("migrate");
    TestApp::spawn_with(db, store).await
}

async fn intake(backend: Backend, secs: u64) -> Result {
    let app = Arc::new(service(backend).await);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("client");
    let url = app.url("/webhooks/chargebee");
    let label = format!("intake over HTTP, {backend:?}");
    closed_loop(&label, secs, move |n| {
        let client = client.clone();
        let url = url.clone();
        async move {
            client
                .post(&url)
                .basic_auth(CB_USER, Some(CB_PASSWORD))
                .body(event(n))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await
}

async fn fixed_rate(per_sec: u64, secs: u64) -> Result {
    let app = service(Backend::Postgres).await;
    let client = reqwest::Client::new();
    let url = app.url("/webhooks/chargebee");
    // Steady state: open the database and HTTP connections before measuring.
    let warmup: Vec<_> = (0..200u64)
        .map(|n| {
            client
                .post(&url)
                .basic_auth(CB_USER, Some(CB_PASSWORD))
                .body(event(2_000_000 + n))
                .send()
        })
        .collect();
    for r in futures::future::join_all(warmup).await {
        assert!(r.is_ok_and(|r| r.status().is_success()), "warm-up failed");
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..per_sec * secs {
        tick.tick().await;
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = client
                .post(&url)
                .basic_auth(CB_USER, Some(CB_PASSWORD))
                .body(event(1_000_000 + n))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            (t.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut slow = Vec::new();
    for (n, t) in tasks.into_iter().enumerate() {
        let (l, ok) = t.await.expect("task");
        if l > Duration::from_millis(50) {
            slow.push((n as f64 / per_sec as f64, l.as_millis()));
        }
        latencies.push(l);
        errors += usize::from(!ok);
    }
    if std::env::var_os("INTAKE_BENCH_SLOW").is_some() {
        eprintln!("slow requests (scheduled at s, took ms): {slow:?}");
    }
    Result {
        label: format!("intake at a fixed {per_sec}/s, Postgres"),
        requests: latencies.len(),
        errors,
        elapsed: started.elapsed(),
        latencies,
    }
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::var("INTAKE_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    if std::env::var_os("INTAKE_BENCH_SLOW").is_some() {
        fixed_rate(500, secs).await;
        return;
    }
    let base = baseline(secs).await;
    let pg = intake(Backend::Postgres, secs).await;
    let lite = intake(Backend::Sqlite, secs).await;
    // Let the database settle (checkpoints after the dropped test databases) between the
    // saturation phases and the latency phase.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let fixed = fixed_rate(500, secs).await;
    println!("\nconcurrency {CONCURRENCY}, {secs} s per phase\n");
    println!("| phase | requests | errors | per second | p50 ms | p99 ms | max ms | vs baseline |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in [&base, &pg, &lite, &fixed] {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {:.0}% |",
            r.label,
            r.requests,
            r.errors,
            r.rate(),
            r.pct(0.50),
            r.pct(0.99),
            r.pct(1.0),
            100.0 * r.rate() / base.rate()
        );
    }
}
