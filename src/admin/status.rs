//! `status`: one look at every pairing, the queue, the pollers and the outbound budgets.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::Admin;
use super::params::{opt_time, time, Pairing};
use super::ErrorResponse;
use crate::http::{ApiError, AppState};
use crate::store::{now_ms, JobState};

/// Jobs by state.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct QueueDepth {
    pub pending: i64,
    pub running: i64,
    pub failed: i64,
    pub dead: i64,
}

impl QueueDepth {
    fn add(&mut self, state: &str, n: i64) {
        match JobState::parse(state) {
            Some(JobState::Pending) => self.pending += n,
            Some(JobState::Running) => self.running += n,
            Some(JobState::Failed) => self.failed += n,
            Some(JobState::Dead) => self.dead += n,
            None => {}
        }
    }
}

#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct LinkCounts {
    /// Links whose two records both exist.
    pub live: i64,
    /// Links one of whose records was deleted.
    pub tombstoned: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PairingStatus {
    pub name: Pairing,
    /// Enabled in the configuration (`<PAIRING>_ENABLED`).
    pub enabled: bool,
    /// Paused through the admin API: its jobs stay queued.
    pub paused: bool,
    pub links: LinkCounts,
    pub queue: QueueDepth,
    /// Seconds since the oldest waiting job became due (0 when none is overdue).
    pub lag_seconds: f64,
    /// When the oldest waiting job became (or becomes) due; null when none waits.
    #[schema(format = DateTime)]
    pub oldest_waiting_since: Option<String>,
    pub open_conflicts: i64,
    pub open_pending_actions: i64,
    pub dead_jobs: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PollEntity {
    pub entity: String,
    #[schema(format = DateTime)]
    pub last_success_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PollStatus {
    /// The newest successful poll of any entity of the source; null before the first one.
    #[schema(format = DateTime)]
    pub last_success_at: Option<String>,
    pub entities: Vec<PollEntity>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Polls {
    pub chargebee: PollStatus,
    pub webcrm: PollStatus,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RateLimitStatus {
    /// The configured outbound budget; null when the API is not configured.
    pub budget_per_minute: Option<u32>,
    /// Until when this process holds calls back because the API answered 429 (or 503) with
    /// `Retry-After`; null when not paused. Limiters are per process, so each replica
    /// reports its own.
    #[schema(format = DateTime)]
    pub paused_until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RateLimits {
    pub chargebee: RateLimitStatus,
    pub webcrm: RateLimitStatus,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    #[schema(format = DateTime)]
    pub generated_at: String,
    pub pairings: Vec<PairingStatus>,
    /// Every job, whatever its pairing (jobs of no pairing included).
    pub queue: QueueDepth,
    /// Seconds since the oldest waiting job of any kind became due.
    pub lag_seconds: f64,
    pub polls: Polls,
    pub rate_limits: RateLimits,
    /// The reconciler's last drift report; null until a reconciler has run.
    #[schema(value_type = Option<Object>)]
    pub drift: Option<Value>,
}

fn lag_seconds(now: i64, oldest: Option<i64>) -> f64 {
    oldest
        .map(|at| (now - at).max(0) as f64 / 1000.0)
        .unwrap_or(0.0)
}

/// The state of every pairing, the queue, the pollers and the outbound budgets.
#[utoipa::path(
    get, path = "/status", operation_id = "get_status", tag = "status",
    responses(
        (status = 200, description = "Status", body = Status),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorResponse),
    )
)]
pub async fn status(_: Admin, State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let store = &state.store;
    let now = now_ms();
    let (jobs, paused, links, oldest, conflicts, actions, cursors, oldest_any, drift) = tokio::try_join!(
        store.job_counts(),
        store.paused_pairings(),
        store.link_counts(),
        store.oldest_waiting_by_pairing(),
        store.open_conflict_counts(),
        store.open_pending_action_counts(),
        store.poll_cursors(),
        store.oldest_waiting_run_at(),
        store.cursors_of(crate::reconciler::DRIFT_SOURCE),
    )?;
    // One report per pairing, as the reconciler stored it; none until it has run.
    let drift: serde_json::Map<String, Value> = drift
        .into_iter()
        .filter_map(|(pairing, report, _)| serde_json::from_str(&report).ok().map(|r| (pairing, r)))
        .collect();

    let mut total = QueueDepth::default();
    let mut depth: HashMap<String, QueueDepth> = HashMap::new();
    for c in &jobs {
        total.add(&c.state, c.count);
        if let Some(p) = &c.pairing {
            depth.entry(p.clone()).or_default().add(&c.state, c.count);
        }
    }
    let links: HashMap<_, _> = links.into_iter().map(|l| (l.pairing.clone(), l)).collect();
    let oldest: HashMap<_, _> = oldest.into_iter().map(|o| (o.pairing, o.at)).collect();
    let conflicts: HashMap<_, _> = conflicts
        .into_iter()
        .map(|c| (c.pairing, c.count))
        .collect();
    let actions: HashMap<_, _> = actions.into_iter().map(|c| (c.pairing, c.count)).collect();

    let pairings = Pairing::ALL
        .into_iter()
        .map(|p| {
            let name = p.as_str();
            let queue = depth.get(name).cloned().unwrap_or_default();
            let since = oldest.get(name).copied();
            PairingStatus {
                name: p,
                enabled: state.config.pairing(name).is_some_and(|c| c.enabled),
                paused: paused.iter().any(|x| x == name),
                links: links
                    .get(name)
                    .map(|l| LinkCounts {
                        live: l.live,
                        tombstoned: l.tombstoned,
                    })
                    .unwrap_or_default(),
                dead_jobs: queue.dead,
                queue,
                lag_seconds: lag_seconds(now, since),
                oldest_waiting_since: opt_time(since),
                open_conflicts: conflicts.get(name).copied().unwrap_or(0),
                open_pending_actions: actions.get(name).copied().unwrap_or(0),
            }
        })
        .collect();

    let mut by_source: BTreeMap<&str, Vec<PollEntity>> = BTreeMap::new();
    let mut newest: HashMap<String, i64> = HashMap::new();
    for c in &cursors {
        by_source
            .entry(c.source.as_str())
            .or_default()
            .push(PollEntity {
                entity: c.entity.clone(),
                last_success_at: time(c.updated_at),
            });
        let n = newest.entry(c.source.clone()).or_insert(c.updated_at);
        *n = (*n).max(c.updated_at);
    }
    let mut poll = |source: &str| PollStatus {
        last_success_at: opt_time(newest.get(source).copied()),
        entities: by_source.remove(source).unwrap_or_default(),
    };

    Ok(Json(Status {
        generated_at: time(now),
        pairings,
        queue: total,
        lag_seconds: lag_seconds(now, oldest_any),
        polls: Polls {
            chargebee: poll("chargebee"),
            webcrm: poll("webcrm"),
        },
        rate_limits: RateLimits {
            chargebee: RateLimitStatus {
                budget_per_minute: state
                    .config
                    .chargebee
                    .as_ref()
                    .map(|c| c.rate_limit_per_minute),
                paused_until: paused_until(state.limiters.chargebee.as_deref()),
            },
            webcrm: RateLimitStatus {
                budget_per_minute: state
                    .config
                    .webcrm
                    .as_ref()
                    .map(|c| c.rate_limit_per_minute),
                paused_until: paused_until(state.limiters.webcrm.as_deref()),
            },
        },
        drift: (!drift.is_empty()).then_some(Value::Object(drift)),
    }))
}

fn paused_until(limiter: Option<&crate::clients::outbound::OutboundLimiter>) -> Option<String> {
    limiter
        .and_then(|l| l.status().paused_until)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}
