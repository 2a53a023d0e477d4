//! Both sandboxes and the service wired together as in production: the service's webhooks
//! and hooks are registered in the sandboxes with `register-webhooks`, and jobs run with the
//! service's real handlers. `settle()` delivers everything and runs every job until the
//! three systems are quiet, so tests never sleep.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use wcs::queue::{Queue, QueueConfig, WorkerPool};
use wcs::sandbox::chargebee::{
    ChargebeeSandbox, RunningChargebeeSandbox, SandboxOptions, WebhookFaults,
};
use wcs::sandbox::webcrm::{
    HookDelivery, RunningWebcrmSandbox, SandboxEntity, WebcrmSandbox, WebcrmSandboxOptions,
};

use super::app::{test_config_with, TestApp};
use super::{Backend, TestDb};

#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct LinkRow {
    pub id: i64,
    pub webcrm_id: String,
    pub chargebee_id: String,
    pub snapshot: String,
    pub tombstoned_at: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConflictRow {
    pub pairing: String,
    pub field: String,
    pub webcrm_value: Option<String>,
    pub chargebee_value: Option<String>,
    pub winner: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingRow {
    pub pairing: String,
    pub kind: String,
    pub message: String,
    pub closed_at: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub kind: String,
    pub pairing: Option<String>,
    pub state: String,
    pub last_error: Option<String>,
    pub payload: String,
}

pub struct World {
    pub cb: RunningChargebeeSandbox,
    pub wc: RunningWebcrmSandbox,
    pub app: TestApp,
    pool: WorkerPool,
    /// Chargebee writes made while setting up (the webhook endpoint), not by the sync.
    cb_setup_writes: u64,
    /// Webhook deliveries to expect: (events, deliveries) when the plan last changed, the
    /// deliveries per later event (2 when duplicating, 0 while paused), and the per-event
    /// count to restore after a pause.
    delivery_plan: Mutex<(usize, usize, usize, usize)>,
}

impl World {
    pub async fn start(backend: Backend) -> World {
        Self::start_with(backend, &[]).await
    }

    /// `extra` adds or overrides service settings (e.g. pairing options).
    pub async fn start_with(backend: Backend, extra: &[(&str, &str)]) -> World {
        Self::start_with_options(backend, extra, WebcrmSandboxOptions::default()).await
    }

    /// As [`Self::start_with`], with webCRM sandbox options (hook duplicates, reordering);
    /// hooks are always delivered by `settle()`.
    pub async fn start_with_options(
        backend: Backend,
        extra: &[(&str, &str)],
        webcrm: WebcrmSandboxOptions,
    ) -> World {
        Self::build(backend, extra, webcrm, true).await
    }

    /// No webhook and no hook is registered: only polling (`poll()`) finds changes.
    pub async fn start_without_webhooks(backend: Backend) -> World {
        Self::build(backend, &[], WebcrmSandboxOptions::default(), false).await
    }

    async fn build(
        backend: Backend,
        extra: &[(&str, &str)],
        webcrm: WebcrmSandboxOptions,
        register: bool,
    ) -> World {
        let cb = ChargebeeSandbox::start(SandboxOptions::default())
            .await
            .expect("chargebee sandbox");
        let wc = WebcrmSandbox::start(WebcrmSandboxOptions {
            hook_delivery: HookDelivery::Manual,
            ..webcrm
        })
        .await
        .expect("webcrm sandbox");
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        let cb_url = cb.base_url().to_string();
        let wc_url = wc.base_url();
        let wc_token = wc.api_token();
        let mut settings: Vec<(&str, &str)> = vec![
            ("CHARGEBEE_BASE_URL", &cb_url),
            ("CHARGEBEE_API_KEY", cb.api_key()),
            ("CHARGEBEE_RATE_LIMIT_PER_MINUTE", "60000"),
            ("WEBCRM_BASE_URL", &wc_url),
            ("WEBCRM_API_TOKEN", &wc_token),
            ("WEBCRM_RATE_LIMIT_PER_MINUTE", "60000"),
        ];
        settings.extend_from_slice(extra);
        let config = test_config_with(&db.url, &settings);
        let app = TestApp::spawn_with_config(db, store, config).await;
        // Register our webhooks and hooks exactly as an operator would.
        let public = app.url("");
        let mut with_public = settings.clone();
        with_public.push(("PUBLIC_URL", &public));
        let register_config = test_config_with(&app.db.url, &with_public);
        if register {
            let plan = wcs::register::plan(&register_config).await.expect("plan");
            wcs::register::apply(&register_config, &plan)
                .await
                .expect("register webhooks");
        }
        let handlers =
            wcs::serve::handlers(&app.config, &app.store, &app.limiters).expect("handlers");
        let pool = WorkerPool::new(
            Queue::new(app.store.clone(), app.config.queue.max_attempts),
            Arc::new(handlers),
            QueueConfig::default(),
        );
        // Count only what the sync writes from here on.
        wc.state().reset_calls();
        let cb_setup_writes = cb.handle().write_counts().values().sum();
        World {
            cb,
            wc,
            app,
            pool,
            cb_setup_writes,
            // Without a registered endpoint Chargebee delivers nothing.
            delivery_plan: Mutex::new((0, 0, usize::from(register), usize::from(register))),
        }
    }

    /// Makes Chargebee duplicate and/or reorder its webhook deliveries from now on.
    pub fn set_webhook_faults(&self, faults: WebhookFaults) {
        let handle = self.cb.handle();
        let per_event = if faults.duplicate { 2 } else { 1 };
        *self.delivery_plan.lock().unwrap() = (
            self.deliverable_events(),
            handle.deliveries().len(),
            per_event,
            per_event,
        );
        self.cb.handle().set_webhook_faults(faults);
    }

    /// Delivers every webhook and hook and runs every job (waits included) until nothing
    /// moves. Panics if the systems do not come to rest.
    pub async fn settle(&self) {
        self.settle_with(true).await
    }

    /// As [`Self::settle`], but webCRM hooks stay queued in the sandbox (to be delivered,
    /// or lost with `drop_pending_hooks`, by the test).
    pub async fn settle_holding_hooks(&self) {
        self.settle_with(false).await
    }

    async fn settle_with(&self, deliver_hooks: bool) {
        for _ in 0..200 {
            let events = self.deliverable_events();
            assert!(
                self.cb
                    .handle()
                    .wait_for_deliveries(self.expected_deliveries(events), Duration::from_secs(10))
                    .await,
                "Chargebee webhooks were not delivered"
            );
            let hooks = if deliver_hooks {
                self.wc.state().deliver_pending_hooks().await.len()
            } else {
                0
            };
            // Jobs waiting for a dependency or a backoff are due now: tests do not sleep.
            self.app
                .db
                .exec("update jobs set run_at = 0 where state in ('pending', 'failed')")
                .await;
            let ran = self.pool.run_until_idle().await.expect("run jobs");
            let quiet = ran == 0
                && hooks == 0
                && self.deliverable_events() == events
                && (!deliver_hooks || self.wc.state().pending_hook_count() == 0);
            if quiet {
                return;
            }
        }
        panic!("the sync did not come to rest: {:?}", self.jobs().await);
    }

    /// One scheduled poll of every source and entity, then settle (what one
    /// `POLL_INTERVAL_SECS` tick does in `serve`).
    pub async fn poll(&self) {
        let now = wcs::store::now_ms();
        for job in wcs::poller::poll_jobs(now, 10) {
            self.app
                .store
                .enqueue(&job, now)
                .await
                .expect("enqueue poll");
        }
        self.settle().await;
    }

    /// One reconciler sweep of every enabled pairing, then settle.
    pub async fn reconcile(&self) {
        let now = wcs::store::now_ms();
        for job in wcs::reconciler::reconcile_jobs(&self.app.config, now) {
            self.app
                .store
                .enqueue(&job, now)
                .await
                .expect("enqueue sweep");
        }
        self.settle().await;
    }

    /// Events Chargebee delivers to our endpoint: only the subscribed types (an item family
    /// created by the sync, for one, is never delivered).
    fn deliverable_events(&self) -> usize {
        self.cb
            .handle()
            .events()
            .iter()
            .filter(|e| {
                e["event_type"]
                    .as_str()
                    .is_some_and(|t| wcs::intake::chargebee::SUBSCRIBED_EVENT_TYPES.contains(&t))
            })
            .count()
    }

    /// Disables (or re-enables) our Chargebee webhook endpoint, as an operator or an outage
    /// might: events in between are never delivered and only polling finds them.
    pub async fn set_chargebee_webhooks(&self, enabled: bool) {
        let handle = self.cb.handle();
        // Deliveries still on their way count under the old plan.
        let due = self.expected_deliveries(self.deliverable_events());
        assert!(
            handle
                .wait_for_deliveries(due, Duration::from_secs(10))
                .await
        );
        for endpoint in handle.records("webhook_endpoint") {
            let id = endpoint["id"].as_str().expect("endpoint id").to_owned();
            handle
                .dashboard_edit(
                    "webhook_endpoint",
                    &id,
                    serde_json::json!({"disabled": !enabled}),
                )
                .expect("toggle endpoint");
        }
        let mut plan = self.delivery_plan.lock().unwrap();
        let restore = plan.3;
        *plan = (
            self.deliverable_events(),
            handle.deliveries().len(),
            if enabled { restore } else { 0 },
            restore,
        );
    }

    fn expected_deliveries(&self, events: usize) -> usize {
        let (events_then, deliveries_then, per_event, _) = *self.delivery_plan.lock().unwrap();
        deliveries_then + events.saturating_sub(events_then) * per_event
    }

    pub async fn links(&self, pairing: &str) -> Vec<LinkRow> {
        self.app
            .db
            .rows(&format!(
                "select id, webcrm_id, chargebee_id, snapshot, tombstoned_at from links
                 where pairing = '{pairing}' order by id"
            ))
            .await
    }

    pub async fn conflicts(&self) -> Vec<ConflictRow> {
        self.app
            .db
            .rows(
                "select pairing, field, webcrm_value, chargebee_value, winner from conflicts
                 order by id",
            )
            .await
    }

    pub async fn pending_actions(&self) -> Vec<PendingRow> {
        self.app
            .db
            .rows("select pairing, kind, message, closed_at from pending_actions order by id")
            .await
    }

    pub async fn jobs(&self) -> Vec<JobRow> {
        self.app
            .db
            .rows("select kind, pairing, state, last_error, payload from jobs order by id")
            .await
    }

    /// Jobs that failed for good, with their errors (a passing test expects none).
    pub async fn dead_jobs(&self) -> Vec<JobRow> {
        self.jobs()
            .await
            .into_iter()
            .filter(|j| j.state == "dead")
            .collect()
    }

    /// Successful writes made to Chargebee so far (all operations).
    /// Every API call the sync made so far: Chargebee requests, and webCRM requests as
    /// `METHOD /Route/{id}` (logins left out).
    pub fn api_calls(&self) -> (usize, Vec<String>) {
        let webcrm = self
            .wc
            .state()
            .calls()
            .into_iter()
            .filter(|c| c.route != "/Auth/ApiLogin")
            .map(|c| format!("{} {}", c.method, c.route))
            .collect();
        (self.cb.handle().request_times().len(), webcrm)
    }

    pub fn cb_writes(&self) -> u64 {
        self.cb.handle().write_counts().values().sum::<u64>() - self.cb_setup_writes
    }

    /// Successful writes made to webCRM so far through its API.
    pub fn wc_writes(&self) -> usize {
        self.wc.state().total_writes()
    }

    pub fn cb_record(&self, resource: &str, id: &str) -> Value {
        self.cb
            .handle()
            .record(resource, id)
            .unwrap_or_else(|| panic!("no Chargebee {resource} {id}"))
    }

    pub fn wc_record(&self, entity: SandboxEntity, id: &str) -> serde_json::Map<String, Value> {
        let id: i64 = id.parse().expect("numeric webCRM id");
        self.wc
            .state()
            .record(entity, id)
            .unwrap_or_else(|| panic!("no webCRM {entity:?} {id}"))
    }

    pub async fn shutdown(self) {
        self.cb.shutdown().await;
        self.wc.shutdown().await;
    }
}
