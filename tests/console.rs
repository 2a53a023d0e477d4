//! The operator console over plain HTTP, on both backends: sessions, CSRF, the security
//! headers and secrets, and an operator's round through the pages against the real sync
//! (sandboxes, webhooks and jobs via `World`). The browser half is `console_browser.rs`.

mod common;

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::json;
use wcs::sandbox::webcrm::SandboxEntity;
use wcs::store::admin::{NewConflict, NewLink, NewPendingAction};
use wcs::store::{now_ms, NewJob, Release};

use common::app::{TestApp, ADMIN, CB_PASSWORD, WEBCRM_SECRET};
use common::world::World;
use common::Backend;

/// Every secret the test configuration holds; none may appear in a console page.
const SECRETS: &[&str] = &[
    ADMIN,
    CB_PASSWORD,
    WEBCRM_SECRET,
    "test_cb_key_0123456789",
    "00000000-0000-4000-8000-000000000001",
];

/// A browser-like client that does not follow redirects, so tests see them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// A signed-in operator: the session cookie and the page's CSRF token.
struct Operator {
    base: String,
    cookie: String,
    csrf: String,
    http: reqwest::Client,
}

impl Operator {
    async fn sign_in(base: &str) -> Operator {
        let http = client();
        let resp = http
            .post(format!("{base}/console/sign-in"))
            .form(&[("token", ADMIN)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(resp.headers()[LOCATION], "/console");
        let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_string();
        let cookie = set.split(';').next().unwrap().to_string();
        let mut op = Operator {
            base: base.to_string(),
            cookie,
            csrf: String::new(),
            http,
        };
        let page = op.page("/console").await;
        op.csrf = attr_after(&page, "name=\"csrf\" value=\"").expect("csrf field");
        op
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap()
    }

    /// A page that must answer 200.
    async fn page(&self, path: &str) -> String {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        resp.text().await.unwrap()
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    /// A POST with this session's CSRF token.
    async fn act(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }
}

/// The value of the first attribute after `prefix` (which ends with its opening quote).
fn attr_after(html: &str, prefix: &str) -> Option<String> {
    let start = html.find(prefix)? + prefix.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_string())
}

async fn dead_job(store: &wcs::store::DynStore, pairing: &str, key: &str) -> i64 {
    let now = now_ms();
    let job = NewJob {
        kind: "sync".into(),
        pairing: Some(pairing.into()),
        dedupe_key: key.into(),
        payload: json!({ "record": key }),
        run_at: now - 60_000,
        max_attempts: 5,
    };
    let id = store.enqueue(&job, now).await.unwrap();
    let claimed = store.claim("test-worker", now, 600_000, 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let how = Release::Dead {
        error: "Chargebee rejected the customer: email is invalid".into(),
    };
    store.release(id, "test-worker", &how, now).await.unwrap();
    id
}

async fn conflict(store: &wcs::store::DynStore, link_id: i64) -> i64 {
    let c = NewConflict {
        pairing: "persons_customers".into(),
        link_id: Some(link_id),
        webcrm_id: Some("1".into()),
        chargebee_id: Some("wc-person-1".into()),
        field: "first_name".into(),
        webcrm_value: Some("\"Ada\"".into()),
        chargebee_value: Some("\"Augusta\"".into()),
        webcrm_changed_at: Some(1_700_000_000_000),
        chargebee_changed_at: Some(1_700_000_001_000),
        winner: "chargebee".into(),
    };
    store.record_conflict(&c, now_ms()).await.unwrap()
}

/// A service with a link, an open conflict on it and a dead job.
async fn seeded(backend: Backend) -> (TestApp, i64, i64, i64) {
    let app = TestApp::spawn(backend).await;
    let link = app
        .store
        .insert_link(
            &NewLink {
                pairing: "persons_customers".into(),
                webcrm_id: "1".into(),
                chargebee_id: "wc-person-1".into(),
                snapshot: json!({"webcrm": {"email": "ada@example.com"}, "chargebee": {"email": "ada@example.com"}}).to_string(),
            },
            now_ms(),
        )
        .await
        .unwrap()
        .unwrap()
        .id;
    let c = conflict(&app.store, link).await;
    let job = dead_job(
        &app.store,
        "persons_customers",
        "sync:persons_customers:person:1",
    )
    .await;
    (app, link, c, job)
}

async fn no_cookie_redirects_to_sign_in(backend: Backend) {
    let (app, link, _, job) = seeded(backend).await;
    let http = client();
    for path in [
        "/console".to_string(),
        "/console/status.json".into(),
        "/console/records?q=ada%40example.com".into(),
        format!("/console/links/{link}"),
        "/console/conflicts".into(),
        "/console/jobs".into(),
        "/console/pairings/persons_customers".into(),
    ] {
        let resp = http.get(app.url(&path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "GET {path}");
        // The page asked for comes back after signing in.
        let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
        assert_eq!(
            resp.headers()[LOCATION],
            format!("/console/sign-in?next={next}").as_str(),
            "GET {path}"
        );
    }
    let resp = http
        .post(app.url(&format!("/console/jobs/{job}/retry")))
        .form(&[("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.store.get_job(job).await.unwrap().unwrap().state, "dead");
}

async fn forged_and_expired_cookies_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let http = client();
    let good = wcs::console::session::issue_now(ADMIN);
    let expired = wcs::console::session::issue(ADMIN, 1_000);
    let other_token = wcs::console::session::issue_now("not-a-configured-token-0123");
    let mut tampered = good.clone();
    tampered.replace_range(3..5, "99");
    let mut bad_sig = good.clone();
    bad_sig.pop();
    bad_sig.push(if good.ends_with('0') { '1' } else { '0' });
    for (what, value) in [
        ("expired", expired.as_str()),
        ("signed with an unknown token", other_token.as_str()),
        ("expiry changed", tampered.as_str()),
        ("signature changed", bad_sig.as_str()),
        ("garbage", "v1.x.y.z.w"),
    ] {
        let resp = http
            .get(app.url("/console"))
            .header(COOKIE, format!("wcs_console={value}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{what}");
    }
    let resp = http
        .get(app.url("/console"))
        .header(COOKIE, format!("wcs_console={good}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn sign_in_returns_to_the_page_asked_for_and_only_to_this_console(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let http = client();
    let form = http
        .get(app.url("/console/sign-in?next=%2Fconsole%2Fconflicts"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        form.contains(r#"name="next" value="/console/conflicts""#),
        "{form}"
    );
    for (next, expected) in [
        ("/console/conflicts", "/console/conflicts"),
        (
            "/console/records?q=ada%40example.com",
            "/console/records?q=ada%40example.com",
        ),
        ("https://evil.example/console", "/console"),
        ("//evil.example/console", "/console"),
        ("/console//evil.example", "/console"),
        ("/elsewhere", "/console"),
        ("/console/sign-in", "/console"),
    ] {
        let resp = http
            .post(app.url("/console/sign-in"))
            .form(&[("token", ADMIN), ("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{next}");
        assert_eq!(resp.headers()[LOCATION], expected, "{next}");
    }
}

async fn sign_in_sets_a_strict_cookie_and_a_wrong_token_waits(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let http = client();
    let started = Instant::now();
    let resp = http
        .post(app.url("/console/sign-in"))
        .form(&[("token", "admin-token-wrong")])
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get(SET_COOKIE).is_none());
    let body = resp.text().await.unwrap();
    assert!(body.contains("not one of the admin tokens"), "{body}");
    assert!(body.contains("<form method=\"post\" action=\"/console/sign-in\""));

    let resp = http
        .post(app.url("/console/sign-in"))
        .form(&[("token", ADMIN)])
        .send()
        .await
        .unwrap();
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_string();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    assert!(!set.contains(ADMIN));
    // Behind a TLS-terminating proxy the cookie is Secure.
    let resp = http
        .post(app.url("/console/sign-in"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", ADMIN)])
        .send()
        .await
        .unwrap();
    assert!(resp.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("; Secure"));

    // Signing out ends the cookie.
    let op = Operator::sign_in(&app.url("")).await;
    let resp = op.act("/console/sign-out", &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(resp.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
}

async fn the_cookie_is_secure_when_the_public_url_is_https(backend: Backend) {
    let db = common::TestDb::new(backend).await;
    let store = db.store().await;
    let config =
        common::app::test_config_with(&db.url, &[("PUBLIC_URL", "https://sync.example.com")]);
    let app = TestApp::spawn_with_config(db, store, config).await;
    let resp = client()
        .post(app.url("/console/sign-in"))
        .form(&[("token", ADMIN)])
        .send()
        .await
        .unwrap();
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(set.contains("; Secure"), "{set}");
}

async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing(backend: Backend) {
    let (app, _, conflict_id, job) = seeded(backend).await;
    let op = Operator::sign_in(&app.url("")).await;
    let other = Operator::sign_in(&app.url("")).await;
    let attempts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/console/jobs/{job}/retry"), vec![]),
        (format!("/console/jobs/{job}/discard"), vec![]),
        (
            "/console/jobs/retry-dead".into(),
            vec![("pairing", "persons_customers")],
        ),
        (
            format!("/console/conflicts/{conflict_id}/resolve"),
            vec![("keep", "webcrm")],
        ),
        ("/console/pairings/persons_customers/pause".into(), vec![]),
        (
            "/console/pairings/persons_customers/resync".into(),
            vec![("dry_run", "true")],
        ),
        ("/console/sign-out".into(), vec![]),
    ];
    for (path, fields) in &attempts {
        let resp = op.post(path, fields).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "no token: {path}");
        // Another session's token does not fit this session.
        let mut with_other = vec![("csrf", other.csrf.as_str())];
        with_other.extend_from_slice(fields);
        let resp = op.post(path, &with_other).await;
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "foreign token: {path}"
        );
        assert!(resp.headers().get(CONTENT_SECURITY_POLICY).is_some());
    }
    assert_eq!(app.store.get_job(job).await.unwrap().unwrap().state, "dead");
    let c = app.store.get_conflict(conflict_id).await.unwrap().unwrap();
    assert!(c.resolved_at.is_none());
    assert!(app.store.paused_pairings().await.unwrap().is_empty());
    assert_eq!(
        app.jobs().await.len(),
        1,
        "no resync or sync job was queued"
    );
}

async fn every_page_has_the_csp_and_no_secret(backend: Backend) {
    let (app, link, _, _) = seeded(backend).await;
    let op = Operator::sign_in(&app.url("")).await;
    let pages = [
        "/console/sign-in".to_string(),
        "/console".into(),
        "/console/status.json".into(),
        "/console/records".into(),
        "/console/records?q=ada%40example.com".into(),
        "/console/records?q=nobody".into(),
        format!("/console/links/{link}"),
        "/console/conflicts".into(),
        "/console/pending-actions".into(),
        "/console/jobs".into(),
        "/console/jobs?state=dead&pairing=persons_customers".into(),
        "/console/pairings/persons_customers".into(),
        "/console/assets/console.css".into(),
        "/console/assets/console.js".into(),
        "/console/no-such-page".into(),
    ];
    for path in &pages {
        let resp = op.get(path).await;
        let csp = resp
            .headers()
            .get(CONTENT_SECURITY_POLICY)
            .unwrap_or_else(|| panic!("no CSP on {path}"))
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(csp, wcs::console::CONTENT_SECURITY_POLICY, "{path}");
        assert!(!csp.contains("unsafe"), "{path}");
        let is_page = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
        let body = resp.text().await.unwrap();
        for secret in SECRETS {
            assert!(!body.contains(secret), "{path} shows a secret");
        }
        if is_page {
            assert!(!body.contains("<script>"), "inline script on {path}");
            assert!(!body.contains("style="), "inline style on {path}");
            assert!(!body.contains("<style"), "inline style on {path}");
        }
    }
    // The sign-in form echoes nothing of a wrong token.
    let resp = client()
        .post(app.url("/console/sign-in"))
        .form(&[("token", "admin-token-0123456789abcdeX")])
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get(CONTENT_SECURITY_POLICY).is_some());
    let body = resp.text().await.unwrap();
    assert!(!body.contains("admin-token-0123456789abcde"));
}

/// Dismiss, pause/resume, retry all dead and discard, each through the admin API's code.
async fn the_other_actions_change_what_they_say(backend: Backend) {
    let (app, _, _, job) = seeded(backend).await;
    let action = app
        .store
        .open_pending_action(
            &NewPendingAction {
                pairing: "persons_customers".into(),
                kind: "unsupported_field".into(),
                subject: "person:1".into(),
                webcrm_id: Some("1".into()),
                chargebee_id: None,
                message: "Move the person to Other Corp in webCRM by hand".into(),
                details: json!({ "field": "company" }),
            },
            now_ms(),
        )
        .await
        .unwrap();
    let op = Operator::sign_in(&app.url("")).await;
    assert!(op
        .page("/console/pending-actions")
        .await
        .contains("Move the person to Other Corp"));
    let resp = op
        .act(&format!("/console/pending-actions/{action}/dismiss"), &[])
        .await;
    assert_eq!(
        resp.headers()[LOCATION],
        "/console/pending-actions?ok=dismissed"
    );
    let a = app.store.get_pending_action(action).await.unwrap().unwrap();
    assert!(a.closed_at.is_some());

    op.act("/console/pairings/persons_customers/pause", &[])
        .await;
    assert_eq!(
        app.store.paused_pairings().await.unwrap(),
        vec!["persons_customers"]
    );
    assert!(op
        .page("/console/pairings/persons_customers")
        .await
        .contains("<strong>paused</strong>"));
    op.act("/console/pairings/persons_customers/resume", &[])
        .await;
    assert!(app.store.paused_pairings().await.unwrap().is_empty());

    let resp = op
        .act(
            "/console/jobs/retry-dead",
            &[("pairing", "persons_customers")],
        )
        .await;
    assert_eq!(
        resp.headers()[LOCATION],
        "/console/jobs?pairing=persons_customers&ok=retried_dead"
    );
    assert_eq!(
        app.store.get_job(job).await.unwrap().unwrap().state,
        "pending"
    );
    op.act(&format!("/console/jobs/{job}/discard"), &[]).await;
    assert!(app.store.get_job(job).await.unwrap().is_none());
    // An unknown job: the admin API's 404 message, on a page.
    let resp = op.act(&format!("/console/jobs/{job}/retry"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains(&format!("no job with id {job}")));

    // A dry run, then a real run: each queued as the admin API queues it.
    op.act(
        "/console/pairings/persons_customers/resync",
        &[("dry_run", "true")],
    )
    .await;
    let jobs = app.jobs().await;
    let resync = jobs.iter().find(|j| j.kind == "resync").unwrap();
    assert_eq!(resync.payload_json()["dry_run"], true);
    assert!(op
        .page("/console/pairings/persons_customers")
        .await
        .contains("data-autoreload"));
}

/// An operator's round against the real sync: overview, a record found by e-mail with its
/// sync log, a conflict resolved and a dead job retried, each through the admin API's code.
async fn an_operator_signs_in_finds_a_record_resolves_a_conflict_and_retries_a_job(
    backend: Backend,
) {
    let w = World::start(backend).await;
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "Acme A/S"}),
            )
            .unwrap();
    let person =
        w.wc.state()
            .ui_create(
                SandboxEntity::Person,
                json!({"PersonOrganisationId": org, "PersonFirstName": "Ada",
                       "PersonLastName": "Lovelace", "PersonEmail": "Ada@Example.com"}),
            )
            .unwrap();
    w.settle().await;
    let customer = format!("wc-person-{person}");
    w.wc.state()
        .ui_update(
            SandboxEntity::Person,
            person,
            json!({"PersonFirstName": "FromWebcrm"}),
        )
        .unwrap();
    w.cb.handle().advance_clock(Duration::from_secs(60));
    w.cb.handle()
        .dashboard_edit(
            "customer",
            &customer,
            json!({"first_name": "FromChargebee"}),
        )
        .unwrap();
    w.settle().await;
    let job = dead_job(
        &w.app.store,
        "persons_customers",
        "sync:persons_customers:person:999",
    )
    .await;

    let op = Operator::sign_in(&w.app.url("")).await;
    let overview = op.page("/console").await;
    for name in [
        "persons_customers",
        "products_items",
        "Last poll",
        "Rate limits",
    ] {
        assert!(overview.contains(name), "overview lacks {name}");
    }
    let cells: serde_json::Value = op.get("/console/status.json").await.json().await.unwrap();
    assert_eq!(cells["persons_customers.dead"], "1");
    assert_eq!(cells["persons_customers.conflicts"], "1");

    // By e-mail, whatever its case: one link, so straight to it.
    let resp = op.get("/console/records?q=ADA%40example.com").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = resp.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(to.starts_with("/console/links/"), "{to}");
    let page = op.page(&to).await;
    assert!(page.contains("Sync log"));
    assert!(page.contains(&customer));
    assert!(
        page.contains("ada@example.com"),
        "the snapshot shows the e-mail"
    );
    assert!(
        page.contains("class=\"action\""),
        "sync-log entries are listed"
    );
    // By either id too.
    for q in [person.to_string(), customer.clone()] {
        let resp = op.get(&format!("/console/records?q={q}")).await;
        assert_eq!(resp.headers()[LOCATION].to_str().unwrap(), to);
    }

    let conflicts = op.page("/console/conflicts").await;
    assert!(conflicts.contains("FromWebcrm") && conflicts.contains("FromChargebee"));
    let ids: Vec<(i64,)> = w.app.db.rows("select id from conflicts").await;
    let resp = op
        .act(
            &format!("/console/conflicts/{}/resolve", ids[0].0),
            &[("keep", "webcrm")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/console/conflicts?ok=resolved");
    let c = w.app.store.get_conflict(ids[0].0).await.unwrap().unwrap();
    assert_eq!(c.resolution.as_deref(), Some("keep_webcrm"));
    // Resolving again fails with the admin API's message, shown on a page.
    let again = op
        .act(
            &format!("/console/conflicts/{}/resolve", ids[0].0),
            &[("keep", "chargebee")],
        )
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(again.text().await.unwrap().contains("already resolved"));

    let jobs = op.page("/console/jobs?state=dead").await;
    assert!(jobs.contains("email is invalid"));
    let resp = op.act(&format!("/console/jobs/{job}/retry"), &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        w.app.store.get_job(job).await.unwrap().unwrap().state,
        "pending"
    );

    // The merge writes the kept value to both sides.
    w.app.store.discard_job(job).await.unwrap();
    w.settle().await;

    // A dry run shows its plan; then the real run.
    op.act(
        "/console/pairings/persons_customers/resync",
        &[("dry_run", "true")],
    )
    .await;
    w.settle().await;
    let page = op.page("/console/pairings/persons_customers").await;
    assert!(page.contains("Last dry-run plan"), "{page}");
    assert!(
        page.contains("persons_customers: 0 links, 0 creates"),
        "{page}"
    );
    op.act(
        "/console/pairings/persons_customers/resync",
        &[("dry_run", "false")],
    )
    .await;
    w.settle().await;
    let page = op.page("/console/pairings/persons_customers").await;
    assert!(page.contains("Last resync run"), "{page}");
    assert_eq!(
        w.cb_record("customer", &customer)["first_name"],
        "FromWebcrm"
    );
    w.shutdown().await;
}

on_both_backends!(
    no_cookie_redirects_to_sign_in,
    forged_and_expired_cookies_are_refused,
    sign_in_sets_a_strict_cookie_and_a_wrong_token_waits,
    sign_in_returns_to_the_page_asked_for_and_only_to_this_console,
    the_cookie_is_secure_when_the_public_url_is_https,
    the_other_actions_change_what_they_say,
    a_post_without_the_csrf_token_is_refused_and_changes_nothing,
    every_page_has_the_csp_and_no_secret,
    an_operator_signs_in_finds_a_record_resolves_a_conflict_and_retries_a_job,
);
