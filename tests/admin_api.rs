//! The admin API over real HTTP, on both backends: success, auth failure, bad input and
//! not-found for every endpoint. Rows are seeded through the store's admin methods.

mod common;

use common::{Backend, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use wcs::store::admin::{EventFilter, NewConflict, NewLink, NewPendingAction, NewSyncLog, Page};
use wcs::store::{now_ms, DynStore, NewInboundEvent, NewJob, Recorded, Release};

const TOKEN: &str = "admin-token-0123456789abcdef";
const SECOND_TOKEN: &str = "rotated-token-abcdef0123456789";

/// The shared test service (no workers: jobs stay where the tests put them), with two admin
/// tokens to prove rotation, a known Chargebee budget and one pairing switched off.
struct TestApp {
    inner: common::app::TestApp,
    store: DynStore,
    limiters: wcs::serve::Limiters,
}

impl TestApp {
    async fn spawn(backend: Backend) -> TestApp {
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        let tokens = format!("{TOKEN}, {SECOND_TOKEN}");
        let config = common::app::test_config_with(
            &db.url,
            &[
                ("ADMIN_TOKEN", tokens.as_str()),
                ("CHARGEBEE_RATE_LIMIT_PER_MINUTE", "1000"),
                ("PRODUCTS_ITEMS_ENABLED", "false"),
            ],
        );
        let inner = common::app::TestApp::spawn_with_config(db, store, config).await;
        TestApp {
            store: inner.store.clone(),
            limiters: inner.limiters.clone(),
            inner,
        }
    }

    fn url(&self, path: &str) -> String {
        self.inner.url(&format!("/admin/v1{path}"))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.inner.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        req.send().await.unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.send(Method::GET, path, Some(TOKEN), None).await
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.send(Method::POST, path, Some(TOKEN), Some(&body.to_string()))
            .await
    }

    async fn post_raw(&self, path: &str, body: &str) -> reqwest::Response {
        self.send(Method::POST, path, Some(TOKEN), Some(body)).await
    }

    async fn post_empty(&self, path: &str) -> reqwest::Response {
        self.send(Method::POST, path, Some(TOKEN), None).await
    }

    async fn delete(&self, path: &str) -> reqwest::Response {
        self.send(Method::DELETE, path, Some(TOKEN), None).await
    }

    async fn link(&self, pairing: &str, webcrm_id: &str, chargebee_id: &str) -> i64 {
        let new = NewLink {
            pairing: pairing.into(),
            webcrm_id: webcrm_id.into(),
            chargebee_id: chargebee_id.into(),
            snapshot: json!({ "email": "ada@example.com" }).to_string(),
        };
        self.store
            .insert_link(&new, now_ms())
            .await
            .unwrap()
            .expect("link inserted")
            .id
    }

    /// A pending job due in an hour, so no worker claims it.
    async fn future_job(&self, pairing: &str, key: &str) -> i64 {
        self.store
            .enqueue(&new_job(pairing, key, now_ms() + 3_600_000), now_ms())
            .await
            .unwrap()
    }

    /// A job that is claimed by a test worker and ends as `how` says; `None` leaves it
    /// running. Other due jobs must not exist when this is called.
    async fn claimed_job(&self, pairing: &str, key: &str, how: Option<Release>) -> i64 {
        let now = now_ms();
        let id = self
            .store
            .enqueue(&new_job(pairing, key, now - 60_000), now)
            .await
            .unwrap();
        let claimed = self
            .store
            .claim("test-worker", now, 600_000, 1)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "exactly the new job was due");
        assert_eq!(claimed[0].id, id);
        if let Some(how) = how {
            self.store
                .release(id, "test-worker", &how, now)
                .await
                .unwrap();
        }
        id
    }

    async fn dead_job(&self, pairing: &str, key: &str) -> i64 {
        let how = Release::Dead {
            error: "Chargebee rejected the customer: email is invalid".into(),
        };
        self.claimed_job(pairing, key, Some(how)).await
    }

    async fn failed_job(&self, pairing: &str, key: &str) -> i64 {
        let how = Release::Retry {
            run_at: now_ms() + 3_600_000,
            error: "timeout".into(),
        };
        self.claimed_job(pairing, key, Some(how)).await
    }

    async fn conflict(&self, pairing: &str, link_id: Option<i64>) -> i64 {
        let c = NewConflict {
            pairing: pairing.into(),
            link_id,
            webcrm_id: Some("1".into()),
            chargebee_id: Some("wc-person-1".into()),
            field: "email".into(),
            webcrm_value: Some("ada@example.com".into()),
            chargebee_value: Some("ada@example.org".into()),
            webcrm_changed_at: Some(1_700_000_000_000),
            chargebee_changed_at: Some(1_700_000_001_000),
            winner: "chargebee".into(),
        };
        self.store.record_conflict(&c, now_ms()).await.unwrap()
    }

    async fn pending_action(&self, pairing: &str, subject: &str) -> i64 {
        let a = NewPendingAction {
            pairing: pairing.into(),
            kind: "unsupported_field".into(),
            subject: subject.into(),
            webcrm_id: Some("7".into()),
            chargebee_id: None,
            message: "webCRM does not accept this VAT number; fix it in Chargebee".into(),
            details: json!({ "field": "vat_number" }),
        };
        self.store.open_pending_action(&a, now_ms()).await.unwrap()
    }

    async fn event(&self, source: &str, event_type: &str, outcome: &str, at: i64) -> i64 {
        let e = NewInboundEvent {
            source: source.into(),
            event_id: Some(format!("ev_{source}_{at}_{event_type}")),
            event_type: Some(event_type.into()),
            outcome: outcome.into(),
            detail: (outcome == "rejected").then(|| "bad signature".to_string()),
            body: Some(json!({ "id": "ev", "event_type": event_type }).to_string()),
            received_at: at,
            subject: None,
        };
        let recorded = self.store.record_inbound(&e, &[], now_ms()).await.unwrap();
        assert_eq!(recorded, Recorded::Stored { jobs: vec![] });
        let newest = self
            .store
            .list_inbound_events(
                &EventFilter::default(),
                Page {
                    before: None,
                    limit: 1,
                },
            )
            .await
            .unwrap();
        newest[0].id
    }
}

