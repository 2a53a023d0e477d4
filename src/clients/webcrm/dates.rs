//! webCRM date-time values.
//!
//! The wire format is not pinned down by webCRM: values have been seen with an offset
//! (`+00:00`, `+02:00`, `Z`), possibly without one, with or without fractional seconds
//! (up to the seven digits .NET writes). "Unset" is .NET's `DateTime.MinValue`
//! (`0001-01-01T00:00:00…`), not null. [`parse_webcrm_datetime`] accepts all of these;
//! a value without an offset is taken as UTC.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};

/// Why a text is not a webCRM date-time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a webCRM date-time: {value:?}")]
pub struct DateParseError {
    /// The offending text (cut to 64 characters).
    pub value: String,
}

const NAIVE_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
];

const OFFSET_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M%z",
];

/// Parses a webCRM date-time.
///
/// Returns `Ok(None)` for an empty text and for `DateTime.MinValue` (any value on
/// 0001-01-01, whatever its offset), `Ok(Some(utc))` for a date-time with or without an
/// offset (none means UTC) or a bare date (midnight UTC), and for the legacy
/// `/Date(milliseconds[+hhmm])/` form. Never panics.
pub fn parse_webcrm_datetime(text: &str) -> Result<Option<DateTime<Utc>>, DateParseError> {
    let s = text.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.starts_with("0001-01-01") {
        return Ok(None);
    }
    let parsed = parse_with_offset(s)
        .or_else(|| parse_naive(s))
        .or_else(|| parse_ms_date(s));
    match parsed {
        // MinValue shifted by an offset lands in year 1 or 0: "unset" as well.
        Some(dt) if dt.year() <= 1 => Ok(None),
        Some(dt) => Ok(Some(dt)),
        None => Err(DateParseError {
            value: s.chars().take(64).collect(),
        }),
    }
}

fn parse_with_offset(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    OFFSET_FORMATS
        .iter()
        .find_map(|f| DateTime::parse_from_str(s, f).ok())
        .map(|dt| dt.with_timezone(&Utc))
}

fn parse_naive(s: &str) -> Option<DateTime<Utc>> {
    if let Some(naive) = NAIVE_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    {
        return Some(Utc.from_utc_datetime(&naive));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|naive| Utc.from_utc_datetime(&naive))
}

/// `/Date(1530167528000)/` or `/Date(1530167528000+0200)/` (old ASP.NET JSON).
fn parse_ms_date(s: &str) -> Option<DateTime<Utc>> {
    let inner = s.strip_prefix("/Date(")?.strip_suffix(")/")?;
    // The offset only says how the value was displayed; the milliseconds are UTC.
    let digits_end = inner
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map_or(inner.len(), |(i, _)| i);
    let ms: i64 = inner.get(..digits_end)?.parse().ok()?;
    DateTime::from_timestamp_millis(ms)
}

/// Formats an instant the way this client sends it: RFC 3339 in UTC with `Z`.
pub fn format_webcrm_datetime(value: &DateTime<Utc>) -> String {
    value.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Formats an instant for a `/Queries` literal: .NET's round-trip ("o") format in UTC,
/// `2018-06-04T08:23:55.0000000Z`, as webCRM's own integration writes it.
pub fn format_query_datetime(value: &DateTime<Utc>) -> String {
    format!(
        "{}.{:07}Z",
        value.format("%Y-%m-%dT%H:%M:%S"),
        value.timestamp_subsec_nanos() / 100
    )
}

/// Serde adapter for `Option<DateTime<Utc>>` properties.
pub mod serde_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    /// Writes [`super::format_webcrm_datetime`] or null.
    pub fn serialize<S: Serializer>(
        value: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(dt) => serializer.serialize_str(&super::format_webcrm_datetime(dt)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads null, or a text through [`super::parse_webcrm_datetime`].
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<Value>::deserialize(deserializer)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                super::parse_webcrm_datetime(&s).map_err(serde::de::Error::custom)
            }
            Some(other) => Err(serde::de::Error::custom(format!(
                "expected a date-time text, got {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_format_has_seven_fraction_digits() {
        let dt = Utc.with_ymd_and_hms(2018, 6, 4, 8, 23, 55).single();
        assert_eq!(
            dt.map(|d| format_query_datetime(&d)).as_deref(),
            Some("2018-06-04T08:23:55.0000000Z")
        );
    }
}
