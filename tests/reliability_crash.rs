//! Crash anywhere: about 500 mixed changes (creates and edits on both sides) are replayed
//! against the sandboxes while the service runs as a child `serve` process that is
//! SIGKILLed at random moments ten times and restarted. Webhooks and hooks that arrive while
//! it is down are lost; polling (a short `POLL_INTERVAL_SECS`) must find those changes. At
//! the end both sides hold exactly the expected records (tracked by the test), each once,
//! with every last edit: no duplicates and no lost changes.
//!
//! `CRASH_CHANGES` and `CRASH_SEED` override the number of changes and the seed.

mod common;
mod reliability_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use wcs::sandbox::webcrm::SandboxEntity;

use common::world::World;
use common::Backend;
use reliability_support::{eventually, ServeProcess};

const KILLS: usize = 10;

/// What the test expects one person/customer pair to end up as. Webcrm edits only touch
/// the first name and the phone, Chargebee edits only the last name, so that the expected
/// final value of every field is known whatever the interleaving with the sync.
#[derive(Debug, Clone)]
struct Expected {
    first: String,
    last: String,
    phone: Option<String>,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn by_email<'a>(
    rows: &'a [Map<String, Value>],
    field: &str,
    email: &str,
) -> Vec<&'a Map<String, Value>> {
    rows.iter()
        .filter(|r| r.get(field).and_then(Value::as_str) == Some(email))
        .collect()
}

