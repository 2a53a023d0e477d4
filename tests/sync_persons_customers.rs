//! `persons_customers` end to end: edits in the sandboxes travel through the real webhooks,
//! hooks, intake, queue and engine, in both directions.

mod common;

use std::time::Duration;

use serde_json::json;
use wcs::sandbox::chargebee::Fault as CbFault;
use wcs::sandbox::webcrm::SandboxEntity;

use common::world::World;
use common::Backend;

const PAIRING: &str = "persons_customers";

/// An organisation with one person, made by a webCRM user; returns (org id, person id).
fn make_person(w: &World) -> (i64, i64) {
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({
                    "OrganisationName": "Acme A/S",
                    "OrganisationAddress": "Strandvejen 1\n2. sal",
                    "OrganisationPostCode": "2100",
                    "OrganisationCity": "København Ø",
                    "OrganisationCountry": "Danmark",
                    "OrganisationVatNumber": "DK12345678"
                }),
            )
            .unwrap();
    let person =
        w.wc.state()
            .ui_create(
                SandboxEntity::Person,
                json!({
                    "PersonOrganisationId": org,
                    "PersonFirstName": "Ada",
                    "PersonLastName": "Lovelace",
                    "PersonEmail": "Ada@Example.com",
                    "PersonDirectPhone": "+45 11 22 33 44"
                }),
            )
            .unwrap();
    (org, person)
}

async fn webcrm_person_creates_a_customer_with_every_property(backend: Backend) {
    let w = World::start(backend).await;
    let (org, person) = make_person(&w);
    w.settle().await;
    let id = format!("wc-person-{person}");
    let c = w.cb_record("customer", &id);
    assert_eq!(c["first_name"], "Ada");
    assert_eq!(c["last_name"], "Lovelace");
    assert_eq!(c["email"], "ada@example.com");
    assert_eq!(c["phone"], "+45 11 22 33 44");
    assert_eq!(c["company"], "Acme A/S");
    assert_eq!(c["vat_number"], "DK12345678");
    let a = &c["billing_address"];
    assert_eq!(a["line1"], "Strandvejen 1");
    assert_eq!(a["line2"], "2. sal");
    assert_eq!(a["zip"], "2100");
    assert_eq!(a["city"], "København Ø");
    assert_eq!(a["country"], "DK");
    let meta: serde_json::Value = match &c["meta_data"] {
        serde_json::Value::String(s) => serde_json::from_str(s).unwrap(),
        v => v.clone(),
    };
    assert_eq!(meta["webcrm_person_id"], person.to_string());
    assert_eq!(meta["webcrm_organisation_id"], org.to_string());
    let links = w.links(PAIRING).await;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].webcrm_id, person.to_string());
    assert_eq!(links[0].chargebee_id, id);
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.shutdown().await;
}

async fn echo_of_our_own_writes_writes_nothing(backend: Backend) {
    let w = World::start(backend).await;
    let (_, person) = make_person(&w);
    w.settle().await;
    // One create; the customer_created webhook that came back wrote nothing.
    assert_eq!(w.cb_writes(), 1);
    assert_eq!(w.wc_writes(), 0);
    let reads = w.cb.handle().request_count("customer.retrieve");
    w.wc.state()
        .ui_update(
            SandboxEntity::Person,
            person,
            json!({"PersonEmail": "ada@lovelace.org"}),
        )
        .unwrap();
    w.settle().await;
    let c = w.cb_record("customer", &format!("wc-person-{person}"));
    assert_eq!(c["email"], "ada@lovelace.org");
    assert_eq!(w.cb_writes(), 2, "one update, and its echo wrote nothing");
    assert_eq!(w.wc_writes(), 0);
    // The customer was read once, to merge; its customer_changed echo carried the version
    // we wrote and was recognised without a read.
    assert_eq!(w.cb.handle().request_count("customer.retrieve"), reads + 1);
    // The same hook three times: still nothing.
    for _ in 0..3 {
        w.app
            .post_webcrm(
                "Persons",
                json!({"HookId": 1, "EventType": "Updated", "EntityType": "Person", "Id": person})
                    .to_string(),
            )
            .await;
    }
    w.settle().await;
    assert_eq!(w.cb_writes(), 2);
    assert_eq!(w.wc_writes(), 0);
    w.shutdown().await;
}

