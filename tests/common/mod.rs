//! Test harness: a fresh database per test on either backend.
//!
//! SQLite always works (a temp file). Postgres comes from `DATABASE_URL` when it names a
//! Postgres server (CI sets it); otherwise the harness starts a throwaway server from the
//! machine's Postgres binaries (`initdb`, `pg_ctl`) under the temp directory, shared by test
//! processes and left running for the next run. Each test gets its own database.
#![allow(dead_code)]

pub mod app;
pub mod process;
pub mod raw_http;
pub mod world;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use wcs::store::{DynStore, PgStore, SqliteStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that lives as long as the test; dropping it removes it.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_admin: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                TestDb {
                    backend,
                    url,
                    _dir: Some(dir),
                    pg_admin: None,
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("wcs_test_{}", uuid::Uuid::new_v4().simple());
                let pool = sqlx::PgPool::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("cannot connect to test Postgres {admin}: {e}"));
                sqlx::query(&format!("create database {name}"))
                    .execute(&pool)
                    .await
                    .expect("create test database");
                pool.close().await;
                let mut url = url::Url::parse(&admin).expect("admin url");
                url.set_path(&name);
                TestDb {
                    backend,
                    url: url.to_string(),
                    _dir: None,
                    pg_admin: Some((admin, name)),
                }
            }
        }
    }

    /// A new store (its own connection pool) on this database, migrated.
    pub async fn store(&self) -> DynStore {
        let store = self.unmigrated_store().await;
        store.migrate().await.expect("migrate");
        store
    }

    pub async fn unmigrated_store(&self) -> DynStore {
        self.unmigrated_store_with_pool(8).await
    }

    pub async fn unmigrated_store_with_pool(&self, connections: u32) -> DynStore {
        match self.backend {
            Backend::Sqlite => Arc::new(
                SqliteStore::connect(&self.url, connections)
                    .await
                    .expect("sqlite"),
            ),
            Backend::Postgres => Arc::new(
                PgStore::connect(&self.url, connections)
                    .await
                    .expect("postgres"),
            ),
        }
    }

    /// Runs a query straight against the database (for assertions on stored rows).
    pub async fn rows<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + Send
            + Unpin,
    {
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.expect("sqlite");
                let rows = sqlx::query_as::<_, T>(sql)
                    .fetch_all(&pool)
                    .await
                    .expect("query");
                pool.close().await;
                rows
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.expect("postgres");
                let rows = sqlx::query_as::<_, T>(sql)
                    .fetch_all(&pool)
                    .await
                    .expect("query");
                pool.close().await;
                rows
            }
        }
    }

    /// Runs a statement straight against the database (to set up rows a test needs).
    pub async fn exec(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.expect("sqlite");
                sqlx::query(sql).execute(&pool).await.expect("statement");
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.expect("postgres");
                sqlx::query(sql).execute(&pool).await.expect("statement");
                pool.close().await;
            }
        }
    }

    /// Removes the database now (a Postgres test uses this to simulate an outage).
    pub async fn drop_database(&self) {
        if let Some((admin, name)) = &self.pg_admin {
            let pool = sqlx::PgPool::connect(admin).await.expect("admin connect");
            sqlx::query(&format!("drop database if exists {name} with (force)"))
                .execute(&pool)
                .await
                .expect("drop database");
            pool.close().await;
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_admin.take() {
            // Drop runs outside any runtime guarantee; use a private one on a plain thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                        let _ =
                            sqlx::query(&format!("drop database if exists {name} with (force)"))
                                .execute(&pool)
                                .await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// The Postgres server tests use: `DATABASE_URL` if it is a Postgres URL, else a throwaway.
pub fn postgres_admin_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => url,
        _ => throwaway_postgres().unwrap_or_else(|why| {
            panic!(
                "no Postgres for the Postgres half of the tests: {why}.\n\
                 Set DATABASE_URL=postgres://user@host:port/db (a user allowed to create \
                 databases), or install PostgreSQL's server binaries (initdb, pg_ctl) so the \
                 tests can start a throwaway server themselves."
            )
        }),
    }
}

fn find_pg_bin(name: &str) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    from_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
            .filter(|p| p.is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

fn throwaway_postgres() -> Result<String, String> {
    let initdb = find_pg_bin("initdb").ok_or("initdb not found")?;
    let pg_ctl = find_pg_bin("pg_ctl").ok_or("pg_ctl not found")?;
    let base = std::env::temp_dir().join("webcrm-chargebee-sync-test-postgres");
    std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
    // One test process at a time sets the server up; the others wait here and reuse it.
    let lock = std::fs::File::create(base.join("lock")).map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| e.to_string())?;
    let as_root = is_root();
    if as_root {
        // initdb refuses to run as root: run the server as the `postgres` system user.
        let out = Command::new("chown")
            .arg("postgres")
            .arg(&base)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "running as root and cannot hand {} to the postgres user: {}",
                base.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let pg = |bin: &Path| {
        if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        }
    };
    let data = base.join("data");
    let port_file = base.join("port");
    if !data.join("PG_VERSION").exists() {
        let out = pg(&initdb)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "-D"])
            .arg(&data)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let port = free_port()?;
        std::fs::write(&port_file, port.to_string()).map_err(|e| e.to_string())?;
    }
    let port: u16 = std::fs::read_to_string(&port_file)
        .map_err(|e| e.to_string())?
        .trim()
        .parse()
        .map_err(|_| "bad port file")?;
    let running = pg(&pg_ctl)
        .arg("status")
        .arg("-D")
        .arg(&data)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !running {
        start_server(pg(&pg_ctl), &data, &base, port)?;
    }
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn start_server(mut pg_ctl: Command, data: &Path, base: &Path, port: u16) -> Result<(), String> {
    // Durability does not matter for a throwaway test server; speed does.
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=300",
        base.display()
    );
    let out = pg_ctl
        .arg("start")
        .arg("-w")
        .arg("-D")
        .arg(data)
        .arg("-l")
        .arg(base.join("server.log"))
        .arg("-o")
        .arg(opts)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "pg_ctl start failed: {} (see {})",
            String::from_utf8_lossy(&out.stderr).trim(),
            base.join("server.log").display()
        ))
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Generates one `#[tokio::test]` per backend for each listed async fn taking a `Backend`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}
