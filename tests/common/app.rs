//! A running service on port 0 for HTTP tests, with one helper per endpoint family.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use wcs::config::{Config, Purpose, RawConfig};
use wcs::queue::Dispatcher;
use wcs::serve::{self, Running};
use wcs::store::DynStore;

use super::{Backend, TestDb};

pub const CB_USER: &str = "chargebee";
pub const CB_PASSWORD: &str = "webhook-password-0123";
pub const WEBCRM_SECRET: &str = "webcrm-hook-secret-0123456789";
pub const ADMIN: &str = "admin-token-0123456789abcdef";

/// A valid configuration; `extra` overrides or adds settings.
pub fn test_config_with(database_url: &str, extra: &[(&str, &str)]) -> Config {
    let mut env: Vec<(String, String)> = [
        ("DATABASE_URL", database_url),
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("CHARGEBEE_SITE", "acme-test"),
        ("CHARGEBEE_API_KEY", "test_cb_key_0123456789"),
        ("CHARGEBEE_WEBHOOK_USERNAME", CB_USER),
        ("CHARGEBEE_WEBHOOK_PASSWORD", CB_PASSWORD),
        ("WEBCRM_API_TOKEN", "00000000-0000-4000-8000-000000000001"),
        ("WEBCRM_WEBHOOK_SECRET", WEBCRM_SECRET),
        ("ADMIN_TOKEN", ADMIN),
        ("SHUTDOWN_GRACE_SECS", "2"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    RawConfig::from_sources(None, env)
        .validate(Purpose::Serve)
        .expect("valid test config")
}

pub fn test_config(database_url: &str) -> Config {
    test_config_with(database_url, &[])
}

pub struct TestApp {
    pub running: Running,
    pub config: Arc<Config>,
    /// The limiters the running service uses (shared with its handlers and admin status).
    pub limiters: serve::Limiters,
    pub client: reqwest::Client,
    pub store: DynStore,
    pub db: TestDb,
}

impl TestApp {
    /// Serves with the given store and configuration; no job handlers, so enqueued jobs stay
    /// visible to the test (unknown kinds would go dead: tests pause or inspect before that).
    pub async fn spawn_with_config(db: TestDb, store: DynStore, config: Config) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut queue = config.queue.clone();
        // Workers would claim test jobs; these tests look at the queue instead.
        queue.worker_concurrency = 0;
        let config = Arc::new(Config { queue, ..config });
        let limiters = serve::Limiters::from_config(&config);
        let running = serve::start(
            config.clone(),
            store.clone(),
            limiters.clone(),
            Arc::new(Dispatcher::new()),
            listener,
            CancellationToken::new(),
        )
        .unwrap();
        TestApp {
            running,
            config,
            limiters,
            client: reqwest::Client::new(),
            store,
            db,
        }
    }

    pub async fn spawn_with(db: TestDb, store: DynStore) -> TestApp {
        let config = test_config(&db.url);
        Self::spawn_with_config(db, store, config).await
    }

    pub async fn spawn(backend: Backend) -> TestApp {
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        Self::spawn_with(db, store).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// A Chargebee webhook delivery with the configured Basic credentials.
    pub async fn post_chargebee(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url("/webhooks/chargebee"))
            .basic_auth(CB_USER, Some(CB_PASSWORD))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// A webCRM hook delivery to the derived URL of `entity`.
    pub async fn post_webcrm(
        &self,
        entity: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let secret = secrecy::SecretString::from(WEBCRM_SECRET);
        let path = wcs::intake::webcrm::hook_path(&secret, entity);
        self.client
            .post(self.url(&path))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// All jobs, oldest first.
    pub async fn jobs(&self) -> Vec<wcs::store::Job> {
        self.db.rows("select * from jobs order by id").await
    }

    /// `(source, outcome, event_id)` of every stored inbound event, oldest first.
    pub async fn events(&self) -> Vec<(String, String, Option<String>)> {
        self.db
            .rows::<EventRow>("select source, outcome, event_id from inbound_events order by id")
            .await
            .into_iter()
            .map(|e| (e.source, e.outcome, e.event_id))
            .collect()
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    source: String,
    outcome: String,
    event_id: Option<String>,
}
