//! Persistence. One [`Store`] trait, two implementations: Postgres for production and
//! multi-replica deployments, SQLite as the embedded single-instance default. Every SQL
//! statement of the service lives in `postgres.rs` or `sqlite.rs`.
//!
//! Instants are stored as unix milliseconds (`BIGINT`/`INTEGER`) in both backends and passed
//! in by the caller, so the two backends behave identically and tests control the clock.

pub mod admin;
mod postgres;
mod sqlite;
pub mod sync;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Unix time in milliseconds.
pub type Millis = i64;

pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Invalid(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Job states. Completed jobs are deleted (the sync log keeps the history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting to run at `run_at`.
    Pending,
    /// Claimed by a worker until `lease_until`.
    Running,
    /// Failed at least once and waiting for its retry at `run_at`.
    Failed,
    /// Out of attempts or failed permanently; needs an operator.
    Dead,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => JobState::Pending,
            "running" => JobState::Running,
            "failed" => JobState::Failed,
            "dead" => JobState::Dead,
            _ => return None,
        })
    }

    pub const ALL: [JobState; 4] = [
        JobState::Pending,
        JobState::Running,
        JobState::Failed,
        JobState::Dead,
    ];
}

/// A job to enqueue. Jobs with the same `dedupe_key` collapse while waiting, and at most one
/// of them runs at a time: the key names the record a job works on (per-record serialisation).
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub pairing: Option<String>,
    pub dedupe_key: String,
    pub payload: serde_json::Value,
    pub run_at: Millis,
    pub max_attempts: i32,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub pairing: Option<String>,
    pub dedupe_key: String,
    /// JSON text.
    pub payload: String,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: Millis,
    pub lease_until: Option<Millis>,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Job {
    pub fn payload_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

/// How a claimed job ends when it does not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Failed: retry at `run_at`, or dead when out of attempts.
    Retry { run_at: Millis, error: String },
    /// Failed in a way retrying cannot fix.
    Dead { error: String },
    /// Not a failure (e.g. waiting for a dependency): run again at `run_at`, attempt refunded.
    Wait { run_at: Millis, reason: String },
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, PartialEq, Eq)]
pub struct JobCount {
    pub pairing: Option<String>,
    pub state: String,
    pub count: i64,
}

/// An inbound notification as stored in `inbound_events`.
#[derive(Debug, Clone)]
pub struct NewInboundEvent {
    pub source: String,
    /// The sender's event id, the dedupe key; `None` when the sender has none (webCRM).
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    /// `accepted`, `ignored` or `rejected`.
    pub outcome: String,
    pub detail: Option<String>,
    pub body: Option<String>,
    pub received_at: Millis,
    /// The record a webCRM hook named (`Persons/123`); `None` for Chargebee events.
    pub subject: Option<String>,
}

/// What [`Store::record_inbound`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Stored, with the ids of the jobs that will run (merged jobs share an id).
    Stored { jobs: Vec<i64> },
    /// An event with this id was stored before: nothing changed.
    Duplicate,
}

