//! What the admin API reads and steers: links, the sync log, jobs, conflicts, pending
//! actions and the inbound event log. A second trait beside [`Store`](super::Store), written
//! once for both backends by [`impl_admin_store!`]: the statements in [`sql`] are shared and
//! only the pool type differs. The insert helpers (`insert_link`, `record_conflict`,
//! `open_pending_action`, `append_sync_log`) are the ones the sync engine writes through;
//! inbound events are written by intake (`Store::record_inbound`).

use async_trait::async_trait;
use serde::Serialize;

use super::{Job, Millis, StoreResult};

/// A link between a webCRM record and a Chargebee record within one pairing.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, PartialEq, Eq)]
pub struct Link {
    pub id: i64,
    pub pairing: String,
    pub webcrm_id: String,
    pub chargebee_id: String,
    /// The last-synced canonical snapshot, JSON text.
    pub snapshot: String,
    pub webcrm_version: Option<String>,
    pub chargebee_version: Option<String>,
    pub created_at: Millis,
    pub last_synced_at: Option<Millis>,
    pub tombstoned_at: Option<Millis>,
}

#[derive(Debug, Clone)]
pub struct NewLink {
    pub pairing: String,
    pub webcrm_id: String,
    pub chargebee_id: String,
    /// JSON text; `{}` for a link nothing was synced through yet.
    pub snapshot: String,
}

/// Why a link could not be inserted: one of its records is already linked in the pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTaken {
    /// The unique constraint that refused it.
    pub constraint: &'static str,
    /// `webcrm_id` or `chargebee_id`.
    pub side: &'static str,
    /// The link that holds the record, when it could be found.
    pub existing_link_id: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct LinkFilter {
    pub pairing: Option<String>,
    pub webcrm_id: Option<String>,
    pub chargebee_id: Option<String>,
    pub tombstoned: Option<bool>,
}

/// Newest first: rows with an id below `before` (when given), at most `limit` of them.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub before: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, PartialEq, Eq)]
pub struct SyncLogEntry {
    pub id: i64,
    pub pairing: String,
    pub link_id: Option<i64>,
    pub webcrm_id: Option<String>,
    pub chargebee_id: Option<String>,
    pub job_id: Option<i64>,
    pub action: String,
    /// JSON text.
    pub detail: String,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Default)]
pub struct NewSyncLog {
    pub pairing: String,
    pub link_id: Option<i64>,
    pub webcrm_id: Option<String>,
    pub chargebee_id: Option<String>,
    pub job_id: Option<i64>,
    pub action: String,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<String>,
    pub pairing: Option<String>,
    pub kind: Option<String>,
}

/// What asking to retry one job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    NotFound,
    /// Only failed and dead jobs are retried; the job is in this state.
    NotRetryable(String),
    /// The job is pending and due now, with its attempts reset.
    Retried(i64),
    /// A job for the same record was already waiting and does the same work: the dead job
    /// was folded into it, which is now due with its attempts reset.
    Merged(i64),
}

/// What asking to discard one job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardOutcome {
    NotFound,
    /// A worker holds the job; it cannot be discarded under it.
    Running,
    Discarded,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, PartialEq, Eq)]
pub struct Conflict {
    pub id: i64,
    pub pairing: String,
    pub link_id: Option<i64>,
    pub webcrm_id: Option<String>,
    pub chargebee_id: Option<String>,
    pub field: String,
    pub webcrm_value: Option<String>,
    pub chargebee_value: Option<String>,
    pub webcrm_changed_at: Option<Millis>,
    pub chargebee_changed_at: Option<Millis>,
    /// `webcrm` or `chargebee`: the side the merge kept.
    pub winner: String,
    pub created_at: Millis,
    pub resolved_at: Option<Millis>,
    pub resolution: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct NewConflict {
    pub pairing: String,
    pub link_id: Option<i64>,
    pub webcrm_id: Option<String>,
    pub chargebee_id: Option<String>,
    pub field: String,
    pub webcrm_value: Option<String>,
    pub chargebee_value: Option<String>,
    pub webcrm_changed_at: Option<Millis>,
    pub chargebee_changed_at: Option<Millis>,
    pub winner: String,
}

#[derive(Debug, Clone, Default)]
pub struct ConflictFilter {
    pub pairing: Option<String>,
    pub resolved: bool,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, PartialEq, Eq)]
