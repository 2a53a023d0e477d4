//! `resync`: first-sync matching and repair of one pairing.
//!
//! Both sides are listed; records already linked are left alone. The rest are linked by the
//! ids each system keeps of the other (cross ids), then by the pairing's natural keys
//! (e-mail, name, code, reference id); a key with more than one candidate links nothing and
//! is reported. What stays unmatched gets a `sync` job, whose create rules decide whether a
//! counterpart is made. A new link starts from the older record's values, so its first sync
//! carries the newer record's differences across without reporting them as conflicts.
//! Every step is idempotent: an interrupted run is simply run again.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::json;

use crate::intake::{Side, SyncTarget};
use crate::store::admin::NewSyncLog;
use crate::store::now_ms;
use crate::store::sync::{CommitOutcome, LinkCommit};

use super::merge::{self, newer, Observed, Snapshot, Winner};
use super::pairing::{Pairing, SyncContext, SyncError};

/// A record as matching sees it: its id and the keys it may be matched on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedLink {
    pub webcrm_id: String,
    pub chargebee_id: String,
    /// What matched: `cross_id` or a natural key such as `email:ada@example.com`.
    pub matched_on: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ambiguity {
    pub side: &'static str,
    pub id: String,
    pub key: String,
    /// Every record sharing the key, on both sides.
    pub webcrm: Vec<String>,
    pub chargebee: Vec<String>,
}

/// The outcome of matching two unlinked sets (pure).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matching {
    pub links: Vec<PlannedLink>,
    pub ambiguous: Vec<Ambiguity>,
    pub unmatched_webcrm: Vec<String>,
    pub unmatched_chargebee: Vec<String>,
}

fn index(records: &[Candidate]) -> BTreeMap<&str, Vec<&str>> {
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in records {
        for k in &r.keys {
            by_key.entry(k.as_str()).or_default().push(r.id.as_str());
        }
    }
    by_key
}

/// Matches unlinked records by natural key, in each webCRM record's key order. A key shared
/// by exactly one record on each side links them; a key shared by more records on either
/// side links nothing and is reported; a record whose keys match nothing stays unmatched.
pub fn match_records(webcrm: &[Candidate], chargebee: &[Candidate]) -> Matching {
    let (w_index, c_index) = (index(webcrm), index(chargebee));
    let mut out = Matching::default();
    let mut taken: BTreeSet<&str> = BTreeSet::new();
    let mut settled_w: BTreeSet<&str> = BTreeSet::new();
    for w in webcrm {
        for key in &w.keys {
            let cs = c_index.get(key.as_str()).cloned().unwrap_or_default();
            let ws = w_index.get(key.as_str()).cloned().unwrap_or_default();
            if cs.is_empty() {
                continue;
            }
            if cs.len() == 1 && ws.len() == 1 && !taken.contains(cs[0]) {
                taken.insert(cs[0]);
                out.links.push(PlannedLink {
                    webcrm_id: w.id.clone(),
                    chargebee_id: cs[0].to_owned(),
                    matched_on: key.clone(),
                });
            } else {
                out.ambiguous.push(Ambiguity {
                    side: "webcrm",
                    id: w.id.clone(),
                    key: key.clone(),
                    webcrm: ws.iter().map(|s| (*s).to_owned()).collect(),
                    chargebee: cs.iter().map(|s| (*s).to_owned()).collect(),
                });
                // An ambiguous record is held back from the other side too.
                taken.extend(cs.iter().copied());
            }
            settled_w.insert(w.id.as_str());
            break;
        }
    }
    out.unmatched_webcrm = webcrm
        .iter()
        .filter(|w| !settled_w.contains(w.id.as_str()))
        .map(|w| w.id.clone())
        .collect();
    out.unmatched_chargebee = chargebee
        .iter()
        .filter(|c| !taken.contains(c.id.as_str()))
        .map(|c| c.id.clone())
        .collect();
    out
}

/// What a resync of one pairing will do (or did).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PairingPlan {
    pub pairing: String,
    /// Set when the pairing cannot be resynced (an API without listing); nothing else is.
    pub unsupported: Option<String>,
    pub links: Vec<PlannedLink>,
    /// Unmatched records whose create rules will decide on a counterpart: (side, id).
    pub creates: Vec<(String, String)>,
    /// Linked (or about to be) pairs whose sides differ: (webCRM id, Chargebee id, fields).
    pub updates: Vec<(String, String, Vec<String>)>,
    pub ambiguous: Vec<Ambiguity>,
}

