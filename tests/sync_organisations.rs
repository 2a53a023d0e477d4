//! `organisations_business_entities` end to end: business entity events and webCRM
//! organisation hooks travel through the real webhooks, hooks, intake, queue and engine.

mod common;

use serde_json::json;
use wcs::sandbox::webcrm::SandboxEntity;

use common::world::World;
use common::Backend;

const PAIRING: &str = "organisations_business_entities";

async fn business_entity_becomes_an_organisation_carrying_its_id(backend: Backend) {
    let w = World::start(backend).await;
    w.cb.handle()
        .emit_business_entity_created("be_nordic", "Nordic Trading ApS");
    w.settle().await;
    let links = w.links(PAIRING).await;
    assert_eq!(links.len(), 1, "{:?}", w.dead_jobs().await);
    assert_eq!(links[0].chargebee_id, "be_nordic");
    let org = w.wc_record(SandboxEntity::Organisation, &links[0].webcrm_id);
    assert_eq!(org["OrganisationName"], "Nordic Trading ApS");
    assert_eq!(org["OrganisationExtraCustom8"], "be_nordic");
    // One create; the organisation hook that came back wrote nothing anywhere.
    assert_eq!(w.wc_writes(), 1);
    assert_eq!(w.cb_writes(), 0);
    assert!(w.pending_actions().await.is_empty());
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.shutdown().await;
}

async fn business_entity_links_to_the_organisation_with_its_name(backend: Backend) {
    let w = World::start(backend).await;
    let org =
        w.wc.state()
            .ui_create(
                SandboxEntity::Organisation,
                json!({"OrganisationName": "Acme A/S"}),
            )
            .unwrap();
    w.settle().await;
    w.cb.handle()
        .emit_business_entity_created("be_acme", "ACME a/s");
    w.settle().await;
    let links = w.links(PAIRING).await;
    assert_eq!(links.len(), 1, "{:?}", w.dead_jobs().await);
    assert_eq!(links[0].webcrm_id, org.to_string());
    assert_eq!(w.wc.state().count(SandboxEntity::Organisation), 1);
    // The names differ only in case: the organisation keeps webCRM's spelling until renamed.
    assert_eq!(w.wc_writes(), 0);
    w.shutdown().await;
}

async fn business_entity_rename_updates_the_organisation(backend: Backend) {
    let w = World::start(backend).await;
    w.cb.handle()
        .emit_business_entity_created("be_1", "Old Name");
    w.settle().await;
    let org_id = w.links(PAIRING).await[0].webcrm_id.clone();
    w.wc.state()
        .ui_update(
            SandboxEntity::Organisation,
            org_id.parse().unwrap(),
            json!({"OrganisationCity": "Odense"}),
        )
        .unwrap();
    w.settle().await;
    w.cb.handle()
        .emit_business_entity_updated("be_1", "New Name");
    w.settle().await;
    let org = w.wc_record(SandboxEntity::Organisation, &org_id);
    assert_eq!(org["OrganisationName"], "New Name");
    assert_eq!(
        org["OrganisationCity"], "Odense",
        "the rest of the record is kept"
    );
    assert_eq!(
        w.wc_writes(),
        2,
        "one create, one update; their hooks wrote nothing"
    );
    assert_eq!(w.cb_writes(), 0);
    assert!(w.pending_actions().await.is_empty());
    w.shutdown().await;
}

async fn the_same_event_three_times_creates_one_organisation(backend: Backend) {
    let w = World::start(backend).await;
    let event =
        w.cb.handle()
            .emit_business_entity_created("be_9", "Once Ltd");
    assert_eq!(event["id"], "be_9");
    let event_id = w.cb.handle().events()[0]["id"].as_str().unwrap().to_owned();
    w.cb.handle().redeliver(&event_id).unwrap();
    w.cb.handle().redeliver(&event_id).unwrap();
    w.settle().await;
    assert_eq!(w.links(PAIRING).await.len(), 1);
    assert_eq!(w.wc.state().count(SandboxEntity::Organisation), 1);
    assert_eq!(w.wc_writes(), 1);
    w.shutdown().await;
}

