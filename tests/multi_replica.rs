//! Several `serve` processes against one Postgres database, as the Kubernetes Deployment
//! runs them: every change propagates exactly once, no record is created twice, one poll per
//! source runs at a time, a replica stopped with SIGTERM drains within its grace period and
//! the others take its unfinished jobs over, and concurrent `migrate` runs are harmless.
//!
//! The sandboxes run inside the test process; the replicas are real child processes of the
//! binary. Chargebee's webhooks go to replica A, webCRM's hooks to replica B, and every
//! replica runs workers and the poll/reconcile schedulers.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;
use wcs::sandbox::chargebee::{ChargebeeSandbox, Fault, RunningChargebeeSandbox, SandboxOptions};
use wcs::sandbox::webcrm::{
    HookDelivery, RunningWebcrmSandbox, SandboxEntity, WebcrmSandbox, WebcrmSandboxOptions,
};

use common::app::{test_config_with, ADMIN, CB_PASSWORD, CB_USER, WEBCRM_SECRET};
use common::process::{free_port, Reaped};
use common::{Backend, TestDb};

const PAIRING: &str = "persons_customers";
const GRACE_SECS: u64 = 3;
const LEASE_SECS: u64 = 2;

struct Replica {
    name: String,
    base: String,
    process: Reaped,
}

/// Both sandboxes, one fresh Postgres database and `n` replicas of `serve` on it.
struct Cluster {
    cb: RunningChargebeeSandbox,
    wc: RunningWebcrmSandbox,
    db: TestDb,
    replicas: Vec<Replica>,
    logs: tempfile::TempDir,
}

/// Sandbox write counts, less those made before the workload started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Writes {
    customer_create: u64,
    customer_update: u64,
    /// Every other Chargebee write.
    chargebee_other: u64,
    person_put: usize,
    /// Every other webCRM write.
    webcrm_other: usize,
}

impl Cluster {
    async fn start(names: &[&str]) -> Cluster {
        let cb = ChargebeeSandbox::start(SandboxOptions::default())
            .await
            .expect("chargebee sandbox");
        let wc = WebcrmSandbox::start(WebcrmSandboxOptions {
            hook_delivery: HookDelivery::Immediate,
            ..WebcrmSandboxOptions::default()
        })
        .await
        .expect("webcrm sandbox");
        let db = TestDb::new(Backend::Postgres).await;
        let logs = tempfile::tempdir().expect("log dir");
        let mut cluster = Cluster {
            cb,
            wc,
            db,
            replicas: Vec::new(),
            logs,
        };
        // All replicas start at once on the unmigrated database: each migrates on start.
        for name in names {
            let port = free_port();
            let env = cluster.replica_env(name, port);
            let log = cluster.logs.path().join(format!("{name}.log"));
            cluster.replicas.push(Replica {
                name: (*name).to_owned(),
                base: format!("http://127.0.0.1:{port}"),
                process: Reaped::spawn(&["serve"], &env, &log),
            });
        }
        for r in &mut cluster.replicas {
            r.process.wait_ready(&r.base, Duration::from_secs(30)).await;
        }
        cluster.register().await;
        cluster
    }