impl PairingPlan {
    pub fn summary(&self) -> String {
        match &self.unsupported {
            Some(why) => format!("{}: not resynced ({why})", self.pairing),
            None => format!(
                "{}: {} links, {} creates, {} updates, {} ambiguous",
                self.pairing,
                self.links.len(),
                self.creates.len(),
                self.updates.len(),
                self.ambiguous.len()
            ),
        }
    }

    /// Every planned step, one per line, with the ids and the key it matched on.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![self.summary()];
        for l in &self.links {
            out.push(format!(
                "  link    webcrm {} <-> chargebee {} (matched on {})",
                l.webcrm_id, l.chargebee_id, l.matched_on
            ));
        }
        for (side, id) in &self.creates {
            out.push(format!(
                "  create  counterpart of {side} {id} (if its create rules allow)"
            ));
        }
        for (w, c, fields) in &self.updates {
            out.push(format!(
                "  update  webcrm {w} <-> chargebee {c}: {}",
                fields.join(", ")
            ));
        }
        for a in &self.ambiguous {
            out.push(format!(
                "  ambiguous {} {} on {}: webcrm {:?}, chargebee {:?}",
                a.side, a.id, a.key, a.webcrm, a.chargebee
            ));
        }
        out
    }
}

/// Whether the two records' synced fields would change on a first sync, and which.
fn differing_fields(pairing: &dyn Pairing, w: &Observed, c: &Observed) -> Vec<String> {
    let base = first_snapshot(w, c);
    let plan = merge::merge(pairing.rules(), &base, w, c);
    plan.webcrm
        .keys()
        .chain(plan.chargebee.keys())
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The snapshot a new link starts from: the older record's values on both sides, so the
/// first merge carries the newer record's values across (one-way fields follow their rule).
fn first_snapshot(w: &Observed, c: &Observed) -> Snapshot {
    let base = match newer(w.changed_at, c.changed_at) {
        Winner::Webcrm => c.fields.clone(),
        Winner::Chargebee => w.fields.clone(),
    };
    Snapshot {
        webcrm: base.clone(),
        chargebee: base,
    }
}

/// Lists both sides and plans the resync of one pairing. Reads only.
pub async fn plan(
    cx: &SyncContext,
    pairing: &dyn Pairing,
    rebuild_links: bool,
) -> Result<(PairingPlan, Listing), SyncError> {
    let name = pairing.name();
    let mut out = PairingPlan {
        pairing: name.to_owned(),
        ..PairingPlan::default()
    };
    let (Some(webcrm), Some(chargebee)) = (
        pairing.list(cx, Side::Webcrm).await?,
        pairing.list(cx, Side::Chargebee).await?,
    ) else {
        out.unsupported = Some("one of the APIs cannot list these records".into());
        return Ok((out, Listing::default()));
    };
    let listing = Listing {
        webcrm: webcrm.into_iter().map(|r| (r.id.clone(), r)).collect(),
        chargebee: chargebee.into_iter().map(|r| (r.id.clone(), r)).collect(),
    };
    // Records already linked are the sync's business, not resync's; report their drift.
    let mut unlinked_w = Vec::new();
    for w in listing.webcrm.values() {
        match cx.store.link_by_webcrm(name, &w.id).await? {
            Some(link) => {
                if let Some(c) = listing.chargebee.get(&link.chargebee_id) {
                    let snapshot = Snapshot::parse(&link.snapshot);
                    let p = merge::merge(pairing.rules(), &snapshot, w, c);
                    let fields: BTreeSet<String> =
                        p.webcrm.keys().chain(p.chargebee.keys()).cloned().collect();
                    if !fields.is_empty() {
                        out.updates.push((
                            w.id.clone(),
                            c.id.clone(),
                            fields.into_iter().collect(),
                        ));
                    }
                }
            }
            None => unlinked_w.push(w),
        }
    }
    let mut unlinked_c = Vec::new();
    for c in listing.chargebee.values() {
        if cx.store.link_by_chargebee(name, &c.id).await?.is_none() {
            unlinked_c.push(c);
        }
    }
    // Cross ids first: they name the counterpart exactly.
    let mut linked_w: BTreeSet<String> = BTreeSet::new();
    let mut linked_c: BTreeSet<String> = BTreeSet::new();
    let unlinked_w_ids: BTreeSet<&str> = unlinked_w.iter().map(|w| w.id.as_str()).collect();
    let unlinked_c_ids: BTreeSet<&str> = unlinked_c.iter().map(|c| c.id.as_str()).collect();
    let mut cross = |w_id: &str, c_id: &str| {
        if unlinked_w_ids.contains(w_id)
            && unlinked_c_ids.contains(c_id)
            && !linked_w.contains(w_id)
            && !linked_c.contains(c_id)
        {
            linked_w.insert(w_id.to_owned());
            linked_c.insert(c_id.to_owned());
            out.links.push(PlannedLink {
                webcrm_id: w_id.to_owned(),
                chargebee_id: c_id.to_owned(),
                matched_on: "cross_id".into(),
            });
        }
    };
    for c in &unlinked_c {
        if let Some(w_id) = pairing.cross_id(cx, Side::Chargebee, c) {
            cross(&w_id, &c.id);
        }
    }
    for w in &unlinked_w {
        if let Some(c_id) = pairing.cross_id(cx, Side::Webcrm, w) {
            cross(&w.id, &c_id);
        }
    }
    if !rebuild_links {
        let candidates = |records: &[&Observed], side: Side, linked: &BTreeSet<String>| {
            records
                .iter()
                .filter(|r| !linked.contains(&r.id))
                .map(|r| Candidate {
                    id: r.id.clone(),
                    keys: pairing.match_keys(side, r),
                })
                .collect::<Vec<_>>()
        };
        let matching = match_records(
            &candidates(&unlinked_w, Side::Webcrm, &linked_w),
            &candidates(&unlinked_c, Side::Chargebee, &linked_c),
        );
        out.links.extend(matching.links);
        out.ambiguous = matching.ambiguous;
        out.creates = matching
            .unmatched_webcrm
            .into_iter()
            .map(|id| ("webcrm".to_owned(), id))
            .chain(
                matching
                    .unmatched_chargebee
                    .into_iter()
                    .map(|id| ("chargebee".to_owned(), id)),
            )
            .collect();
    }
    for l in &out.links {
        if let (Some(w), Some(c)) = (
            listing.webcrm.get(&l.webcrm_id),
            listing.chargebee.get(&l.chargebee_id),
        ) {
            let fields = differing_fields(pairing, w, c);
            if !fields.is_empty() {
                out.updates
                    .push((l.webcrm_id.clone(), l.chargebee_id.clone(), fields));
            }
        }
    }
    Ok((out, listing))
}

/// Both sides as listed, by id.
#[derive(Debug, Default)]
pub struct Listing {
    pub webcrm: BTreeMap<String, Observed>,
    pub chargebee: BTreeMap<String, Observed>,
}

/// What applying a plan did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub linked: usize,
    /// Planned links another job made first (the run was repeated or raced a sync).
    pub already_linked: usize,
    pub jobs: usize,
}

