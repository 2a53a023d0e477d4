//! One module per pairing (MAPPINGS.md): pure mapping functions plus the [`Pairing`]
//! implementation the engine drives.

pub mod opportunities_orders;
pub mod organisations_business_entities;
pub mod persons_customers;
pub mod products_items;
pub mod quotationlines_orders;
pub mod users_customers;

use std::sync::Arc;

use serde_json::{Map, Value};

use super::merge::Fields;
use super::normalize::text;
use super::pairing::{Pairing, SyncError};
use super::values::get_str;

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
