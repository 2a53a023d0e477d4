//! The webCRM client against the webCRM sandbox, over real HTTP.

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use wcs::clients::outbound::ApiError;
use wcs::clients::webcrm::{
    col, Hook, HookEntity, HookEventType, LinkedDataItem, Opportunity, Order, Organisation, Person,
    Query, QuotationLineUpdate, Table, User, WebcrmClient, WebcrmClientConfig,
};
use wcs::sandbox::webcrm::{
    DateStyle, Fault, LoginFailureStyle, RunningWebcrmSandbox, SandboxEntity, WebcrmSandbox,
    WebcrmSandboxOptions,
};

struct TestApi {
    sandbox: RunningWebcrmSandbox,
    client: WebcrmClient,
}

async fn spawn_with(options: WebcrmSandboxOptions) -> TestApi {
    let sandbox = WebcrmSandbox::start(options).await.expect("sandbox starts");
    let client = WebcrmClient::new(sandbox.client_config()).expect("client builds");
    TestApi { sandbox, client }
}

async fn spawn() -> TestApi {
    spawn_with(WebcrmSandboxOptions::default()).await
}

impl TestApi {
    fn client_with(&self, change: impl FnOnce(&mut WebcrmClientConfig)) -> WebcrmClient {
        let mut config = self.sandbox.client_config();
        change(&mut config);
        WebcrmClient::new(config).expect("client builds")
    }

    async fn organisation(&self, name: &str) -> i32 {
        let org = Organisation {
            name: Some(name.to_owned()),
            ..Organisation::default()
        };
        self.client
            .create_organisation_with_marker(&org, "OrganisationExtraCustom1", &format!("m-{name}"))
            .await
            .expect("organisation created")
    }

    async fn opportunity(&self, org: i32) -> i32 {
        self.client
            .create_opportunity(&Opportunity {
                organisation_id: Some(org),
                description: Some("Deal".into()),
                order_value: Some(1200.5),
                ..Opportunity::default()
            })
            .await
            .expect("opportunity created")
    }
}

fn person(org: i32, last: &str) -> Person {
    Person {
        organisation_id: Some(org),
        first_name: Some("Ann".into()),
        last_name: Some(last.into()),
        email: Some(format!("{last}@example.com").to_lowercase()),
        ..Person::default()
    }
}

#[tokio::test]
async fn organisation_create_is_found_by_marker_and_not_duplicated_on_retry() {
    let api = spawn().await;
    let org = Organisation {
        name: Some("Acme A/S".into()),
        city: Some("Aarhus".into()),
        ..Organisation::default()
    };
    let id = api
        .client
        .create_organisation_with_marker(&org, "OrganisationExtraCustom1", "sync-42")
        .await
        .expect("created");
    // A retry of the same create finds the record instead of creating another.
    let again = api
        .client
        .create_organisation_with_marker(&org, "OrganisationExtraCustom1", "sync-42")
        .await
        .expect("found");
    assert_eq!(id, again);
    let state = api.sandbox.state();
    assert_eq!(state.write_count(SandboxEntity::Organisation, "POST"), 1);
    assert_eq!(state.count(SandboxEntity::Organisation), 1);

    let read = api.client.get_organisation(id).await.expect("read");
    assert_eq!(read.id, Some(id));
    assert_eq!(read.name.as_deref(), Some("Acme A/S"));
    assert_eq!(read.extra_custom1.as_deref(), Some("sync-42"));
    assert_eq!(read.created_by.as_deref(), Some("API Sandbox integration"));
    assert!(read.updated_at.is_some());
    // Unset dates arrive as DateTime.MinValue and are read as none.
    assert_eq!(read.vat_verified_at, None);
}

#[tokio::test]
async fn organisation_plain_create_returns_no_id_unless_the_server_sends_one() {
    let api = spawn().await;
    let org = Organisation {
        name: Some("No id".into()),
        ..Organisation::default()
    };
    assert_eq!(api.client.create_organisation(&org).await, Ok(None));
    api.sandbox
        .state()
        .configure(|o| o.organisation_post_returns_id = true);
    let id = api.client.create_organisation(&org).await.expect("created");
    assert!(id.is_some());
}

