//! Webhook intake over real HTTP, on both backends: verification, storage, dedupe, jobs.

mod common;

use common::app::{test_config_with, TestApp, CB_PASSWORD, CB_USER};
use common::raw_http::{auth_header, raw_post};
use common::{Backend, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn customer_event(event_id: &str, customer_id: &str) -> String {
    json!({
        "id": event_id,
        "occurred_at": 1_781_857_955,
        "source": "api",
        "user": "full_access_key_v1",
        "object": "event",
        "api_version": "v2",
        "event_type": "customer_changed",
        "webhook_status": "scheduled",
        "content": { "customer": {
            "id": customer_id, "first_name": "Carol", "email": "carol@example.com",
            "resource_version": 1_781_857_954_941_i64, "object": "customer"
        }}
    })
    .to_string()
}

async fn body(resp: reqwest::Response) -> Value {
    resp.json().await.unwrap()
}

async fn chargebee_event_is_stored_with_a_job_per_pairing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resp = app.post_chargebee(customer_event("ev_1", "cust_1")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        body(resp).await,
        json!({"status": "accepted", "jobs": 2, "reason": null})
    );
    assert_eq!(
        app.events().await,
        vec![("chargebee".into(), "accepted".into(), Some("ev_1".into()))]
    );
    let jobs = app.jobs().await;
    let keys: Vec<&str> = jobs.iter().map(|j| j.dedupe_key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "sync:persons_customers:chargebee:cust_1",
            "sync:users_customers:chargebee:cust_1"
        ]
    );
    let payload = jobs[0].payload_json();
    assert_eq!(payload["side"], "chargebee");
    assert_eq!(payload["id"], "cust_1");
    assert_eq!(payload["hint"]["event_id"], "ev_1");
    assert_eq!(payload["hint"]["resource_version"], 1_781_857_954_941_i64);
}

async fn chargebee_redelivery_is_acknowledged_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let event = customer_event("ev_dup", "cust_1");
    assert_eq!(
        app.post_chargebee(event.clone()).await.status(),
        StatusCode::OK
    );
    let jobs_before = app.jobs().await.len();
    for _ in 0..3 {
        let resp = app.post_chargebee(event.clone()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(body(resp).await["status"], "duplicate");
    }
    assert_eq!(app.events().await.len(), 1);
    assert_eq!(app.jobs().await.len(), jobs_before);
}

async fn chargebee_burst_for_one_customer_collapses_into_one_job_per_pairing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Ten distinct events for the same customer, delivered in reverse order.
    for n in (0..10).rev() {
        let resp = app
            .post_chargebee(customer_event(&format!("ev_{n}"), "cust_9"))
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_eq!(app.events().await.len(), 10);
    assert_eq!(app.jobs().await.len(), 2);
}

async fn chargebee_wrong_or_missing_credentials_are_401_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.url("/webhooks/chargebee");
    let event = customer_event("ev_x", "c");
    let attempts = [
        app.client.post(&url).body(event.clone()),
        app.client
            .post(&url)
            .basic_auth(CB_USER, Some("wrong"))
            .body(event.clone()),
        app.client
            .post(&url)
            .basic_auth("wrong", Some(CB_PASSWORD))
            .body(event.clone()),
        app.client
            .post(&url)
            .bearer_auth(CB_PASSWORD)
            .body(event.clone()),
    ];
    for request in attempts {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic"));
        assert_eq!(body(resp).await["code"], "unauthorized");
    }
    assert!(app.events().await.is_empty());
    assert!(app.jobs().await.is_empty());
}

async fn chargebee_malformed_event_is_400_naming_the_problem_and_enqueues_nothing(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        ("{not json", "not valid JSON"),
        ("[1,2]", "JSON object"),
        (r#"{"event_type":"customer_changed"}"#, "`id`"),
        (r#"{"id":"ev_1","content":{}}"#, "`event_type`"),
        (r#"{"id":"","event_type":"customer_changed"}"#, "`id`"),
    ];
    for (payload, needle) in cases {
        let resp = app.post_chargebee(payload).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{payload}");
        let b = body(resp).await;
        assert_eq!(b["code"], "bad_request");
        assert!(b["message"].as_str().unwrap().contains(needle), "{b}");
    }
    assert!(app.jobs().await.is_empty());
    // Refusals are logged for operators, without a body or an event id, never as accepted.
    let events = app.events().await;
    assert_eq!(events.len(), 5);
    assert!(events
        .iter()
        .all(|(_, outcome, id)| outcome == "rejected" && id.is_none()));
}

async fn chargebee_test_button_and_unused_events_are_200_and_ignored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sample = customer_event("ev_demo", "cbdemo_tom");
    let resp = app.post_chargebee(sample).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body(resp).await["status"], "ignored");
    let unused = json!({"id": "ev_sub", "event_type": "subscription_created",
                        "content": {"subscription": {"id": "s"}}});
    let resp = app.post_chargebee(unused.to_string()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body(resp).await["status"], "ignored");
    assert!(app.jobs().await.is_empty());
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("webhooks_received_total{source=\"chargebee\",outcome=\"ignored\"}"),
        "{metrics}"
    );
}

async fn chargebee_business_entity_transfer_queues_a_rekey(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let event = json!({
        "id": "ev_t", "event_type": "customer_business_entity_changed", "occurred_at": 5,
        "content": {
            "business_entity_transfer": {"resource_type": "customer", "resource_id": "old_c",
                                          "active_resource_id": "new_c"},
            "customer": {"id": "new_c"}
        }
    });
    assert_eq!(
        app.post_chargebee(event.to_string()).await.status(),
        StatusCode::OK
    );
    let jobs = app.jobs().await;
    assert_eq!(jobs[0].kind, "rekey_customer");
    assert_eq!(jobs[0].payload_json()["old_id"], "old_c");
    assert_eq!(jobs[0].payload_json()["new_id"], "new_c");
    assert!(jobs[1..]
        .iter()
        .all(|j| j.dedupe_key.ends_with(":chargebee:new_c")));
}

