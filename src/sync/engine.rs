//! The `sync` job: one record of one pairing, named from one side. Re-reads both records,
//! merges against the link's snapshot, writes the side(s) that differ, then commits link,
//! snapshot and sync-log entry together. Every step is safe to repeat.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::clients::outbound::{Outbound, Prepaid};
use crate::intake::chargebee::parse_envelope;
use crate::intake::webcrm::{hook_subject, pairing_collection};
use crate::intake::{Side, SyncTarget};
use crate::queue::{JobHandler, Outcome};
use crate::store::admin::{NewConflict, NewPendingAction, NewSyncLog};
use crate::store::sync::{CommitOutcome, LinkCommit, SyncLink};
use crate::store::{now_ms, Job};

use super::merge::{self, Fields, Observed, Plan, Snapshot, Winner};
use super::pairing::{Created, Dependency, Expansion, Pairing, SyncContext, SyncError};
use super::rekey::outcome_of;

/// How long a job waits for a dependency before looking again.
const DEPENDENCY_WAIT: Duration = Duration::from_secs(2);
/// How long a job waits after another job changed its link under it.
const STALE_WAIT: Duration = Duration::from_millis(50);
/// How long after the sync wrote a webCRM record a single hook for it counts as that
/// write's echo. Past it the hook is read as any other; a real edit taken for an echo
/// within it (only when the echo itself was lost) is found by the next poll.
const WEBCRM_ECHO_WINDOW_MS: i64 = 120_000;

/// Routes `sync` jobs to their pairing's module.
pub struct SyncEngine {
    pub cx: Arc<SyncContext>,
    pairings: BTreeMap<&'static str, Arc<dyn Pairing>>,
}

impl SyncEngine {
    pub fn new(cx: Arc<SyncContext>, pairings: Vec<Arc<dyn Pairing>>) -> SyncEngine {
        SyncEngine {
            cx,
            pairings: pairings.into_iter().map(|p| (p.name(), p)).collect(),
        }
    }
}

fn side_of(name: &str) -> Option<Side> {
    match name {
        "webcrm" => Some(Side::Webcrm),
        "chargebee" => Some(Side::Chargebee),
        _ => None,
    }
}

fn winner_of(side: Side) -> Winner {
    match side {
        Side::Webcrm => Winner::Webcrm,
        Side::Chargebee => Winner::Chargebee,
    }
}

fn other(side: Side) -> Side {
    match side {
        Side::Webcrm => Side::Chargebee,
        Side::Chargebee => Side::Webcrm,
    }
}

impl SyncEngine {
    /// The record a job names: `{side, id}` from intake and dependencies, or `{link_id,
    /// resolution}` from an operator resolving a conflict (the kept value is forced).
    async fn record_of(
        &self,
        payload: &Value,
    ) -> Result<Option<(Side, String, Fields)>, crate::store::StoreError> {
        if let (Some(side), Some(id)) = (
            payload["side"].as_str().and_then(side_of),
            payload["id"].as_str(),
        ) {
            return Ok(Some((side, id.to_owned(), Fields::new())));
        }
        let Some(link_id) = payload["link_id"].as_i64() else {
            return Ok(None);
        };
        let Some(link) = self.cx.store.get_link(link_id).await? else {
            return Ok(None);
        };
        let mut forced = Fields::new();
        let resolution = &payload["resolution"];
        if let Some(conflict_id) = resolution["conflict_id"].as_i64() {
            if let Some(c) = self.cx.store.get_conflict(conflict_id).await? {
                let kept = match resolution["keep"].as_str() {
                    Some("webcrm") => c.webcrm_value,
                    _ => c.chargebee_value,
                };
                let value = kept
                    .as_deref()
                    .and_then(|v| serde_json::from_str(v).ok())
                    .unwrap_or(Value::Null);
                forced.insert(c.field, value);
            }
        }
        Ok(Some((Side::Webcrm, link.webcrm_id, forced)))
    }
}

