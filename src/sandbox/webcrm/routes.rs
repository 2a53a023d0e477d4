//! HTTP routes of the webCRM sandbox (same paths, methods and auth as the real API).

use std::collections::HashMap;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use crate::clients::webcrm::HookEntity;

use super::options::{Fault, LoginFailureStyle, SandboxEntity};
use super::query;
use super::state::{Actor, RecordedCall, Reject, WebcrmSandboxState};

/// Every route the sandbox serves, as (method, Swagger path template).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/Auth/ApiLogin"),
    ("GET", "/Organisations"),
    ("POST", "/Organisations"),
    ("GET", "/Organisations/{id}"),
    ("PUT", "/Organisations/{id}"),
    ("GET", "/Organisations/{id}/Persons"),
    ("GET", "/Persons"),
    ("POST", "/Persons"),
    ("GET", "/Persons/{id}"),
    ("PUT", "/Persons/{id}"),
    ("GET", "/Users"),
    ("POST", "/Users"),
    ("GET", "/Users/AllActive"),
    ("GET", "/Users/{id}"),
    ("PUT", "/Users/{id}"),
    ("GET", "/Opportunities"),
    ("POST", "/Opportunities"),
    ("GET", "/Opportunities/{id}"),
    ("PUT", "/Opportunities/{id}"),
    ("GET", "/Opportunities/{id}/QuotationLines"),
    ("GET", "/QuotationLines"),
    ("POST", "/QuotationLines"),
    ("GET", "/QuotationLines/{id}"),
    ("PUT", "/QuotationLines/{id}"),
    ("DELETE", "/QuotationLines/{id}"),
    ("GET", "/QuotationLines/LinkedData"),
    ("POST", "/QuotationLines/LinkedData"),
    ("GET", "/QuotationLines/LinkedData/{id}"),
    ("PUT", "/QuotationLines/LinkedData/{id}"),
    ("DELETE", "/QuotationLines/LinkedData/{id}"),
    ("GET", "/QuotationLines/LinkedSetup"),
    ("GET", "/Organisations/Hooks"),
    ("POST", "/Organisations/Hooks"),
    ("GET", "/Organisations/Hooks/{id}"),
    ("PUT", "/Organisations/Hooks/{id}"),
    ("DELETE", "/Organisations/Hooks/{id}"),
    ("GET", "/Persons/Hooks"),
    ("POST", "/Persons/Hooks"),
    ("GET", "/Persons/Hooks/{id}"),
    ("PUT", "/Persons/Hooks/{id}"),
    ("DELETE", "/Persons/Hooks/{id}"),
    ("GET", "/Users/Hooks"),
    ("POST", "/Users/Hooks"),
    ("GET", "/Users/Hooks/{id}"),
    ("PUT", "/Users/Hooks/{id}"),
    ("DELETE", "/Users/Hooks/{id}"),
    ("GET", "/Opportunities/Hooks"),
    ("POST", "/Opportunities/Hooks"),
    ("GET", "/Opportunities/Hooks/{id}"),
    ("PUT", "/Opportunities/Hooks/{id}"),
    ("DELETE", "/Opportunities/Hooks/{id}"),
    ("GET", "/QuotationLines/Hooks"),
    ("POST", "/QuotationLines/Hooks"),
    ("GET", "/QuotationLines/Hooks/{id}"),
    ("PUT", "/QuotationLines/Hooks/{id}"),
    ("DELETE", "/QuotationLines/Hooks/{id}"),
    ("GET", "/Queries"),
];

/// Header set on answers to paths the sandbox does not serve (router fallback).
pub const UNROUTED_HEADER: &str = "x-sandbox-unrouted";

type S = WebcrmSandboxState;

fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

fn ok_json(body: &Value) -> Response {
    json_response(200, body)
}

fn empty_ok() -> Response {
    StatusCode::OK.into_response()
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let mut resp = json_response(self.status, &self.body);
        if self.unrouted {
            resp.headers_mut()
                .insert(UNROUTED_HEADER, HeaderValue::from_static("1"));
        }
        resp
    }
}

fn parse_id(raw: &str) -> Result<i64, Reject> {
    // A non-numeric segment is another webCRM route (e.g. `/Persons/LinkedData`) that the
    // sandbox does not serve.
    raw.parse::<i64>().map_err(|_| Reject::unrouted())
}

