//! The admin REST API under `/admin/v1`: see and steer the sync (links, jobs, conflicts,
//! pending actions, inbound events, pairings). Bearer-token authenticated (`ADMIN_TOKEN`,
//! several comma-separated for rotation), JSON in and out, instants as RFC 3339 in UTC.
//! `GET /admin/v1/openapi.json` serves the OpenAPI document generated from the handlers
//! below; it needs no token (it describes the API, it reveals no data).

mod auth;
pub(crate) mod conflicts;
mod events;
pub(crate) mod jobs;
pub(crate) mod links;
pub(crate) mod pairings;
pub(crate) mod params;
pub(crate) mod pending;
pub(crate) mod status;
mod webhooks;

use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

pub use auth::Admin;
pub use params::{Pairing, Side};

use crate::http::AppState;

/// The error body of every endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    /// Machine-readable: `bad_request`, `unauthorized`, `not_found`, `conflict`, `internal`, …
    pub code: String,
    /// What was wrong; for bad input it names the parameter.
    pub message: String,
}

/// The admin routes, relative to `/admin/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/status", get(status::status))
        .route("/links", get(links::list).post(links::create))
        .route("/links/{id}", get(links::get).delete(links::delete))
        .route("/jobs", get(jobs::list))
        .route("/jobs/retry-dead", post(jobs::retry_dead))
        .route("/jobs/{id}", get(jobs::get).delete(jobs::discard))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route("/conflicts", get(conflicts::list))
        .route("/conflicts/{id}", get(conflicts::get))
        .route("/conflicts/{id}/resolve", post(conflicts::resolve))
        .route("/pending-actions", get(pending::list))
        .route("/pending-actions/{id}", get(pending::get))
        .route("/pending-actions/{id}/dismiss", post(pending::dismiss))
        .route("/events", get(events::list))
        .route("/events/{id}", get(events::get))
        .route("/pairings/{name}/pause", post(pairings::pause))
        .route("/pairings/{name}/resume", post(pairings::resume))
        .route("/pairings/{name}/resync", post(pairings::resync))
        .route(
            "/pairings/{name}/resync/{job_id}",
            get(pairings::resync_status),
        )
        .route("/register-webhooks", post(webhooks::register_webhooks))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "webcrm-chargebee-sync admin API",
        description = "See and steer the webCRM–Chargebee sync: links, jobs, conflicts, \
            pending actions, inbound events and pairings. Every endpoint takes \
            `Authorization: Bearer <ADMIN_TOKEN>`. Instants are RFC 3339 in UTC. Lists are \
            newest first and paged with `limit` and the `next_cursor` of the previous page."
    ),
    servers((url = "/admin/v1")),
    paths(
        status::status,
        links::list,
        links::get,
        links::create,
        links::delete,
        jobs::list,
        jobs::get,
        jobs::retry,
        jobs::retry_dead,
        jobs::discard,
        conflicts::list,
        conflicts::get,
        conflicts::resolve,
        pending::list,
        pending::get,
        pending::dismiss,
        events::list,
        events::get,
        pairings::pause,
        pairings::resume,
        pairings::resync,
        pairings::resync_status,
        webhooks::register_webhooks,
    ),
    components(schemas(ErrorResponse, Pairing, Side, jobs::JobStateName, events::Outcome)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "status", description = "Pairings, queue, polls and budgets at a glance"),
        (name = "links", description = "Which records are linked; why a record did (not) sync"),
        (name = "jobs", description = "The job queue: list, retry, discard"),
        (name = "conflicts", description = "Fields both sides changed; pick the side to keep"),
        (name = "pending-actions", description = "Changes a target API cannot accept"),
        (name = "events", description = "The inbound webhook log"),
        (name = "pairings", description = "Pause, resume and resync a pairing"),
        (name = "webhooks", description = "Register our webhook endpoint and hooks"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("One of the tokens in ADMIN_TOKEN"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of this API, as served.
pub fn openapi() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    camel_case_links(&mut doc);
    doc
}

/// utoipa 5 writes a response link's `operationId`/`operationRef` in snake case; OpenAPI
/// tools ignore those names and then see a link without a target.
fn camel_case_links(doc: &mut serde_json::Value) {
    use serde_json::Value;
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let links = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(Value::as_object_mut))
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links").and_then(Value::as_object_mut))
        .flat_map(|links| links.values_mut())
        .filter_map(Value::as_object_mut);
    for link in links {
        for (from, to) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
        ] {
            if let Some(v) = link.remove(from) {
                link.insert(to.to_string(), v);
            }
        }
    }
}

async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn openapi_operation_ids_are_unique_and_links_name_their_target() {
        let doc = super::openapi();
        let mut ids = HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_string()), "{method} {path}: {id} twice");
                for response in op["responses"].as_object().unwrap().values() {
                    for (name, link) in response["links"].as_object().into_iter().flatten() {
                        let target = link["operationId"].as_str().unwrap_or_default();
                        assert!(!target.is_empty(), "{method} {path} link {name}: {link}");
                    }
                }
            }
        }
    }

    fn refs<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(|r| r.as_str()) {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn openapi_references_all_resolve() {
        let doc = super::openapi();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or(r);
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "unresolved {r}"
            );
        }
    }
}