async fn webcrm_rename_is_a_pending_action_until_chargebee_matches(backend: Backend) {
    let w = World::start(backend).await;
    w.cb.handle().emit_business_entity_created("be_1", "Acme");
    w.settle().await;
    let org_id: i64 = w.links(PAIRING).await[0].webcrm_id.parse().unwrap();
    let writes = w.wc_writes();
    w.wc.state()
        .ui_update(
            SandboxEntity::Organisation,
            org_id,
            json!({"OrganisationName": "Acme Group"}),
        )
        .unwrap();
    w.settle().await;
    let actions = w.pending_actions().await;
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0].pairing, PAIRING);
    assert_eq!(actions[0].kind, "name_change");
    assert!(
        actions[0].message.starts_with(
            "rename business entity be_1 from \"Acme\" to \"Acme Group\" in Chargebee"
        ),
        "{}",
        actions[0].message
    );
    assert!(actions[0].closed_at.is_none());
    assert_eq!(w.cb_writes(), 0);
    assert_eq!(w.wc_writes(), writes, "webCRM keeps its new name");
    // The same hook again: still one open action.
    w.app
        .post_webcrm(
            "Organisations",
            json!({"HookId": 1, "EventType": "Updated", "EntityType": "Organisation", "Id": org_id})
                .to_string(),
        )
        .await;
    w.settle().await;
    assert_eq!(w.pending_actions().await.len(), 1);
    // Someone renames the entity in Chargebee as asked: the action closes, nothing is written.
    w.cb.handle()
        .emit_business_entity_updated("be_1", "Acme Group");
    w.settle().await;
    let actions = w.pending_actions().await;
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert!(actions[0].closed_at.is_some(), "{actions:?}");
    assert_eq!(w.wc_writes(), writes);
    let org = w.wc_record(SandboxEntity::Organisation, &org_id.to_string());
    assert_eq!(org["OrganisationName"], "Acme Group");
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.shutdown().await;
}

async fn conflicting_renames_keep_the_newer_and_record_the_loser(backend: Backend) {
    let w = World::start(backend).await;
    w.cb.handle().emit_business_entity_created("be_1", "Acme");
    w.settle().await;
    let org_id = w.links(PAIRING).await[0].webcrm_id.clone();
    w.wc.state()
        .ui_update(
            SandboxEntity::Organisation,
            org_id.parse().unwrap(),
            json!({"OrganisationName": "From webCRM"}),
        )
        .unwrap();
    // Chargebee's rename is later (its clock runs ahead).
    w.cb.handle()
        .advance_clock(std::time::Duration::from_secs(60));
    w.cb.handle()
        .emit_business_entity_updated("be_1", "From Chargebee");
    w.settle().await;
    let org = w.wc_record(SandboxEntity::Organisation, &org_id);
    assert_eq!(org["OrganisationName"], "From Chargebee");
    let conflicts = w.conflicts().await;
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].pairing, PAIRING);
    assert_eq!(conflicts[0].field, "name");
    assert_eq!(conflicts[0].winner, "chargebee");
    assert_eq!(
        conflicts[0].webcrm_value.as_deref(),
        Some("\"From webCRM\"")
    );
    // Both sides agree on Chargebee's name: nothing is left to ask for.
    assert!(w
        .pending_actions()
        .await
        .iter()
        .all(|a| a.closed_at.is_some()));
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.shutdown().await;
}

async fn deleted_business_entity_tombstones_the_link(backend: Backend) {
    let w = World::start(backend).await;
    w.cb.handle().emit_business_entity_created("be_1", "Acme");
    w.settle().await;
    let org_id = w.links(PAIRING).await[0].webcrm_id.clone();
    w.cb.handle().emit_business_entity_deleted("be_1");
    w.settle().await;
    let links = w.links(PAIRING).await;
    assert_eq!(links.len(), 1);
    assert!(links[0].tombstoned_at.is_some(), "{links:?}");
    // Never a hard delete: the organisation stays.
    let org = w.wc_record(SandboxEntity::Organisation, &org_id);
    assert_eq!(org["OrganisationName"], "Acme");
    // A later rename in webCRM asks nothing of the broken pair.
    w.wc.state()
        .ui_update(
            SandboxEntity::Organisation,
            org_id.parse().unwrap(),
            json!({"OrganisationName": "Acme 2"}),
        )
        .unwrap();
    w.settle().await;
    assert!(w.pending_actions().await.is_empty());
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.shutdown().await;
}

async fn unlinked_organisation_creates_nothing_in_chargebee(backend: Backend) {
    let w = World::start(backend).await;
    w.wc.state()
        .ui_create(
            SandboxEntity::Organisation,
            json!({"OrganisationName": "Lonely ApS"}),
        )
        .unwrap();
    w.settle().await;
    assert!(w.links(PAIRING).await.is_empty());
    assert_eq!(w.cb_writes(), 0);
    assert!(w.pending_actions().await.is_empty());
    assert!(w.dead_jobs().await.is_empty(), "{:?}", w.dead_jobs().await);
    w.shutdown().await;
}

on_both_backends!(
    business_entity_becomes_an_organisation_carrying_its_id,
    business_entity_links_to_the_organisation_with_its_name,
    business_entity_rename_updates_the_organisation,
    the_same_event_three_times_creates_one_organisation,
    webcrm_rename_is_a_pending_action_until_chargebee_matches,
    conflicting_renames_keep_the_newer_and_record_the_loser,
    deleted_business_entity_tombstones_the_link,
    unlinked_organisation_creates_nothing_in_chargebee,
);
