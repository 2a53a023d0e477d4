//! Input shared by the admin endpoints: pairing names, paging, instants, request bodies,
//! and the 400/404/409 answers that name what was wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::ApiError;
use crate::store::admin::Page;
use crate::store::Millis;

/// A pairing of the operator contract (`crate::config::PAIRINGS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pairing {
    PersonsCustomers,
    UsersCustomers,
    OrganisationsBusinessEntities,
    OpportunitiesOrders,
    QuotationlinesOrders,
    ProductsItems,
}

impl Pairing {
    pub const ALL: [Pairing; 6] = [
        Pairing::PersonsCustomers,
        Pairing::UsersCustomers,
        Pairing::OrganisationsBusinessEntities,
        Pairing::OpportunitiesOrders,
        Pairing::QuotationlinesOrders,
        Pairing::ProductsItems,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Pairing::PersonsCustomers => "persons_customers",
            Pairing::UsersCustomers => "users_customers",
            Pairing::OrganisationsBusinessEntities => "organisations_business_entities",
            Pairing::OpportunitiesOrders => "opportunities_orders",
            Pairing::QuotationlinesOrders => "quotationlines_orders",
            Pairing::ProductsItems => "products_items",
        }
    }

    pub fn parse(name: &str) -> Option<Pairing> {
        Pairing::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// The two systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Webcrm,
    Chargebee,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Webcrm => "webcrm",
            Side::Chargebee => "chargebee",
        }
    }
}

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;
/// Longest accepted free-text filter or id.
pub const MAX_TEXT: usize = 256;

/// The page a list request asks for; `limit` defaults to 50 and may be 1 to 500, `cursor` is
/// a `next_cursor` this API answered earlier.
pub fn page(limit: Option<i64>, cursor: Option<&str>) -> Result<Page, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: must be between 1 and {MAX_LIMIT}, got {limit}"
        )));
    }
    let before = cursor
        .filter(|c| !c.trim().is_empty())
        .map(decode_cursor)
        .transpose()?;
    Ok(Page { before, limit })
}

/// The items of a page and the cursor of the next one: the store is asked for one row more
/// than the limit, and that row's presence says whether a next page exists.
pub fn paged<T>(mut rows: Vec<T>, page: Page, id: impl Fn(&T) -> i64) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(|r| encode_cursor(id(r)));
        (rows, next)
    } else {
        (rows, None)
    }
}

/// `page` with room for the look-ahead row.
pub fn lookahead(page: Page) -> Page {
    Page {
        limit: page.limit + 1,
        ..page
    }
}

const CURSOR_PREFIX: &str = "before:";

pub fn encode_cursor(id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{id}"))
}

pub fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::bad_request("cursor: not a cursor this API returned (use next_cursor)");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix(CURSOR_PREFIX)
        .and_then(|id| id.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(bad)
}

/// An instant as RFC 3339 in UTC with milliseconds.
pub fn time(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn opt_time(ms: Option<Millis>) -> Option<String> {
    ms.map(time)
}

/// An instant given as RFC 3339 (`2026-11-25T10:00:00Z`) or as unix milliseconds.
pub fn parse_instant(name: &str, value: &str) -> Result<Millis, ApiError> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(ms) = value.parse::<i64>() {
            if DateTime::<Utc>::from_timestamp_millis(ms).is_some() {
                return Ok(ms);
            }
        }
    } else if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.timestamp_millis());
    }
    Err(ApiError::bad_request(format!(
        "{name}: expected an RFC 3339 time (2026-11-25T10:00:00Z) or unix milliseconds, got {value:?}"
    )))
}

/// A free-text filter or id: not blank, at most 256 characters, no control characters.
pub fn text(name: &str, value: &str) -> Result<String, ApiError> {
    // Control characters are refused before trimming: some (tab, vertical tab) count as
    // whitespace and would otherwise be trimmed away silently.
    if value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{name}: must not contain control characters"
        )));
    }
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::bad_request(format!("{name}: must not be empty")));
    }
    if trimmed.chars().count() > MAX_TEXT {
        return Err(ApiError::bad_request(format!(
            "{name}: longer than {MAX_TEXT} characters"
        )));
    }
    Ok(trimmed.to_string())
}

