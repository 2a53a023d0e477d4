//! SQLite store: the embedded default for a single instance. SQLite has one writer at a
//! time, so claims are plain atomic `UPDATE … RETURNING` statements; WAL mode lets readers
//! (health checks, the admin API) proceed while a worker writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{
    sql, Backend, Dialect, Millis, NewInboundEvent, NewJob, Recorded, StoreError, StoreResult,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

static DIALECT: LazyLock<Dialect> = LazyLock::new(|| Dialect::new("min", "", "", hinted_version));

/// A job payload's hinted Chargebee version, null unless it is a JSON number.
fn hinted_version(payload: &str) -> String {
    format!(
        "(case when json_type({payload}, '$.hint.resource_version') in ('integer', 'real')
               then json_extract({payload}, '$.hint.resource_version') end)"
    )
}

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
    writer: Arc<Mutex<()>>,
}

/// One writer lock per database file in this process. SQLite admits one writer at a time
/// anyway; queueing writers here instead of in SQLite's busy handler (which sleeps in
/// growing steps) keeps claim/complete latency low when several workers write at once.
fn writer_for(path: &Path) -> Arc<Mutex<()>> {
    static WRITERS: LazyLock<std::sync::Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let mut writers = WRITERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    writers.entry(path.to_path_buf()).or_default().clone()
}

/// The links held by sync jobs, per database file in this process (SQLite serves one
/// process).
fn held_links_for(path: &Path) -> super::sync::HeldLinks {
    static HELD: LazyLock<std::sync::Mutex<HashMap<PathBuf, super::sync::HeldLinks>>> =
        LazyLock::new(Default::default);
    let mut held = HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    held.entry(path.to_path_buf()).or_default().clone()
}

impl SqliteStore {
    async fn try_hold_link(&self, link_id: i64) -> StoreResult<Option<super::sync::LinkHold>> {
        Ok(super::sync::LinkHold::local(
            held_links_for(&self.path),
            link_id,
        ))
    }

    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before a webhook is acknowledged (nothing acked is lost).
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let path = options.get_filename().to_path_buf();
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        let writer = writer_for(&path);
        Ok(Self { pool, path, writer })
    }

    /// One transaction; in-process statements cost no round trips, so one per row is fine.
    async fn insert_event_and_jobs(
        &self,
        event: &NewInboundEvent,
        jobs: &[NewJob],
        now: Millis,
    ) -> StoreResult<Recorded> {
        let mut tx = self.pool.begin().await?;
        let inserted: Option<i64> = sqlx::query_scalar(sql::INSERT_INBOUND)
            .bind(&event.source)
            .bind(&event.event_id)
            .bind(&event.event_type)
            .bind(&event.outcome)
            .bind(&event.detail)
            .bind(&event.body)
            .bind(event.received_at)
            .bind(&event.subject)
            .fetch_optional(&mut *tx)
            .await?;
        if inserted.is_none() {
            tx.rollback().await?;
            return Ok(Recorded::Duplicate);
        }
        let mut ids = Vec::with_capacity(jobs.len());
        for job in jobs {
            ids.push(
                sqlx::query_scalar(&DIALECT.enqueue)
                    .bind(&job.kind)
                    .bind(&job.pairing)
                    .bind(&job.dedupe_key)
                    .bind(job.payload.to_string())
                    .bind(job.max_attempts)
                    .bind(job.run_at)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?,
            );
        }
        tx.commit().await?;
        Ok(Recorded::Stored { jobs: ids })
    }

    async fn write_guard(&self) -> Option<OwnedMutexGuard<()>> {
        Some(self.writer.clone().lock_owned().await)
    }

    /// sqlx takes no lock when migrating SQLite, so two processes starting on one file could
    /// both apply a migration. An exclusive lock on a file beside the database serialises them.
    async fn migration_guard(&self) -> StoreResult<Option<std::fs::File>> {
        if self.path.as_os_str() == ":memory:" {
            return Ok(None);
        }
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".migrate-lock");
        let file = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&lock_path)?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("migration lock task failed: {e}")))?
        .map_err(|e| StoreError::Invalid(format!("cannot lock the database for migrating: {e}")))?;
        Ok(Some(file))
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

super::impl_store!(
    SqliteStore,
    Backend::Sqlite,
    DIALECT,
    MIGRATOR,
    "select count(*) > 0 from sqlite_master where type = 'table' and name = '_sqlx_migrations'"
);

super::admin::impl_admin_store!(SqliteStore);
super::sync::impl_sync_store!(SqliteStore);