#[async_trait]
impl JobHandler for SyncEngine {
    async fn handle(&self, job: &Job) -> Outcome {
        let payload = job.payload_json();
        let pairing_name = job.pairing.as_deref().unwrap_or_default();
        let Some(pairing) = self.pairings.get(pairing_name) else {
            return Outcome::Fatal {
                error: format!("sync job for an unknown pairing {pairing_name:?}"),
            };
        };
        let (side, id, forced) = match self.record_of(&payload).await {
            Ok(Some(target)) => target,
            Ok(None) => {
                return Outcome::Fatal {
                    error: "sync job needs a side and an id, or a link id".into(),
                }
            }
            Err(e) => {
                return Outcome::Retry {
                    error: e.to_string(),
                    retry_after: None,
                }
            }
        };
        let id = id.as_str();
        let enabled = self
            .cx
            .config
            .pairing(pairing_name)
            .is_none_or(|p| p.enabled);
        if !enabled {
            return Outcome::Done;
        }
        let run = Run {
            cx: &self.cx,
            pairing: pairing.as_ref(),
            job,
            hint: &payload["hint"],
            forced: &forced,
        };
        match run.sync(side, id).await {
            Ok(Committed::Yes) => Outcome::Done,
            Ok(Committed::Stale) => Outcome::Wait {
                delay: STALE_WAIT,
                reason: "the link changed under this job; running again".into(),
            },
            Ok(Committed::Changed) => Outcome::Retry {
                error: "the webCRM record changed while it was being synced; running again".into(),
                retry_after: Some(STALE_WAIT),
            },
            Err(SyncError::Api(e)) => outcome_of(e),
            Err(SyncError::Store(e)) => Outcome::Retry {
                error: e.to_string(),
                retry_after: None,
            },
            Err(SyncError::Invalid(message)) => {
                run.log(side, id, "rejected", json!({ "error": message }))
                    .await;
                Outcome::Fatal { error: message }
            }
            Err(SyncError::Wait { reason, needs }) => {
                match run.enqueue(&needs, "needed_by").await {
                    Ok(()) => Outcome::Wait {
                        delay: DEPENDENCY_WAIT,
                        reason,
                    },
                    Err(e) => Outcome::Retry {
                        error: e.to_string(),
                        retry_after: None,
                    },
                }
            }
        }
    }
}

/// One job's run of the engine.
struct Run<'a> {
    cx: &'a SyncContext,
    pairing: &'a dyn Pairing,
    job: &'a Job,
    hint: &'a Value,
    /// Values an operator chose for conflicts (written to both sides).
    forced: &'a Fields,
}

/// Each side's version marker as stored on the link, and when the webCRM record was
/// written (if it was).
struct Versions {
    webcrm: Option<String>,
    chargebee: Option<String>,
    webcrm_written_at: Option<i64>,
}

/// How a new pair's counterpart came to be.
enum Origin {
    /// Made by this job from the source it read.
    Made,
    /// There already (see [`Created::Found`]).
    Found,
    /// Made by this job, which also wrote the source.
    Both,
}

impl Versions {
    /// The versions the two records were read at.
    fn before(w: &Observed, c: &Observed) -> Versions {
        Versions {
            webcrm: w.version.clone(),
            chargebee: c.version.clone(),
            webcrm_written_at: None,
        }
    }
}

/// What became of a commit attempt.
enum Committed {
    Yes,
    /// The link moved under us: the job runs again against the new state.
    Stale,
    /// The webCRM record changed between the merge's read and the read before its PUT: the
    /// job runs again, using an attempt, so that a record that never reads the same twice
    /// ends as a dead job instead of running for ever.
    Changed,
}

