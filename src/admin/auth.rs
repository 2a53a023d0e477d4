//! Bearer-token authentication: every admin endpoint takes [`Admin`] as its first argument.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::http::{ApiError, AppState};

/// Proof that the request carried one of the configured admin tokens
/// (`ADMIN_TOKEN`, a comma-separated list so tokens can be rotated).
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "missing bearer token: send `Authorization: Bearer <ADMIN_TOKEN>`",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        match token {
            // Compared in constant time against every configured token.
            Some(token) if !token.is_empty() && state.config.is_admin_token(token) => Ok(Admin),
            Some(_) => Err(unauthorized("invalid admin token")),
            None => Err(unauthorized(
                "the Authorization header must be `Bearer <ADMIN_TOKEN>`",
            )),
        }
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::unauthorized(message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"admin\""),
    );
    response
}
