//! `persons_customers`: webCRM Persons <-> Chargebee Customers (MAPPINGS.md §1).
//!
//! Names, e-mail and phone sync both ways. The organisation's name, address and VAT number
//! go to the customer's `company` and billing info (webCRM is their master); a `company`
//! change made in Chargebee cannot move the person to another organisation, so it becomes a
//! pending action. Chargebee creates use the id `wc-person-{PersonId}`.

use async_trait::async_trait;
use futures::TryStreamExt;
use serde_json::{json, Value};

use std::collections::HashMap;

use crate::clients::chargebee::{
    is_duplicate, AddressInput, BillingInfoUpdate, Customer, CustomerCreate, CustomerUpdate,
};
use crate::clients::webcrm::{Organisation, Person, Table};
use crate::intake::Side;

use super::super::merge::{Fields, Flow, Observed, Rule};
use super::super::normalize::{country, text};
use super::super::pairing::{Created, Expansion, Pairing, SyncContext, SyncError};
use super::super::values::{
    email_value, found, from_raw, get_str, raw, text_value, touches, webcrm_id, webcrm_ms,
};
use super::{
    check_limits, cross_id_in, customer_in_event, customer_observed_as, email_keys, live_customers,
    meta_with, own_version, Limit,
};

pub const NAME: &str = "persons_customers";
/// Where a webCRM person created from a customer carries the customer id.
pub const DEFAULT_MARKER_FIELD: &str = "PersonCustom15";

const RULES: &[Rule] = &[
    Rule::both("first_name"),
    Rule::both("last_name"),
    Rule::both("email"),
    Rule::both("phone"),
    Rule::with("company", Flow::Write, Flow::Report),
    Rule::to_chargebee("billing_line1"),
    Rule::to_chargebee("billing_line2"),
    Rule::to_chargebee("billing_zip"),
    Rule::to_chargebee("billing_city"),
    Rule::to_chargebee("billing_state"),
    Rule::to_chargebee("billing_country"),
    Rule::to_chargebee("vat_number"),
    Rule::to_chargebee("webcrm_person_id"),
    Rule::to_chargebee("webcrm_organisation_id"),
];

const BILLING: &[&str] = &[
    "billing_line1",
    "billing_line2",
    "billing_zip",
    "billing_city",
    "billing_state",
    "billing_country",
    "vat_number",
];

const LIMITS: &[Limit] = &[
    ("first_name", 150),
    ("last_name", 150),
    ("email", 70),
    ("phone", 50),
    ("company", 250),
    ("billing_line1", 150),
    ("billing_line2", 150),
    ("billing_zip", 20),
    ("billing_city", 50),
    ("billing_state", 50),
    ("vat_number", 20),
];

/// webCRM requires a last name; `-` stands for "none" there.
const NO_LAST_NAME: &str = "-";