fn new_job(pairing: &str, key: &str, run_at: i64) -> NewJob {
    NewJob {
        kind: "sync".into(),
        pairing: Some(pairing.into()),
        dedupe_key: key.into(),
        payload: json!({ "record": key }),
        run_at,
        max_attempts: 5,
    }
}

async fn json_of(resp: reqwest::Response) -> Value {
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    resp.json().await.unwrap()
}

/// Asserts `resp` is `status` with the error `code`, and that its message contains `needle`.
async fn assert_error(resp: reqwest::Response, status: StatusCode, code: &str, needle: &str) {
    let got = resp.status();
    let body = json_of(resp).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(needle),
        "message {message:?} should contain {needle:?}"
    );
}

async fn assert_bad(resp: reqwest::Response, param: &str) {
    assert_error(resp, StatusCode::BAD_REQUEST, "bad_request", param).await;
}

fn ids(body: &Value) -> Vec<i64> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect()
}

/// Every admin endpoint, with ids that exist or not (auth is checked first either way).
const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/status"),
    ("GET", "/links"),
    ("POST", "/links"),
    ("GET", "/links/1"),
    ("DELETE", "/links/1"),
    ("GET", "/jobs"),
    ("GET", "/jobs/1"),
    ("POST", "/jobs/1/retry"),
    ("POST", "/jobs/retry-dead?pairing=persons_customers"),
    ("DELETE", "/jobs/1"),
    ("GET", "/conflicts"),
    ("GET", "/conflicts/1"),
    ("POST", "/conflicts/1/resolve"),
    ("GET", "/pending-actions"),
    ("GET", "/pending-actions/1"),
    ("POST", "/pending-actions/1/dismiss"),
    ("GET", "/events"),
    ("GET", "/events/1"),
    ("POST", "/pairings/persons_customers/pause"),
    ("POST", "/pairings/persons_customers/resume"),
    ("POST", "/pairings/persons_customers/resync"),
    ("GET", "/pairings/persons_customers/resync/1"),
];

// --- auth ---------------------------------------------------------------------------------

async fn every_endpoint_is_401_without_a_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (method, path) in ENDPOINTS {
        let resp = app
            .send(method.parse().unwrap(), path, None, Some("{}"))
            .await;
        assert_eq!(
            resp.headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer realm=\"admin\""),
            "{method} {path}"
        );
        assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized", "bearer").await;
    }
}

async fn every_endpoint_is_401_with_a_wrong_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (method, path) in ENDPOINTS {
        let wrong = format!("{TOKEN}x");
        for token in [wrong.as_str(), "", "admin-token"] {
            let resp = app
                .send(method.parse().unwrap(), path, Some(token), Some("{}"))
                .await;
            assert!(resp.headers().contains_key("www-authenticate"));
            assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized", "").await;
        }
        // Basic auth with the token as password is not bearer auth.
        let resp = app
            .inner
            .client
            .request(method.parse().unwrap(), app.url(path))
            .basic_auth("admin", Some(TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // Nothing changed underneath.
    assert!(app.store.paused_pairings().await.unwrap().is_empty());
}

async fn second_token_of_the_list_is_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for token in [TOKEN, SECOND_TOKEN] {
        let resp = app.send(Method::GET, "/status", Some(token), None).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    // The scheme name is case-insensitive.
    let resp = app
        .inner
        .client
        .get(app.url("/links"))
        .header("authorization", format!("bearer {SECOND_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn openapi_document_describes_every_endpoint_and_the_bearer_scheme(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resp = app.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let doc = json_of(resp).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["servers"][0]["url"], "/admin/v1");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"][0]["bearer"], json!([]));
    for (method, path) in ENDPOINTS {
        let path = path.split('?').next().unwrap();
        let template = path
            .replace("/1/", "/{id}/")
            .replace("/persons_customers/", "/{name}/")
            .replace("resync/1", "resync/{job_id}");
        let template = if template.ends_with("/1") {
            format!("{}/{{id}}", template.trim_end_matches("/1"))
        } else {
            template
        };
        let op = &doc["paths"][&template][method.to_lowercase()];
        assert!(op.is_object(), "{method} {template} is documented");
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.contains_key("401"),
            "{method} {template} documents 401"
        );
    }
    assert!(doc["components"]["schemas"]["ErrorResponse"].is_object());
    assert!(doc["components"]["schemas"]["LinkDto"]["properties"]["tombstoned_at"].is_object());
}

async fn unknown_admin_path_is_a_json_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_error(
        app.get("/nothing-here").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "",
    )
    .await;
}

// --- status -------------------------------------------------------------------------------

