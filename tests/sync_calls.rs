//! What one propagated change costs in API calls, counted at the sandboxes, and the two
//! ways of not reading a record that make it cheap: a Chargebee event's content stands for
//! the customer, and a single webCRM hook just after the sync wrote the person is that
//! write's echo. Also: what those shortcuts must not hide.

mod common;

use serde_json::json;
use wcs::sandbox::webcrm::SandboxEntity;

use common::world::World;
use common::Backend;

const PAIRING: &str = "persons_customers";

/// A linked person (in an organisation) and customer, at rest; returns (person, customer).
async fn linked_pair(w: &World) -> (i64, String) {
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "Acme A/S", "OrganisationCity": "Aarhus"}),
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
                    "PersonEmail": "ada@example.com"
                }),
            )
            .unwrap();
    w.settle().await;
    assert_eq!(w.links(PAIRING).await.len(), 1);
    (person, format!("wc-person-{person}"))
}

/// The calls made since `before` (from `World::api_calls`): Chargebee count, webCRM list.
fn calls_since(w: &World, before: &(usize, Vec<String>)) -> (usize, Vec<String>) {
    let (cb, wc) = w.api_calls();
    (cb - before.0, wc[before.1.len()..].to_vec())
}

async fn chargebee_edit_costs_a_person_read_and_its_write(backend: Backend) {
    let w = World::start(backend).await;
    let (person, customer) = linked_pair(&w).await;
    let before = w.api_calls();
    w.cb.handle()
        .dashboard_edit("customer", &customer, json!({"last_name": "King"}))
        .unwrap();
    w.settle().await;
    let p = w.wc_record(SandboxEntity::Person, &person.to_string());
    assert_eq!(p["PersonLastName"], "King");
    let (cb, wc) = calls_since(&w, &before);
    // The customer came with its event; the organisation's details from the link; the
    // hook our PUT caused was known as its echo.
    assert_eq!(cb, 0, "no Chargebee call");
    assert_eq!(wc, ["GET /Persons/{id}", "PUT /Persons/{id}"]);
    let skipped: Vec<(String,)> = w
        .app
        .db
        .rows("select webcrm_id from links where webcrm_written_at is not null")
        .await;
    assert!(
        skipped.is_empty(),
        "the echo took the write mark: {skipped:?}"
    );
    w.shutdown().await;
}

async fn webcrm_edit_costs_three_calls_and_its_echo_none(backend: Backend) {
    let w = World::start(backend).await;
    let (person, customer) = linked_pair(&w).await;
    let retrieves = w.cb.handle().request_count("customer.retrieve");
    let before = w.api_calls();
    w.wc.state()
        .ui_update(
            SandboxEntity::Person,
            person,
            json!({"PersonFirstName": "Augusta"}),
        )
        .unwrap();
    w.settle().await;
    assert_eq!(w.cb_record("customer", &customer)["first_name"], "Augusta");
    let (cb, wc) = calls_since(&w, &before);
    // Read the person (not its organisation), read the customer to see whether it changed
    // too, update it; the customer_changed echo carried the version written.
    assert_eq!(wc, ["GET /Persons/{id}"]);
    assert_eq!(cb, 2, "customer read and update");
    assert_eq!(
        w.cb.handle().request_count("customer.retrieve"),
        retrieves + 1
    );
    w.shutdown().await;
}

/// The sync writes the person for a Chargebee edit; the hook of that write waits in the
/// sandbox (or is lost, with `lose_echo`) while a user edits the person's first name.
async fn edit_behind_our_write(w: &World, person: i64, customer: &str, lose_echo: bool) {
    w.cb.handle()
        .dashboard_edit("customer", customer, json!({"last_name": "King"}))
        .unwrap();
    w.settle_holding_hooks().await;
    assert_eq!(w.wc.state().pending_hook_count(), 1);
    if lose_echo {
        assert_eq!(w.wc.state().drop_pending_hooks(), 1);
    }
    w.wc.state()
        .ui_update(
            SandboxEntity::Person,
            person,
            json!({"PersonFirstName": "Augusta"}),
        )
        .unwrap();
    w.settle().await;
}

async fn an_edit_right_after_our_write_is_not_taken_for_its_echo(backend: Backend) {
    let w = World::start(backend).await;
    let (person, customer) = linked_pair(&w).await;
    // Two hooks arrive after the write: one is its echo, so the other is read.
    edit_behind_our_write(&w, person, &customer, false).await;
    let c = w.cb_record("customer", &customer);
    assert_eq!(c["first_name"], "Augusta", "the edit was read, not skipped");
    assert_eq!(c["last_name"], "King");
    assert!(w.conflicts().await.is_empty());
    w.shutdown().await;
}

async fn a_lost_echo_delays_an_edit_until_the_poll(backend: Backend) {
    let w = World::start(backend).await;
    let (person, customer) = linked_pair(&w).await;
    // With the echo lost, the user's hook is the only one since the write: within the echo
    // window it is taken for the echo ...
    edit_behind_our_write(&w, person, &customer, true).await;
    assert_eq!(w.cb_record("customer", &customer)["first_name"], "Ada");
    // ... and the poll, which reads what changed since its cursor, carries it across.
    w.poll().await;
    assert_eq!(w.cb_record("customer", &customer)["first_name"], "Augusta");
    w.shutdown().await;
}

async fn organisation_change_still_reaches_the_customer(backend: Backend) {
    let w = World::start(backend).await;
    let (person, customer) = linked_pair(&w).await;
    let org = w.wc_record(SandboxEntity::Person, &person.to_string())["PersonOrganisationId"]
        .as_i64()
        .unwrap();
    w.wc.state()
        .ui_update(
            SandboxEntity::Organisation,
            org,
            json!({"OrganisationCity": "Odense"}),
        )
        .unwrap();
    // A person edit right behind it takes the organisation's details from the link (not
    // yet Odense); the organisation's own job brings them.
    w.wc.state()
        .ui_update(
            SandboxEntity::Person,
            person,
            json!({"PersonFirstName": "Augusta"}),
        )
        .unwrap();
    w.settle().await;
    let c = w.cb_record("customer", &customer);
    assert_eq!(c["first_name"], "Augusta");
    assert_eq!(c["billing_address"]["city"], "Odense");
    w.shutdown().await;
}

async fn events_out_of_order_leave_the_newest_values(backend: Backend) {
    let w = World::start(backend).await;
    let (person, customer) = linked_pair(&w).await;
    // The four events are delivered newest first, and merge into one waiting job.
    w.set_webhook_faults(wcs::sandbox::chargebee::WebhookFaults {
        duplicate: false,
        reorder_window: 4,
    });
    for name in ["K1", "K2", "K3", "K4"] {
        w.cb.handle()
            .dashboard_edit("customer", &customer, json!({"last_name": name}))
            .unwrap();
    }
    w.settle().await;
    let p = w.wc_record(SandboxEntity::Person, &person.to_string());
    assert_eq!(p["PersonLastName"], "K4");
    w.shutdown().await;
}

on_both_backends!(
    chargebee_edit_costs_a_person_read_and_its_write,
    webcrm_edit_costs_three_calls_and_its_echo_none,
    an_edit_right_after_our_write_is_not_taken_for_its_echo,
    a_lost_echo_delays_an_edit_until_the_poll,
    organisation_change_still_reaches_the_customer,
    events_out_of_order_leave_the_newest_values,
);