/// The person (with its organisation) as canonical fields.
pub fn webcrm_fields(person: &Person, org: Option<&Organisation>) -> Fields {
    let last = person
        .last_name
        .as_deref()
        .filter(|l| l.trim() != NO_LAST_NAME);
    let phone = text::clean(person.direct_phone.as_deref())
        .or_else(|| text::clean(person.mobile_phone.as_deref()));
    let (line1, line2) = org
        .and_then(|o| o.address.as_deref())
        .map(text::split_address)
        .unwrap_or((None, None));
    let country = org.and_then(|o| o.country.as_deref()).and_then(|c| {
        let iso = country::to_iso2(c);
        if iso.is_none() && !c.trim().is_empty() {
            tracing::warn!(
                country = c,
                "unknown country name is not written to Chargebee"
            );
        }
        iso
    });
    let mut f = Fields::new();
    f.insert(
        "first_name".into(),
        text_value(person.first_name.as_deref()),
    );
    f.insert("last_name".into(), text_value(last));
    f.insert("email".into(), email_value(person.email.as_deref()));
    f.insert(
        "phone".into(),
        phone.map(Value::String).unwrap_or(Value::Null),
    );
    f.insert(
        "company".into(),
        text_value(org.and_then(|o| o.name.as_deref())),
    );
    f.insert(
        "billing_line1".into(),
        line1.map(Value::String).unwrap_or(Value::Null),
    );
    f.insert(
        "billing_line2".into(),
        line2.map(Value::String).unwrap_or(Value::Null),
    );
    f.insert(
        "billing_zip".into(),
        text_value(org.and_then(|o| o.post_code.as_deref())),
    );
    f.insert(
        "billing_city".into(),
        text_value(org.and_then(|o| o.city.as_deref())),
    );
    f.insert(
        "billing_state".into(),
        text_value(org.and_then(|o| o.state.as_deref())),
    );
    f.insert(
        "billing_country".into(),
        country
            .map(|c| Value::String(c.into()))
            .unwrap_or(Value::Null),
    );
    f.insert(
        "vat_number".into(),
        text_value(org.and_then(|o| o.vat_number.as_deref())),
    );
    f.insert(
        "webcrm_person_id".into(),
        person
            .id
            .map(|i| json!(i.to_string()))
            .unwrap_or(Value::Null),
    );
    f.insert(
        "webcrm_organisation_id".into(),
        person
            .organisation_id
            .filter(|i| *i > 0)
            .map(|i| json!(i.to_string()))
            .unwrap_or(Value::Null),
    );
    f
}

/// The customer as canonical fields.
pub fn chargebee_fields(c: &Customer) -> Fields {
    let a = c.billing_address.clone().unwrap_or_default();
    let meta = |k: &str| {
        c.meta_data
            .as_ref()
            .and_then(|m| m.get(k))
            .map(|v| match v {
                Value::String(s) => text_value(Some(s)),
                Value::Number(n) => json!(n.to_string()),
                _ => Value::Null,
            })
            .unwrap_or(Value::Null)
    };
    let mut f = Fields::new();
    f.insert("first_name".into(), text_value(c.first_name.as_deref()));
    f.insert("last_name".into(), text_value(c.last_name.as_deref()));
    f.insert("email".into(), email_value(c.email.as_deref()));
    f.insert("phone".into(), text_value(c.phone.as_deref()));
    f.insert("company".into(), text_value(c.company.as_deref()));
    f.insert("billing_line1".into(), text_value(a.line1.as_deref()));
    f.insert("billing_line2".into(), text_value(a.line2.as_deref()));
    f.insert("billing_zip".into(), text_value(a.zip.as_deref()));
    f.insert("billing_city".into(), text_value(a.city.as_deref()));
    f.insert("billing_state".into(), text_value(a.state.as_deref()));
    f.insert(
        "billing_country".into(),
        text_value(a.country.as_deref())
            .as_str()
            .map_or(Value::Null, |c| json!(c.to_ascii_uppercase())),
    );
    f.insert("vat_number".into(), text_value(c.vat_number.as_deref()));
    f.insert("webcrm_person_id".into(), meta("webcrm_person_id"));
    f.insert(
        "webcrm_organisation_id".into(),
        meta("webcrm_organisation_id"),
    );
    f
}

fn owned(fields: &Fields, name: &str) -> Option<String> {
    get_str(fields, name).map(str::to_owned)
}

fn address_of(fields: &Fields) -> AddressInput {
    AddressInput {
        line1: owned(fields, "billing_line1"),
        line2: owned(fields, "billing_line2"),
        zip: owned(fields, "billing_zip"),
        city: owned(fields, "billing_city"),
        state: owned(fields, "billing_state"),
        country: owned(fields, "billing_country"),
        ..AddressInput::default()
    }
}

/// `POST /customers` for a person.
pub fn customer_create(id: &str, fields: &Fields) -> CustomerCreate {
    let address = address_of(fields);
    CustomerCreate {
        id: Some(id.to_owned()),
        first_name: owned(fields, "first_name"),
        last_name: owned(fields, "last_name"),
        email: owned(fields, "email"),
        phone: owned(fields, "phone"),
        company: owned(fields, "company"),
        vat_number: owned(fields, "vat_number"),
        meta_data: Some(meta_with(
            None,
            fields,
            &["webcrm_person_id", "webcrm_organisation_id"],
        )),
        billing_address: (address != AddressInput::default()).then_some(address),
        ..CustomerCreate::default()
    }
}

