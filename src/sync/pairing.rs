//! What each pairing module provides to the shared engine: how to read both records into
//! canonical fields, how to write changes, and how to create a counterpart.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::clients::chargebee::ChargebeeClient;
use crate::clients::outbound::ApiError;
use crate::clients::webcrm::WebcrmClient;
use crate::config::Config;
use crate::intake::Side;
use crate::store::{DynStore, StoreError};

use super::merge::{Fields, Observed, Report, Rule};

/// Everything a pairing may use: the two clients, the store, the configuration.
pub struct SyncContext {
    pub store: DynStore,
    pub chargebee: Arc<ChargebeeClient>,
    pub webcrm: Arc<WebcrmClient>,
    pub config: Arc<Config>,
}

impl SyncContext {
    /// A pairing-specific option, or its default.
    pub fn option(&self, pairing: &str, key: &str) -> Option<String> {
        self.config
            .pairing(pairing)
            .and_then(|p| p.options.get(key).cloned())
            .or_else(|| crate::config::pairing_default(pairing, key).map(str::to_owned))
    }
}

/// Why a job could not finish now.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another record must be synced first; the engine enqueues these and waits.
    #[error("waiting for {reason}")]
    Wait {
        reason: String,
        needs: Vec<Dependency>,
    },
    /// The data cannot be written as it is (too long, an unmapped currency, …): retrying will
    /// not help until someone fixes the record.
    #[error("{0}")]
    Invalid(String),
}

impl SyncError {
    pub fn wait(reason: impl Into<String>, needs: Vec<Dependency>) -> SyncError {
        SyncError::Wait {
            reason: reason.into(),
            needs,
        }
    }
}

/// A record of some pairing that must be synced before this one can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub pairing: &'static str,
    pub side: Side,
    pub id: String,
}

/// What creating a counterpart did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// The counterpart as it now stands, just made.
    Record(Observed),
    /// A counterpart that already existed (made by an earlier, interrupted attempt, or by
    /// the job of the other record before it linked): it may have been edited since it was
    /// made, so the engine merges the pair against the values it was made from when those
    /// are known, and settles what the two disagree on as conflicts when not.
    Found(Observed),
    /// As `Record`, for a create that also wrote to the source record: both as they now
    /// stand (the engine must not merge against the source as it was read before).
    Both {
        source: Observed,
        counterpart: Observed,
    },
    /// The create rules say this record gets no counterpart (e.g. an open opportunity).
    Skip(String),
}

/// A record id the job was given may stand for several records of this pairing (an
/// organisation for its persons, an order for its lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expansion {
    /// The id is one record of the pairing.
    Itself,
    /// Sync these records instead.
    Records(Vec<(Side, String)>),
}

#[async_trait]
pub trait Pairing: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn rules(&self) -> &'static [Rule];

    /// Turns a job's record id into the pairing's records (see [`Expansion`]).
    async fn expand(
        &self,
        _cx: &SyncContext,
        _side: Side,
        _id: &str,
        _hint: &Value,
    ) -> Result<Expansion, SyncError> {
        Ok(Expansion::Itself)
    }

    /// The record as it is now; `None` when it no longer exists.
    async fn read(
        &self,
        cx: &SyncContext,
        side: Side,
        id: &str,
        hint: &Value,
    ) -> Result<Option<Observed>, SyncError>;

    /// [`Pairing::read`] for a linked record whose side of the link's snapshot is `known`:
    /// a pairing may take from it what it would otherwise read from a related record that
    /// notifies on its own (a person's organisation). The engine passes it only for jobs
    /// started by a notification of the record itself.
    async fn read_known(
        &self,
        cx: &SyncContext,
        side: Side,
        id: &str,
        hint: &Value,
        _known: &Fields,
    ) -> Result<Option<Observed>, SyncError> {
        self.read(cx, side, id, hint).await
    }

    /// The Chargebee record `id` as an event's `content` shows it, when that content is the
    /// whole of what [`Pairing::read`] would return (a customer is; an order with its
    /// invoice is not). `None`: read it instead.
    fn record_from_event(&self, _id: &str, _content: &Value) -> Option<Observed> {
        None
    }

    /// Writes `changes` (canonical values) onto the existing record `current`. Returns the
    /// record's version after the write when the API answered with it (Chargebee's
    /// `resource_version`), so the echo of this write is recognised without a read.
    async fn write(
        &self,
        cx: &SyncContext,
        side: Side,
        current: &Observed,
        changes: &Fields,
    ) -> Result<Option<String>, SyncError>;

    /// Creates (or finds, after an interrupted earlier attempt) the counterpart of `source`
    /// on the other side. `hint` is the job's hint (`needed_by` when another record waits
    /// for this one).
    async fn create(
        &self,
        cx: &SyncContext,
        from: Side,
        source: &Observed,
        hint: &Value,
    ) -> Result<Created, SyncError>;

    /// Whether a counterpart this pairing makes reads back with exactly the values it was
    /// made with, so that any difference found right after a create is an edit made since.
    /// Pairings whose records gain or lose values on the way (an order line's status, a
    /// catalogue blank written as `-`) leave it `false`: their new pairs start from what
    /// both hold.
    fn reads_back_as_made(&self) -> bool {
        false
    }

    /// A record this pairing never links, known by its id alone (another pairing's
    /// deterministic ids): its jobs end without a read.
    fn belongs_elsewhere(&self, _side: Side, _id: &str) -> bool {
        false
    }

    /// Every record of one side, for `resync` and the reconciler; `None` when the API
    /// offers no listing for it.
    async fn list(
        &self,
        _cx: &SyncContext,
        _side: Side,
    ) -> Result<Option<Vec<Observed>>, SyncError> {
        Ok(None)
    }

    /// The natural keys first-sync matching compares (e.g. `email:ada@example.com`); a
    /// record and a counterpart that share a key are the same thing.
    fn match_keys(&self, _side: Side, _record: &Observed) -> Vec<String> {
        Vec::new()
    }

    /// The counterpart id a record carries itself (Chargebee `meta_data`, webCRM
    /// `OpportunityErpId`, …), for rebuilding links from the two systems alone.
    fn cross_id(&self, _cx: &SyncContext, _side: Side, _record: &Observed) -> Option<String> {
        None
    }

    /// With `<PAIRING>_PROPAGATE_DELETES=true`: the record on side `gone` was deleted, so
    /// remove (or retire) its counterpart `counterpart_id` where the API allows it. Returns
    /// what was done, or `None` where this pairing never propagates a delete.
    async fn propagate_delete(
        &self,
        _cx: &SyncContext,
        _gone: Side,
        _counterpart_id: &str,
    ) -> Result<Option<&'static str>, SyncError> {
        Ok(None)
    }

    /// The message of a pending action for a change the target cannot take.
    fn describe(&self, report: &Report, webcrm_id: &str, chargebee_id: &str) -> String {
        format!(
            "change `{}` from {} to {} in {} (its API cannot take this change; webCRM record \
             {webcrm_id}, Chargebee record {chargebee_id})",
            report.field,
            report.have,
            report.want,
            match report.target {
                super::merge::Winner::Webcrm => "webCRM",
                super::merge::Winner::Chargebee => "Chargebee",
            }
        )
    }
}