#[async_trait]
pub trait Store: admin::AdminStore + sync::SyncStore + Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Applies pending migrations (forward only). Safe to run from several processes at once.
    async fn migrate(&self) -> StoreResult<()>;

    /// `Ok` when the database answers and every migration is applied, else the reason.
    async fn readiness(&self) -> Result<(), String>;

    /// Adds a job, or merges it into a waiting job with the same dedupe key (the earlier
    /// `run_at` and the newer payload win). Returns the id of the job that will run.
    async fn enqueue(&self, job: &NewJob, now: Millis) -> StoreResult<i64>;

    /// Claims up to `limit` due jobs for `worker` until `now + lease_ms`, skipping paused
    /// pairings and records that already have a running job. Commits before returning.
    async fn claim(
        &self,
        worker: &str,
        now: Millis,
        lease_ms: Millis,
        limit: i64,
    ) -> StoreResult<Vec<Job>>;

    /// Returns running jobs whose lease expired (their worker died) to the queue, due now; a
    /// job whose lease expired on its last attempt goes dead instead. Returns how many changed.
    async fn reclaim_expired(&self, now: Millis) -> StoreResult<u64>;

    /// Keeps a running job's lease; false when the worker no longer holds it.
    async fn extend_lease(&self, id: i64, worker: &str, lease_until: Millis) -> StoreResult<bool>;

    /// Finishes (deletes) a running job; false when the worker no longer holds it.
    async fn complete(&self, id: i64, worker: &str) -> StoreResult<bool>;

    /// Releases a running job held by `worker`; `None` when the worker no longer holds it,
    /// else the state the job is now in.
    async fn release(
        &self,
        id: i64,
        worker: &str,
        how: &Release,
        now: Millis,
    ) -> StoreResult<Option<JobState>>;

    async fn get_job(&self, id: i64) -> StoreResult<Option<Job>>;

    /// Stores an inbound event and enqueues its jobs in one transaction (both or neither).
    /// An event whose `(source, event_id)` was stored before changes nothing.
    async fn record_inbound(
        &self,
        event: &NewInboundEvent,
        jobs: &[NewJob],
        now: Millis,
    ) -> StoreResult<Recorded>;

    /// Points the links of `pairings` that name Chargebee record `old_id` at `new_id` (a
    /// customer that moved business entity), logging each move. A link already naming
    /// `new_id` is left alone. Returns how many links moved; re-running moves none.
    async fn rekey_chargebee_id(
        &self,
        pairings: &[&str],
        old_id: &str,
        new_id: &str,
        job_id: i64,
        now: Millis,
    ) -> StoreResult<u64>;

    /// Deletes inbound events received before `before` (the dedupe window ends there).
    async fn purge_inbound_events(&self, before: Millis) -> StoreResult<u64>;

    /// Counts of jobs by pairing and state.
    async fn job_counts(&self) -> StoreResult<Vec<JobCount>>;

    /// `run_at` of the oldest due job that waits (pending or failed), for the lag gauge.
    async fn oldest_waiting_run_at(&self) -> StoreResult<Option<Millis>>;

    /// Pauses or resumes a pairing: paused pairings' jobs stay queued and are not claimed.
    async fn set_pairing_paused(&self, pairing: &str, paused: bool, now: Millis)
        -> StoreResult<()>;

    async fn paused_pairings(&self) -> StoreResult<Vec<String>>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store named by `database_url` (`postgres://…`, `postgresql://…`, `sqlite:…`).
pub async fn connect(database_url: &str, max_connections: u32) -> StoreResult<DynStore> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Arc::new(
            PgStore::connect(database_url, max_connections).await?,
        ))
    } else if database_url.starts_with("sqlite:") {
        Ok(Arc::new(
            SqliteStore::connect(database_url, max_connections).await?,
        ))
    } else {
        Err(StoreError::Invalid(
            "DATABASE_URL must start with postgres://, postgresql:// or sqlite:".into(),
        ))
    }
}

/// `Ok` when every migration the binary knows is applied, else a reason naming the missing.
fn missing_migrations(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Result<(), String> {
    let missing: Vec<String> = migrator
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| format!("{}_{}", m.version, m.description))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "migrations not applied: {} (run `webcrm-chargebee-sync migrate`)",
            missing.join(", ")
        ))
    }
}

/// What releasing a job does to it; shared by both backends so they cannot disagree.
struct ReleasePlan {
    state: JobState,
    run_at: Option<Millis>,
    attempts: i32,
    note: String,
}

fn release_plan(how: &Release, attempts: i32, max_attempts: i32) -> ReleasePlan {
    match how {
        Release::Retry { run_at, error } if attempts < max_attempts => ReleasePlan {
            state: JobState::Failed,
            run_at: Some(*run_at),
            attempts,
            note: error.clone(),
        },
        Release::Retry { error, .. } => ReleasePlan {
            state: JobState::Dead,
            run_at: None,
            attempts,
            note: format!("{error} (gave up after {attempts} attempts)"),
        },
        Release::Dead { error } => ReleasePlan {
            state: JobState::Dead,
            run_at: None,
            attempts,
            note: error.clone(),
        },
        Release::Wait { run_at, reason } => ReleasePlan {
            state: JobState::Pending,
            run_at: Some(*run_at),
            attempts: (attempts - 1).max(0),
            note: reason.clone(),
        },
    }
}

/// Statements both backends run verbatim (sqlx binds `$n` for SQLite too).
mod sql {
    pub const JOB_COLUMNS: &str = "id, kind, pairing, dedupe_key, payload, state, attempts, \
        max_attempts, run_at, lease_until, locked_by, last_error, created_at, updated_at";

    pub const BURY_EXPIRED: &str = "update jobs set state = 'dead', locked_by = null,
            lease_until = null, updated_at = $1,
            last_error = coalesce(last_error || '; ', '') || 'lease expired on the last attempt'
         where state = 'running' and lease_until < $1 and attempts >= max_attempts";