async fn status_reports_every_pairing_with_links_queue_conflicts_and_actions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pc = "persons_customers";
    app.link(pc, "1", "wc-person-1").await;
    let gone = app.link(pc, "2", "wc-person-2").await;
    // Tombstone one link the way the sync engine will: through the database.
    tombstone(&app, gone).await;
    app.dead_job(pc, "sync:persons_customers:person:9").await;
    app.future_job(pc, "sync:persons_customers:person:10").await;
    app.conflict(pc, Some(gone)).await;
    app.pending_action(pc, "person:7").await;
    app.store
        .set_pairing_paused("opportunities_orders", true, now_ms())
        .await
        .unwrap();

    let resp = app.get("/status").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json_of(resp).await;
    let pairings = body["pairings"].as_array().unwrap();
    let names: Vec<&str> = pairings
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, wcs::config::PAIRINGS);
    let p = &pairings[0];
    assert_eq!(p["enabled"], true);
    assert_eq!(p["paused"], false);
    assert_eq!(p["links"], json!({ "live": 1, "tombstoned": 1 }));
    assert_eq!(
        p["queue"],
        json!({ "pending": 1, "running": 0, "failed": 0, "dead": 1 })
    );
    assert_eq!(p["dead_jobs"], 1);
    assert_eq!(p["open_conflicts"], 1);
    assert_eq!(p["open_pending_actions"], 1);
    assert!(p["oldest_waiting_since"].is_string());
    assert_eq!(p["lag_seconds"], 0.0, "the waiting job is not due yet");
    let oo = pairings
        .iter()
        .find(|p| p["name"] == "opportunities_orders")
        .unwrap();
    assert_eq!(oo["paused"], true);
    assert_eq!(oo["links"], json!({ "live": 0, "tombstoned": 0 }));
    let pi = pairings
        .iter()
        .find(|p| p["name"] == "products_items")
        .unwrap();
    assert_eq!(pi["enabled"], false);
    assert_eq!(body["queue"]["dead"], 1);
    assert_eq!(body["polls"]["chargebee"]["last_success_at"], Value::Null);
    assert_eq!(body["polls"]["webcrm"]["entities"], json!([]));
    assert_eq!(
        body["rate_limits"]["chargebee"],
        json!({ "budget_per_minute": 1000, "paused_until": null })
    );
    assert_eq!(body["rate_limits"]["webcrm"]["budget_per_minute"], 250);
    assert_eq!(body["drift"], Value::Null);
    assert!(body["generated_at"].as_str().unwrap().ends_with('Z'));

    // A Retry-After from Chargebee pauses this process's Chargebee calls: status shows until when.
    app.limiters
        .chargebee
        .as_ref()
        .unwrap()
        .pause_for(std::time::Duration::from_secs(60));
    let body = json_of(app.get("/status").await).await;
    let until = body["rate_limits"]["chargebee"]["paused_until"]
        .as_str()
        .unwrap();
    let until = chrono::DateTime::parse_from_rfc3339(until).unwrap();
    let ahead = until.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    assert!((50_000..=60_000).contains(&ahead), "{ahead}");
    assert_eq!(body["rate_limits"]["webcrm"]["paused_until"], Value::Null);
    assert!(body["generated_at"].as_str().unwrap().ends_with('Z'));
}

async fn tombstone(app: &TestApp, link_id: i64) {
    app.inner
        .db
        .exec(&format!(
            "update links set tombstoned_at = {} where id = {link_id}",
            now_ms()
        ))
        .await;
}

async fn status_reports_the_last_successful_poll_per_source(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rows = [
        ("chargebee", "events", 1_700_000_000_000_i64),
        ("webcrm", "Persons", 1_700_000_005_000),
        ("webcrm", "Organisations", 1_700_000_009_000),
    ];
    for (source, entity, at) in rows {
        app.inner
            .db
            .exec(&format!(
                "insert into cursors (source, entity, value, updated_at)
                 values ('{source}', '{entity}', 'cursor', {at})"
            ))
            .await;
    }
    let body = json_of(app.get("/status").await).await;
    assert_eq!(
        body["polls"]["chargebee"]["last_success_at"],
        "2023-11-14T22:13:20.000Z"
    );
    assert_eq!(
        body["polls"]["webcrm"]["last_success_at"],
        "2023-11-14T22:13:29.000Z"
    );
    assert_eq!(
        body["polls"]["webcrm"]["entities"][0],
        json!({ "entity": "Organisations", "last_success_at": "2023-11-14T22:13:29.000Z" })
    );
}

// --- links --------------------------------------------------------------------------------

async fn links_list_filters_and_pages_newest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.link("persons_customers", "1", "wc-person-1").await;
    let b = app.link("persons_customers", "2", "wc-person-2").await;
    let c = app.link("products_items", "1", "item-1").await;
    tombstone(&app, b).await;

    let body = json_of(app.get("/links").await).await;
    assert_eq!(ids(&body), vec![c, b, a]);
    assert_eq!(body["next_cursor"], Value::Null);
    let first = &body["items"][2];
    assert_eq!(first["pairing"], "persons_customers");
    assert_eq!(first["webcrm_id"], "1");
    assert_eq!(first["chargebee_id"], "wc-person-1");
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(first["last_synced_at"], Value::Null);
    assert_eq!(first["tombstoned_at"], Value::Null);
    assert!(body["items"][1]["tombstoned_at"].is_string());

    // Empty filters and cursors mean "not given".
    let unfiltered = json_of(app.get("/links?webcrm_id=&chargebee_id=%20&cursor=").await).await;
    assert_eq!(ids(&unfiltered), vec![c, b, a]);
    let by_pairing = json_of(app.get("/links?pairing=persons_customers").await).await;
    assert_eq!(ids(&by_pairing), vec![b, a]);
    let by_webcrm = json_of(app.get("/links?webcrm_id=1").await).await;
    assert_eq!(ids(&by_webcrm), vec![c, a]);
    let by_chargebee = json_of(app.get("/links?chargebee_id=wc-person-2").await).await;
    assert_eq!(ids(&by_chargebee), vec![b]);
    let live = json_of(app.get("/links?tombstoned=false").await).await;
    assert_eq!(ids(&live), vec![c, a]);
    let dead = json_of(app.get("/links?tombstoned=true").await).await;
    assert_eq!(ids(&dead), vec![b]);

    let page1 = json_of(app.get("/links?limit=2").await).await;
    assert_eq!(ids(&page1), vec![c, b]);
    let cursor = page1["next_cursor"].as_str().unwrap().to_string();
    let page2 = json_of(app.get(&format!("/links?limit=2&cursor={cursor}")).await).await;
    assert_eq!(ids(&page2), vec![a]);
    assert_eq!(page2["next_cursor"], Value::Null);
}

async fn links_list_rejects_bad_parameters_naming_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=bm90LWEtY3Vyc29y", "cursor"),
        ("cursor=%21%21", "cursor"),
        ("pairing=contacts_customers", "pairing"),
        ("tombstoned=maybe", "tombstoned"),
        ("webcrm_id=a%01", "webcrm_id"),
        ("chargebee_id=a%00b", "chargebee_id"),
        ("pairng=persons_customers", "pairng"),
    ] {
        let resp = app.get(&format!("/links?{query}")).await;
        assert_bad(resp, param).await;
    }
}

