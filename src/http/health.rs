//! `/healthz`, `/readyz` and `/metrics`.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::{ApiError, AppState};
use crate::config::PAIRINGS;
use crate::store::{now_ms, JobState};

/// Liveness: the process answers. Never touches the database, so a database blip does not
/// get every replica restarted.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the database answers and every migration is applied; 503 while shutting down.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::unavailable("shutting down"));
    }
    state
        .store
        .readiness()
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(json!({ "status": "ready" })))
}

/// Prometheus text. Queue gauges are read from the database at scrape time, so every replica
/// reports the same shared queue.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Err(e) = refresh_queue_gauges(&state).await {
        tracing::warn!(error = %e, "could not read queue gauges");
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn refresh_queue_gauges(state: &AppState) -> crate::store::StoreResult<()> {
    let counts = state.store.job_counts().await?;
    let by_key: HashMap<(String, String), i64> = counts
        .into_iter()
        .map(|c| ((c.pairing.unwrap_or_else(|| "-".into()), c.state), c.count))
        .collect();
    // Every label pair is set, so a state that emptied reads 0 rather than its last value.
    for pairing in PAIRINGS.iter().copied().chain(["-"]) {
        for job_state in JobState::ALL {
            let n = by_key
                .get(&(pairing.to_string(), job_state.as_str().to_string()))
                .copied()
                .unwrap_or(0);
            metrics::gauge!("jobs", "pairing" => pairing, "state" => job_state.as_str())
                .set(n as f64);
        }
    }
    let lag = state
        .store
        .oldest_waiting_run_at()
        .await?
        .map(|run_at| (now_ms() - run_at).max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    metrics::gauge!("queue_lag_seconds").set(lag);
    Ok(())
}
