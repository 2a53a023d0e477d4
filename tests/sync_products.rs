//! `products_items` end to end: the webCRM catalogue (no hooks yet, so its jobs are enqueued
//! here as polling will) and Chargebee items and item prices through the real webhooks,
//! intake, queue and engine.

mod common;

use serde_json::{json, Value};
use wcs::intake::{Side, SyncTarget};
use wcs::sandbox::webcrm::SandboxEntity;

use common::world::World;
use common::Backend;

const PAIRING: &str = "products_items";

/// Asks for a sync of catalogue item `id`, then settles.
async fn sync_catalogue(w: &World, id: i64) {
    let now = wcs::store::now_ms();
    let job = SyncTarget {
        pairing: PAIRING,
        side: Side::Webcrm,
        id: id.to_string(),
        hint: json!({}),
    }
    .into_job(now, 10);
    w.app.store.enqueue(&job, now).await.unwrap();
    w.settle().await;
}

fn catalogue_item(w: &World, code: Option<&str>, name: &str, price: f64) -> i64 {
    let mut fields = json!({
        "QuotationLineLinkedDataItemData2": name,
        "QuotationLineLinkedDataItemDataMemo": "Hand made",
        "QuotationLineLinkedDataItemPrice": price,
        "QuotationLineLinkedDataItemEntityType": "Product",
    });
    if let Some(code) = code {
        fields["QuotationLineLinkedDataItemData1"] = json!(code);
    }
    w.wc.state()
        .ui_create(SandboxEntity::LinkedData, fields)
        .unwrap()
}

fn metadata(item: &Value) -> Value {
    match &item["metadata"] {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        v => v.clone(),
    }
}

fn catalogue(w: &World, id: &str) -> serde_json::Map<String, Value> {
    w.wc_record(SandboxEntity::LinkedData, id)
}

async fn catalogue_item_creates_item_and_price_with_every_property(backend: Backend) {
    for (currency, major, minor) in [
        ("DKK", 199.95, 19995),
        ("JPY", 500.0, 500),
        ("KWD", 1.234, 1234),
    ] {
        let w = World::start_with(backend, &[("PRODUCTS_ITEMS_CURRENCY", currency)]).await;
        let id = catalogue_item(&w, Some("SKU 1/A"), "Widget", major);
        sync_catalogue(&w, id).await;
        let item = w.cb_record("item", "SKU-1-A");
        assert_eq!(item["name"], "Widget", "{currency}");
        assert_eq!(item["external_name"], "Widget");
        assert_eq!(item["description"], "Hand made");
        assert_eq!(item["type"], "charge");
        assert_eq!(item["item_family_id"], "webcrm-products");
        assert_eq!(metadata(&item)["webcrm_linked_data_id"], id.to_string());
        let price = w.cb_record("item_price", &format!("SKU-1-A-{currency}"));
        assert_eq!(price["price"], minor, "{currency}");
        assert_eq!(price["currency_code"], currency);
        assert_eq!(price["pricing_model"], "flat_fee");
        assert_eq!(price["item_id"], "SKU-1-A");
        // The missing item family was created first.
        assert_eq!(
            w.cb_record("item_family", "webcrm-products")["id"],
            "webcrm-products"
        );
        let links = w.links(PAIRING).await;
        assert_eq!(links.len(), 1, "{:?}", w.dead_jobs().await);
        assert_eq!(links[0].webcrm_id, id.to_string());
        assert_eq!(links[0].chargebee_id, "SKU-1-A");
        // Family, item, price; the item_created/item_price_created echoes wrote nothing.
        assert_eq!(w.cb_writes(), 3);
        assert_eq!(w.wc_writes(), 0);
        // Asked again: nothing to do.
        sync_catalogue(&w, id).await;
        assert_eq!(w.cb_writes(), 3);
        assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
        w.shutdown().await;
    }
}

async fn catalogue_item_without_code_gets_a_generated_id_in_a_configured_family(backend: Backend) {
    let w = World::start_with(
        backend,
        &[
            ("PRODUCTS_ITEMS_ITEM_FAMILY_ID", "catalogue"),
            ("PRODUCTS_ITEMS_ITEM_TYPE", "addon"),
        ],
    )
    .await;
    let id = catalogue_item(&w, None, "Gizmo", 10.0);
    sync_catalogue(&w, id).await;
    let item_id = format!("wc-prod-{id}");
    let item = w.cb_record("item", &item_id);
    assert_eq!(item["item_family_id"], "catalogue");
    assert_eq!(item["type"], "addon");
    assert_eq!(w.cb_record("item_family", "catalogue")["id"], "catalogue");
    let price = w.cb_record("item_price", &format!("{item_id}-EUR"));
    assert_eq!(price["price"], 1000);
    assert_eq!(w.links(PAIRING).await[0].chargebee_id, item_id);
    w.shutdown().await;
}

