//! `register-webhooks` against both sandboxes over real HTTP: what a first run creates, that
//! a second run writes nothing, what it leaves alone, what it repairs, and that what it
//! registers really reaches a running service.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{json, Value};
use wcs::clients::webcrm::{Hook, HookEntity, HookEventType, WebcrmClient};
use wcs::config::Config;
use wcs::intake::chargebee::SUBSCRIBED_EVENT_TYPES;
use wcs::intake::webcrm::{hook_path, HOOK_ENTITIES};
use wcs::register::{self, Action, RegisterError};
use wcs::sandbox::chargebee::{ChargebeeSandbox, RunningChargebeeSandbox, SandboxOptions};
use wcs::sandbox::webcrm::{
    RunningWebcrmSandbox, SandboxEntity, WebcrmSandbox, WebcrmSandboxOptions,
};

use common::app::{test_config_with, TestApp, CB_PASSWORD, CB_USER, WEBCRM_SECRET};
use common::Backend;

const PUBLIC: &str = "http://127.0.0.1:9999";
const BIN: &str = env!("CARGO_BIN_EXE_webcrm-chargebee-sync");

struct Sandboxes {
    cb: RunningChargebeeSandbox,
    wc: RunningWebcrmSandbox,
}

impl Sandboxes {
    async fn start() -> Sandboxes {
        let cb = ChargebeeSandbox::start(SandboxOptions::default())
            .await
            .expect("chargebee sandbox");
        let wc = WebcrmSandbox::start(WebcrmSandboxOptions::default())
            .await
            .expect("webcrm sandbox");
        Sandboxes { cb, wc }
    }