fn customers(w: &World) -> Vec<Map<String, Value>> {
    w.cb.handle()
        .records("customer")
        .into_iter()
        .filter_map(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// Compares both sandboxes with the expectation; `Err` says what still differs.
fn compare(w: &World, expected: &BTreeMap<String, Expected>) -> Result<(), String> {
    let persons = w.wc.state().records(SandboxEntity::Person);
    let customers = customers(w);
    if persons.len() != expected.len() || customers.len() != expected.len() {
        let odd: Vec<String> = customers
            .iter()
            .filter(|c| {
                let email = c.get("email").and_then(Value::as_str).unwrap_or_default();
                by_email(&customers, "email", email).len() != 1 || !expected.contains_key(email)
            })
            .map(|c| Value::Object(c.clone()).to_string())
            .collect();
        return Err(format!(
            "{} persons and {} customers for {} expected records; odd customers: {odd:#?}",
            persons.len(),
            customers.len(),
            expected.len()
        ));
    }
    for (email, e) in expected {
        let p = by_email(&persons, "PersonEmail", email);
        let c = by_email(&customers, "email", email);
        if p.len() != 1 || c.len() != 1 {
            return Err(format!(
                "{email}: {} persons, {} customers",
                p.len(),
                c.len()
            ));
        }
        let (p, c) = (p[0], c[0]);
        let want = (Some(e.first.clone()), Some(e.last.clone()), e.phone.clone());
        let got_p = (
            text(p.get("PersonFirstName")),
            text(p.get("PersonLastName")),
            text(p.get("PersonDirectPhone")),
        );
        let got_c = (
            text(c.get("first_name")),
            text(c.get("last_name")),
            text(c.get("phone")),
        );
        if got_p != want || got_c != want {
            return Err(format!(
                "{email}: expected {want:?}, webCRM has {got_p:?}, Chargebee has {got_c:?}"
            ));
        }
    }
    Ok(())
}

/// The expectation, less the webCRM edits that webCRM's own PUT overwrote. A PUT replaces
/// the whole record and checks no version, so an edit made between the sync's read of a
/// person and its PUT is gone from webCRM before anyone else sees it: no client of the API
/// can keep it. The sandbox reports each such edit (`puts_after_reads`); where one was the
/// field's last edit, the field is expected at the value the PUT left. Every other edit
/// must arrive.
fn without_overwritten_edits(
    w: &World,
    expected: &BTreeMap<String, Expected>,
) -> BTreeMap<String, Expected> {
    let persons = w.wc.state().records(SandboxEntity::Person);
    let mut adjusted = expected.clone();
    for put in w.wc.state().puts_after_reads() {
        let email = persons
            .iter()
            .find(|p| p.get("PersonId").and_then(Value::as_i64) == Some(put.id))
            .and_then(|p| text(p.get("PersonEmail")));
        let Some(e) = email.and_then(|email| adjusted.get_mut(&email)) else {
            continue;
        };
        for (field, edited, left) in &put.overwritten {
            match field.as_str() {
                "PersonFirstName" if Some(e.first.as_str()) == edited.as_str() => {
                    e.first = text(Some(left)).unwrap_or_default();
                }
                "PersonDirectPhone" if e.phone.as_deref() == edited.as_str() => {
                    e.phone = text(Some(left));
                }
                _ => {}
            }
        }
    }
    adjusted
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn replay_with_kills_converges(backend: Backend) {
    let changes: usize = env_or("CRASH_CHANGES", 500);
    let seed: u64 = env_or(
        "CRASH_SEED",
        match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => 2,
        },
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let w = World::start_without_webhooks(backend).await;
    let db_url = w.app.db.url.clone();
    let mut serve = ServeProcess::new(&w, &db_url, &[("POLL_INTERVAL_SECS", "2")]);
    serve.register(&w, &db_url).await;
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "Crash Co"}),
            )
            .expect("org");
    serve.start().await;

    // Ten kill points spread over the replay, each followed by a restart a few changes
    // later (changes in between find the service down).
    let mut kills: Vec<usize> = Vec::new();
    while kills.len() < KILLS {
        let at = rng.random_range(10..changes.saturating_sub(10).max(11));
        if !kills.iter().any(|k| k.abs_diff(at) < 8) {
            kills.push(at);
        }
    }
    kills.sort_unstable();
    let mut restart_at: Option<usize> = None;

    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    let mut counts = BTreeMap::<&str, usize>::new();
    let started = Instant::now();
    for step in 0..changes {
        if kills.contains(&step) {
            serve.kill();
            restart_at = Some(step + rng.random_range(1..6));
            *counts.entry("kills").or_default() += 1;
        }
        if restart_at == Some(step) {
            serve.start().await;
            restart_at = None;
        }
        let roll = rng.random_range(0..100);
        let emails: Vec<String> = expected.keys().cloned().collect();
        let pick = (!emails.is_empty()).then(|| emails[rng.random_range(0..emails.len())].clone());
        match (roll, pick) {
            (0..=14, _) | (_, None) => {
                let email = format!("wc{step}.{seed}@example.org");
                let e = Expected {
                    first: format!("First{step}"),
                    last: format!("Last{step}"),
                    phone: None,
                };
                w.wc.state()
                    .ui_create(
                        SandboxEntity::Person,
                        json!({"PersonOrganisationId": org, "PersonFirstName": e.first,
                               "PersonLastName": e.last, "PersonEmail": email}),
                    )
                    .expect("create person");
                expected.insert(email, e);
                *counts.entry("webcrm creates").or_default() += 1;
            }
            (15..=29, _) => {
                let email = format!("cb{step}.{seed}@example.org");
                let e = Expected {
                    first: format!("First{step}"),
                    last: format!("Last{step}"),
                    phone: None,
                };
                w.cb.handle()
                    .dashboard_create_customer(&[
                        ("id", &format!("cust-{seed}-{step}")),
                        ("first_name", &e.first),
                        ("last_name", &e.last),
                        ("email", &email),
                        ("company", "Crash Co"),
                    ])
                    .expect("create customer");
                expected.insert(email, e);
                *counts.entry("chargebee creates").or_default() += 1;
            }
            (30..=69, Some(email)) => {
                let persons = w.wc.state().records(SandboxEntity::Person);
                let Some(id) = by_email(&persons, "PersonEmail", &email)
                    .first()
                    .and_then(|p| p.get("PersonId"))
                    .and_then(Value::as_i64)
                else {
                    *counts.entry("skipped (not synced yet)").or_default() += 1;
                    continue;
                };
                let e = expected.get_mut(&email).expect("tracked");
                let change = if rng.random_bool(0.5) {
                    e.first = format!("Edited{step}");
                    json!({"PersonFirstName": e.first})
                } else {
                    let phone = format!("+45 {step:04}");
                    e.phone = Some(phone.clone());
                    json!({"PersonDirectPhone": phone})
                };
                w.wc.state()
                    .ui_update(SandboxEntity::Person, id, change)
                    .expect("edit person");
                *counts.entry("webcrm edits").or_default() += 1;
            }
            (_, Some(email)) => {
                let customers = customers(&w);
                let Some(id) = by_email(&customers, "email", &email)
                    .first()
                    .and_then(|c| c.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                else {
                    *counts.entry("skipped (not synced yet)").or_default() += 1;
                    continue;
                };
                let e = expected.get_mut(&email).expect("tracked");
                e.last = format!("Renamed{step}");
                w.cb.handle()
                    .dashboard_edit("customer", &id, json!({"last_name": e.last}))
                    .expect("edit customer");
                *counts.entry("chargebee edits").or_default() += 1;
            }
        }
        // Hooks go out now; while the service is down they are lost.
        w.wc.state().deliver_pending_hooks().await;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    if serve.child.is_none() {
        serve.start().await;
    }
    let replayed = started.elapsed();
    // The running service's own poll scheduler (every 2 s) must bring everything across,
    // and link every pair (a create cut short links once its job's lease has run out).
    eventually(Duration::from_secs(40), || {
        let w = &w;
        let expected = &expected;
        async move {
            w.wc.state().deliver_pending_hooks().await;
            let expected = without_overwritten_edits(w, expected);
            if let Err(why) = compare(w, &expected) {
                return Err(format!("{why}; conflicts: {:?}", w.conflicts().await));
            }
            let links = w.links("persons_customers").await;
            let live = links.iter().filter(|l| l.tombstoned_at.is_none()).count();
            if live == expected.len() {
                Ok(())
            } else {
                Err(format!("{live} live links for {} records", expected.len()))
            }
        }
    })
    .await;
    let converged = started.elapsed();
    let dead: Vec<_> = w.dead_jobs().await;
    assert!(dead.is_empty(), "dead jobs: {dead:?}");
    serve.kill();
    let puts = w.wc.state().puts_after_reads();
    let mut gaps: Vec<Duration> = puts.iter().filter_map(|p| p.gap).collect();
    gaps.sort_unstable();
    let at = |q: f64| gaps.get(((gaps.len() as f64 - 1.0) * q) as usize).copied();
    let overwritten: Vec<_> = puts.iter().filter(|p| !p.overwritten.is_empty()).collect();
    println!(
        "{backend:?}: {changes} steps ({counts:?}), {} records; replay {replayed:?}, \
         converged {converged:?} after start; {} webCRM PUTs, read-to-PUT gap p50 {:?} \
         p99 {:?} max {:?}; edits overwritten by a PUT: {overwritten:?}",
        expected.len(),
        puts.len(),
        at(0.5),
        at(0.99),
        gaps.last(),
    );
    w.shutdown().await;
}

on_both_backends!(replay_with_kills_converges);
