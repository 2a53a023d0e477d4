//! With no webhook and no hook registered at all, polling alone carries every change, and
//! the reconciler's sweep finds what polling cannot: old records and silent deletes.

mod common;

use serde_json::json;
use wcs::sandbox::webcrm::SandboxEntity;

use common::world::World;
use common::Backend;

const PAIRING: &str = "persons_customers";

async fn edits_on_both_sides_converge_by_polling_alone(backend: Backend) {
    let w = World::start_without_webhooks(backend).await;
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "Polled Org"}),
            )
            .unwrap();
    let person = w
        .wc
        .state()
        .ui_create(
            SandboxEntity::Person,
            json!({"PersonOrganisationId": org, "PersonFirstName": "Pia", "PersonLastName": "Poll"}),
        )
        .unwrap();
    w.cb.handle()
        .dashboard_create_customer(&[
            ("id", "cust_p"),
            ("first_name", "Carl"),
            ("last_name", "Cb"),
            ("company", "Polled Org"),
        ])
        .unwrap();
    assert!(
        w.cb.handle().deliveries().is_empty(),
        "no webhook is registered"
    );
    w.poll().await;
    let links = w.links(PAIRING).await;
    assert_eq!(links.len(), 2, "{:?}", w.jobs().await);
    let customer_id = format!("wc-person-{person}");
    assert_eq!(w.cb_record("customer", &customer_id)["first_name"], "Pia");
    // Edits on both sides, then one more poll interval.
    w.wc.state()
        .ui_update(
            SandboxEntity::Person,
            person,
            json!({"PersonFirstName": "Pernille"}),
        )
        .unwrap();
    w.cb.handle()
        .dashboard_edit("customer", "cust_p", json!({"last_name": "Chargebee"}))
        .unwrap();
    w.poll().await;
    assert_eq!(
        w.cb_record("customer", &customer_id)["first_name"],
        "Pernille"
    );
    let from_cb = links.iter().find(|l| l.chargebee_id == "cust_p").unwrap();
    let p = w.wc_record(SandboxEntity::Person, &from_cb.webcrm_id);
    assert_eq!(p["PersonLastName"], "Chargebee");
    // A third poll finds its own writes (echoes) and the overlap again: nothing is written.
    let (cb, wc) = (w.cb_writes(), w.wc_writes());
    w.poll().await;
    assert_eq!((w.cb_writes(), w.wc_writes()), (cb, wc));
    // Polled events are stored like webhooks: each event once.
    let polled: Vec<(i64,)> = w
        .app
        .db
        .rows("select count(*) from inbound_events where detail like 'polled%'")
        .await;
    assert_eq!(polled[0].0 as usize, w.cb.handle().events().len());
    w.shutdown().await;
}

async fn a_webhook_and_a_poll_of_the_same_event_run_one_job(backend: Backend) {
    let w = World::start(backend).await;
    w.cb.handle()
        .dashboard_create_customer(&[("id", "cust_w"), ("last_name", "Once")])
        .unwrap();
    w.settle().await;
    let events: Vec<(i64,)> = w.app.db.rows("select count(*) from inbound_events").await;
    let writes = w.wc_writes();
    w.poll().await;
    let after: Vec<(i64,)> = w.app.db.rows("select count(*) from inbound_events").await;
    assert_eq!(events[0].0, after[0].0, "the polled event was a duplicate");
    assert_eq!(w.wc_writes(), writes);
    assert_eq!(w.links(PAIRING).await.len(), 1);
    w.shutdown().await;
}

async fn the_reconciler_links_old_records_and_tombstones_vanished_ones(backend: Backend) {
    let w = World::start_without_webhooks(backend).await;
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "Old Org"}),
            )
            .unwrap();
    let person =
        w.wc.state()
            .ui_create(
                SandboxEntity::Person,
                json!({"PersonOrganisationId": org, "PersonLastName": "Old"}),
            )
            .unwrap();
    w.cb.handle()
        .dashboard_create_customer(&[
            ("id", "cust_old"),
            ("last_name", "Older"),
            ("company", "Old Org"),
        ])
        .unwrap();
    w.reconcile().await;
    let links = w.links(PAIRING).await;
    assert_eq!(links.len(), 2, "{:?}", w.jobs().await);
    // Deleted in webCRM without any notification: the next sweep tombstones the link.
    w.wc.state()
        .ui_delete(SandboxEntity::Person, person)
        .unwrap();
    w.reconcile().await;
    let links = w.links(PAIRING).await;
    let gone = links
        .iter()
        .find(|l| l.webcrm_id == person.to_string())
        .unwrap();
    assert!(gone.tombstoned_at.is_some());
    assert_eq!(
        links.iter().filter(|l| l.tombstoned_at.is_none()).count(),
        1
    );
    assert!(
        w.cb.handle()
            .record("customer", &format!("wc-person-{person}"))
            .is_some(),
        "no hard delete"
    );
    let status: serde_json::Value = w
        .app
        .client
        .get(w.app.url("/admin/v1/status"))
        .bearer_auth(common::app::ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let drift = &status["drift"][PAIRING];
    assert_eq!(drift["vanished_webcrm"], 1, "{status}");
    assert_eq!(drift["links"], 2);
    w.shutdown().await;
}

on_both_backends!(
    the_reconciler_links_old_records_and_tombstones_vanished_ones,
    edits_on_both_sides_converge_by_polling_alone,
    a_webhook_and_a_poll_of_the_same_event_run_one_job,
);
