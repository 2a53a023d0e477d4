//! `organisations_business_entities`: webCRM Organisations <-> Chargebee business entities
//! (MAPPINGS.md §3).
//!
//! Chargebee has no API to read, list, create or change a business entity: they exist for us
//! only in the `business_entity_*` events. The Chargebee side is therefore read from the event
//! a job names; without one (a job from webCRM, or the engine re-reading the counterpart) it
//! is the link's Chargebee snapshot, which is exact because an entity changes only through
//! events we receive. A rename made in webCRM cannot be written, so it becomes a pending
//! action that closes when the matching `business_entity_updated` arrives.

use async_trait::async_trait;
use serde_json::Value;

use crate::clients::chargebee::BusinessEntity;
use crate::clients::webcrm::Organisation;
use crate::intake::Side;

use super::super::merge::{Fields, Flow, Observed, Report, Rule, Snapshot, Winner};
use super::super::pairing::{Created, Pairing, SyncContext, SyncError};
use super::super::values::{found, from_raw, get_str, raw, text_value, webcrm_id, webcrm_ms};
use super::Limit;

pub const NAME: &str = "organisations_business_entities";
/// Where an organisation created from a business entity carries the entity id.
pub const DEFAULT_MARKER_FIELD: &str = "OrganisationExtraCustom8";

const RULES: &[Rule] = &[Rule::with("name", Flow::Report, Flow::Write)];

/// Chargebee's limit on an entity name: a longer webCRM name cannot be asked for.
const LIMITS: &[Limit] = &[("name", 100)];

/// The organisation as canonical fields.
pub fn webcrm_fields(org: &Organisation) -> Fields {
    let mut f = Fields::new();
    f.insert("name".into(), text_value(org.name.as_deref()));
    f
}

/// The business entity as canonical fields.
pub fn chargebee_fields(entity: &BusinessEntity) -> Fields {
    let mut f = Fields::new();
    f.insert("name".into(), text_value(entity.name.as_deref()));
    f
}

/// Puts the changes Chargebee made onto the organisation (the whole record is PUT back).
pub fn apply_to_organisation(org: &mut Organisation, changes: &Fields) {
    if changes.contains_key("name") {
        org.name = get_str(changes, "name").map(str::to_owned);
    }
}

/// What the event named by a job's hint says about entity `id`.
#[derive(Debug, Clone, PartialEq)]
pub enum EventState {
    /// The entity as the event carries it.
    Present(BusinessEntity),
    /// The event deletes it.
    Deleted,
    /// The event is about another record, or carries no entity: it tells nothing.
    Unrelated,
}

/// Reads what `event_type` with `entity` means for entity `id`.
pub fn event_state(
    id: &str,
    event_type: Option<&str>,
    entity: Option<BusinessEntity>,
) -> EventState {
    match entity {
        Some(e) if e.id == id => {
            if e.deleted || event_type == Some("business_entity_deleted") {
                EventState::Deleted
            } else {
                EventState::Present(e)
            }
        }
        _ => EventState::Unrelated,
    }
}

/// Whether an event's entity version is older than the one the link already synced (an event
/// delivered late must not undo a newer rename).
pub fn is_older(entity_version: Option<i64>, synced: Option<&str>) -> bool {
    match (entity_version, synced.and_then(|s| s.parse::<i64>().ok())) {
        (Some(e), Some(s)) => e < s,
        _ => false,
    }
}

pub fn entity_observed(entity: &BusinessEntity) -> Observed {
    Observed {
        id: entity.id.clone(),
        fields: chargebee_fields(entity),
        changed_at: entity
            .resource_version
            .or(entity.updated_at.map(|s| s.saturating_mul(1000))),
        version: entity.resource_version.map(|v| v.to_string()),
        raw: raw(entity),
    }
}

pub struct OrganisationsBusinessEntities;

impl OrganisationsBusinessEntities {
    fn marker_field(cx: &SyncContext) -> String {
        cx.option(NAME, "marker_field")
            .unwrap_or_else(|| DEFAULT_MARKER_FIELD.to_owned())
    }

    async fn read_organisation(cx: &SyncContext, id: &str) -> Result<Option<Observed>, SyncError> {
        let Some(org) = found(cx.webcrm.get_organisation(webcrm_id(id)?).await)? else {
            return Ok(None);
        };
        Ok(Some(Observed {
            id: id.to_owned(),
            fields: webcrm_fields(&org),
            changed_at: webcrm_ms(org.updated_at),
            version: org.updated_at.map(|t| t.to_rfc3339()),
            raw: raw(&org),
        }))
    }

