//! `resync`: a new installation with records on both sides that already belong together
//! links them instead of duplicating them; a dry run changes nothing anywhere; a second run
//! does nothing; links can be rebuilt from the cross ids; an interrupted run resumes.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use wcs::resync_command::{run, Options};
use wcs::sandbox::webcrm::SandboxEntity;

use common::world::World;
use common::Backend;

const PAIRING: &str = "persons_customers";
const BIN: &str = env!("CARGO_BIN_EXE_webcrm-chargebee-sync");

fn person(w: &World, org: i64, first: &str, email: &str) -> i64 {
    w.wc.state()
        .ui_create(
            SandboxEntity::Person,
            json!({"PersonOrganisationId": org, "PersonFirstName": first,
                   "PersonLastName": "Existing", "PersonEmail": email}),
        )
        .unwrap()
}

fn customer(w: &World, id: &str, first: &str, email: &str) {
    w.cb.handle()
        .dashboard_create_customer(&[
            ("id", id),
            ("first_name", first),
            ("last_name", "Existing"),
            ("email", email),
            ("company", "Existing Co"),
        ])
        .unwrap();
}

/// Everything both sandboxes hold, for before/after comparisons.
fn world_state(w: &World) -> (Vec<Value>, usize, usize) {
    let mut customers = w.cb.handle().records("customer");
    customers.sort_by_key(|c| c["id"].as_str().unwrap_or_default().to_owned());
    (
        customers,
        w.wc.state().count(SandboxEntity::Person),
        w.wc.state().count(SandboxEntity::Organisation),
    )
}

async fn db_counts(w: &World) -> Vec<i64> {
    let mut out = Vec::new();
    for table in ["links", "jobs", "sync_log", "conflicts", "pending_creates"] {
        let n: Vec<(i64,)> = w
            .app
            .db
            .rows(&format!("select count(*) from {table}"))
            .await;
        out.push(n[0].0);
    }
    out
}

async fn resync(w: &World, options: Options) -> String {
    let mut out = Vec::new();
    run((*w.app.config).clone(), options, &mut out)
        .await
        .expect("resync");
    String::from_utf8(out).unwrap()
}

fn only(pairing: &str) -> Options {
    Options {
        pairings: vec![pairing.into()],
        ..Options::default()
    }
}

async fn existing_records_are_linked_not_duplicated(backend: Backend) {
    let w = World::start_without_webhooks(backend).await;
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "Existing Co"}),
            )
            .unwrap();
    let a = person(&w, org, "Ada", "ada@example.com");
    let b = person(&w, org, "Bob", "bob@example.com");
    let c = person(&w, org, "Cy", "cy@example.com");
    let e = person(&w, org, "Eve", "eve@example.com");
    customer(&w, "cust_a", "Ada", "ADA@example.com");
    customer(&w, "cust_b", "Bob", "bob@example.com");
    customer(&w, "cust_d", "Dan", "dan@example.com");
    customer(&w, "cust_e1", "Eve", "eve@example.com");
    customer(&w, "cust_e2", "Eva", "eve@example.com");

    // A dry run prints the plan and writes nothing anywhere.
    let before = (world_state(&w), db_counts(&w).await);
    let plan = resync(
        &w,
        Options {
            dry_run: true,
            ..only(PAIRING)
        },
    )
    .await;
    assert!(
        plan.contains("persons_customers: 2 links, 2 creates"),
        "{plan}"
    );
    assert!(
        plan.contains(&format!(
            "link    webcrm {a} <-> chargebee cust_a (matched on email:ada@example.com)"
        )),
        "{plan}"
    );
    assert!(
        plan.contains(&format!("ambiguous webcrm {e} on email:eve@example.com")),
        "{plan}"
    );
    assert!(plan.contains("dry run: nothing was written"));
    assert_eq!((world_state(&w), db_counts(&w).await), before);
    assert_eq!((w.cb_writes(), w.wc_writes()), (0, 0));

    let out = resync(&w, only(PAIRING)).await;
    assert!(out.contains("persons_customers: linked 2"), "{out}");
    let links = w.links(PAIRING).await;
    let pairs: Vec<(String, String)> = links
        .iter()
        .map(|l| (l.webcrm_id.clone(), l.chargebee_id.clone()))
        .collect();
    assert!(
        pairs.contains(&(a.to_string(), "cust_a".into())),
        "{pairs:?}"
    );
    assert!(pairs.contains(&(b.to_string(), "cust_b".into())));
    assert!(pairs.contains(&(c.to_string(), format!("wc-person-{c}"))));
    assert!(pairs.iter().any(|(_, cb)| cb == "cust_d"));
    assert_eq!(links.len(), 4, "the ambiguous Eve is not linked");
    // No duplicates: one new customer (Cy) and one new person (Dan).
    assert_eq!(w.cb.handle().records("customer").len(), 6);
    assert_eq!(w.wc.state().count(SandboxEntity::Person), 5);
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);

    // A second run finds nothing to do and writes nothing.
    let writes = (w.cb_writes(), w.wc_writes());
    let again = resync(&w, only(PAIRING)).await;
    assert!(
        again.contains("persons_customers: 0 links, 0 creates, 0 updates, 1 ambiguous"),
        "{again}"
    );
    assert_eq!((w.cb_writes(), w.wc_writes()), writes);
    w.shutdown().await;
}