async fn link_detail_has_its_snapshot_and_recent_sync_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.link("persons_customers", "1", "wc-person-1").await;
    let other = app.link("persons_customers", "2", "wc-person-2").await;
    let now = now_ms();
    // Before the link existed: written by record id only.
    let before = NewSyncLog {
        pairing: "persons_customers".into(),
        webcrm_id: Some("1".into()),
        action: "skipped".into(),
        detail: json!({ "reason": "organisation not linked yet" }),
        ..Default::default()
    };
    app.store.append_sync_log(&before, now).await.unwrap();
    let synced = NewSyncLog {
        pairing: "persons_customers".into(),
        link_id: Some(id),
        webcrm_id: Some("1".into()),
        chargebee_id: Some("wc-person-1".into()),
        job_id: Some(77),
        action: "updated_chargebee".into(),
        detail: json!({ "fields": ["email"] }),
    };
    app.store.append_sync_log(&synced, now + 1).await.unwrap();
    let unrelated = NewSyncLog {
        pairing: "persons_customers".into(),
        link_id: Some(other),
        action: "no_change".into(),
        ..Default::default()
    };
    app.store.append_sync_log(&unrelated, now).await.unwrap();

    let resp = app.get(&format!("/links/{id}")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json_of(resp).await;
    assert_eq!(body["id"], id);
    assert_eq!(body["webcrm_id"], "1");
    assert_eq!(body["snapshot"], json!({ "email": "ada@example.com" }));
    let log = body["sync_log"].as_array().unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["updated_chargebee", "skipped"]);
    assert_eq!(log[0]["detail"], json!({ "fields": ["email"] }));
    assert_eq!(log[0]["job_id"], 77);
}

async fn link_detail_is_404_for_an_unknown_id_and_400_for_a_bad_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_error(
        app.get("/links/4242").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "4242",
    )
    .await;
    assert_bad(app.get("/links/abc").await, "id").await;
}