async fn chargebee_edit_updates_the_person(backend: Backend) {
    let w = World::start(backend).await;
    let (_, person) = make_person(&w);
    w.settle().await;
    let id = format!("wc-person-{person}");
    w.cb.handle()
        .dashboard_edit(
            "customer",
            &id,
            json!({"first_name": "Augusta", "phone": "+45 99"}),
        )
        .unwrap();
    w.settle().await;
    let p = w.wc_record(SandboxEntity::Person, &person.to_string());
    assert_eq!(p["PersonFirstName"], "Augusta");
    assert_eq!(p["PersonDirectPhone"], "+45 99");
    assert_eq!(p["PersonLastName"], "Lovelace");
    assert_eq!(w.wc_writes(), 1);
    // The webCRM hook about our write came back: nothing more is written anywhere.
    assert_eq!(w.cb_writes(), 1);
    w.shutdown().await;
}

async fn chargebee_customer_becomes_a_person_under_its_company(backend: Backend) {
    let w = World::start(backend).await;
    w.cb.handle()
        .dashboard_create_customer(&[
            ("id", "cust_1"),
            ("first_name", "Grace"),
            ("last_name", "Hopper"),
            ("email", "grace@navy.mil"),
            ("phone", "555-0100"),
            ("company", "US Navy"),
        ])
        .unwrap();
    w.settle().await;
    let links = w.links(PAIRING).await;
    assert_eq!(links.len(), 1, "{:?}", w.dead_jobs().await);
    let p = w.wc_record(SandboxEntity::Person, &links[0].webcrm_id);
    assert_eq!(p["PersonFirstName"], "Grace");
    assert_eq!(p["PersonLastName"], "Hopper");
    assert_eq!(p["PersonEmail"], "grace@navy.mil");
    assert_eq!(p["PersonDirectPhone"], "555-0100");
    let org_id = p["PersonOrganisationId"].as_i64().unwrap();
    let org = w.wc_record(SandboxEntity::Organisation, &org_id.to_string());
    assert_eq!(org["OrganisationName"], "US Navy");
    // A second customer of the same company joins the same organisation.
    w.cb.handle()
        .dashboard_create_customer(&[
            ("id", "cust_2"),
            ("last_name", "Murray"),
            ("company", "us navy"),
        ])
        .unwrap();
    w.settle().await;
    let links = w.links(PAIRING).await;
    assert_eq!(links.len(), 2);
    let p2 = w.wc_record(SandboxEntity::Person, &links[1].webcrm_id);
    assert_eq!(p2["PersonOrganisationId"].as_i64(), Some(org_id));
    assert_eq!(w.wc.state().count(SandboxEntity::Organisation), 1);
    w.shutdown().await;
}

async fn the_same_event_three_times_creates_one_person(backend: Backend) {
    let w = World::start(backend).await;
    w.cb.handle()
        .dashboard_create_customer(&[("id", "cust_9"), ("last_name", "Once")])
        .unwrap();
    let event_id = w.cb.handle().events()[0]["id"].as_str().unwrap().to_owned();
    w.cb.handle().redeliver(&event_id).unwrap();
    w.cb.handle().redeliver(&event_id).unwrap();
    w.settle().await;
    assert_eq!(w.links(PAIRING).await.len(), 1);
    assert_eq!(w.wc.state().count(SandboxEntity::Person), 1);
    w.shutdown().await;
}

