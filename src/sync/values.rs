//! Small conversions every pairing uses between API values and canonical [`Fields`].

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::clients::outbound::ApiError;

use super::merge::Fields;
use super::normalize::text;

/// A text value: trimmed, blank is unset.
pub fn text_value(s: Option<&str>) -> Value {
    text::clean(s).map(Value::String).unwrap_or(Value::Null)
}

/// An e-mail address, compared and stored case-insensitively.
pub fn email_value(s: Option<&str>) -> Value {
    text::clean(s)
        .map(|e| Value::String(text::email_key(&e)))
        .unwrap_or(Value::Null)
}

/// The text of a canonical field, `None` when unset.
pub fn get_str<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields.get(name).and_then(Value::as_str)
}

/// Whether `changes` touches any of `names`.
pub fn touches(changes: &Fields, names: &[&str]) -> bool {
    names.iter().any(|n| changes.contains_key(*n))
}

/// Unix milliseconds of a webCRM instant.
pub fn webcrm_ms(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(|t| t.timestamp_millis())
}

/// When a Chargebee record last changed, in unix ms: `resource_version` is milliseconds,
/// `updated_at` seconds.
pub fn chargebee_ms(updated_at: Option<i64>, resource_version: Option<i64>) -> Option<i64> {
    resource_version.or(updated_at.map(|s| s.saturating_mul(1000)))
}

/// A read that found nothing is `None`, not an error.
pub fn found<T>(result: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(ApiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The record's JSON for [`Observed::raw`](super::merge::Observed).
pub fn raw<T: serde::Serialize>(record: &T) -> Value {
    serde_json::to_value(record).unwrap_or(Value::Null)
}

/// Decodes [`Observed::raw`](super::merge::Observed) back into the API's type.
pub fn from_raw<T: serde::de::DeserializeOwned>(raw: &Value, what: &str) -> Result<T, ApiError> {
    serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::Decode(format!("stored {what} could not be read back: {e}")))
}

/// Parses a webCRM numeric id out of a record id string.
pub fn webcrm_id(id: &str) -> Result<i32, super::pairing::SyncError> {
    id.parse().map_err(|_| {
        super::pairing::SyncError::Invalid(format!("{id:?} is not a webCRM record id"))
    })
}