async fn catalogue_edit_updates_item_and_price_and_echo_writes_nothing(backend: Backend) {
    let w = World::start_with(backend, &[("PRODUCTS_ITEMS_CURRENCY", "DKK")]).await;
    let id = catalogue_item(&w, Some("W1"), "Widget", 100.0);
    sync_catalogue(&w, id).await;
    let writes = w.cb_writes();
    w.wc.state()
        .ui_update(
            SandboxEntity::LinkedData,
            id,
            json!({
                "QuotationLineLinkedDataItemData2": "Widget Pro",
                "QuotationLineLinkedDataItemDataMemo": "Now better",
                "QuotationLineLinkedDataItemPrice": 199.95
            }),
        )
        .unwrap();
    sync_catalogue(&w, id).await;
    let item = w.cb_record("item", "W1");
    assert_eq!(item["name"], "Widget Pro");
    assert_eq!(item["external_name"], "Widget Pro");
    assert_eq!(item["description"], "Now better");
    assert_eq!(w.cb_record("item_price", "W1-DKK")["price"], 19995);
    assert_eq!(
        w.cb_writes(),
        writes + 2,
        "one item update, one price update"
    );
    assert_eq!(w.wc_writes(), 0, "the item_updated echoes wrote nothing");
    w.shutdown().await;
}

fn chargebee_item(w: &World, id: &str, name: &str, currency: &str, minor: i64) {
    let h = w.cb.handle();
    if h.record("item_family", "shop").is_none() {
        h.dashboard_call(
            "itemFamily.create",
            None,
            &[("id", "shop"), ("name", "Shop")],
        )
        .unwrap();
    }
    h.dashboard_call(
        "item.create",
        None,
        &[
            ("id", id),
            ("name", name),
            ("type", "charge"),
            ("item_family_id", "shop"),
            ("description", "From the billing team"),
        ],
    )
    .unwrap();
    let price_id = format!("{id}-{currency}");
    let minor = minor.to_string();
    h.dashboard_call(
        "itemPrice.create",
        None,
        &[
            ("id", &price_id),
            ("name", &price_id),
            ("item_id", id),
            ("pricing_model", "flat_fee"),
            ("currency_code", currency),
            ("price", &minor),
        ],
    )
    .unwrap();
}

async fn chargebee_item_creates_a_catalogue_item_with_every_property(backend: Backend) {
    for (currency, major, minor) in [
        ("DKK", 199.95, 19995),
        ("JPY", 500.0, 500),
        ("KWD", 1.234, 1234),
    ] {
        let w = World::start_with(backend, &[("PRODUCTS_ITEMS_CURRENCY", currency)]).await;
        chargebee_item(&w, "gadget", "Gadget", currency, minor);
        let before = w.cb_writes();
        w.settle().await;
        let links = w.links(PAIRING).await;
        assert_eq!(links.len(), 1, "{:?}", w.dead_jobs().await);
        assert_eq!(links[0].chargebee_id, "gadget");
        let c = catalogue(&w, &links[0].webcrm_id);
        assert_eq!(
            c["QuotationLineLinkedDataItemData1"], "gadget",
            "the code is the item id"
        );
        assert_eq!(c["QuotationLineLinkedDataItemData2"], "Gadget");
        assert_eq!(
            c["QuotationLineLinkedDataItemDataMemo"],
            "From the billing team"
        );
        assert_eq!(
            c["QuotationLineLinkedDataItemPrice"].as_f64(),
            Some(major),
            "{currency}"
        );
        assert_eq!(c["QuotationLineLinkedDataItemEntityType"], "Product");
        // The item learns its catalogue id; that item_updated echo writes nothing more.
        let item = w.cb_record("item", "gadget");
        assert_eq!(metadata(&item)["webcrm_linked_data_id"], links[0].webcrm_id);
        let log: Vec<(String, String)> = w.app.db.rows("select action, detail from sync_log").await;
        assert_eq!(w.cb_writes(), before + 1, "{log:?}");
        assert_eq!(w.wc_writes(), 1, "{log:?}");
        // Polling the catalogue item finds nothing to do either.
        sync_catalogue(&w, links[0].webcrm_id.parse().unwrap()).await;
        assert_eq!(w.cb_writes(), before + 1);
        assert_eq!(w.wc_writes(), 1);
        assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
        w.shutdown().await;
    }
}

