//! The operator console under `/console`: server-rendered pages on top of the admin API.
//!
//! Every read and every action calls the admin API's own handler functions (`crate::admin`),
//! so the console adds presentation and a browser session, not a second copy of the logic.
//! Sessions and CSRF are in [`session`]; the pages in [`views`]; the stylesheet and the one
//! script (the overview's refresh, the resync page's reload) in [`assets`]. Every response
//! carries a strict Content-Security-Policy: no inline script or style, nothing from
//! elsewhere.

mod assets;
pub mod session;
mod views;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use maud::Markup;
use serde::Deserialize;
use serde_json::Value;

use crate::admin::{self, Admin, Pairing, Side};
use crate::http::{ApiError, AppState};
use session::{Checked, Session};
use views::{Nav, Notice};

/// The policy on every console response: only our own stylesheet, script and JSON.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// How long a wrong sign-in waits before answering, against guessing.
const SIGN_IN_DELAY: Duration = Duration::from_secs(1);
/// How many rows a console list shows.
const LIST_LIMIT: i64 = 200;
/// How many links an e-mail lookup looks at.
const EMAIL_CANDIDATES: i64 = 200;

/// The console routes, relative to `/console`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/sign-in", get(sign_in_form).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/status.json", get(status_json))
        .route("/assets/{name}", get(assets::serve))
        .route("/records", get(lookup))
        .route("/links/{id}", get(link))
        .route("/conflicts", get(conflicts))
        .route("/conflicts/{id}/resolve", post(resolve_conflict))
        .route("/pending-actions", get(pending_actions))
        .route("/pending-actions/{id}/dismiss", post(dismiss_pending))
        .route("/jobs", get(jobs))
        .route("/jobs/retry-dead", post(retry_dead))
        .route("/jobs/{id}/retry", post(retry_job))
        .route("/jobs/{id}/discard", post(discard_job))
        .route("/pairings/{name}", get(pairing))
        .route("/pairings/{name}/pause", post(pause))
        .route("/pairings/{name}/resume", post(resume))
        .route("/pairings/{name}/resync", post(resync))
        .fallback(not_found)
        .layer(middleware::map_response(security_headers))
}

/// CSP and friends on every console response; pages are never cached (they show live
/// state), assets set their own long cache.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such console page")
}

fn html(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// After an action: back to `to`, with a fixed message chosen by `ok` (never text from the
/// request, so a crafted link cannot put words in the console's mouth).
fn done(to: &str, ok: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}ok={ok}")).into_response()
}

fn ok_message(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "resolved" => "Conflict resolved; a sync job writes the kept value to both sides.",
        "dismissed" => "Pending action dismissed.",
        "retried" => "Job queued to run now.",
        "retried_dead" => "Dead jobs queued to run now.",
        "discarded" => "Job discarded.",
        "paused" => "Pairing paused: its jobs stay queued.",
        "resumed" => "Pairing resumed.",
        "resync" => "Resync queued.",
        _ => return None,
    })
}

/// A failed action: the page it came from, with the admin API's message (which never holds
/// secrets; internal errors are opaque).
fn failed(session: &Session, title: &str, back: &str, e: &ApiError) -> Response {
    html(views::page(
        title,
        Nav::None,
        &session.csrf(),
        Some(Notice::Error(&e.message)),
        maud::html! { p { a href=(back) { "Back" } } },
    ))
}

fn internal(e: ApiError) -> Response {
    e.into_response()
}

// --- sign-in ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

async fn sign_in_form(Query(q): Query<Next>) -> Response {
    html(views::sign_in(
        None,
        session::after_sign_in(q.next.as_deref()),
    ))
}

#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    token: String,
    next: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    let token = f.token.trim();
    if token.is_empty() || !state.config.is_admin_token(token) {
        tokio::time::sleep(SIGN_IN_DELAY).await;
        return html(views::sign_in(
            Some("That is not one of the admin tokens."),
            session::after_sign_in(f.next.as_deref()),
        ));
    }
    let cookie = session::set_cookie(
        &session::issue_now(token),
        session::over_https(&state, &headers),
    );
    let to = session::after_sign_in(f.next.as_deref());
    ([(header::SET_COOKIE, cookie)], Redirect::to(to)).into_response()
}