    /// A running job whose lease expired while a newer job for its record waits: the waiting
    /// job does the same work, so the expired one goes.
    pub const DROP_EXPIRED_SHADOWED: &str = "delete from jobs
         where state = 'running' and lease_until < $1
           and exists (select 1 from jobs w
                       where w.dedupe_key = jobs.dedupe_key and w.state in ('pending', 'failed'))";

    /// Any other expired lease: back to waiting, due now, keeping its attempt count.
    pub const REQUEUE_EXPIRED: &str = "update jobs set state = 'pending', run_at = $1,
            locked_by = null, lease_until = null, updated_at = $1,
            last_error = coalesce(last_error || '; ', '') || 'lease expired; reclaimed'
         where state = 'running' and lease_until < $1";

    /// Waiting jobs that are due, unless their record already has a running job or their
    /// pairing is paused. Matches the `jobs_due` partial index.
    pub const DUE_JOBS: &str = "select j.id from jobs j
         where j.state in ('pending', 'failed') and j.run_at <= $1
           and not exists (select 1 from jobs r
                           where r.dedupe_key = j.dedupe_key and r.state = 'running')
           and (j.pairing is null or not exists (
                 select 1 from pairing_state p where p.pairing = j.pairing and p.paused))
         order by j.run_at, j.id
         limit $2";

    pub const EXTEND_LEASE: &str = "update jobs set lease_until = $3
         where id = $1 and locked_by = $2 and state = 'running'";

    pub const COMPLETE: &str =
        "delete from jobs where id = $1 and locked_by = $2 and state = 'running'";

    pub const HELD_JOB: &str = "select dedupe_key, attempts, max_attempts from jobs
         where id = $1 and locked_by = $2 and state = 'running'";

    pub const DELETE_WAITING_SIBLINGS: &str = "delete from jobs
         where dedupe_key = $1 and id <> $2 and state in ('pending', 'failed')";

    pub const RELEASE: &str = "update jobs set state = $2, run_at = $3, attempts = $4,
            last_error = $5, lease_until = null, locked_by = null, updated_at = $6
         where id = $1";

    pub const INSERT_INBOUND: &str = "insert into inbound_events
            (source, event_id, event_type, outcome, detail, body, received_at, subject)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (source, event_id) where event_id is not null do nothing
         returning id";

    pub const REKEY_LINK: &str = "update links set chargebee_id = $3
         where pairing = $1 and chargebee_id = $2
           and not exists (select 1 from links o where o.pairing = $1 and o.chargebee_id = $3)
         returning id";

    pub const PURGE_INBOUND: &str = "delete from inbound_events where received_at < $1";

    pub const JOB_COUNTS: &str = "select pairing, state, count(*) as count from jobs
         group by pairing, state order by pairing, state";

    pub const OLDEST_WAITING: &str =
        "select min(run_at) from jobs where state in ('pending', 'failed')";

    pub const SET_PAUSED: &str = "insert into pairing_state (pairing, paused, updated_at)
         values ($1, $2, $3)
         on conflict (pairing) do update set paused = excluded.paused,
                                             updated_at = excluded.updated_at";

    pub const PAUSED_PAIRINGS: &str =
        "select pairing from pairing_state where paused order by pairing";

    /// The payload a waiting job keeps when another job with its key is enqueued: the newer
    /// one, unless the waiting one names a newer Chargebee `resource_version` (events can
    /// arrive out of order, and the engine may use the newest event's content as the
    /// record). `version` extracts a payload's hinted version as a number, or null.
    pub fn merged_payload(version: fn(&str) -> String) -> String {
        format!(
            "case when coalesce({}, 0) > coalesce({}, 0) then jobs.payload
                  else excluded.payload end",
            version("jobs.payload"),
            version("excluded.payload")
        )
    }

