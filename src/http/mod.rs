//! The HTTP surface: router, shared state and the layers every request passes through.

mod error;
mod health;
mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::{code_for_status, ApiError, ErrorBody};

use crate::config::Config;
use crate::queue::Queue;
use crate::store::DynStore;

/// Largest accepted request body (webhooks included).
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;
/// A handler that takes longer is cut off with a 503; webhook senders give up after 5–15 s.
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    /// Wakes this process's workers after intake enqueued jobs.
    pub queue: Queue,
    pub config: Arc<Config>,
    pub intake: Arc<IntakeSettings>,
    /// The process's outbound limiters, for the admin status.
    pub limiters: crate::serve::Limiters,
    pub metrics: PrometheusHandle,
    /// Fired on SIGTERM/SIGINT: readiness fails from then on.
    pub shutdown: CancellationToken,
}

/// What the webhook endpoints verify against, prepared once from the configuration.
#[derive(Debug, Default)]
pub struct IntakeSettings {
    pub chargebee: Option<crate::intake::chargebee::Credentials>,
    pub webcrm_secret: Option<secrecy::SecretString>,
}

impl IntakeSettings {
    pub fn from_config(config: &Config) -> Self {
        IntakeSettings {
            chargebee: config
                .chargebee
                .as_ref()
                .map(|cb| crate::intake::chargebee::Credentials {
                    username: cb.webhook_username.clone(),
                    password: cb.webhook_password.clone(),
                }),
            webcrm_secret: config.webcrm.as_ref().map(|w| w.webhook_secret.clone()),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/webhooks/chargebee", post(webhooks::chargebee))
        .route("/webhooks/webcrm/{entity}/{token}", post(webhooks::webcrm))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .nest("/admin/v1", crate::admin::routes())
        .nest("/console", crate::console::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Innermost first; each `layer` call wraps everything above it.
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            HANDLER_TIMEOUT,
        ))
        .layer(middleware::map_response(json_errors))
        .layer(middleware::from_fn(record_metrics))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

fn request_span(req: &Request<Body>) -> tracing::Span {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let path = loggable_path(req.uri().path());
    tracing::info_span!("request", method = %req.method(), uri = %path, request_id = %id)
}

/// The path as logged: the token that authenticates webCRM hooks
/// (`/webhooks/webcrm/{entity}/{token}`) is a credential and is replaced.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    const HOOKS: &str = "/webhooks/webcrm/";
    match path.strip_prefix(HOOKS) {
        Some(rest) if rest.contains('/') => {
            let entity = rest.split('/').next().unwrap_or_default();
            std::borrow::Cow::Owned(format!("{HOOKS}{entity}/[REDACTED]"))
        }
        _ => std::borrow::Cow::Borrowed(path),
    }
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    // The route template, not the raw path, so ids and tokens don't become label values.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Turns error responses produced by layers or extractors (plain text or empty) into the
/// JSON error body, keeping their status and text.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!("request body exceeds {BODY_LIMIT} bytes"),
        StatusCode::SERVICE_UNAVAILABLE if text.is_empty() => {
            format!("request not handled within {}s", HANDLER_TIMEOUT.as_secs())
        }
        _ if text.is_empty() => status.canonical_reason().unwrap_or("error").to_string(),
        _ => text,
    };
    let mut out = ApiError::new(status, code_for_status(status), message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out
}
