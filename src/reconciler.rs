//! The reconciler: a periodic full id sweep of each pairing, for what neither webhooks nor
//! polling can see (records untouched for years, deletes that sent nothing, a poll gap).
//!
//! Records without a link get a `sync` job (its create rules decide); links whose record
//! vanished get one too (the engine tombstones them and logs it). The counts are the
//! pairing's drift report, kept beside the poll cursors and shown by the admin status.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::intake::{Side, SyncTarget};
use crate::queue::{JobHandler, Outcome};
use crate::store::{now_ms, DynStore, Job, NewJob};
use crate::sync::pairing::{Pairing, SyncContext, SyncError};
use crate::sync::rekey::outcome_of;

pub const RECONCILE_JOB: &str = "reconcile";
/// The cursor source the drift reports are kept under.
pub const DRIFT_SOURCE: &str = "reconciler";

/// One pairing's drift, as of its last sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Drift {
    pub checked_at: i64,
    /// Set when an API cannot list the pairing's records; nothing was swept.
    pub unsupported: Option<String>,
    pub webcrm_records: usize,
    pub chargebee_records: usize,
    pub links: usize,
    /// Records without a link (each got a sync job; create rules may leave them unlinked).
    pub unlinked_webcrm: usize,
    pub unlinked_chargebee: usize,
    /// Links whose record is gone (each got a sync job, which tombstones the link).
    pub vanished_webcrm: usize,
    pub vanished_chargebee: usize,
}

/// A sweep job per enabled pairing.
pub fn reconcile_jobs(config: &Config, now: i64) -> Vec<NewJob> {
    crate::sync::pairings::all()
        .iter()
        .filter(|p| config.pairing(p.name()).is_none_or(|c| c.enabled))
        .map(|p| NewJob {
            kind: RECONCILE_JOB.into(),
            pairing: Some(p.name().into()),
            dedupe_key: format!("reconcile:{}", p.name()),
            payload: json!({ "pairing": p.name() }),
            run_at: now,
            max_attempts: config.queue.max_attempts,
        })
        .collect()
}

/// Enqueues the sweeps every `RECONCILE_INTERVAL_SECS`, the first one interval after start
/// (a restarting service must not sweep on every start).
pub async fn schedule(store: DynStore, config: Arc<Config>, cancel: CancellationToken) {
    let period = config.reconcile_interval;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let now = now_ms();
        for job in reconcile_jobs(&config, now) {
            if let Err(e) = store.enqueue(&job, now).await {
                tracing::warn!(error = %e, "could not schedule a reconciliation");
            }
        }
    }
}

pub struct Reconciler {
    pub cx: Arc<SyncContext>,
}

#[async_trait]
impl JobHandler for Reconciler {
    async fn handle(&self, job: &Job) -> Outcome {
        let pairings = crate::sync::pairings::all();
        let Some(pairing) = pairings
            .iter()
            .find(|p| Some(p.name()) == job.pairing.as_deref())
        else {
            return Outcome::Fatal {
                error: format!("reconciliation of an unknown pairing {:?}", job.pairing),
            };
        };
        match sweep(&self.cx, pairing.as_ref()).await {
            Ok(drift) => {
                tracing::info!(pairing = pairing.name(), ?drift, "reconciled");
                Outcome::Done
            }
            Err(SyncError::Api(e)) => outcome_of(e),
            Err(e) => Outcome::Retry {
                error: e.to_string(),
                retry_after: None,
            },
        }
    }
}

/// Sweeps one pairing: enqueues what needs a look and stores the drift report.
pub async fn sweep(cx: &SyncContext, pairing: &dyn Pairing) -> Result<Drift, SyncError> {
    let name = pairing.name();
    let mut drift = Drift {
        checked_at: now_ms(),
        ..Drift::default()
    };
    let lists = (
        pairing.list(cx, Side::Webcrm).await?,
        pairing.list(cx, Side::Chargebee).await?,
    );
    if let (Some(webcrm), Some(chargebee)) = lists {
        let links = cx.store.live_links(name).await?;
        let w_ids: BTreeSet<&str> = webcrm.iter().map(|r| r.id.as_str()).collect();
        let c_ids: BTreeSet<&str> = chargebee.iter().map(|r| r.id.as_str()).collect();
        let linked_w: BTreeSet<&str> = links.iter().map(|l| l.webcrm_id.as_str()).collect();
        let linked_c: BTreeSet<&str> = links.iter().map(|l| l.chargebee_id.as_str()).collect();
        let mut jobs: Vec<(Side, &str)> = Vec::new();
        for l in &links {
            if !w_ids.contains(l.webcrm_id.as_str()) {
                drift.vanished_webcrm += 1;
                jobs.push((Side::Webcrm, &l.webcrm_id));
            } else if !c_ids.contains(l.chargebee_id.as_str()) {
                drift.vanished_chargebee += 1;
                jobs.push((Side::Chargebee, &l.chargebee_id));
            }
        }
        for id in w_ids.difference(&linked_w) {
            drift.unlinked_webcrm += 1;
            jobs.push((Side::Webcrm, id));
        }
        for id in c_ids.difference(&linked_c) {
            drift.unlinked_chargebee += 1;
            jobs.push((Side::Chargebee, id));
        }
        drift.webcrm_records = w_ids.len();
        drift.chargebee_records = c_ids.len();
        drift.links = links.len();
        let now = now_ms();
        for (side, id) in jobs {
            let job = SyncTarget {
                pairing: name,
                side,
                id: id.to_owned(),
                hint: json!({ "reconciler": true }),
            }
            .into_job(now, cx.config.queue.max_attempts);
            cx.store.enqueue(&job, now).await?;
        }
    } else {
        drift.unsupported = Some("one of the APIs cannot list these records".into());
    }
    let report = serde_json::to_string(&drift).unwrap_or_default();
    cx.store
        .set_cursor(DRIFT_SOURCE, name, &report, now_ms())
        .await?;
    Ok(drift)
}