pub struct PendingAction {
    pub id: i64,
    pub pairing: String,
    pub kind: String,
    pub subject: String,
    pub webcrm_id: Option<String>,
    pub chargebee_id: Option<String>,
    pub message: String,
    /// JSON text.
    pub details: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub closed_at: Option<Millis>,
    pub closed_reason: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct NewPendingAction {
    pub pairing: String,
    pub kind: String,
    /// What the action is about (e.g. `person:123`); one open action per (pairing, kind, subject).
    pub subject: String,
    pub webcrm_id: Option<String>,
    pub chargebee_id: Option<String>,
    pub message: String,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct PendingActionFilter {
    pub pairing: Option<String>,
    pub closed: bool,
}

/// An inbound webhook or hook as logged. Request headers are never stored.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, PartialEq, Eq)]
pub struct InboundEvent {
    pub id: i64,
    pub source: String,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
    /// Only read for a single event; lists leave it out.
    #[sqlx(default)]
    pub body: Option<String>,
    pub received_at: Millis,
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub outcome: Option<String>,
    /// Inclusive.
    pub since: Option<Millis>,
    /// Exclusive.
    pub until: Option<Millis>,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, PartialEq, Eq)]
pub struct LinkCount {
    pub pairing: String,
    pub live: i64,
    pub tombstoned: i64,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, PartialEq, Eq)]
pub struct PairingCount {
    pub pairing: String,
    pub count: i64,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, PartialEq, Eq)]
pub struct PairingInstant {
    pub pairing: String,
    pub at: Millis,
}

/// A poller's position for one source and entity; `updated_at` is its last successful poll.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, PartialEq, Eq)]
pub struct PollCursor {
    pub source: String,
    pub entity: String,
    pub updated_at: Millis,
}

#[async_trait]
pub trait AdminStore: Send + Sync {
    // --- status -------------------------------------------------------------------------

    /// Live and tombstoned links per pairing (pairings without links are absent).
    async fn link_counts(&self) -> StoreResult<Vec<LinkCount>>;

    /// `run_at` of the oldest waiting (pending or failed) job per pairing.
    async fn oldest_waiting_by_pairing(&self) -> StoreResult<Vec<PairingInstant>>;

    async fn open_conflict_counts(&self) -> StoreResult<Vec<PairingCount>>;

    async fn open_pending_action_counts(&self) -> StoreResult<Vec<PairingCount>>;

    async fn poll_cursors(&self) -> StoreResult<Vec<PollCursor>>;

    // --- links --------------------------------------------------------------------------

    async fn list_links(&self, filter: &LinkFilter, page: Page) -> StoreResult<Vec<Link>>;

    async fn get_link(&self, id: i64) -> StoreResult<Option<Link>>;

    /// Links whose snapshot text contains `needle` (case-insensitive), newest first: a
    /// coarse prefilter for the console's e-mail lookup, which checks the fields itself.
    async fn links_with_snapshot_text(&self, needle: &str, limit: i64) -> StoreResult<Vec<Link>>;

    /// Inserts a link, or says which of its records is already linked in the pairing.
    async fn insert_link(
        &self,
        link: &NewLink,
        now: Millis,
    ) -> StoreResult<Result<Link, LinkTaken>>;

    /// Removes a link (its conflicts keep their ids, their `link_id` becomes null); returns
    /// the removed link.
    async fn delete_link(&self, id: i64) -> StoreResult<Option<Link>>;

    // --- sync log -----------------------------------------------------------------------

    async fn append_sync_log(&self, entry: &NewSyncLog, now: Millis) -> StoreResult<i64>;

    /// The newest entries about a link: written for it, or for either of its records before
    /// it existed.
    async fn sync_log_for_link(&self, link: &Link, limit: i64) -> StoreResult<Vec<SyncLogEntry>>;

    /// The newest entry of a pairing with this action (e.g. the last `resync_planned`).
    async fn latest_sync_log(
        &self,
        pairing: &str,
        action: &str,
    ) -> StoreResult<Option<SyncLogEntry>>;

    // --- jobs ---------------------------------------------------------------------------

    async fn list_jobs(&self, filter: &JobFilter, page: Page) -> StoreResult<Vec<Job>>;

    /// A failed or dead job becomes pending, due `now`, attempts reset.
    async fn retry_job(&self, id: i64, now: Millis) -> StoreResult<RetryOutcome>;

    /// Every dead job of `pairing` becomes pending, due `now`, attempts reset (dead jobs whose
    /// record already has a waiting job are folded into it). Returns how many dead jobs there
    /// were.
    async fn retry_dead_jobs(&self, pairing: &str, now: Millis) -> StoreResult<u64>;

