//! `pairings/{name}`: pause, resume, and the first-sync resync as a job.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::auth::Admin;
use super::params::{not_found, opt_time, time, unknown_pairing, OptionalBody, Pairing};
use super::ErrorResponse;
use crate::http::{ApiError, AppState};
use crate::store::now_ms;

#[derive(Debug, Deserialize)]
pub struct NamePath {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct ResyncPath {
    name: String,
    job_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PairingPaused {
    pub pairing: String,
    /// Paused pairings' jobs stay queued and are not run.
    pub paused: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResyncBody {
    /// Plan only: report every planned link, create and update, write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResyncStarted {
    /// Follow it at `GET /pairings/{name}/resync/{job_id}`.
    pub job_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResyncStatus {
    pub job_id: i64,
    pub pairing: String,
    /// `pending`, `running`, `failed` or `dead`. A finished resync leaves the queue (404).
    pub state: String,
    pub dry_run: bool,
    pub attempts: i32,
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub run_at: String,
    #[schema(format = DateTime)]
    pub lease_until: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

fn pairing(name: &str) -> Result<Pairing, ApiError> {
    Pairing::parse(name).ok_or_else(|| unknown_pairing(name))
}

async fn set_paused(
    state: &AppState,
    name: &str,
    paused: bool,
) -> Result<Json<PairingPaused>, ApiError> {
    let p = pairing(name)?.as_str();
    state.store.set_pairing_paused(p, paused, now_ms()).await?;
    Ok(Json(PairingPaused {
        pairing: p.to_string(),
        paused,
    }))
}

/// Pause a pairing: its jobs stay queued and no worker runs them until it is resumed.
#[utoipa::path(
    post, path = "/pairings/{name}/pause", operation_id = "pause_pairing", tag = "pairings",
    params(("name" = Pairing, Path, description = "Pairing name")),
    responses(
        (status = 200, description = "Paused", body = PairingPaused),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 404, description = "No such pairing", body = ErrorResponse),
    )
)]
pub async fn pause(
    _: Admin,
    State(state): State<AppState>,
    Path(NamePath { name }): Path<NamePath>,
) -> Result<Json<PairingPaused>, ApiError> {
    set_paused(&state, &name, true).await
}

/// Resume a paused pairing.
#[utoipa::path(
    post, path = "/pairings/{name}/resume", operation_id = "resume_pairing", tag = "pairings",
    params(("name" = Pairing, Path, description = "Pairing name")),
    responses(
        (status = 200, description = "Resumed", body = PairingPaused),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 404, description = "No such pairing", body = ErrorResponse),
    )
)]
pub async fn resume(
    _: Admin,
    State(state): State<AppState>,
    Path(NamePath { name }): Path<NamePath>,
) -> Result<Json<PairingPaused>, ApiError> {
    set_paused(&state, &name, false).await
}

/// Start a resync (first-sync matching and repair) of a pairing as a job. A resync already
/// waiting for the pairing absorbs the request (same job id).
#[utoipa::path(
    post, path = "/pairings/{name}/resync", operation_id = "start_resync", tag = "pairings",
    params(("name" = Pairing, Path, description = "Pairing name")),
    request_body(content = Option<ResyncBody>, description = "Optional; `{}` or no body for a real run"),
    responses(
        (status = 202, description = "Queued", body = ResyncStarted,
         links(("GetResync" = (operation_id = "get_resync",
                               parameters(("name" = "$request.path.name"),
                                          ("job_id" = "$response.body#/job_id")))))),
        (status = 400, description = "A bad body", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 404, description = "No such pairing", body = ErrorResponse),
    )
)]
pub async fn resync(
    _: Admin,
    State(state): State<AppState>,
    Path(NamePath { name }): Path<NamePath>,
    OptionalBody(body): OptionalBody<ResyncBody>,
) -> Result<(StatusCode, Json<ResyncStarted>), ApiError> {
    let p = pairing(&name)?.as_str();
    let queue = &state.queue;
    let job = queue.job(
        "resync",
        Some(p),
        format!("resync:{p}"),
        json!({ "pairing": p, "dry_run": body.dry_run }),
    );
    let job_id = queue.enqueue(&job).await?;
    Ok((StatusCode::ACCEPTED, Json(ResyncStarted { job_id })))
}

/// The state of a resync job.
#[utoipa::path(
    get, path = "/pairings/{name}/resync/{job_id}", operation_id = "get_resync", tag = "pairings",
    params(
        ("name" = Pairing, Path, description = "Pairing name"),
        ("job_id" = i64, Path, description = "The id `POST …/resync` answered"),
    ),
    responses(
        (status = 200, description = "The resync job", body = ResyncStatus),
        (status = 400, description = "A bad job id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 404, description = "No such pairing, or no such resync job (finished jobs leave the queue; the sync log has what they did)",
         body = ErrorResponse),
    )
)]
pub async fn resync_status(
    _: Admin,
    State(state): State<AppState>,
    Path(ResyncPath { name, job_id }): Path<ResyncPath>,
) -> Result<Json<ResyncStatus>, ApiError> {
    let p = pairing(&name)?.as_str();
    let job = state
        .store
        .get_job(job_id)
        .await?
        .filter(|j| j.kind == "resync" && j.pairing.as_deref() == Some(p))
        .ok_or_else(|| {
            let mut e = not_found("resync job", job_id);
            e.message.push_str(&format!(
                " for {p} (a finished resync leaves the queue; see the sync log)"
            ));
            e
        })?;
    let dry_run = job.payload_json()["dry_run"].as_bool().unwrap_or(false);
    Ok(Json(ResyncStatus {
        job_id: job.id,
        pairing: p.to_string(),
        state: job.state.clone(),
        dry_run,
        attempts: job.attempts,
        last_error: job.last_error.clone(),
        run_at: time(job.run_at),
        lease_until: opt_time(job.lease_until),
        created_at: time(job.created_at),
        updated_at: time(job.updated_at),
    }))
}
