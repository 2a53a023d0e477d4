//! Behaviour of the webCRM sandbox itself: auth, validation, hooks, UI edits, call counts,
//! throttling emulation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::Router;
use futures::TryStreamExt;
use serde_json::{json, Value};
use wcs::clients::outbound::ApiError;
use wcs::clients::webcrm::{Hook, HookEntity, HookEventType, Person, WebcrmClient};
use wcs::sandbox::webcrm::{
    HookDelivery, HookPayloadShape, PutSemantics, RunningWebcrmSandbox, SandboxEntity,
    WebcrmSandbox, WebcrmSandboxOptions, WebcrmSandboxState,
};

type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A local endpoint that records every hook notification.
async fn hook_receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let app = Router::new()
        .route(
            "/hooks/{entity}",
            post(
                |State(r): State<Received>, Path(entity): Path<String>, body: String| async move {
                    r.lock().expect("lock").push((entity, body));
                    "ok"
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hooks"), received)
}

async fn raw_token(sandbox: &RunningWebcrmSandbox) -> String {
    let login: Value = reqwest::Client::new()
        .post(format!("{}/Auth/ApiLogin", sandbox.base_url()))
        .form(&[("authCode", sandbox.api_token())])
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    login["AccessToken"].as_str().expect("token").to_owned()
}

async fn start(options: WebcrmSandboxOptions) -> (RunningWebcrmSandbox, WebcrmClient) {
    let sandbox = WebcrmSandbox::start(options).await.expect("starts");
    let client = WebcrmClient::new(sandbox.client_config()).expect("client");
    (sandbox, client)
}

async fn subscribe_all(client: &WebcrmClient, base: &str, entity: HookEntity) {
    for event in [
        HookEventType::Create,
        HookEventType::Update,
        HookEventType::Delete,
    ] {
        client
            .create_hook(entity, &Hook::new(format!("{base}/{entity}"), event))
            .await
            .expect("hook");
    }
}

async fn wait_for(received: &Received, n: usize) -> Vec<(String, String)> {
    for _ in 0..200 {
        if received.lock().expect("lock").len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    received.lock().expect("lock").clone()
}

#[tokio::test]
async fn requests_without_a_valid_bearer_token_get_401() {
    let (sandbox, _) = start(WebcrmSandboxOptions::default()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/Persons?Page=1&Size=1", sandbox.base_url());
    let missing = http.get(&url).send().await.expect("sent");
    assert_eq!(missing.status(), 401);
    let wrong = http
        .get(&url)
        .bearer_auth("nope")
        .send()
        .await
        .expect("sent");
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn page_size_over_1000_is_refused() {
    let (sandbox, client) = start(WebcrmSandboxOptions::default()).await;
    client.ensure_logged_in().await.expect("login");
    let err = client.persons_page(1, 1000).await;
    assert!(err.is_ok());
    // The client clamps; a raw request beyond the limit is a 400.
    let http = reqwest::Client::new();
    let status = http
        .get(format!("{}/Persons?Page=1&Size=1001", sandbox.base_url()))
        .bearer_auth(raw_token(&sandbox).await)
        .send()
        .await
        .expect("sent")
        .status();
    assert_eq!(status, 400);
}

#[tokio::test]
async fn writes_maintain_audit_fields_and_ignore_client_supplied_ones() {
    let (sandbox, client) = start(WebcrmSandboxOptions::default()).await;
    let state = sandbox.state();
    let org = state
        .ui_create(
            SandboxEntity::Organisation,
            json!({"OrganisationName": "o"}),
        )
        .expect("org");
    let person: Person = serde_json::from_value(json!({
        "PersonLastName": "Lund",
        "PersonOrganisationId": org,
        "PersonCreatedBy": "forged",
        "PersonUpdatedAt": "1999-01-01T00:00:00Z",
        "NotAField": 1
    }))
    .expect("dto");
    let id = client.create_person(&person).await.expect("created");
    let stored = state
        .record(SandboxEntity::Person, i64::from(id))
        .expect("stored");
    assert_eq!(stored["PersonCreatedBy"], "API Sandbox integration");
    assert_ne!(stored["PersonUpdatedAt"], "1999-01-01T00:00:00Z");
    assert!(stored.get("NotAField").is_none());
    assert_eq!(state.write_count(SandboxEntity::Person, "POST"), 1);

    // UI edits bypass the API: no call is recorded, the stamp names the UI user.
    state
        .ui_update(
            SandboxEntity::Person,
            i64::from(id),
            json!({"PersonTitle": "CEO"}),
        )
        .expect("ui edit");
    let stored = state
        .record(SandboxEntity::Person, i64::from(id))
        .expect("stored");
    assert_eq!(stored["PersonUpdatedBy"], "Sandbox UI user");
    assert_eq!(state.write_count(SandboxEntity::Person, "PUT"), 0);
    assert_eq!(state.total_writes(), 1);
}

/// A new organisation and a person in it made through the UI: (organisation id, person
/// id, the person id as the client takes it).
fn person_in_org(state: &WebcrmSandboxState, person: Value) -> (i64, i64, i32) {
    let org = state
        .ui_create(
            SandboxEntity::Organisation,
            json!({"OrganisationName": "o"}),
        )
        .expect("org");
    let mut fields = person;
    fields["PersonOrganisationId"] = json!(org);
    let id = state
        .ui_create(SandboxEntity::Person, fields)
        .expect("person");
    (org, id, i32::try_from(id).expect("small"))
}

#[tokio::test]
async fn put_replaces_the_record_unless_merge_is_configured() {
    let (sandbox, client) = start(WebcrmSandboxOptions::default()).await;
    let state = sandbox.state();
    let (org, id, id32) =
        person_in_org(state, json!({"PersonLastName": "A", "PersonEmail": "a@x"}));
    let partial = Person {
        last_name: Some("B".into()),
        ..Person::default()
    };
    client.update_person(id32, &partial).await.expect("put");
    let p = client.get_person(id32).await.expect("read");
    assert_eq!(p.email, None);
    // The organisation cannot be changed (or cleared) through the API.
    assert_eq!(p.organisation_id.map(i64::from), Some(org));

    state.configure(|o| o.put_semantics = PutSemantics::Merge);
    state
        .ui_update(SandboxEntity::Person, id, json!({"PersonEmail": "a@x"}))
        .expect("ui");
    client.update_person(id32, &partial).await.expect("put");
    assert_eq!(
        client
            .get_person(id32)
            .await
            .expect("read")
            .email
            .as_deref(),
        Some("a@x")
    );
}

#[tokio::test]
async fn a_put_over_a_ui_edit_made_since_its_read_is_reported() {
    let (sandbox, client) = start(WebcrmSandboxOptions::default()).await;
    let state = sandbox.state();
    let (_, id, id32) = person_in_org(
        state,
        json!({"PersonFirstName": "Ann", "PersonLastName": "A"}),
    );

    // Read, then a UI edit of two fields (one twice), then the PUT of the record as read.
    let mut read = client.get_person(id32).await.expect("read");
    state
        .ui_update(SandboxEntity::Person, id, json!({"PersonDirectPhone": "1"}))
        .expect("ui");
    state
        .ui_update(
            SandboxEntity::Person,
            id,
            json!({"PersonDirectPhone": "2", "PersonFirstName": "Anna"}),
        )
        .expect("ui");
    read.last_name = Some("B".into());
    client.update_person(id32, &read).await.expect("put");
    let puts = state.puts_after_reads();
    assert_eq!(puts.len(), 1);
    assert_eq!((puts[0].entity, puts[0].id), (SandboxEntity::Person, id));
    assert!(puts[0].gap.is_some());
    assert_eq!(
        puts[0].overwritten,
        vec![
            ("PersonDirectPhone".to_owned(), json!("2"), Value::Null),
            ("PersonFirstName".to_owned(), json!("Anna"), json!("Ann")),
        ]
    );

    // An edit the read saw, or one the PUT keeps, is not lost.
    state
        .ui_update(SandboxEntity::Person, id, json!({"PersonDirectPhone": "3"}))
        .expect("ui");
    let mut read = client.get_person(id32).await.expect("read");
    state
        .ui_update(SandboxEntity::Person, id, json!({"PersonLastName": "C"}))
        .expect("ui");
    read.last_name = Some("C".into());
    client.update_person(id32, &read).await.expect("put");
    let puts = state.puts_after_reads();
    assert_eq!(puts.len(), 2);
    assert!(puts[1].overwritten.is_empty(), "{:?}", puts[1]);
    assert_eq!(
        state.record(SandboxEntity::Person, id).expect("person")["PersonDirectPhone"],
        json!("3")
    );
}

#[tokio::test]
async fn too_long_values_and_wrong_types_are_rejected() {
    let (sandbox, client) = start(WebcrmSandboxOptions::default()).await;
    let _ = sandbox;
    let long = wcs::clients::webcrm::Organisation {
        city: Some("x".repeat(51)),
        ..Default::default()
    };
    let err = client
        .create_organisation(&long)
        .await
        .expect_err("too long");
    assert!(
        matches!(&err, ApiError::Rejected { status: 400, param: Some(p), .. } if p == "OrganisationCity"),
        "{err:?}"
    );
}

#[tokio::test]
async fn hooks_fire_on_create_update_and_delete_with_the_record_id() {
    let (base, received) = hook_receiver().await;
    let (sandbox, client) = start(WebcrmSandboxOptions::default()).await;
    subscribe_all(&client, &base, HookEntity::Organisations).await;
    subscribe_all(&client, &base, HookEntity::QuotationLines).await;
    let state = sandbox.state();
    let org = state
        .ui_create(
            SandboxEntity::Organisation,
            json!({"OrganisationName": "h"}),
        )
        .expect("org");
    let mut read = client
        .get_organisation(i32::try_from(org).expect("small"))
        .await
        .expect("read");
    read.city = Some("Bergen".into());
    client
        .update_organisation(i32::try_from(org).expect("small"), &read)
        .await
        .expect("update");
    state
        .ui_delete(SandboxEntity::Organisation, org)
        .expect("delete");
    let got = wait_for(&received, 3).await;
    assert_eq!(got.len(), 3, "{got:?}");
    let events: Vec<(String, String, i64)> = got
        .iter()
        .map(|(entity, body)| {
            let v: Value = serde_json::from_str(body).expect("json");
            (
                entity.clone(),
                v["EventType"].as_str().unwrap_or("").to_owned(),
                v["Id"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        events,
        vec![
            ("Organisations".into(), "Create".into(), org),
            ("Organisations".into(), "Update".into(), org),
            ("Organisations".into(), "Delete".into(), org),
        ]
    );
    let deliveries = state.hook_deliveries();
    assert!(deliveries.iter().all(|d| d.status == Some(200)));
}

#[tokio::test]
async fn disabled_hooks_and_other_event_types_do_not_fire() {
    let (base, received) = hook_receiver().await;
    let (sandbox, client) = start(WebcrmSandboxOptions::default()).await;
    let mut hook = Hook::new(format!("{base}/Persons"), HookEventType::Create);
    hook.is_enabled = false;
    client
        .create_hook(HookEntity::Persons, &hook)
        .await
        .expect("hook");
    client
        .create_hook(
            HookEntity::Persons,
            &Hook::new(format!("{base}/Persons"), HookEventType::Delete),
        )
        .await
        .expect("hook");
    let state = sandbox.state();
    state
        .ui_create(SandboxEntity::Person, json!({"PersonLastName": "Q"}))
        .expect("person");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(received.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn hook_payload_shapes_vary_and_manual_delivery_can_duplicate_and_reorder() {
    let (base, received) = hook_receiver().await;
    let (sandbox, client) = start(WebcrmSandboxOptions {
        hook_delivery: HookDelivery::Manual,
        hook_payload: HookPayloadShape::Rotate,
        hook_duplicates: true,
        hook_reorder: true,
        ..WebcrmSandboxOptions::default()
    })
    .await;
    subscribe_all(&client, &base, HookEntity::Persons).await;
    let state = sandbox.state();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            state
                .ui_create(
                    SandboxEntity::Person,
                    json!({"PersonLastName": format!("L{i}")}),
                )
                .expect("person"),
        );
    }
    assert_eq!(state.pending_hook_count(), 10);
    assert!(received.lock().expect("lock").is_empty());
    let delivered = state.deliver_pending_hooks().await;
    assert_eq!(delivered.len(), 10);
    let got = received.lock().expect("lock").clone();
    assert_eq!(got.len(), 10);
    // Every record was announced twice.
    for id in &ids {
        assert_eq!(delivered.iter().filter(|d| d.record_id == *id).count(), 2);
    }
    // The five shapes: envelope, DTO, bare id, id list, empty.
    let bodies: Vec<&str> = delivered.iter().map(|d| d.body.as_str()).collect();
    assert!(bodies.iter().any(|b| b.is_empty()));
    assert!(bodies.iter().any(|b| b.starts_with('[')));
    assert!(bodies.iter().any(|b| b.contains("\"PersonLastName\"")));
    assert!(bodies.iter().any(|b| b.contains("\"EventType\"")));
    assert!(bodies.iter().any(|b| b.parse::<i64>().is_ok()));
}

#[tokio::test]
async fn emulated_rate_limit_answers_429_with_retry_after() {
    let (sandbox, _) = start(WebcrmSandboxOptions {
        rate_limit_per_minute: Some(3),
        ..WebcrmSandboxOptions::default()
    })
    .await;
    let http = reqwest::Client::new();
    let url = format!("{}/Persons", sandbox.base_url());
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let resp = http.get(&url).send().await.expect("sent");
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            assert!(resp.headers().contains_key("retry-after"));
            let body: Value = resp.json().await.expect("json");
            assert_eq!(body["Type"], "TooManyRequestsException");
            assert!(body["RetryAfterSeconds"].as_u64().unwrap_or(0) >= 1);
        }
    }
    assert_eq!(statuses, vec![401, 401, 401, 429]);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_not_served() {
    let (sandbox, client) = start(WebcrmSandboxOptions::default()).await;
    client.ensure_logged_in().await.expect("login");
    let err = client
        .get_organisation(1)
        .await
        .expect_err("no such organisation");
    assert!(matches!(err, ApiError::NotFound { .. }));
    let http = reqwest::Client::new();
    let token = raw_token(&sandbox).await;
    let resp = http
        .delete(format!("{}/Persons/1", sandbox.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 405);
    let resp = http
        .get(format!("{}/Deliveries", sandbox.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 404);
    assert!(resp
        .headers()
        .contains_key(wcs::sandbox::webcrm::UNROUTED_HEADER));
}

#[tokio::test]
async fn sandbox_shuts_down_cleanly() {
    let (sandbox, client) = start(WebcrmSandboxOptions::default()).await;
    let base = sandbox.base_url();
    client.ensure_logged_in().await.expect("login");
    let persons: Vec<Person> = client.persons().try_collect().await.expect("list");
    assert!(persons.is_empty());
    sandbox.shutdown().await;
    assert!(reqwest::get(format!("{base}/Persons")).await.is_err());
}

#[tokio::test]
async fn percentage_faults_and_latency_apply_until_cleared() {
    let (sandbox, client) = start(WebcrmSandboxOptions::default()).await;
    client.ensure_logged_in().await.expect("login");
    let state = sandbox.state();
    state.fail_percent(100, wcs::sandbox::webcrm::Fault::ServerError(502));
    let err = client.persons_page(1, 1).await.expect_err("always failing");
    assert!(matches!(err, ApiError::Transient(_)), "{err:?}");
    state.clear_faults();
    client.persons_page(1, 1).await.expect("works again");

    state.fail_next(
        1,
        wcs::sandbox::webcrm::Fault::Latency(Duration::from_millis(250)),
    );
    let started = std::time::Instant::now();
    client.persons_page(1, 1).await.expect("slow but fine");
    assert!(started.elapsed() >= Duration::from_millis(250));

    // An injected 401 makes the client log in again and succeed.
    let logins = state.login_count();
    state.fail_next(1, wcs::sandbox::webcrm::Fault::Unauthorized);
    client.persons_page(1, 1).await.expect("after re-login");
    assert_eq!(state.login_count(), logins + 1);
}
