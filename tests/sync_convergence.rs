//! Randomised convergence: seeded scenarios of interleaved edits on both sandboxes, with
//! webCRM hooks duplicated and reordered and Chargebee webhooks duplicated (and, in some
//! scenarios, reordered), and some of both lost (a disabled endpoint, dropped hooks) so that
//! only polling finds those changes. After every settle-and-poll each linked pair agrees
//! field by field, no record is duplicated, and wherever both sides changed a field
//! differently in the same window the losing edit is a recorded conflict.
//!
//! `CONVERGENCE_SCENARIOS` sets how many seeds run per backend (default 12 on each
//! backend); the counts that ran are printed.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use wcs::sandbox::chargebee::WebhookFaults;
use wcs::sandbox::webcrm::{SandboxEntity, WebcrmSandboxOptions};

use common::world::World;
use common::Backend;

const PAIRING: &str = "persons_customers";
/// (canonical field, webCRM property, Chargebee property)
const FIELDS: &[(&str, &str, &str)] = &[
    ("first_name", "PersonFirstName", "first_name"),
    ("last_name", "PersonLastName", "last_name"),
    ("email", "PersonEmail", "email"),
    ("phone", "PersonDirectPhone", "phone"),
];
const NAMES: &[&str] = &["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Radia"];

/// A value never used before in the scenario (`step` is unique), so every edit changes.
fn value_for(field: &str, step: usize, rng: &mut StdRng) -> String {
    match field {
        "email" => format!("user{step}@example.org"),
        "phone" => format!("+45 {step:04}"),
        _ => format!("{}{step}", NAMES[rng.random_range(0..NAMES.len())]),
    }
}

