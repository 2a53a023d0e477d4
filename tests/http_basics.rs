//! Health, readiness, metrics, body limit and error bodies over real HTTP.

mod common;

use common::app::TestApp;
use common::raw_http::raw_post;
use common::{Backend, TestDb};
use reqwest::StatusCode;
use serde_json::Value;

async fn json(resp: reqwest::Response) -> Value {
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    resp.json().await.unwrap()
}

async fn healthz_answers_ok_with_a_request_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resp = app.get("/healthz").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("x-request-id"));
    assert_eq!(json(resp).await["status"], "ok");
}

async fn readyz_is_ready_when_migrated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(json(resp).await["status"], "ready");
}

async fn readyz_is_503_with_a_reason_when_migrations_are_missing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.unmigrated_store().await;
    let app = TestApp::spawn_with(db, store).await;
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = json(resp).await;
    assert_eq!(body["code"], "unavailable");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("migrations not applied"),
        "{body}"
    );
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

async fn readyz_is_503_while_shutting_down(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.running.shutdown.cancel();
    // The listener stops accepting; a request racing the shutdown may see either a 503 or
    // a refused connection, never a 200.
    if let Ok(resp) = app.client.get(app.url("/readyz")).send().await {
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    tokio::time::timeout(std::time::Duration::from_secs(5), app.running.wait())
        .await
        .expect("stops within the grace period")
        .unwrap();
}

async fn unknown_path_is_a_json_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resp = app.get("/nope").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(json(resp).await["code"], "not_found");
}

async fn oversized_body_is_a_json_413(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let size = 2 * 1024 * 1024 + 1;
    // Written raw: the service answers before reading the whole body and closes, which an
    // HTTP client may report as a broken pipe instead of the answer.
    let head = format!("POST /healthz HTTP/1.1\r\nHost: test\r\nContent-Length: {size}\r\n\r\n");
    let reply = raw_post(app.running.addr, head, vec![vec![b'x'; size]]).await;
    reply.assert_error(413, "payload_too_large");
    assert!(reply.json()["message"]
        .as_str()
        .unwrap()
        .contains("2097152"));
}

async fn wrong_method_is_a_json_405(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resp = app
        .client
        .post(app.url("/healthz"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json(resp).await["code"], "method_not_allowed");
}

async fn metrics_expose_requests_and_queue_gauges(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let queue = app.running.queue.clone();
    let job = queue.job(
        "test",
        Some("products_items"),
        "k".into(),
        serde_json::json!({}),
    );
    // The test app runs no workers, so the job stays pending for the gauge to show.
    queue.enqueue(&job).await.unwrap();
    app.get("/healthz").await;
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"}"),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds_bucket"));
    assert!(
        text.contains("jobs{pairing=\"products_items\",state=\"pending\"} 1"),
        "{text}"
    );
    assert!(text.contains("queue_lag_seconds"));
}

on_both_backends!(
    healthz_answers_ok_with_a_request_id,
    readyz_is_ready_when_migrated,
    readyz_is_503_with_a_reason_when_migrations_are_missing,
    readyz_is_503_while_shutting_down,
    unknown_path_is_a_json_404,
    oversized_body_is_a_json_413,
    wrong_method_is_a_json_405,
    metrics_expose_requests_and_queue_gauges,
);

#[tokio::test]
async fn readyz_is_503_when_the_database_is_gone() {
    let app = TestApp::spawn(Backend::Postgres).await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    app.db.drop_database().await;
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = json(resp).await;
    assert!(
        body["message"].as_str().unwrap().contains("database"),
        "{body}"
    );
}