    /// Insert-or-merge; `{min}` is the dialect's two-argument minimum, `payload` the
    /// [`merged_payload`] expression.
    pub fn enqueue(min: &str, payload: &str) -> String {
        format!(
            "insert into jobs (kind, pairing, dedupe_key, payload, state, attempts, max_attempts,
                               run_at, created_at, updated_at)
             values ($1, $2, $3, $4, 'pending', 0, $5, $6, $7, $7)
             on conflict (dedupe_key) where state in ('pending', 'failed') do update
                set run_at = {min}(jobs.run_at, excluded.run_at),
                    payload = {payload},
                    updated_at = excluded.updated_at
             returning id"
        )
    }

    /// Marks the chosen jobs running for a worker; `{due}` selects them.
    pub fn claim(due: &str) -> String {
        format!(
            "update jobs set state = 'running', attempts = attempts + 1,
                    lease_until = $1 + $3, locked_by = $4, updated_at = $1
             where id in ({due})
             returning {JOB_COLUMNS}"
        )
    }
}

/// The statements whose text differs between the backends, built once per backend.
struct Dialect {
    enqueue: String,
    merged_payload: String,
    claim: String,
    held_job: String,
    get_job: String,
}

impl Dialect {
    /// `min`: the two-argument minimum function; `lock_due`/`lock_held`: row-locking
    /// suffixes; `version`: a payload's hinted `resource_version` (see `sql::merged_payload`).
    fn new(min: &str, lock_due: &str, lock_held: &str, version: fn(&str) -> String) -> Self {
        let merged_payload = sql::merged_payload(version);
        Dialect {
            enqueue: sql::enqueue(min, &merged_payload),
            merged_payload,
            claim: sql::claim(&format!("{}{lock_due}", sql::DUE_JOBS)),
            held_job: format!("{}{lock_held}", sql::HELD_JOB),
            get_job: format!("select {} from jobs where id = $1", sql::JOB_COLUMNS),
        }
    }
}

