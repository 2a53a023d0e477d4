//! `POST /register-webhooks`: the `register-webhooks` command, for operators without a shell.

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::ErrorResponse;
use crate::http::{ApiError, AppState};
use crate::register::{self, RegisterError};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RegisterParams {
    /// Only compute the plan; change nothing in either system.
    #[serde(default)]
    pub dry_run: bool,
}

/// What registering planned (and, unless a dry run, did).
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResult {
    pub dry_run: bool,
    /// One line per endpoint or hook: `create`, `update`, `unchanged` or `skip`, with the
    /// URL (webCRM hook tokens masked).
    pub actions: Vec<String>,
    /// Endpoints and hooks to create (created, unless a dry run).
    pub create: usize,
    /// Endpoints and hooks to update (updated, unless a dry run).
    pub update: usize,
    pub unchanged: usize,
}

fn api_error(e: RegisterError) -> ApiError {
    match e {
        RegisterError::PublicUrl(_)
        | RegisterError::Config(_)
        | RegisterError::EndpointLimit { .. } => ApiError::bad_request(e.to_string()),
        RegisterError::StalePlan { .. } | RegisterError::Api { .. } => ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "upstream",
            e.to_string(),
        ),
    }
}

/// Create or update our Chargebee webhook endpoint and webCRM hooks pointing at
/// `PUBLIC_URL`. Idempotent; never deletes what it did not create.
#[utoipa::path(
    post, path = "/register-webhooks", operation_id = "register_webhooks", tag = "webhooks",
    params(RegisterParams),
    responses(
        (status = 200, description = "The plan, applied unless a dry run", body = RegisterResult),
        (status = 400, description = "PUBLIC_URL or credentials missing, or a bad parameter", body = ErrorResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
        (status = 502, description = "Chargebee or webCRM refused or failed", body = ErrorResponse),
    )
)]
pub async fn register_webhooks(
    _: Admin,
    State(state): State<AppState>,
    Query(params): Query<RegisterParams>,
) -> Result<Json<RegisterResult>, ApiError> {
    let plan = register::plan(&state.config).await.map_err(api_error)?;
    if !params.dry_run {
        register::apply(&state.config, &plan)
            .await
            .map_err(api_error)?;
    }
    let counts = plan.counts();
    Ok(Json(RegisterResult {
        dry_run: params.dry_run,
        actions: plan.lines(),
        create: counts.create,
        update: counts.update,
        unchanged: counts.unchanged,
    }))
}