    /// Deletes a job that no worker holds.
    async fn discard_job(&self, id: i64) -> StoreResult<DiscardOutcome>;

    // --- conflicts ----------------------------------------------------------------------

    async fn record_conflict(&self, conflict: &NewConflict, now: Millis) -> StoreResult<i64>;

    async fn list_conflicts(
        &self,
        filter: &ConflictFilter,
        page: Page,
    ) -> StoreResult<Vec<Conflict>>;

    async fn get_conflict(&self, id: i64) -> StoreResult<Option<Conflict>>;

    /// Marks an open conflict resolved; false when it is not open (resolved, or no such id).
    async fn resolve_conflict(&self, id: i64, resolution: &str, now: Millis) -> StoreResult<bool>;

    // --- pending actions ----------------------------------------------------------------

    /// Opens an action, or refreshes the open one for the same (pairing, kind, subject).
    async fn open_pending_action(&self, action: &NewPendingAction, now: Millis)
        -> StoreResult<i64>;

    async fn list_pending_actions(
        &self,
        filter: &PendingActionFilter,
        page: Page,
    ) -> StoreResult<Vec<PendingAction>>;

    async fn get_pending_action(&self, id: i64) -> StoreResult<Option<PendingAction>>;

    /// Closes an open action; false when it is not open (closed, or no such id).
    async fn close_pending_action(&self, id: i64, reason: &str, now: Millis) -> StoreResult<bool>;

    // --- inbound events -----------------------------------------------------------------

    /// Events without their bodies, newest first.
    async fn list_inbound_events(
        &self,
        filter: &EventFilter,
        page: Page,
    ) -> StoreResult<Vec<InboundEvent>>;

    /// One event with its body.
    async fn get_inbound_event(&self, id: i64) -> StoreResult<Option<InboundEvent>>;
}

/// Whether a database error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Column lists, as macros so statements can be built with `concat!`.
macro_rules! link_columns {
    () => {
        "id, pairing, webcrm_id, chargebee_id, snapshot, webcrm_version, chargebee_version, \
         created_at, last_synced_at, tombstoned_at"
    };
}
macro_rules! job_columns {
    () => {
        "id, kind, pairing, dedupe_key, payload, state, attempts, max_attempts, run_at, \
         lease_until, locked_by, last_error, created_at, updated_at"
    };
}
macro_rules! sync_log_columns {
    () => {
        "id, pairing, link_id, webcrm_id, chargebee_id, job_id, action, detail, created_at"
    };
}
macro_rules! conflict_columns {
    () => {
        "id, pairing, link_id, webcrm_id, chargebee_id, field, webcrm_value, chargebee_value, \
         webcrm_changed_at, chargebee_changed_at, winner, created_at, resolved_at, resolution"
    };
}
macro_rules! pending_action_columns {
    () => {
        "id, pairing, kind, subject, webcrm_id, chargebee_id, message, details, created_at, \
         updated_at, closed_at, closed_reason"
    };
}
macro_rules! event_summary_columns {
    () => {
        "id, source, event_id, event_type, outcome, detail, received_at"
    };
}

/// Statements both backends run verbatim (sqlx binds `$n` for SQLite too). Optional filters
/// are `($n is null or …)` so each statement has one text.
pub(crate) mod sql {
    #[cfg(test)]
    pub const JOB_COLUMNS: &str = job_columns!();

    pub const LINK_COUNTS: &str = "select pairing,
            sum(case when tombstoned_at is null then 1 else 0 end) as live,
            sum(case when tombstoned_at is null then 0 else 1 end) as tombstoned
         from links group by pairing order by pairing";

    pub const OLDEST_WAITING_BY_PAIRING: &str = "select pairing, min(run_at) as at from jobs
         where state in ('pending', 'failed') and pairing is not null
         group by pairing order by pairing";

    pub const OPEN_CONFLICT_COUNTS: &str = "select pairing, count(*) as count from conflicts
         where resolved_at is null group by pairing order by pairing";

    pub const OPEN_PENDING_ACTION_COUNTS: &str = "select pairing, count(*) as count
         from pending_actions where closed_at is null group by pairing order by pairing";

    pub const POLL_CURSORS: &str =
        "select source, entity, updated_at from cursors order by source, entity";