async fn conflicting_edits_keep_the_newer_and_record_the_loser(backend: Backend) {
    let w = World::start(backend).await;
    let (_, person) = make_person(&w);
    w.settle().await;
    let id = format!("wc-person-{person}");
    w.wc.state()
        .ui_update(
            SandboxEntity::Person,
            person,
            json!({"PersonFirstName": "FromWebcrm"}),
        )
        .unwrap();
    // Chargebee's edit is later (its clock runs ahead).
    w.cb.handle()
        .advance_clock(std::time::Duration::from_secs(60));
    w.cb.handle()
        .dashboard_edit("customer", &id, json!({"first_name": "FromChargebee"}))
        .unwrap();
    w.settle().await;
    let p = w.wc_record(SandboxEntity::Person, &person.to_string());
    assert_eq!(p["PersonFirstName"], "FromChargebee");
    assert_eq!(w.cb_record("customer", &id)["first_name"], "FromChargebee");
    let conflicts = w.conflicts().await;
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].field, "first_name");
    assert_eq!(conflicts[0].winner, "chargebee");
    assert_eq!(conflicts[0].webcrm_value.as_deref(), Some("\"FromWebcrm\""));
    // The operator keeps the losing webCRM value: the merge writes it to both sides.
    let ids: Vec<(i64,)> = w.app.db.rows("select id from conflicts").await;
    let resp = w
        .app
        .client
        .post(
            w.app
                .url(&format!("/admin/v1/conflicts/{}/resolve", ids[0].0)),
        )
        .bearer_auth(common::app::ADMIN)
        .json(&json!({"keep": "webcrm"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    w.settle().await;
    let p = w.wc_record(SandboxEntity::Person, &person.to_string());
    assert_eq!(p["PersonFirstName"], "FromWebcrm");
    assert_eq!(w.cb_record("customer", &id)["first_name"], "FromWebcrm");
    assert!(w.dead_jobs().await.is_empty());
    w.shutdown().await;
}

async fn organisation_rename_reaches_the_company_and_company_edit_is_reported(backend: Backend) {
    let w = World::start(backend).await;
    let (org, person) = make_person(&w);
    w.settle().await;
    let id = format!("wc-person-{person}");
    w.wc.state()
        .ui_update(
            SandboxEntity::Organisation,
            org,
            json!({"OrganisationName": "Acme Holding A/S", "OrganisationCity": "Aarhus"}),
        )
        .unwrap();
    w.settle().await;
    let c = w.cb_record("customer", &id);
    assert_eq!(c["company"], "Acme Holding A/S");
    assert_eq!(c["billing_address"]["city"], "Aarhus");
    // webCRM cannot move a person to another organisation: reported, not applied.
    let writes = w.wc_writes();
    w.cb.handle()
        .dashboard_edit("customer", &id, json!({"company": "Other Corp"}))
        .unwrap();
    w.settle().await;
    assert_eq!(w.wc_writes(), writes);
    let actions = w.pending_actions().await;
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0].kind, "company_change");
    assert!(actions[0].closed_at.is_none());
    // Someone sets it back in Chargebee: the systems agree and the action closes.
    w.cb.handle()
        .dashboard_edit("customer", &id, json!({"company": "Acme Holding A/S"}))
        .unwrap();
    w.settle().await;
    let actions = w.pending_actions().await;
    assert!(actions[0].closed_at.is_some(), "{actions:?}");
    w.shutdown().await;
}

async fn a_value_over_chargebees_limit_is_reported_not_truncated(backend: Backend) {
    let w = World::start(backend).await;
    let (_, person) = make_person(&w);
    w.settle().await;
    let long = format!("{}@example.com", "a".repeat(70));
    w.wc.state()
        .ui_update(
            SandboxEntity::Person,
            person,
            json!({ "PersonEmail": long }),
        )
        .unwrap();
    w.settle().await;
    let c = w.cb_record("customer", &format!("wc-person-{person}"));
    assert_eq!(c["email"], "ada@example.com", "nothing was written");
    let dead = w.dead_jobs().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let error = dead[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("email") && error.contains("70"), "{error}");
    let rejected: Vec<(String,)> = w
        .app
        .db
        .rows("select detail from sync_log where action = 'rejected'")
        .await;
    assert_eq!(rejected.len(), 1);
    w.shutdown().await;
}

/// What an attempt to make a person for the customer `cust-9` leaves when it stops before
/// linking: its intent, the person it made (with the marker) and, when `base` is given, the
/// customer's values as that attempt found them. A minute later a user edits the person.
async fn interrupted_create(w: &World, base: Option<&str>) -> i64 {
    // The customer's own event is never delivered: the person's job asks for it.
    w.set_chargebee_webhooks(false).await;
    w.cb.handle()
        .dashboard_create_customer(&[
            ("id", "cust-9"),
            ("first_name", "Ada"),
            ("last_name", "Lovelace"),
            ("email", "ada@example.com"),
            ("company", "Acme A/S"),
        ])
        .unwrap();
    w.app
        .db
        .exec(
            "insert into pending_creates (pairing, target, source_id, marker, created_at)
             values ('persons_customers', 'webcrm', 'cust-9', 'cust-9', 0)",
        )
        .await;
    if let Some(base) = base {
        w.app
            .db
            .exec(&format!(
                "insert into create_bases (pairing, side, source_id, fields, created_at)
                 values ('persons_customers', 'chargebee', 'cust-9', '{base}', 0)"
            ))
            .await;
    }
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
                json!({
                    "PersonOrganisationId": org,
                    "PersonFirstName": "Ada",
                    "PersonLastName": "Lovelace",
                    "PersonEmail": "ada@example.com",
                    "PersonCustom15": "cust-9"
                }),
            )
            .unwrap();
    w.wc.state()
        .advance_clock(std::time::Duration::from_secs(60));
    w.wc.state()
        .ui_update(
            SandboxEntity::Person,
            person,
            json!({"PersonFirstName": "Augusta"}),
        )
        .unwrap();
    w.settle().await;
    let c = w.cb_record("customer", "cust-9");
    assert_eq!(c["first_name"], "Augusta", "the edit reached the customer");
    assert_eq!(
        w.cb.handle().records("customer").len(),
        1,
        "no second customer"
    );
    let links = w.links(PAIRING).await;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].webcrm_id, person.to_string());
    assert_eq!(links[0].chargebee_id, "cust-9");
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    person
}

