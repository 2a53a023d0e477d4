//! What the sync engine reads and writes: links with their snapshot and revision (the commit
//! point of every sync job), tombstones, webCRM pending-create intents, and the automatic
//! closing of pending actions. A third trait beside [`Store`](super::Store), written once for
//! both backends by [`impl_sync_store!`].

use async_trait::async_trait;

use super::admin::NewSyncLog;
use super::{Millis, StoreResult};

/// A link as the engine sees it, with the revision its commit compares.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct SyncLink {
    pub id: i64,
    pub pairing: String,
    pub webcrm_id: String,
    pub chargebee_id: String,
    /// JSON text.
    pub snapshot: String,
    pub webcrm_version: Option<String>,
    pub chargebee_version: Option<String>,
    pub revision: i64,
    pub tombstoned_at: Option<Millis>,
    /// When the sync last wrote the webCRM record (just before the write).
    pub webcrm_written_at: Option<Millis>,
    /// JSON text of a `Snapshot` of values a sync was about to write and did not commit.
    pub pending_writes: Option<String>,
}

/// The commit point of a sync job: the link (new, or the one read at `expected`), its new
/// snapshot and versions, and the sync-log entry explaining what was done, in one transaction.
#[derive(Debug, Clone)]
pub struct LinkCommit {
    pub pairing: String,
    /// `(link id, revision read)` for an existing link; `None` inserts a new one.
    pub expected: Option<(i64, i64)>,
    pub webcrm_id: String,
    pub chargebee_id: String,
    pub snapshot: String,
    pub webcrm_version: Option<String>,
    pub chargebee_version: Option<String>,
    /// Set when this sync wrote the webCRM record: the instant just before the write.
    /// `None` keeps the link's earlier mark.
    pub webcrm_written_at: Option<Millis>,
    /// The log entry; its link id is filled in.
    pub log: NewSyncLog,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed {
        link_id: i64,
    },
    /// Another job changed the link since it was read (or linked one of the records first):
    /// re-run against the current state.
    Stale,
}

/// One job's exclusive hold on a link while it reads, writes and commits the pair. The queue
/// keys sync jobs by record, so the jobs for the two records of one pair (a change on one
/// side and the echo or poll of the other) could otherwise both write the same change.
/// Postgres: a session advisory lock on a pooled connection (held across replicas); SQLite
/// (one process): a set of held link ids per database file.
pub struct LinkHold {
    inner: HoldInner,
}

/// Link ids held in one process (SQLite).
pub(crate) type HeldLinks = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<i64>>>;

enum HoldInner {
    Postgres {
        conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
        key: (i32, i32),
    },
    Local {
        held: HeldLinks,
        link_id: i64,
    },
}

/// The advisory-lock class of link holds (the two-key space; sqlx's migration lock uses the
/// one-key space, which does not overlap it).
pub(crate) const LINK_HOLD_CLASS: i32 = 0x5743_5331;

impl LinkHold {
    pub(crate) fn postgres(
        conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
        key: (i32, i32),
    ) -> LinkHold {
        LinkHold {
            inner: HoldInner::Postgres {
                conn: Some(conn),
                key,
            },
        }
    }

    /// Takes `link_id` in `held` unless it is already taken.
    pub(crate) fn local(held: HeldLinks, link_id: i64) -> Option<LinkHold> {
        let taken = held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(link_id);
        taken.then_some(LinkHold {
            inner: HoldInner::Local { held, link_id },
        })
    }

    /// Lets the link go. Dropping a hold also lets it go (a Postgres hold then closes its
    /// connection, which ends the lock with the session).
    pub async fn release(mut self) {
        if let HoldInner::Postgres { conn, key } = &mut self.inner {
            if let Some(mut c) = conn.take() {
                let unlocked = sqlx::query("select pg_advisory_unlock($1, $2)")
                    .bind(key.0)
                    .bind(key.1)
                    .execute(&mut *c)
                    .await;
                if unlocked.is_err() {
                    drop(c.detach());
                }
            }
        }
    }
}