    pub const LIST_LINKS: &str = concat!(
        "select ",
        link_columns!(),
        " from links
         where ($1 is null or pairing = $1)
           and ($2 is null or webcrm_id = $2)
           and ($3 is null or chargebee_id = $3)
           and ($4 is null or (tombstoned_at is not null) = $4)
           and ($5 is null or id < $5)
         order by id desc limit $6"
    );

    pub const GET_LINK: &str = concat!("select ", link_columns!(), " from links where id = $1");

    /// `$1` is a `like` pattern; `%`, `_` and backslashes meant literally are escaped with a
    /// backslash.
    pub const LINKS_WITH_SNAPSHOT_TEXT: &str = concat!(
        "select ",
        link_columns!(),
        " from links where lower(snapshot) like lower($1) escape '\\'
         order by id desc limit $2"
    );

    pub const LATEST_SYNC_LOG: &str = concat!(
        "select ",
        sync_log_columns!(),
        " from sync_log where pairing = $1 and action = $2 order by id desc limit 1"
    );

    pub const INSERT_LINK: &str = concat!(
        "insert into links (pairing, webcrm_id, chargebee_id, snapshot, created_at)
         values ($1, $2, $3, $4, $5) returning ",
        link_columns!()
    );

    pub const LINK_BY_WEBCRM: &str = "select id from links where pairing = $1 and webcrm_id = $2";

    pub const LINK_BY_CHARGEBEE: &str =
        "select id from links where pairing = $1 and chargebee_id = $2";

    pub const DELETE_LINK: &str = concat!(
        "delete from links where id = $1 returning ",
        link_columns!()
    );

    pub const APPEND_SYNC_LOG: &str = "insert into sync_log
            (pairing, link_id, webcrm_id, chargebee_id, job_id, action, detail, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8) returning id";

    pub const SYNC_LOG_FOR_LINK: &str = concat!(
        "select ",
        sync_log_columns!(),
        " from sync_log
         where link_id = $1
            or (pairing = $2 and (webcrm_id = $3 or chargebee_id = $4))
         order by id desc limit $5"
    );

    pub const LIST_JOBS: &str = concat!(
        "select ",
        job_columns!(),
        " from jobs
         where ($1 is null or state = $1)
           and ($2 is null or pairing = $2)
           and ($3 is null or kind = $3)
           and ($4 is null or id < $4)
         order by id desc limit $5"
    );

    pub const JOB_KEY_AND_STATE: &str = "select dedupe_key, state from jobs where id = $1";

    pub const WAITING_SIBLING: &str = "select id from jobs
         where dedupe_key = $1 and id <> $2 and state in ('pending', 'failed')";

    /// A job in state `$3` becomes pending, due `$2`, attempts reset.
    pub const REQUEUE_JOB: &str = "update jobs set state = 'pending', run_at = $2,
            attempts = 0, lease_until = null, locked_by = null, updated_at = $2
         where id = $1 and state = $3";

    pub const DELETE_JOB_IN_STATE: &str = "delete from jobs where id = $1 and state = $2";

    pub const DEAD_COUNT: &str = "select count(*) from jobs where state = 'dead' and pairing = $1";

    /// Waiting jobs that a dead job of the pairing shares its record with: due now.
    pub const BUMP_WAITING_FOR_DEAD: &str = "update jobs set state = 'pending',
            run_at = case when run_at > $2 then $2 else run_at end,
            attempts = 0, updated_at = $2
         where state in ('pending', 'failed')
           and dedupe_key in (select d.dedupe_key from jobs d
                              where d.state = 'dead' and d.pairing = $1)";

    /// Dead jobs whose record has a waiting job, or a newer dead job of the pairing: the
    /// survivor does the same work.
    pub const DROP_SHADOWED_DEAD: &str = "delete from jobs
         where state = 'dead' and pairing = $1
           and (exists (select 1 from jobs w
                        where w.dedupe_key = jobs.dedupe_key
                          and w.state in ('pending', 'failed'))
                or exists (select 1 from jobs d
                           where d.dedupe_key = jobs.dedupe_key and d.state = 'dead'
                             and d.pairing = $1 and d.id > jobs.id))";

    pub const REQUEUE_DEAD: &str = "update jobs set state = 'pending', run_at = $2,
            attempts = 0, lease_until = null, locked_by = null, updated_at = $2
         where state = 'dead' and pairing = $1";

    pub const DISCARD_JOB: &str = "delete from jobs where id = $1 and state <> 'running'";

    pub const JOB_STATE: &str = "select state from jobs where id = $1";