    /// The entity from the job's event when it names one, else from the link's snapshot.
    async fn read_entity(
        cx: &SyncContext,
        id: &str,
        hint: &Value,
    ) -> Result<Option<Observed>, SyncError> {
        let link = cx.store.link_by_chargebee(NAME, id).await?;
        let synced = link.as_ref().and_then(|l| l.chargebee_version.as_deref());
        if let Some(event_id) = hint["event_id"].as_str() {
            // An event no longer retrievable tells nothing; the snapshot still does.
            if let Some(event) = found(cx.chargebee.retrieve_event(event_id).await)? {
                match event_state(id, event.event_type.as_deref(), event.business_entity()) {
                    EventState::Deleted => return Ok(None),
                    EventState::Present(e) if !is_older(e.resource_version, synced) => {
                        return Ok(Some(entity_observed(&e)));
                    }
                    EventState::Present(_) | EventState::Unrelated => {}
                }
            }
        }
        Ok(link
            .filter(|l| l.tombstoned_at.is_none())
            .map(|l| Observed {
                id: id.to_owned(),
                fields: Snapshot::parse(&l.snapshot).chargebee,
                changed_at: l.chargebee_version.as_deref().and_then(|v| v.parse().ok()),
                version: l.chargebee_version.clone(),
                raw: Value::Null,
            }))
    }

    /// The organisation for a new entity: an earlier attempt's (by marker), an unlinked one
    /// with the same name (case-insensitive), or a new one carrying the marker.
    async fn organisation_for(
        cx: &SyncContext,
        entity_id: &str,
        name: &str,
    ) -> Result<i32, SyncError> {
        let marker_field = Self::marker_field(cx);
        if let Some(id) = cx
            .webcrm
            .organisation_id_by_marker(&marker_field, entity_id)
            .await?
        {
            return Ok(id);
        }
        let mut same: Vec<i32> = cx
            .webcrm
            .find_organisations_by("OrganisationName", name)
            .await?
            .iter()
            .filter(|o| {
                o.name
                    .as_deref()
                    .is_some_and(|n| n.trim().eq_ignore_ascii_case(name.trim()))
            })
            .filter_map(|o| o.id)
            .collect();
        same.sort_unstable();
        for id in same {
            let linked = cx.store.link_by_webcrm(NAME, &id.to_string()).await?;
            if linked.is_none_or(|l| l.tombstoned_at.is_some()) {
                return Ok(id);
            }
        }
        let org = Organisation {
            name: Some(name.to_owned()),
            ..Organisation::default()
        };
        Ok(cx
            .webcrm
            .create_organisation_with_marker(&org, &marker_field, entity_id)
            .await?)
    }
}