/// The customer update and billing-info update that apply `changes`.
pub fn customer_updates(
    changes: &Fields,
    current_meta: Option<&Value>,
) -> (Option<CustomerUpdate>, Option<BillingInfoUpdate>) {
    let mut clear = Vec::new();
    let mut set = |name: &str, param: &str| -> Option<String> {
        match changes.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                clear.push(param.to_owned());
                None
            }
            None => None,
        }
    };
    let update = CustomerUpdate {
        first_name: set("first_name", "first_name"),
        last_name: set("last_name", "last_name"),
        email: set("email", "email"),
        phone: set("phone", "phone"),
        company: set("company", "company"),
        meta_data: touches(changes, &["webcrm_person_id", "webcrm_organisation_id"]).then(|| {
            meta_with(
                current_meta,
                changes,
                &["webcrm_person_id", "webcrm_organisation_id"],
            )
        }),
        ..CustomerUpdate::default()
    };
    let update = CustomerUpdate { clear, ..update };
    let customer = (update != CustomerUpdate::default()).then_some(update);
    let billing = touches(changes, BILLING).then(|| {
        let mut clear = Vec::new();
        let mut pick = |name: &str, param: &str| match changes.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                clear.push(param.to_owned());
                None
            }
            None => None,
        };
        let address = AddressInput {
            line1: pick("billing_line1", "billing_address[line1]"),
            line2: pick("billing_line2", "billing_address[line2]"),
            zip: pick("billing_zip", "billing_address[zip]"),
            city: pick("billing_city", "billing_address[city]"),
            state: pick("billing_state", "billing_address[state]"),
            country: pick("billing_country", "billing_address[country]"),
            ..AddressInput::default()
        };
        let vat_number = pick("vat_number", "vat_number");
        BillingInfoUpdate {
            billing_address: (address != AddressInput::default()).then_some(address),
            vat_number,
            vat_number_prefix: None,
            clear,
        }
    });
    (customer, billing)
}

/// Puts the changes Chargebee may make onto the person.
pub fn apply_to_person(person: &mut Person, changes: &Fields) {
    let text = |name: &str| get_str(changes, name).map(str::to_owned);
    if changes.contains_key("first_name") {
        person.first_name = text("first_name");
    }
    if changes.contains_key("last_name") {
        person.last_name = Some(text("last_name").unwrap_or_else(|| NO_LAST_NAME.to_owned()));
    }
    if changes.contains_key("email") {
        person.email = text("email");
    }
    if changes.contains_key("phone") {
        person.direct_phone = text("phone");
    }
}