async fn sign_out(State(state): State<AppState>, headers: HeaderMap, _: Checked) -> Response {
    let cookie = session::set_cookie("", session::over_https(&state, &headers));
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to(session::SIGN_IN),
    )
        .into_response()
}

// --- overview --------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct OkQuery {
    ok: Option<String>,
}

async fn overview(
    session: Session,
    State(state): State<AppState>,
    Query(q): Query<OkQuery>,
) -> Response {
    match admin::status::status(Admin, State(state)).await {
        Ok(Json(status)) => html(views::page(
            "Overview",
            Nav::Overview,
            &session.csrf(),
            ok_message(q.ok.as_deref()).map(Notice::Ok),
            views::overview(&status, &session.csrf()),
        )),
        Err(e) => internal(e),
    }
}

/// What the overview polls: the same (key, text) pairs it rendered.
async fn status_json(_: Session, State(state): State<AppState>) -> Response {
    match admin::status::status(Admin, State(state)).await {
        Ok(Json(status)) => {
            let cells: BTreeMap<String, String> =
                views::overview_cells(&status).into_iter().collect();
            Json(cells).into_response()
        }
        Err(e) => internal(e),
    }
}

// --- record lookup ---------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct LookupQuery {
    #[serde(default)]
    q: String,
}

async fn lookup(
    session: Session,
    State(state): State<AppState>,
    Query(q): Query<LookupQuery>,
) -> Response {
    let needle = q.q.trim().to_string();
    let page = |results: Option<&[admin::links::LinkDto]>, notice: Option<Notice>| {
        html(views::page(
            "Find a record",
            Nav::Lookup,
            &session.csrf(),
            notice,
            views::lookup(&needle, results),
        ))
    };
    if needle.is_empty() {
        return page(None, None);
    }
    match find_links(&state, &needle).await {
        Ok(found) if found.len() == 1 => {
            Redirect::to(&format!("/console/links/{}", found[0].id)).into_response()
        }
        Ok(found) => page(Some(&found), None),
        Err(e) => page(None, Some(Notice::Error(&e.message))),
    }
}

/// Links whose webCRM id or Chargebee id is `needle`, or whose snapshot has it as an e-mail
/// (on either side, ignoring case), newest first.
async fn find_links(
    state: &AppState,
    needle: &str,
) -> Result<Vec<admin::links::LinkDto>, ApiError> {
    let by = |webcrm_id: Option<String>, chargebee_id: Option<String>| admin::links::LinkQuery {
        pairing: None,
        webcrm_id,
        chargebee_id,
        tombstoned: None,
        limit: Some(LIST_LIMIT),
        cursor: None,
    };
    let list = |query| admin::links::list(Admin, State(state.clone()), Query(query));
    let Json(w) = list(by(Some(needle.to_string()), None)).await?;
    let Json(c) = list(by(None, Some(needle.to_string()))).await?;
    let mut found: BTreeMap<i64, admin::links::LinkDto> = BTreeMap::new();
    for l in w.items.into_iter().chain(c.items) {
        found.insert(l.id, l);
    }
    if needle.contains('@') {
        let candidates = state
            .store
            .links_with_snapshot_text(needle, EMAIL_CANDIDATES)
            .await?;
        for link in candidates
            .iter()
            .filter(|l| snapshot_has_email(&l.snapshot, needle))
        {
            found.insert(link.id, admin::links::LinkDto::from(link));
        }
    }
    Ok(found.into_values().rev().collect())
}

fn snapshot_has_email(snapshot: &str, email: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(snapshot) else {
        return false;
    };
    ["webcrm", "chargebee"].iter().any(|side| {
        v[side]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str() == "email" || k.ends_with("_email"))
            .any(|(_, v)| {
                v.as_str()
                    .is_some_and(|s| s.trim().eq_ignore_ascii_case(email))
            })
    })
}

async fn link(session: Session, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return not_found().await.into_response();
    };
    match admin::links::get(Admin, State(state), Path(admin::params::IdPath { id })).await {
        Ok(Json(detail)) => html(views::page(
            &format!("Link #{id}"),
            Nav::Lookup,
            &session.csrf(),
            None,
            views::link(&detail),
        )),
        Err(e) => internal(e),
    }
}

// --- conflicts, pending actions --------------------------------------------------------