/// The attempt's values are known: the person's edit merges as an edit.
async fn a_person_made_by_an_earlier_attempt_and_edited_since_merges_as_an_edit(backend: Backend) {
    let w = World::start(backend).await;
    let base = r#"{"first_name":"Ada","last_name":"Lovelace","email":"ada@example.com","company":"Acme A/S"}"#;
    interrupted_create(&w, Some(base)).await;
    assert!(w.conflicts().await.is_empty(), "{:?}", w.conflicts().await);
    let left: Vec<(String,)> = w.app.db.rows("select source_id from create_bases").await;
    assert!(
        left.is_empty(),
        "the commit cleared the create's values: {left:?}"
    );
    w.shutdown().await;
}

/// Without them (the person was found, not made by an attempt of this record's job),
/// nothing tells which side changed: the difference settles as a recorded conflict instead
/// of the two being left apart for good.
async fn a_found_person_that_differs_is_linked_through_a_conflict(backend: Backend) {
    let w = World::start(backend).await;
    interrupted_create(&w, None).await;
    let conflicts = w.conflicts().await;
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].field, "first_name");
    assert_eq!(conflicts[0].winner, "webcrm");
    w.shutdown().await;
}

/// A sync wrote the customer's phone and stopped before its commit (it noted the values it
/// was writing on the link first); then a user changed the person's phone. The next sync
/// knows the customer's phone as its own write, not an edit: the user's phone is carried
/// across, with no conflict.
async fn a_write_whose_commit_was_lost_is_not_taken_for_an_edit(backend: Backend) {
    let w = World::start(backend).await;
    let (_, person) = make_person(&w);
    w.settle().await;
    let id = format!("wc-person-{person}");
    w.app
        .db
        .exec(r#"update links set pending_writes = '{"webcrm":{},"chargebee":{"phone":"+45 55"}}'"#)
        .await;
    // The write that happened (its event is on its way) ...
    w.cb.handle()
        .dashboard_edit("customer", &id, json!({"phone": "+45 55"}))
        .unwrap();
    // ... and the user's edit after it.
    w.wc.state()
        .ui_update(
            SandboxEntity::Person,
            person,
            json!({"PersonDirectPhone": "+45 66"}),
        )
        .unwrap();
    w.settle().await;
    assert_eq!(w.cb_record("customer", &id)["phone"], "+45 66");
    let p = w.wc_record(SandboxEntity::Person, &person.to_string());
    assert_eq!(p["PersonDirectPhone"], "+45 66");
    assert!(w.conflicts().await.is_empty(), "{:?}", w.conflicts().await);
    let pending: Vec<(Option<String>,)> = w.app.db.rows("select pending_writes from links").await;
    assert_eq!(pending, vec![(None,)], "the commit cleared the note");
    w.shutdown().await;
}

/// Settles the sync while Chargebee holds its `operation` requests for 300 ms; `change`
/// runs as soon as the first of them has arrived, so it lands between the sync's earlier
/// steps and that request being carried out.
async fn settle_with_change_during(w: &World, operation: &str, change: impl FnOnce()) {
    w.cb.handle()
        .inject(CbFault::latency(Duration::from_millis(300)).for_operation(operation));
    let before = w.cb.handle().request_count(operation);
    let during = async {
        while w.cb.handle().request_count(operation) == before {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        change();
    };
    tokio::join!(w.settle(), during);
    w.settle().await;
}

/// A Chargebee edit made while the sync writes that customer (after its read, before its
/// write) survives the write, since Chargebee updates are partial; the write's answer and
/// its event show the edit under the write's own version. That event must not be taken
/// for the write's echo: the edit has to reach webCRM.
async fn a_chargebee_edit_made_during_our_write_is_not_taken_for_its_echo(backend: Backend) {
    let w = World::start(backend).await;
    let (_, person) = make_person(&w);
    w.settle().await;
    let id = format!("wc-person-{person}");
    w.wc.state()
        .ui_update(
            SandboxEntity::Person,
            person,
            json!({"PersonDirectPhone": "+45 66"}),
        )
        .unwrap();
    // The user's edit lands while the sync's update waits in the sandbox.
    settle_with_change_during(&w, "customer.update", || {
        w.cb.handle()
            .dashboard_edit("customer", &id, json!({"last_name": "Byron"}))
            .unwrap();
    })
    .await;
    let c = w.cb_record("customer", &id);
    assert_eq!(
        (&c["phone"], &c["last_name"]),
        (&json!("+45 66"), &json!("Byron"))
    );
    let p = w.wc_record(SandboxEntity::Person, &person.to_string());
    assert_eq!(p["PersonDirectPhone"], "+45 66");
    assert_eq!(
        p["PersonLastName"], "Byron",
        "the Chargebee edit reached webCRM"
    );
    assert!(w.conflicts().await.is_empty(), "{:?}", w.conflicts().await);
    w.shutdown().await;
}

/// A webCRM edit whose job must also write webCRM (the customer changed as well) reads the
/// person again right before its PUT: a user's edit made while the job was reading the
/// customer is not overwritten by the PUT, and reaches Chargebee.
async fn a_webcrm_edit_made_while_the_job_reads_the_customer_survives_its_put(backend: Backend) {
    let w = World::start(backend).await;
    let (_, person) = make_person(&w);
    w.settle().await;
    let id = format!("wc-person-{person}");
    // The customer changes without a webhook, so only the person's job carries it.
    w.set_chargebee_webhooks(false).await;
    w.cb.handle()
        .dashboard_edit("customer", &id, json!({"last_name": "Byron"}))
        .unwrap();
    w.wc.state()
        .ui_update(
            SandboxEntity::Person,
            person,
            json!({"PersonFirstName": "Augusta"}),
        )
        .unwrap();
    // A second edit lands while the job waits for the customer.
    settle_with_change_during(&w, "customer.retrieve", || {
        w.wc.state()
            .ui_update(
                SandboxEntity::Person,
                person,
                json!({"PersonDirectPhone": "+45 77"}),
            )
            .unwrap();
    })
    .await;
    let overwritten: Vec<_> =
        w.wc.state()
            .puts_after_reads()
            .into_iter()
            .filter(|p| !p.overwritten.is_empty())
            .collect();
    assert!(overwritten.is_empty(), "{overwritten:?}");
    let p = w.wc_record(SandboxEntity::Person, &person.to_string());
    assert_eq!(
        (
            &p["PersonFirstName"],
            &p["PersonLastName"],
            &p["PersonDirectPhone"]
        ),
        (&json!("Augusta"), &json!("Byron"), &json!("+45 77"))
    );
    let c = w.cb_record("customer", &id);
    assert_eq!(
        (&c["first_name"], &c["last_name"], &c["phone"]),
        (&json!("Augusta"), &json!("Byron"), &json!("+45 77"))
    );
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.shutdown().await;
}

on_both_backends!(
    a_webcrm_edit_made_while_the_job_reads_the_customer_survives_its_put,
    a_chargebee_edit_made_during_our_write_is_not_taken_for_its_echo,
    a_write_whose_commit_was_lost_is_not_taken_for_an_edit,
    a_person_made_by_an_earlier_attempt_and_edited_since_merges_as_an_edit,
    a_found_person_that_differs_is_linked_through_a_conflict,
    a_value_over_chargebees_limit_is_reported_not_truncated,
    webcrm_person_creates_a_customer_with_every_property,
    echo_of_our_own_writes_writes_nothing,
    chargebee_edit_updates_the_person,
    chargebee_customer_becomes_a_person_under_its_company,
    the_same_event_three_times_creates_one_person,
    conflicting_edits_keep_the_newer_and_record_the_loser,
    organisation_rename_reaches_the_company_and_company_edit_is_reported,
);
