//! The console's HTML, as maud templates compiled into the binary. Every value is escaped by
//! maud; no page carries inline script or style (the CSP forbids both).

use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use super::assets;
use crate::admin::conflicts::ConflictDto;
use crate::admin::jobs::JobDto;
use crate::admin::links::{LinkDetail, LinkDto, SyncLogDto};
use crate::admin::pending::PendingActionDto;
use crate::admin::status::Status;
use crate::admin::Pairing;

/// What a page is, for the navigation's `aria-current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Lookup,
    Conflicts,
    Pending,
    Jobs,
    None,
}

/// A notice shown above a page's content after an action.
pub enum Notice<'a> {
    Ok(&'a str),
    Error(&'a str),
}

/// The frame of every signed-in page.
pub fn page(title: &str, nav: Nav, csrf: &str, notice: Option<Notice>, body: Markup) -> Markup {
    let item = |n: Nav, href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(n == nav).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · webCRM ⇄ Chargebee sync" }
                link rel="stylesheet" href=(assets::CSS.url());
                script src=(assets::JS.url()) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    p.brand { a href="/console" { "webCRM ⇄ Chargebee sync" } }
                    nav aria-label="Console" {
                        ul {
                            (item(Nav::Overview, "/console", "Overview"))
                            (item(Nav::Lookup, "/console/records", "Find a record"))
                            (item(Nav::Conflicts, "/console/conflicts", "Conflicts"))
                            (item(Nav::Pending, "/console/pending-actions", "Pending actions"))
                            (item(Nav::Jobs, "/console/jobs", "Jobs"))
                        }
                    }
                    form.signout method="post" action="/console/sign-out" {
                        (csrf_field(csrf))
                        button type="submit" { "Sign out" }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    @match notice {
                        Some(Notice::Ok(text)) => p.notice.ok role="status" { (text) },
                        Some(Notice::Error(text)) => p.notice.error role="alert" { (text) },
                        None => {},
                    }
                    (body)
                }
            }
        }
    }
}

pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name=(super::session::CSRF_FIELD) value=(csrf); }
}

/// A one-button POST form.
pub fn action(path: &str, csrf: &str, label: &str, hidden: &[(&str, &str)]) -> Markup {
    labelled_action(path, csrf, label, hidden, None)
}

/// A one-button POST form whose button a screen reader announces by `aria` (for buttons
/// repeated in a table, where the visible label alone would not say which row).
pub fn labelled_action(
    path: &str,
    csrf: &str,
    label: &str,
    hidden: &[(&str, &str)],
    aria: Option<&str>,
) -> Markup {
    html! {
        form.inline method="post" action=(path) {
            (csrf_field(csrf))
            @for (name, value) in hidden {
                input type="hidden" name=(name) value=(value);
            }
            button type="submit" aria-label=[aria] { (label) }
        }
    }
}

/// The sign-in form; `next` is the (already checked) page to return to.
pub fn sign_in(message: Option<&str>, next: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · webCRM ⇄ Chargebee sync" }
                link rel="stylesheet" href=(assets::CSS.url());
            }
            body {
                main.signin id="main" {
                    h1 { "webCRM ⇄ Chargebee sync" }
                    @if let Some(m) = message {
                        p.notice.error role="alert" id="signin-error" { (m) }
                    }
                    form method="post" action="/console/sign-in" {
                        label for="token" { "Admin token" }
                        input id="token" name="token" type="password" required
                            autocomplete="current-password"
                            aria-describedby=[message.map(|_| "signin-error")];
                        input type="hidden" name="next" value=(next);
                        button type="submit" { "Sign in" }
                    }
                    p.hint { "Any of the tokens in ADMIN_TOKEN. The session lasts 8 hours." }
                }
            }
        }
    }
}

fn time(t: Option<&str>) -> Markup {
    match t {
        Some(t) => html! { time datetime=(t) { (short_time(t)) } },
        None => html! { "—" },
    }
}

/// `2026-11-25T10:00:00.000Z` → `2026-11-25 10:00:00Z`.
pub fn short_time(t: &str) -> String {
    match t.split_once('.') {
        Some((head, _)) => format!("{}Z", head.replacen('T', " ", 1)),
        None => t.replacen('T', " ", 1),
    }
}