    /// The settings pointing at both sandboxes (no `PUBLIC_URL`).
    fn env(&self) -> Vec<(String, String)> {
        [
            ("CHARGEBEE_BASE_URL", self.cb.base_url().to_string()),
            ("CHARGEBEE_API_KEY", self.cb.api_key().to_string()),
            ("CHARGEBEE_RATE_LIMIT_PER_MINUTE", "60000".to_string()),
            ("WEBCRM_BASE_URL", self.wc.base_url()),
            ("WEBCRM_API_TOKEN", self.wc.api_token()),
            ("WEBCRM_RATE_LIMIT_PER_MINUTE", "60000".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn config_with(&self, extra: &[(&str, &str)]) -> Config {
        let env = self.env();
        let mut all: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(extra);
        test_config_with("sqlite://unused.db", &all)
    }

    fn config(&self, public_url: &str) -> Config {
        self.config_with(&[("PUBLIC_URL", public_url)])
    }

    fn webcrm_client(&self) -> WebcrmClient {
        WebcrmClient::new(self.wc.client_config()).expect("client")
    }

    fn chargebee_writes(&self) -> u64 {
        self.cb.handle().write_counts().values().sum()
    }

    fn endpoints(&self) -> Vec<Value> {
        self.cb.handle().records("webhook_endpoint")
    }

    /// Runs plan + apply and returns the plan that was applied.
    async fn register(&self, config: &Config) -> register::Plan {
        let plan = register::plan(config).await.expect("plan");
        register::apply(config, &plan).await.expect("apply");
        plan
    }
}

fn hook_url(public: &str, secret: &str, entity: &str) -> String {
    format!("{public}{}", hook_path(&SecretString::from(secret), entity))
}

async fn wait_until<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn first_run_creates_one_endpoint_and_a_hook_per_entity_and_event_type() {
    let sb = Sandboxes::start().await;
    let config = sb.config(PUBLIC);

    let plan = register::plan(&config).await.unwrap();
    let counts = plan.counts();
    assert_eq!((counts.create, counts.update, counts.unchanged), (16, 0, 0));
    let done = register::apply(&config, &plan).await.unwrap();
    assert_eq!(done.create, 16);

    assert_eq!(sb.cb.handle().write_count("webhookEndpoint.create"), 1);
    let endpoints = sb.endpoints();
    assert_eq!(endpoints.len(), 1);
    let e = &endpoints[0];
    assert_eq!(e["url"], format!("{PUBLIC}/webhooks/chargebee"));
    assert_eq!(e["api_version"], "v2");
    assert_eq!(e["disabled"], false);
    let events: BTreeSet<&str> = e["enabled_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(events, SUBSCRIBED_EVENT_TYPES.iter().copied().collect());
    assert!(e["name"]
        .as_str()
        .unwrap()
        .starts_with(register::ENDPOINT_NAME_PREFIX));
    assert!(e["name"].as_str().unwrap().len() <= 50);

    let hooks = sb.wc.state().hooks();
    assert_eq!(hooks.len(), HOOK_ENTITIES.len() * 3);
    assert_eq!(hooks.len(), 15);
    let mut slots = BTreeSet::new();
    for (entity, h) in &hooks {
        assert!(h.is_enabled);
        assert_eq!(h.filter, ["All"]);
        assert_eq!(
            h.target_url,
            hook_url(PUBLIC, WEBCRM_SECRET, entity.collection())
        );
        slots.insert((entity.collection(), h.event_type.unwrap().as_str()));
    }
    assert_eq!(slots.len(), 15, "one hook per entity and event type");
}

#[tokio::test]
async fn second_run_reports_everything_unchanged_and_writes_nothing() {
    let sb = Sandboxes::start().await;
    let config = sb.config(PUBLIC);
    sb.register(&config).await;
    let cb_writes = sb.chargebee_writes();
    sb.wc.state().reset_calls();

    let mut out = Vec::new();
    register::run(&config, false, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 17, "{text}");
    assert!(
        lines[..16].iter().all(|l| l.starts_with("unchanged ")),
        "{text}"
    );
    assert_eq!(lines[16], "nothing to do: 16 unchanged");
    assert_eq!(sb.chargebee_writes(), cb_writes, "no Chargebee write");
    assert_eq!(sb.wc.state().total_writes(), 0, "no webCRM write");
}

#[tokio::test]
async fn dry_run_prints_the_plan_with_masked_tokens_and_writes_nothing() {
    let sb = Sandboxes::start().await;
    let config = sb.config(PUBLIC);
    let mut out = Vec::new();
    register::run(&config, true, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with(&format!(
        "create    chargebee endpoint {PUBLIC}/webhooks/chargebee"
    )));
    assert_eq!(text.matches("create    webcrm ").count(), 15, "{text}");
    assert!(text.ends_with("dry run: nothing written (16 to create, 0 to update, 0 unchanged)\n"));
    // Tokens are masked: none of the real ones appears.
    for entity in HOOK_ENTITIES {
        let url = hook_url(PUBLIC, WEBCRM_SECRET, entity.collection);
        let token = url.rsplit('/').next().unwrap();
        assert!(
            !text.contains(token),
            "token of {} leaked",
            entity.collection
        );
    }
    assert!(!text.contains(CB_PASSWORD));
    assert_eq!(sb.chargebee_writes(), 0);
    assert_eq!(sb.wc.state().total_writes(), 0);
    assert!(sb.endpoints().is_empty());
    assert!(sb.wc.state().hooks().is_empty());
}

#[tokio::test]
async fn plan_serialises_without_secrets() {
    let sb = Sandboxes::start().await;
    let config = sb.config(PUBLIC);
    let plan = register::plan(&config).await.unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["public_url"], PUBLIC);
    assert_eq!(json["chargebee"]["action"], "create");
    assert_eq!(json["webcrm"].as_array().unwrap().len(), 15);
    assert_eq!(json["webcrm"][0]["event_type"], "Create");
    let text = json.to_string();
    assert!(!text.contains(CB_PASSWORD));
    let token = hook_url(PUBLIC, WEBCRM_SECRET, "Persons");
    assert!(!text.contains(token.rsplit('/').next().unwrap()));
}

#[tokio::test]
async fn endpoints_and_hooks_of_other_integrations_are_left_untouched() {
    let sb = Sandboxes::start().await;
    let foreign_endpoint = sb.cb.handle().add_webhook_endpoint(
        "https://other.example/chargebee/secret-path",
        Some("them"),
        Some("their-password"),
    );
    // Same host, another path: not ours either.
    let same_host = sb.cb.handle().add_webhook_endpoint(
        &format!("{PUBLIC}/their/webhooks/chargebee"),
        None,
        None,
    );
    let client = sb.webcrm_client();
    let foreign_hook = client
        .create_hook(
            HookEntity::Persons,
            &Hook::new(
                "https://other.example/webcrm/persons",
                HookEventType::Update,
            ),
        )
        .await
        .unwrap();
    let endpoints_before = sb.endpoints();
    let hooks_before = sb.wc.state().hooks();

    let config = sb.config(PUBLIC);
    let plan = sb.register(&config).await;
    let lines = plan.lines().join("\n");
    assert!(
        lines.contains(&format!(
            "skip      chargebee endpoint {foreign_endpoint} at https://other.example: points elsewhere"
        )),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("skip      chargebee endpoint {same_host} ")),
        "{lines}"
    );
    assert!(
        lines.contains(&format!(
            "skip      webcrm Persons hook {foreign_hook} at https://other.example"
        )),
        "{lines}"
    );
    assert!(
        !lines.contains("secret-path"),
        "foreign paths are not printed"
    );

    // Ours were added beside them; theirs are exactly as before.
    let endpoints = sb.endpoints();
    assert_eq!(endpoints.len(), 3);
    for before in &endpoints_before {
        assert!(endpoints.contains(before), "{before} changed");
    }
    let hooks = sb.wc.state().hooks();
    assert_eq!(hooks.len(), 16);
    let theirs = hooks.iter().find(|(_, h)| h.id == foreign_hook).unwrap();
    let theirs_before = hooks_before
        .iter()
        .find(|(_, h)| h.id == foreign_hook)
        .unwrap();
    assert_eq!(
        serde_json::to_value(&theirs.1).unwrap(),
        serde_json::to_value(&theirs_before.1).unwrap()
    );
    assert_eq!(sb.cb.handle().write_count("webhookEndpoint.update"), 0);
}

#[tokio::test]
async fn disabled_and_drifted_hooks_of_ours_are_updated_in_place() {
    let sb = Sandboxes::start().await;
    let config = sb.config(PUBLIC);
    sb.register(&config).await;
    let client = sb.webcrm_client();
    let hooks = sb.wc.state().hooks();
    let find = |entity: HookEntity, event: HookEventType| {
        hooks
            .iter()
            .find(|(e, h)| *e == entity && h.event_type == Some(event))
            .map(|(_, h)| h.clone())
            .unwrap()
    };
    // Someone disabled one, narrowed another's filter, and a third still has an old token.
    let mut disabled = find(HookEntity::Persons, HookEventType::Update);
    disabled.is_enabled = false;
    client
        .update_hook(HookEntity::Persons, disabled.id, &disabled)
        .await
        .unwrap();
    let mut narrowed = find(HookEntity::Organisations, HookEventType::Delete);
    narrowed.filter = vec!["Owner".into()];
    client
        .update_hook(HookEntity::Organisations, narrowed.id, &narrowed)
        .await
        .unwrap();
    let mut old_token = find(HookEntity::Users, HookEventType::Create);
    old_token.target_url = format!("{PUBLIC}/webhooks/webcrm/Users/an-old-token");
    client
        .update_hook(HookEntity::Users, old_token.id, &old_token)
        .await
        .unwrap();
    sb.wc.state().reset_calls();

    let plan = register::plan(&config).await.unwrap();
    let updates: Vec<_> = plan
        .webcrm
        .iter()
        .filter(|h| h.action == Action::Update)
        .map(|h| (h.entity, h.event_type, h.hook_id, h.changes.clone()))
        .collect();
    assert_eq!(
        updates,
        vec![
            (
                "Organisations",
                HookEventType::Delete,
                Some(narrowed.id),
                vec!["filter"]
            ),
            (
                "Persons",
                HookEventType::Update,
                Some(disabled.id),
                vec!["enabled"]
            ),
            (
                "Users",
                HookEventType::Create,
                Some(old_token.id),
                vec!["target_url"]
            ),
        ]
    );
    assert_eq!(plan.chargebee.action, Action::Unchanged);
    register::apply(&config, &plan).await.unwrap();
    assert_eq!(sb.wc.state().total_writes(), 3, "three PUTs, no create");
    assert_eq!(sb.wc.state().hooks().len(), 15);

    let again = register::plan(&config).await.unwrap();
    assert!(again.is_noop(), "{:?}", again.lines());
}

#[tokio::test]
async fn rotating_the_webcrm_secret_repoints_our_hooks_without_adding_any() {
    let sb = Sandboxes::start().await;
    sb.register(&sb.config(PUBLIC)).await;
    let rotated = "a-brand-new-webcrm-secret-0123";
    let config = sb.config_with(&[("PUBLIC_URL", PUBLIC), ("WEBCRM_WEBHOOK_SECRET", rotated)]);
    let plan = sb.register(&config).await;
    let c = plan.counts();
    assert_eq!((c.create, c.update), (0, 16), "{:?}", plan.lines());
    // The endpoint name's fingerprint is keyed with the same secret: credentials re-sent.
    assert_eq!(plan.chargebee.changes, ["credentials"]);
    let hooks = sb.wc.state().hooks();
    assert_eq!(hooks.len(), 15);
    for (entity, h) in hooks {
        assert_eq!(h.target_url, hook_url(PUBLIC, rotated, entity.collection()));
    }
    assert!(register::plan(&config).await.unwrap().is_noop());
}

#[tokio::test]
async fn drifted_chargebee_endpoint_and_new_credentials_are_updated() {
    let sb = Sandboxes::start().await;
    let config = sb.config(PUBLIC);
    sb.register(&config).await;
    let id = sb.endpoints()[0]["id"].as_str().unwrap().to_string();
    sb.cb
        .handle()
        .dashboard_call(
            "webhookEndpoint.update",
            Some(&id),
            &[
                ("disabled", "true"),
                ("enabled_events[0]", "customer_created"),
            ],
        )
        .unwrap();

    let plan = register::plan(&config).await.unwrap();
    assert_eq!(plan.chargebee.action, Action::Update);
    assert_eq!(plan.chargebee.endpoint_id.as_deref(), Some(id.as_str()));
    assert_eq!(plan.chargebee.changes, ["disabled", "enabled_events"]);
    assert!(plan.chargebee.sends_credentials);
    register::apply(&config, &plan).await.unwrap();
    let e = &sb.endpoints()[0];
    assert_eq!(e["disabled"], false);
    assert_eq!(
        e["enabled_events"].as_array().unwrap().len(),
        SUBSCRIBED_EVENT_TYPES.len()
    );
    assert!(register::plan(&config).await.unwrap().is_noop());

    // A new password changes the fingerprint in the name, so the next run sends it.
    let config = sb.config_with(&[
        ("PUBLIC_URL", PUBLIC),
        ("CHARGEBEE_WEBHOOK_PASSWORD", "a-new-webhook-password"),
    ]);
    let plan = register::plan(&config).await.unwrap();
    assert_eq!(plan.chargebee.action, Action::Update);
    assert_eq!(plan.chargebee.changes, ["credentials"]);
    assert_eq!(plan.counts().update, 1);
    register::apply(&config, &plan).await.unwrap();
    assert_eq!(sb.endpoints().len(), 1);
    assert!(register::plan(&config).await.unwrap().is_noop());
}

#[tokio::test]
async fn a_site_with_five_other_endpoints_fails_with_a_clear_message() {
    let sb = Sandboxes::start().await;
    for i in 0..5 {
        sb.cb
            .handle()
            .add_webhook_endpoint(&format!("https://other{i}.example/hook"), None, None);
    }
    let err = register::plan(&sb.config(PUBLIC)).await.unwrap_err();
    assert!(matches!(err, RegisterError::EndpointLimit { count: 5, .. }));
    let text = err.to_string();
    assert!(text.contains("at most 5 webhook endpoints"), "{text}");
    assert!(
        text.contains(&format!("{PUBLIC}/webhooks/chargebee")),
        "{text}"
    );
    assert_eq!(sb.chargebee_writes(), 0);
    assert_eq!(sb.wc.state().total_writes(), 0);
}

#[tokio::test]
async fn missing_or_plain_http_public_url_fails_naming_public_url() {
    let sb = Sandboxes::start().await;
    let without = sb.config_with(&[]);
    let err = register::plan(&without).await.unwrap_err();
    assert!(matches!(err, RegisterError::PublicUrl(_)));
    assert!(
        err.to_string().starts_with("PUBLIC_URL is not set"),
        "{err}"
    );

    let plain = sb.config("http://sync.example.com");
    let err = register::plan(&plain).await.unwrap_err().to_string();
    assert!(
        err.starts_with("PUBLIC_URL") && err.contains("https"),
        "{err}"
    );

    // apply checks it too, and refuses a plan made for another PUBLIC_URL.
    let plan = register::plan(&sb.config(PUBLIC)).await.unwrap();
    let err = register::apply(&without, &plan).await.unwrap_err();
    assert!(err.to_string().starts_with("PUBLIC_URL"), "{err}");
    let err = register::apply(&sb.config("https://elsewhere.example"), &plan)
        .await
        .unwrap_err();
    assert!(matches!(err, RegisterError::StalePlan { .. }), "{err}");
    assert_eq!(sb.chargebee_writes(), 0);
    assert_eq!(sb.wc.state().total_writes(), 0);
}

#[tokio::test]
async fn registered_chargebee_endpoint_delivers_to_the_service_with_its_credentials() {
    let sb = Sandboxes::start().await;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let public = app.url("");
    sb.register(&sb.config(&public)).await;

    let customer = sb
        .cb
        .handle()
        .dashboard_create_customer(&[("first_name", "Ada"), ("email", "ada@example.com")])
        .unwrap();
    assert!(
        sb.cb
            .handle()
            .wait_for_deliveries(1, Duration::from_secs(10))
            .await,
        "no delivery"
    );
    let deliveries = sb.cb.handle().deliveries();
    let d = &deliveries[0];
    assert_eq!(d.event_type, "customer_created");
    assert_eq!(d.url, format!("{public}/webhooks/chargebee"));
    assert_eq!(
        d.status,
        Some(200),
        "the service accepted the Basic credentials"
    );
    let events = app.events().await;
    assert_eq!(
        events,
        vec![(
            "chargebee".to_string(),
            "accepted".to_string(),
            Some(d.event_id.clone())
        )]
    );
    let jobs = app.jobs().await;
    assert!(
        jobs.iter()
            .any(|j| j.payload_json()["id"] == customer["id"]),
        "a job for the customer"
    );
}

#[tokio::test]
async fn registered_webcrm_hook_delivers_to_the_service_at_the_derived_path() {
    let sb = Sandboxes::start().await;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let public = app.url("");
    sb.register(&sb.config(&public)).await;

    let id = sb
        .wc
        .state()
        .ui_create(
            SandboxEntity::Organisation,
            json!({"OrganisationName": "Acme"}),
        )
        .unwrap();
    let state = sb.wc.state().clone();
    wait_until("the hook delivery", || !state.hook_deliveries().is_empty()).await;
    let deliveries = sb.wc.state().hook_deliveries();
    assert_eq!(
        deliveries.len(),
        1,
        "only the Create hook fires: {deliveries:?}"
    );
    let d = &deliveries[0];
    assert_eq!(d.entity, HookEntity::Organisations);
    assert_eq!(d.event_type, HookEventType::Create);
    assert_eq!(d.record_id, id);
    assert_eq!(
        d.target_url,
        hook_url(&public, WEBCRM_SECRET, "Organisations")
    );
    assert_eq!(d.status, Some(200), "{d:?}");
    let events = app.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].0.as_str(), events[0].1.as_str()),
        ("webcrm", "accepted")
    );
}