    pub const RECORD_CONFLICT: &str = "insert into conflicts
            (pairing, link_id, webcrm_id, chargebee_id, field, webcrm_value, chargebee_value,
             webcrm_changed_at, chargebee_changed_at, winner, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) returning id";

    pub const LIST_CONFLICTS: &str = concat!(
        "select ",
        conflict_columns!(),
        " from conflicts
         where ($1 is null or pairing = $1)
           and ((resolved_at is not null) = $2)
           and ($3 is null or id < $3)
         order by id desc limit $4"
    );

    pub const GET_CONFLICT: &str = concat!(
        "select ",
        conflict_columns!(),
        " from conflicts where id = $1"
    );

    pub const RESOLVE_CONFLICT: &str = "update conflicts set resolved_at = $2, resolution = $3
         where id = $1 and resolved_at is null";

    pub const OPEN_PENDING_ACTION: &str = "insert into pending_actions
            (pairing, kind, subject, webcrm_id, chargebee_id, message, details, created_at,
             updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $8)
         on conflict (pairing, kind, subject) where closed_at is null do update
            set webcrm_id = excluded.webcrm_id, chargebee_id = excluded.chargebee_id,
                message = excluded.message, details = excluded.details,
                updated_at = excluded.updated_at
         returning id";

    pub const LIST_PENDING_ACTIONS: &str = concat!(
        "select ",
        pending_action_columns!(),
        " from pending_actions
         where ($1 is null or pairing = $1)
           and ((closed_at is not null) = $2)
           and ($3 is null or id < $3)
         order by id desc limit $4"
    );

    pub const GET_PENDING_ACTION: &str = concat!(
        "select ",
        pending_action_columns!(),
        " from pending_actions where id = $1"
    );

    pub const CLOSE_PENDING_ACTION: &str = "update pending_actions
         set closed_at = $2, closed_reason = $3, updated_at = $2
         where id = $1 and closed_at is null";

    pub const LIST_INBOUND_EVENTS: &str = concat!(
        "select ",
        event_summary_columns!(),
        " from inbound_events
         where ($1 is null or source = $1)
           and ($2 is null or event_type = $2)
           and ($3 is null or outcome = $3)
           and ($4 is null or received_at >= $4)
           and ($5 is null or received_at < $5)
           and ($6 is null or id < $6)
         order by id desc limit $7"
    );

    pub const GET_INBOUND_EVENT: &str = concat!(
        "select ",
        event_summary_columns!(),
        ", body from inbound_events where id = $1"
    );
}

/// `APPEND_SYNC_LOG` with a [`NewSyncLog`] bound (one place for its column order), for
/// statements that log inside their own transaction.
macro_rules! sync_log_query {
    ($log:expr, $link_id:expr, $now:expr) => {
        sqlx::query($crate::store::admin::sql::APPEND_SYNC_LOG)
            .bind(&$log.pairing)
            .bind($link_id)
            .bind(&$log.webcrm_id)
            .bind(&$log.chargebee_id)
            .bind($log.job_id)
            .bind(&$log.action)
            .bind($log.detail.to_string())
            .bind($now)
    };
}
pub(crate) use sync_log_query;