impl Run<'_> {
    fn name(&self) -> &'static str {
        self.pairing.name()
    }

    async fn sync(&self, side: Side, id: &str) -> Result<Committed, SyncError> {
        match self.pairing.expand(self.cx, side, id, self.hint).await? {
            Expansion::Itself => {}
            Expansion::Records(records) => {
                let needs: Vec<Dependency> = records
                    .into_iter()
                    .map(|(side, id)| Dependency {
                        pairing: self.name(),
                        side,
                        id,
                    })
                    .collect();
                self.enqueue(&needs, "expanded_from").await?;
                return Ok(Committed::Yes);
            }
        }
        let link = self.link_of(side, id).await?;
        let Some(live) = link.as_ref().filter(|l| l.tombstoned_at.is_none()) else {
            // The pair was broken before, or the record belongs to another pairing.
            if link.is_some() || self.pairing.belongs_elsewhere(side, id) {
                return Ok(Committed::Yes);
            }
            let source = match self.record_in_event(None, side, id).await? {
                Some(observed) => Some(observed),
                None => self.pairing.read(self.cx, side, id, self.hint).await?,
            };
            return match source {
                // The record went before it was ever linked.
                None => Ok(Committed::Yes),
                Some(source) => self.create_counterpart(side, source).await,
            };
        };
        if self.is_echo(side, live).await? {
            return Ok(Committed::Yes);
        }
        // The job for the pair's other record may be at it: one job per pair reads, writes
        // and commits at a time, or both would write the same change.
        let Some(hold) = self.cx.store.hold_link(live.id).await? else {
            return Ok(Committed::Stale);
        };
        let result = async {
            // Read again under the hold: the other job may have committed meanwhile, and
            // what it committed may be the write this job's notification echoes.
            match self.link_of(side, id).await? {
                Some(link) if link.tombstoned_at.is_none() => {
                    if link.revision != live.revision && self.is_echo(side, &link).await? {
                        return Ok(Committed::Yes);
                    }
                    let source = self.read_source(&link, side, id).await?;
                    self.sync_linked(link, side, source).await
                }
                _ => Ok(Committed::Stale),
            }
        }
        .await;
        hold.release().await;
        result
    }

    async fn link_of(&self, side: Side, id: &str) -> Result<Option<SyncLink>, SyncError> {
        Ok(match side {
            Side::Webcrm => self.cx.store.link_by_webcrm(self.name(), id).await?,
            Side::Chargebee => self.cx.store.link_by_chargebee(self.name(), id).await?,
        })
    }

    /// Whether the job was started by a notification of its record (a Chargebee event, a
    /// webCRM hook or a poll that saw it change), rather than by `resync`, the reconciler,
    /// a waiting record, an expansion or an operator: only then does the record stand for
    /// a change of its own, and the link's snapshot may stand in for what it did not touch.
    fn notified(&self) -> bool {
        self.forced.is_empty()
            && (self.hint["event_id"].is_string() || self.hint["entity"].is_string())
    }

    /// Reads one side of a linked pair; `snapshot` is the link's.
    async fn read_linked(
        &self,
        snapshot: &Snapshot,
        side: Side,
        id: &str,
        hint: &Value,
    ) -> Result<Option<Observed>, SyncError> {
        if !self.notified() {
            return self.pairing.read(self.cx, side, id, hint).await;
        }
        let known = match side {
            Side::Webcrm => &snapshot.webcrm,
            Side::Chargebee => &snapshot.chargebee,
        };
        self.pairing
            .read_known(self.cx, side, id, hint, known)
            .await
    }

    /// The job's own record. A Chargebee event newer than the link's version carries the
    /// whole record as of that version (the queue keeps the newest event of a record when
    /// jobs merge), so where the pairing can take it from there it is not read again.
    async fn read_source(
        &self,
        link: &SyncLink,
        side: Side,
        id: &str,
    ) -> Result<Option<Observed>, SyncError> {
        if let Some(observed) = self.record_in_event(Some(link), side, id).await? {
            return Ok(Some(observed));
        }
        let snapshot = Snapshot::parse(&link.snapshot);
        self.read_linked(&snapshot, side, id, self.hint).await
    }

    /// The Chargebee record as the job's stored event shows it, when the event names this
    /// record's version and, for a linked record, is newer than what the link synced.
    async fn record_in_event(
        &self,
        link: Option<&SyncLink>,
        side: Side,
        id: &str,
    ) -> Result<Option<Observed>, SyncError> {
        let (Side::Chargebee, Some(event_id), Some(hinted), true) = (
            side,
            self.hint["event_id"].as_str(),
            self.hint["resource_version"].as_i64(),
            self.forced.is_empty(),
        ) else {
            return Ok(None);
        };
        // With the link's version unknown (a write that did not return one), the event may
        // predate our own write.
        if link.is_some_and(|l| self.hinted_and_synced(l).is_none_or(|(h, s)| h <= s)) {
            return Ok(None);
        }
        let Some(body) = self.cx.store.inbound_body("chargebee", event_id).await? else {
            return Ok(None);
        };
        let Ok(event) = parse_envelope(body.as_bytes()) else {
            return Ok(None);
        };
        Ok(self
            .pairing
            .record_from_event(id, &event.content)
            .filter(|o| o.version.as_deref() == Some(hinted.to_string().as_str())))
    }

    /// Whether the job's notification is the echo of the sync's own write to its record,
    /// which ends the job before any read.
    async fn is_echo(&self, side: Side, link: &SyncLink) -> Result<bool, SyncError> {
        let echo = match side {
            // The event carries exactly the version this link last synced (usually our own
            // write coming back): nothing can have changed, not even worth a read.
            Side::Chargebee => self.is_own_version(link),
            Side::Webcrm => self.is_webcrm_echo(link).await?,
        };
        if echo {
            tracing::debug!(
                pairing = self.name(),
                link = link.id,
                side = side.as_str(),
                "echo of our own write"
            );
            metrics::counter!("sync_echoes_skipped_total", "pairing" => self.name(), "side" => side.as_str())
                .increment(1);
        }
        Ok(echo)
    }

    /// Whether a webCRM hook job is the echo of the sync's own write: the link was written
    /// within [`WEBCRM_ECHO_WINDOW_MS`], this is the only hook the record got since, and
    /// no other job took that echo first. webCRM hooks carry no version, so the count of
    /// hooks is what tells a write's echo from an edit made after it.
    async fn is_webcrm_echo(&self, link: &SyncLink) -> Result<bool, SyncError> {
        let from_hook = self.hint["entity"].as_str() == pairing_collection(self.name())
            && self.forced.is_empty()
            && !self.hint["event_type"]
                .as_str()
                .is_some_and(|t| t == "Polled" || t.to_ascii_lowercase().starts_with("delete"));
        let Some(written_at) = link.webcrm_written_at.filter(|_| from_hook) else {
            return Ok(false);
        };
        let Some(collection) = pairing_collection(self.name()) else {
            return Ok(false);
        };
        if now_ms() - written_at > WEBCRM_ECHO_WINDOW_MS {
            return Ok(false);
        }
        let subject = hook_subject(collection, &link.webcrm_id);
        if self.cx.store.hooks_since(&subject, written_at).await? != 1 {
            return Ok(false);
        }
        Ok(self.cx.store.take_webcrm_echo(link.id, written_at).await?)
    }

    /// A linked pair: re-read the counterpart, merge, write, commit.
    async fn sync_linked(
        &self,
        link: SyncLink,
        side: Side,
        source: Option<Observed>,
    ) -> Result<Committed, SyncError> {
        let mut snapshot = Snapshot::parse(&link.snapshot);
        // Values an earlier run wrote but did not commit (it stopped in between) are ours.
        let pending = link.pending_writes.as_deref().map(Snapshot::parse);
        let adopt = |snapshot: &mut Snapshot, side: Side, record: &Option<Observed>| {
            if let (Some(pending), Some(record)) = (&pending, record) {
                merge::adopt_own_writes(snapshot, pending, winner_of(side), &record.fields);
            }
        };
        adopt(&mut snapshot, side, &source);
        let own = match side {
            Side::Webcrm => &snapshot.webcrm,
            Side::Chargebee => &snapshot.chargebee,
        };
        let unchanged = source
            .as_ref()
            .is_some_and(|s| merge::unchanged(self.pairing.rules(), own, &s.fields));
        if unchanged && self.notified() {
            // The record is as last synced: whatever changed on the other side is its own
            // job's to carry (its notification, or the poll that finds it).
            tracing::debug!(pairing = self.name(), link = link.id, "unchanged");
            return Ok(Committed::Yes);
        }
        let counterpart_side = other(side);
        let counterpart_id = match counterpart_side {
            Side::Webcrm => link.webcrm_id.clone(),
            Side::Chargebee => link.chargebee_id.clone(),
        };
        // webCRM's PUT replaces the whole record and takes no version, so an edit made
        // between the read a PUT is based on and the PUT itself is overwritten: nothing slow
        // may come between the two. When this job's record is Chargebee's, every value the
        // merge can write to webCRM is Chargebee's and known now, so it is noted (see
        // `pending_writes` below) before webCRM is read, and the PUT follows the read.
        let noted = match (side, &source) {
            (Side::Chargebee, Some(c)) => {
                let possible = merge::possible_webcrm_writes(
                    self.pairing.rules(),
                    &snapshot,
                    &c.fields,
                    self.forced,
                );
                if !possible.is_empty() {
                    let writes = Snapshot {
                        webcrm: possible.clone(),
                        chargebee: Fields::new(),
                    };
                    if !self.note(&link, Some(&writes)).await? {
                        return Ok(Committed::Stale);
                    }
                }
                Some(possible)
            }
            _ => None,
        };
        // The likely PUT's turn at webCRM's rate limiter is taken now, so that it does not
        // wait for one between the read and itself.
        let paid = match &noted {
            Some(n) if !n.is_empty() => Some(self.cx.webcrm.prepay().await),
            _ => None,
        };
        let counterpart = self
            .read_linked(&snapshot, counterpart_side, &counterpart_id, &Value::Null)
            .await?;
        adopt(&mut snapshot, counterpart_side, &counterpart);
        let (w, c) = match side {
            Side::Webcrm => (source, counterpart),
            Side::Chargebee => (counterpart, source),
        };
        // Both were just read: the one that came back empty is the one that went.
        let webcrm_gone = w.is_none();
        let (Some(w), Some(c)) = (w, c) else {
            let gone = if webcrm_gone {
                Side::Webcrm
            } else {
                Side::Chargebee
            };
            let counterpart = match gone {
                Side::Webcrm => &link.chargebee_id,
                Side::Chargebee => &link.webcrm_id,
            };
            let propagate = self
                .cx
                .config
                .pairing(self.name())
                .is_some_and(|p| p.propagate_deletes);
            let propagated = if propagate {
                self.pairing
                    .propagate_delete(self.cx, gone, counterpart)
                    .await?
                    .unwrap_or("not propagated: this pairing never deletes on the other side")
            } else {
                "not propagated (propagate_deletes is off)"
            };
            let gone = gone.as_str();
            let log = self.entry(
                &link.webcrm_id,
                &link.chargebee_id,
                "tombstoned",
                json!({ "deleted_in": gone, "other_side": propagated }),
            );
            self.cx
                .store
                .tombstone_link(link.id, &log, now_ms())
                .await?;
            tracing::info!(
                pairing = self.name(),
                link = link.id,
                gone,
                "link tombstoned"
            );
            return Ok(Committed::Yes);
        };
        let plan = merge::merge_forcing(self.pairing.rules(), &snapshot, &w, &c, self.forced);
        let stale_hint = self.stale_hint(&link);
        if plan.writes_nothing()
            && plan.conflicts.is_empty()
            && link.pending_writes.is_none()
            && plan.next == Snapshot::parse(&link.snapshot)
            && plan.reports.is_empty()
        {
            // An echo, a duplicate or a stale event: nothing to write, nothing to store.
            if noted.as_ref().is_some_and(|n| !n.is_empty()) {
                self.note(&link, None).await?;
            }
            self.settle(&plan, &link.webcrm_id, &link.chargebee_id)
                .await?;
            tracing::debug!(
                pairing = self.name(),
                link = link.id,
                stale_hint,
                "unchanged"
            );
            return Ok(Committed::Yes);
        }
        let versions = match self
            .write_linked(&link, &plan, &snapshot, (&w, &c), noted.as_ref(), paid)
            .await?
        {
            Ok(versions) => versions,
            Err(moved) => return Ok(moved),
        };
        self.record_conflicts(&plan, link.id, &w, &c).await?;
        self.settle(&plan, &link.webcrm_id, &link.chargebee_id)
            .await?;
        let detail = json!({
            "wrote_webcrm": plan.webcrm,
            "wrote_chargebee": plan.chargebee,
            "conflicts": plan.conflicts.iter().map(|c| c.field).collect::<Vec<_>>(),
            "reported": plan.reports.iter().map(|r| r.field).collect::<Vec<_>>(),
            "stale_hint": stale_hint,
        });
        let action = if plan.writes_nothing() {
            "snapshot"
        } else {
            "updated"
        };
        self.commit(
            Some(&link),
            &w,
            &c,
            versions,
            plan.next.clone(),
            action,
            detail,
        )
        .await
    }

    /// Keeps the losing value of each conflict the plan settled.
    async fn record_conflicts(
        &self,
        plan: &Plan,
        link_id: i64,
        w: &Observed,
        c: &Observed,
    ) -> Result<(), SyncError> {
        for conflict in &plan.conflicts {
            self.cx
                .store
                .record_conflict(
                    &NewConflict {
                        pairing: self.name().to_owned(),
                        link_id: Some(link_id),
                        webcrm_id: Some(w.id.clone()),
                        chargebee_id: Some(c.id.clone()),
                        field: conflict.field.to_owned(),
                        webcrm_value: Some(conflict.webcrm.to_string()),
                        chargebee_value: Some(conflict.chargebee.to_string()),
                        webcrm_changed_at: w.changed_at,
                        chargebee_changed_at: c.changed_at,
                        winner: match conflict.winner {
                            Winner::Webcrm => "webcrm".to_owned(),
                            Winner::Chargebee => "chargebee".to_owned(),
                        },
                    },
                    now_ms(),
                )
                .await?;
            metrics::counter!("sync_conflicts_total", "pairing" => self.name()).increment(1);
        }
        Ok(())
    }

    /// Opens pending actions for what the target cannot take, closes those that agree again.
    async fn settle(
        &self,
        plan: &Plan,
        webcrm_id: &str,
        chargebee_id: &str,
    ) -> Result<(), SyncError> {
        let now = now_ms();
        for report in &plan.reports {
            let subject = format!("{webcrm_id}|{chargebee_id}|{}", report.field);
            self.cx
                .store
                .open_pending_action(
                    &NewPendingAction {
                        pairing: self.name().to_owned(),
                        kind: format!("{}_change", report.field),
                        subject,
                        webcrm_id: Some(webcrm_id.to_owned()),
                        chargebee_id: Some(chargebee_id.to_owned()),
                        message: self.pairing.describe(report, webcrm_id, chargebee_id),
                        details: json!({
                            "field": report.field,
                            "want": report.want,
                            "have": report.have,
                            "change_in": match report.target {
                                Winner::Webcrm => "webcrm",
                                Winner::Chargebee => "chargebee",
                            },
                        }),
                    },
                    now,
                )
                .await?;
        }
        for field in &plan.settled {
            let subject = format!("{webcrm_id}|{chargebee_id}|{field}");
            self.cx
                .store
                .close_pending_action_for(
                    self.name(),
                    &format!("{field}_change"),
                    &subject,
                    "the two systems agree again",
                    now,
                )
                .await?;
        }
        Ok(())
    }

    /// No link yet: create (or find) the counterpart and link the two.
    async fn create_counterpart(
        &self,
        side: Side,
        source: Observed,
    ) -> Result<Committed, SyncError> {
        // The source as this attempt found it, kept until the link is committed, unless an
        // earlier attempt's values are there: those are what a counterpart it made was made
        // from.
        let base_text = serde_json::to_string(&source.fields).unwrap_or_else(|_| "{}".into());
        let first_attempt = self
            .cx
            .store
            .record_create_base(self.name(), side.as_str(), &source.id, &base_text, now_ms())
            .await?;
        let created = self
            .pairing
            .create(self.cx, side, &source, self.hint)
            .await?;
        let (source, counterpart, origin) = match created {
            Created::Record(record) => (source, record, Origin::Made),
            Created::Found(record) => (source, record, Origin::Found),
            Created::Both {
                source,
                counterpart,
            } => (source, counterpart, Origin::Both),
            Created::Skip(reason) => {
                self.cx
                    .store
                    .clear_create_base(self.name(), side.as_str(), &source.id)
                    .await?;
                tracing::debug!(pairing = self.name(), id = source.id, reason, "not created");
                return Ok(Committed::Yes);
            }
        };
        let (w, c) = match side {
            Side::Webcrm => (&source, &counterpart),
            Side::Chargebee => (&counterpart, &source),
        };
        // A new pair starts from what both hold now, and fields one side is the master of
        // (cross ids, the organisation's details) are written across at once. A found
        // counterpart may have been edited since it was made: when a create that made one
        // of the two is known (this record's earlier attempt, or the other record's job),
        // the pair is merged against what it was made from; otherwise what the two
        // disagree on settles as a conflict.
        let rules = self.pairing.rules();
        let start = match origin {
            // Made just now from the source as read: anything else the counterpart holds in
            // the fields it was made with was edited since (between the create and its read).
            Origin::Made if self.pairing.reads_back_as_made() => {
                merge::made_from(rules, &source.fields, winner_of(side), w, c)
            }
            Origin::Found => match self.found_base(first_attempt, side, w, c).await? {
                Some((base, from)) => merge::made_from(rules, &base, winner_of(from), w, c),
                None => merge::link_start(w, c),
            },
            Origin::Made | Origin::Both => Snapshot {
                webcrm: w.fields.clone(),
                chargebee: c.fields.clone(),
            },
        };
        let plan = merge::merge(rules, &start, w, c);
        let versions = self.write_plan(&plan, w, c).await?;
        let action = match side {
            Side::Webcrm => "created_in_chargebee",
            Side::Chargebee => "created_in_webcrm",
        };
        let detail = json!({
            "from": winner_of(side),
            "values": merge::create_values(rules, &source, winner_of(side)),
        });
        match self
            .commit(None, w, c, versions, plan.next.clone(), action, detail)
            .await?
        {
            Committed::Yes => {
                // The webCRM record made for this customer now exists and is linked (whichever
                // side's job linked it): the intent is done.
                self.cx
                    .store
                    .clear_pending_create(self.name(), "webcrm", &c.id)
                    .await?;
                // Either record's job may have begun a create: the pair is linked now.
                for (side, id) in [(Side::Webcrm, &w.id), (Side::Chargebee, &c.id)] {
                    self.cx
                        .store
                        .clear_create_base(self.name(), side.as_str(), id)
                        .await?;
                }
                // What the two records disagreed on when they were linked.
                if !plan.conflicts.is_empty() || !plan.reports.is_empty() {
                    if let Some(link) = self.link_of(Side::Webcrm, &w.id).await? {
                        self.record_conflicts(&plan, link.id, w, c).await?;
                        self.settle(&plan, &w.id, &c.id).await?;
                    }
                }
                Ok(Committed::Yes)
            }
            // A commit is either made or stale.
            Committed::Stale | Committed::Changed => {
                // Another job linked the source meanwhile (a race): run again on the link.
                // Otherwise the counterpart is linked to a different record: a human decides.
                let linked = match side {
                    Side::Webcrm => {
                        self.cx
                            .store
                            .link_by_webcrm(self.name(), &source.id)
                            .await?
                    }
                    Side::Chargebee => {
                        self.cx
                            .store
                            .link_by_chargebee(self.name(), &source.id)
                            .await?
                    }
                };
                if linked.is_some() {
                    Ok(Committed::Stale)
                } else {
                    Err(SyncError::Invalid(format!(
                        "cannot link {} {} to {} {}: that record is already linked to another one",
                        side.as_str(),
                        source.id,
                        other(side).as_str(),
                        counterpart.id
                    )))
                }
            }
        }
    }

    /// For a found counterpart: the values a create began from, and the side they are
    /// of, when one of the two records was made by a create of the other that never linked
    /// them (this record's earlier attempt, or the other record's job).
    async fn found_base(
        &self,
        first_attempt: bool,
        side: Side,
        w: &Observed,
        c: &Observed,
    ) -> Result<Option<(Fields, Side)>, SyncError> {
        let id_of = |side: Side| match side {
            Side::Webcrm => &w.id,
            Side::Chargebee => &c.id,
        };
        let candidates = if first_attempt {
            vec![other(side)]
        } else {
            vec![side, other(side)]
        };
        for from in candidates {
            let text = self
                .cx
                .store
                .create_base(self.name(), from.as_str(), id_of(from))
                .await?;
            if let Some(base) = text.and_then(|t| serde_json::from_str::<Fields>(&t).ok()) {
                return Ok(Some((base, from)));
            }
        }
        Ok(None)
    }

    /// Writes a new pair's plan to each side; returns both sides' versions afterwards
    /// (webCRM's, and Chargebee's when its write did not return one, become unknown).
    async fn write_plan(
        &self,
        plan: &Plan,
        w: &Observed,
        c: &Observed,
    ) -> Result<Versions, SyncError> {
        let mut versions = Versions::before(w, c);
        self.write_side(Side::Webcrm, plan, w, &mut versions)
            .await?;
        self.write_side(Side::Chargebee, plan, c, &mut versions)
            .await?;
        Ok(versions)
    }

    /// Writes a linked pair's plan, each value noted on the link before it is written: if
    /// this run stops after a write and before its commit, the next knows the value as its
    /// own. `noted` holds what was noted before webCRM was read; when it does not cover the
    /// webCRM writes, or webCRM was read before something slow, webCRM is read again right
    /// before its PUT. `paid`: the PUT's turn at the rate limiter, taken before the read.
    /// `Err` when the link or the webCRM record moved meanwhile.
    async fn write_linked(
        &self,
        link: &SyncLink,
        plan: &Plan,
        snapshot: &Snapshot,
        (w, c): (&Observed, &Observed),
        noted: Option<&Fields>,
        paid: Option<Prepaid>,
    ) -> Result<Result<Versions, Committed>, SyncError> {
        let all = Snapshot {
            webcrm: plan.webcrm.clone(),
            chargebee: plan.chargebee.clone(),
        };
        let mut noted_all = false;
        let mut versions = Versions::before(w, c);
        if !plan.webcrm.is_empty() {
            let read_just_now =
                noted.is_some_and(|n| merge::covers_webcrm_writes(n, plan, snapshot));
            let fresh;
            let (base, paid) = if read_just_now {
                (w, paid)
            } else {
                if !self.note(link, Some(&all)).await? {
                    return Ok(Err(Committed::Stale));
                }
                noted_all = true;
                let paid = match paid {
                    Some(paid) => paid,
                    None => self.cx.webcrm.prepay().await,
                };
                fresh = self
                    .read_linked(
                        &Snapshot::parse(&link.snapshot),
                        Side::Webcrm,
                        &w.id,
                        &Value::Null,
                    )
                    .await?;
                match &fresh {
                    Some(f) if f.fields == w.fields => (f, Some(paid)),
                    _ => return Ok(Err(Committed::Changed)),
                }
            };
            let put = self.write_side(Side::Webcrm, plan, base, &mut versions);
            match paid {
                Some(paid) => Outbound::spend(paid, put).await?,
                None => put.await?,
            }
        }
        if !plan.chargebee.is_empty() {
            if !noted_all && !self.note(link, Some(&all)).await? {
                return Ok(Err(Committed::Stale));
            }
            self.write_side(Side::Chargebee, plan, c, &mut versions)
                .await?;
        }
        Ok(Ok(versions))
    }

    /// Writes one side's part of a plan onto `current` (that side's record as read).
    async fn write_side(
        &self,
        side: Side,
        plan: &Plan,
        current: &Observed,
        versions: &mut Versions,
    ) -> Result<(), SyncError> {
        match side {
            Side::Webcrm if !plan.webcrm.is_empty() => {
                versions.webcrm_written_at = Some(now_ms());
                versions.webcrm = self
                    .pairing
                    .write(self.cx, Side::Webcrm, current, &plan.webcrm)
                    .await?;
            }
            Side::Chargebee if !plan.chargebee.is_empty() => {
                versions.chargebee = self
                    .pairing
                    .write(self.cx, Side::Chargebee, current, &plan.chargebee)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Notes on the link the values about to be written (`None` clears the note); false
    /// when the link moved since it was read.
    async fn note(&self, link: &SyncLink, writes: Option<&Snapshot>) -> Result<bool, SyncError> {
        let text = writes.map(Snapshot::to_text);
        Ok(self
            .cx
            .store
            .note_pending_writes(link.id, link.revision, text.as_deref())
            .await?)
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        link: Option<&SyncLink>,
        w: &Observed,
        c: &Observed,
        versions: Versions,
        snapshot: Snapshot,
        action: &str,
        detail: Value,
    ) -> Result<Committed, SyncError> {
        let commit = LinkCommit {
            pairing: self.name().to_owned(),
            expected: link.map(|l| (l.id, l.revision)),
            webcrm_id: w.id.clone(),
            chargebee_id: c.id.clone(),
            snapshot: snapshot.to_text(),
            webcrm_version: versions.webcrm,
            chargebee_version: versions.chargebee,
            webcrm_written_at: versions.webcrm_written_at,
            log: self.entry(&w.id, &c.id, action, detail),
        };
        match self.cx.store.commit_link(&commit, now_ms()).await? {
            CommitOutcome::Committed { link_id } => {
                metrics::counter!("sync_commits_total", "pairing" => self.name(), "action" => action.to_owned())
                    .increment(1);
                tracing::info!(pairing = self.name(), link = link_id, action, "synced");
                Ok(Committed::Yes)
            }
            CommitOutcome::Stale => Ok(Committed::Stale),
        }
    }

    /// The Chargebee version the job's hint names and the one the link last synced.
    fn hinted_and_synced(&self, link: &SyncLink) -> Option<(i64, i64)> {
        let hinted = self.hint["resource_version"].as_i64()?;
        let synced = link.chargebee_version.as_deref()?.parse::<i64>().ok()?;
        Some((hinted, synced))
    }

    /// Whether the job's hint names exactly the Chargebee version the link last synced.
    fn is_own_version(&self, link: &SyncLink) -> bool {
        self.hinted_and_synced(link).is_some_and(|(h, s)| h == s)
    }

    /// Whether the job's hint names a Chargebee version older than the one already synced.
    fn stale_hint(&self, link: &SyncLink) -> bool {
        self.hinted_and_synced(link).is_some_and(|(h, s)| h < s)
    }

    fn entry(
        &self,
        webcrm_id: &str,
        chargebee_id: &str,
        action: &str,
        detail: Value,
    ) -> NewSyncLog {
        NewSyncLog {
            pairing: self.name().to_owned(),
            link_id: None,
            webcrm_id: Some(webcrm_id.to_owned()),
            chargebee_id: Some(chargebee_id.to_owned()),
            job_id: Some(self.job.id),
            action: action.to_owned(),
            detail,
        }
    }

    /// Logs a job outcome that has no link to hang on (a rejected record).
    async fn log(&self, side: Side, id: &str, action: &str, detail: Value) {
        let (webcrm_id, chargebee_id) = match side {
            Side::Webcrm => (Some(id.to_owned()), None),
            Side::Chargebee => (None, Some(id.to_owned())),
        };
        let entry = NewSyncLog {
            webcrm_id,
            chargebee_id,
            ..self.entry("", "", action, detail)
        };
        if let Err(e) = self.cx.store.append_sync_log(&entry, now_ms()).await {
            tracing::warn!(error = %e, "could not write the sync log");
        }
    }

    /// Enqueues sync jobs for `needs` (deduplicated by the queue); their hint names this job
    /// as `why` (`needed_by` a waiting job, or `expanded_from` one that fanned out).
    async fn enqueue(&self, needs: &[Dependency], why: &str) -> Result<(), SyncError> {
        let now = now_ms();
        for need in needs {
            let job = SyncTarget {
                pairing: need.pairing,
                side: need.side,
                id: need.id.clone(),
                hint: json!({ why: self.job.id }),
            }
            .into_job(now, self.job.max_attempts);
            self.cx.store.enqueue(&job, now).await?;
        }
        Ok(())
    }
}