#[derive(Deserialize, Default)]
struct ListQuery {
    pairing: Option<String>,
    state: Option<String>,
    ok: Option<String>,
}

impl ListQuery {
    fn pairing(&self) -> Option<Pairing> {
        self.pairing.as_deref().and_then(Pairing::parse)
    }
}

async fn conflicts(
    session: Session,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Response {
    let query = admin::conflicts::ConflictQuery {
        pairing: q.pairing(),
        resolved: Some(false),
        limit: Some(LIST_LIMIT),
        cursor: None,
    };
    match admin::conflicts::list(Admin, State(state), Query(query)).await {
        Ok(Json(page)) => html(views::page(
            "Conflicts",
            Nav::Conflicts,
            &session.csrf(),
            ok_message(q.ok.as_deref()).map(Notice::Ok),
            maud::html! {
                (views::pairing_filter("/console/conflicts", q.pairing(), maud::html! {}))
                (views::conflicts(&page.items, &session.csrf()))
            },
        )),
        Err(e) => internal(e),
    }
}

async fn resolve_conflict(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    form: Checked,
) -> Response {
    let keep = match form.field("keep") {
        Some("webcrm") => Side::Webcrm,
        Some("chargebee") => Side::Chargebee,
        _ => {
            return failed(
                &form.session,
                "Conflicts",
                "/console/conflicts",
                &ApiError::bad_request("keep: choose webcrm or chargebee"),
            )
        }
    };
    let body = admin::params::Body(admin::conflicts::ResolveBody { keep });
    match admin::conflicts::resolve(
        Admin,
        State(state),
        Path(admin::params::IdPath { id }),
        body,
    )
    .await
    {
        Ok(_) => done("/console/conflicts", "resolved"),
        Err(e) => failed(&form.session, "Conflicts", "/console/conflicts", &e),
    }
}

async fn pending_actions(
    session: Session,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Response {
    let query = admin::pending::PendingActionQuery {
        pairing: q.pairing(),
        closed: Some(false),
        limit: Some(LIST_LIMIT),
        cursor: None,
    };
    match admin::pending::list(Admin, State(state), Query(query)).await {
        Ok(Json(page)) => html(views::page(
            "Pending actions",
            Nav::Pending,
            &session.csrf(),
            ok_message(q.ok.as_deref()).map(Notice::Ok),
            maud::html! {
                (views::pairing_filter("/console/pending-actions", q.pairing(), maud::html! {}))
                (views::pending(&page.items, &session.csrf()))
            },
        )),
        Err(e) => internal(e),
    }
}

async fn dismiss_pending(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    form: Checked,
) -> Response {
    match admin::pending::dismiss(Admin, State(state), Path(admin::params::IdPath { id })).await {
        Ok(_) => done("/console/pending-actions", "dismissed"),
        Err(e) => failed(
            &form.session,
            "Pending actions",
            "/console/pending-actions",
            &e,
        ),
    }
}

// --- jobs ------------------------------------------------------------------------------

async fn jobs(
    session: Session,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Response {
    use admin::jobs::JobStateName;
    let wanted = match q.state.as_deref() {
        Some("failed") => vec![JobStateName::Failed],
        Some("dead") => vec![JobStateName::Dead],
        _ => vec![JobStateName::Dead, JobStateName::Failed],
    };
    let mut items = Vec::new();
    for s in wanted {
        let query = admin::jobs::JobQuery {
            state: Some(s),
            pairing: q.pairing(),
            kind: None,
            limit: Some(LIST_LIMIT),
            cursor: None,
        };
        match admin::jobs::list(Admin, State(state.clone()), Query(query)).await {
            Ok(Json(page)) => items.extend(page.items),
            Err(e) => return internal(e),
        }
    }
    let state_filter = maud::html! {
        label for="state" { "State" }
        select id="state" name="state" {
            option value="" { "Failed and dead" }
            option value="dead" selected[q.state.as_deref() == Some("dead")] { "Dead" }
            option value="failed" selected[q.state.as_deref() == Some("failed")] { "Failed" }
        }
    };
    html(views::page(
        "Failed and dead jobs",
        Nav::Jobs,
        &session.csrf(),
        ok_message(q.ok.as_deref()).map(Notice::Ok),
        maud::html! {
            (views::pairing_filter("/console/jobs", q.pairing(), state_filter))
            (views::jobs(&items, &session.csrf(), q.pairing()))
        },
    ))
}

async fn retry_job(State(state): State<AppState>, Path(id): Path<i64>, form: Checked) -> Response {
    match admin::jobs::retry(Admin, State(state), Path(admin::params::IdPath { id })).await {
        Ok(_) => done("/console/jobs", "retried"),
        Err(e) => failed(&form.session, "Jobs", "/console/jobs", &e),
    }
}

async fn discard_job(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    form: Checked,
) -> Response {
    match admin::jobs::discard(Admin, State(state), Path(admin::params::IdPath { id })).await {
        Ok(_) => done("/console/jobs", "discarded"),
        Err(e) => failed(&form.session, "Jobs", "/console/jobs", &e),
    }
}

async fn retry_dead(State(state): State<AppState>, form: Checked) -> Response {
    let Some(pairing) = form.field("pairing").and_then(Pairing::parse) else {
        return failed(
            &form.session,
            "Jobs",
            "/console/jobs",
            &ApiError::bad_request("pairing: choose a pairing"),
        );
    };
    let query = admin::jobs::RetryDeadQuery { pairing };
    match admin::jobs::retry_dead(Admin, State(state), Query(query)).await {
        Ok(_) => done(
            &format!("/console/jobs?pairing={}", pairing.as_str()),
            "retried_dead",
        ),
        Err(e) => failed(&form.session, "Jobs", "/console/jobs", &e),
    }
}

// --- pairings --------------------------------------------------------------------------

async fn pairing(
    session: Session,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<OkQuery>,
) -> Response {
    let Some(p) = Pairing::parse(&name) else {
        return admin::params::unknown_pairing(&name).into_response();
    };
    let n = p.as_str();
    let result = async {
        let paused = state.store.paused_pairings().await?.iter().any(|x| x == n);
        let query = admin::jobs::JobQuery {
            state: None,
            pairing: Some(p),
            kind: Some(crate::sync::resync::RESYNC_JOB.into()),
            limit: Some(10),
            cursor: None,
        };
        let Json(resyncs) = admin::jobs::list(Admin, State(state.clone()), Query(query)).await?;
        let plan = state.store.latest_sync_log(n, "resync_planned").await?;
        let applied = state.store.latest_sync_log(n, "resync_applied").await?;
        Ok::<_, ApiError>((paused, resyncs.items, plan, applied))
    }
    .await;
    match result {
        Ok((paused, resyncs, plan, applied)) => {
            let plan = plan.as_ref().map(admin::links::SyncLogDto::from);
            let applied = applied.as_ref().map(admin::links::SyncLogDto::from);
            html(views::page(
                n,
                Nav::None,
                &session.csrf(),
                ok_message(q.ok.as_deref()).map(Notice::Ok),
                views::pairing(
                    n,
                    paused,
                    &resyncs,
                    plan.as_ref(),
                    applied.as_ref(),
                    &session.csrf(),
                ),
            ))
        }
        Err(e) => internal(e),
    }
}

fn name_path(name: String) -> Path<admin::pairings::NamePath> {
    Path(admin::pairings::NamePath { name })
}

async fn pause(State(state): State<AppState>, Path(name): Path<String>, form: Checked) -> Response {
    let back = format!("/console/pairings/{name}");
    match admin::pairings::pause(Admin, State(state), name_path(name)).await {
        Ok(_) => done(&back, "paused"),
        Err(e) => failed(&form.session, "Pairing", "/console", &e),
    }
}

async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: Checked,
) -> Response {
    let back = format!("/console/pairings/{name}");
    match admin::pairings::resume(Admin, State(state), name_path(name)).await {
        Ok(_) => done(&back, "resumed"),
        Err(e) => failed(&form.session, "Pairing", "/console", &e),
    }
}

async fn resync(
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: Checked,
) -> Response {
    let back = format!("/console/pairings/{name}");
    let dry_run = form.field("dry_run") != Some("false");
    let body = admin::params::OptionalBody(admin::pairings::ResyncBody { dry_run });
    match admin::pairings::resync(Admin, State(state), name_path(name), body).await {
        Ok(_) => done(&back, "resync"),
        Err(e) => failed(&form.session, "Pairing", "/console", &e),
    }
}
