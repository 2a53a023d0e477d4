//! Postgres store: the production backend, safe with many replicas.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{sql, Backend, Dialect, Millis, NewInboundEvent, NewJob, Recorded, StoreResult};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

// SKIP LOCKED lets replicas claim side by side without waiting on each other's rows.
static DIALECT: LazyLock<Dialect> = LazyLock::new(|| {
    Dialect::new(
        "least",
        " for update skip locked",
        " for update",
        hinted_version,
    )
});

/// A job payload's hinted Chargebee version, null unless it is a JSON number.
fn hinted_version(payload: &str) -> String {
    format!(
        "(case when jsonb_typeof(({payload})::jsonb #> '{{hint,resource_version}}') = 'number'
               then (({payload})::jsonb #>> '{{hint,resource_version}}')::numeric end)"
    )
}

static INSERT_EVENT_AND_JOBS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "with event as ({}),
         queued as (
            insert into jobs (kind, pairing, dedupe_key, payload, state, attempts, max_attempts,
                              run_at, created_at, updated_at)
            select k, p, d, pl, 'pending', 0, m, r, $9, $9
            from unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::int[],
                        $15::bigint[]) as t(k, p, d, pl, m, r)
            where exists (select 1 from event)
            on conflict (dedupe_key) where state in ('pending', 'failed') do update
               set run_at = least(jobs.run_at, excluded.run_at),
                   payload = {},
                   updated_at = excluded.updated_at
            returning id
         )
         select exists (select 1 from event) as stored,
                coalesce((select array_agg(id) from queued), '{{}}') as jobs",
        sql::INSERT_INBOUND,
        DIALECT.merged_payload
    )
});

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("webcrm-chargebee-sync")
            // A session stuck in a transaction pins the vacuum horizon of the queue table.
            .options([("idle_in_transaction_session_timeout", "60000")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A session advisory lock on one pooled connection, kept by the hold.
    async fn try_hold_link(&self, link_id: i64) -> StoreResult<Option<super::sync::LinkHold>> {
        let mut conn = self.pool.acquire().await?;
        // Link ids past 2^31 share a key with a smaller one: at worst a needless wait.
        let key = (
            super::sync::LINK_HOLD_CLASS,
            i32::try_from(link_id.rem_euclid(1 << 31)).unwrap_or_default(),
        );
        let held: bool = sqlx::query_scalar("select pg_try_advisory_lock($1, $2)")
            .bind(key.0)
            .bind(key.1)
            .fetch_one(&mut *conn)
            .await?;
        Ok(held.then(|| super::sync::LinkHold::postgres(conn, key)))
    }

    /// The event and its jobs in one statement (one round trip, one commit): the jobs are
    /// inserted only when the event row was, so a redelivery changes nothing.
    async fn insert_event_and_jobs(
        &self,
        event: &NewInboundEvent,
        jobs: &[NewJob],
        now: Millis,
    ) -> StoreResult<Recorded> {
        let row: (bool, Vec<i64>) = sqlx::query_as(&INSERT_EVENT_AND_JOBS)
            .bind(&event.source)
            .bind(&event.event_id)
            .bind(&event.event_type)
            .bind(&event.outcome)
            .bind(&event.detail)
            .bind(&event.body)
            .bind(event.received_at)
            .bind(&event.subject)
            .bind(now)
            .bind(jobs.iter().map(|j| j.kind.clone()).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| j.pairing.clone()).collect::<Vec<_>>())
            .bind(
                jobs.iter()
                    .map(|j| j.dedupe_key.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                jobs.iter()
                    .map(|j| j.payload.to_string())
                    .collect::<Vec<_>>(),
            )
            .bind(jobs.iter().map(|j| j.max_attempts).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| j.run_at).collect::<Vec<_>>())
            .fetch_one(&self.pool)
            .await?;
        Ok(match row {
            (true, ids) => Recorded::Stored { jobs: ids },
            (false, _) => Recorded::Duplicate,
        })
    }

    /// Postgres takes concurrent writers; row locks do the rest.
    async fn write_guard(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        None
    }

    /// sqlx already holds a session advisory lock while migrating Postgres.
    async fn migration_guard(&self) -> StoreResult<Option<std::fs::File>> {
        Ok(None)
    }
}

super::impl_store!(
    PgStore,
    Backend::Postgres,
    DIALECT,
    MIGRATOR,
    "select to_regclass('_sqlx_migrations') is not null"
);

super::admin::impl_admin_store!(PgStore);
super::sync::impl_sync_store!(PgStore);