/// Applies a plan: inserts its links and enqueues the sync jobs that carry differences
/// across and create what the rules call for. `progress` is told after each step.
pub async fn apply(
    cx: &SyncContext,
    pairing: &dyn Pairing,
    plan: &PairingPlan,
    listing: &Listing,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Applied, SyncError> {
    let name = pairing.name();
    let max_attempts = cx.config.queue.max_attempts;
    let mut applied = Applied::default();
    let mut done = 0u64;
    for l in &plan.links {
        let (Some(w), Some(c)) = (
            listing.webcrm.get(&l.webcrm_id),
            listing.chargebee.get(&l.chargebee_id),
        ) else {
            continue;
        };
        let commit = LinkCommit {
            pairing: name.to_owned(),
            expected: None,
            webcrm_id: w.id.clone(),
            chargebee_id: c.id.clone(),
            snapshot: first_snapshot(w, c).to_text(),
            webcrm_version: w.version.clone(),
            chargebee_version: c.version.clone(),
            webcrm_written_at: None,
            log: NewSyncLog {
                pairing: name.to_owned(),
                link_id: None,
                webcrm_id: Some(w.id.clone()),
                chargebee_id: Some(c.id.clone()),
                job_id: None,
                action: "linked_by_resync".into(),
                detail: json!({ "matched_on": l.matched_on }),
            },
        };
        match cx.store.commit_link(&commit, now_ms()).await? {
            CommitOutcome::Committed { .. } => applied.linked += 1,
            CommitOutcome::Stale => applied.already_linked += 1,
        }
        enqueue(cx, name, Side::Webcrm, &w.id, max_attempts).await?;
        applied.jobs += 1;
        done += 1;
        progress(done);
    }
    for (side, id) in &plan.creates {
        let side = if side == "webcrm" {
            Side::Webcrm
        } else {
            Side::Chargebee
        };
        enqueue(cx, name, side, id, max_attempts).await?;
        applied.jobs += 1;
        done += 1;
        progress(done);
    }
    Ok(applied)
}

async fn enqueue(
    cx: &SyncContext,
    pairing: &'static str,
    side: Side,
    id: &str,
    max_attempts: i32,
) -> Result<(), SyncError> {
    let now = now_ms();
    let job = SyncTarget {
        pairing,
        side,
        id: id.to_owned(),
        hint: json!({ "resync": true }),
    }
    .into_job(now, max_attempts);
    cx.store.enqueue(&job, now).await?;
    Ok(())
}

/// The job kind the admin API's `POST /pairings/{name}/resync` enqueues.
pub const RESYNC_JOB: &str = "resync";

/// Runs a resync started through the admin API. A dry run stores its plan in the sync log
/// (action `resync_planned`) and changes nothing else; a real run applies it and logs
/// `resync_applied`. The sync jobs it enqueues are run by the workers as usual.
pub struct ResyncJob {
    pub cx: std::sync::Arc<SyncContext>,
}

#[async_trait::async_trait]
impl crate::queue::JobHandler for ResyncJob {
    async fn handle(&self, job: &crate::store::Job) -> crate::queue::Outcome {
        use crate::queue::Outcome;
        let payload = job.payload_json();
        let dry_run = payload["dry_run"].as_bool().unwrap_or(false);
        let pairings = super::pairings::all();
        let Some(pairing) = pairings
            .iter()
            .find(|p| Some(p.name()) == payload["pairing"].as_str())
        else {
            return Outcome::Fatal {
                error: format!("resync of an unknown pairing {}", payload["pairing"]),
            };
        };
        let result = async {
            let (plan, listing) = plan(&self.cx, pairing.as_ref(), false).await?;
            let applied = if dry_run {
                None
            } else {
                Some(apply(&self.cx, pairing.as_ref(), &plan, &listing, &|_| {}).await?)
            };
            let entry = NewSyncLog {
                pairing: pairing.name().to_owned(),
                job_id: Some(job.id),
                action: if dry_run {
                    "resync_planned"
                } else {
                    "resync_applied"
                }
                .into(),
                detail: json!({ "summary": plan.summary(), "plan": plan, "applied": applied }),
                ..NewSyncLog::default()
            };
            self.cx.store.append_sync_log(&entry, now_ms()).await?;
            Ok::<_, SyncError>(plan.summary())
        }
        .await;
        match result {
            Ok(summary) => {
                tracing::info!(dry_run, summary, "resync finished");
                Outcome::Done
            }
            Err(SyncError::Api(e)) => super::rekey::outcome_of(e),
            Err(e) => Outcome::Retry {
                error: e.to_string(),
                retry_after: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, keys: &[&str]) -> Candidate {
        Candidate {
            id: id.into(),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    #[test]
    fn one_candidate_on_each_side_links() {
        let m = match_records(&[c("1", &["email:a"])], &[c("x", &["email:a"])]);
        assert_eq!(m.links.len(), 1);
        assert_eq!(m.links[0].chargebee_id, "x");
        assert!(m.unmatched_webcrm.is_empty() && m.unmatched_chargebee.is_empty());
    }

    #[test]
    fn two_candidates_link_nothing_and_are_reported() {
        let m = match_records(
            &[c("1", &["email:a"])],
            &[c("x", &["email:a"]), c("y", &["email:a"])],
        );
        assert!(m.links.is_empty());
        assert_eq!(m.ambiguous.len(), 1);
        assert_eq!(m.ambiguous[0].chargebee, vec!["x", "y"]);
        assert!(m.unmatched_chargebee.is_empty(), "held back, not created");
        let m = match_records(
            &[c("1", &["email:a"]), c("2", &["email:a"])],
            &[c("x", &["email:a"])],
        );
        assert!(m.links.is_empty());
        assert_eq!(m.ambiguous.len(), 2);
    }

    #[test]
    fn later_keys_are_tried_when_earlier_ones_match_nothing() {
        let m = match_records(
            &[c("1", &["code:p1", "name:widget"])],
            &[c("x", &["code:zz", "name:widget"])],
        );
        assert_eq!(m.links[0].matched_on, "name:widget");
    }

    #[test]
    fn unmatched_records_are_left_for_the_create_rules() {
        let m = match_records(
            &[c("1", &["email:a"]), c("2", &[])],
            &[c("x", &["email:b"])],
        );
        assert!(m.links.is_empty());
        assert_eq!(m.unmatched_webcrm, vec!["1", "2"]);
        assert_eq!(m.unmatched_chargebee, vec!["x"]);
    }
}
