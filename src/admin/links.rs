//! `links`: what is linked to what, why a record did or did not sync, manual link and unlink.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::params::{
    conflict, lookahead, not_found, opt_text, opt_time, page, paged, text, time, Body, IdPath,
    Pairing,
};
use super::ErrorResponse;
use crate::http::{ApiError, AppState};
use crate::store::admin::{Link, LinkFilter, NewLink, NewSyncLog, SyncLogEntry};
use crate::store::now_ms;

/// How many sync-log entries a link's detail carries.
const RECENT_SYNC_LOG: i64 = 50;

/// A link between a webCRM record and a Chargebee record within one pairing.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkDto {
    pub id: i64,
    pub pairing: String,
    pub webcrm_id: String,
    pub chargebee_id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Null until a sync went through the link.
    #[schema(format = DateTime)]
    pub last_synced_at: Option<String>,
    /// Set when one of the two records was deleted; null while both exist.
    #[schema(format = DateTime)]
    pub tombstoned_at: Option<String>,
    /// The webCRM record's version (its `UpdatedAt`) at the last sync.
    pub webcrm_version: Option<String>,
    /// The Chargebee record's `resource_version` at the last sync.
    pub chargebee_version: Option<String>,
}

impl From<&Link> for LinkDto {
    fn from(l: &Link) -> Self {
        LinkDto {
            id: l.id,
            pairing: l.pairing.clone(),
            webcrm_id: l.webcrm_id.clone(),
            chargebee_id: l.chargebee_id.clone(),
            created_at: time(l.created_at),
            last_synced_at: opt_time(l.last_synced_at),
            tombstoned_at: opt_time(l.tombstoned_at),
            webcrm_version: l.webcrm_version.clone(),
            chargebee_version: l.chargebee_version.clone(),
        }
    }
}

/// What was written where and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncLogDto {
    pub id: i64,
    pub pairing: String,
    pub link_id: Option<i64>,
    pub webcrm_id: Option<String>,
    pub chargebee_id: Option<String>,
    pub job_id: Option<i64>,
    /// E.g. `updated_chargebee`, `no_change`, `skipped`, `link_created`, `unlinked`.
    pub action: String,
    /// Details of the action (fields written, the reason for a skip, …).
    pub detail: Value,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&SyncLogEntry> for SyncLogDto {
    fn from(e: &SyncLogEntry) -> Self {
        SyncLogDto {
            id: e.id,
            pairing: e.pairing.clone(),
            link_id: e.link_id,
            webcrm_id: e.webcrm_id.clone(),
            chargebee_id: e.chargebee_id.clone(),
            job_id: e.job_id,
            action: e.action.clone(),
            detail: serde_json::from_str(&e.detail).unwrap_or(Value::String(e.detail.clone())),
            created_at: time(e.created_at),
        }
    }
}

/// A link with its last-synced snapshot and its most recent sync-log entries (newest first).
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkDetail {
    #[serde(flatten)]
    pub link: LinkDto,
    /// The canonical field values both records had at the last sync.
    pub snapshot: Value,
    pub sync_log: Vec<SyncLogDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkPage {
    pub items: Vec<LinkDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// Only links of this pairing.
    pub pairing: Option<Pairing>,
    /// Only the link of this webCRM record id (empty: any).
    #[param(max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub webcrm_id: Option<String>,
    /// Only the link of this Chargebee record id (empty: any).
    #[param(max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub chargebee_id: Option<String>,
    /// `true`: only tombstoned links; `false`: only live ones.
    pub tombstoned: Option<bool>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page (empty: the first page).
    pub cursor: Option<String>,
}

/// A manual link between two existing records.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLinkBody {
    pub pairing: Pairing,
    /// The webCRM record id (surrounding blanks are dropped).
    #[schema(
        max_length = 256,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub webcrm_id: String,
    /// The Chargebee record id (surrounding blanks are dropped).
    #[schema(
        max_length = 256,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub chargebee_id: String,
}

/// List links, newest first.
#[utoipa::path(
    get, path = "/links", operation_id = "list_links", tag = "links",
    params(LinkQuery),
    responses(
        (status = 200, description = "A page of links", body = LinkPage),
        (status = 400, description = "A bad filter, limit or cursor", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
    )
)]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<LinkQuery>,
) -> Result<Json<LinkPage>, ApiError> {
    let page = page(q.limit, q.cursor.as_deref())?;
    let filter = LinkFilter {
        pairing: q.pairing.map(|p| p.as_str().to_string()),
        webcrm_id: opt_text("webcrm_id", q.webcrm_id.as_deref())?,
        chargebee_id: opt_text("chargebee_id", q.chargebee_id.as_deref())?,
        tombstoned: q.tombstoned,
    };
    let rows = state.store.list_links(&filter, lookahead(page)).await?;
    let (rows, next_cursor) = paged(rows, page, |l| l.id);
    Ok(Json(LinkPage {
        items: rows.iter().map(LinkDto::from).collect(),
        next_cursor,
    }))
}