#[tokio::test]
async fn organisation_update_and_list_round_trip() {
    let api = spawn().await;
    let id = api.organisation("Before").await;
    let mut org = api.client.get_organisation(id).await.expect("read");
    org.name = Some("After".into());
    api.client
        .update_organisation(id, &org)
        .await
        .expect("updated");
    let all: Vec<Organisation> = api
        .client
        .organisations()
        .try_collect()
        .await
        .expect("list");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].name.as_deref(), Some("After"));
    assert_eq!(all[0].extra_custom1.as_deref(), Some("m-Before"));
    let page = api.client.organisations_page(1, 10).await.expect("page");
    assert_eq!(page.len(), 1);
}

#[tokio::test]
async fn person_crud_round_trips_through_the_api() {
    let api = spawn().await;
    let org = api.organisation("Org").await;
    let id = api
        .client
        .create_person(&person(org, "Hansen"))
        .await
        .expect("created");
    let mut read = api.client.get_person(id).await.expect("read");
    assert_eq!(read.name.as_deref(), Some("Ann Hansen"));
    assert_eq!(read.organisation_id, Some(org));
    read.direct_phone = Some("+45 1234".into());
    api.client.update_person(id, &read).await.expect("updated");
    let again = api.client.get_person(id).await.expect("read again");
    assert_eq!(again.direct_phone.as_deref(), Some("+45 1234"));
    assert_eq!(again.email.as_deref(), Some("hansen@example.com"));
    let of_org: Vec<Person> = api
        .client
        .organisation_persons(org)
        .try_collect()
        .await
        .expect("persons of org");
    assert_eq!(of_org.len(), 1);
    let page = api.client.persons_page(1, 5).await.expect("page");
    assert_eq!(page.len(), 1);
}