/// [`AdminStore`] for a backend whose struct has a `pool` and a `write_guard()` (see
/// `impl_store!`); invoked in the backend's module so it may use both.
macro_rules! impl_admin_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::admin::AdminStore for $ty {
            async fn link_counts(
                &self,
            ) -> $crate::store::StoreResult<Vec<$crate::store::admin::LinkCount>> {
                Ok(sqlx::query_as($crate::store::admin::sql::LINK_COUNTS)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn oldest_waiting_by_pairing(
                &self,
            ) -> $crate::store::StoreResult<Vec<$crate::store::admin::PairingInstant>> {
                Ok(
                    sqlx::query_as($crate::store::admin::sql::OLDEST_WAITING_BY_PAIRING)
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn open_conflict_counts(
                &self,
            ) -> $crate::store::StoreResult<Vec<$crate::store::admin::PairingCount>> {
                Ok(
                    sqlx::query_as($crate::store::admin::sql::OPEN_CONFLICT_COUNTS)
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn open_pending_action_counts(
                &self,
            ) -> $crate::store::StoreResult<Vec<$crate::store::admin::PairingCount>> {
                Ok(
                    sqlx::query_as($crate::store::admin::sql::OPEN_PENDING_ACTION_COUNTS)
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn poll_cursors(
                &self,
            ) -> $crate::store::StoreResult<Vec<$crate::store::admin::PollCursor>> {
                Ok(sqlx::query_as($crate::store::admin::sql::POLL_CURSORS)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn list_links(
                &self,
                filter: &$crate::store::admin::LinkFilter,
                page: $crate::store::admin::Page,
            ) -> $crate::store::StoreResult<Vec<$crate::store::admin::Link>> {
                Ok(sqlx::query_as($crate::store::admin::sql::LIST_LINKS)
                    .bind(&filter.pairing)
                    .bind(&filter.webcrm_id)
                    .bind(&filter.chargebee_id)
                    .bind(filter.tombstoned)
                    .bind(page.before)
                    .bind(page.limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn get_link(
                &self,
                id: i64,
            ) -> $crate::store::StoreResult<Option<$crate::store::admin::Link>> {
                Ok(sqlx::query_as($crate::store::admin::sql::GET_LINK)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn links_with_snapshot_text(
                &self,
                needle: &str,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::admin::Link>> {
                let mut pattern = String::from("%");
                for ch in needle.chars() {
                    if matches!(ch, '%' | '_' | '\\') {
                        pattern.push('\\');
                    }
                    pattern.push(ch);
                }
                pattern.push('%');
                Ok(
                    sqlx::query_as($crate::store::admin::sql::LINKS_WITH_SNAPSHOT_TEXT)
                        .bind(pattern)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn latest_sync_log(
                &self,
                pairing: &str,
                action: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::admin::SyncLogEntry>> {
                Ok(sqlx::query_as($crate::store::admin::sql::LATEST_SYNC_LOG)
                    .bind(pairing)
                    .bind(action)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn insert_link(
                &self,
                link: &$crate::store::admin::NewLink,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<
                Result<$crate::store::admin::Link, $crate::store::admin::LinkTaken>,
            > {
                use $crate::store::admin::{sql, LinkTaken};
                let _writer = self.write_guard().await;
                let inserted = sqlx::query_as(sql::INSERT_LINK)
                    .bind(&link.pairing)
                    .bind(&link.webcrm_id)
                    .bind(&link.chargebee_id)
                    .bind(&link.snapshot)
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await;
                match inserted {
                    Ok(row) => Ok(Ok(row)),
                    Err(e) if $crate::store::admin::is_unique_violation(&e) => {
                        // Name the side that is taken; the webCRM side is checked first.
                        let by_webcrm: Option<i64> = sqlx::query_scalar(sql::LINK_BY_WEBCRM)
                            .bind(&link.pairing)
                            .bind(&link.webcrm_id)
                            .fetch_optional(&self.pool)
                            .await?;
                        if by_webcrm.is_some() {
                            return Ok(Err(LinkTaken {
                                constraint: "links_one_per_webcrm_record",
                                side: "webcrm_id",
                                existing_link_id: by_webcrm,
                            }));
                        }
                        let by_chargebee: Option<i64> = sqlx::query_scalar(sql::LINK_BY_CHARGEBEE)
                            .bind(&link.pairing)
                            .bind(&link.chargebee_id)
                            .fetch_optional(&self.pool)
                            .await?;
                        Ok(Err(LinkTaken {
                            constraint: "links_one_per_chargebee_record",
                            side: "chargebee_id",
                            existing_link_id: by_chargebee,
                        }))
                    }
                    Err(e) => Err(e.into()),
                }
            }

            async fn delete_link(
                &self,
                id: i64,
            ) -> $crate::store::StoreResult<Option<$crate::store::admin::Link>> {
                let _writer = self.write_guard().await;
                Ok(sqlx::query_as($crate::store::admin::sql::DELETE_LINK)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn append_sync_log(
                &self,
                entry: &$crate::store::admin::NewSyncLog,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<i64> {
                let _writer = self.write_guard().await;
                Ok(
                    sqlx::query_scalar($crate::store::admin::sql::APPEND_SYNC_LOG)
                        .bind(&entry.pairing)
                        .bind(entry.link_id)
                        .bind(&entry.webcrm_id)
                        .bind(&entry.chargebee_id)
                        .bind(entry.job_id)
                        .bind(&entry.action)
                        .bind(entry.detail.to_string())
                        .bind(now)
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn sync_log_for_link(
                &self,
                link: &$crate::store::admin::Link,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::admin::SyncLogEntry>> {
                Ok(sqlx::query_as($crate::store::admin::sql::SYNC_LOG_FOR_LINK)
                    .bind(link.id)
                    .bind(&link.pairing)
                    .bind(&link.webcrm_id)
                    .bind(&link.chargebee_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn list_jobs(
                &self,
                filter: &$crate::store::admin::JobFilter,
                page: $crate::store::admin::Page,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Job>> {
                Ok(sqlx::query_as($crate::store::admin::sql::LIST_JOBS)
                    .bind(&filter.state)
                    .bind(&filter.pairing)
                    .bind(&filter.kind)
                    .bind(page.before)
                    .bind(page.limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn retry_job(
                &self,
                id: i64,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<$crate::store::admin::RetryOutcome> {
                use $crate::store::admin::{is_unique_violation, sql, RetryOutcome};
                let _writer = self.write_guard().await;
                // A job enqueued for the same record between our read and write breaks the
                // one-waiting-job rule; read again and fold into it.
                let mut tries = 0;
                loop {
                    tries += 1;
                    let mut tx = self.pool.begin().await?;
                    let row: Option<(String, String)> = sqlx::query_as(sql::JOB_KEY_AND_STATE)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some((key, state)) = row else {
                        return Ok(RetryOutcome::NotFound);
                    };
                    if state != "dead" && state != "failed" {
                        return Ok(RetryOutcome::NotRetryable(state));
                    }
                    let sibling: Option<i64> = if state == "dead" {
                        sqlx::query_scalar(sql::WAITING_SIBLING)
                            .bind(&key)
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?
                    } else {
                        None
                    };
                    let (target, target_state, outcome) = match sibling {
                        Some(sib) => {
                            sqlx::query(sql::DELETE_JOB_IN_STATE)
                                .bind(id)
                                .bind("dead")
                                .execute(&mut *tx)
                                .await?;
                            let sib_state: Option<String> = sqlx::query_scalar(sql::JOB_STATE)
                                .bind(sib)
                                .fetch_optional(&mut *tx)
                                .await?;
                            (
                                sib,
                                sib_state.unwrap_or_default(),
                                RetryOutcome::Merged(sib),
                            )
                        }
                        None => (id, state, RetryOutcome::Retried(id)),
                    };
                    let done = sqlx::query(sql::REQUEUE_JOB)
                        .bind(target)
                        .bind(now)
                        .bind(&target_state)
                        .execute(&mut *tx)
                        .await;
                    match done {
                        Ok(r) if r.rows_affected() == 1 => {
                            tx.commit().await?;
                            return Ok(outcome);
                        }
                        // The job changed under us (claimed, discarded): look again.
                        Ok(_) if tries < 3 => continue,
                        Err(e) if is_unique_violation(&e) && tries < 3 => continue,
                        Ok(_) => return Ok(RetryOutcome::NotRetryable(target_state)),
                        Err(e) => return Err(e.into()),
                    }
                }
            }

            async fn retry_dead_jobs(
                &self,
                pairing: &str,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<u64> {
                use $crate::store::admin::{is_unique_violation, sql};
                let _writer = self.write_guard().await;
                let mut tries = 0;
                loop {
                    tries += 1;
                    let attempt: Result<u64, sqlx::Error> = async {
                        let mut tx = self.pool.begin().await?;
                        let dead: i64 = sqlx::query_scalar(sql::DEAD_COUNT)
                            .bind(pairing)
                            .fetch_one(&mut *tx)
                            .await?;
                        for stmt in [
                            sql::BUMP_WAITING_FOR_DEAD,
                            sql::DROP_SHADOWED_DEAD,
                            sql::REQUEUE_DEAD,
                        ] {
                            sqlx::query(stmt)
                                .bind(pairing)
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                        }
                        tx.commit().await?;
                        Ok(u64::try_from(dead).unwrap_or(0))
                    }
                    .await;
                    match attempt {
                        Err(e) if is_unique_violation(&e) && tries < 3 => continue,
                        other => return Ok(other?),
                    }
                }
            }

            async fn discard_job(
                &self,
                id: i64,
            ) -> $crate::store::StoreResult<$crate::store::admin::DiscardOutcome> {
                use $crate::store::admin::{sql, DiscardOutcome};
                let _writer = self.write_guard().await;
                let done = sqlx::query(sql::DISCARD_JOB)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 1 {
                    return Ok(DiscardOutcome::Discarded);
                }
                let state: Option<String> = sqlx::query_scalar(sql::JOB_STATE)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match state {
                    None => DiscardOutcome::NotFound,
                    Some(_) => DiscardOutcome::Running,
                })
            }

            async fn record_conflict(
                &self,
                c: &$crate::store::admin::NewConflict,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<i64> {
                let _writer = self.write_guard().await;
                Ok(
                    sqlx::query_scalar($crate::store::admin::sql::RECORD_CONFLICT)
                        .bind(&c.pairing)
                        .bind(c.link_id)
                        .bind(&c.webcrm_id)
                        .bind(&c.chargebee_id)
                        .bind(&c.field)
                        .bind(&c.webcrm_value)
                        .bind(&c.chargebee_value)
                        .bind(c.webcrm_changed_at)
                        .bind(c.chargebee_changed_at)
                        .bind(&c.winner)
                        .bind(now)
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn list_conflicts(
                &self,
                filter: &$crate::store::admin::ConflictFilter,
                page: $crate::store::admin::Page,
            ) -> $crate::store::StoreResult<Vec<$crate::store::admin::Conflict>> {
                Ok(sqlx::query_as($crate::store::admin::sql::LIST_CONFLICTS)
                    .bind(&filter.pairing)
                    .bind(filter.resolved)
                    .bind(page.before)
                    .bind(page.limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn get_conflict(
                &self,
                id: i64,
            ) -> $crate::store::StoreResult<Option<$crate::store::admin::Conflict>> {
                Ok(sqlx::query_as($crate::store::admin::sql::GET_CONFLICT)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn resolve_conflict(
                &self,
                id: i64,
                resolution: &str,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<bool> {
                let _writer = self.write_guard().await;
                let done = sqlx::query($crate::store::admin::sql::RESOLVE_CONFLICT)
                    .bind(id)
                    .bind(now)
                    .bind(resolution)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn open_pending_action(
                &self,
                a: &$crate::store::admin::NewPendingAction,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<i64> {
                let _writer = self.write_guard().await;
                Ok(
                    sqlx::query_scalar($crate::store::admin::sql::OPEN_PENDING_ACTION)
                        .bind(&a.pairing)
                        .bind(&a.kind)
                        .bind(&a.subject)
                        .bind(&a.webcrm_id)
                        .bind(&a.chargebee_id)
                        .bind(&a.message)
                        .bind(a.details.to_string())
                        .bind(now)
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn list_pending_actions(
                &self,
                filter: &$crate::store::admin::PendingActionFilter,
                page: $crate::store::admin::Page,
            ) -> $crate::store::StoreResult<Vec<$crate::store::admin::PendingAction>> {
                Ok(
                    sqlx::query_as($crate::store::admin::sql::LIST_PENDING_ACTIONS)
                        .bind(&filter.pairing)
                        .bind(filter.closed)
                        .bind(page.before)
                        .bind(page.limit)
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn get_pending_action(
                &self,
                id: i64,
            ) -> $crate::store::StoreResult<Option<$crate::store::admin::PendingAction>> {
                Ok(
                    sqlx::query_as($crate::store::admin::sql::GET_PENDING_ACTION)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn close_pending_action(
                &self,
                id: i64,
                reason: &str,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<bool> {
                let _writer = self.write_guard().await;
                let done = sqlx::query($crate::store::admin::sql::CLOSE_PENDING_ACTION)
                    .bind(id)
                    .bind(now)
                    .bind(reason)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_inbound_events(
                &self,
                filter: &$crate::store::admin::EventFilter,
                page: $crate::store::admin::Page,
            ) -> $crate::store::StoreResult<Vec<$crate::store::admin::InboundEvent>> {
                Ok(
                    sqlx::query_as($crate::store::admin::sql::LIST_INBOUND_EVENTS)
                        .bind(&filter.source)
                        .bind(&filter.event_type)
                        .bind(&filter.outcome)
                        .bind(filter.since)
                        .bind(filter.until)
                        .bind(page.before)
                        .bind(page.limit)
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn get_inbound_event(
                &self,
                id: i64,
            ) -> $crate::store::StoreResult<Option<$crate::store::admin::InboundEvent>> {
                Ok(sqlx::query_as($crate::store::admin::sql::GET_INBOUND_EVENT)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }
        }
    };
}
pub(crate) use impl_admin_store;

#[cfg(test)]
mod tests {
    #[test]
    fn admin_job_columns_match_the_queue_statements() {
        assert_eq!(
            super::sql::JOB_COLUMNS
                .split_whitespace()
                .collect::<String>(),
            super::super::sql::JOB_COLUMNS
                .split_whitespace()
                .collect::<String>()
        );
    }
}