/// The person a new customer becomes.
pub fn person_for(fields: &Fields, organisation_id: i32) -> Person {
    let mut person = Person {
        organisation_id: Some(organisation_id),
        ..Person::default()
    };
    let all: Fields = fields
        .iter()
        .filter(|(k, _)| ["first_name", "last_name", "email", "phone"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut with_last = all;
    with_last.entry("last_name".into()).or_insert(Value::Null);
    apply_to_person(&mut person, &with_last);
    person
}

/// The organisation name a new customer's person goes under.
pub fn organisation_name(fields: &Fields) -> Option<String> {
    owned(fields, "company")
        .or_else(|| text::join_name(get_str(fields, "first_name"), get_str(fields, "last_name")))
}

pub struct PersonsCustomers;

impl PersonsCustomers {
    fn marker_field(cx: &SyncContext) -> String {
        cx.option(NAME, "marker_field")
            .unwrap_or_else(|| DEFAULT_MARKER_FIELD.to_owned())
    }

    /// The person with its organisation's details: read from the organisation, or taken
    /// from `known` (the link's snapshot) while the person is still in the organisation it
    /// shows. An organisation's own changes reach its persons through their own jobs (its
    /// hook expands to them, and those read it).
    async fn read_person(
        cx: &SyncContext,
        id: &str,
        known: Option<&Fields>,
    ) -> Result<Option<Observed>, SyncError> {
        let Some(person) = found(cx.webcrm.get_person(webcrm_id(id)?).await)? else {
            return Ok(None);
        };
        let org_id = person.organisation_id.filter(|i| *i > 0);
        if let Some(known) = known {
            let same_org = known.get("webcrm_organisation_id")
                == Some(&org_id.map_or(Value::Null, |i| json!(i.to_string())));
            if same_org {
                let mut observed = person_observed(id, &person, None);
                for field in std::iter::once(&"company").chain(BILLING) {
                    let value = known.get(*field).cloned().unwrap_or(Value::Null);
                    observed.fields.insert((*field).to_owned(), value);
                }
                return Ok(Some(observed));
            }
        }
        let org = match org_id {
            Some(org_id) => found(cx.webcrm.get_organisation(org_id).await)?,
            None => None,
        };
        Ok(Some(person_observed(id, &person, org.as_ref())))
    }

    /// The person an earlier, interrupted create made for `customer_id`, found by its marker.
    async fn person_by_marker(
        cx: &SyncContext,
        marker_field: &str,
        customer_id: &str,
    ) -> Result<Option<i32>, SyncError> {
        let ids = cx
            .webcrm
            .ids_where_text_is(Table::Person, marker_field, customer_id)
            .await?;
        Ok(ids.into_iter().find_map(|id| i32::try_from(id).ok()))
    }

    /// The organisation named `name` (case-insensitive), created when there is none.
    async fn organisation_for(cx: &SyncContext, name: &str) -> Result<i32, SyncError> {
        let same = |o: &Organisation| {
            o.name
                .as_deref()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(name.trim()))
        };
        let existing = cx
            .webcrm
            .find_organisations_by("OrganisationName", name)
            .await?;
        if let Some(id) = existing
            .iter()
            .filter(|o| same(o))
            .filter_map(|o| o.id)
            .min()
        {
            return Ok(id);
        }
        let org = Organisation {
            name: Some(name.to_owned()),
            ..Organisation::default()
        };
        // The name is the marker: a retry after an interrupted create finds the record.
        Ok(cx
            .webcrm
            .create_organisation_with_marker(&org, "OrganisationName", name)
            .await?)
    }

    async fn create_customer(cx: &SyncContext, source: &Observed) -> Result<Created, SyncError> {
        // A person the sync made for a customer whose link is not committed yet (the create
        // was interrupted, or its job is still running): link to that customer rather than
        // making a second one.
        let marker_field = Self::marker_field(cx);
        let made_for = source
            .raw
            .as_object()
            .and_then(|m| {
                m.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&marker_field))
            })
            .and_then(|(_, v)| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        if let Some(customer_id) = made_for {
            let linked_elsewhere = cx
                .store
                .link_by_chargebee(NAME, customer_id)
                .await?
                .is_some_and(|link| link.webcrm_id != source.id);
            // Linked to this person meanwhile: the commit finds the link and runs on it.
            if !linked_elsewhere {
                if let Some(customer) = read_customer(cx, customer_id).await? {
                    return Ok(Created::Found(customer_observed(&customer)));
                }
            }
        }
        let id = format!("wc-person-{}", source.id);
        check_limits(&source.fields, LIMITS)?;
        let params = customer_create(&id, &source.fields);
        match cx.chargebee.create_customer(&params, &id).await {
            Ok(c) => Ok(Created::Record(customer_observed(&c))),
            // Created by an earlier attempt: read it and link.
            Err(e) if is_duplicate(&e) => Ok(Created::Found(customer_observed(
                &cx.chargebee.retrieve_customer(&id).await?,
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn create_person(cx: &SyncContext, source: &Observed) -> Result<Created, SyncError> {
        let customer: Customer = from_raw(&source.raw, "customer")?;
        if belongs_to_a_user(&customer) {
            return Ok(Created::Skip(
                "the customer belongs to a webCRM user".into(),
            ));
        }
        // Made from a person whose link was lost: link to that person again.
        if let Some(person_id) = get_str(&source.fields, "webcrm_person_id") {
            if let Some(person) = Self::read_person(cx, person_id, None).await? {
                return Ok(Created::Found(person));
            }
        }
        if cx
            .store
            .link_by_chargebee(super::users_customers::NAME, &customer.id)
            .await?
            .is_some()
        {
            return Ok(Created::Skip(
                "the customer is linked to a webCRM user".into(),
            ));
        }
        let marker_field = Self::marker_field(cx);
        let existing = match cx
            .store
            .pending_create(NAME, "webcrm", &customer.id)
            .await?
        {
            Some(_) => Self::person_by_marker(cx, &marker_field, &customer.id).await?,
            None => None,
        };
        let (person_id, found) = match existing {
            Some(id) => (id, true),
            None => {
                let Some(org_name) = organisation_name(&source.fields) else {
                    return Ok(Created::Skip(
                        "the customer has neither a company nor a name".into(),
                    ));
                };
                let org_id = Self::organisation_for(cx, &org_name).await?;
                cx.store
                    .record_pending_create(
                        NAME,
                        "webcrm",
                        &customer.id,
                        &customer.id,
                        crate::store::now_ms(),
                    )
                    .await?;
                let person = person_for(&source.fields, org_id);
                let mut body = raw(&person);
                if let Value::Object(map) = &mut body {
                    map.insert(marker_field.clone(), json!(customer.id));
                }
                let person: Person = from_raw(&body, "person")?;
                (cx.webcrm.create_person(&person).await?, false)
            }
        };
        match Self::read_person(cx, &person_id.to_string(), None).await? {
            Some(observed) if found => Ok(Created::Found(observed)),
            Some(observed) => Ok(Created::Record(observed)),
            None => Err(SyncError::Api(
                crate::clients::outbound::ApiError::Transient(format!(
                    "webCRM person {person_id} was created but cannot be read yet"
                )),
            )),
        }
    }
}

fn person_observed(id: &str, person: &Person, org: Option<&Organisation>) -> Observed {
    Observed {
        id: id.to_owned(),
        fields: webcrm_fields(person, org),
        changed_at: webcrm_ms(person.updated_at).max(org.and_then(|o| webcrm_ms(o.updated_at))),
        version: person.updated_at.map(|t| t.to_rfc3339()),
        raw: raw(person),
    }
}

/// Customers made for webCRM users belong to `users_customers`.
fn belongs_to_a_user(customer: &Customer) -> bool {
    customer.id.starts_with("wc-user-")
        || customer
            .meta_data
            .as_ref()
            .is_some_and(|m| m.get("webcrm_user_id").is_some())
}

pub fn customer_observed(customer: &Customer) -> Observed {
    customer_observed_as(customer, chargebee_fields(customer))
}

/// Reads a customer; deleted or deprecated (moved to another business entity) is gone.
pub async fn read_customer(cx: &SyncContext, id: &str) -> Result<Option<Customer>, SyncError> {
    Ok(found(cx.chargebee.retrieve_customer(id).await)?.filter(|c| !c.deleted))
}

#[async_trait]
impl Pairing for PersonsCustomers {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rules(&self) -> &'static [Rule] {
        RULES
    }

    async fn expand(
        &self,
        cx: &SyncContext,
        side: Side,
        id: &str,
        _hint: &Value,
    ) -> Result<Expansion, SyncError> {
        // An organisation changed: its persons' company and billing details follow.
        match (side, id.strip_prefix("Organisations/")) {
            (Side::Webcrm, Some(org_id)) => {
                let persons: Vec<Person> = cx
                    .webcrm
                    .organisation_persons(webcrm_id(org_id)?)
                    .try_collect()
                    .await?;
                Ok(Expansion::Records(
                    persons
                        .iter()
                        .filter_map(|p| p.id)
                        .map(|p| (Side::Webcrm, p.to_string()))
                        .collect(),
                ))
            }
            _ => Ok(Expansion::Itself),
        }
    }

    async fn list(&self, cx: &SyncContext, side: Side) -> Result<Option<Vec<Observed>>, SyncError> {
        Ok(Some(match side {
            Side::Webcrm => {
                let orgs: HashMap<i32, Organisation> = cx
                    .webcrm
                    .organisations()
                    .try_filter_map(|o| async move { Ok(o.id.map(|id| (id, o))) })
                    .try_collect()
                    .await?;
                let persons: Vec<Person> = cx.webcrm.persons().try_collect().await?;
                persons
                    .iter()
                    .filter_map(|p| {
                        let org = p.organisation_id.and_then(|o| orgs.get(&o));
                        p.id.map(|id| person_observed(&id.to_string(), p, org))
                    })
                    .collect()
            }
            Side::Chargebee => live_customers(cx)
                .await?
                .iter()
                .filter(|c| !belongs_to_a_user(c))
                .map(customer_observed)
                .collect(),
        }))
    }

    fn reads_back_as_made(&self) -> bool {
        true
    }

    fn belongs_elsewhere(&self, side: Side, id: &str) -> bool {
        side == Side::Chargebee && id.starts_with("wc-user-")
    }

    fn match_keys(&self, _side: Side, record: &Observed) -> Vec<String> {
        email_keys(record)
    }

    fn cross_id(&self, _cx: &SyncContext, side: Side, record: &Observed) -> Option<String> {
        cross_id_in(side, record, "webcrm_person_id")
    }

    async fn read(
        &self,
        cx: &SyncContext,
        side: Side,
        id: &str,
        _hint: &Value,
    ) -> Result<Option<Observed>, SyncError> {
        match side {
            Side::Webcrm => Self::read_person(cx, id, None).await,
            Side::Chargebee => Ok(read_customer(cx, id).await?.as_ref().map(customer_observed)),
        }
    }

    async fn read_known(
        &self,
        cx: &SyncContext,
        side: Side,
        id: &str,
        hint: &Value,
        known: &Fields,
    ) -> Result<Option<Observed>, SyncError> {
        match side {
            Side::Webcrm => Self::read_person(cx, id, Some(known)).await,
            Side::Chargebee => self.read(cx, side, id, hint).await,
        }
    }

    fn record_from_event(&self, id: &str, content: &Value) -> Option<Observed> {
        customer_in_event(id, content)
            .as_ref()
            .map(customer_observed)
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
                let mut person: Person = from_raw(&current.raw, "person")?;
                apply_to_person(&mut person, changes);
                cx.webcrm
                    .update_person(webcrm_id(&current.id)?, &person)
                    .await?;
                Ok(None)
            }
            Side::Chargebee => {
                let mut target = current.fields.clone();
                target.extend(changes.clone());
                check_limits(&target, LIMITS)?;
                let meta = current.raw.get("meta_data");
                let (customer, billing) = customer_updates(changes, meta);
                let mut written = None;
                if let Some(update) = customer {
                    written = Some(
                        cx.chargebee
                            .update_customer(&current.id, &update, None)
                            .await?,
                    );
                }
                if let Some(billing) = billing {
                    written = Some(
                        cx.chargebee
                            .update_customer_billing_info(&current.id, &billing, None)
                            .await?,
                    );
                }
                Ok(written.and_then(|c| own_version(&customer_observed(&c), &target)))
            }
        }
    }

    async fn create(
        &self,
        cx: &SyncContext,
        from: Side,
        source: &Observed,
        hint: &Value,
    ) -> Result<Created, SyncError> {
        match from {
            Side::Webcrm => {
                let scope = cx
                    .option(NAME, "create_scope")
                    .unwrap_or_else(|| "all".into());
                // With `opportunity` scope a person gets a customer only when a synchronised
                // opportunity waits for it (its job names the waiting job).
                if scope == "opportunity" && hint.get("needed_by").is_none() {
                    return Ok(Created::Skip(
                        "create_scope=opportunity: created when an opportunity needs it".into(),
                    ));
                }
                Self::create_customer(cx, source).await
            }
            Side::Chargebee => Self::create_person(cx, source).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> Person {
        Person {
            id: Some(7),
            organisation_id: Some(3),
            first_name: Some(" Ada ".into()),
            last_name: Some("-".into()),
            email: Some("Ada@Example.COM".into()),
            mobile_phone: Some("+45 1234".into()),
            ..Person::default()
        }
    }

    fn org() -> Organisation {
        Organisation {
            id: Some(3),
            name: Some("Acme A/S".into()),
            address: Some("Vej 1\r\n2. sal".into()),
            post_code: Some("2100".into()),
            city: Some("København".into()),
            country: Some("Danmark".into()),
            vat_number: Some("DK12345678".into()),
            ..Organisation::default()
        }
    }

    #[test]
    fn person_maps_every_property() {
        let f = webcrm_fields(&person(), Some(&org()));
        assert_eq!(f["first_name"], json!("Ada"));
        assert_eq!(
            f["last_name"],
            Value::Null,
            "`-` is webCRM's empty last name"
        );
        assert_eq!(f["email"], json!("ada@example.com"));
        assert_eq!(
            f["phone"],
            json!("+45 1234"),
            "mobile when there is no direct phone"
        );
        assert_eq!(f["company"], json!("Acme A/S"));
        assert_eq!(f["billing_line1"], json!("Vej 1"));
        assert_eq!(f["billing_line2"], json!("2. sal"));
        assert_eq!(f["billing_zip"], json!("2100"));
        assert_eq!(f["billing_city"], json!("København"));
        assert_eq!(f["billing_country"], json!("DK"));
        assert_eq!(f["vat_number"], json!("DK12345678"));
        assert_eq!(f["webcrm_person_id"], json!("7"));
        assert_eq!(f["webcrm_organisation_id"], json!("3"));
    }

    #[test]
    fn create_then_read_back_gives_the_same_fields() {
        let f = webcrm_fields(&person(), Some(&org()));
        let params = customer_create("wc-person-7", &f);
        let customer = Customer {
            id: "wc-person-7".into(),
            first_name: params.first_name.clone(),
            last_name: params.last_name.clone(),
            email: params.email.clone(),
            phone: params.phone.clone(),
            company: params.company.clone(),
            vat_number: params.vat_number.clone(),
            meta_data: params.meta_data.clone(),
            billing_address: params.billing_address.as_ref().map(|a| {
                crate::clients::chargebee::Address {
                    line1: a.line1.clone(),
                    line2: a.line2.clone(),
                    zip: a.zip.clone(),
                    city: a.city.clone(),
                    country: a.country.clone(),
                    ..Default::default()
                }
            }),
            ..Customer::default()
        };
        assert_eq!(chargebee_fields(&customer), f);
    }

    #[test]
    fn cleared_fields_are_sent_blank_and_address_goes_to_billing_info() {
        let changes: Fields = serde_json::from_value(json!({
            "phone": null, "email": "b@x.io", "billing_city": "Aarhus", "billing_line2": null
        }))
        .unwrap();
        let (c, b) = customer_updates(&changes, None);
        let c = c.unwrap();
        assert_eq!(c.email.as_deref(), Some("b@x.io"));
        assert_eq!(c.clear, vec!["phone".to_string()]);
        let b = b.unwrap();
        assert_eq!(b.billing_address.unwrap().city.as_deref(), Some("Aarhus"));
        assert_eq!(b.clear, vec!["billing_address[line2]".to_string()]);
    }

    #[test]
    fn person_for_a_customer_without_last_name_gets_a_dash() {
        let f: Fields =
            serde_json::from_value(json!({"first_name": "Bo", "email": "bo@x.io"})).unwrap();
        let p = person_for(&f, 9);
        assert_eq!(p.last_name.as_deref(), Some("-"));
        assert_eq!(p.organisation_id, Some(9));
        assert_eq!(organisation_name(&f).as_deref(), Some("Bo"));
    }
}