/// The edits made on each side to one (webCRM id, field) since the last settle.
#[derive(Default)]
struct Window {
    webcrm: BTreeMap<(String, &'static str), String>,
    chargebee: BTreeMap<(String, &'static str), String>,
}

async fn conflicts_for(w: &World, webcrm_id: &str, field: &str) -> Vec<(String, String)> {
    #[derive(sqlx::FromRow)]
    struct Row {
        webcrm_value: Option<String>,
        chargebee_value: Option<String>,
    }
    let rows: Vec<Row> = w
        .app
        .db
        .rows(&format!(
            "select webcrm_value, chargebee_value from conflicts
             where pairing = '{PAIRING}' and webcrm_id = '{webcrm_id}' and field = '{field}'"
        ))
        .await;
    rows.into_iter()
        .map(|r| {
            (
                r.webcrm_value.unwrap_or_default(),
                r.chargebee_value.unwrap_or_default(),
            )
        })
        .collect()
}

/// Checks the invariants after a settle; returns the number of conflicts expected so far.
async fn check(w: &World, window: &Window, seen_conflicts: &mut usize, seed: u64) {
    let links = w.links(PAIRING).await;
    let persons = w.wc.state().count(SandboxEntity::Person);
    let customers = w.cb.handle().records("customer").len();
    assert_eq!(
        links.len(),
        persons,
        "seed {seed}: every person linked once"
    );
    assert_eq!(
        links.len(),
        customers,
        "seed {seed}: no duplicate customers"
    );
    for link in &links {
        assert!(link.tombstoned_at.is_none(), "seed {seed}");
        let p = w.wc_record(SandboxEntity::Person, &link.webcrm_id);
        let c = w.cb_record("customer", &link.chargebee_id);
        for (field, wc_prop, cb_prop) in FIELDS {
            let wv = p.get(*wc_prop).cloned().unwrap_or(Value::Null);
            let cv = c.get(*cb_prop).cloned().unwrap_or(Value::Null);
            assert_eq!(wv, cv, "seed {seed}: {field} of {} differs", link.webcrm_id);
            let key = (link.webcrm_id.clone(), *field);
            match (window.webcrm.get(&key), window.chargebee.get(&key)) {
                (Some(a), Some(b)) if a != b => {
                    // Both changed it: one won, and the loser is recorded.
                    assert!(wv == json!(a) || wv == json!(b), "seed {seed}: {field}");
                    let lost = if wv == json!(a) { b } else { a };
                    let recorded = conflicts_for(w, &link.webcrm_id, field).await;
                    assert!(
                        recorded
                            .iter()
                            .any(|(x, y)| x == &json!(lost).to_string()
                                || y == &json!(lost).to_string()),
                        "seed {seed}: the lost {field} {lost:?} is not a recorded conflict: {recorded:?}"
                    );
                    *seen_conflicts += 1;
                }
                (Some(a), _) => assert_eq!(wv, json!(a), "seed {seed}: {field}"),
                (None, Some(b)) => assert_eq!(wv, json!(b), "seed {seed}: {field}"),
                (None, None) => {}
            }
        }
    }
    let conflicts = w.conflicts().await.len();
    assert_eq!(
        conflicts, *seen_conflicts,
        "seed {seed}: a conflict was recorded where only one side changed"
    );
    let dead = w.dead_jobs().await;
    assert!(dead.is_empty(), "seed {seed}: {dead:?}");
}

/// Runs one seeded scenario; returns (edits made, conflicts recorded and checked, whether
/// notifications were lost).
async fn scenario(backend: Backend, seed: u64) -> (usize, usize, bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    let w = World::start_with_options(
        backend,
        &[],
        WebcrmSandboxOptions {
            hook_duplicates: true,
            hook_reorder: true,
            ..WebcrmSandboxOptions::default()
        },
    )
    .await;
    w.set_webhook_faults(WebhookFaults {
        duplicate: true,
        reorder_window: if seed.is_multiple_of(4) { 3 } else { 0 },
    });
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": format!("Org {seed}")}),
            )
            .unwrap();
    for i in 0..rng.random_range(2..5) {
        w.wc.state()
            .ui_create(
                SandboxEntity::Person,
                json!({
                    "PersonOrganisationId": org,
                    "PersonFirstName": format!("P{i}"),
                    "PersonLastName": "Start",
                    "PersonEmail": format!("p{i}.{seed}@example.org"),
                }),
            )
            .unwrap();
    }
    for i in 0..rng.random_range(1..3) {
        w.cb.handle()
            .dashboard_create_customer(&[
                ("id", &format!("cust-{seed}-{i}")),
                ("first_name", "C"),
                ("last_name", &format!("Customer{i}")),
                ("email", &format!("c{i}.{seed}@example.org")),
                ("company", &format!("Org {seed}")),
            ])
            .unwrap();
    }
    w.settle().await;
    let mut window = Window::default();
    let mut seen = 0;
    let mut edits = 0;
    let (mut webhooks_on, mut lost) = (true, false);
    check(&w, &window, &mut seen, seed).await;
    for step in 0..rng.random_range(15..30) {
        let links = w.links(PAIRING).await;
        let link = &links[rng.random_range(0..links.len())];
        let (field, wc_prop, cb_prop) = FIELDS[rng.random_range(0..FIELDS.len())];
        let value = value_for(field, step, &mut rng);
        let key = (link.webcrm_id.clone(), field);
        match rng.random_range(0..10) {
            0..=3 => {
                let id: i64 = link.webcrm_id.parse().unwrap();
                w.wc.state()
                    .ui_update(SandboxEntity::Person, id, json!({ wc_prop: value }))
                    .unwrap();
                window.webcrm.insert(key, value);
                edits += 1;
            }
            4..=7 => {
                w.cb.handle()
                    .dashboard_edit("customer", &link.chargebee_id, json!({ cb_prop: value }))
                    .unwrap();
                window.chargebee.insert(key, value);
                edits += 1;
            }
            8 if rng.random_bool(0.5) => {
                // Notifications get lost: hooks waiting now, or Chargebee's for a while.
                if rng.random_bool(0.5) {
                    w.wc.state().drop_pending_hooks();
                } else {
                    webhooks_on = !webhooks_on;
                    w.set_chargebee_webhooks(webhooks_on).await;
                }
                lost = true;
            }
            8 => {
                // Time passes on one side, so conflicts are settled either way.
                let secs = rng.random_range(1..5);
                if rng.random_bool(0.5) {
                    w.cb.handle().advance_clock(Duration::from_secs(secs));
                } else {
                    w.wc.state().advance_clock(Duration::from_secs(secs));
                }
            }
            _ => {
                w.poll().await;
                check(&w, &window, &mut seen, seed).await;
                window = Window::default();
            }
        }
    }
    if !webhooks_on {
        w.set_chargebee_webhooks(true).await;
    }
    w.poll().await;
    check(&w, &window, &mut seen, seed).await;
    w.shutdown().await;
    (edits, seen, lost)
}

fn scenarios(default: u64) -> u64 {
    std::env::var("CONVERGENCE_SCENARIOS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn random_edits_converge(backend: Backend) {
    let n = scenarios(12);
    let (mut edits, mut conflicts, mut lossy) = (0, 0, 0);
    for seed in 0..n {
        let (e, c, lost) = scenario(backend, seed).await;
        edits += e;
        conflicts += c;
        lossy += usize::from(lost);
    }
    assert!(
        conflicts > 0,
        "the scenarios never produced a conflict to check"
    );
    assert!(lossy > 0, "no scenario lost a notification");
    println!(
        "{n} random scenarios converged on {backend:?}: {edits} edits, {conflicts} conflicts, \
         {lossy} scenarios with lost notifications"
    );
}

on_both_backends!(random_edits_converge);
