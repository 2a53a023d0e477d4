//! Webhook intake: verify the sender, store the raw event, and enqueue the jobs it calls for,
//! in one transaction, before answering 2xx. No outbound call happens here; the worker
//! re-reads the records, so a notification is a hint (except that an authenticated
//! Chargebee event newer than the last sync stands for the customer it carries).

pub mod chargebee;
pub mod webcrm;

use serde_json::json;

use crate::store::{Millis, NewJob};

/// Which system a record id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Webcrm,
    Chargebee,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Webcrm => "webcrm",
            Side::Chargebee => "chargebee",
        }
    }
}

/// A record one pairing should sync, named from one side.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncTarget {
    pub pairing: &'static str,
    pub side: Side,
    pub id: String,
    /// What the worker may use as a hint (event id, type, version). The engine may take a
    /// customer from the stored event it names (see `SyncEngine`), never from the hint.
    pub hint: serde_json::Value,
}

/// Job kinds the intake enqueues.
pub const SYNC_JOB: &str = "sync";
pub const POLL_JOB: &str = "poll";
pub const REKEY_JOB: &str = "rekey_customer";

/// The dedupe key of a sync job for a record not (yet) known to be linked.
pub fn record_sync_key(pairing: &str, side: Side, id: &str) -> String {
    format!("sync:{pairing}:{}:{id}", side.as_str())
}

/// The dedupe key of a sync job for a linked pair (operator actions on a link). Jobs keyed
/// by either record of the pair may be claimed beside it; the engine holds the link while it
/// syncs (`SyncStore::hold_link`), so one of them runs at a time, and its commit point
/// compares the link's version, so a later run re-reads instead of overwriting.
pub fn link_sync_key(pairing: &str, link_id: i64) -> String {
    format!("sync:{pairing}:link:{link_id}")
}

impl SyncTarget {
    pub fn into_job(self, now: Millis, max_attempts: i32) -> NewJob {
        let mut payload = json!({ "side": self.side.as_str(), "id": self.id });
        if let (Some(p), Some(hint)) = (payload.as_object_mut(), self.hint.as_object()) {
            p.insert("hint".into(), serde_json::Value::Object(hint.clone()));
        }
        NewJob {
            kind: SYNC_JOB.into(),
            pairing: Some(self.pairing.into()),
            dedupe_key: record_sync_key(self.pairing, self.side, &self.id),
            payload,
            run_at: now,
            max_attempts,
        }
    }
}