/// An optional free-text filter; empty (or blank) means not given.
pub fn opt_text(name: &str, value: Option<&str>) -> Result<Option<String>, ApiError> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| text(name, v))
        .transpose()
}

/// An optional instant filter; empty means not given.
pub fn parse_opt_instant(name: &str, value: Option<&str>) -> Result<Option<Millis>, ApiError> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| parse_instant(name, v))
        .transpose()
}

pub fn not_found(what: &str, id: impl std::fmt::Display) -> ApiError {
    ApiError::not_found(format!("no {what} with id {id}"))
}

pub fn unknown_pairing(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "no pairing named {name:?}; pairings: {}",
        Pairing::ALL.map(Pairing::as_str).join(", ")
    ))
}

pub fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "conflict", message)
}

/// `{id}` in a path; a path struct so a bad value's message names the parameter.
#[derive(Debug, Deserialize)]
pub struct IdPath {
    pub id: i64,
}

/// A JSON request body; anything wrong with it is a 400 that says what.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(body_error(rejection.status(), rejection.body_text())),
        }
    }
}

/// A JSON request body that may be left out: no body, or `null`, means the defaults.
pub struct OptionalBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e.status(), e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody(T::default()));
        }
        match Json::<Option<T>>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(OptionalBody(value.unwrap_or_default())),
            Err(rejection) => Err(body_error(rejection.status(), rejection.body_text())),
        }
    }
}

/// Anything wrong with a body is a 400, except one over the size limit (413).
fn body_error(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "payload_too_large",
            format!("request body exceeds {} bytes", crate::http::BODY_LIMIT),
        )
    } else {
        ApiError::bad_request(format!("request body: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_names_match_the_operator_contract() {
        let names: Vec<&str> = Pairing::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(names, crate::config::PAIRINGS);
        for p in Pairing::ALL {
            let json = serde_json::to_value(p).unwrap();
            assert_eq!(json, p.as_str());
        }
    }

    #[test]
    fn text_refuses_control_characters_even_where_trimming_would_hide_them() {
        for bad in ["abc\u{b}", "\tabc", "a\u{0}b", "abc\u{85}"] {
            let err = text("chargebee_id", bad).unwrap_err();
            assert!(
                err.message.starts_with("chargebee_id:"),
                "{bad:?}: {}",
                err.message
            );
        }
        assert_eq!(text("chargebee_id", " cust_1 ").unwrap(), "cust_1");
    }

    #[test]
    fn cursor_round_trips_and_rejects_foreign_text() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        for bad in ["", "42", "!!", &encode_cursor(0), "YmVmb3JlOng"] {
            let err = decode_cursor(bad).unwrap_err();
            assert!(err.message.starts_with("cursor:"), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn instants_parse_from_rfc3339_and_millis() {
        assert_eq!(
            parse_instant("since", "1970-01-01T00:00:01Z").unwrap(),
            1000
        );
        assert_eq!(parse_instant("since", "1500").unwrap(), 1500);
        assert_eq!(
            parse_instant("since", "2026-11-25T11:00:00+01:00").unwrap(),
            parse_instant("since", "2026-11-25T10:00:00Z").unwrap()
        );
        let err = parse_instant("until", "yesterday").unwrap_err();
        assert!(err.message.starts_with("until:"));
        assert!(parse_instant("until", "99999999999999999999").is_err());
        assert_eq!(time(1500), "1970-01-01T00:00:01.500Z");
    }

    #[test]
    fn paged_sets_a_cursor_only_when_more_rows_exist() {
        let page = Page {
            before: None,
            limit: 2,
        };
        let (items, next) = paged(vec![9, 8, 7], page, |r| *r);
        assert_eq!(items, vec![9, 8]);
        assert_eq!(decode_cursor(&next.unwrap()).unwrap(), 8);
        let (items, next) = paged(vec![9, 8], page, |r| *r);
        assert_eq!(items, vec![9, 8]);
        assert!(next.is_none());
    }
}
