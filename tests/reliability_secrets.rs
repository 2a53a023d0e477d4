//! Secrets never reach the logs: a full sync (organisations, persons, customers, webCRM
//! users with their password, authentication code and ticket) through a child `serve`
//! process at `RUST_LOG=trace`, with webhooks, hooks, admin calls (good and bad tokens) and
//! a rejected webhook, in both log formats. Every line it wrote is searched for each secret,
//! raw and in the encodings it travels in (Basic auth is base64).

mod common;
mod reliability_support;

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use wcs::sandbox::webcrm::SandboxEntity;

use common::app::{ADMIN, CB_PASSWORD, CB_USER, WEBCRM_SECRET};
use common::world::World;
use common::Backend;
use reliability_support::{eventually, ServeProcess};

const USER_PASSWORD: &str = "Us3r-Pa55word-7f3k2";
const USER_AUTH_CODE: &str = "AUTHCODE-88412-QZ";
const USER_TICKET: &str = "TICKET-5c1d9e77a0b4";

async fn no_secret_reaches_the_logs(backend: Backend) {
    for format in ["pretty", "json"] {
        one_run(backend, format).await;
    }
}

async fn one_run(backend: Backend, format: &str) {
    let w = World::start_without_webhooks(backend).await;
    let db_url = w.app.db.url.clone();
    let mut serve = ServeProcess::new(
        &w,
        &db_url,
        &[
            ("RUST_LOG", "trace"),
            ("LOG_FORMAT", format),
            ("POLL_INTERVAL_SECS", "2"),
        ],
    );
    serve.register(&w, &db_url).await;
    serve.start().await;

    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "Secret Co", "OrganisationVATNumber": "DK12345678"}),
            )
            .expect("org");
    for i in 0..3 {
        w.wc.state()
            .ui_create(
                SandboxEntity::Person,
                json!({"PersonOrganisationId": org, "PersonFirstName": format!("P{i}"),
                       "PersonLastName": "Secret", "PersonEmail": format!("p{i}@example.org")}),
            )
            .expect("person");
    }
    let user =
        w.wc.state()
            .ui_create(
                SandboxEntity::User,
                json!({"UserName": "Ulla Secret", "UserEmail": "ulla@example.org",
                       "UserPassword": USER_PASSWORD,
                       "UserAuthenticationCode": USER_AUTH_CODE,
                       "UserTicket": USER_TICKET}),
            )
            .expect("user");
    let stored =
        w.wc.state()
            .record(SandboxEntity::User, user)
            .expect("user");
    assert_eq!(
        stored["UserPassword"],
        json!(USER_PASSWORD),
        "the sandbox holds it"
    );
    w.cb.handle()
        .dashboard_create_customer(&[
            ("id", "cust-secret"),
            ("first_name", "Cara"),
            ("last_name", "Secret"),
            ("email", "cara@example.org"),
            ("company", "Secret Co"),
        ])
        .expect("customer");
    w.wc.state().deliver_pending_hooks().await;

    // Admin calls with the right token and a wrong one; a webhook with bad credentials.
    let client = reqwest::Client::new();
    let ok = client
        .get(serve.url("/admin/v1/status"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("admin");
    assert!(ok.status().is_success(), "{}", ok.status());
    let bad = client
        .get(serve.url("/admin/v1/status"))
        .bearer_auth(format!("{ADMIN}-wrong"))
        .send()
        .await
        .expect("admin");
    assert_eq!(bad.status(), 401);
    let refused = client
        .post(serve.url("/webhooks/chargebee"))
        .basic_auth(CB_USER, Some(format!("{CB_PASSWORD}-wrong")))
        .json(&json!({"id": "ev_x", "event_type": "customer_changed"}))
        .send()
        .await
        .expect("webhook");
    assert_eq!(refused.status(), 401);

    // The full sync: four persons and customers, one customer for the active user.
    eventually(Duration::from_secs(30), || {
        let w = &w;
        async move {
            w.wc.state().deliver_pending_hooks().await;
            let customers = w.cb.handle().records("customer");
            let persons = w.wc.state().count(SandboxEntity::Person);
            let user_customer = customers
                .iter()
                .any(|c| c["email"].as_str() == Some("ulla@example.org"));
            if customers.len() == 5 && persons == 4 && user_customer {
                Ok(())
            } else {
                Err(format!(
                    "{} customers, {persons} persons, user customer: {user_customer}",
                    customers.len()
                ))
            }
        }
    })
    .await;
    serve.terminate();
    let logs = serve.all_logs();
    assert!(
        logs.contains("TRACE") || logs.contains("\"level\":\"TRACE\""),
        "no trace-level output at all"
    );

    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut secrets: Vec<(String, String)> = vec![
        ("Chargebee API key".into(), w.cb.api_key().to_owned()),
        (
            "Chargebee API key (Basic)".into(),
            b64(&format!("{}:", w.cb.api_key())),
        ),
        ("admin token".into(), ADMIN.to_owned()),
        ("webhook password".into(), CB_PASSWORD.to_owned()),
        (
            "webhook Basic credentials".into(),
            b64(&format!("{CB_USER}:{CB_PASSWORD}")),
        ),
        ("webCRM hook secret".into(), WEBCRM_SECRET.to_owned()),
        ("webCRM API token".into(), w.wc.api_token()),
        ("UserPassword".into(), USER_PASSWORD.to_owned()),
        ("UserAuthenticationCode".into(), USER_AUTH_CODE.to_owned()),
        ("UserTicket".into(), USER_TICKET.to_owned()),
    ];
    let tokens = w.wc.state().issued_access_tokens();
    assert!(!tokens.is_empty(), "the service logged in to webCRM");
    secrets.extend(
        tokens
            .into_iter()
            .map(|t| ("webCRM access token".to_owned(), t)),
    );
    // The hook URL path carries a token derived from the secret.
    for (_, hook) in w.wc.state().hooks() {
        let url = serde_json::to_value(&hook).unwrap_or(Value::Null)["TargetUrl"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(token) = url.rsplit('/').next().filter(|t| t.len() >= 16) {
            secrets.push(("webCRM hook URL token".into(), token.to_owned()));
        }
    }
    let leaks: Vec<String> = secrets
        .iter()
        .filter(|(_, value)| logs.contains(value.as_str()))
        .map(|(name, value)| {
            let line = logs
                .lines()
                .find(|l| l.contains(value.as_str()))
                .unwrap_or_default();
            format!("{name} in: {}", line.chars().take(400).collect::<String>())
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "{format} logs leak:\n{}",
        leaks.join("\n")
    );
    println!(
        "{backend:?}/{format}: {} log lines, {} bytes at trace level; none of {} secrets found",
        logs.lines().count(),
        logs.len(),
        secrets.len()
    );
    w.shutdown().await;
}

on_both_backends!(no_secret_reaches_the_logs);
