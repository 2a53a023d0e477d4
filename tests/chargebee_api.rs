//! The Chargebee client against the Chargebee sandbox, over real HTTP.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use futures::TryStreamExt;
use secrecy::SecretString;
use serde_json::{json, Value};

use wcs::clients::chargebee::*;
use wcs::clients::outbound::ApiError;
use wcs::sandbox::chargebee::{
    ChargebeeSandbox, Fault, RunningChargebeeSandbox, SandboxOptions, WebhookFaults,
};

async fn start() -> (RunningChargebeeSandbox, ChargebeeClient) {
    let sandbox = ChargebeeSandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    let client = ChargebeeClient::new(sandbox.client_config()).expect("client builds");
    (sandbox, client)
}

fn person(id: &str, email: &str) -> CustomerCreate {
    CustomerCreate {
        id: Some(id.into()),
        first_name: Some("Ann".into()),
        last_name: Some("Smith".into()),
        email: Some(email.into()),
        company: Some("Initech".into()),
        meta_data: Some(json!({"webcrm_person_id": 7})),
        ..Default::default()
    }
}

/// A raw form POST, for requests the typed client deliberately cannot make.
async fn raw_post(
    sandbox: &RunningChargebeeSandbox,
    path: &str,
    form: &[(&str, &str)],
) -> ApiError {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", sandbox.base_url()))
        .basic_auth(sandbox.api_key(), Some(""))
        .form(form)
        .send()
        .await
        .expect("request is sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("body");
    assert!(!status.is_success(), "expected an error, got {status}");
    classify_error(status, &headers, &body)
}

async fn catalogue(client: &ChargebeeClient) -> (ItemFamily, Item, ItemPrice) {
    let family = client
        .create_item_family(
            &ItemFamilyCreate {
                id: "webcrm-products".into(),
                name: "webCRM products".into(),
                ..Default::default()
            },
            "fam-1",
        )
        .await
        .expect("family");
    let item = client
        .create_item(
            &ItemCreate {
                id: "widget".into(),
                name: "Widget".into(),
                item_type: "charge".into(),
                item_family_id: family.id.clone(),
                description: Some("A widget".into()),
                metadata: Some(json!({"webcrm_linked_data_id": 3})),
                ..Default::default()
            },
            "item-widget",
        )
        .await
        .expect("item");
    let price = client
        .create_item_price(
            &ItemPriceCreate {
                id: "widget-EUR".into(),
                name: "Widget EUR".into(),
                item_id: item.id.clone(),
                currency_code: Some("EUR".into()),
                pricing_model: Some("flat_fee".into()),
                price: Some(12_50),
                ..Default::default()
            },
            "price-widget-EUR",
        )
        .await
        .expect("price");
    (family, item, price)
}

#[tokio::test]
async fn customer_create_keeps_our_id_and_stamps_versions() {
    let (sb, client) = start().await;
    let c = client
        .create_customer(
            &person("wc-person-1", "ann@example.com"),
            "wc-person-1-create",
        )
        .await
        .unwrap();
    assert_eq!(c.id, "wc-person-1");
    assert_eq!(c.email.as_deref(), Some("ann@example.com"));
    assert_eq!(c.meta_data, Some(json!({"webcrm_person_id": 7})));
    let version = c.resource_version.expect("resource_version");
    assert_eq!(c.updated_at, Some(version / 1000));
    assert!(c.extra.contains_key("object"), "unknown fields are kept");
    let again = client.retrieve_customer("wc-person-1").await.unwrap();
    assert_eq!(again, c);
    assert_eq!(sb.handle().write_count("customer.create"), 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn customer_retrieve_unknown_id_is_not_found() {
    let (sb, client) = start().await;
    let err = client.retrieve_customer("nope").await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    sb.shutdown().await;
}

#[tokio::test]
async fn customer_update_changes_fields_and_bumps_resource_version() {
    let (sb, client) = start().await;
    let c = client
        .create_customer(&person("wc-person-2", "b@example.com"), "k2")
        .await
        .unwrap();
    let updated = client
        .update_customer(
            "wc-person-2",
            &CustomerUpdate {
                first_name: Some("Bea".into()),
                clear: vec!["company".into()],
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(updated.first_name.as_deref(), Some("Bea"));
    assert_eq!(updated.company, None, "a deliberate blank clears the field");
    assert_eq!(
        updated.last_name.as_deref(),
        Some("Smith"),
        "omitted fields stay"
    );
    assert!(updated.resource_version > c.resource_version);
    sb.shutdown().await;
}

#[tokio::test]
async fn customer_update_refuses_billing_address() {
    let (sb, client) = start().await;
    client
        .create_customer(&person("wc-person-3", "c@example.com"), "k3")
        .await
        .unwrap();
    let err = raw_post(
        &sb,
        "/customers/wc-person-3",
        &[("billing_address[line1]", "Main St 1")],
    )
    .await;
    assert!(
        matches!(err, ApiError::Rejected { status: 400, .. }),
        "{err:?}"
    );
    assert_eq!(err.param(), Some("billing_address[line1]"));
    assert_eq!(sb.handle().write_count("customer.update"), 0);
    sb.shutdown().await;
}

#[tokio::test]
async fn customer_update_billing_info_sets_address_and_vat_number() {
    let (sb, client) = start().await;
    client
        .create_customer(&person("wc-person-4", "d@example.com"), "k4")
        .await
        .unwrap();
    let c = client
        .update_customer_billing_info(
            "wc-person-4",
            &BillingInfoUpdate {
                billing_address: Some(AddressInput {
                    line1: Some("Vesterbrogade 1".into()),
                    city: Some("København".into()),
                    zip: Some("1620".into()),
                    country: Some("DK".into()),
                    ..Default::default()
                }),
                vat_number: Some("DK12345678".into()),
                ..Default::default()
            },
            Some("k4-billing"),
        )
        .await
        .unwrap();
    let address = c.billing_address.expect("address");
    assert_eq!(address.city.as_deref(), Some("København"));
    assert_eq!(address.country.as_deref(), Some("DK"));
    assert_eq!(c.vat_number.as_deref(), Some("DK12345678"));
    sb.shutdown().await;
}

#[tokio::test]
async fn customer_create_with_existing_id_is_a_recognisable_duplicate() {
    let (sb, client) = start().await;
    client
        .create_customer(&person("wc-person-5", "e@example.com"), "k5-a")
        .await
        .unwrap();
    let err = client
        .create_customer(&person("wc-person-5", "e@example.com"), "k5-b")
        .await
        .unwrap_err();
    assert!(is_duplicate(&err), "{err:?}");
    assert_eq!(err.param(), Some("id"));
    assert_eq!(sb.handle().records("customer").len(), 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn customer_create_with_too_long_email_is_rejected_naming_the_param() {
    let (sb, client) = start().await;
    let long = format!("{}@example.com", "a".repeat(60));
    let err = client
        .create_customer(&person("wc-person-6", &long), "k6")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Rejected { status: 400, .. }),
        "{err:?}"
    );
    assert_eq!(err.param(), Some("email"));
    assert_eq!(err.api_error_code(), Some("param_wrong_value"));
    assert!(!err.is_retryable());
    sb.shutdown().await;
}

#[tokio::test]
async fn customer_list_follows_every_page_and_resends_filters() {
    let (sb, client) = start().await;
    for i in 0..25 {
        let company = if i % 5 == 0 { "Other" } else { "Initech" };
        let mut p = person(&format!("wc-person-{i}"), &format!("p{i}@example.com"));
        p.company = Some(company.into());
        client
            .create_customer(&p, &format!("page-{i}"))
            .await
            .unwrap();
    }
    let all: Vec<Customer> = client
        .list_all_customers(ListQuery::new().limit(10).sort_asc("created_at"))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 25);
    let mut ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 25, "no record twice");
    assert_eq!(sb.handle().request_count("customer.list"), 3);

    let filtered: Vec<Customer> = client
        .list_all_customers(ListQuery::new().limit(3).is("company", "Initech"))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(filtered.len(), 20, "the filter applies on every page");
    sb.shutdown().await;
}

#[tokio::test]
async fn customer_list_filters_by_email_id_in_and_updated_at() {
    let (sb, client) = start().await;
    for i in 0..3 {
        client
            .create_customer(
                &person(&format!("f-{i}"), &format!("f{i}@example.com")),
                &format!("f{i}"),
            )
            .await
            .unwrap();
    }
    let page = client
        .list_customers(&ListQuery::new().is("email", "f1@example.com"), None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, "f-1");
    assert_eq!(page.next_offset, None);

    let page = client
        .list_customers(&ListQuery::new().is_in("id", &["f-0", "f-2"]), None)
        .await
        .unwrap();
    let mut ids: Vec<String> = page.items.into_iter().map(|c| c.id).collect();
    ids.sort();
    assert_eq!(ids, ["f-0", "f-2"]);

    let cutoff = sb.handle().now();
    sb.handle().advance_clock(Duration::from_secs(5));
    client
        .update_customer(
            "f-2",
            &CustomerUpdate {
                phone: Some("+45 1234".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let page = client
        .list_customers(
            &ListQuery::new()
                .after("updated_at", cutoff)
                .sort_asc("updated_at"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, "f-2");
    sb.shutdown().await;
}

#[tokio::test]
async fn idempotent_replay_with_the_same_key_creates_one_record() {
    let (sb, client) = start().await;
    let params = person("wc-person-9", "i@example.com");
    let first = client
        .create_customer(&params, "wc-person-9-create")
        .await
        .unwrap();
    let second = client
        .create_customer(&params, "wc-person-9-create")
        .await
        .unwrap();
    assert_eq!(first, second, "the replay returns the stored response");
    assert_eq!(sb.handle().records("customer").len(), 1);
    assert_eq!(sb.handle().write_count("customer.create"), 1);
    assert_eq!(sb.handle().request_count("customer.create"), 2);
    let created_events = sb
        .handle()
        .events()
        .iter()
        .filter(|e| e["event_type"] == "customer_created")
        .count();
    assert_eq!(created_events, 1);

    // A retry after the record was edited sends other values under the same caller key:
    // it is a new request (the key sent follows the request), so instead of a refused key
    // it meets the id the first attempt created, which the sync reads and links.
    let edited = CustomerCreate {
        last_name: Some("Smith-Jones".into()),
        ..params.clone()
    };
    let err = client
        .create_customer(&edited, "wc-person-9-create")
        .await
        .unwrap_err();
    assert!(is_duplicate(&err), "{err:?}");
    assert_eq!(sb.handle().records("customer").len(), 1);
    assert_eq!(sb.handle().write_count("customer.create"), 1);

    // The emulator refuses a key reused for a different request, so the client must never
    // send one.
    let mut sent = Vec::new();
    for email in ["k1@example.com", "k2@example.com"] {
        let resp = reqwest::Client::new()
            .post(format!("{}/customers", sb.base_url()))
            .basic_auth(sb.api_key(), Some(""))
            .header(IDEMPOTENCY_HEADER, "same-key")
            .form(&[("email", email)])
            .send()
            .await
            .expect("request is sent");
        sent.push(resp.status().as_u16());
    }
    assert_eq!(sent, [200, 400]);
    sb.shutdown().await;
}

#[tokio::test]
async fn rate_limited_answer_is_retried_after_retry_after_and_pauses_the_api() {
    let (sb, client) = start().await;
    sb.handle()
        .inject(Fault::rate_limit(Some(1)).for_operation("customer.create"));
    let started = Instant::now();
    let c = client
        .create_customer(&person("wc-person-11", "k@example.com"), "k11")
        .await
        .unwrap();
    assert_eq!(c.id, "wc-person-11");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(sb.handle().request_count("customer.create"), 2);
    assert_eq!(sb.handle().write_count("customer.create"), 1);

    // A 429 pauses every caller of the API, not only the one that received it.
    sb.handle().inject(Fault::rate_limit(Some(1)));
    let waiter = client.clone();
    let first = tokio::spawn(async move { waiter.retrieve_customer("wc-person-11").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = client.limiter().status();
    assert!(status.paused_until.is_some(), "{status:?}");
    let started = Instant::now();
    client.retrieve_customer("wc-person-11").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the other caller waited too"
    );
    first.await.unwrap().unwrap();
    sb.shutdown().await;
}

#[tokio::test]
async fn rate_limited_answer_beyond_the_retry_budget_is_returned_as_rate_limited() {
    let (sb, client) = start().await;
    sb.handle().inject(Fault::rate_limit(Some(60)));
    let err = client.retrieve_customer("x").await.unwrap_err();
    assert_eq!(
        err,
        ApiError::RateLimited {
            retry_after: Some(Duration::from_secs(60))
        }
    );
    assert!(err.is_retryable());
    assert!(client.limiter().status().paused_remaining_ms.unwrap_or(0) > 50_000);
    sb.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let (sb, client) = start().await;
    client
        .create_customer(&person("s-1", "s@example.com"), "s1")
        .await
        .unwrap();
    sb.handle().inject(Fault::server_error(503).times(1));
    sb.handle().inject(Fault::server_error(502).times(1));
    let c = client.retrieve_customer("s-1").await.unwrap();
    assert_eq!(c.id, "s-1");
    assert_eq!(sb.handle().request_count("customer.retrieve"), 3);
    sb.shutdown().await;
}

#[tokio::test]
async fn server_errors_beyond_the_attempts_are_transient() {
    let (sb, client) = start().await;
    sb.handle().inject(Fault::server_error(500).always());
    let err = client.retrieve_customer("s-1").await.unwrap_err();
    assert!(matches!(err, ApiError::Transient(_)), "{err:?}");
    assert_eq!(
        sb.handle().request_count("customer.retrieve"),
        3,
        "bounded attempts"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn added_latency_beyond_the_timeout_is_transient() {
    let (sb, _) = start().await;
    let mut config = sb.client_config();
    config.request_timeout = Duration::from_millis(200);
    config.retry.max_attempts = 1;
    let client = ChargebeeClient::new(config).unwrap();
    sb.handle()
        .inject(Fault::latency(Duration::from_millis(600)));
    let err = client.retrieve_customer("x").await.unwrap_err();
    assert!(matches!(err, ApiError::Transient(_)), "{err:?}");
    sb.shutdown().await;
}

#[tokio::test]
async fn wrong_api_key_is_unauthorized() {
    let (sb, _) = start().await;
    let mut config = sb.client_config();
    config.api_key = SecretString::from("test_wrong");
    let client = ChargebeeClient::new(config).unwrap();
    let err = client.retrieve_customer("x").await.unwrap_err();
    assert_eq!(err, ApiError::Unauthorized);
    sb.shutdown().await;
}

#[tokio::test]
async fn catalogue_operations_create_retrieve_update_and_list() {
    let (sb, client) = start().await;
    let (family, item, price) = catalogue(&client).await;
    assert_eq!(
        client
            .retrieve_item_family(&family.id)
            .await
            .unwrap()
            .name
            .as_deref(),
        Some("webCRM products")
    );
    let families: Vec<ItemFamily> = client
        .list_all_item_families(ListQuery::new())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(families.len(), 1);

    assert_eq!(item.item_type.as_deref(), Some("charge"));
    assert_eq!(item.status.as_deref(), Some("active"));
    assert_eq!(item.metadata, Some(json!({"webcrm_linked_data_id": 3})));
    let archived = client
        .update_item(
            "widget",
            &ItemUpdate {
                name: Some("Widget 2".into()),
                status: Some("archived".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(archived.status.as_deref(), Some("archived"));
    assert!(archived.archived_at.is_some());
    assert_eq!(
        client
            .retrieve_item("widget")
            .await
            .unwrap()
            .name
            .as_deref(),
        Some("Widget 2")
    );
    let items = client
        .list_items(
            &ListQuery::new()
                .is("item_family_id", "webcrm-products")
                .is("status", "archived"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(items.items.len(), 1);

    assert_eq!(
        price.item_family_id.as_deref(),
        Some("webcrm-products"),
        "filled in from the item"
    );
    assert_eq!(price.price, Some(1250));
    let repriced = client
        .update_item_price(
            "widget-EUR",
            &ItemPriceUpdate {
                price: Some(1399),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(repriced.price, Some(1399));
    assert_eq!(
        client
            .retrieve_item_price("widget-EUR")
            .await
            .unwrap()
            .price,
        Some(1399)
    );
    let prices: Vec<ItemPrice> = client
        .list_all_item_prices(ListQuery::new().is("item_id", "widget"))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(prices.len(), 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn item_create_in_unknown_family_is_not_found() {
    let (sb, client) = start().await;
    let err = client
        .create_item(
            &ItemCreate {
                id: "x".into(),
                name: "X".into(),
                item_type: "charge".into(),
                item_family_id: "missing".into(),
                ..Default::default()
            },
            "x",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    sb.shutdown().await;
}

async fn invoice_for(client: &ChargebeeClient, customer: &str, key: &str) -> Invoice {
    client
        .create_invoice_for_charges(
            &InvoiceForChargesCreate {
                customer_id: Some(customer.into()),
                currency_code: Some("EUR".into()),
                auto_collection: Some("off".into()),
                item_prices: vec![InvoiceItemPriceLine {
                    item_price_id: "widget-EUR".into(),
                    quantity: Some(2),
                    ..Default::default()
                }],
                charges: vec![InvoiceCharge {
                    amount: 10_000,
                    description: Some("Consulting".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
            key,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn invoices_and_orders_create_retrieve_update_and_list() {
    let (sb, client) = start().await;
    catalogue(&client).await;
    client
        .create_customer(&person("wc-person-20", "o@example.com"), "c20")
        .await
        .unwrap();
    let invoice = invoice_for(&client, "wc-person-20", "inv-opp-1").await;
    assert_eq!(invoice.line_items.len(), 2);
    assert_eq!(invoice.total, Some(2 * 1250 + 10_000));
    assert_eq!(invoice.status.as_deref(), Some("payment_due"));
    assert_eq!(
        client.retrieve_invoice(&invoice.id).await.unwrap().total,
        invoice.total
    );

    let order = client
        .create_order(
            &OrderCreate {
                id: Some("wc-opp-1".into()),
                invoice_id: invoice.id.clone(),
                reference_id: Some("1".into()),
                note: Some("first".into()),
                ..Default::default()
            },
            "order-wc-opp-1",
        )
        .await
        .unwrap();
    assert_eq!(order.customer_id.as_deref(), Some("wc-person-20"));
    assert_eq!(order.total, invoice.total);
    assert_eq!(order.order_line_items.len(), 2);
    let linked = client.retrieve_invoice(&invoice.id).await.unwrap();
    assert_eq!(linked.linked_orders[0].id, "wc-opp-1");

    let line_id = order.order_line_items[0].id.clone();
    let updated = client
        .update_order(
            "wc-opp-1",
            &OrderUpdate {
                note: Some("second".into()),
                status: Some("processing".into()),
                order_line_items: vec![OrderLineItemUpdate {
                    id: line_id.clone(),
                    sku: Some("SKU-1".into()),
                    status: Some("shipped".into()),
                }],
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(updated.note.as_deref(), Some("second"));
    assert_eq!(updated.order_line_items[0].sku.as_deref(), Some("SKU-1"));
    assert!(updated.resource_version > order.resource_version);
    assert_eq!(
        client
            .retrieve_order("wc-opp-1")
            .await
            .unwrap()
            .status
            .as_deref(),
        Some("processing")
    );
    let orders: Vec<Order> = client
        .list_all_orders(ListQuery::new().is("invoice_id", &invoice.id))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(orders.len(), 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn order_create_without_an_existing_invoice_is_refused() {
    let (sb, client) = start().await;
    let err = client
        .create_order(
            &OrderCreate {
                invoice_id: String::new(),
                ..Default::default()
            },
            "o1",
        )
        .await
        .unwrap_err();
    assert_eq!(err.param(), Some("invoice_id"), "{err:?}");
    let err = client
        .create_order(
            &OrderCreate {
                invoice_id: "404".into(),
                ..Default::default()
            },
            "o2",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    assert!(sb.handle().records("order").is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn events_list_filters_by_type_and_time_in_ascending_order() {
    let (sb, client) = start().await;
    let before = sb.handle().now() - 1;
    client
        .create_customer(&person("e-1", "e1@example.com"), "e1")
        .await
        .unwrap();
    sb.handle().advance_clock(Duration::from_secs(10));
    let mid = sb.handle().now() - 1;
    client
        .update_customer(
            "e-1",
            &CustomerUpdate {
                first_name: Some("Eve".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    catalogue(&client).await;

    let events: Vec<Event> = client
        .list_all_events(
            ListQuery::new()
                .after("occurred_at", before)
                .is_in("event_type", &["customer_created", "customer_changed"])
                .sort_asc("occurred_at")
                .limit(1),
        )
        .try_collect()
        .await
        .unwrap();
    let types: Vec<&str> = events
        .iter()
        .filter_map(|e| e.event_type.as_deref())
        .collect();
    assert_eq!(types, ["customer_created", "customer_changed"]);
    let changed = &events[1];
    assert_eq!(changed.source.as_deref(), Some("api"));
    assert_eq!(changed.user.as_deref(), Some("full_access_key_v1"));
    assert_eq!(
        changed.customer().unwrap().first_name.as_deref(),
        Some("Eve")
    );

    let later: Vec<Event> = client
        .list_all_events(
            ListQuery::new()
                .after("occurred_at", mid)
                .is("event_type", "customer_changed"),
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
    let one = client.retrieve_event(&later[0].id).await.unwrap();
    assert_eq!(one.id, later[0].id);

    let item_events = client
        .list_events(
            &ListQuery::new().is_in("event_type", &["item_created", "item_price_created"]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(item_events.items.len(), 2);
    sb.shutdown().await;
}

#[tokio::test]
async fn dashboard_edits_are_events_from_the_admin_console() {
    let (sb, client) = start().await;
    client
        .create_customer(&person("d-1", "d1@example.com"), "d1")
        .await
        .unwrap();
    let before = client.retrieve_customer("d-1").await.unwrap();
    sb.handle()
        .dashboard_edit(
            "customer",
            "d-1",
            json!({"phone": "+45 5555", "billing_address": {"city": "Aarhus"}}),
        )
        .unwrap();
    let after = client.retrieve_customer("d-1").await.unwrap();
    assert_eq!(after.phone.as_deref(), Some("+45 5555"));
    assert!(after.resource_version > before.resource_version);
    let last = sb.handle().events().pop().unwrap();
    assert_eq!(last["event_type"], "customer_changed");
    assert_eq!(last["source"], "admin_console");
    assert_eq!(
        sb.handle().write_count("customer.update"),
        0,
        "not an API write"
    );

    let created = sb
        .handle()
        .dashboard_create_customer(&[("first_name", "Dash"), ("email", "dash@example.com")])
        .unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        client
            .retrieve_customer(id)
            .await
            .unwrap()
            .first_name
            .as_deref(),
        Some("Dash")
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn business_entities_exist_only_as_events() {
    let (sb, client) = start().await;
    sb.handle().emit_business_entity_created("2", "Acme Nordic");
    sb.handle()
        .emit_business_entity_updated("2", "Acme Nordics");
    sb.handle().emit_business_entity_deleted("2");
    let events: Vec<Event> = client
        .list_all_events(ListQuery::new().sort_asc("occurred_at").is_in(
            "event_type",
            &[
                "business_entity_created",
                "business_entity_updated",
                "business_entity_deleted",
            ],
        ))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
    let be = events[1].business_entity().unwrap();
    assert_eq!(be.name.as_deref(), Some("Acme Nordics"));
    assert!(events[2].business_entity().unwrap().deleted);

    let resp = reqwest::Client::new()
        .get(format!("{}/business_entities", sb.base_url()))
        .basic_auth(sb.api_key(), Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "no REST read of business entities");

    client
        .create_customer(&person("t-1", "t@example.com"), "t1")
        .await
        .unwrap();
    let new_id = sb.handle().transfer_customer("t-1", "2").unwrap();
    let old = client.retrieve_customer("t-1").await.unwrap();
    assert_eq!(old.active_id.as_deref(), Some(new_id.as_str()));
    let moved = client.retrieve_customer(&new_id).await.unwrap();
    assert_eq!(moved.business_entity_id.as_deref(), Some("2"));
    let last: Event = serde_json::from_value(sb.handle().events().pop().unwrap()).unwrap();
    assert_eq!(
        last.event_type.as_deref(),
        Some("customer_business_entity_changed")
    );
    let transfer = last.business_entity_transfer().unwrap();
    assert_eq!(transfer.resource_id.as_deref(), Some("t-1"));
    assert_eq!(
        transfer.active_resource_id.as_deref(),
        Some(new_id.as_str())
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn paid_invoice_generates_a_system_order_event() {
    let (sb, client) = start().await;
    catalogue(&client).await;
    client
        .create_customer(&person("p-1", "p@example.com"), "p1")
        .await
        .unwrap();
    let invoice = invoice_for(&client, "p-1", "inv-p1").await;
    let order = sb.handle().pay_invoice(&invoice.id, true).unwrap().unwrap();
    assert_eq!(order["order_type"], "system_generated");
    assert_eq!(order["payment_status"], "paid");
    let last = sb.handle().events().pop().unwrap();
    assert_eq!(last["event_type"], "order_created");
    assert_eq!(last["source"], "system");
    sb.shutdown().await;
}

type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

async fn receiver() -> (String, Received, tokio::task::JoinHandle<()>) {
    let received: Received = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/webhooks/chargebee",
        axum::routing::post(
            move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
                let sink = sink.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    sink.lock().unwrap().push((auth, body));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/webhooks/chargebee",
        listener.local_addr().unwrap()
    );
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, received, server)
}

#[tokio::test]
async fn webhook_endpoints_are_managed_and_receive_events_with_basic_auth() {
    let (sb, client) = start().await;
    let (url, received, server) = receiver().await;
    let endpoint = client
        .create_webhook_endpoint(
            &WebhookEndpointCreate {
                name: "webcrm-sync".into(),
                url: url.clone(),
                basic_auth_username: Some("cb".into()),
                basic_auth_password: Some(SecretString::from("s3cret")),
                enabled_events: vec!["customer_created".into(), "customer_changed".into()],
                ..Default::default()
            },
            "endpoint-webcrm-sync",
        )
        .await
        .unwrap();
    assert_eq!(endpoint.url.as_deref(), Some(url.as_str()));
    assert!(
        !endpoint.extra.contains_key("basic_auth_password"),
        "credentials are never returned"
    );
    let renamed = client
        .update_webhook_endpoint(
            &endpoint.id,
            &WebhookEndpointUpdate {
                name: Some("webcrm-sync-2".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("webcrm-sync-2"));
    let listed: Vec<WebhookEndpoint> = client
        .list_all_webhook_endpoints(ListQuery::new())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        client
            .retrieve_webhook_endpoint(&endpoint.id)
            .await
            .unwrap()
            .id,
        endpoint.id
    );

    client
        .create_customer(&person("w-1", "w@example.com"), "w1")
        .await
        .unwrap();
    catalogue(&client).await; // item events are not enabled for this endpoint
    assert!(
        sb.handle()
            .wait_for_deliveries(1, Duration::from_secs(5))
            .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let expected = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "cb:s3cret")
    );
    assert_eq!(got[0].0.as_deref(), Some(expected.as_str()));
    let event: Event = serde_json::from_value(got[0].1.clone()).unwrap();
    assert_eq!(event.event_type.as_deref(), Some("customer_created"));
    assert_eq!(event.customer().unwrap().id, "w-1");
    let stored = client.retrieve_event(&event.id).await.unwrap();
    assert_eq!(stored.webhook_status.as_deref(), Some("succeeded"));
    server.abort();
    sb.shutdown().await;
}

#[tokio::test]
async fn webhooks_can_be_duplicated_and_reordered() {
    let (sb, client) = start().await;
    let (url, received, server) = receiver().await;
    sb.handle()
        .add_webhook_endpoint(&url, Some("cb"), Some("pw"));
    sb.handle().set_webhook_faults(WebhookFaults {
        duplicate: true,
        reorder_window: 3,
    });
    for i in 0..3 {
        client
            .create_customer(
                &person(&format!("r-{i}"), &format!("r{i}@example.com")),
                &format!("r{i}"),
            )
            .await
            .unwrap();
    }
    assert!(
        sb.handle()
            .wait_for_deliveries(6, Duration::from_secs(5))
            .await
    );
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 6, "every event twice");
    let ids: Vec<String> = got
        .iter()
        .step_by(2)
        .map(|(_, e)| {
            e["content"]["customer"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(ids, ["r-2", "r-1", "r-0"], "delivered in reverse order");
    assert_eq!(
        got[0].1["id"], got[1].1["id"],
        "the duplicate carries the same event id"
    );
    server.abort();
    sb.shutdown().await;
}

#[tokio::test]
async fn faults_apply_to_a_percentage_of_requests_of_one_operation() {
    let (sb, client) = start().await;
    client
        .create_customer(&person("q-1", "q@example.com"), "q1")
        .await
        .unwrap();
    sb.handle().inject(
        Fault::server_error(500)
            .percent(100)
            .for_operation("customer.list"),
    );
    sb.handle().inject(
        Fault::server_error(500)
            .percent(0)
            .for_operation("customer.retrieve"),
    );
    assert!(
        client.retrieve_customer("q-1").await.is_ok(),
        "0% never fires"
    );
    let err = client
        .list_customers(&ListQuery::new(), None)
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    sb.handle().clear_faults();
    assert!(client.list_customers(&ListQuery::new(), None).await.is_ok());
    sb.shutdown().await;
}

#[tokio::test]
async fn deleted_customers_are_gone_but_listed_with_include_deleted() {
    let (sb, client) = start().await;
    client
        .create_customer(&person("x-1", "x@example.com"), "x1")
        .await
        .unwrap();
    sb.handle().dashboard_delete("customer", "x-1").unwrap();
    let err = client.retrieve_customer("x-1").await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    let page = client
        .list_customers(&ListQuery::new(), None)
        .await
        .unwrap();
    assert!(page.items.is_empty());
    let page = client
        .list_customers(&ListQuery::new().include_deleted(true), None)
        .await
        .unwrap();
    assert!(page.items[0].deleted);
    assert_eq!(
        sb.handle().events().pop().unwrap()["event_type"],
        "customer_deleted"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn writes_with_webhooks_disabled_are_recorded_but_not_delivered() {
    let (sb, client) = start().await;
    let (url, received, server) = receiver().await;
    sb.handle().add_webhook_endpoint(&url, None, None);
    let resp = reqwest::Client::new()
        .post(format!("{}/customers", sb.base_url()))
        .basic_auth(sb.api_key(), Some(""))
        .header("chargebee-event-webhook", "all-disabled")
        .form(&[("id", "quiet")])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    client
        .create_customer(&person("loud", "l@example.com"), "loud")
        .await
        .unwrap();
    assert!(
        sb.handle()
            .wait_for_deliveries(1, Duration::from_secs(5))
            .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["content"]["customer"]["id"], "loud");
    let events = sb.handle().events();
    assert_eq!(events[0]["webhook_status"], "skipped");

    sb.handle()
        .redeliver(events[1]["id"].as_str().unwrap())
        .unwrap();
    assert!(
        sb.handle()
            .wait_for_deliveries(2, Duration::from_secs(5))
            .await
    );
    server.abort();
    sb.shutdown().await;
}

#[tokio::test]
async fn requests_outside_the_api_surface_get_chargebee_errors() {
    let (sb, client) = start().await;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", sb.base_url()))
            .basic_auth(sb.api_key(), Some(""))
            .send()
    };
    let resp = get("/customers?limit=101").await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["param"], "limit");
    let resp = get("/customers?mrr%5Bis%5D=1").await.unwrap();
    assert_eq!(resp.status(), 400, "unknown filters are refused");
    let resp = get("/subscriptions").await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = http
        .delete(format!("{}/customers/x", sb.base_url()))
        .basic_auth(sb.api_key(), Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let resp = http
        .get(format!("{}/customers", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["api_error_code"], "api_authentication_failed");
    let err = client
        .list_customers(&ListQuery::new().param("offset", "not-a-cursor"), None)
        .await
        .unwrap_err();
    assert_eq!(err.param(), Some("offset"));
    let options = format!(
        "{:?}",
        SandboxOptions {
            api_key: Some("test_secret".into()),
            ..Default::default()
        }
    );
    assert!(!options.contains("test_secret"));
    sb.shutdown().await;
}