impl Drop for LinkHold {
    fn drop(&mut self) {
        match &mut self.inner {
            HoldInner::Postgres { conn, .. } => {
                if let Some(c) = conn.take() {
                    drop(c.detach());
                }
            }
            HoldInner::Local { held, link_id } => {
                held.lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .remove(link_id);
            }
        }
    }
}

#[async_trait]
pub trait SyncStore: Send + Sync {
    /// Holds the link for one job; `None` while another job holds it.
    async fn hold_link(&self, link_id: i64) -> StoreResult<Option<LinkHold>>;

    async fn link_by_webcrm(&self, pairing: &str, id: &str) -> StoreResult<Option<SyncLink>>;
    async fn link_by_chargebee(&self, pairing: &str, id: &str) -> StoreResult<Option<SyncLink>>;
    /// Live links of a pairing whose Chargebee id starts with `prefix` (order lines).
    async fn links_by_chargebee_prefix(
        &self,
        pairing: &str,
        prefix: &str,
    ) -> StoreResult<Vec<SyncLink>>;
    async fn commit_link(&self, commit: &LinkCommit, now: Millis) -> StoreResult<CommitOutcome>;
    /// Notes on the link, still at `revision`, the values a sync is about to write (JSON of a
    /// `Snapshot`); whether the link was still at that revision.
    async fn note_pending_writes(
        &self,
        link_id: i64,
        revision: i64,
        writes: Option<&str>,
    ) -> StoreResult<bool>;
    /// Keeps a record's values (JSON) as the sync begins creating its counterpart; an
    /// earlier attempt's are kept. Whether this call stored them (no earlier attempt).
    async fn record_create_base(
        &self,
        pairing: &str,
        side: &str,
        source_id: &str,
        fields: &str,
        now: Millis,
    ) -> StoreResult<bool>;
    async fn create_base(
        &self,
        pairing: &str,
        side: &str,
        source_id: &str,
    ) -> StoreResult<Option<String>>;
    async fn clear_create_base(
        &self,
        pairing: &str,
        side: &str,
        source_id: &str,
    ) -> StoreResult<()>;
    /// Clears the link's webCRM write mark if it is still `written_at`; whether it did.
    async fn take_webcrm_echo(&self, link_id: i64, written_at: Millis) -> StoreResult<bool>;
    /// How many webCRM hooks named `subject` (`Persons/123`) arrived at or after `since`.
    async fn hooks_since(&self, subject: &str, since: Millis) -> StoreResult<i64>;
    /// The stored body of one inbound event, while the inbox keeps it.
    async fn inbound_body(&self, source: &str, event_id: &str) -> StoreResult<Option<String>>;
    /// Marks the link's record as gone (idempotent) and logs why.
    async fn tombstone_link(&self, id: i64, log: &NewSyncLog, now: Millis) -> StoreResult<()>;

    async fn pending_create(
        &self,
        pairing: &str,
        target: &str,
        source_id: &str,
    ) -> StoreResult<Option<String>>;
    async fn record_pending_create(
        &self,
        pairing: &str,
        target: &str,
        source_id: &str,
        marker: &str,
        now: Millis,
    ) -> StoreResult<()>;
    async fn clear_pending_create(
        &self,
        pairing: &str,
        target: &str,
        source_id: &str,
    ) -> StoreResult<()>;

    /// A poller's position for one source and entity.
    async fn cursor(&self, source: &str, entity: &str) -> StoreResult<Option<String>>;
    /// Every cursor of one source: (entity, value, updated_at).
    async fn cursors_of(&self, source: &str) -> StoreResult<Vec<(String, String, Millis)>>;
    /// Live links of a pairing.
    async fn live_links(&self, pairing: &str) -> StoreResult<Vec<SyncLink>>;
    /// Stores a poller's position (after a complete pass); `now` is its last successful poll.
    async fn set_cursor(
        &self,
        source: &str,
        entity: &str,
        value: &str,
        now: Millis,
    ) -> StoreResult<()>;

    /// Closes the open pending action of (pairing, kind, subject), if any.
    async fn close_pending_action_for(
        &self,
        pairing: &str,
        kind: &str,
        subject: &str,
        reason: &str,
        now: Millis,
    ) -> StoreResult<bool>;
}