/// Seconds as `42 s`, `3 min 5 s`, `2 h 4 min`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// The overview's changing values as (key, text): the page renders them and the JSON endpoint
/// the page polls answers the same pairs, so both always agree.
pub fn overview_cells(status: &Status) -> Vec<(String, String)> {
    let mut out = vec![("generated_at".to_string(), short_time(&status.generated_at))];
    for p in &status.pairings {
        let n = p.name.as_str();
        let state = match (p.enabled, p.paused) {
            (false, _) => "disabled",
            (true, true) => "paused",
            (true, false) => "running",
        };
        let mut put = |k: &str, v: String| out.push((format!("{n}.{k}"), v));
        put("state", state.into());
        put(
            "links",
            format!("{} live, {} tombstoned", p.links.live, p.links.tombstoned),
        );
        put("pending", p.queue.pending.to_string());
        put("running", p.queue.running.to_string());
        put("failed", p.queue.failed.to_string());
        put("dead", p.dead_jobs.to_string());
        put("lag", duration(p.lag_seconds));
        put("conflicts", p.open_conflicts.to_string());
        put("actions", p.open_pending_actions.to_string());
    }
    let polls = [
        ("webcrm", &status.polls.webcrm),
        ("chargebee", &status.polls.chargebee),
    ];
    for (source, poll) in polls {
        out.push((
            format!("poll.{source}"),
            poll.last_success_at
                .as_deref()
                .map(short_time)
                .unwrap_or_else(|| "never".into()),
        ));
    }
    let limits = [
        ("webcrm", &status.rate_limits.webcrm),
        ("chargebee", &status.rate_limits.chargebee),
    ];
    for (api, limit) in limits {
        let budget = limit
            .budget_per_minute
            .map(|b| format!("{b}/min"))
            .unwrap_or_else(|| "not configured".into());
        let held = match &limit.paused_until {
            Some(t) => format!("held back until {}", short_time(t)),
            None => "calling".into(),
        };
        out.push((format!("rate.{api}"), format!("{budget}, {held}")));
    }
    out.push(("lag".into(), duration(status.lag_seconds)));
    out
}

pub fn overview(status: &Status, csrf: &str) -> Markup {
    let cells: std::collections::HashMap<String, String> =
        overview_cells(status).into_iter().collect();
    let cell = |k: String| {
        let text = cells.get(&k).cloned().unwrap_or_default();
        html! { span data-k=(k) { (text) } }
    };
    html! {
        p.meta {
            "Updated " (cell("generated_at".into()))
            " · refreshes every few seconds · overall lag " (cell("lag".into()))
        }
        div.tablewrap {
            table.overview data-refresh="/console/status.json" {
                caption { "Pairings" }
                thead {
                    tr {
                        th scope="col" { "Pairing" }
                        th scope="col" { "State" }
                        th scope="col" { "Links" }
                        th scope="col" { "Pending" }
                        th scope="col" { "Running" }
                        th scope="col" { "Failed" }
                        th scope="col" { "Dead" }
                        th scope="col" { "Lag" }
                        th scope="col" { "Conflicts" }
                        th scope="col" { "Pending actions" }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    }
                }
                tbody {
                    @for p in &status.pairings {
                        @let n = p.name.as_str();
                        tr {
                            th scope="row" { a href={"/console/pairings/" (n)} { (n) } }
                            td { (cell(format!("{n}.state"))) }
                            td { (cell(format!("{n}.links"))) }
                            td.num { (cell(format!("{n}.pending"))) }
                            td.num { (cell(format!("{n}.running"))) }
                            td.num { a href={"/console/jobs?pairing=" (n) "&state=failed"} { (cell(format!("{n}.failed"))) } }
                            td.num { a href={"/console/jobs?pairing=" (n) "&state=dead"} { (cell(format!("{n}.dead"))) } }
                            td.num { (cell(format!("{n}.lag"))) }
                            td.num { a href={"/console/conflicts?pairing=" (n)} { (cell(format!("{n}.conflicts"))) } }
                            td.num { a href={"/console/pending-actions?pairing=" (n)} { (cell(format!("{n}.actions"))) } }
                            td {
                                @if p.paused {
                                    (labelled_action(&format!("/console/pairings/{n}/resume"), csrf, "Resume", &[], Some(&format!("Resume {n}"))))
                                } @else {
                                    (labelled_action(&format!("/console/pairings/{n}/pause"), csrf, "Pause", &[], Some(&format!("Pause {n}"))))
                                }
                            }
                        }
                    }
                }
            }
        }
        div.cards {
            section aria-labelledby="polls-h" {
                h2 id="polls-h" { "Last poll" }
                dl {
                    dt { "webCRM" } dd { (cell("poll.webcrm".into())) }
                    dt { "Chargebee" } dd { (cell("poll.chargebee".into())) }
                }
            }
            section aria-labelledby="rate-h" {
                h2 id="rate-h" { "Rate limits (this process)" }
                dl {
                    dt { "webCRM" } dd { (cell("rate.webcrm".into())) }
                    dt { "Chargebee" } dd { (cell("rate.chargebee".into())) }
                }
            }
        }
    }
}