async fn chargebee_edits_update_the_catalogue_item(backend: Backend) {
    let w = World::start_with(backend, &[("PRODUCTS_ITEMS_CURRENCY", "KWD")]).await;
    chargebee_item(&w, "gadget", "Gadget", "KWD", 1000);
    w.settle().await;
    let webcrm_id = w.links(PAIRING).await[0].webcrm_id.clone();
    let writes = (w.cb_writes(), w.wc_writes());
    w.cb.handle()
        .dashboard_edit(
            "item",
            "gadget",
            json!({"name": "Gadget 2", "description": null}),
        )
        .unwrap();
    w.cb.handle()
        .dashboard_edit("item_price", "gadget-KWD", json!({"price": 1234}))
        .unwrap();
    w.settle().await;
    let c = catalogue(&w, &webcrm_id);
    assert_eq!(c["QuotationLineLinkedDataItemData2"], "Gadget 2");
    assert!(
        c["QuotationLineLinkedDataItemDataMemo"]
            .as_str()
            .is_none_or(str::is_empty),
        "{c:?}"
    );
    assert_eq!(c["QuotationLineLinkedDataItemPrice"].as_f64(), Some(1.234));
    assert_eq!(
        c["QuotationLineLinkedDataItemData1"], "gadget",
        "the code never changes"
    );
    assert!(w.wc_writes() > writes.1);
    assert_eq!(
        w.cb_writes(),
        writes.0,
        "nothing is written back to Chargebee"
    );
    // Polling the catalogue item afterwards: an echo, nothing written anywhere.
    let wc_writes = w.wc_writes();
    sync_catalogue(&w, webcrm_id.parse().unwrap()).await;
    assert_eq!((w.cb_writes(), w.wc_writes()), (writes.0, wc_writes));
    w.shutdown().await;
}

async fn the_same_event_three_times_creates_one_catalogue_item(backend: Backend) {
    let w = World::start(backend).await;
    let h = w.cb.handle();
    h.dashboard_call(
        "itemFamily.create",
        None,
        &[("id", "shop"), ("name", "Shop")],
    )
    .unwrap();
    h.dashboard_call(
        "item.create",
        None,
        &[
            ("id", "once"),
            ("name", "Once"),
            ("type", "charge"),
            ("item_family_id", "shop"),
        ],
    )
    .unwrap();
    let event_id = h
        .events()
        .iter()
        .find(|e| e["event_type"] == "item_created")
        .and_then(|e| e["id"].as_str())
        .unwrap()
        .to_owned();
    h.redeliver(&event_id).unwrap();
    h.redeliver(&event_id).unwrap();
    w.settle().await;
    assert_eq!(w.links(PAIRING).await.len(), 1);
    assert_eq!(w.wc.state().count(SandboxEntity::LinkedData), 1);
    assert_eq!(w.wc_writes(), 1);
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.shutdown().await;
}

async fn conflicting_edits_go_to_chargebee_and_are_recorded(backend: Backend) {
    let w = World::start_with(backend, &[("PRODUCTS_ITEMS_CURRENCY", "DKK")]).await;
    let id = catalogue_item(&w, Some("W1"), "Widget", 100.0);
    sync_catalogue(&w, id).await;
    w.wc.state()
        .ui_update(
            SandboxEntity::LinkedData,
            id,
            json!({"QuotationLineLinkedDataItemData2": "From webCRM", "QuotationLineLinkedDataItemPrice": 150.0}),
        )
        .unwrap();
    w.cb.handle()
        .dashboard_edit("item", "W1", json!({"name": "From Chargebee"}))
        .unwrap();
    w.cb.handle()
        .dashboard_edit("item_price", "W1-DKK", json!({"price": 19995}))
        .unwrap();
    sync_catalogue(&w, id).await;
    let c = catalogue(&w, &id.to_string());
    assert_eq!(c["QuotationLineLinkedDataItemData2"], "From Chargebee");
    assert_eq!(c["QuotationLineLinkedDataItemPrice"].as_f64(), Some(199.95));
    assert_eq!(w.cb_record("item", "W1")["name"], "From Chargebee");
    assert_eq!(w.cb_record("item_price", "W1-DKK")["price"], 19995);
    let mut conflicts: Vec<(String, String, Option<String>)> = w
        .conflicts()
        .await
        .into_iter()
        .map(|c| (c.field, c.winner, c.webcrm_value))
        .collect();
    conflicts.sort();
    assert_eq!(
        conflicts,
        vec![
            (
                "name".into(),
                "chargebee".into(),
                Some("\"From webCRM\"".into())
            ),
            (
                "price".into(),
                "chargebee".into(),
                Some("\"150.00\"".into())
            ),
        ]
    );
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.shutdown().await;
}

