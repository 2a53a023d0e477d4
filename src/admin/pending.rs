//! `pending-actions`: changes a target API cannot accept, waiting for a human.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::params::{conflict, lookahead, not_found, opt_time, page, paged, time, IdPath, Pairing};
use super::ErrorResponse;
use crate::http::{ApiError, AppState};
use crate::store::admin::{PendingAction, PendingActionFilter};
use crate::store::now_ms;

/// A change the target API cannot accept (e.g. a field it does not let us write), waiting
/// for a human. One open action per pairing, kind and subject.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingActionDto {
    pub id: i64,
    pub pairing: String,
    pub kind: String,
    /// What it is about, e.g. `person:123`.
    pub subject: String,
    pub webcrm_id: Option<String>,
    pub chargebee_id: Option<String>,
    /// What a human has to do.
    pub message: String,
    pub details: Value,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub closed_at: Option<String>,
    pub closed_reason: Option<String>,
}

impl From<&PendingAction> for PendingActionDto {
    fn from(a: &PendingAction) -> Self {
        PendingActionDto {
            id: a.id,
            pairing: a.pairing.clone(),
            kind: a.kind.clone(),
            subject: a.subject.clone(),
            webcrm_id: a.webcrm_id.clone(),
            chargebee_id: a.chargebee_id.clone(),
            message: a.message.clone(),
            details: serde_json::from_str(&a.details).unwrap_or(Value::String(a.details.clone())),
            created_at: time(a.created_at),
            updated_at: time(a.updated_at),
            closed_at: opt_time(a.closed_at),
            closed_reason: a.closed_reason.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PendingActionPage {
    pub items: Vec<PendingActionDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PendingActionQuery {
    /// Only actions of this pairing.
    pub pairing: Option<Pairing>,
    /// `false` (default): open actions; `true`: closed ones.
    pub closed: Option<bool>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page (empty: the first page).
    pub cursor: Option<String>,
}

/// List pending actions, newest first (open ones unless `closed=true`).
#[utoipa::path(
    get, path = "/pending-actions", operation_id = "list_pending_actions", tag = "pending-actions",
    params(PendingActionQuery),
    responses(
        (status = 200, description = "A page of pending actions", body = PendingActionPage),
        (status = 400, description = "A bad filter, limit or cursor", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
    )
)]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<PendingActionQuery>,
) -> Result<Json<PendingActionPage>, ApiError> {
    let page = page(q.limit, q.cursor.as_deref())?;
    let filter = PendingActionFilter {
        pairing: q.pairing.map(|p| p.as_str().to_string()),
        closed: q.closed.unwrap_or(false),
    };
    let rows = state
        .store
        .list_pending_actions(&filter, lookahead(page))
        .await?;
    let (rows, next_cursor) = paged(rows, page, |a| a.id);
    Ok(Json(PendingActionPage {
        items: rows.iter().map(PendingActionDto::from).collect(),
        next_cursor,
    }))
}

/// One pending action.
#[utoipa::path(
    get, path = "/pending-actions/{id}", operation_id = "get_pending_action", tag = "pending-actions",
    params(("id" = i64, Path, description = "Pending action id")),
    responses(
        (status = 200, description = "The pending action", body = PendingActionDto),
        (status = 400, description = "A bad id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 404, description = "No such pending action", body = ErrorResponse),
    )
)]
pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<PendingActionDto>, ApiError> {
    let a = state
        .store
        .get_pending_action(id)
        .await?
        .ok_or_else(|| not_found("pending action", id))?;
    Ok(Json(PendingActionDto::from(&a)))
}

/// Dismiss a pending action (it was handled by hand, or does not matter).
#[utoipa::path(
    post, path = "/pending-actions/{id}/dismiss", operation_id = "dismiss_pending_action", tag = "pending-actions",
    params(("id" = i64, Path, description = "Pending action id")),
    responses(
        (status = 200, description = "Dismissed", body = PendingActionDto),
        (status = 400, description = "A bad id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 404, description = "No such pending action", body = ErrorResponse),
        (status = 409, description = "Already closed", body = ErrorResponse),
    )
)]
pub async fn dismiss(
    _: Admin,
    State(state): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<PendingActionDto>, ApiError> {
    let closed = state
        .store
        .close_pending_action(id, "dismissed by an operator", now_ms())
        .await?;
    let a = state
        .store
        .get_pending_action(id)
        .await?
        .ok_or_else(|| not_found("pending action", id))?;
    if !closed {
        return Err(conflict(format!(
            "pending action {id} is already closed ({})",
            a.closed_reason.as_deref().unwrap_or("closed")
        )));
    }
    Ok(Json(PendingActionDto::from(&a)))
}