#[tokio::test]
async fn person_create_without_last_name_is_rejected_with_the_api_message() {
    let api = spawn().await;
    let org = api.organisation("Org").await;
    let mut p = person(org, "x");
    p.last_name = None;
    let err = api.client.create_person(&p).await.expect_err("rejected");
    match err {
        ApiError::Rejected {
            status,
            param,
            message,
            ..
        } => {
            assert_eq!(status, 400);
            assert_eq!(param.as_deref(), Some("PersonLastName"));
            assert!(message.contains("PersonLastName is mandatory"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // A permanent 4xx is not retried.
    assert_eq!(
        api.sandbox
            .state()
            .calls()
            .iter()
            .filter(|c| c.method == "POST" && c.route == "/Persons")
            .count(),
        1
    );
}

#[tokio::test]
async fn missing_record_is_not_found() {
    let api = spawn().await;
    let err = api.client.get_person(999).await.expect_err("missing");
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn users_are_read_listed_and_updated_without_losing_secrets() {
    let api = spawn().await;
    let state = api.sandbox.state();
    let id = state
        .ui_create(
            SandboxEntity::User,
            json!({"UserName": "Bo Ek", "UserEmail": "bo@example.com", "UserPassword": "hunter2"}),
        )
        .expect("seeded");
    let other = state
        .ui_create(SandboxEntity::User, json!({"UserName": "Old User"}))
        .expect("seeded");
    state.set_user_active(other, false);
    let id = i32::try_from(id).expect("small id");

    let user = api.client.get_user(id).await.expect("read");
    assert_eq!(user.email.as_deref(), Some("bo@example.com"));
    let printed = format!("{user:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("[redacted]"));

    let mut changed: User = user.clone();
    changed.telephone = Some("555".into());
    api.client.update_user(id, &changed).await.expect("updated");
    let stored = state
        .record(SandboxEntity::User, i64::from(id))
        .expect("stored");
    assert_eq!(stored["UserPassword"], json!("hunter2"));
    assert_eq!(stored["UserTelephone"], json!("555"));

    let all: Vec<User> = api.client.users().try_collect().await.expect("all");
    let active: Vec<User> = api
        .client
        .active_users()
        .try_collect()
        .await
        .expect("active");
    assert_eq!(all.len(), 2);
    assert_eq!(active.len(), 1);

    let created = api
        .client
        .create_user(&User {
            name: Some("New".into()),
            ..User::default()
        })
        .await
        .expect("created");
    assert_eq!(created, None);
}

#[tokio::test]
async fn opportunities_and_quotation_lines_round_trip_with_catalogue_links() {
    let api = spawn().await;
    let org = api.organisation("Buyer").await;
    let opp = api.opportunity(org).await;
    let mut read = api.client.get_opportunity(opp).await.expect("read");
    assert_eq!(read.order_value, Some(1200.5));
    read.comment = Some("note".into());
    api.client
        .update_opportunity(opp, &read)
        .await
        .expect("updated");
    assert_eq!(
        api.client
            .get_opportunity(opp)
            .await
            .expect("read")
            .comment
            .as_deref(),
        Some("note")
    );
    let all: Vec<Opportunity> = api
        .client
        .opportunities()
        .try_collect()
        .await
        .expect("list");
    assert_eq!(all.len(), 1);

    let item = api
        .client
        .create_linked_data_item(&LinkedDataItem {
            data1: Some("SKU-1".into()),
            data2: Some("Widget".into()),
            price: Some(99.0),
            ..LinkedDataItem::default()
        })
        .await
        .expect("catalogue item");
    let line = api
        .client
        .create_quotation_line(&QuotationLineUpdate {
            opportunity_id: Some(opp),
            linked_data_id: Some(item),
            quantity: Some(3.0),
            memo: Some("three widgets".into()),
            ..QuotationLineUpdate::default()
        })
        .await
        .expect("line");
    let got = api
        .client
        .get_quotation_line(line)
        .await
        .expect("read line");
    assert_eq!(got.data1.as_deref(), Some("SKU-1"));
    assert_eq!(got.price, Some(99.0));
    assert_eq!(got.organisation_id, Some(org));
    assert_eq!(
        api.sandbox.state().quotation_line_link(i64::from(line)),
        Some(i64::from(item))
    );

    let update = QuotationLineUpdate {
        opportunity_id: Some(opp),
        quantity: Some(4.0),
        memo: Some("four".into()),
        data1: got.data1.clone(),
        ..QuotationLineUpdate::default()
    };
    api.client
        .update_quotation_line(line, &update)
        .await
        .expect("updated");
    let lines: Vec<_> = api
        .client
        .opportunity_quotation_lines(opp)
        .try_collect()
        .await
        .expect("lines");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].quantity, Some(4.0));
    let everything: Vec<_> = api
        .client
        .quotation_lines()
        .try_collect()
        .await
        .expect("all");
    assert_eq!(everything.len(), 1);

    api.client
        .delete_quotation_line(line)
        .await
        .expect("deleted");
    assert!(matches!(
        api.client.get_quotation_line(line).await,
        Err(ApiError::NotFound { .. })
    ));
}

#[tokio::test]
async fn catalogue_items_and_setup_round_trip() {
    let api = spawn().await;
    let id = api
        .client
        .create_linked_data_item(&LinkedDataItem {
            data1: Some("P1".into()),
            data2: Some("Plan".into()),
            data_memo: Some("memo".into()),
            price: Some(10.0),
            ..LinkedDataItem::default()
        })
        .await
        .expect("created");
    let mut item = api.client.get_linked_data_item(id).await.expect("read");
    assert_eq!(item.entity_type.as_deref(), Some("Product"));
    item.price = Some(12.5);
    api.client
        .update_linked_data_item(id, &item)
        .await
        .expect("updated");
    let all = api.client.linked_data_items().await.expect("list");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].price, Some(12.5));
    let empty = LinkedDataItem {
        data1: Some(String::new()),
        ..LinkedDataItem::default()
    };
    assert!(matches!(
        api.client.create_linked_data_item(&empty).await,
        Err(ApiError::Rejected { status: 400, .. })
    ));
    let setup = api.client.linked_setup().await.expect("setup");
    assert_eq!(setup.field1, Some(1));
    assert_eq!(setup.field2, Some(2));
    api.client
        .delete_linked_data_item(id)
        .await
        .expect("deleted");
    assert!(api
        .client
        .linked_data_items()
        .await
        .expect("list")
        .is_empty());
}

#[tokio::test]
async fn hooks_are_listed_created_updated_and_deleted_for_every_entity() {
    let api = spawn().await;
    for entity in HookEntity::ALL {
        let hook = Hook::new(
            format!("https://sync.example/webhooks/webcrm/{entity}/tok"),
            HookEventType::Update,
        );
        let id = api
            .client
            .create_hook(entity, &hook)
            .await
            .expect("created");
        let mut read = api.client.get_hook(entity, id).await.expect("read");
        assert_eq!(read.target_url, hook.target_url);
        assert_eq!(read.event_type, Some(HookEventType::Update));
        assert!(read.created_at.is_some());
        read.is_enabled = false;
        api.client
            .update_hook(entity, id, &read)
            .await
            .expect("updated");
        let listed: Vec<Hook> = api.client.hooks(entity).try_collect().await.expect("list");
        assert_eq!(listed.len(), 1);
        assert!(!listed[0].is_enabled);
        api.client.delete_hook(entity, id).await.expect("deleted");
        let listed: Vec<Hook> = api.client.hooks(entity).try_collect().await.expect("list");
        assert!(listed.is_empty());
    }
}

#[tokio::test]
async fn paging_reads_every_page_until_a_short_page() {
    let api = spawn().await;
    let org = api.organisation("Big").await;
    for i in 0..35 {
        api.sandbox
            .state()
            .ui_create(
                SandboxEntity::Person,
                json!({"PersonLastName": format!("P{i:02}"), "PersonOrganisationId": org}),
            )
            .expect("seeded");
    }
    let client = api.client_with(|c| c.page_size = 10);
    api.sandbox.state().reset_calls();
    let all: Vec<Person> = client.persons().try_collect().await.expect("all pages");
    assert_eq!(all.len(), 35);
    let names: Vec<_> = all.iter().filter_map(|p| p.last_name.clone()).collect();
    assert_eq!(names.first().map(String::as_str), Some("P00"));
    assert_eq!(names.last().map(String::as_str), Some("P34"));
    // 10 + 10 + 10 + 5: the short page ends it without a fifth request.
    assert_eq!(api.sandbox.state().successful_calls("GET", "/Persons"), 4);

    // An exact multiple needs one more request that comes back empty.
    let client = api.client_with(|c| c.page_size = 7);
    api.sandbox.state().reset_calls();
    let all: Vec<Person> = client.persons().try_collect().await.expect("all pages");
    assert_eq!(all.len(), 35);
    assert_eq!(api.sandbox.state().successful_calls("GET", "/Persons"), 6);
}

#[tokio::test]
async fn expired_token_mid_run_logs_in_again_once() {
    let api = spawn().await;
    let org = api.organisation("Org").await;
    assert_eq!(api.client.login_count(), 1);
    api.sandbox.state().expire_access_tokens();
    api.client
        .get_organisation(org)
        .await
        .expect("read after re-login");
    assert_eq!(api.client.login_count(), 2);
    api.client
        .get_organisation(org)
        .await
        .expect("read with new token");
    assert_eq!(api.client.login_count(), 2);
    assert_eq!(api.sandbox.state().login_count(), 2);
}

#[tokio::test]
async fn concurrent_callers_share_one_login_after_a_401() {
    let api = spawn().await;
    let org = api.organisation("Org").await;
    api.sandbox.state().expire_access_tokens();
    let before = api.sandbox.state().login_count();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let c = api.client.clone();
            tokio::spawn(async move { c.get_organisation(org).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("joined").expect("read");
    }
    assert_eq!(api.sandbox.state().login_count(), before + 1);
}

#[tokio::test]
async fn concurrent_first_calls_share_one_login() {
    let api = spawn().await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let c = api.client.clone();
            tokio::spawn(async move { c.organisations_page(1, 10).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("joined").expect("listed");
    }
    assert_eq!(api.sandbox.state().login_count(), 1);
}

#[tokio::test]
async fn token_is_renewed_before_it_expires() {
    let api = spawn_with(WebcrmSandboxOptions {
        token_lifetime: Duration::from_secs(2),
        ..WebcrmSandboxOptions::default()
    })
    .await;
    api.client.organisations_page(1, 1).await.expect("first");
    tokio::time::sleep(Duration::from_millis(1700)).await;
    api.client.organisations_page(1, 1).await.expect("second");
    assert_eq!(api.client.login_count(), 2);
    // No request ever met a 401: the token was replaced before it expired.
    assert!(api.sandbox.state().calls().iter().all(|c| c.status != 401));
}

#[tokio::test]
async fn login_answered_200_with_is_error_is_a_clear_error() {
    let api = spawn().await;
    let client = api.client_with(|c| c.api_token = SecretString::from("not-the-token"));
    let err = client.get_person(1).await.expect_err("login fails");
    match &err {
        ApiError::Rejected {
            status,
            api_error_code,
            message,
            ..
        } => {
            assert_eq!(*status, 200);
            assert_eq!(api_error_code.as_deref(), Some("invalid_grant"));
            assert!(message.contains("IsError"), "{message}");
            assert!(message.contains("The API token is not valid"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("not-the-token"));
}

#[tokio::test]
async fn login_refused_with_401_is_a_rejection_not_a_loop() {
    let api = spawn_with(WebcrmSandboxOptions {
        login_failure: LoginFailureStyle::Unauthorized,
        ..WebcrmSandboxOptions::default()
    })
    .await;
    let client = api.client_with(|c| c.api_token = SecretString::from("wrong"));
    let err = client.get_person(1).await.expect_err("login fails");
    assert!(
        matches!(err, ApiError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(client.login_count(), 1);
}

#[tokio::test]
async fn rate_limited_answer_is_waited_out_then_succeeds() {
    let api = spawn().await;
    let org = api.organisation("Org").await;
    api.sandbox.state().fail_next(1, Fault::rate_limit(1));
    let started = Instant::now();
    api.client
        .get_organisation(org)
        .await
        .expect("read after waiting");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // The pause applies to every caller of this client's limiter.
    assert!(api.client.limiter().status().per_minute > 0);
}

#[tokio::test]
async fn retry_after_seconds_in_the_body_alone_is_honoured() {
    let api = spawn().await;
    let org = api.organisation("Org").await;
    api.sandbox.state().fail_next(
        1,
        Fault::RateLimit {
            retry_after_secs: 1,
            header: false,
            body: true,
        },
    );
    let started = Instant::now();
    api.client.get_organisation(org).await.expect("read");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn rate_limit_without_retries_left_is_reported_as_rate_limited() {
    let api = spawn().await;
    let client = api.client_with(|c| c.retry.max_attempts = 1);
    api.sandbox.state().fail_next(1, Fault::rate_limit(7));
    let err = client.organisations_page(1, 1).await.expect_err("429");
    assert_eq!(
        err,
        ApiError::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        }
    );
}

#[tokio::test]
async fn server_errors_are_retried() {
    let api = spawn().await;
    let org = api.organisation("Org").await;
    api.sandbox.state().fail_next(2, Fault::ServerError(503));
    api.client
        .get_organisation(org)
        .await
        .expect("third attempt works");
    let failures = api
        .sandbox
        .state()
        .calls()
        .iter()
        .filter(|c| c.status == 503)
        .count();
    assert_eq!(failures, 2);
}

#[tokio::test]
async fn persistent_server_errors_end_as_transient() {
    let api = spawn().await;
    api.sandbox.state().fail_next(10, Fault::ServerError(500));
    let err = api
        .client
        .organisations_page(1, 1)
        .await
        .expect_err("fails");
    assert!(matches!(err, ApiError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn queries_cannot_be_changed_by_a_quoted_value() {
    let api = spawn().await;
    let nasty = "O'Brien'); --";
    for name in [nasty, "O'Brien", "Other", "O'Brien'); -- x"] {
        api.sandbox
            .state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": name}),
            )
            .expect("seeded");
    }
    let query = Query::from(Table::Organisation)
        .select(["OrganisationId", "OrganisationName"])
        .filter(col("OrganisationName").eq(nasty));
    assert_eq!(
        query.to_script().expect("script"),
        "SELECT OrganisationId, OrganisationName FROM Organisation \
         WHERE OrganisationName = 'O''Brien''); --'"
    );
    let rows: Vec<_> = api
        .client
        .query_rows(&query)
        .try_collect()
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["OrganisationName"], json!(nasty));

    let sneaky = "x' OR '1'='1";
    let query = Query::from(Table::Organisation).filter(col("OrganisationName").eq(sneaky));
    let rows: Vec<_> = api
        .client
        .query_rows(&query)
        .try_collect()
        .await
        .expect("rows");
    assert!(rows.is_empty(), "{rows:?}");
}

#[tokio::test]
async fn hand_concatenated_script_would_be_injectable_in_the_sandbox() {
    // Control: the sandbox really parses SQL, so the builder's quoting is what protects us.
    let api = spawn().await;
    for name in ["a", "b"] {
        api.sandbox
            .state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": name}),
            )
            .expect("seeded");
    }
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("{}/Auth/ApiLogin", api.sandbox.base_url()))
        .form(&[("authCode", api.sandbox.api_token())])
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["AccessToken"].as_str().expect("token").to_owned();
    let script = format!(
        "SELECT * FROM Organisation WHERE OrganisationName = '{}'",
        "x' OR '1'='1"
    );
    let rows: Vec<serde_json::Value> = http
        .get(format!("{}/Queries", api.sandbox.base_url()))
        .bearer_auth(&token)
        .query(&[("script", script.as_str()), ("Page", "1"), ("Size", "100")])
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    assert_eq!(rows.len(), 2);
}

#[tokio::test]
async fn changed_since_returns_updated_records_oldest_first() {
    let api = spawn().await;
    let state = api.sandbox.state();
    let first = state
        .ui_create(
            SandboxEntity::Organisation,
            json!({"OrganisationName": "old"}),
        )
        .expect("seeded");
    state.advance_clock(Duration::from_secs(120));
    let watermark = state.now();
    state.advance_clock(Duration::from_secs(60));
    let second = state
        .ui_create(
            SandboxEntity::Organisation,
            json!({"OrganisationName": "new"}),
        )
        .expect("seeded");
    state.advance_clock(Duration::from_secs(60));
    state
        .ui_update(
            SandboxEntity::Organisation,
            first,
            json!({"OrganisationCity": "Oslo"}),
        )
        .expect("updated");
    let changed: Vec<Organisation> = api
        .client
        .changed_since(Table::Organisation, watermark)
        .try_collect()
        .await
        .expect("delta");
    let ids: Vec<_> = changed.iter().filter_map(|o| o.id).map(i64::from).collect();
    assert_eq!(ids, vec![second, first]);
    assert_eq!(changed[1].updated_by.as_deref(), Some("Sandbox UI user"));
    // Raw query columns such as RowNumber are kept, not lost or fatal.
    assert!(changed[0].extra.contains_key("RowNumber"));

    let ids: Vec<i64> = api
        .client
        .all_ids(Table::Organisation)
        .try_collect()
        .await
        .expect("ids");
    assert_eq!(ids, vec![first, second]);
}

#[tokio::test]
async fn query_with_order_and_conditions_pages_through_results() {
    let api = spawn().await;
    for i in 0..25 {
        api.sandbox
            .state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": format!("N{i:02}"), "OrganisationXInt1": i % 3}),
            )
            .expect("seeded");
    }
    let client = api.client_with(|c| c.page_size = 4);
    let query = Query::from(Table::Organisation)
        .filter(
            col("OrganisationXInt1")
                .eq(1)
                .or(col("OrganisationName").eq("N00")),
        )
        .order_by("OrganisationName", Order::Desc);
    let orgs: Vec<Organisation> = client.query_as(&query).try_collect().await.expect("rows");
    let names: Vec<_> = orgs.iter().filter_map(|o| o.name.clone()).collect();
    assert_eq!(names.len(), 9);
    assert_eq!(names.first().map(String::as_str), Some("N22"));
    assert_eq!(names.last().map(String::as_str), Some("N00"));
    let page = client.query_page(&query, 3, 4).await.expect("page 3");
    assert_eq!(page.len(), 1);
}

#[tokio::test]
async fn dates_are_read_in_every_wire_style() {
    for style in [
        DateStyle::Offset(0),
        DateStyle::Offset(120),
        DateStyle::Zulu,
        DateStyle::Naive,
        DateStyle::DotNetRoundTrip,
    ] {
        let api = spawn_with(WebcrmSandboxOptions {
            date_style: style,
            ..WebcrmSandboxOptions::default()
        })
        .await;
        let id = api
            .sandbox
            .state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "d"}),
            )
            .expect("seeded");
        let org = api
            .client
            .get_organisation(i32::try_from(id).expect("small"))
            .await
            .expect("read");
        assert_eq!(org.created_at, Some(api.sandbox.state().now()), "{style:?}");
        assert_eq!(org.last_displayed_at, None, "{style:?}");
    }
}

#[tokio::test]
async fn debug_output_of_the_client_and_token_never_shows_secrets() {
    let api = spawn().await;
    api.client.ensure_logged_in().await.expect("login");
    let printed = format!("{:?}", api.client);
    assert!(!printed.contains(&api.sandbox.api_token()));
    let cfg = api.sandbox.client_config();
    assert!(!format!("{cfg:?}").contains(cfg.api_token.expose_secret()));
}