fn parse_body(bytes: &[u8]) -> Result<Value, Reject> {
    serde_json::from_slice(bytes).map_err(|e| Reject::bad_request(format!("malformed JSON: {e}")))
}

/// Query parameters with case-insensitive names.
fn params(req_query: Option<&str>) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(req_query.unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

fn paging(state: &S, p: &HashMap<String, String>) -> Result<(usize, usize), Reject> {
    let default_size = state.options().default_page_size;
    let get = |name: &str, default: u32, max: u32| -> Result<u32, Reject> {
        match p.get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(Reject::invalid_field(
                    if name == "page" { "Page" } else { "Size" },
                    format!("The field must be between 1 and {max}."),
                )),
            },
        }
    };
    let page = get("page", 1, 1_000_000)?;
    let size = get("size", default_size, 1000)?;
    Ok((
        usize::try_from(page).unwrap_or(1),
        usize::try_from(size).unwrap_or(50),
    ))
}

fn page_of<T: Clone>(items: &[T], page: usize, size: usize) -> Vec<T> {
    items
        .iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .cloned()
        .collect()
}

// ----- middleware ------------------------------------------------------------------------

fn route_of(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) {
                "{id}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn gate(State(state): State<S>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let is_login = path.eq_ignore_ascii_case("/Auth/ApiLogin");
    let mut record = CallRecord {
        state: state.clone(),
        call: Some(RecordedCall {
            at: std::time::Instant::now(),
            method: req.method().to_string(),
            route: route_of(&path),
            path,
            status: 0,
        }),
    };
    let response = gate_inner(&state, req, next, is_login).await;
    if let Some(call) = record.call.as_mut() {
        call.status = response.status().as_u16();
    }
    response
}

/// Records a call when its handling ends, also when the client went away first (the
/// handler is then dropped, and the call keeps status 0).
struct CallRecord {
    state: S,
    call: Option<RecordedCall>,
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            self.state.record_call(call);
        }
    }
}

async fn gate_inner(state: &S, req: Request, next: Next, is_login: bool) -> Response {
    let request = format!("{} {}", req.method(), route_of(req.uri().path()));
    let mut fault = state.take_fault(is_login, &request);
    if let Some(Fault::Latency(d)) = fault {
        tokio::time::sleep(d).await;
        fault = None;
    }
    match fault {
        Some(Fault::RateLimit {
            retry_after_secs,
            header,
            body,
        }) => return throttled(retry_after_secs, header, body, 250),
        Some(Fault::ServerError(status)) => {
            return json_response(
                status,
                &json!({"Message": "An error has occurred.", "Type": "InternalServerError"}),
            )
        }
        Some(Fault::Unauthorized) => return unauthorized("expired"),
        Some(Fault::Latency(_) | Fault::LateAnswer(_)) | None => {}
    }
    if let Some(wait) = state.rate_limited() {
        let limit = state.options().rate_limit_per_minute.unwrap_or(250);
        return throttled(wait, true, true, limit);
    }
    if !is_login {
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        if let Err(reason) = state.check_token(token) {
            return unauthorized(reason);
        }
    }
    let response = next.run(req).await;
    if let Some(Fault::LateAnswer(delay)) = fault {
        // Handled already: a client that stops waiting loses only the answer.
        tokio::time::sleep(delay).await;
    }
    response
}