macro_rules! sync_link_columns {
    () => {
        "id, pairing, webcrm_id, chargebee_id, snapshot, webcrm_version, chargebee_version, \
         revision, tombstoned_at, webcrm_written_at, pending_writes"
    };
}

pub(crate) mod sql {
    pub const LINK_BY_WEBCRM: &str = concat!(
        "select ",
        sync_link_columns!(),
        " from links where pairing = $1 and webcrm_id = $2"
    );
    pub const LINK_BY_CHARGEBEE: &str = concat!(
        "select ",
        sync_link_columns!(),
        " from links where pairing = $1 and chargebee_id = $2"
    );
    pub const LINKS_BY_CHARGEBEE_PREFIX: &str = concat!(
        "select ",
        sync_link_columns!(),
        " from links where pairing = $1 and substr(chargebee_id, 1, length($2)) = $2
           and tombstoned_at is null order by id"
    );
    pub const UPDATE_LINK: &str = "update links
         set webcrm_id = $3, chargebee_id = $4, snapshot = $5, webcrm_version = $6,
             chargebee_version = $7, last_synced_at = $8, revision = revision + 1,
             tombstoned_at = null, webcrm_written_at = coalesce($9, webcrm_written_at),
             pending_writes = null
         where id = $1 and revision = $2";
    pub const INSERT_LINK: &str = "insert into links
            (pairing, webcrm_id, chargebee_id, snapshot, webcrm_version, chargebee_version,
             created_at, last_synced_at, webcrm_written_at)
         values ($1, $2, $3, $4, $5, $6, $7, $7, $8)
         returning id";
    pub const TOMBSTONE_LINK: &str = "update links
         set tombstoned_at = coalesce(tombstoned_at, $2), revision = revision + 1 where id = $1";
    pub const PENDING_CREATE: &str = "select marker from pending_creates
         where pairing = $1 and target = $2 and source_id = $3";
    pub const RECORD_PENDING_CREATE: &str = "insert into pending_creates
            (pairing, target, source_id, marker, created_at) values ($1, $2, $3, $4, $5)
         on conflict (pairing, target, source_id) do nothing";
    pub const CLEAR_PENDING_CREATE: &str =
        "delete from pending_creates where pairing = $1 and target = $2 and source_id = $3";
    pub const CURSORS_OF: &str =
        "select entity, value, updated_at from cursors where source = $1 order by entity";
    pub const LIVE_LINKS: &str = concat!(
        "select ",
        sync_link_columns!(),
        " from links where pairing = $1 and tombstoned_at is null order by id"
    );
    pub const CURSOR: &str = "select value from cursors where source = $1 and entity = $2";
    pub const SET_CURSOR: &str = "insert into cursors (source, entity, value, updated_at)
         values ($1, $2, $3, $4)
         on conflict (source, entity) do update
            set value = excluded.value, updated_at = excluded.updated_at";
    pub const NOTE_PENDING_WRITES: &str =
        "update links set pending_writes = $3 where id = $1 and revision = $2";
    pub const RECORD_CREATE_BASE: &str = "insert into create_bases
            (pairing, side, source_id, fields, created_at) values ($1, $2, $3, $4, $5)
         on conflict (pairing, side, source_id) do nothing";
    pub const CREATE_BASE: &str =
        "select fields from create_bases where pairing = $1 and side = $2 and source_id = $3";
    pub const CLEAR_CREATE_BASE: &str =
        "delete from create_bases where pairing = $1 and side = $2 and source_id = $3";
    pub const TAKE_WEBCRM_ECHO: &str =
        "update links set webcrm_written_at = null where id = $1 and webcrm_written_at = $2";
    pub const HOOKS_SINCE: &str = "select count(*) from inbound_events
         where source = 'webcrm' and subject = $1 and received_at >= $2";
    pub const INBOUND_BODY: &str =
        "select body from inbound_events where source = $1 and event_id = $2";
    pub const CLOSE_PENDING_ACTION_FOR: &str = "update pending_actions
         set closed_at = $4, closed_reason = $5, updated_at = $4
         where pairing = $1 and kind = $2 and subject = $3 and closed_at is null";
}