async fn first_link_carries_the_newer_record_across(backend: Backend) {
    let w = World::start_without_webhooks(backend).await;
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "Existing Co"}),
            )
            .unwrap();
    customer(&w, "cust_a", "Adah", "ada@example.com");
    // The webCRM record was edited later than the customer.
    w.wc.state().advance_clock(Duration::from_secs(3600));
    let a = person(&w, org, "Ada", "ada@example.com");
    resync(&w, only(PAIRING)).await;
    assert_eq!(w.cb_record("customer", "cust_a")["first_name"], "Ada");
    let p = w.wc_record(SandboxEntity::Person, &a.to_string());
    assert_eq!(p["PersonFirstName"], "Ada");
    assert!(
        w.conflicts().await.is_empty(),
        "a first link is not a conflict"
    );
    w.shutdown().await;
}

async fn links_are_rebuilt_from_cross_ids(backend: Backend) {
    let w = World::start(backend).await;
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "Existing Co"}),
            )
            .unwrap();
    let a = person(&w, org, "Ada", "ada@example.com");
    w.settle().await;
    assert_eq!(w.links(PAIRING).await.len(), 1);
    // The link table is lost; the systems still carry each other's ids.
    w.app.db.exec("delete from links").await;
    let writes = (w.cb_writes(), w.wc_writes());
    let out = resync(
        &w,
        Options {
            rebuild_links: true,
            ..only(PAIRING)
        },
    )
    .await;
    assert!(out.contains("matched on cross_id"), "{out}");
    let links = w.links(PAIRING).await;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].webcrm_id, a.to_string());
    assert_eq!(links[0].chargebee_id, format!("wc-person-{a}"));
    assert_eq!(
        (w.cb_writes(), w.wc_writes()),
        writes,
        "rebuilding writes nothing"
    );
    w.shutdown().await;
}

async fn an_interrupted_resync_resumes_without_duplicates(backend: Backend) {
    let w = World::start_without_webhooks(backend).await;
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "Existing Co"}),
            )
            .unwrap();
    for i in 0..40 {
        person(&w, org, &format!("P{i}"), &format!("p{i}@example.com"));
    }
    // The resync runs as its own process at 20 Chargebee calls a second, and is killed
    // part-way through its creates.
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", w.app.db.url.clone()),
        ("CHARGEBEE_BASE_URL", w.cb.base_url().to_string()),
        ("CHARGEBEE_API_KEY", w.cb.api_key().to_owned()),
        ("CHARGEBEE_SITE", "acme-test".into()),
        ("CHARGEBEE_RATE_LIMIT_PER_MINUTE", "1200".into()),
        ("CHARGEBEE_WEBHOOK_USERNAME", "u".into()),
        ("CHARGEBEE_WEBHOOK_PASSWORD", "webhook-password-0123".into()),
        ("WEBCRM_BASE_URL", w.wc.base_url()),
        ("WEBCRM_API_TOKEN", w.wc.api_token()),
        (
            "WEBCRM_WEBHOOK_SECRET",
            "webcrm-hook-secret-0123456789".into(),
        ),
        ("ADMIN_TOKEN", "admin-token-0123456789abcdef".into()),
        ("RUST_LOG", "warn".into()),
        // The killed run's leases expire quickly, so the second run takes its jobs over.
        ("JOB_LEASE_SECS", "2".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let spawn = || {
        std::process::Command::new(BIN)
            .args(["resync", "--pairing", PAIRING])
            .env_clear()
            .envs(env.iter().cloned())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while w.cb.handle().records("customer").len() < 10 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let made = w.cb.handle().records("customer").len();
    assert!(
        (10..40).contains(&made),
        "killed part-way: {made} of 40 created"
    );
    let second = spawn().wait_with_output().unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(w.cb.handle().records("customer").len(), 40, "no duplicates");
    let links = w.links(PAIRING).await;
    assert_eq!(links.len(), 40);
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.shutdown().await;
}

async fn the_admin_api_runs_a_resync_as_a_job(backend: Backend) {
    let w = World::start_without_webhooks(backend).await;
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "Existing Co"}),
            )
            .unwrap();
    let a = person(&w, org, "Ada", "ada@example.com");
    customer(&w, "cust_a", "Ada", "ada@example.com");
    let start = |dry_run: bool| {
        w.app
            .client
            .post(w.app.url("/admin/v1/pairings/persons_customers/resync"))
            .bearer_auth(common::app::ADMIN)
            .json(&json!({ "dry_run": dry_run }))
            .send()
    };
    assert_eq!(start(true).await.unwrap().status(), 202);
    w.settle().await;
    assert!(w.links(PAIRING).await.is_empty(), "a dry run links nothing");
    #[derive(sqlx::FromRow)]
    struct Log {
        action: String,
        detail: String,
    }
    let log: Vec<Log> = w.app.db.rows("select action, detail from sync_log").await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].action, "resync_planned");
    assert!(log[0].detail.contains("1 links"), "{}", log[0].detail);
    assert_eq!(start(false).await.unwrap().status(), 202);
    w.settle().await;
    let links = w.links(PAIRING).await;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].webcrm_id, a.to_string());
    assert_eq!(links[0].chargebee_id, "cust_a");
    w.shutdown().await;
}

on_both_backends!(
    the_admin_api_runs_a_resync_as_a_job,
    existing_records_are_linked_not_duplicated,
    first_link_carries_the_newer_record_across,
    links_are_rebuilt_from_cross_ids,
    an_interrupted_resync_resumes_without_duplicates,
);
