//! Postgres store: the production backend, safe with many replicas.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{Backend, Dialect, StoreResult};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

// SKIP LOCKED lets replicas claim side by side without waiting on each other's rows.
static DIALECT: LazyLock<Dialect> =
    LazyLock::new(|| Dialect::new("least", " for update skip locked", " for update"));

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