/// [`SyncStore`] for a backend with a `pool` and a `write_guard()` (see `impl_store!`).
macro_rules! impl_sync_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::sync::SyncStore for $ty {
            async fn hold_link(
                &self,
                link_id: i64,
            ) -> $crate::store::StoreResult<Option<$crate::store::sync::LinkHold>> {
                self.try_hold_link(link_id).await
            }

            async fn link_by_webcrm(
                &self,
                pairing: &str,
                id: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::sync::SyncLink>> {
                Ok(sqlx::query_as($crate::store::sync::sql::LINK_BY_WEBCRM)
                    .bind(pairing)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn link_by_chargebee(
                &self,
                pairing: &str,
                id: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::sync::SyncLink>> {
                Ok(sqlx::query_as($crate::store::sync::sql::LINK_BY_CHARGEBEE)
                    .bind(pairing)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn links_by_chargebee_prefix(
                &self,
                pairing: &str,
                prefix: &str,
            ) -> $crate::store::StoreResult<Vec<$crate::store::sync::SyncLink>> {
                Ok(
                    sqlx::query_as($crate::store::sync::sql::LINKS_BY_CHARGEBEE_PREFIX)
                        .bind(pairing)
                        .bind(prefix)
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn commit_link(
                &self,
                c: &$crate::store::sync::LinkCommit,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<$crate::store::sync::CommitOutcome> {
                use $crate::store::sync::{sql, CommitOutcome};
                let _writer = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let link_id = match c.expected {
                    Some((id, revision)) => {
                        let done = sqlx::query(sql::UPDATE_LINK)
                            .bind(id)
                            .bind(revision)
                            .bind(&c.webcrm_id)
                            .bind(&c.chargebee_id)
                            .bind(&c.snapshot)
                            .bind(&c.webcrm_version)
                            .bind(&c.chargebee_version)
                            .bind(now)
                            .bind(c.webcrm_written_at)
                            .execute(&mut *tx)
                            .await;
                        match done {
                            Ok(d) if d.rows_affected() == 1 => id,
                            Ok(_) => return Ok(CommitOutcome::Stale),
                            Err(e) if $crate::store::admin::is_unique_violation(&e) => {
                                return Ok(CommitOutcome::Stale)
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    None => {
                        let inserted: Result<i64, sqlx::Error> =
                            sqlx::query_scalar(sql::INSERT_LINK)
                                .bind(&c.pairing)
                                .bind(&c.webcrm_id)
                                .bind(&c.chargebee_id)
                                .bind(&c.snapshot)
                                .bind(&c.webcrm_version)
                                .bind(&c.chargebee_version)
                                .bind(now)
                                .bind(c.webcrm_written_at)
                                .fetch_one(&mut *tx)
                                .await;
                        match inserted {
                            Ok(id) => id,
                            Err(e) if $crate::store::admin::is_unique_violation(&e) => {
                                return Ok(CommitOutcome::Stale)
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                };
                $crate::store::admin::sync_log_query!(c.log, link_id, now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(CommitOutcome::Committed { link_id })
            }

            async fn record_create_base(
                &self,
                pairing: &str,
                side: &str,
                source_id: &str,
                fields: &str,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<bool> {
                let _writer = self.write_guard().await;
                let done = sqlx::query($crate::store::sync::sql::RECORD_CREATE_BASE)
                    .bind(pairing)
                    .bind(side)
                    .bind(source_id)
                    .bind(fields)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn create_base(
                &self,
                pairing: &str,
                side: &str,
                source_id: &str,
            ) -> $crate::store::StoreResult<Option<String>> {
                Ok(sqlx::query_scalar($crate::store::sync::sql::CREATE_BASE)
                    .bind(pairing)
                    .bind(side)
                    .bind(source_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn clear_create_base(
                &self,
                pairing: &str,
                side: &str,
                source_id: &str,
            ) -> $crate::store::StoreResult<()> {
                let _writer = self.write_guard().await;
                sqlx::query($crate::store::sync::sql::CLEAR_CREATE_BASE)
                    .bind(pairing)
                    .bind(side)
                    .bind(source_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn note_pending_writes(
                &self,
                link_id: i64,
                revision: i64,
                writes: Option<&str>,
            ) -> $crate::store::StoreResult<bool> {
                let _writer = self.write_guard().await;
                let done = sqlx::query($crate::store::sync::sql::NOTE_PENDING_WRITES)
                    .bind(link_id)
                    .bind(revision)
                    .bind(writes)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn take_webcrm_echo(
                &self,
                link_id: i64,
                written_at: $crate::store::Millis,
            ) -> $crate::store::StoreResult<bool> {
                let _writer = self.write_guard().await;
                let done = sqlx::query($crate::store::sync::sql::TAKE_WEBCRM_ECHO)
                    .bind(link_id)
                    .bind(written_at)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn hooks_since(
                &self,
                subject: &str,
                since: $crate::store::Millis,
            ) -> $crate::store::StoreResult<i64> {
                Ok(sqlx::query_scalar($crate::store::sync::sql::HOOKS_SINCE)
                    .bind(subject)
                    .bind(since)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn inbound_body(
                &self,
                source: &str,
                event_id: &str,
            ) -> $crate::store::StoreResult<Option<String>> {
                Ok(
                    sqlx::query_scalar::<_, Option<String>>($crate::store::sync::sql::INBOUND_BODY)
                        .bind(source)
                        .bind(event_id)
                        .fetch_optional(&self.pool)
                        .await?
                        .flatten(),
                )
            }

            async fn tombstone_link(
                &self,
                id: i64,
                log: &$crate::store::admin::NewSyncLog,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<()> {
                let _writer = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                sqlx::query($crate::store::sync::sql::TOMBSTONE_LINK)
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                $crate::store::admin::sync_log_query!(log, id, now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn pending_create(
                &self,
                pairing: &str,
                target: &str,
                source_id: &str,
            ) -> $crate::store::StoreResult<Option<String>> {
                Ok(sqlx::query_scalar($crate::store::sync::sql::PENDING_CREATE)
                    .bind(pairing)
                    .bind(target)
                    .bind(source_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn record_pending_create(
                &self,
                pairing: &str,
                target: &str,
                source_id: &str,
                marker: &str,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<()> {
                let _writer = self.write_guard().await;
                sqlx::query($crate::store::sync::sql::RECORD_PENDING_CREATE)
                    .bind(pairing)
                    .bind(target)
                    .bind(source_id)
                    .bind(marker)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn clear_pending_create(
                &self,
                pairing: &str,
                target: &str,
                source_id: &str,
            ) -> $crate::store::StoreResult<()> {
                let _writer = self.write_guard().await;
                sqlx::query($crate::store::sync::sql::CLEAR_PENDING_CREATE)
                    .bind(pairing)
                    .bind(target)
                    .bind(source_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn cursor(
                &self,
                source: &str,
                entity: &str,
            ) -> $crate::store::StoreResult<Option<String>> {
                Ok(sqlx::query_scalar($crate::store::sync::sql::CURSOR)
                    .bind(source)
                    .bind(entity)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn cursors_of(
                &self,
                source: &str,
            ) -> $crate::store::StoreResult<Vec<(String, String, $crate::store::Millis)>> {
                Ok(sqlx::query_as($crate::store::sync::sql::CURSORS_OF)
                    .bind(source)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn live_links(
                &self,
                pairing: &str,
            ) -> $crate::store::StoreResult<Vec<$crate::store::sync::SyncLink>> {
                Ok(sqlx::query_as($crate::store::sync::sql::LIVE_LINKS)
                    .bind(pairing)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn set_cursor(
                &self,
                source: &str,
                entity: &str,
                value: &str,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<()> {
                let _writer = self.write_guard().await;
                sqlx::query($crate::store::sync::sql::SET_CURSOR)
                    .bind(source)
                    .bind(entity)
                    .bind(value)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn close_pending_action_for(
                &self,
                pairing: &str,
                kind: &str,
                subject: &str,
                reason: &str,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<bool> {
                let _writer = self.write_guard().await;
                let done = sqlx::query($crate::store::sync::sql::CLOSE_PENDING_ACTION_FOR)
                    .bind(pairing)
                    .bind(kind)
                    .bind(subject)
                    .bind(now)
                    .bind(reason)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

pub(crate) use impl_sync_store;
