//! `jobs`: the queue as operators see it; retry and discard.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::params::{
    conflict, lookahead, not_found, opt_text, opt_time, page, paged, time, IdPath, Pairing,
};
use super::ErrorResponse;
use crate::http::{ApiError, AppState};
use crate::store::admin::{DiscardOutcome, JobFilter, RetryOutcome};
use crate::store::{now_ms, Job};

/// Job states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStateName {
    /// Waiting to run at `run_at`.
    Pending,
    /// A worker holds it.
    Running,
    /// Failed at least once; waits for its retry at `run_at`.
    Failed,
    /// Out of attempts or failed permanently; needs an operator.
    Dead,
}

impl JobStateName {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStateName::Pending => "pending",
            JobStateName::Running => "running",
            JobStateName::Failed => "failed",
            JobStateName::Dead => "dead",
        }
    }
}

/// A queued job. Finished jobs leave the queue; the sync log keeps what they did.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobDto {
    pub id: i64,
    /// `sync`, `resync`, …
    pub kind: String,
    pub pairing: Option<String>,
    /// The record the job works on; jobs with one key run one at a time.
    pub dedupe_key: String,
    /// `pending`, `running`, `failed` or `dead`.
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    /// When it runs (next).
    #[schema(format = DateTime)]
    pub run_at: String,
    /// Why the last attempt failed (or what it waits for).
    pub last_error: Option<String>,
    /// The worker holding a running job.
    pub locked_by: Option<String>,
    #[schema(format = DateTime)]
    pub lease_until: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub payload: Value,
}

impl From<&Job> for JobDto {
    fn from(j: &Job) -> Self {
        JobDto {
            id: j.id,
            kind: j.kind.clone(),
            pairing: j.pairing.clone(),
            dedupe_key: j.dedupe_key.clone(),
            state: j.state.clone(),
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_at: time(j.run_at),
            last_error: j.last_error.clone(),
            locked_by: j.locked_by.clone(),
            lease_until: opt_time(j.lease_until),
            created_at: time(j.created_at),
            updated_at: time(j.updated_at),
            payload: j.payload_json(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<JobDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Only jobs in this state.
    pub state: Option<JobStateName>,
    /// Only jobs of this pairing.
    pub pairing: Option<Pairing>,
    /// Only jobs of this kind (`sync`, `resync`, …; empty: any).
    #[param(max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub kind: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page (empty: the first page).
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetriedJob {
    /// The job that will run: the retried one, or the waiting job for the same record it
    /// was folded into.
    pub job: JobDto,
    /// True when a job for the same record was already waiting and the dead one was folded
    /// into it.
    pub merged: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RetryDeadQuery {
    /// The pairing whose dead jobs to retry.
    pub pairing: Pairing,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetriedDead {
    pub pairing: String,
    /// How many dead jobs were put back in the queue.
    pub retried: u64,
}

/// List jobs, newest first, with their last error.
#[utoipa::path(
    get, path = "/jobs", operation_id = "list_jobs", tag = "jobs",
    params(JobQuery),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage),
        (status = 400, description = "A bad filter, limit or cursor", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
    )
)]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<JobQuery>,
) -> Result<Json<JobPage>, ApiError> {
    let page = page(q.limit, q.cursor.as_deref())?;
    let filter = JobFilter {
        state: q.state.map(|s| s.as_str().to_string()),
        pairing: q.pairing.map(|p| p.as_str().to_string()),
        kind: opt_text("kind", q.kind.as_deref())?,
    };
    let rows = state.store.list_jobs(&filter, lookahead(page)).await?;
    let (rows, next_cursor) = paged(rows, page, |j| j.id);
    Ok(Json(JobPage {
        items: rows.iter().map(JobDto::from).collect(),
        next_cursor,
    }))
}

/// One job.
#[utoipa::path(
    get, path = "/jobs/{id}", operation_id = "get_job", tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobDto),
        (status = 400, description = "A bad id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 404, description = "No such job (finished jobs leave the queue)",
         body = ErrorResponse),
    )
)]
pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<JobDto>, ApiError> {
    let job = state
        .store
        .get_job(id)
        .await?
        .ok_or_else(|| not_found("job", id))?;
    Ok(Json(JobDto::from(&job)))
}

/// Retry a failed or dead job now, with its attempts reset.
#[utoipa::path(
    post, path = "/jobs/{id}/retry", operation_id = "retry_job", tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job is pending and due now", body = RetriedJob),
        (status = 400, description = "A bad id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 404, description = "No such job", body = ErrorResponse),
        (status = 409, description = "The job is pending or running", body = ErrorResponse),
    )
)]
pub async fn retry(
    _: Admin,
    State(state): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<RetriedJob>, ApiError> {
    let (job_id, merged) = match state.store.retry_job(id, now_ms()).await? {
        RetryOutcome::NotFound => return Err(not_found("job", id)),
        RetryOutcome::NotRetryable(job_state) => {
            return Err(conflict(format!(
                "job {id} is {job_state}; only failed and dead jobs can be retried"
            )))
        }
        RetryOutcome::Retried(job_id) => (job_id, false),
        RetryOutcome::Merged(job_id) => (job_id, true),
    };
    let job = state
        .store
        .get_job(job_id)
        .await?
        // Claimed and finished in the meantime: it ran, which is what was asked.
        .ok_or_else(|| not_found("job", job_id))?;
    Ok(Json(RetriedJob {
        job: JobDto::from(&job),
        merged,
    }))
}

/// Retry every dead job of a pairing now, with attempts reset.
#[utoipa::path(
    post, path = "/jobs/retry-dead", operation_id = "retry_dead_jobs", tag = "jobs",
    params(RetryDeadQuery),
    responses(
        (status = 200, description = "How many dead jobs were retried", body = RetriedDead),
        (status = 400, description = "A missing or unknown pairing", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
    )
)]
pub async fn retry_dead(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<RetryDeadQuery>,
) -> Result<Json<RetriedDead>, ApiError> {
    let pairing = q.pairing.as_str();
    let retried = state.store.retry_dead_jobs(pairing, now_ms()).await?;
    Ok(Json(RetriedDead {
        pairing: pairing.to_string(),
        retried,
    }))
}

/// Discard a job that no worker holds.
#[utoipa::path(
    delete, path = "/jobs/{id}", operation_id = "discard_job", tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 204, description = "Discarded"),
        (status = 400, description = "A bad id", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 404, description = "No such job", body = ErrorResponse),
        (status = 409, description = "The job is running", body = ErrorResponse),
    )
)]
pub async fn discard(
    _: Admin,
    State(state): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    match state.store.discard_job(id).await? {
        DiscardOutcome::Discarded => Ok(StatusCode::NO_CONTENT),
        DiscardOutcome::NotFound => Err(not_found("job", id)),
        DiscardOutcome::Running => Err(conflict(format!(
            "job {id} is running; discard it once its attempt ended"
        ))),
    }
}
