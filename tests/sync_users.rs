//! `users_customers` end to end: active webCRM users become customers `wc-user-{id}`, edits
//! travel both ways, echoes write nothing, and no customer ever creates a webCRM user.

mod common;

use std::time::Duration;

use serde_json::json;
use wcs::sandbox::webcrm::SandboxEntity;

use common::world::World;
use common::Backend;

const PAIRING: &str = "users_customers";

fn make_user(w: &World, name: &str, email: &str) -> i64 {
    w.wc.state()
        .ui_create(
            SandboxEntity::User,
            json!({
                "UserName": name,
                "UserEmail": email,
                "UserMobilePhone": "+45 20 30 40 50",
                "UserPassword": "s3cret-pass",
            }),
        )
        .unwrap()
}

async fn active_user_becomes_a_customer_with_every_property(backend: Backend) {
    let w = World::start(backend).await;
    let user = make_user(&w, "Anna Maria Berg", "AMB@Example.com");
    w.settle().await;
    let c = w.cb_record("customer", &format!("wc-user-{user}"));
    assert_eq!(c["first_name"], "Anna Maria");
    assert_eq!(c["last_name"], "Berg");
    assert_eq!(c["email"], "amb@example.com");
    assert_eq!(c["phone"], "+45 20 30 40 50");
    let meta: serde_json::Value = match &c["meta_data"] {
        serde_json::Value::String(s) => serde_json::from_str(s).unwrap(),
        v => v.clone(),
    };
    assert_eq!(meta["webcrm_user_id"], user.to_string());
    assert_eq!(w.links(PAIRING).await.len(), 1);
    // The customer_created echo wrote nothing; the customer did not become a person either.
    assert_eq!(w.cb_writes(), 1);
    assert_eq!(w.wc_writes(), 0);
    assert!(w.links("persons_customers").await.is_empty());
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.shutdown().await;
}

async fn inactive_user_gets_no_customer(backend: Backend) {
    let w = World::start(backend).await;
    let user = make_user(&w, "Ex Employee", "ex@example.com");
    w.wc.state().set_user_active(user, false);
    w.settle().await;
    assert!(w.cb.handle().records("customer").is_empty());
    assert!(w.links(PAIRING).await.is_empty());
    w.shutdown().await;
}

async fn edits_travel_both_ways_and_echoes_write_nothing(backend: Backend) {
    let w = World::start(backend).await;
    let user = make_user(&w, "Bo Ek", "bo@example.com");
    w.settle().await;
    let id = format!("wc-user-{user}");
    w.wc.state()
        .ui_update(SandboxEntity::User, user, json!({"UserName": "Bo Ekström"}))
        .unwrap();
    w.settle().await;
    assert_eq!(w.cb_record("customer", &id)["last_name"], "Ekström");
    assert_eq!((w.cb_writes(), w.wc_writes()), (2, 0));
    w.cb.handle()
        .dashboard_edit(
            "customer",
            &id,
            json!({"first_name": "Bosse", "phone": "555"}),
        )
        .unwrap();
    w.settle().await;
    let u = w.wc_record(SandboxEntity::User, &user.to_string());
    assert_eq!(u["UserName"], "Bosse Ekström");
    assert_eq!(u["UserTelephone"], "555");
    // The password the PUT sent back is the one it read.
    assert_eq!(u["UserPassword"], "s3cret-pass");
    assert_eq!(
        (w.cb_writes(), w.wc_writes()),
        (2, 1),
        "the hook about our PUT wrote nothing"
    );
    // The same hook three times: nothing more.
    for _ in 0..3 {
        w.app
            .post_webcrm(
                "Users",
                json!({"HookId": 1, "EventType": "Updated", "EntityType": "User", "Id": user})
                    .to_string(),
            )
            .await;
    }
    w.settle().await;
    assert_eq!((w.cb_writes(), w.wc_writes()), (2, 1));
    w.shutdown().await;
}

async fn a_conflict_keeps_the_newer_value_and_records_the_loser(backend: Backend) {
    let w = World::start(backend).await;
    let user = make_user(&w, "Cy Dee", "cy@example.com");
    w.settle().await;
    let id = format!("wc-user-{user}");
    w.cb.handle()
        .dashboard_edit("customer", &id, json!({"email": "cy@billing.example.com"}))
        .unwrap();
    // webCRM's edit is the later one.
    w.wc.state().advance_clock(Duration::from_secs(60));
    w.wc.state()
        .ui_update(
            SandboxEntity::User,
            user,
            json!({"UserEmail": "cy@crm.example.com"}),
        )
        .unwrap();
    w.settle().await;
    assert_eq!(w.cb_record("customer", &id)["email"], "cy@crm.example.com");
    let u = w.wc_record(SandboxEntity::User, &user.to_string());
    assert_eq!(u["UserEmail"], "cy@crm.example.com");
    let conflicts = w.conflicts().await;
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].field, "email");
    assert_eq!(conflicts[0].winner, "webcrm");
    assert_eq!(
        conflicts[0].chargebee_value.as_deref(),
        Some("\"cy@billing.example.com\"")
    );
    w.shutdown().await;
}

async fn a_new_customer_never_creates_a_webcrm_user(backend: Backend) {
    let w = World::start(backend).await;
    w.cb.handle()
        .dashboard_create_customer(&[
            ("id", "cust_u"),
            ("last_name", "Outside"),
            ("company", "Else"),
        ])
        .unwrap();
    w.settle().await;
    assert_eq!(w.wc.state().count(SandboxEntity::User), 0);
    assert!(w.links(PAIRING).await.is_empty());
    // It became a person instead (pairing 1).
    assert_eq!(w.links("persons_customers").await.len(), 1);
    w.shutdown().await;
}

on_both_backends!(
    active_user_becomes_a_customer_with_every_property,
    inactive_user_gets_no_customer,
    edits_travel_both_ways_and_echoes_write_nothing,
    a_conflict_keeps_the_newer_value_and_records_the_loser,
    a_new_customer_never_creates_a_webcrm_user,
);