fn cli(sb: &Sandboxes, public_url: Option<&str>) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("CHARGEBEE_SITE", "acme-test")
        .env("CHARGEBEE_WEBHOOK_USERNAME", CB_USER)
        .env("CHARGEBEE_WEBHOOK_PASSWORD", CB_PASSWORD)
        .env("WEBCRM_WEBHOOK_SECRET", WEBCRM_SECRET)
        .env("ADMIN_TOKEN", common::app::ADMIN)
        .envs(sb.env())
        .arg("register-webhooks");
    if let Some(u) = public_url {
        c.env("PUBLIC_URL", u);
    }
    c
}

#[tokio::test]
async fn cli_dry_run_prints_the_plan_and_writes_nothing() {
    let sb = Sandboxes::start().await;
    let out = cli(&sb, Some(PUBLIC))
        .arg("--dry-run")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 17, "{stdout}");
    assert!(stdout.contains(
        "create    webcrm Persons Delete hook http://127.0.0.1:9999/webhooks/webcrm/Persons/"
    ));
    assert!(stdout.ends_with("dry run: nothing written (16 to create, 0 to update, 0 unchanged)\n"));
    assert_eq!(sb.chargebee_writes(), 0);
    assert_eq!(sb.wc.state().total_writes(), 0);
}