fn throttled(retry_after_secs: u64, header: bool, body: bool, limit: u32) -> Response {
    let mut content = json!({
        "Message": format!(
            "The request was throttled. The limit of {limit} requests per minute is reached"
        ),
        "Type": "TooManyRequestsException",
    });
    if body {
        content["RetryAfterSeconds"] = Value::from(retry_after_secs);
    }
    let mut resp = json_response(429, &content);
    if header {
        if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

fn unauthorized(reason: &str) -> Response {
    let value = match reason {
        "missing" => "Bearer".to_owned(),
        "expired" => {
            "Bearer error=\"invalid_token\", error_description=\"The token is expired\"".to_owned()
        }
        _ => "Bearer error=\"invalid_token\"".to_owned(),
    };
    let mut resp = StatusCode::UNAUTHORIZED.into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

async fn fallback() -> Response {
    Reject::unrouted().into_response()
}

// ----- handlers ---------------------------------------------------------------------------

async fn api_login(State(state): State<S>, req: Request) -> Response {
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = match axum::body::to_bytes(req.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(_) => return Reject::bad_request("body too large").into_response(),
    };
    let auth_code = if ctype.starts_with("application/x-www-form-urlencoded") {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .unwrap_or_default()
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authCode"))
            .map(|(_, v)| v)
    } else {
        None
    };
    match auth_code.and_then(|code| state.login(&code)) {
        Some((token, expires_in)) => ok_json(&json!({
            "AccessToken": token,
            "RefreshToken": super::state::random_guid(),
            "ExpiresIn": expires_in,
            "TokenType": "Bearer",
            "IsError": false,
            "Error": null,
            "ErrorDescription": null,
        })),
        None => {
            let body = json!({
                "AccessToken": null,
                "RefreshToken": null,
                "ExpiresIn": 0,
                "TokenType": null,
                "IsError": true,
                "Error": "invalid_grant",
                "ErrorDescription": "The API token is not valid",
            });
            match state.options().login_failure {
                LoginFailureStyle::IsErrorOk => ok_json(&body),
                LoginFailureStyle::BadRequest => json_response(400, &body),
                LoginFailureStyle::Unauthorized => StatusCode::UNAUTHORIZED.into_response(),
            }
        }
    }
}

fn list_entity(state: &S, entity: SandboxEntity, req: &Request) -> Result<Response, Reject> {
    let p = params(req.uri().query());
    let (page, size) = paging(state, &p)?;
    let all = state.records(entity);
    Ok(ok_json(&Value::Array(
        page_of(&all, page, size)
            .into_iter()
            .map(Value::Object)
            .collect(),
    )))
}

async fn create_entity(state: &S, entity: SandboxEntity, req: Request) -> Result<Response, Reject> {
    let bytes = axum::body::to_bytes(req.into_body(), 1024 * 1024)
        .await
        .map_err(|_| Reject::bad_request("body too large"))?;
    let body = parse_body(&bytes)?;
    let id = state.create(entity, body, Actor::Api)?;
    let returns_id = match entity {
        SandboxEntity::Organisation => state.options().organisation_post_returns_id,
        SandboxEntity::User => false,
        _ => true,
    };
    Ok(if returns_id {
        ok_json(&Value::from(id))
    } else {
        empty_ok()
    })
}

async fn get_entity(state: &S, entity: SandboxEntity, raw_id: &str) -> Result<Response, Reject> {
    let id = parse_id(raw_id)?;
    state
        .api_read(entity, id)
        .map(|r| ok_json(&Value::Object(r)))
        .ok_or_else(|| Reject::not_found(format!("{} with id {id} was not found", entity.prefix())))
}

async fn put_entity(
    state: &S,
    entity: SandboxEntity,
    raw_id: &str,
    req: Request,
) -> Result<Response, Reject> {
    let id = parse_id(raw_id)?;
    let bytes = axum::body::to_bytes(req.into_body(), 1024 * 1024)
        .await
        .map_err(|_| Reject::bad_request("body too large"))?;
    let body = parse_body(&bytes)?;
    let semantics = state.options().put_semantics;
    state.update(entity, id, body, Actor::Api, semantics)?;
    Ok(empty_ok())
}

fn collection(entity: SandboxEntity) -> Router<S> {
    Router::new()
        .route(
            entity.path(),
            get(move |State(s): State<S>, req: Request| async move {
                list_entity(&s, entity, &req).into_response()
            })
            .post(move |State(s): State<S>, req: Request| async move {
                create_entity(&s, entity, req).await.into_response()
            }),
        )
        .route(
            &format!("{}/{{id}}", entity.path()),
            get(
                move |State(s): State<S>, Path(id): Path<String>| async move {
                    get_entity(&s, entity, &id).await.into_response()
                },
            )
            .put(
                move |State(s): State<S>, Path(id): Path<String>, req: Request| async move {
                    put_entity(&s, entity, &id, req).await.into_response()
                },
            ),
        )
}

async fn delete_entity(state: &S, entity: SandboxEntity, raw_id: &str) -> Response {
    let result = parse_id(raw_id).and_then(|id| state.delete(entity, id, Actor::Api));
    match result {
        Ok(()) => empty_ok(),
        Err(r) => r.into_response(),
    }
}

fn children(
    state: &S,
    parent: SandboxEntity,
    child: SandboxEntity,
    link_field: &str,
    raw_id: &str,
    req: &Request,
) -> Result<Response, Reject> {
    let id = parse_id(raw_id)?;
    if state.record(parent, id).is_none() {
        return Err(Reject::not_found(format!(
            "{} with id {id} was not found",
            parent.prefix()
        )));
    }
    let p = params(req.uri().query());
    let (page, size) = paging(state, &p)?;
    let all: Vec<Map<String, Value>> = state
        .records(child)
        .into_iter()
        .filter(|r| r.get(link_field).and_then(Value::as_i64) == Some(id))
        .collect();
    Ok(ok_json(&Value::Array(
        page_of(&all, page, size)
            .into_iter()
            .map(Value::Object)
            .collect(),
    )))
}

async fn active_users(State(state): State<S>, req: Request) -> Response {
    let run = || -> Result<Response, Reject> {
        let p = params(req.uri().query());
        let (page, size) = paging(&state, &p)?;
        let all: Vec<Map<String, Value>> = {
            let data = state.lock();
            data.raw_records(SandboxEntity::User)
                .filter(|r| {
                    r.get("UserId")
                        .and_then(Value::as_i64)
                        .is_some_and(|id| data.is_user_active(id))
                })
                .map(|r| data.render(SandboxEntity::User, r))
                .collect()
        };
        Ok(ok_json(&Value::Array(
            page_of(&all, page, size)
                .into_iter()
                .map(Value::Object)
                .collect(),
        )))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

async fn linked_data_list(State(state): State<S>) -> Response {
    ok_json(&Value::Array(
        state
            .records(SandboxEntity::LinkedData)
            .into_iter()
            .map(Value::Object)
            .collect(),
    ))
}

async fn linked_setup(State(state): State<S>) -> Response {
    ok_json(&Value::Object(state.lock().linked_setup()))
}

fn hook_routes(entity: HookEntity) -> Router<S> {
    let base = format!("/{}/Hooks", entity.collection());
    Router::new()
        .route(
            &base,
            get(move |State(s): State<S>, req: Request| async move {
                let run = || -> Result<Response, Reject> {
                    let p = params(req.uri().query());
                    let (page, size) = paging(&s, &p)?;
                    let all = s.list_hooks(entity);
                    Ok(ok_json(&Value::Array(
                        page_of(&all, page, size)
                            .into_iter()
                            .map(Value::Object)
                            .collect(),
                    )))
                };
                run().unwrap_or_else(IntoResponse::into_response)
            })
            .post(move |State(s): State<S>, req: Request| async move {
                let result = async {
                    let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024)
                        .await
                        .map_err(|_| Reject::bad_request("body too large"))?;
                    let body = parse_body(&bytes)?;
                    s.create_hook(entity, &body)
                }
                .await;
                match result {
                    Ok(id) => ok_json(&Value::from(id)),
                    Err(r) => r.into_response(),
                }
            }),
        )
        .route(
            &format!("{base}/{{id}}"),
            get(
                move |State(s): State<S>, Path(id): Path<String>| async move {
                    parse_id(&id)
                        .and_then(|id| s.get_hook(entity, id))
                        .map(|h| ok_json(&Value::Object(h)))
                        .unwrap_or_else(IntoResponse::into_response)
                },
            )
            .put(
                move |State(s): State<S>, Path(id): Path<String>, req: Request| async move {
                    let result = async {
                        let id = parse_id(&id)?;
                        let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024)
                            .await
                            .map_err(|_| Reject::bad_request("body too large"))?;
                        let body = parse_body(&bytes)?;
                        s.update_hook(entity, id, &body)
                    }
                    .await;
                    result
                        .map(|()| empty_ok())
                        .unwrap_or_else(IntoResponse::into_response)
                },
            )
            .delete(
                move |State(s): State<S>, Path(id): Path<String>| async move {
                    parse_id(&id)
                        .and_then(|id| s.delete_hook(entity, id))
                        .map(|()| empty_ok())
                        .unwrap_or_else(IntoResponse::into_response)
                },
            ),
        )
}

async fn queries(State(state): State<S>, req: Request) -> Response {
    let run = || -> Result<Response, Reject> {
        let p = params(req.uri().query());
        let (page, size) = paging(&state, &p)?;
        let script = p
            .get("script")
            .ok_or_else(|| Reject::bad_request("script is required"))?;
        let parsed =
            query::parse(script).map_err(|e| Reject::bad_request(format!("Invalid query: {e}")))?;
        let entity = SandboxEntity::from_table(&parsed.table).ok_or_else(|| {
            Reject::bad_request(format!("Invalid object name '{}'", parsed.table))
        })?;
        let data = state.lock();
        let (rows, selected) =
            query::execute(&parsed, entity.read_fields(), data.raw_records(entity))
                .map_err(|e| Reject::bad_request(format!("Invalid query: {e}")))?;
        let row_number = data.options.query_row_number;
        let out: Vec<Value> = rows
            .iter()
            .enumerate()
            .skip((page - 1).saturating_mul(size))
            .take(size)
            .map(|(i, r)| {
                let full = data.render(entity, r);
                let mut row = match &selected {
                    None => full,
                    Some(cols) => cols
                        .iter()
                        .map(|c| {
                            (
                                (*c).to_owned(),
                                full.get(*c).cloned().unwrap_or(Value::Null),
                            )
                        })
                        .collect(),
                };
                if row_number {
                    row.insert("RowNumber".into(), Value::from(i + 1));
                }
                Value::Object(row)
            })
            .collect();
        Ok(ok_json(&Value::Array(out)))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

/// The sandbox's router.
pub fn router(state: S) -> Router {
    let mut app = Router::new()
        .route("/Auth/ApiLogin", axum::routing::post(api_login))
        .route("/Users/AllActive", get(active_users))
        .route("/QuotationLines/LinkedSetup", get(linked_setup))
        .route(
            "/QuotationLines/LinkedData",
            get(linked_data_list).post(|State(s): State<S>, req: Request| async move {
                create_entity(&s, SandboxEntity::LinkedData, req)
                    .await
                    .into_response()
            }),
        )
        .route(
            "/QuotationLines/LinkedData/{id}",
            get(|State(s): State<S>, Path(id): Path<String>| async move {
                get_entity(&s, SandboxEntity::LinkedData, &id)
                    .await
                    .into_response()
            })
            .put(
                |State(s): State<S>, Path(id): Path<String>, req: Request| async move {
                    put_entity(&s, SandboxEntity::LinkedData, &id, req)
                        .await
                        .into_response()
                },
            )
            .delete(|State(s): State<S>, Path(id): Path<String>| async move {
                delete_entity(&s, SandboxEntity::LinkedData, &id).await
            }),
        )
        .route(
            "/Organisations/{id}/Persons",
            get(
                |State(s): State<S>, Path(id): Path<String>, req: Request| async move {
                    children(
                        &s,
                        SandboxEntity::Organisation,
                        SandboxEntity::Person,
                        "PersonOrganisationId",
                        &id,
                        &req,
                    )
                    .unwrap_or_else(IntoResponse::into_response)
                },
            ),
        )
        .route(
            "/Opportunities/{id}/QuotationLines",
            get(
                |State(s): State<S>, Path(id): Path<String>, req: Request| async move {
                    children(
                        &s,
                        SandboxEntity::Opportunity,
                        SandboxEntity::QuotationLine,
                        "QuotationLineOpportunityId",
                        &id,
                        &req,
                    )
                    .unwrap_or_else(IntoResponse::into_response)
                },
            ),
        )
        .route("/Queries", get(queries));
    for entity in [
        SandboxEntity::Organisation,
        SandboxEntity::Person,
        SandboxEntity::User,
        SandboxEntity::Opportunity,
    ] {
        app = app.merge(collection(entity));
    }
    app = app.merge(collection(SandboxEntity::QuotationLine).route(
        "/QuotationLines/{id}",
        axum::routing::delete(|State(s): State<S>, Path(id): Path<String>| async move {
            delete_entity(&s, SandboxEntity::QuotationLine, &id).await
        }),
    ));
    for entity in HookEntity::ALL {
        app = app.merge(hook_routes(entity));
    }
    app.fallback(fallback)
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}