pub fn lookup(q: &str, results: Option<&[LinkDto]>) -> Markup {
    html! {
        form.search method="get" action="/console/records" role="search" {
            label for="q" { "webCRM id, Chargebee id or e-mail" }
            input id="q" name="q" type="search" value=(q) required;
            button type="submit" { "Find" }
        }
        @if let Some(results) = results {
            @if results.is_empty() {
                p.empty { "No linked record matches " q { (q) } "." }
            } @else {
                (links_table(results))
            }
        }
    }
}

fn links_table(links: &[LinkDto]) -> Markup {
    html! {
        table {
            caption { "Links" }
            thead { tr {
                th scope="col" { "Link" } th scope="col" { "Pairing" }
                th scope="col" { "webCRM id" } th scope="col" { "Chargebee id" }
                th scope="col" { "Last synced" } th scope="col" { "Tombstoned" }
            } }
            tbody {
                @for l in links {
                    tr {
                        td { a href={"/console/links/" (l.id)} { "#" (l.id) } }
                        td { (l.pairing) }
                        td { code { (l.webcrm_id) } }
                        td { code { (l.chargebee_id) } }
                        td { (time(l.last_synced_at.as_deref())) }
                        td { (time(l.tombstoned_at.as_deref())) }
                    }
                }
            }
        }
    }
}

fn value_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "—".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