async fn archived_or_deleted_item_tombstones_the_link(backend: Backend) {
    let w = World::start(backend).await;
    let a = catalogue_item(&w, Some("A1"), "Alpha", 1.0);
    let b = catalogue_item(&w, Some("B1"), "Beta", 2.0);
    sync_catalogue(&w, a).await;
    sync_catalogue(&w, b).await;
    assert_eq!(w.links(PAIRING).await.len(), 2);
    let h = w.cb.handle();
    h.dashboard_call("item.update", Some("A1"), &[("status", "archived")])
        .unwrap();
    h.dashboard_delete("item", "B1").unwrap();
    w.settle().await;
    let links = w.links(PAIRING).await;
    assert!(links.iter().all(|l| l.tombstoned_at.is_some()), "{links:?}");
    // Never a hard delete: the catalogue keeps both items.
    assert_eq!(w.wc.state().count(SandboxEntity::LinkedData), 2);
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.shutdown().await;
}

async fn with_propagate_deletes_a_delete_reaches_the_other_side(backend: Backend) {
    let w = World::start_with(backend, &[("PRODUCTS_ITEMS_PROPAGATE_DELETES", "true")]).await;
    let a = catalogue_item(&w, Some("A1"), "Alpha", 1.0);
    let b = catalogue_item(&w, Some("B1"), "Beta", 2.0);
    sync_catalogue(&w, a).await;
    sync_catalogue(&w, b).await;
    // Archived in Chargebee: the catalogue item goes.
    w.cb.handle()
        .dashboard_call("item.update", Some("A1"), &[("status", "archived")])
        .unwrap();
    w.settle().await;
    assert!(w.wc.state().record(SandboxEntity::LinkedData, a).is_none());
    // Deleted from the catalogue (no hook exists): the reconciler finds it, and the item is
    // archived, never deleted.
    w.wc.state()
        .ui_delete(SandboxEntity::LinkedData, b)
        .unwrap();
    w.reconcile().await;
    assert_eq!(w.cb_record("item", "B1")["status"], "archived");
    let links = w.links(PAIRING).await;
    assert!(links.iter().all(|l| l.tombstoned_at.is_some()), "{links:?}");
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.shutdown().await;
}

async fn items_of_other_types_are_not_copied_to_the_catalogue(backend: Backend) {
    let w = World::start(backend).await;
    let h = w.cb.handle();
    h.dashboard_call(
        "itemFamily.create",
        None,
        &[("id", "shop"), ("name", "Shop")],
    )
    .unwrap();
    h.dashboard_call(
        "item.create",
        None,
        &[
            ("id", "monthly"),
            ("name", "Monthly"),
            ("type", "plan"),
            ("item_family_id", "shop"),
        ],
    )
    .unwrap();
    w.settle().await;
    assert!(w.links(PAIRING).await.is_empty());
    assert_eq!(w.wc.state().count(SandboxEntity::LinkedData), 0);
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.shutdown().await;
}

on_both_backends!(
    catalogue_item_creates_item_and_price_with_every_property,
    catalogue_item_without_code_gets_a_generated_id_in_a_configured_family,
    catalogue_edit_updates_item_and_price_and_echo_writes_nothing,
    chargebee_item_creates_a_catalogue_item_with_every_property,
    chargebee_edits_update_the_catalogue_item,
    the_same_event_three_times_creates_one_catalogue_item,
    conflicting_edits_go_to_chargebee_and_are_recorded,
    archived_or_deleted_item_tombstones_the_link,
    with_propagate_deletes_a_delete_reaches_the_other_side,
    items_of_other_types_are_not_copied_to_the_catalogue,
);

/// The catalogue has no hooks: the poller reads it whole and syncs what differs from the
/// links' snapshots, so an unchanged catalogue costs one read and no job.
mod polled {
    use super::*;

    async fn the_catalogue_poll_finds_new_and_changed_items_only(backend: Backend) {
        let w = World::start(backend).await;
        let id = catalogue_item(&w, Some("widget"), "Widget", 10.0);
        w.poll().await;
        let item = w.cb_record("item", "widget");
        assert_eq!(item["name"], "Widget");
        let writes = (w.cb_writes(), w.wc_writes());
        // Nothing changed: the next poll enqueues no catalogue job and writes nothing.
        w.poll().await;
        assert_eq!((w.cb_writes(), w.wc_writes()), writes);
        let jobs: Vec<(i64,)> = w
            .app
            .db
            .rows("select count(*) from sync_log where pairing = 'products_items'")
            .await;
        let logged = jobs[0].0;
        w.wc.state()
            .ui_update(
                SandboxEntity::LinkedData,
                id,
                json!({"QuotationLineLinkedDataItemData2": "Widget Pro"}),
            )
            .unwrap();
        w.poll().await;
        assert_eq!(w.cb_record("item", "widget")["name"], "Widget Pro");
        let after: Vec<(i64,)> = w
            .app
            .db
            .rows("select count(*) from sync_log where pairing = 'products_items'")
            .await;
        assert_eq!(after[0].0, logged + 1, "one sync for the one changed item");
        w.shutdown().await;
    }

    on_both_backends!(the_catalogue_poll_finds_new_and_changed_items_only);
}
