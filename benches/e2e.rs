//! End to end: changes made in the sandboxes travel through a `serve` child process (the
//! release binary) to the other side, with 50 ms of latency on every API answer.
//!
//! `cargo bench --bench e2e` (Postgres from `DATABASE_URL`, else a throwaway server). Phases:
//!
//! 1. idle: the service started and caught up; peak RSS (`VmHWM`) read.
//! 2. latency: `E2E_LATENCY_CHANGES` (default 100) edits paced at 5 a second, well under the
//!    budget: webhook-to-write time per change.
//! 3. throughput, scaled: `E2E_CHANGES` (default 1,000) edits at once with the budgets
//!    multiplied by 20 (3,000/min Chargebee, 5,000/min webCRM): wall time against the bound
//!    the budgets allow for the calls made, API calls per change, writes per change; peak RSS.
//! 4. throughput at the default budgets (150/min, 250/min): `E2E_DEFAULT_CHANGES` (default
//!    1,000) edits, same figures.
//!
//! Half of the edits are webCRM person first names (hook delivered at once), half Chargebee
//! customer last names (webhook sent by the sandbox at once).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/reliability_support/mod.rs"]
mod reliability_support;

use std::time::{Duration, Instant};

use serde_json::json;
use wcs::sandbox::chargebee::Fault as CbFault;
use wcs::sandbox::webcrm::{Fault as WcFault, SandboxEntity};

use common::world::World;
use common::Backend;
use reliability_support::ServeProcess;