pub fn link(detail: &LinkDetail) -> Markup {
    let l = &detail.link;
    let empty = serde_json::Map::new();
    let side = |name: &str| {
        detail
            .snapshot
            .get(name)
            .and_then(Value::as_object)
            .unwrap_or(&empty)
    };
    let (w, c) = (side("webcrm"), side("chargebee"));
    let mut fields: Vec<&String> = w.keys().chain(c.keys()).collect();
    fields.sort();
    fields.dedup();
    html! {
        dl.linkmeta {
            dt { "Pairing" } dd { a href={"/console/pairings/" (l.pairing)} { (l.pairing) } }
            dt { "webCRM id" } dd { code { (l.webcrm_id) } }
            dt { "Chargebee id" } dd { code { (l.chargebee_id) } }
            dt { "Linked" } dd { (time(Some(&l.created_at))) }
            dt { "Last synced" } dd { (time(l.last_synced_at.as_deref())) }
            dt { "Tombstoned" } dd { (time(l.tombstoned_at.as_deref())) }
        }
        section aria-labelledby="snap-h" {
            h2 id="snap-h" { "Last-synced snapshot" }
            @if fields.is_empty() {
                p.empty { "Nothing synced through this link yet." }
            } @else {
                table.snapshot {
                    thead { tr {
                        th scope="col" { "Field" } th scope="col" { "webCRM" } th scope="col" { "Chargebee" }
                    } }
                    tbody {
                        @for f in &fields {
                            @let (wv, cv) = (w.get(f.as_str()), c.get(f.as_str()));
                            tr class=[(wv != cv).then_some("differs")] {
                                th scope="row" { (f) }
                                td { (value_text(wv)) }
                                td { (value_text(cv)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="log-h" {
            h2 id="log-h" { "Sync log" }
            (sync_log(&detail.sync_log))
        }
    }
}

fn sync_log(entries: &[SyncLogDto]) -> Markup {
    html! {
        @if entries.is_empty() {
            p.empty { "No sync-log entries." }
        } @else {
            table.synclog {
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "Action" } th scope="col" { "Job" }
                    th scope="col" { "Detail" }
                } }
                tbody {
                    @for e in entries {
                        tr {
                            td { (time(Some(&e.created_at))) }
                            td { code.action { (e.action) } }
                            td { @if let Some(j) = e.job_id { (j) } @else { "—" } }
                            td { (detail(&e.detail)) }
                        }
                    }
                }
            }
        }
    }
}

/// A sync-log detail: flat objects as a small list, anything else as indented JSON.
fn detail(v: &Value) -> Markup {
    match v {
        Value::Object(map) if map.values().all(|v| !v.is_object() && !v.is_array()) => html! {
            dl.detail {
                @for (k, v) in map { dt { (k) } dd { (value_text(Some(v))) } }
            }
        },
        Value::Object(map) if map.is_empty() => html! { "—" },
        other => html! {
            pre { (serde_json::to_string_pretty(other).unwrap_or_default()) }
        },
    }
}

pub fn pairing_filter(path: &str, selected: Option<Pairing>, extra: Markup) -> Markup {
    html! {
        form.filter method="get" action=(path) {
            label for="pairing" { "Pairing" }
            select id="pairing" name="pairing" {
                option value="" selected[selected.is_none()] { "All" }
                @for p in Pairing::ALL {
                    option value=(p.as_str()) selected[selected == Some(p)] { (p.as_str()) }
                }
            }
            (extra)
            button type="submit" { "Show" }
        }
    }
}

pub fn conflicts(items: &[ConflictDto], csrf: &str) -> Markup {
    html! {
        @if items.is_empty() {
            p.empty { "No open conflicts." }
        }
        @for c in items {
            article.conflict aria-labelledby={"conflict-" (c.id)} {
                h2 id={"conflict-" (c.id)} {
                    (c.pairing) ": " code { (c.field) }
                    @if let Some(l) = c.link_id {
                        " · " a href={"/console/links/" (l)} { "link #" (l) }
                    }
                }
                div.sides {
                    section class={"side" @if c.winner == "webcrm" { " winner" }} {
                        h3 { "webCRM" @if c.winner == "webcrm" { " (kept by the merge)" } }
                        p.value { (c.webcrm_value.as_deref().unwrap_or("—")) }
                        p.when { "Changed " (time(c.webcrm_changed_at.as_deref())) }
                        (action(&format!("/console/conflicts/{}/resolve", c.id), csrf, "Keep webCRM", &[("keep", "webcrm")]))
                    }
                    section class={"side" @if c.winner == "chargebee" { " winner" }} {
                        h3 { "Chargebee" @if c.winner == "chargebee" { " (kept by the merge)" } }
                        p.value { (c.chargebee_value.as_deref().unwrap_or("—")) }
                        p.when { "Changed " (time(c.chargebee_changed_at.as_deref())) }
                        (action(&format!("/console/conflicts/{}/resolve", c.id), csrf, "Keep Chargebee", &[("keep", "chargebee")]))
                    }
                }
            }
        }
    }
}

pub fn pending(items: &[PendingActionDto], csrf: &str) -> Markup {
    html! {
        @if items.is_empty() {
            p.empty { "No open pending actions." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Pairing" } th scope="col" { "Subject" } th scope="col" { "What to do" }
                    th scope="col" { "Since" } th scope="col" { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for a in items {
                        tr {
                            td { (a.pairing) }
                            td { code { (a.subject) } }
                            td { (a.message) }
                            td { (time(Some(&a.created_at))) }
                            td { (labelled_action(&format!("/console/pending-actions/{}/dismiss", a.id), csrf, "Dismiss", &[], Some(&format!("Dismiss pending action {}", a.id)))) }
                        }
                    }
                }
            }
        }
    }
}

pub fn jobs(items: &[JobDto], csrf: &str, pairing: Option<Pairing>) -> Markup {
    html! {
        @if let Some(p) = pairing {
            (action("/console/jobs/retry-dead", csrf, &format!("Retry all dead jobs of {}", p.as_str()), &[("pairing", p.as_str())]))
        } @else {
            p.hint { "Choose a pairing to retry all its dead jobs at once." }
        }
        @if items.is_empty() {
            p.empty { "No jobs in this state." }
        } @else {
            table.jobs {
                thead { tr {
                    th scope="col" { "Job" } th scope="col" { "Kind" } th scope="col" { "Pairing" }
                    th scope="col" { "Record" } th scope="col" { "State" } th scope="col" { "Attempts" }
                    th scope="col" { "Next run" } th scope="col" { "Last error" }
                    th scope="col" { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for j in items {
                        tr {
                            td { (j.id) }
                            td { (j.kind) }
                            td { (j.pairing.as_deref().unwrap_or("—")) }
                            td { code { (j.dedupe_key) } }
                            td { (j.state) }
                            td.num { (j.attempts) "/" (j.max_attempts) }
                            td { (time(Some(&j.run_at))) }
                            td.error { (j.last_error.as_deref().unwrap_or("—")) }
                            td {
                                @if j.state == "failed" || j.state == "dead" {
                                    (labelled_action(&format!("/console/jobs/{}/retry", j.id), csrf, "Retry", &[], Some(&format!("Retry job {}", j.id))))
                                }
                                @if j.state != "running" {
                                    (labelled_action(&format!("/console/jobs/{}/discard", j.id), csrf, "Discard", &[], Some(&format!("Discard job {}", j.id))))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The pairing page: state, pause/resume, resync (dry run first) and the last plan.
pub fn pairing(
    name: &str,
    paused: bool,
    resyncs: &[JobDto],
    plan: Option<&SyncLogDto>,
    applied: Option<&SyncLogDto>,
    csrf: &str,
) -> Markup {
    html! {
        section aria-labelledby="state-h" {
            h2 id="state-h" { "State" }
            p { "This pairing is " strong { @if paused { "paused" } @else { "running" } } "." }
            @if paused {
                (action(&format!("/console/pairings/{name}/resume"), csrf, "Resume", &[]))
            } @else {
                (action(&format!("/console/pairings/{name}/pause"), csrf, "Pause", &[]))
            }
        }
        section aria-labelledby="resync-h" {
            h2 id="resync-h" { "Resync" }
            p.hint { "A dry run plans the first-sync matching and repair and changes nothing; check its plan, then run it." }
            (action(&format!("/console/pairings/{name}/resync"), csrf, "Start a dry run", &[("dry_run", "true")]))
            @if plan.is_some() {
                (action(&format!("/console/pairings/{name}/resync"), csrf, "Run the resync", &[("dry_run", "false")]))
            }
            @if !resyncs.is_empty() {
                div.progress data-autoreload="3" role="status" {
                    @for j in resyncs {
                        p {
                            "Resync job " (j.id)
                            @if j.payload["dry_run"].as_bool() == Some(true) { " (dry run)" }
                            ": " strong { (j.state) }
                            @if let Some(e) = &j.last_error { " — " (e) }
                        }
                    }
                    p.hint { "This page reloads until it has finished." }
                }
            }
            @if let Some(plan) = plan {
                (plan_view("Last dry-run plan", plan))
            }
            @if let Some(applied) = applied {
                (plan_view("Last resync run", applied))
            }
        }
    }
}

fn plan_view(title: &str, entry: &SyncLogDto) -> Markup {
    let d = &entry.detail;
    let plan = &d["plan"];
    let list = |k: &str| plan[k].as_array().cloned().unwrap_or_default();
    let (links, creates, updates, ambiguous) = (
        list("links"),
        list("creates"),
        list("updates"),
        list("ambiguous"),
    );
    let text = |v: &Value| value_text(Some(v));
    html! {
        section.plan aria-label=(title) {
            h3 { (title) ", " (time(Some(&entry.created_at))) }
            p.summary { (d["summary"].as_str().unwrap_or("")) }
            @if let Some(why) = plan["unsupported"].as_str() { p { (why) } }
            @if !links.is_empty() {
                h4 { "Links (" (links.len()) ")" }
                ul { @for l in &links { li { code { (text(&l["webcrm_id"])) } " ⇄ " code { (text(&l["chargebee_id"])) } " on " (text(&l["matched_on"])) } } }
            }
            @if !creates.is_empty() {
                h4 { "Creates (" (creates.len()) ")" }
                ul { @for c in &creates { li { (text(&c[0])) " " code { (text(&c[1])) } } } }
            }
            @if !updates.is_empty() {
                h4 { "Updates (" (updates.len()) ")" }
                ul { @for u in &updates { li { code { (text(&u[0])) } " ⇄ " code { (text(&u[1])) } ": " (text(&u[2])) } } }
            }
            @if !ambiguous.is_empty() {
                h4 { "Ambiguous (" (ambiguous.len()) ")" }
                ul { @for a in &ambiguous { li { (text(&a["side"])) " " code { (text(&a["id"])) } " shares " (text(&a["key"])) } } }
            }
            @if let Some(applied) = d["applied"].as_object() {
                p { "Applied: " (applied.get("linked").map(|v| v.to_string()).unwrap_or_default()) " linked, "
                    (applied.get("jobs").map(|v| v.to_string()).unwrap_or_default()) " sync jobs queued." }
            }
        }
    }
}