/// The queue half of [`Store`], written once for both backends: the statements are shared
/// (or come from the backend's [`Dialect`]) and only the pool type differs. The backend
/// names its migrator and how to ask whether the migrations table exists, and provides
/// `migration_guard` to serialise concurrent migrations, `write_guard` to serialise
/// writers where the database wants one writer at a time, and `insert_event_and_jobs`
/// (the intake's hot path, written for each database's strengths).
macro_rules! impl_store {
    ($ty:ty, $backend:expr, $dialect:ident, $migrator:ident, $migrations_table_exists:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $ty {
            fn backend(&self) -> $crate::store::Backend {
                $backend
            }

            async fn migrate(&self) -> $crate::store::StoreResult<()> {
                // Held until the migrations are done; concurrent migrators wait, then no-op.
                let _guard = self.migration_guard().await?;
                $migrator.run(&self.pool).await?;
                Ok(())
            }

            async fn readiness(&self) -> Result<(), String> {
                use sqlx::Connection;
                let unreachable = |e: sqlx::Error| format!("database unreachable: {e}");
                let mut conn = self.pool.acquire().await.map_err(unreachable)?;
                conn.ping().await.map_err(unreachable)?;
                let exists: bool = sqlx::query_scalar($migrations_table_exists)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(unreachable)?;
                let applied: Vec<i64> = if exists {
                    sqlx::query_scalar("select version from _sqlx_migrations where success")
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(unreachable)?
                } else {
                    Vec::new()
                };
                $crate::store::missing_migrations(&$migrator, &applied)
            }

            async fn enqueue(
                &self,
                job: &$crate::store::NewJob,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<i64> {
                let _writer = self.write_guard().await;
                Ok(sqlx::query_scalar(&$dialect.enqueue)
                    .bind(&job.kind)
                    .bind(&job.pairing)
                    .bind(&job.dedupe_key)
                    .bind(job.payload.to_string())
                    .bind(job.max_attempts)
                    .bind(job.run_at)
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn claim(
                &self,
                worker: &str,
                now: $crate::store::Millis,
                lease_ms: $crate::store::Millis,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Job>> {
                let _writer = self.write_guard().await;
                Ok(sqlx::query_as::<_, $crate::store::Job>(&$dialect.claim)
                    .bind(now)
                    .bind(limit)
                    .bind(lease_ms)
                    .bind(worker)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn reclaim_expired(
                &self,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<u64> {
                let _writer = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let mut touched = 0;
                for stmt in [
                    $crate::store::sql::BURY_EXPIRED,
                    $crate::store::sql::DROP_EXPIRED_SHADOWED,
                    $crate::store::sql::REQUEUE_EXPIRED,
                ] {
                    touched += sqlx::query(stmt)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                Ok(touched)
            }

            async fn extend_lease(
                &self,
                id: i64,
                worker: &str,
                lease_until: $crate::store::Millis,
            ) -> $crate::store::StoreResult<bool> {
                let _writer = self.write_guard().await;
                let done = sqlx::query($crate::store::sql::EXTEND_LEASE)
                    .bind(id)
                    .bind(worker)
                    .bind(lease_until)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn complete(&self, id: i64, worker: &str) -> $crate::store::StoreResult<bool> {
                let _writer = self.write_guard().await;
                let done = sqlx::query($crate::store::sql::COMPLETE)
                    .bind(id)
                    .bind(worker)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn release(
                &self,
                id: i64,
                worker: &str,
                how: &$crate::store::Release,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<Option<$crate::store::JobState>> {
                let _writer = self.write_guard().await;
                use sqlx::Row;
                let mut tx = self.pool.begin().await?;
                let Some(row) = sqlx::query(&$dialect.held_job)
                    .bind(id)
                    .bind(worker)
                    .fetch_optional(&mut *tx)
                    .await?
                else {
                    return Ok(None);
                };
                let key: String = row.try_get("dedupe_key")?;
                let plan = $crate::store::release_plan(
                    how,
                    row.try_get("attempts")?,
                    row.try_get("max_attempts")?,
                );
                if plan.state != $crate::store::JobState::Dead {
                    // A job for the same record queued while this one ran is the same work:
                    // fold it into this one so the backoff and waiting-job uniqueness hold.
                    sqlx::query($crate::store::sql::DELETE_WAITING_SIBLINGS)
                        .bind(&key)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query($crate::store::sql::RELEASE)
                    .bind(id)
                    .bind(plan.state.as_str())
                    .bind(plan.run_at.unwrap_or(now))
                    .bind(plan.attempts)
                    .bind(&plan.note)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some(plan.state))
            }

            async fn record_inbound(
                &self,
                event: &$crate::store::NewInboundEvent,
                jobs: &[$crate::store::NewJob],
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<$crate::store::Recorded> {
                let _writer = self.write_guard().await;
                self.insert_event_and_jobs(event, jobs, now).await
            }

            async fn rekey_chargebee_id(
                &self,
                pairings: &[&str],
                old_id: &str,
                new_id: &str,
                job_id: i64,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<u64> {
                let _writer = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let mut moved = 0;
                for pairing in pairings {
                    let ids: Vec<i64> = sqlx::query_scalar($crate::store::sql::REKEY_LINK)
                        .bind(pairing)
                        .bind(old_id)
                        .bind(new_id)
                        .fetch_all(&mut *tx)
                        .await?;
                    for link_id in ids {
                        let detail = serde_json::json!({ "from": old_id, "to": new_id });
                        sqlx::query($crate::store::admin::sql::APPEND_SYNC_LOG)
                            .bind(pairing)
                            .bind(link_id)
                            .bind(Option::<String>::None)
                            .bind(new_id)
                            .bind(job_id)
                            .bind("rekey")
                            .bind(detail.to_string())
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        moved += 1;
                    }
                }
                tx.commit().await?;
                Ok(moved)
            }

            async fn purge_inbound_events(
                &self,
                before: $crate::store::Millis,
            ) -> $crate::store::StoreResult<u64> {
                let _writer = self.write_guard().await;
                Ok(sqlx::query($crate::store::sql::PURGE_INBOUND)
                    .bind(before)
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            async fn get_job(
                &self,
                id: i64,
            ) -> $crate::store::StoreResult<Option<$crate::store::Job>> {
                Ok(sqlx::query_as::<_, $crate::store::Job>(&$dialect.get_job)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn job_counts(&self) -> $crate::store::StoreResult<Vec<$crate::store::JobCount>> {
                Ok(
                    sqlx::query_as::<_, $crate::store::JobCount>($crate::store::sql::JOB_COUNTS)
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn oldest_waiting_run_at(
                &self,
            ) -> $crate::store::StoreResult<Option<$crate::store::Millis>> {
                Ok(sqlx::query_scalar($crate::store::sql::OLDEST_WAITING)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn set_pairing_paused(
                &self,
                pairing: &str,
                paused: bool,
                now: $crate::store::Millis,
            ) -> $crate::store::StoreResult<()> {
                let _writer = self.write_guard().await;
                sqlx::query($crate::store::sql::SET_PAUSED)
                    .bind(pairing)
                    .bind(paused)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn paused_pairings(&self) -> $crate::store::StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar($crate::store::sql::PAUSED_PAIRINGS)
                    .fetch_all(&self.pool)
                    .await?)
            }
        }
    };
}
use impl_store;