#[async_trait]
impl Pairing for OrganisationsBusinessEntities {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rules(&self) -> &'static [Rule] {
        RULES
    }

    async fn read(
        &self,
        cx: &SyncContext,
        side: Side,
        id: &str,
        hint: &Value,
    ) -> Result<Option<Observed>, SyncError> {
        match side {
            Side::Webcrm => Self::read_organisation(cx, id).await,
            Side::Chargebee => Self::read_entity(cx, id, hint).await,
        }
    }

    async fn write(
        &self,
        cx: &SyncContext,
        side: Side,
        current: &Observed,
        changes: &Fields,
    ) -> Result<Option<String>, SyncError> {
        match side {
            Side::Webcrm => {
                let mut org: Organisation = from_raw(&current.raw, "organisation")?;
                apply_to_organisation(&mut org, changes);
                cx.webcrm
                    .update_organisation(webcrm_id(&current.id)?, &org)
                    .await?;
                Ok(None)
            }
            // The rules only report changes for Chargebee; reaching here is a rule mistake.
            Side::Chargebee => Err(SyncError::Invalid(
                "Chargebee has no API to change a business entity".into(),
            )),
        }
    }

    async fn create(
        &self,
        cx: &SyncContext,
        from: Side,
        source: &Observed,
        _hint: &Value,
    ) -> Result<Created, SyncError> {
        match from {
            Side::Webcrm => Ok(Created::Skip(
                "Chargebee has no API to create a business entity".into(),
            )),
            Side::Chargebee => {
                let Some(name) = get_str(&source.fields, "name") else {
                    return Ok(Created::Skip("the business entity has no name".into()));
                };
                let org_id = Self::organisation_for(cx, &source.id, name).await?;
                match Self::read_organisation(cx, &org_id.to_string()).await? {
                    Some(org) => Ok(Created::Record(org)),
                    None => Err(SyncError::Api(
                        crate::clients::outbound::ApiError::Transient(format!(
                            "webCRM organisation {org_id} was created but cannot be read yet"
                        )),
                    )),
                }
            }
        }
    }

    fn describe(&self, report: &Report, webcrm_id: &str, chargebee_id: &str) -> String {
        let show = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        match report.target {
            Winner::Chargebee => {
                let too_long = report.want.as_str().is_some_and(|w| {
                    super::super::normalize::text::check_len("name", Some(w), LIMITS[0].1).is_err()
                });
                format!(
                    "rename business entity {chargebee_id} from \"{}\" to \"{}\" in Chargebee \
                     (webCRM organisation {webcrm_id} was renamed; Chargebee's API cannot \
                     rename business entities){}",
                    show(&report.have),
                    show(&report.want),
                    if too_long {
                        "; the new name is longer than Chargebee's 100 characters"
                    } else {
                        ""
                    }
                )
            }
            Winner::Webcrm => format!(
                "rename webCRM organisation {webcrm_id} from \"{}\" to \"{}\" (business entity \
                 {chargebee_id})",
                show(&report.have),
                show(&report.want)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entity(id: &str, name: &str, version: i64) -> BusinessEntity {
        BusinessEntity {
            id: id.into(),
            name: Some(name.into()),
            resource_version: Some(version),
            ..BusinessEntity::default()
        }
    }

    #[test]
    fn names_map_trimmed_on_both_sides() {
        let org = Organisation {
            name: Some("  Acme ApS ".into()),
            ..Organisation::default()
        };
        assert_eq!(webcrm_fields(&org)["name"], json!("Acme ApS"));
        assert_eq!(
            chargebee_fields(&entity("be1", "Acme ApS", 1))["name"],
            json!("Acme ApS")
        );
        let blank = Organisation::default();
        assert_eq!(webcrm_fields(&blank)["name"], Value::Null);
    }

    #[test]
    fn rename_is_applied_to_the_organisation() {
        let mut org = Organisation {
            name: Some("Old".into()),
            city: Some("Aarhus".into()),
            ..Organisation::default()
        };
        let changes: Fields = serde_json::from_value(json!({"name": "New"})).unwrap();
        apply_to_organisation(&mut org, &changes);
        assert_eq!(org.name.as_deref(), Some("New"));
        assert_eq!(
            org.city.as_deref(),
            Some("Aarhus"),
            "the rest is kept for the PUT"
        );
    }

    #[test]
    fn events_are_read_for_their_own_entity_only() {
        let e = entity("be1", "A", 5);
        assert_eq!(
            event_state("be1", Some("business_entity_updated"), Some(e.clone())),
            EventState::Present(e.clone())
        );
        assert_eq!(
            event_state("be1", Some("business_entity_deleted"), Some(e.clone())),
            EventState::Deleted
        );
        let gone = BusinessEntity {
            deleted: true,
            ..e.clone()
        };
        assert_eq!(
            event_state("be1", Some("business_entity_updated"), Some(gone)),
            EventState::Deleted
        );
        assert_eq!(
            event_state("be2", Some("business_entity_updated"), Some(e)),
            EventState::Unrelated
        );
        assert_eq!(event_state("be1", None, None), EventState::Unrelated);
    }

    #[test]
    fn a_late_event_is_older_than_the_synced_version() {
        assert!(is_older(Some(5), Some("9")));
        assert!(!is_older(Some(9), Some("9")));
        assert!(!is_older(Some(5), None));
        assert!(!is_older(None, Some("9")));
    }

    #[test]
    fn webcrm_rename_is_reported_not_written() {
        let snap = Snapshot {
            webcrm: serde_json::from_value(json!({"name": "Old"})).unwrap(),
            chargebee: serde_json::from_value(json!({"name": "Old"})).unwrap(),
        };
        let obs = |name: &str| Observed {
            id: "x".into(),
            fields: serde_json::from_value(json!({ "name": name })).unwrap(),
            changed_at: Some(1),
            version: None,
            raw: Value::Null,
        };
        let plan = super::super::super::merge::merge(RULES, &snap, &obs("New"), &obs("Old"));
        assert!(plan.writes_nothing());
        assert_eq!(plan.reports.len(), 1);
        let message = OrganisationsBusinessEntities.describe(&plan.reports[0], "7", "be1");
        assert!(
            message.starts_with("rename business entity be1 from \"Old\" to \"New\" in Chargebee"),
            "{message}"
        );
    }
}