    fn api_settings(&self) -> Vec<(String, String)> {
        [
            ("CHARGEBEE_BASE_URL", self.cb.base_url().to_string()),
            ("CHARGEBEE_API_KEY", self.cb.api_key().to_owned()),
            ("CHARGEBEE_RATE_LIMIT_PER_MINUTE", "60000".into()),
            ("WEBCRM_BASE_URL", self.wc.base_url()),
            ("WEBCRM_API_TOKEN", self.wc.api_token()),
            ("WEBCRM_RATE_LIMIT_PER_MINUTE", "60000".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn replica_env(&self, name: &str, port: u16) -> Vec<(String, String)> {
        let mut env = self.api_settings();
        env.extend(
            [
                ("DATABASE_URL", self.db.url.clone()),
                ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
                // Worker names start with the host name: the jobs table shows who holds what.
                ("HOSTNAME", name.to_owned()),
                ("CHARGEBEE_SITE", "acme-test".into()),
                ("CHARGEBEE_WEBHOOK_USERNAME", CB_USER.into()),
                ("CHARGEBEE_WEBHOOK_PASSWORD", CB_PASSWORD.into()),
                ("WEBCRM_WEBHOOK_SECRET", WEBCRM_SECRET.into()),
                ("ADMIN_TOKEN", ADMIN.into()),
                ("JOB_LEASE_SECS", LEASE_SECS.to_string()),
                ("SHUTDOWN_GRACE_SECS", GRACE_SECS.to_string()),
                ("POLL_INTERVAL_SECS", "1".into()),
                ("WORKER_CONCURRENCY", "4".into()),
                ("RUST_LOG", "warn".into()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
        );
        env
    }

    /// Registers webCRM's hooks with replica B's URL and Chargebee's endpoint with replica
    /// A's, through `register-webhooks`' plan and apply.
    async fn register(&self) {
        let config_for = |public: &str| {
            let mut settings = self.api_settings();
            settings.push(("PUBLIC_URL".into(), public.to_owned()));
            let pairs: Vec<(&str, &str)> = settings
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            test_config_with(&self.db.url, &pairs)
        };
        let (a, b) = (&self.replicas[0].base, &self.replicas[1].base);
        // Each plan only recognises endpoints and hooks under its own PUBLIC_URL, so each run
        // creates its half and leaves the other half out.
        let to_a = config_for(a);
        let mut plan = wcs::register::plan(&to_a).await.expect("plan for A");
        for hook in &mut plan.webcrm {
            hook.action = wcs::register::Action::Unchanged;
        }
        wcs::register::apply(&to_a, &plan)
            .await
            .expect("register A");
        let to_b = config_for(b);
        let mut plan = wcs::register::plan(&to_b).await.expect("plan for B");
        plan.chargebee.action = wcs::register::Action::Unchanged;
        wcs::register::apply(&to_b, &plan)
            .await
            .expect("register B");
        let endpoints = self.cb.handle().records("webhook_endpoint");
        assert_eq!(endpoints.len(), 1);
        assert!(
            endpoints[0]["url"]
                .as_str()
                .is_some_and(|u| u.starts_with(a.as_str())),
            "{endpoints:?}"
        );
        let hooks = self.wc.state().hooks();
        assert!(!hooks.is_empty());
        assert!(
            hooks
                .iter()
                .all(|(_, h)| h.target_url.starts_with(b.as_str())),
            "{hooks:?}"
        );
    }

    fn writes_now(&self) -> Writes {
        let cb = self.cb.handle().write_counts();
        let get = |op: &str| cb.get(op).copied().unwrap_or(0);
        let state = self.wc.state();
        let person_put = state.write_count(SandboxEntity::Person, "PUT");
        Writes {
            customer_create: get("customer.create"),
            customer_update: get("customer.update"),
            chargebee_other: cb.values().sum::<u64>()
                - get("customer.create")
                - get("customer.update"),
            person_put,
            webcrm_other: state.total_writes() - person_put,
        }
    }

    /// Writes made since `base`.
    fn writes_since(&self, base: Writes) -> Writes {
        let now = self.writes_now();
        Writes {
            customer_create: now.customer_create - base.customer_create,
            customer_update: now.customer_update - base.customer_update,
            chargebee_other: now.chargebee_other - base.chargebee_other,
            person_put: now.person_put - base.person_put,
            webcrm_other: now.webcrm_other - base.webcrm_other,
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        let rows: Vec<(i64,)> = self.db.rows(sql).await;
        rows[0].0
    }

    async fn dead_jobs(&self) -> Vec<(String, String, Option<String>)> {
        self.db
            .rows("select kind, dedupe_key, last_error from jobs where state = 'dead'")
            .await
    }

    /// Waits until the writes since `base` reach `expected`; panics on a deadline or as soon
    /// as any count goes past what is expected.
    async fn wait_for_writes(&self, base: Writes, expected: Writes, limit: Duration) {
        let started = Instant::now();
        loop {
            let now = self.writes_since(base);
            let over = now.customer_create > expected.customer_create
                || now.customer_update > expected.customer_update
                || now.chargebee_other > expected.chargebee_other
                || now.person_put > expected.person_put
                || now.webcrm_other > expected.webcrm_other;
            assert!(
                !over,
                "more writes than changes: {now:?} > {expected:?}; webCRM writes other than \
                 person PUTs: {:?}; Chargebee: {:?}; repeated customer updates: {:?}",
                self.wc
                    .state()
                    .calls()
                    .iter()
                    .filter(|c| c.method != "GET" && c.route != "/Persons/{id}")
                    .map(|c| format!("{} {} {}", c.method, c.path, c.status))
                    .collect::<Vec<_>>(),
                self.cb.handle().write_counts(),
                self.repeated_updates()
            );
            if now == expected {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "writes {now:?} did not reach {expected:?} in {limit:?}; dead jobs {:?}\n{}",
                self.dead_jobs().await,
                self.log_tails()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Watches the write counts stay at `expected` for `hold`. Longer than two poll
    /// intervals plus an echo's round trip: the echoes of our writes, whatever was still in
    /// flight, and polls re-reading every recently changed record (each pass re-reads a
    /// two-minute overlap, so with one-second polls the queue is never empty while the test
    /// runs) all ran without writing anything more.
    async fn hold_steady(&self, base: Writes, expected: Writes, hold: Duration) {
        let started = Instant::now();
        while started.elapsed() < hold {
            assert_eq!(
                self.writes_since(base),
                expected,
                "writes changed after they had settled; repeated customer updates: {:?}",
                self.repeated_updates()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Customers whose consecutive `customer_changed` events carry the same first name (a
    /// change written twice), with the event sources.
    fn repeated_updates(&self) -> Vec<String> {
        let mut last: HashMap<String, String> = HashMap::new();
        let mut out = Vec::new();
        for e in self.cb.handle().events() {
            let customer = &e["content"]["customer"];
            let (Some(id), Some(name)) = (customer["id"].as_str(), customer["first_name"].as_str())
            else {
                continue;
            };
            if last.get(id).map(String::as_str) == Some(name) {
                out.push(format!("{id} {name} {} {}", e["event_type"], e["source"]));
            }
            last.insert(id.to_owned(), name.to_owned());
        }
        out
    }

    fn log_tails(&self) -> String {
        self.replicas
            .iter()
            .map(|r| format!("--- {} ---\n{}", r.name, r.process.log_tail(10)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn organisations(&self, n: usize) -> Vec<i64> {
        (0..n)
            .map(|i| {
                self.wc
                    .state()
                    .ui_create(
                        SandboxEntity::Organisation,
                        json!({"OrganisationName": format!("Replica Test Org {i}")}),
                    )
                    .expect("create organisation")
            })
            .collect()
    }

    fn persons(&self, orgs: &[i64], n: usize) -> Vec<i64> {
        (0..n)
            .map(|i| {
                self.wc
                    .state()
                    .ui_create(
                        SandboxEntity::Person,
                        json!({"PersonOrganisationId": orgs[i % orgs.len()],
                               "PersonFirstName": format!("P{i}"),
                               "PersonLastName": "Replica",
                               "PersonEmail": format!("p{i}@replica.example")}),
                    )
                    .expect("create person")
            })
            .collect()
    }

    /// Records on both sides, their links and the dead-job list, checked against the names
    /// every person must end with.
    async fn assert_converged(&self, persons: &[i64], names: &HashMap<i64, String>) {
        let customers = self.cb.handle().records("customer");
        assert_eq!(customers.len(), persons.len(), "one customer per person");
        let ids: BTreeSet<String> = customers
            .iter()
            .map(|c| c["id"].as_str().expect("customer id").to_owned())
            .collect();
        assert_eq!(ids.len(), persons.len(), "no customer twice");
        assert_eq!(
            self.wc.state().count(SandboxEntity::Person),
            persons.len(),
            "no person created by the sync"
        );
        let links: Vec<(String, String)> = self
            .db
            .rows(&format!(
                "select webcrm_id, chargebee_id from links
                 where pairing = '{PAIRING}' and tombstoned_at is null"
            ))
            .await;
        let links: BTreeMap<String, String> = links.into_iter().collect();
        assert_eq!(links.len(), persons.len(), "one link per person");
        for p in persons {
            let customer_id = format!("wc-person-{p}");
            assert_eq!(links.get(&p.to_string()), Some(&customer_id), "link of {p}");
            let name = &names[p];
            let person = self
                .wc
                .state()
                .record(SandboxEntity::Person, *p)
                .expect("person");
            assert_eq!(person["PersonFirstName"], json!(name), "webCRM person {p}");
            let customer = self
                .cb
                .handle()
                .record("customer", &customer_id)
                .expect("customer");
            assert_eq!(customer["first_name"], json!(name), "customer of {p}");
        }
        assert!(
            self.dead_jobs().await.is_empty(),
            "{:?}",
            self.dead_jobs().await
        );
    }

    /// Stops every replica still running with SIGTERM; each must exit 0 within its grace
    /// period. Returns how long each took.
    async fn stop_replicas(&mut self) -> Vec<(String, Duration)> {
        let mut drains = Vec::new();
        for r in &mut self.replicas {
            if r.process.child.try_wait().expect("try_wait").is_none() {
                let (status, took) = r
                    .process
                    .terminate(Duration::from_secs(GRACE_SECS + 2))
                    .await;
                assert!(status.success(), "{} exit status {status}", r.name);
                drains.push((r.name.clone(), took));
            }
        }
        drains
    }

    /// After every replica stopped: no job was left running (each drained its own) and none
    /// went dead. Returns how many jobs still wait (re-checks the polls keep enqueuing).
    async fn assert_drained(&self) -> i64 {
        let running = self
            .count("select count(*) from jobs where state = 'running'")
            .await;
        assert_eq!(running, 0, "jobs left running after every replica stopped");
        assert!(
            self.dead_jobs().await.is_empty(),
            "{:?}",
            self.dead_jobs().await
        );
        self.count("select count(*) from jobs where state in ('pending', 'failed')")
            .await
    }

    async fn shutdown(self) {
        self.cb.shutdown().await;
        self.wc.shutdown().await;
    }
}

/// What the sampler saw of the jobs table.
#[derive(Debug, Default)]
struct Observed {
    samples: usize,
    /// Samples in which at least one poll job was running.
    samples_with_poll: usize,
    /// The most poll jobs of one dedupe key seen running at once.
    max_polls_per_key: usize,
    /// Distinct job ids seen running, by replica.
    jobs_by_replica: BTreeMap<String, BTreeSet<i64>>,
    /// Distinct poll job ids seen running, by replica.
    polls_by_replica: BTreeMap<String, BTreeSet<i64>>,
}

/// Reads the running jobs every 50 ms until cancelled.
fn sample_jobs(
    url: String,
    replicas: Vec<String>,
    cancel: CancellationToken,
) -> (Arc<Mutex<Observed>>, tokio::task::JoinHandle<()>) {
    let observed = Arc::new(Mutex::new(Observed::default()));
    let out = observed.clone();
    let task = tokio::spawn(async move {
        let pool = sqlx::PgPool::connect(&url).await.expect("sampler connect");
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        while !cancel.is_cancelled() {
            tick.tick().await;
            let rows: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
                "select id, kind, dedupe_key, locked_by from jobs where state = 'running'",
            )
            .fetch_all(&pool)
            .await
            .expect("sample jobs");
            let mut per_key: HashMap<&str, usize> = HashMap::new();
            let mut o = out.lock().unwrap();
            o.samples += 1;
            for (id, kind, key, locked_by) in &rows {
                let replica = replicas
                    .iter()
                    .find(|r| {
                        locked_by
                            .as_deref()
                            .is_some_and(|l| l.starts_with(&format!("{r}-")))
                    })
                    .cloned()
                    .unwrap_or_else(|| "?".into());
                o.jobs_by_replica
                    .entry(replica.clone())
                    .or_default()
                    .insert(*id);
                if kind == "poll" {
                    *per_key.entry(key).or_default() += 1;
                    o.polls_by_replica.entry(replica).or_default().insert(*id);
                }
            }
            if !per_key.is_empty() {
                o.samples_with_poll += 1;
            }
            o.max_polls_per_key = o
                .max_polls_per_key
                .max(per_key.values().copied().max().unwrap_or(0));
        }
        pool.close().await;
    });
    (observed, task)
}

/// 1,000 changes through three replicas: 200 persons created in webCRM, then four rounds of
/// 200 edits (750 in webCRM, 50 in Chargebee). A round starts once every write of the
/// previous one arrived, so no two changes of one record are ever pending together and none
/// can coalesce: exactly one write per change is the only correct count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_propagate_a_thousand_changes_exactly_once() {
    const PERSONS: usize = 200;
    const ROUNDS: usize = 4;
    let started = Instant::now();
    let mut cluster = Cluster::start(&["replica-a", "replica-b", "replica-c"]).await;
    let startup = started.elapsed();
    let cancel = CancellationToken::new();
    let (observed, sampler) = sample_jobs(
        cluster.db.url.clone(),
        cluster.replicas.iter().map(|r| r.name.clone()).collect(),
        cancel.clone(),
    );

    let orgs = cluster.organisations(4);
    // The organisations' own sync (no Chargebee record of their own) is not counted.
    cluster
        .hold_steady(
            cluster.writes_now(),
            Writes::default(),
            Duration::from_secs(2),
        )
        .await;
    let base = cluster.writes_now();
    let mut expected = Writes::default();
    let mut changes = 0;

    let persons = cluster.persons(&orgs, PERSONS);
    changes += PERSONS;
    expected.customer_create += PERSONS as u64;
    let mut names: HashMap<i64, String> = persons
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, format!("P{i}")))
        .collect();
    cluster
        .wait_for_writes(base, expected, Duration::from_secs(30))
        .await;

    for round in 0..ROUNDS {
        for (i, p) in persons.iter().enumerate() {
            let k = round * PERSONS + i;
            if k.is_multiple_of(16) {
                let name = format!("C{i}r{round}");
                cluster
                    .cb
                    .handle()
                    .dashboard_edit(
                        "customer",
                        &format!("wc-person-{p}"),
                        json!({ "first_name": name }),
                    )
                    .expect("dashboard edit");
                expected.person_put += 1;
                names.insert(*p, name);
            } else {
                let name = format!("W{i}r{round}");
                cluster
                    .wc
                    .state()
                    .ui_update(
                        SandboxEntity::Person,
                        *p,
                        json!({ "PersonFirstName": name }),
                    )
                    .expect("ui update");
                expected.customer_update += 1;
                names.insert(*p, name);
            }
            changes += 1;
        }
        cluster
            .wait_for_writes(base, expected, Duration::from_secs(30))
            .await;
    }
    assert_eq!(changes, 1000);
    let propagated = started.elapsed() - startup;
    cluster
        .hold_steady(base, expected, Duration::from_secs(3))
        .await;
    cancel.cancel();
    sampler.await.expect("sampler");
    let drains = cluster.stop_replicas().await;
    let left_waiting = cluster.assert_drained().await;
    cluster.assert_converged(&persons, &names).await;
    assert_eq!(
        cluster.writes_since(base),
        Writes {
            customer_create: 200,
            customer_update: 750,
            chargebee_other: 0,
            person_put: 50,
            webcrm_other: 0,
        }
    );

    let o = std::mem::take(&mut *observed.lock().unwrap());
    assert!(o.samples > 50, "sampled {} times", o.samples);
    assert!(
        o.samples_with_poll > 0,
        "no poll job was ever seen running in {} samples",
        o.samples
    );
    assert_eq!(o.max_polls_per_key, 1, "one active poller per source");
    let replicas_working = o.jobs_by_replica.keys().filter(|r| *r != "?").count();
    assert_eq!(
        replicas_working,
        3,
        "every replica ran jobs: {:?}",
        o.jobs_by_replica.keys()
    );
    eprintln!(
        "startup {startup:?}; 1000 changes propagated in {propagated:?}; total {:?}; \
         drains {drains:?}; {left_waiting} re-check jobs left waiting; \
         writes {:?}; {} samples, {} with a poll running; jobs seen running per replica {:?}; \
         polls seen running per replica {:?}",
        started.elapsed(),
        cluster.writes_since(base),
        o.samples,
        o.samples_with_poll,
        o.jobs_by_replica
            .iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .collect::<BTreeMap<_, _>>(),
        o.polls_by_replica
            .iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .collect::<BTreeMap<_, _>>(),
    );
    cluster.shutdown().await;
}

/// Replica C is stopped with SIGTERM while it holds running jobs that cannot finish within
/// its grace period (Chargebee answers slowly for a while): it exits within the grace
/// period, its jobs' leases expire, replicas A and B run them, and every change arrives once
/// with no record created twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_stopped_mid_run_drains_and_the_others_take_its_jobs_over() {
    const PERSONS: usize = 100;
    let mut cluster = Cluster::start(&["replica-a", "replica-b", "replica-c"]).await;
    let orgs = cluster.organisations(2);
    cluster
        .hold_steady(
            cluster.writes_now(),
            Writes::default(),
            Duration::from_secs(2),
        )
        .await;
    let base = cluster.writes_now();
    let persons = cluster.persons(&orgs, PERSONS);
    let mut expected = Writes {
        customer_create: PERSONS as u64,
        ..Writes::default()
    };
    cluster
        .wait_for_writes(base, expected, Duration::from_secs(30))
        .await;

    // Every Chargebee call now takes longer than the grace period.
    cluster
        .cb
        .handle()
        .inject(Fault::latency(Duration::from_secs(GRACE_SECS + 2)).always());
    let mut names = HashMap::new();
    for (i, p) in persons.iter().enumerate() {
        let name = format!("S{i}");
        cluster
            .wc
            .state()
            .ui_update(
                SandboxEntity::Person,
                *p,
                json!({ "PersonFirstName": name }),
            )
            .expect("ui update");
        names.insert(*p, name);
    }
    expected.customer_update += PERSONS as u64;

    let held_by_c = "select id from jobs where state = 'running' and locked_by like 'replica-c-%'";
    // A job C has held for a second is waiting on the slow Chargebee; one it has only just
    // claimed may be one that needs no Chargebee call (an echo, say) and end at once.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stuck = format!(
            "{held_by_c} and updated_at < {}",
            wcs::store::now_ms() - 1000
        );
        let held: Vec<(i64,)> = cluster.db.rows(&stuck).await;
        if !held.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "replica C never claimed a job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = &mut cluster.replicas[2].process;
    let (status, drain) = c.terminate(Duration::from_secs(GRACE_SECS + 5)).await;
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        c.log_tail(20)
    );
    assert!(
        drain <= Duration::from_millis(GRACE_SECS * 1000 + 1000),
        "took {drain:?} to exit with a {GRACE_SECS} s grace period"
    );
    let abandoned: Vec<(i64,)> = cluster.db.rows(held_by_c).await;
    assert!(
        !abandoned.is_empty(),
        "replica C finished everything: nothing was left to take over"
    );
    let c_log = cluster.replicas[2].process.log_tail(50);
    assert!(
        c_log.contains("jobs still running after the grace period"),
        "{c_log}"
    );
    cluster.cb.handle().clear_faults();

    // A job abandoned mid-call may have written before it was cut off; its rerun then
    // writes the same values again. Every change arrives, each at most once more than that.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut arrived_at = None;
    loop {
        let now = cluster.writes_since(base);
        assert_eq!(now.customer_create, PERSONS as u64, "no second create");
        assert!(
            now.customer_update <= expected.customer_update + abandoned.len() as u64,
            "{now:?} vs {expected:?} with {} abandoned",
            abandoned.len()
        );
        let arrived = persons.iter().all(|p| {
            cluster
                .cb
                .handle()
                .record("customer", &format!("wc-person-{p}"))
                .is_some_and(|c| c["first_name"] == json!(names[p]))
        });
        // Then a few poll passes more, still within the bounds.
        if arrived && arrived_at.is_none() {
            arrived_at = Some(Instant::now());
        }
        if arrived_at.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every change arrived: {now:?}; dead {:?}\n{}",
            cluster.dead_jobs().await,
            cluster.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids: Vec<String> = abandoned.iter().map(|(id,)| id.to_string()).collect();
    let still_c: i64 = cluster
        .count(&format!(
            "select count(*) from jobs where id in ({}) and locked_by like 'replica-c-%'",
            ids.join(",")
        ))
        .await;
    assert_eq!(still_c, 0, "replica C's jobs were taken over");
    let drains = cluster.stop_replicas().await;
    cluster.assert_drained().await;
    cluster.assert_converged(&persons, &names).await;
    let writes = cluster.writes_since(base);
    eprintln!(
        "replica C exited {drain:?} after SIGTERM (grace {GRACE_SECS} s) leaving {} running \
         jobs; writes {writes:?} for {} changes; then {drains:?}",
        abandoned.len(),
        2 * PERSONS
    );
    cluster.shutdown().await;
}

/// Two `migrate` processes at once on a fresh database: both succeed and every migration is
/// applied exactly once (sqlx holds a Postgres advisory lock while migrating; the second
/// waits, then finds nothing to do).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_migrate_processes_at_once_both_succeed_and_apply_each_migration_once() {
    let db = TestDb::new(Backend::Postgres).await;
    let logs = tempfile::tempdir().expect("log dir");
    let env = vec![
        ("DATABASE_URL".to_owned(), db.url.clone()),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ];
    let mut runs: Vec<Reaped> = (0..2)
        .map(|i| Reaped::spawn(&["migrate"], &env, &logs.path().join(format!("m{i}.log"))))
        .collect();
    for run in &mut runs {
        let status = tokio::task::block_in_place(|| run.child.wait()).expect("wait");
        assert!(status.success(), "migrate failed:\n{}", run.log_tail(20));
    }
    let files: BTreeSet<i64> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
            .expect("migrations dir")
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".sql")?.split('_').next()?.parse().ok()
            })
            .collect();
    assert!(!files.is_empty());
    let applied: Vec<(i64, bool)> = db
        .rows("select version, success from _sqlx_migrations order by version")
        .await;
    assert_eq!(
        applied.iter().map(|(v, _)| *v).collect::<BTreeSet<_>>(),
        files
    );
    assert_eq!(applied.len(), files.len(), "no migration recorded twice");
    assert!(applied.iter().all(|(_, ok)| *ok));
    let jobs_table: Vec<(bool,)> = db.rows("select to_regclass('jobs') is not null").await;
    assert!(jobs_table[0].0);
}