async fn disabled_pairing_gets_no_jobs(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let config = test_config_with(&db.url, &[("USERS_CUSTOMERS_ENABLED", "false")]);
    let app = TestApp::spawn_with_config(db, store, config).await;
    app.post_chargebee(customer_event("ev_1", "c1")).await;
    let jobs = app.jobs().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].pairing.as_deref(), Some("persons_customers"));
}

async fn oversized_webhook_is_413_and_stores_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let padding = "x".repeat(2 * 1024 * 1024);
    let event = json!({"id": "ev_big", "event_type": "customer_changed",
                       "content": {"customer": {"id": "c", "note": padding}}})
    .to_string();
    // Written raw: the service answers before reading the whole body and closes, which an
    // HTTP client may report as a broken pipe instead of the answer.
    let head = format!(
        "POST /webhooks/chargebee HTTP/1.1\r\nHost: test\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        auth_header(),
        event.len()
    );
    let reply = raw_post(app.running.addr, head, vec![event.into_bytes()]).await;
    reply.assert_error(413, "payload_too_large");
    assert!(app.events().await.is_empty());
}

async fn webcrm_hook_with_an_id_enqueues_the_entitys_pairings(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let shapes = [
        (
            "Persons",
            r#"{"HookId":1,"EventType":"Update","EntityType":"Person","Id":42}"#,
        ),
        (
            "Organisations",
            r#"{"OrganisationId": 7, "OrganisationName": "Acme"}"#,
        ),
        ("Opportunities", "[13]"),
        ("QuotationLines", "99"),
        ("Users", r#"{"Data":{"UserId":"5"}}"#),
    ];
    for (entity, payload) in shapes {
        let resp = app.post_webcrm(entity, payload).await;
        assert_eq!(resp.status(), StatusCode::OK, "{entity}");
        assert_eq!(body(resp).await["status"], "accepted");
    }
    let mut keys: Vec<String> = app.jobs().await.into_iter().map(|j| j.dedupe_key).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "sync:opportunities_orders:webcrm:13",
            "sync:organisations_business_entities:webcrm:7",
            "sync:persons_customers:webcrm:42",
            "sync:persons_customers:webcrm:Organisations/7",
            "sync:quotationlines_orders:webcrm:99",
            "sync:users_customers:webcrm:5",
        ]
    );
    let events = app.events().await;
    assert_eq!(events.len(), 5);
    assert!(events
        .iter()
        .all(|(s, o, id)| s == "webcrm" && o == "accepted" && id.is_none()));
}

async fn webcrm_hook_without_an_id_triggers_a_catch_up_poll(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for payload in ["", "{}", r#"{"Something":"else"}"#] {
        let resp = app.post_webcrm("Persons", payload).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let jobs = app.jobs().await;
    assert_eq!(jobs.len(), 1, "three hooks, one waiting poll");
    assert_eq!(jobs[0].kind, "poll");
    assert_eq!(jobs[0].dedupe_key, "poll:webcrm:Persons");
}

async fn webcrm_delete_hook_is_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resp = app
        .post_webcrm("Persons", r#"{"EventType":"Delete","Id":42}"#)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let jobs = app.jobs().await;
    assert_eq!(jobs[0].payload_json()["hint"]["event_type"], "Delete");
}

async fn webcrm_wrong_token_is_401_and_unknown_entity_is_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = secrecy::SecretString::from(common::app::WEBCRM_SECRET);
    let persons_token = wcs::intake::webcrm::hook_token(&secret, "Persons");
    let cases = [
        (
            format!("/webhooks/webcrm/Users/{persons_token}"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/webhooks/webcrm/Persons/not-the-token".to_string(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            format!("/webhooks/webcrm/Products/{persons_token}"),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (path, status) in cases {
        let resp = app
            .client
            .post(app.url(&path))
            .body("{\"Id\":1}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
    }
    assert!(app.jobs().await.is_empty());
    assert!(app.events().await.is_empty());
}

on_both_backends!(
    chargebee_event_is_stored_with_a_job_per_pairing,
    chargebee_redelivery_is_acknowledged_and_changes_nothing,
    chargebee_burst_for_one_customer_collapses_into_one_job_per_pairing,
    chargebee_wrong_or_missing_credentials_are_401_and_store_nothing,
    chargebee_malformed_event_is_400_naming_the_problem_and_enqueues_nothing,
    chargebee_test_button_and_unused_events_are_200_and_ignored,
    chargebee_business_entity_transfer_queues_a_rekey,
    disabled_pairing_gets_no_jobs,
    oversized_webhook_is_413_and_stores_nothing,
    webcrm_hook_with_an_id_enqueues_the_entitys_pairings,
    webcrm_hook_without_an_id_triggers_a_catch_up_poll,
    webcrm_delete_hook_is_accepted,
    webcrm_wrong_token_is_401_and_unknown_entity_is_404,
);

#[tokio::test]
async fn webhook_is_503_not_2xx_while_the_database_is_down() {
    let app = TestApp::spawn(Backend::Postgres).await;
    app.db.drop_database().await;
    let resp = app.post_chargebee(customer_event("ev_down", "c")).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let resp = app.post_webcrm("Persons", "{\"Id\":1}").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
}