async fn link_create_answers_201_and_logs_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resp = app
        .post(
            "/links",
            json!({ "pairing": "organisations_business_entities", "webcrm_id": " 12 ",
                    "chargebee_id": "wc-org-12" }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let body = json_of(resp).await;
    let id = body["id"].as_i64().unwrap();
    assert_eq!(location, format!("/admin/v1/links/{id}"));
    assert_eq!(body["pairing"], "organisations_business_entities");
    assert_eq!(body["webcrm_id"], "12", "ids are trimmed");
    let detail = json_of(app.get(&format!("/links/{id}")).await).await;
    assert_eq!(detail["snapshot"], json!({}));
    assert_eq!(detail["sync_log"][0]["action"], "link_created");
}

async fn link_create_is_409_naming_the_side_already_linked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let existing = app.link("persons_customers", "1", "wc-person-1").await;
    let resp = app
        .post(
            "/links",
            json!({ "pairing": "persons_customers", "webcrm_id": "1", "chargebee_id": "x" }),
        )
        .await;
    let status = resp.status();
    let body = json_of(resp).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.starts_with("webcrm_id"), "{message}");
    assert!(message.contains("links_one_per_webcrm_record"), "{message}");
    assert!(message.contains(&format!("link {existing}")), "{message}");

    let resp = app
        .post(
            "/links",
            json!({ "pairing": "persons_customers", "webcrm_id": "2",
                    "chargebee_id": "wc-person-1" }),
        )
        .await;
    assert_error(
        resp,
        StatusCode::CONFLICT,
        "conflict",
        "links_one_per_chargebee_record",
    )
    .await;
    // The same records may be linked in another pairing.
    let resp = app
        .post(
            "/links",
            json!({ "pairing": "users_customers", "webcrm_id": "1",
                    "chargebee_id": "wc-person-1" }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

async fn link_create_rejects_bad_bodies_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (body, param) in [
        (
            r#"{"pairing": "persons_customers", "webcrm_id": "1"}"#,
            "chargebee_id",
        ),
        (
            r#"{"pairing": "nope", "webcrm_id": "1", "chargebee_id": "2"}"#,
            "pairing",
        ),
        (
            r#"{"pairing": "persons_customers", "webcrm_id": "  ", "chargebee_id": "2"}"#,
            "webcrm_id",
        ),
        (
            r#"{"pairing": "persons_customers", "webcrm_id": 1, "chargebee_id": "2"}"#,
            "webcrm_id",
        ),
        (
            r#"{"pairing": "persons_customers", "webcrm_id": "1", "chargebee_id": "a\u0000"}"#,
            "chargebee_id",
        ),
        (r#"{"pairing": "persons_customers""#, "request body"),
        ("[]", "request body"),
    ] {
        let resp = app.post_raw("/links", body).await;
        assert_bad(resp, param).await;
    }
    let resp = app
        .inner
        .client
        .post(app.url("/links"))
        .bearer_auth(TOKEN)
        .body(r#"{"pairing": "persons_customers", "webcrm_id": "1", "chargebee_id": "2"}"#)
        .send()
        .await
        .unwrap();
    assert_bad(resp, "Content-Type").await;
    let huge = format!(
        r#"{{"pairing": "persons_customers", "webcrm_id": "{}", "chargebee_id": "2"}}"#,
        "1".repeat(3 * 1024 * 1024)
    );
    // The service may answer 413 and close before the whole body is written; the client
    // then sees a broken pipe instead of the answer.
    let sent = app
        .inner
        .client
        .post(app.url("/links"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            assert_error(
                resp,
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "bytes",
            )
            .await
        }
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    let list = json_of(app.get("/links").await).await;
    assert_eq!(ids(&list), Vec::<i64>::new(), "nothing was linked");
}

async fn link_delete_unlinks_and_is_404_afterwards(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.link("persons_customers", "1", "wc-person-1").await;
    let conflict = app.conflict("persons_customers", Some(id)).await;
    let resp = app.delete(&format!("/links/{id}")).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.get(&format!("/links/{id}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "link",
    )
    .await;
    assert_error(
        app.delete(&format!("/links/{id}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "link",
    )
    .await;
    assert_bad(app.delete("/links/x").await, "id").await;
    // The conflict stays, detached; the records may be linked again.
    let c = json_of(app.get(&format!("/conflicts/{conflict}")).await).await;
    assert_eq!(c["link_id"], Value::Null);
    let again = app.link("persons_customers", "1", "wc-person-1").await;
    assert_ne!(again, id);
}

// --- jobs ---------------------------------------------------------------------------------

async fn jobs_list_filters_by_state_pairing_and_kind_with_last_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dead = app.dead_job("persons_customers", "sync:pc:1").await;
    let failed = app.failed_job("persons_customers", "sync:pc:2").await;
    let pending = app.future_job("products_items", "sync:pi:1").await;

    let all = json_of(app.get("/jobs").await).await;
    assert_eq!(ids(&all), vec![pending, failed, dead]);
    let d = json_of(app.get("/jobs?state=dead").await).await;
    assert_eq!(ids(&d), vec![dead]);
    let item = &d["items"][0];
    assert_eq!(item["state"], "dead");
    assert_eq!(item["attempts"], 1);
    assert_eq!(
        item["last_error"],
        "Chargebee rejected the customer: email is invalid"
    );
    assert!(item["run_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(item["payload"], json!({ "record": "sync:pc:1" }));
    let f = json_of(
        app.get("/jobs?state=failed&pairing=persons_customers")
            .await,
    )
    .await;
    assert_eq!(ids(&f), vec![failed]);
    let pi = json_of(app.get("/jobs?pairing=products_items&kind=sync").await).await;
    assert_eq!(ids(&pi), vec![pending]);
    let none = json_of(app.get("/jobs?kind=resync").await).await;
    assert_eq!(ids(&none), Vec::<i64>::new());
    let page = json_of(app.get("/jobs?limit=1").await).await;
    assert_eq!(ids(&page), vec![pending]);
    let next = page["next_cursor"].as_str().unwrap();
    let page2 = json_of(app.get(&format!("/jobs?limit=1&cursor={next}")).await).await;
    assert_eq!(ids(&page2), vec![failed]);

    let one = json_of(app.get(&format!("/jobs/{failed}")).await).await;
    assert_eq!(one["state"], "failed");
    assert_eq!(one["last_error"], "timeout");
}

async fn jobs_list_and_get_reject_bad_input_and_unknown_ids(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (query, param) in [
        ("state=stuck", "state"),
        ("pairing=everything", "pairing"),
        ("limit=-1", "limit"),
        ("limit=100000", "limit"),
        ("cursor=zzz", "cursor"),
        ("kind=a%0Ab", "kind"),
    ] {
        assert_bad(app.get(&format!("/jobs?{query}")).await, param).await;
    }
    assert_error(
        app.get("/jobs/99").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "99",
    )
    .await;
    assert_bad(app.get("/jobs/1.5").await, "id").await;
}

async fn job_retry_makes_a_dead_or_failed_job_pending_now_with_attempts_reset(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dead = app.dead_job("persons_customers", "sync:pc:1").await;
    let failed = app.failed_job("users_customers", "sync:uc:1").await;
    let before = now_ms();
    let resp = app.post_empty(&format!("/jobs/{dead}/retry")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json_of(resp).await;
    assert_eq!(body["merged"], false);
    assert_eq!(body["job"]["id"], dead);
    assert_eq!(body["job"]["state"], "pending");
    assert_eq!(body["job"]["attempts"], 0);
    let job = app.store.get_job(dead).await.unwrap().unwrap();
    assert!(job.run_at >= before && job.run_at <= now_ms());
    // The last error stays visible until the next attempt.
    assert!(job.last_error.is_some());

    let body = json_of(app.post_empty(&format!("/jobs/{failed}/retry")).await).await;
    assert_eq!(body["job"]["state"], "pending");
    assert_eq!(body["job"]["attempts"], 0);
    let job = app.store.get_job(failed).await.unwrap().unwrap();
    assert!(job.run_at <= now_ms(), "due now, not at its backoff");
}

async fn job_retry_folds_a_dead_job_into_the_waiting_job_of_its_record(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dead = app.dead_job("persons_customers", "sync:pc:1").await;
    let waiting = app.future_job("persons_customers", "sync:pc:1").await;
    assert_ne!(dead, waiting);
    let body = json_of(app.post_empty(&format!("/jobs/{dead}/retry")).await).await;
    assert_eq!(body["merged"], true);
    assert_eq!(body["job"]["id"], waiting);
    assert!(app.store.get_job(dead).await.unwrap().is_none());
    let job = app.store.get_job(waiting).await.unwrap().unwrap();
    assert_eq!(job.state, "pending");
    assert!(job.run_at <= now_ms());
}

async fn job_retry_is_409_unless_failed_or_dead_and_404_for_unknown(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let running = app
        .claimed_job("persons_customers", "sync:pc:1", None)
        .await;
    let pending = app.future_job("persons_customers", "sync:pc:2").await;
    assert_error(
        app.post_empty(&format!("/jobs/{running}/retry")).await,
        StatusCode::CONFLICT,
        "conflict",
        "running",
    )
    .await;
    assert_error(
        app.post_empty(&format!("/jobs/{pending}/retry")).await,
        StatusCode::CONFLICT,
        "conflict",
        "pending",
    )
    .await;
    assert_error(
        app.post_empty("/jobs/12345/retry").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "12345",
    )
    .await;
    assert_bad(app.post_empty("/jobs/one/retry").await, "id").await;
}

async fn jobs_retry_dead_retries_every_dead_job_of_one_pairing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.dead_job("persons_customers", "sync:pc:1").await;
    let b = app.dead_job("persons_customers", "sync:pc:2").await;
    // Two dead jobs for one record: one survives.
    let c = app.dead_job("persons_customers", "sync:pc:2").await;
    // A dead job whose record already has a waiting job folds into it.
    let d = app.dead_job("persons_customers", "sync:pc:3").await;
    let waiting = app.future_job("persons_customers", "sync:pc:3").await;
    let other = app.dead_job("products_items", "sync:pi:1").await;

    let resp = app
        .post_empty("/jobs/retry-dead?pairing=persons_customers")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json_of(resp).await;
    assert_eq!(
        body,
        json!({ "pairing": "persons_customers", "retried": 4 })
    );
    let pending = json_of(
        app.get("/jobs?pairing=persons_customers&state=pending")
            .await,
    )
    .await;
    let mut got = ids(&pending);
    got.sort();
    assert_eq!(got, vec![a, c, waiting]);
    for gone in [b, d] {
        assert!(app.store.get_job(gone).await.unwrap().is_none());
    }
    let w = app.store.get_job(waiting).await.unwrap().unwrap();
    assert!(w.run_at <= now_ms());
    assert_eq!(
        app.store.get_job(other).await.unwrap().unwrap().state,
        "dead"
    );
    // Nothing left: zero.
    let body = json_of(
        app.post_empty("/jobs/retry-dead?pairing=persons_customers")
            .await,
    )
    .await;
    assert_eq!(body["retried"], 0);
    assert_bad(app.post_empty("/jobs/retry-dead").await, "pairing").await;
    assert_bad(
        app.post_empty("/jobs/retry-dead?pairing=all").await,
        "pairing",
    )
    .await;
}

async fn job_discard_deletes_a_job_and_refuses_a_running_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dead = app.dead_job("persons_customers", "sync:pc:1").await;
    let running = app
        .claimed_job("persons_customers", "sync:pc:2", None)
        .await;
    let resp = app.delete(&format!("/jobs/{dead}")).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(app.store.get_job(dead).await.unwrap().is_none());
    assert_error(
        app.delete(&format!("/jobs/{dead}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "job",
    )
    .await;
    assert_error(
        app.delete(&format!("/jobs/{running}")).await,
        StatusCode::CONFLICT,
        "conflict",
        "running",
    )
    .await;
    assert!(app.store.get_job(running).await.unwrap().is_some());
    assert_bad(app.delete("/jobs/-").await, "id").await;
}

// --- conflicts ----------------------------------------------------------------------------

async fn conflicts_list_open_ones_by_default_and_resolved_on_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let link = app.link("persons_customers", "1", "wc-person-1").await;
    let open = app.conflict("persons_customers", Some(link)).await;
    let other = app.conflict("products_items", None).await;
    let done = app.conflict("persons_customers", Some(link)).await;
    assert!(app
        .store
        .resolve_conflict(done, "keep_webcrm", now_ms())
        .await
        .unwrap());

    let body = json_of(app.get("/conflicts").await).await;
    assert_eq!(ids(&body), vec![other, open]);
    let c = &body["items"][1];
    assert_eq!(c["field"], "email");
    assert_eq!(c["winner"], "chargebee");
    assert_eq!(c["webcrm_value"], "ada@example.com");
    assert_eq!(c["chargebee_changed_at"], "2023-11-14T22:13:21.000Z");
    assert_eq!(c["resolved_at"], Value::Null);
    let pc = json_of(app.get("/conflicts?pairing=persons_customers").await).await;
    assert_eq!(ids(&pc), vec![open]);
    let resolved = json_of(app.get("/conflicts?resolved=true").await).await;
    assert_eq!(ids(&resolved), vec![done]);
    assert_eq!(resolved["items"][0]["resolution"], "keep_webcrm");
    let one = json_of(app.get(&format!("/conflicts/{open}")).await).await;
    assert_eq!(one["id"], open);

    for (query, param) in [
        ("resolved=yes", "resolved"),
        ("pairing=x", "pairing"),
        ("limit=0", "limit"),
        ("cursor=x", "cursor"),
    ] {
        assert_bad(app.get(&format!("/conflicts?{query}")).await, param).await;
    }
    assert_error(
        app.get("/conflicts/777").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "conflict",
    )
    .await;
}

async fn conflict_resolve_records_the_side_and_enqueues_a_sync_of_the_link(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let link = app.link("persons_customers", "1", "wc-person-1").await;
    let id = app.conflict("persons_customers", Some(link)).await;
    let resp = app
        .post(
            &format!("/conflicts/{id}/resolve"),
            json!({ "keep": "webcrm" }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json_of(resp).await;
    assert_eq!(body["conflict"]["resolution"], "keep_webcrm");
    assert!(body["conflict"]["resolved_at"].is_string());
    let job_id = body["job_id"].as_i64().unwrap();
    let job = app.store.get_job(job_id).await.unwrap().unwrap();
    assert_eq!(job.kind, "sync");
    assert_eq!(job.pairing.as_deref(), Some("persons_customers"));
    assert_eq!(
        job.dedupe_key,
        format!("sync:persons_customers:link:{link}")
    );
    assert_eq!(
        job.payload_json(),
        json!({ "link_id": link, "resolution":
                { "conflict_id": id, "field": "email", "keep": "webcrm" } })
    );
    let open = json_of(app.get("/conflicts").await).await;
    assert_eq!(ids(&open), Vec::<i64>::new());

    // Resolved already: 409, and nothing more is queued.
    assert_error(
        app.post(
            &format!("/conflicts/{id}/resolve"),
            json!({ "keep": "chargebee" }),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
        "already resolved",
    )
    .await;
    assert_eq!(
        json_of(app.get("/jobs").await).await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn conflict_resolve_rejects_bad_bodies_unknown_ids_and_unlinked_conflicts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let link = app.link("persons_customers", "1", "wc-person-1").await;
    let id = app.conflict("persons_customers", Some(link)).await;
    let path = format!("/conflicts/{id}/resolve");
    for (body, param) in [
        (r#"{"keep": "both"}"#, "keep"),
        ("{}", "keep"),
        (r#"{"keep": "webcrm", "force": true}"#, "force"),
        ("keep=webcrm", "request body"),
    ] {
        assert_bad(app.post_raw(&path, body).await, param).await;
    }
    assert_error(
        app.post("/conflicts/999/resolve", json!({ "keep": "webcrm" }))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "999",
    )
    .await;
    assert_bad(
        app.post("/conflicts/x/resolve", json!({ "keep": "webcrm" }))
            .await,
        "id",
    )
    .await;
    let orphan = app.conflict("persons_customers", None).await;
    assert_error(
        app.post(
            &format!("/conflicts/{orphan}/resolve"),
            json!({ "keep": "webcrm" }),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
        "link",
    )
    .await;
    let still_open = json_of(app.get("/conflicts").await).await;
    assert_eq!(ids(&still_open), vec![orphan, id]);
}

// --- pending actions ----------------------------------------------------------------------

async fn pending_actions_list_open_ones_and_dismiss_closes_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.pending_action("persons_customers", "person:7").await;
    // Opening the same (pairing, kind, subject) again refreshes the open action.
    assert_eq!(app.pending_action("persons_customers", "person:7").await, a);
    let b = app.pending_action("products_items", "item:3").await;

    let body = json_of(app.get("/pending-actions").await).await;
    assert_eq!(ids(&body), vec![b, a]);
    let item = &body["items"][1];
    assert_eq!(item["kind"], "unsupported_field");
    assert_eq!(item["subject"], "person:7");
    assert_eq!(item["details"], json!({ "field": "vat_number" }));
    assert_eq!(item["closed_at"], Value::Null);
    let pi = json_of(app.get("/pending-actions?pairing=products_items").await).await;
    assert_eq!(ids(&pi), vec![b]);

    let resp = app
        .post_empty(&format!("/pending-actions/{a}/dismiss"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let dismissed = json_of(resp).await;
    assert!(dismissed["closed_at"].is_string());
    assert_eq!(dismissed["closed_reason"], "dismissed by an operator");
    let open = json_of(app.get("/pending-actions").await).await;
    assert_eq!(ids(&open), vec![b]);
    let closed = json_of(app.get("/pending-actions?closed=true").await).await;
    assert_eq!(ids(&closed), vec![a]);
    let one = json_of(app.get(&format!("/pending-actions/{a}")).await).await;
    assert_eq!(one["id"], a);
    // A new action for the same subject opens anew once the old one is closed.
    assert_ne!(app.pending_action("persons_customers", "person:7").await, a);

    assert_error(
        app.post_empty(&format!("/pending-actions/{a}/dismiss"))
            .await,
        StatusCode::CONFLICT,
        "conflict",
        "already closed",
    )
    .await;
}

async fn pending_actions_reject_bad_input_and_unknown_ids(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (query, param) in [
        ("closed=1x", "closed"),
        ("pairing=PERSONS_CUSTOMERS", "pairing"),
        ("limit=501", "limit"),
    ] {
        assert_bad(app.get(&format!("/pending-actions?{query}")).await, param).await;
    }
    assert_error(
        app.post_empty("/pending-actions/31337/dismiss").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "31337",
    )
    .await;
    assert_error(
        app.get("/pending-actions/31337").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "pending action",
    )
    .await;
    assert_bad(app.post_empty("/pending-actions/%20/dismiss").await, "id").await;
}

// --- events -------------------------------------------------------------------------------

async fn events_list_filters_by_source_type_outcome_and_time_without_bodies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = 1_764_064_800_000; // 2025-11-25T10:00:00Z
    let a = app
        .event("chargebee", "customer_changed", "accepted", t0)
        .await;
    let b = app
        .event("webcrm", "PersonUpdated", "accepted", t0 + 60_000)
        .await;
    let c = app
        .event("chargebee", "customer_changed", "rejected", t0 + 120_000)
        .await;

    let all = json_of(app.get("/events").await).await;
    assert_eq!(ids(&all), vec![c, b, a]);
    for item in all["items"].as_array().unwrap() {
        assert!(item.get("body").is_none(), "lists carry no bodies: {item}");
    }
    assert_eq!(all["items"][0]["type"], "customer_changed");
    assert_eq!(all["items"][0]["detail"], "bad signature");
    assert_eq!(all["items"][2]["received_at"], "2025-11-25T10:00:00.000Z");

    let cb = json_of(app.get("/events?source=chargebee").await).await;
    assert_eq!(ids(&cb), vec![c, a]);
    let t = json_of(app.get("/events?type=PersonUpdated").await).await;
    assert_eq!(ids(&t), vec![b]);
    let unfiltered = json_of(app.get("/events?type=&since=&until=").await).await;
    assert_eq!(ids(&unfiltered), vec![c, b, a]);
    let rejected = json_of(app.get("/events?outcome=rejected").await).await;
    assert_eq!(ids(&rejected), vec![c]);
    let since = json_of(app.get("/events?since=2025-11-25T10:01:00Z").await).await;
    assert_eq!(ids(&since), vec![c, b]);
    let until = json_of(app.get(&format!("/events?until={}", t0 + 120_000)).await).await;
    assert_eq!(ids(&until), vec![b, a]);
    let window = json_of(
        app.get("/events?since=2025-11-25T11:00:30%2B01:00&until=2025-11-25T10:01:30Z")
            .await,
    )
    .await;
    assert_eq!(ids(&window), vec![b]);
    let page = json_of(app.get("/events?limit=2").await).await;
    assert_eq!(ids(&page), vec![c, b]);
    let next = page["next_cursor"].as_str().unwrap();
    let page2 = json_of(app.get(&format!("/events?limit=2&cursor={next}")).await).await;
    assert_eq!(ids(&page2), vec![a]);

    let one = json_of(app.get(&format!("/events/{a}")).await).await;
    assert_eq!(one["source"], "chargebee");
    assert_eq!(
        one["event_id"],
        format!("ev_chargebee_{t0}_customer_changed")
    );
    let body: Value = serde_json::from_str(one["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["event_type"], "customer_changed");
}

async fn events_reject_bad_filters_and_unknown_ids(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (query, param) in [
        ("source=stripe", "source"),
        ("since=yesterday", "since"),
        ("until=2025-13-01T00:00:00Z", "until"),
        ("type=%1F", "type"),
        ("outcome=%07", "outcome"),
        ("outcome=duplicate", "outcome"),
        ("limit=0", "limit"),
        ("cursor=abc", "cursor"),
        ("headers=true", "headers"),
    ] {
        assert_bad(app.get(&format!("/events?{query}")).await, param).await;
    }
    assert_error(
        app.get("/events/5").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "event",
    )
    .await;
    assert_bad(app.get("/events/ev_1").await, "id").await;
}

// --- pairings -----------------------------------------------------------------------------

async fn pairing_pause_and_resume_show_in_status(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resp = app.post_empty("/pairings/products_items/pause").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        json_of(resp).await,
        json!({ "pairing": "products_items", "paused": true })
    );
    assert_eq!(
        app.store.paused_pairings().await.unwrap(),
        vec!["products_items".to_string()]
    );
    let status = json_of(app.get("/status").await).await;
    let pi = status["pairings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "products_items")
        .unwrap()
        .clone();
    assert_eq!(pi["paused"], true);
    let resp = app.post_empty("/pairings/products_items/resume").await;
    assert_eq!(
        json_of(resp).await,
        json!({ "pairing": "products_items", "paused": false })
    );
    assert!(app.store.paused_pairings().await.unwrap().is_empty());
    for action in ["pause", "resume", "resync"] {
        assert_error(
            app.post_empty(&format!("/pairings/contacts/{action}"))
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
            "contacts",
        )
        .await;
    }
}

async fn pairing_resync_enqueues_a_resync_job_and_reports_its_state(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resp = app
        .post(
            "/pairings/persons_customers/resync",
            json!({ "dry_run": true }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let job_id = json_of(resp).await["job_id"].as_i64().unwrap();
    let job = app.store.get_job(job_id).await.unwrap().unwrap();
    assert_eq!(job.kind, "resync");
    assert_eq!(job.dedupe_key, "resync:persons_customers");
    assert_eq!(job.payload_json()["dry_run"], true);

    let status = json_of(
        app.get(&format!("/pairings/persons_customers/resync/{job_id}"))
            .await,
    )
    .await;
    assert_eq!(status["job_id"], job_id);
    assert_eq!(status["state"], "pending");
    assert_eq!(status["dry_run"], true);
    assert_eq!(status["pairing"], "persons_customers");

    // A second request while one waits folds into it (no body or `null`: a real run).
    let resp = app
        .post_raw("/pairings/persons_customers/resync", "null")
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = app.post_empty("/pairings/persons_customers/resync").await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(json_of(resp).await["job_id"], job_id);
    let status = json_of(
        app.get(&format!("/pairings/persons_customers/resync/{job_id}"))
            .await,
    )
    .await;
    assert_eq!(status["dry_run"], false);

    // Another pairing's view of the job, an unknown job, an unknown pairing: 404.
    assert_error(
        app.get(&format!("/pairings/products_items/resync/{job_id}"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        "resync job",
    )
    .await;
    assert_error(
        app.get("/pairings/persons_customers/resync/424242").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "424242",
    )
    .await;
    assert_error(
        app.get(&format!("/pairings/people/resync/{job_id}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "people",
    )
    .await;
    assert_bad(
        app.get("/pairings/persons_customers/resync/latest").await,
        "job_id",
    )
    .await;
}

async fn pairing_resync_rejects_bad_bodies_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (body, param) in [
        (r#"{"dry_run": "yes"}"#, "dry_run"),
        (r#"{"dryrun": true}"#, "dryrun"),
        (r#"{"dry_run": tru"#, "request body"),
    ] {
        assert_bad(
            app.post_raw("/pairings/persons_customers/resync", body)
                .await,
            param,
        )
        .await;
    }
    let jobs = json_of(app.get("/jobs?kind=resync").await).await;
    assert_eq!(ids(&jobs), Vec::<i64>::new());
}

on_both_backends!(
    every_endpoint_is_401_without_a_token,
    every_endpoint_is_401_with_a_wrong_token,
    second_token_of_the_list_is_accepted,
    openapi_document_describes_every_endpoint_and_the_bearer_scheme,
    unknown_admin_path_is_a_json_404,
    status_reports_every_pairing_with_links_queue_conflicts_and_actions,
    status_reports_the_last_successful_poll_per_source,
    links_list_filters_and_pages_newest_first,
    links_list_rejects_bad_parameters_naming_them,
    link_detail_has_its_snapshot_and_recent_sync_log,
    link_detail_is_404_for_an_unknown_id_and_400_for_a_bad_one,
    link_create_answers_201_and_logs_it,
    link_create_is_409_naming_the_side_already_linked,
    link_create_rejects_bad_bodies_naming_the_field,
    link_delete_unlinks_and_is_404_afterwards,
    jobs_list_filters_by_state_pairing_and_kind_with_last_error,
    jobs_list_and_get_reject_bad_input_and_unknown_ids,
    job_retry_makes_a_dead_or_failed_job_pending_now_with_attempts_reset,
    job_retry_folds_a_dead_job_into_the_waiting_job_of_its_record,
    job_retry_is_409_unless_failed_or_dead_and_404_for_unknown,
    jobs_retry_dead_retries_every_dead_job_of_one_pairing,
    job_discard_deletes_a_job_and_refuses_a_running_one,
    conflicts_list_open_ones_by_default_and_resolved_on_request,
    conflict_resolve_records_the_side_and_enqueues_a_sync_of_the_link,
    conflict_resolve_rejects_bad_bodies_unknown_ids_and_unlinked_conflicts,
    pending_actions_list_open_ones_and_dismiss_closes_them,
    pending_actions_reject_bad_input_and_unknown_ids,
    events_list_filters_by_source_type_outcome_and_time_without_bodies,
    events_reject_bad_filters_and_unknown_ids,
    pairing_pause_and_resume_show_in_status,
    pairing_resync_enqueues_a_resync_job_and_reports_its_state,
    pairing_resync_rejects_bad_bodies_naming_the_field,
);
