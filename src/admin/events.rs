//! `events`: the inbound webhook log, accepted and rejected alike. Request headers are never
//! stored, so none can be shown; bodies only in the single-event view.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::params::{
    lookahead, not_found, opt_text, page, paged, parse_opt_instant, time, IdPath, Side,
};
use super::ErrorResponse;
use crate::http::{ApiError, AppState};
use crate::store::admin::{EventFilter, InboundEvent};

/// What intake did with an inbound event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Verified, stored, and its sync jobs queued.
    Accepted,
    /// Verified but of no concern (an event type no pairing uses, a disabled pairing).
    Ignored,
    /// Refused: bad credentials or a malformed body.
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Ignored => "ignored",
            Outcome::Rejected => "rejected",
        }
    }
}

/// An inbound webhook (Chargebee) or hook (webCRM) as received.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDto {
    pub id: i64,
    /// `chargebee` or `webcrm`.
    pub source: String,
    /// The sender's event id, when it has one.
    pub event_id: Option<String>,
    /// The sender's event type.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// What intake did with it: `accepted`, `ignored` or `rejected`.
    pub outcome: String,
    /// Why, for rejected and ignored events.
    pub detail: Option<String>,
    #[schema(format = DateTime)]
    pub received_at: String,
}

impl From<&InboundEvent> for EventDto {
    fn from(e: &InboundEvent) -> Self {
        EventDto {
            id: e.id,
            source: e.source.clone(),
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            outcome: e.outcome.clone(),
            detail: e.detail.clone(),
            received_at: time(e.received_at),
        }
    }
}

/// An event with the body as received.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub event: EventDto,
    /// The request body as received (not stored for some rejected requests).
    pub body: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events from this system.
    pub source: Option<Side>,
    /// Only events of this type (e.g. `customer_changed`; empty: any).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    #[param(max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub event_type: Option<String>,
    /// Only events with this outcome.
    pub outcome: Option<Outcome>,
    /// Received at or after: RFC 3339 or unix milliseconds (empty: no bound).
    #[param(example = "2026-11-25T10:00:00Z")]
    pub since: Option<String>,
    /// Received before: RFC 3339 or unix milliseconds (empty: no bound).
    #[param(example = "1764064800000")]
    pub until: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page (empty: the first page).
    pub cursor: Option<String>,
}

/// List inbound events, newest first, without bodies.
#[utoipa::path(
    get, path = "/events", operation_id = "list_events", tag = "events",
    params(EventQuery),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "A bad filter, time, limit or cursor", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
    )
)]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<EventQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let page = page(q.limit, q.cursor.as_deref())?;
    let filter = EventFilter {
        source: q.source.map(|s| s.as_str().to_string()),
        event_type: opt_text("type", q.event_type.as_deref())?,
        outcome: q.outcome.map(|o| o.as_str().to_string()),
        since: parse_opt_instant("since", q.since.as_deref())?,
        until: parse_opt_instant("until", q.until.as_deref())?,
    };
    let rows = state
        .store
        .list_inbound_events(&filter, lookahead(page))
        .await?;
    let (rows, next_cursor) = paged(rows, page, |e| e.id);
    Ok(Json(EventPage {
        items: rows.iter().map(EventDto::from).collect(),
        next_cursor,
    }))
}

/// One inbound event with its body.
#[utoipa::path(
    get, path = "/events/{id}", operation_id = "get_event", tag = "events",
    params(("id" = i64, Path, description = "Event id (ours, not the sender's)")),
    responses(
        (status = 200, description = "The event", body = EventDetail),
        (status = 400, description = "A bad id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 404, description = "No such event", body = ErrorResponse),
    )
)]
pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<EventDetail>, ApiError> {
    let e = state
        .store
        .get_inbound_event(id)
        .await?
        .ok_or_else(|| not_found("event", id))?;
    Ok(Json(EventDetail {
        event: EventDto::from(&e),
        body: e.body.clone(),
    }))
}