const API_LATENCY: Duration = Duration::from_millis(50);
const PAIRS: usize = 100;

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Sandbox requests so far: (Chargebee total, Chargebee writes, webCRM total without
/// logins, webCRM writes).
fn calls(w: &World) -> (u64, u64, u64, u64) {
    let cb_total = w.cb.handle().request_times().len() as u64;
    let cb_writes: u64 = w.cb.handle().write_counts().values().sum();
    let wc = w.wc.state().calls();
    let wc_total = wc.iter().filter(|c| c.route != "/Auth/ApiLogin").count() as u64;
    (
        cb_total,
        cb_writes,
        wc_total,
        w.wc.state().total_writes() as u64,
    )
}

/// Sandbox requests so far by operation: Chargebee operation ids, webCRM `METHOD /Route`
/// (logins excluded).
fn operations(w: &World) -> std::collections::BTreeMap<String, u64> {
    let mut ops = w.cb.handle().request_counts();
    for c in w.wc.state().calls() {
        if c.route != "/Auth/ApiLogin" {
            *ops.entry(format!("webcrm {} {}", c.method, c.route))
                .or_default() += 1;
        }
    }
    ops
}

struct Pair {
    person: i64,
    customer: String,
}

/// One edit that must arrive on the other side.
struct Change {
    made: Instant,
    arrived: Option<Duration>,
    pair: usize,
    in_webcrm: bool,
    value: String,
}

fn arrived(w: &World, pairs: &[Pair], c: &Change) -> bool {
    let p = &pairs[c.pair];
    if c.in_webcrm {
        w.cb.handle()
            .record("customer", &p.customer)
            .is_some_and(|r| r["first_name"] == json!(c.value))
    } else {
        w.wc.state()
            .record(SandboxEntity::Person, p.person)
            .is_some_and(|r| r["PersonLastName"] == json!(c.value))
    }
}

async fn make(w: &World, pairs: &[Pair], i: usize, tag: &str) -> Change {
    let pair = i % pairs.len();
    let in_webcrm = i.is_multiple_of(2);
    let value = format!("{tag}{i}");
    if in_webcrm {
        w.wc.state()
            .ui_update(
                SandboxEntity::Person,
                pairs[pair].person,
                json!({"PersonFirstName": value}),
            )
            .expect("edit person");
        let made = Instant::now();
        w.wc.state().deliver_pending_hooks().await;
        Change {
            made,
            arrived: None,
            pair,
            in_webcrm,
            value,
        }
    } else {
        let made = Instant::now();
        w.cb.handle()
            .dashboard_edit(
                "customer",
                &pairs[pair].customer,
                json!({"last_name": value}),
            )
            .expect("edit customer");
        Change {
            made,
            arrived: None,
            pair,
            in_webcrm,
            value,
        }
    }
}

/// Notes arrivals for `span` (5 ms resolution), delivering hooks as they come.
async fn watch_for(w: &World, pairs: &[Pair], changes: &mut [Change], span: Duration) {
    let until = Instant::now() + span;
    while Instant::now() < until {
        for c in changes.iter_mut().filter(|c| c.arrived.is_none()) {
            if arrived(w, pairs, c) {
                c.arrived = Some(c.made.elapsed());
            }
        }
        w.wc.state().deliver_pending_hooks().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Watches until every change arrived (20 ms resolution); returns when the last one did.
async fn watch(w: &World, pairs: &[Pair], changes: &mut [Change], timeout: Duration) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        let mut open = 0;
        for c in changes.iter_mut().filter(|c| c.arrived.is_none()) {
            if arrived(w, pairs, c) {
                c.arrived = Some(c.made.elapsed());
            } else {
                open += 1;
            }
        }
        if open == 0 {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{open} changes did not arrive in {timeout:?}"
        );
        w.wc.state().deliver_pending_hooks().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1000.0
}

/// Waits until no sandbox request was made for `quiet`.
async fn quiesce(w: &World, quiet: Duration) {
    let mut last = calls(w);
    let mut since = Instant::now();
    loop {
        w.wc.state().deliver_pending_hooks().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = calls(w);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

async fn throughput(
    w: &World,
    serve: &ServeProcess,
    pairs: &[Pair],
    n: usize,
    tag: &str,
    cb_rate: f64,
    wc_rate: f64,
) {
    let before = calls(w);
    let puts_before = w.wc.state().puts_after_reads().len();
    let started = Instant::now();
    let mut changes = Vec::with_capacity(n);
    for i in 0..n {
        changes.push(make(w, pairs, i, tag).await);
    }
    // Only the last edit of each record and field can arrive; earlier ones are superseded.
    let mut latest: Vec<Change> = Vec::new();
    for c in changes.into_iter().rev() {
        if !latest
            .iter()
            .any(|l| l.pair == c.pair && l.in_webcrm == c.in_webcrm)
        {
            latest.push(c);
        }
    }
    let distinct = latest.len();
    let last = watch(w, pairs, &mut latest, Duration::from_secs(300)).await;
    let wall = last.duration_since(started);
    // Echoes of the sync's own writes are still being read; wait for quiet.
    quiesce(w, Duration::from_secs(3)).await;
    let after = calls(w);
    let (cb, cbw, wc, wcw) = (
        after.0 - before.0,
        after.1 - before.1,
        after.2 - before.2,
        after.3 - before.3,
    );
    // The fastest the budgets allow for these calls (GCRA refill of budget - burst a
    // minute after the burst).
    let bound = |calls: u64, rate: f64| {
        let burst = (rate / 30.0).floor().max(1.0);
        ((calls as f64 - burst).max(0.0)) / (rate - burst) * 60.0
    };
    let bound_secs = bound(cb, cb_rate).max(bound(wc, wc_rate));
    println!(
        "{tag}: {n} changes ({distinct} distinct record-fields, the rest superseded) in {:.1} s; \
         {:.2} calls per distinct change; bound from the budgets for the calls made {:.1} s \
         (wall/bound {:.2}); chargebee {cb} calls ({cbw} writes), webcrm {wc} calls ({wcw} \
         writes, logins excluded); {:.2} calls and {:.2} writes per change; writes beyond one \
         per distinct change (superseded values written, or echo writes): {}; RSS peak {} KiB",
        wall.as_secs_f64(),
        (cb + wc) as f64 / distinct as f64,
        bound_secs,
        wall.as_secs_f64() / bound_secs.max(0.001),
        (cb + wc) as f64 / n as f64,
        (cbw + wcw) as f64 / n as f64,
        (cbw + wcw).saturating_sub(distinct as u64),
        serve.pid().map(vm_hwm_kib).unwrap_or(0),
    );
    print_put_window(w, puts_before, tag);
}

/// How long a user's webCRM edit could have been overwritten by each PUT since `from` (the
/// sandbox's answer to the read up to the PUT being carried out, which includes the PUT's
/// 50 ms of injected latency and any wait for the limiter), and how many edits were.
fn print_put_window(w: &World, from: usize, tag: &str) {
    let puts = w.wc.state().puts_after_reads();
    let gaps: Vec<Duration> = puts[from..].iter().filter_map(|p| p.gap).collect();
    assert!(!gaps.is_empty(), "no webCRM PUT in the {tag} phase");
    println!(
        "{tag}: {} webCRM PUTs, read-to-PUT window p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
         (50 ms of it the PUT's injected latency); edits overwritten: {}",
        gaps.len(),
        pct(gaps.clone(), 0.5),
        pct(gaps.clone(), 0.99),
        pct(gaps, 1.0),
        puts[from..]
            .iter()
            .filter(|p| !p.overwritten.is_empty())
            .count(),
    );
}

async fn run() {
    let latency_changes = env_or("E2E_LATENCY_CHANGES", 100);
    let scaled_changes = env_or("E2E_CHANGES", 1000);
    let default_changes = env_or("E2E_DEFAULT_CHANGES", 1000);
    let w = World::start_without_webhooks(Backend::Postgres).await;
    let db_url = w.app.db.url.clone();
    w.cb.handle().inject(CbFault::latency(API_LATENCY).always());
    w.wc.state()
        .fail_percent(100, WcFault::Latency(API_LATENCY));
    let scaled = [
        ("CHARGEBEE_RATE_LIMIT_PER_MINUTE", "3000"),
        ("WEBCRM_RATE_LIMIT_PER_MINUTE", "5000"),
        ("POLL_INTERVAL_SECS", "3600"),
        ("RECONCILE_INTERVAL_SECS", "86400"),
        ("RUST_LOG", "warn"),
    ];
    let mut serve = ServeProcess::new(&w, &db_url, &scaled);
    serve.register(&w, &db_url).await;
    serve.start().await;
    quiesce(&w, Duration::from_secs(2)).await;
    let pid = serve.pid().expect("running");
    println!(
        "idle: peak RSS {} KiB after start and first poll",
        vm_hwm_kib(pid)
    );

    // Seed linked pairs (half from each side).
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "Bench Co"}),
            )
            .expect("org");
    for i in 0..PAIRS / 2 {
        w.wc.state()
            .ui_create(
                SandboxEntity::Person,
                json!({"PersonOrganisationId": org, "PersonFirstName": format!("P{i}"),
                       "PersonLastName": "Bench", "PersonEmail": format!("p{i}@example.org")}),
            )
            .expect("person");
        w.cb.handle()
            .dashboard_create_customer(&[
                ("id", &format!("cust-{i}")),
                ("first_name", &format!("C{i}")),
                ("last_name", "Bench"),
                ("email", &format!("c{i}@example.org")),
                ("company", "Bench Co"),
            ])
            .expect("customer");
    }
    w.wc.state().deliver_pending_hooks().await;
    let seeded = Instant::now();
    let pairs: Vec<Pair> = loop {
        w.wc.state().deliver_pending_hooks().await;
        let persons = w.wc.state().records(SandboxEntity::Person);
        let customers = w.cb.handle().records("customer");
        if persons.len() == PAIRS && customers.len() == PAIRS {
            let mut out = Vec::new();
            for p in &persons {
                let email = p["PersonEmail"].as_str().unwrap_or_default();
                let c = customers
                    .iter()
                    .find(|c| c["email"].as_str() == Some(email))
                    .expect("counterpart");
                out.push(Pair {
                    person: p["PersonId"].as_i64().expect("id"),
                    customer: c["id"].as_str().expect("id").to_owned(),
                });
            }
            break out;
        }
        assert!(seeded.elapsed() < Duration::from_secs(120), "seeding");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    quiesce(&w, Duration::from_secs(2)).await;
    println!(
        "seeded {PAIRS} pairs (created from both sides) in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );

    // Latency under the budget: paced changes.
    let mut changes = Vec::with_capacity(latency_changes);
    let puts_before = w.wc.state().puts_after_reads().len();
    let before = calls(&w);
    let before_ops = operations(&w);
    for i in 0..latency_changes {
        changes.push(make(&w, &pairs, i, "L").await);
        watch_for(&w, &pairs, &mut changes, Duration::from_millis(200)).await;
    }
    watch(&w, &pairs, &mut changes, Duration::from_secs(60)).await;
    quiesce(&w, Duration::from_secs(2)).await;
    let after = calls(&w);
    let per_change = ((after.0 - before.0) + (after.2 - before.2)) as f64 / latency_changes as f64;
    for (label, side) in [
        ("webCRM -> Chargebee", true),
        ("Chargebee -> webCRM", false),
    ] {
        let l: Vec<Duration> = changes
            .iter()
            .filter(|c| c.in_webcrm == side)
            .filter_map(|c| c.arrived)
            .collect();
        println!(
            "latency {label}: {} changes, webhook-to-write p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            l.len(),
            pct(l.clone(), 0.5),
            pct(l.clone(), 0.99),
            pct(l, 1.0)
        );
    }
    println!("latency phase: {per_change:.2} API calls per change (echo reads included)");
    let after_ops = operations(&w);
    let spent: Vec<String> = after_ops
        .iter()
        .filter_map(|(op, n)| {
            let d = n - before_ops.get(op).copied().unwrap_or(0);
            (d > 0).then(|| format!("{op} {:.2}", d as f64 / latency_changes as f64))
        })
        .collect();
    println!(
        "latency phase, calls per change by operation: {}",
        spent.join(", ")
    );
    print_put_window(&w, puts_before, "latency phase");

    throughput(
        &w,
        &serve,
        &pairs,
        scaled_changes,
        "scaled x20",
        3000.0,
        5000.0,
    )
    .await;

    // The default budgets.
    serve.kill();
    let mut defaults = ServeProcess::new(
        &w,
        &db_url,
        &[
            ("CHARGEBEE_RATE_LIMIT_PER_MINUTE", "150"),
            ("WEBCRM_RATE_LIMIT_PER_MINUTE", "250"),
            ("POLL_INTERVAL_SECS", "3600"),
            ("RECONCILE_INTERVAL_SECS", "86400"),
            ("RUST_LOG", "warn"),
        ],
    );
    // Same address for the registered webhooks.
    defaults.env = serve.env.clone();
    for (k, v) in [
        ("CHARGEBEE_RATE_LIMIT_PER_MINUTE", "150"),
        ("WEBCRM_RATE_LIMIT_PER_MINUTE", "250"),
    ] {
        defaults.env.retain(|(key, _)| key != k);
        defaults.env.push((k.into(), v.into()));
    }
    defaults.port = serve.port;
    defaults.start().await;
    quiesce(&w, Duration::from_secs(3)).await;
    throughput(
        &w,
        &defaults,
        &pairs,
        default_changes,
        "default budgets",
        150.0,
        250.0,
    )
    .await;
    defaults.kill();
    w.shutdown().await;
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}