#[tokio::test]
async fn cli_first_run_creates_and_second_run_reports_unchanged() {
    let sb = Sandboxes::start().await;
    let first = cli(&sb, Some(PUBLIC)).output().await.unwrap();
    let first_out = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{first_out}");
    assert!(
        first_out.ends_with("done: 16 created, 0 updated, 0 unchanged\n"),
        "{first_out}"
    );
    let cb_writes = sb.chargebee_writes();
    sb.wc.state().reset_calls();

    let second = cli(&sb, Some(PUBLIC)).output().await.unwrap();
    let second_out = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{second_out}");
    assert_eq!(second_out.matches("unchanged ").count(), 16, "{second_out}");
    assert!(second_out.ends_with("nothing to do: 16 unchanged\n"));
    assert_eq!(sb.chargebee_writes(), cb_writes);
    assert_eq!(sb.wc.state().total_writes(), 0);
    println!("first run:\n{first_out}\nsecond run:\n{second_out}");
}

#[tokio::test]
async fn cli_without_public_url_exits_non_zero_with_one_line() {
    let sb = Sandboxes::start().await;
    let out = cli(&sb, None).output().await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("webcrm-chargebee-sync: PUBLIC_URL is not set"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn admin_endpoint_plans_applies_and_refuses_bad_input() {
    let sb = Sandboxes::start().await;
    let db = common::TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let mut config = sb.config(PUBLIC);
    config.database_url = db.url.clone();
    let app = TestApp::spawn_with_config(db, store, config).await;
    let url = app.url("/admin/v1/register-webhooks");
    let admin = common::app::ADMIN;

    let dry: Value = app
        .client
        .post(format!("{url}?dry_run=true"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dry["create"], 16, "{dry}");
    assert_eq!(sb.chargebee_writes(), 0, "a dry run writes nothing");

    let applied = app
        .client
        .post(&url)
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(applied.status(), 200);
    assert_eq!(sb.endpoints().len(), 1);
    let again: Value = app
        .client
        .post(&url)
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (again["create"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(16))
    );

    let no_token = app.client.post(&url).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    let bad = app
        .client
        .post(format!("{url}?dry_run=maybe"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("dry_run"),
        "{body}"
    );
}

#[tokio::test]
async fn admin_endpoint_without_public_url_is_400_naming_it() {
    let sb = Sandboxes::start().await;
    let db = common::TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    let mut config = sb.config_with(&[]);
    config.database_url = db.url.clone();
    let app = TestApp::spawn_with_config(db, store, config).await;
    let resp = app
        .client
        .post(app.url("/admin/v1/register-webhooks"))
        .bearer_auth(common::app::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("PUBLIC_URL"),
        "{body}"
    );
}