/// One link with its snapshot and recent sync-log entries ("why did this sync, or not").
#[utoipa::path(
    get, path = "/links/{id}", operation_id = "get_link", tag = "links",
    params(("id" = i64, Path, description = "Link id")),
    responses(
        (status = 200, description = "The link", body = LinkDetail),
        (status = 400, description = "A bad id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 404, description = "No such link", body = ErrorResponse),
    )
)]
pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<LinkDetail>, ApiError> {
    let link = state
        .store
        .get_link(id)
        .await?
        .ok_or_else(|| not_found("link", id))?;
    let log = state
        .store
        .sync_log_for_link(&link, RECENT_SYNC_LOG)
        .await?;
    Ok(Json(LinkDetail {
        link: LinkDto::from(&link),
        snapshot: serde_json::from_str(&link.snapshot).unwrap_or_else(|_| json!({})),
        sync_log: log.iter().map(SyncLogDto::from).collect(),
    }))
}

/// Link two existing records by hand (e.g. when the first-sync matching found none, or two).
#[utoipa::path(
    post, path = "/links", operation_id = "create_link", tag = "links",
    request_body = NewLinkBody,
    responses(
        (status = 201, description = "Linked", body = LinkDto,
         headers(("location" = String, description = "The new link's URL")),
         links(
             ("GetLink" = (operation_id = "get_link",
                           parameters(("id" = "$response.body#/id")))),
             ("DeleteLink" = (operation_id = "delete_link",
                              parameters(("id" = "$response.body#/id")))),
         )),
        (status = 400, description = "A bad body", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 409, description = "One of the records is already linked in the pairing",
         body = ErrorResponse),
    )
)]
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    Body(body): Body<NewLinkBody>,
) -> Result<impl IntoResponse, ApiError> {
    let pairing = body.pairing.as_str();
    let new = NewLink {
        pairing: pairing.to_string(),
        webcrm_id: text("webcrm_id", &body.webcrm_id)?,
        chargebee_id: text("chargebee_id", &body.chargebee_id)?,
        snapshot: "{}".into(),
    };
    let now = now_ms();
    let link = match state.store.insert_link(&new, now).await? {
        Ok(link) => link,
        Err(taken) => {
            let value = if taken.side == "webcrm_id" {
                &new.webcrm_id
            } else {
                &new.chargebee_id
            };
            let holder = taken
                .existing_link_id
                .map(|id| format!(" by link {id}"))
                .unwrap_or_default();
            return Err(conflict(format!(
                "{}: {value:?} is already linked in {pairing}{holder} ({})",
                taken.side, taken.constraint
            )));
        }
    };
    state
        .store
        .append_sync_log(
            &NewSyncLog {
                pairing: link.pairing.clone(),
                link_id: Some(link.id),
                webcrm_id: Some(link.webcrm_id.clone()),
                chargebee_id: Some(link.chargebee_id.clone()),
                job_id: None,
                action: "link_created".into(),
                detail: json!({ "by": "admin" }),
            },
            now,
        )
        .await?;
    let location = format!("/admin/v1/links/{}", link.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(LinkDto::from(&link)),
    ))
}

/// Unlink: the two records stay as they are and are no longer kept in sync with each other.
#[utoipa::path(
    delete, path = "/links/{id}", operation_id = "delete_link", tag = "links",
    params(("id" = i64, Path, description = "Link id")),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 400, description = "A bad id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 404, description = "No such link", body = ErrorResponse),
    )
)]
pub async fn delete(
    _: Admin,
    State(state): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    let link = state
        .store
        .delete_link(id)
        .await?
        .ok_or_else(|| not_found("link", id))?;
    state
        .store
        .append_sync_log(
            &NewSyncLog {
                pairing: link.pairing.clone(),
                link_id: Some(link.id),
                webcrm_id: Some(link.webcrm_id.clone()),
                chargebee_id: Some(link.chargebee_id.clone()),
                job_id: None,
                action: "unlinked".into(),
                detail: json!({ "by": "admin" }),
            },
            now_ms(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
