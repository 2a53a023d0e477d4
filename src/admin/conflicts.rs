//! `conflicts`: fields both sides changed since the last sync; an operator picks the side.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::params::{
    conflict, lookahead, not_found, opt_time, page, paged, time, Body, IdPath, Pairing, Side,
};
use super::ErrorResponse;
use crate::http::{ApiError, AppState};
use crate::store::admin::{Conflict, ConflictFilter};
use crate::store::now_ms;

/// A field both sides changed since the last sync. The merge kept `winner`'s value (the newer
/// change) and keeps the other here until an operator resolves it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictDto {
    pub id: i64,
    pub pairing: String,
    /// Null when the link was removed since.
    pub link_id: Option<i64>,
    pub webcrm_id: Option<String>,
    pub chargebee_id: Option<String>,
    pub field: String,
    pub webcrm_value: Option<String>,
    pub chargebee_value: Option<String>,
    #[schema(format = DateTime)]
    pub webcrm_changed_at: Option<String>,
    #[schema(format = DateTime)]
    pub chargebee_changed_at: Option<String>,
    /// `webcrm` or `chargebee`: the side whose value the merge kept.
    pub winner: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub resolved_at: Option<String>,
    /// `keep_webcrm` or `keep_chargebee` once resolved.
    pub resolution: Option<String>,
}

impl From<&Conflict> for ConflictDto {
    fn from(c: &Conflict) -> Self {
        ConflictDto {
            id: c.id,
            pairing: c.pairing.clone(),
            link_id: c.link_id,
            webcrm_id: c.webcrm_id.clone(),
            chargebee_id: c.chargebee_id.clone(),
            field: c.field.clone(),
            webcrm_value: c.webcrm_value.clone(),
            chargebee_value: c.chargebee_value.clone(),
            webcrm_changed_at: opt_time(c.webcrm_changed_at),
            chargebee_changed_at: opt_time(c.chargebee_changed_at),
            winner: c.winner.clone(),
            created_at: time(c.created_at),
            resolved_at: opt_time(c.resolved_at),
            resolution: c.resolution.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictPage {
    pub items: Vec<ConflictDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConflictQuery {
    /// Only conflicts of this pairing.
    pub pairing: Option<Pairing>,
    /// `false` (default): open conflicts; `true`: resolved ones.
    pub resolved: Option<bool>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page (empty: the first page).
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// The side whose value both records get.
    pub keep: Side,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Resolved {
    pub conflict: ConflictDto,
    /// The sync job that writes the kept value to the other side.
    pub job_id: i64,
}

/// List conflicts, newest first (open ones unless `resolved=true`).
#[utoipa::path(
    get, path = "/conflicts", operation_id = "list_conflicts", tag = "conflicts",
    params(ConflictQuery),
    responses(
        (status = 200, description = "A page of conflicts", body = ConflictPage),
        (status = 400, description = "A bad filter, limit or cursor", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
    )
)]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<ConflictQuery>,
) -> Result<Json<ConflictPage>, ApiError> {
    let page = page(q.limit, q.cursor.as_deref())?;
    let filter = ConflictFilter {
        pairing: q.pairing.map(|p| p.as_str().to_string()),
        resolved: q.resolved.unwrap_or(false),
    };
    let rows = state.store.list_conflicts(&filter, lookahead(page)).await?;
    let (rows, next_cursor) = paged(rows, page, |c| c.id);
    Ok(Json(ConflictPage {
        items: rows.iter().map(ConflictDto::from).collect(),
        next_cursor,
    }))
}

/// One conflict.
#[utoipa::path(
    get, path = "/conflicts/{id}", operation_id = "get_conflict", tag = "conflicts",
    params(("id" = i64, Path, description = "Conflict id")),
    responses(
        (status = 200, description = "The conflict", body = ConflictDto),
        (status = 400, description = "A bad id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 404, description = "No such conflict", body = ErrorResponse),
    )
)]
pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<ConflictDto>, ApiError> {
    let c = state
        .store
        .get_conflict(id)
        .await?
        .ok_or_else(|| not_found("conflict", id))?;
    Ok(Json(ConflictDto::from(&c)))
}

/// Resolve a conflict by picking the side to keep. Records the resolution and enqueues a
/// sync job for the link; the merge then writes the kept value to the other side.
#[utoipa::path(
    post, path = "/conflicts/{id}/resolve", operation_id = "resolve_conflict", tag = "conflicts",
    params(("id" = i64, Path, description = "Conflict id")),
    request_body = ResolveBody,
    responses(
        (status = 200, description = "Resolved; the sync job is queued", body = Resolved),
        (status = 400, description = "A bad id or body", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 404, description = "No such conflict", body = ErrorResponse),
        (status = 409, description = "Already resolved, or its link was removed",
         body = ErrorResponse),
    )
)]
pub async fn resolve(
    _: Admin,
    State(state): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    Body(body): Body<ResolveBody>,
) -> Result<Json<Resolved>, ApiError> {
    let c = state
        .store
        .get_conflict(id)
        .await?
        .ok_or_else(|| not_found("conflict", id))?;
    if c.resolved_at.is_some() {
        return Err(already_resolved(&c));
    }
    let Some(link_id) = c.link_id else {
        return Err(conflict(format!(
            "conflict {id}'s link was removed; link the records again to sync them"
        )));
    };
    let keep = body.keep.as_str();
    // Enqueue first: if recording the resolution fails, asking again re-enqueues the same
    // (deduplicated) job; the other order could leave a resolution nothing writes.
    let queue = &state.queue;
    let pairing = c.pairing.as_str();
    let job = queue.job(
        "sync",
        Some(pairing),
        format!("sync:{pairing}:link:{link_id}"),
        json!({
            "link_id": link_id,
            "resolution": { "conflict_id": c.id, "field": c.field, "keep": keep },
        }),
    );
    let job_id = queue.enqueue(&job).await?;
    let now = now_ms();
    if !state
        .store
        .resolve_conflict(id, &format!("keep_{keep}"), now)
        .await?
    {
        let current = state.store.get_conflict(id).await?;
        return Err(match current {
            Some(c) => already_resolved(&c),
            None => not_found("conflict", id),
        });
    }
    let c = state
        .store
        .get_conflict(id)
        .await?
        .ok_or_else(|| not_found("conflict", id))?;
    Ok(Json(Resolved {
        conflict: ConflictDto::from(&c),
        job_id,
    }))
}

fn already_resolved(c: &Conflict) -> ApiError {
    conflict(format!(
        "conflict {} is already resolved ({})",
        c.id,
        c.resolution.as_deref().unwrap_or("resolved")
    ))
}
