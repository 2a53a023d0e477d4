//! One module per pairing (MAPPINGS.md): pure mapping functions plus the [`Pairing`]
//! implementation the engine drives.

pub mod opportunities_orders;
pub mod organisations_business_entities;
pub mod persons_customers;
pub mod products_items;
pub mod quotationlines_orders;
pub mod users_customers;

use std::sync::Arc;

use futures::TryStreamExt;
use serde_json::{Map, Value};

use crate::clients::chargebee::{Customer, ListQuery};
use crate::intake::Side;

use super::merge::{Fields, Observed};
use super::normalize::text;
use super::pairing::SyncContext;
use super::pairing::{Pairing, SyncError};
use super::values::get_str;
use super::values::{chargebee_ms, raw};

/// Every customer that is not deleted (`resync` and the reconciler of the two customer
/// pairings).
pub async fn live_customers(cx: &SyncContext) -> Result<Vec<Customer>, SyncError> {
    let customers: Vec<Customer> = cx
        .chargebee
        .list_all_customers(ListQuery::new().limit(100))
        .try_collect()
        .await?;
    Ok(customers.into_iter().filter(|c| !c.deleted).collect())
}

/// The live customer `id` as an event's content carries it (Chargebee sends the whole
/// resource with each event); `None` for another record, a deleted one, or one without a
/// version to order it by.
pub fn customer_in_event(id: &str, content: &Value) -> Option<Customer> {
    let customer: Customer = serde_json::from_value(content.get("customer")?.clone()).ok()?;
    (customer.id == id && !customer.deleted && customer.resource_version.is_some())
        .then_some(customer)
}

/// A customer as one of the customer pairings maps it.
pub fn customer_observed_as(customer: &Customer, fields: Fields) -> Observed {
    Observed {
        id: customer.id.clone(),
        fields,
        changed_at: chargebee_ms(customer.updated_at, customer.resource_version),
        version: customer.resource_version.map(|v| v.to_string()),
        raw: raw(customer),
    }
}

/// The version a Chargebee write answered with, kept as the sync's own only when the record
/// holds exactly what the write meant it to (`expected`: the fields as read, with the
/// changes). Chargebee updates are partial, so an edit made in Chargebee between the sync's
/// read and its write survives it and shows in the answer; its version is then not taken as
/// ours, so that the event of that version, which is also the edit's, is read and not
/// skipped as an echo.
pub fn own_version(written: &Observed, expected: &Fields) -> Option<String> {
    if written.fields == *expected {
        written.version.clone()
    } else {
        tracing::debug!(
            id = written.id,
            "the record changed between the read and the write"
        );
        None
    }
}

/// First-sync matching of the customer pairings: the e-mail (already lower case).
pub fn email_keys(record: &Observed) -> Vec<String> {
    get_str(&record.fields, "email")
        .map(|e| vec![format!("email:{e}")])
        .unwrap_or_default()
}

/// The webCRM id a Chargebee record keeps in the cross-id field `field`.
pub fn cross_id_in(side: Side, record: &Observed, field: &str) -> Option<String> {
    match side {
        Side::Chargebee => get_str(&record.fields, field).map(str::to_owned),
        Side::Webcrm => None,
    }
}

/// Every pairing of this version.
pub fn all() -> Vec<Arc<dyn Pairing>> {
    vec![
        Arc::new(persons_customers::PersonsCustomers),
        Arc::new(users_customers::UsersCustomers),
        Arc::new(organisations_business_entities::OrganisationsBusinessEntities),
        Arc::new(opportunities_orders::OpportunitiesOrders),
        Arc::new(quotationlines_orders::QuotationlinesOrders),
        Arc::new(products_items::ProductsItems),
    ]
}

/// A Chargebee length limit: (canonical field, maximum characters).
pub type Limit = (&'static str, usize);

/// Chargebee rejects values over its limits; say which field, before writing anything.
pub fn check_limits(fields: &Fields, limits: &[Limit]) -> Result<(), SyncError> {
    let errors: Vec<String> = limits
        .iter()
        .filter_map(|(field, max)| {
            text::check_len(field, get_str(fields, field), *max)
                .err()
                .map(|e| e.to_string())
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SyncError::Invalid(errors.join("; ")))
    }
}

/// Chargebee `meta_data` with our cross-id `keys` set from `fields`, keeping every other key
/// someone else stored there.
pub fn meta_with(current: Option<&Value>, fields: &Fields, keys: &[&str]) -> Value {
    let mut meta: Map<String, Value> = current
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for key in keys {
        match fields.get(*key) {
            Some(v) if !v.is_null() => {
                meta.insert((*key).to_owned(), v.clone());
            }
            _ => {
                meta.remove(*key);
            }
        }
    }
    Value::Object(meta)
}
