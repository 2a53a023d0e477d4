//! `POST /webhooks/chargebee` and `POST /webhooks/webcrm/{entity}/{token}`: verify, store
//! and enqueue in one transaction, then answer. A 2xx means the event is durably stored.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{ApiError, AppState};
use crate::intake::{chargebee, webcrm, SyncTarget, POLL_JOB};
use crate::store::{now_ms, NewInboundEvent, NewJob, Recorded};

fn count(source: &'static str, outcome: &'static str) {
    metrics::counter!("webhooks_received_total", "source" => source, "outcome" => outcome)
        .increment(1);
}

fn unauthorized(source: &'static str, challenge: &'static str, message: &str) -> Response {
    count(source, "unauthorized");
    tracing::warn!(source, "webhook with wrong or missing credentials");
    let mut response = ApiError::unauthorized(message).into_response();
    if let Ok(v) = header::HeaderValue::from_str(challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// Stores the event with its jobs and wakes the workers; a database failure is a 503 so
/// the sender retries instead of believing the event was taken.
async fn store(
    state: &AppState,
    source: &'static str,
    event: NewInboundEvent,
    jobs: Vec<NewJob>,
) -> Result<Recorded, ApiError> {
    match state
        .store
        .record_inbound(&event, &jobs, event.received_at)
        .await
    {
        Ok(recorded) => {
            if matches!(&recorded, Recorded::Stored { jobs } if !jobs.is_empty()) {
                state.queue.notify();
            }
            Ok(recorded)
        }
        Err(e) => {
            count(source, "unavailable");
            tracing::error!(error = %e, "could not store an inbound event");
            Err(ApiError::unavailable(
                "the event could not be stored; retry later",
            ))
        }
    }
}

fn enabled_targets(state: &AppState, targets: Vec<SyncTarget>) -> Vec<SyncTarget> {
    targets
        .into_iter()
        .filter(|t| state.config.pairing(t.pairing).is_some_and(|p| p.enabled))
        .collect()
}

pub async fn chargebee(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(credentials) = state.intake.chargebee.as_ref() else {
        return ApiError::unavailable("Chargebee webhooks are not configured").into_response();
    };
    let Some(verified) = chargebee::authenticate(&headers, credentials, &body) else {
        return unauthorized(
            "chargebee",
            "Basic realm=\"webcrm-chargebee-sync\"",
            "wrong or missing HTTP Basic credentials",
        );
    };
    let now = now_ms();
    let envelope = match verified.parse() {
        Ok(e) => e,
        Err(message) => {
            // Kept in the event log (without the body) so operators see what was refused.
            let event = NewInboundEvent {
                source: "chargebee".into(),
                event_id: None,
                event_type: None,
                outcome: "rejected".into(),
                detail: Some(message.clone()),
                body: None,
                received_at: now,
                subject: None,
            };
            if let Err(e) = store(&state, "chargebee", event, Vec::new()).await {
                return e.into_response();
            }
            count("chargebee", "rejected");
            return ApiError::bad_request(message).into_response();
        }
    };
    let enabled = |p: &str| state.config.pairing(p).is_some_and(|p| p.enabled);
    let (jobs, ignored) =
        chargebee::jobs_for(&envelope, &enabled, now, state.config.queue.max_attempts);
    let outcome = if ignored.is_some() {
        "ignored"
    } else {
        "accepted"
    };
    let event = NewInboundEvent {
        source: "chargebee".into(),
        event_id: Some(envelope.id.clone()),
        event_type: Some(envelope.event_type.clone()),
        outcome: outcome.into(),
        detail: ignored.map(str::to_string),
        body: Some(String::from_utf8_lossy(verified.raw()).into_owned()),
        received_at: now,
        subject: None,
    };
    match store(&state, "chargebee", event, jobs).await {
        Ok(Recorded::Duplicate) => {
            count("chargebee", "duplicate");
            (StatusCode::OK, Json(json!({ "status": "duplicate" }))).into_response()
        }
        Ok(Recorded::Stored { jobs }) => {
            count("chargebee", outcome);
            let body = json!({ "status": outcome, "jobs": jobs.len(), "reason": ignored });
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub async fn webcrm(
    State(state): State<AppState>,
    Path((entity, token)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(secret) = state.intake.webcrm_secret.as_ref() else {
        return ApiError::unavailable("webCRM hooks are not configured").into_response();
    };
    let Some(hook) = webcrm::entity(&entity) else {
        count("webcrm", "unknown_entity");
        return ApiError::not_found(format!("no webCRM hook endpoint for entity `{entity}`"))
            .into_response();
    };
    if !webcrm::token_matches(secret, hook.collection, &token) {
        return unauthorized("webcrm", "Bearer", "wrong hook token");
    }
    let now = now_ms();
    let max_attempts = state.config.queue.max_attempts;
    let note = webcrm::read_notification(hook, &body);
    let jobs: Vec<NewJob> = match &note.id {
        Some(id) => {
            let targets = webcrm::targets(hook, id, note.event_type.as_deref());
            enabled_targets(&state, targets)
                .into_iter()
                .map(|t| t.into_job(now, max_attempts))
                .collect()
        }
        // No id to go on: look at what changed in that entity right away.
        None => vec![NewJob {
            kind: POLL_JOB.into(),
            pairing: None,
            dedupe_key: format!("poll:webcrm:{}", hook.collection),
            payload: json!({ "source": "webcrm", "entity": hook.collection }),
            run_at: now,
            max_attempts,
        }],
    };
    let outcome = if jobs.is_empty() {
        "ignored"
    } else {
        "accepted"
    };
    let event = NewInboundEvent {
        source: "webcrm".into(),
        event_id: None,
        event_type: Some(format!(
            "{}.{}",
            hook.collection,
            note.event_type.as_deref().unwrap_or("Unknown")
        )),
        outcome: outcome.into(),
        detail: match (&note.id, outcome) {
            (_, "ignored") => Some("every pairing it concerns is disabled".into()),
            (None, _) => Some("no record id in the payload; polling the entity".into()),
            _ => None,
        },
        body: Some(String::from_utf8_lossy(&body).into_owned()),
        received_at: now,
        subject: note
            .id
            .as_ref()
            .map(|id| webcrm::hook_subject(hook.collection, id)),
    };
    match store(&state, "webcrm", event, jobs).await {
        Ok(recorded) => {
            count("webcrm", outcome);
            let jobs = match recorded {
                Recorded::Stored { jobs } => jobs.len(),
                Recorded::Duplicate => 0,
            };
            (
                StatusCode::OK,
                Json(json!({ "status": outcome, "jobs": jobs })),
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}
