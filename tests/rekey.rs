//! A customer moved to another business entity gets a new id; its links follow, but only
//! when Chargebee itself confirms the transfer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::app::{test_config_with, TestApp, CB_PASSWORD, CB_USER};
use common::{Backend, TestDb};
use wcs::queue::{Queue, QueueConfig, WorkerPool};
use wcs::sandbox::chargebee::{ChargebeeSandbox, SandboxOptions};

#[derive(sqlx::FromRow)]
struct Link {
    chargebee_id: String,
}

#[derive(sqlx::FromRow)]
struct LogRow {
    action: String,
    detail: String,
}

/// Runs every due job once with the service's real handlers.
async fn run_jobs(app: &TestApp) {
    let handlers = wcs::serve::handlers(&app.config, &app.store, &app.limiters).unwrap();
    let pool = WorkerPool::new(
        Queue::new(app.store.clone(), 3),
        Arc::new(handlers),
        QueueConfig::default(),
    );
    pool.run_until_idle().await.unwrap();
}

async fn transfer_moves_the_link_to_the_new_customer_id(backend: Backend) {
    let sandbox = ChargebeeSandbox::start(SandboxOptions::default())
        .await
        .unwrap();
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let base = sandbox.base_url().to_string();
    let config = test_config_with(
        &db.url,
        &[
            ("CHARGEBEE_BASE_URL", &base),
            ("CHARGEBEE_API_KEY", sandbox.api_key()),
        ],
    );
    let app = TestApp::spawn_with_config(db, store, config).await;
    let handle = sandbox.handle();
    handle.add_webhook_endpoint(
        &app.url("/webhooks/chargebee"),
        Some(CB_USER),
        Some(CB_PASSWORD),
    );
    handle
        .dashboard_create_customer(&[("id", "cust_old"), ("first_name", "Ada")])
        .unwrap();
    app.db
        .exec(
            "insert into links (pairing, webcrm_id, chargebee_id, created_at)
             values ('persons_customers', '12', 'cust_old', 0)",
        )
        .await;
    let new_id = handle.transfer_customer("cust_old", "be_2").unwrap();
    assert!(handle.wait_for_deliveries(2, Duration::from_secs(10)).await);
    run_jobs(&app).await;
    let links: Vec<Link> = app.db.rows("select chargebee_id from links").await;
    assert_eq!(links[0].chargebee_id, new_id);
    let log: Vec<LogRow> = app.db.rows("select action, detail from sync_log").await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].action, "rekey");
    assert!(log[0].detail.contains("cust_old"));
    sandbox.shutdown().await;
}

async fn forged_transfer_is_not_applied(backend: Backend) {
    let sandbox = ChargebeeSandbox::start(SandboxOptions::default())
        .await
        .unwrap();
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let base = sandbox.base_url().to_string();
    let config = test_config_with(
        &db.url,
        &[
            ("CHARGEBEE_BASE_URL", &base),
            ("CHARGEBEE_API_KEY", sandbox.api_key()),
        ],
    );
    let app = TestApp::spawn_with_config(db, store, config).await;
    app.db
        .exec(
            "insert into links (pairing, webcrm_id, chargebee_id, created_at)
             values ('persons_customers', '12', 'cust_old', 0)",
        )
        .await;
    // Valid credentials, but Chargebee never issued this event.
    let forged = serde_json::json!({
        "id": "ev_forged", "event_type": "customer_business_entity_changed",
        "content": {"business_entity_transfer": {"resource_id": "cust_old",
                                                  "active_resource_id": "attacker"}}
    });
    assert_eq!(app.post_chargebee(forged.to_string()).await.status(), 200);
    run_jobs(&app).await;
    let links: Vec<Link> = app.db.rows("select chargebee_id from links").await;
    assert_eq!(links[0].chargebee_id, "cust_old");
    let dead = app
        .jobs()
        .await
        .into_iter()
        .find(|j| j.kind == "rekey_customer")
        .unwrap();
    assert_eq!(dead.state, "dead");
    sandbox.shutdown().await;
}

on_both_backends!(
    transfer_moves_the_link_to_the_new_customer_id,
    forged_transfer_is_not_applied
);
