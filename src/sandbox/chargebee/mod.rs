//! An in-memory emulator of the Chargebee API v2 for everything the client uses: same paths,
//! HTTP Basic auth, form-encoded requests checked against the parameter table in [`spec`],
//! JSON envelopes, paging, filters, Chargebee's error bodies, idempotency keys, events and
//! webhook delivery; plus fault injection and "dashboard" helpers for tests.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use wcs::sandbox::chargebee::{ChargebeeSandbox, SandboxOptions};
//! let sandbox = ChargebeeSandbox::start(SandboxOptions::default()).await?;
//! println!("{} {}", sandbox.base_url(), sandbox.api_key());
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

pub mod faults;
pub mod ops;
pub mod spec;
pub mod state;
pub mod webhooks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use secrecy::SecretString;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};
use url::Url;

pub use faults::{Fault, FaultKind};
pub use state::{Delivery, SbError};
pub use webhooks::WebhookFaults;

use crate::clients::chargebee::ChargebeeClientConfig;
use crate::clients::outbound::RetryPolicy;
use ops::Ctx;
use state::{Actor, State};

/// Where the sandbox serves the API below its root.
pub const API_PREFIX: &str = "/api/v2";

/// A webhook endpoint configured at start.
#[derive(Clone)]
pub struct WebhookTarget {
    pub url: Url,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url.as_str())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// How to start a sandbox.
#[derive(Clone)]
pub struct SandboxOptions {
    /// Shown by `site()`; not used for routing.
    pub site: String,
    /// `None`: a random `test_...` key.
    pub api_key: Option<String>,
    /// The key's name, reported as `user` on events from API writes.
    pub api_key_name: String,
    /// Reported as `user` on "dashboard" edits.
    pub admin_email: String,
    /// Site currency for prices and customers without one.
    pub currency: String,
    /// Listen address; port 0 picks a free port.
    pub bind: SocketAddr,
    /// An endpoint to deliver webhooks to from the start.
    pub webhook: Option<WebhookTarget>,
    /// How long an idempotency key is remembered (Chargebee documents 30 minutes).
    pub idempotency_window: Duration,
}

impl std::fmt::Debug for SandboxOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxOptions")
            .field("site", &self.site)
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("api_key_name", &self.api_key_name)
            .field("currency", &self.currency)
            .field("bind", &self.bind)
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            site: "sandbox-test".into(),
            api_key: None,
            api_key_name: "full_access_key_v1".into(),
            admin_email: "admin@example.com".into(),
            currency: "EUR".into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            webhook: None,
            idempotency_window: Duration::from_secs(30 * 60),
        }
    }
}

struct Shared {
    state: Arc<Mutex<State>>,
    webhook_faults: Arc<Mutex<WebhookFaults>>,
    outbox: mpsc::UnboundedSender<Value>,
    api_key: String,
    options: SandboxOptions,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hand queued events to the webhook sender.
    fn flush(&self, state: &mut State) {
        for event in state.outbox.drain(..) {
            let _ = self.outbox.send(event);
        }
    }

    fn api_actor(&self) -> Actor {
        Actor {
            source: "api",
            user: Some(self.options.api_key_name.clone()),
        }
    }

    fn admin_actor(&self) -> Actor {
        Actor {
            source: "admin_console",
            user: Some(self.options.admin_email.clone()),
        }
    }
}

/// Starts sandboxes.
pub struct ChargebeeSandbox;

impl ChargebeeSandbox {
    /// Bind, spawn the server and the webhook sender, and return at once.
    pub async fn start(options: SandboxOptions) -> anyhow::Result<RunningChargebeeSandbox> {
        let listener = tokio::net::TcpListener::bind(options.bind).await?;
        let addr = listener.local_addr()?;
        let api_key = options
            .api_key
            .clone()
            .unwrap_or_else(|| format!("test_{}", state::random_id("").to_lowercase()));
        let state = Arc::new(Mutex::new(State::default()));
        let webhook_faults = Arc::new(Mutex::new(WebhookFaults::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: state.clone(),
            webhook_faults: webhook_faults.clone(),
            outbox: tx,
            api_key: api_key.clone(),
            options: options.clone(),
        });
        let handle = SandboxHandle {
            shared: shared.clone(),
        };
        if let Some(target) = &options.webhook {
            handle.add_webhook_endpoint(
                target.url.as_str(),
                target.username.as_deref(),
                target.password.as_deref(),
            );
        }
        let sender = tokio::spawn(webhooks::run(rx, state, webhook_faults));
        let app = Router::new().fallback(serve).with_state(shared);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "chargebee sandbox server stopped");
            }
        });
        let base_url = Url::parse(&format!("http://{addr}{API_PREFIX}"))?;
        tracing::info!(%base_url, "chargebee sandbox listening");
        Ok(RunningChargebeeSandbox {
            handle,
            addr,
            base_url,
            api_key,
            stop: Some(stop_tx),
            server: Some(server),
            sender: Some(sender),
        })
    }
}

/// Start a sandbox and keep it running until `shutdown` completes (for the CLI).
pub async fn run_until(
    options: SandboxOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let sandbox = ChargebeeSandbox::start(options).await?;
    shutdown.await;
    sandbox.shutdown().await;
    Ok(())
}

/// A running sandbox. Dropping it without [`Self::shutdown`] leaves the server running until
/// the runtime ends.
pub struct RunningChargebeeSandbox {
    handle: SandboxHandle,
    addr: SocketAddr,
    base_url: Url,
    api_key: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    sender: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for RunningChargebeeSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningChargebeeSandbox")
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl RunningChargebeeSandbox {
    /// e.g. `http://127.0.0.1:41234/api/v2`.
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    pub fn site(&self) -> &str {
        &self.handle.shared.options.site
    }

    /// Inspect state, inject faults, make dashboard edits.
    pub fn handle(&self) -> &SandboxHandle {
        &self.handle
    }

    /// A client configuration pointing here with a generous limiter and fast retries.
    pub fn client_config(&self) -> ChargebeeClientConfig {
        let mut config =
            ChargebeeClientConfig::new(self.base_url(), SecretString::from(self.api_key.clone()));
        config.rate_limit_per_minute = 60_000;
        config.connect_timeout = Duration::from_secs(2);
        config.request_timeout = Duration::from_secs(10);
        config.retry = RetryPolicy {
            max_attempts: 3,
            max_total: Duration::from_secs(10),
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
        };
        config
    }

    /// Stop serving and delivering.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        if let Some(sender) = self.sender.take() {
            sender.abort();
        }
    }
}

/// Test access to a running sandbox. Cheap to clone.
#[derive(Clone)]
pub struct SandboxHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxHandle").finish_non_exhaustive()
    }
}

impl SandboxHandle {
    /// One record as the API would return it; `resource` is the envelope key (`customer`,
    /// `item_family`, `item`, `item_price`, `invoice`, `order`, `event`, `webhook_endpoint`,
    /// `business_entity`).
    pub fn record(&self, resource: &str, id: &str) -> Option<Value> {
        let st = self.shared.lock();
        st.table(resource)?.get(id).cloned().map(Value::Object)
    }

    /// All records of a resource, oldest first.
    pub fn records(&self, resource: &str) -> Vec<Value> {
        let st = self.shared.lock();
        let Some(table) = st.table(resource) else {
            return Vec::new();
        };
        let mut rows: Vec<_> = table.rows.values().collect();
        rows.sort_by_key(|r| r.seq);
        rows.into_iter()
            .map(|r| Value::Object(r.data.clone()))
            .collect()
    }

    /// All events, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.records("event")
    }

    /// Successful, non-replayed write calls of one operation id (e.g. `customer.create`).
    pub fn write_count(&self, operation: &str) -> u64 {
        self.shared
            .lock()
            .write_counts
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Successful write calls per operation id.
    pub fn write_counts(&self) -> BTreeMap<String, u64> {
        self.shared.lock().write_counts.clone()
    }

    /// Every request that reached an operation (faulted, refused and replayed included).
    pub fn request_count(&self, operation: &str) -> u64 {
        self.shared
            .lock()
            .request_counts
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Requests per operation id, as [`Self::request_count`] counts them.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.shared.lock().request_counts.clone()
    }

    /// When each request that reached an operation arrived (faulted ones included).
    pub fn request_times(&self) -> Vec<Instant> {
        self.shared.lock().request_times.clone()
    }

    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    pub fn set_webhook_faults(&self, faults: WebhookFaults) {
        *self
            .shared
            .webhook_faults
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// Every webhook delivery attempt so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }

    /// Wait until at least `n` delivery attempts were made; false on timeout.
    pub async fn wait_for_deliveries(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.lock().deliveries.len() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Move the sandbox clock forward (timestamps, `resource_version`, event times).
    pub fn advance_clock(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let mut st = self.shared.lock();
        st.clock_offset_ms = st.clock_offset_ms.saturating_add(ms);
    }

    /// The sandbox clock in unix seconds.
    pub fn now(&self) -> i64 {
        self.shared.lock().now()
    }

    /// Register a webhook endpoint directly (as if configured in the dashboard).
    pub fn add_webhook_endpoint(
        &self,
        url: &str,
        username: Option<&str>,
        password: Option<&str>,
    ) -> String {
        let id = state::random_id("whv2_");
        let mut e = Map::new();
        e.insert("id".into(), json!(id));
        e.insert("name".into(), json!("sandbox endpoint"));
        e.insert("url".into(), json!(url));
        e.insert("api_version".into(), json!("v2"));
        e.insert("primary_url".into(), json!(false));
        e.insert("disabled".into(), json!(false));
        e.insert("send_card_resource".into(), json!(false));
        e.insert("chargebee_response_schema_type".into(), json!("items"));
        e.insert("object".into(), json!("webhook_endpoint"));
        let mut st = self.shared.lock();
        st.endpoint_auth.insert(
            id.clone(),
            state::EndpointAuth {
                username: username.map(str::to_string),
                password: password.map(str::to_string),
            },
        );
        st.insert("webhook_endpoint", &id, e);
        id
    }

    fn run_op(
        &self,
        op_id: &str,
        id: Option<&str>,
        pairs: &[(&str, &str)],
        actor: Actor,
    ) -> Result<Value, SbError> {
        let op = spec::operations()
            .iter()
            .find(|o| o.id == op_id)
            .ok_or_else(|| SbError::new(404, "resource_not_found", "no such operation"))?;
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let params = state::validate(op, &pairs)?;
        let mut st = self.shared.lock();
        let ctx = Ctx {
            actor,
            currency: &self.shared.options.currency,
        };
        let result = ops::execute(&mut st, &ctx, op, id, &params);
        self.shared.flush(&mut st);
        result
    }

    /// Create a customer as a dashboard user would (`source` = `admin_console`). `pairs` are
    /// the `customer.create` form params.
    pub fn dashboard_create_customer(&self, pairs: &[(&str, &str)]) -> Result<Value, SbError> {
        let actor = self.shared.admin_actor();
        self.run_op("customer.create", None, pairs, actor)
            .map(|v| v["customer"].clone())
    }

    /// Create a record through any emulated write operation as a dashboard user, e.g.
    /// `("item.create", None, &[("id","x"), ...])`. Returns the response envelope.
    pub fn dashboard_call(
        &self,
        operation: &str,
        id: Option<&str>,
        pairs: &[(&str, &str)],
    ) -> Result<Value, SbError> {
        let actor = self.shared.admin_actor();
        self.run_op(operation, id, pairs, actor)
    }

    /// Change a record outside the API (`source` = `admin_console`): top-level keys of
    /// `patch` replace the record's (`null` removes), nested objects are merged one level
    /// deep. Bumps `resource_version`/`updated_at` and emits `customer_changed` or
    /// `<resource>_updated`.
    pub fn dashboard_edit(&self, resource: &str, id: &str, patch: Value) -> Result<Value, SbError> {
        let Value::Object(patch) = patch else {
            return Err(SbError::new(
                400,
                "invalid_request",
                "patch must be an object",
            ));
        };
        let mut st = self.shared.lock();
        let mut data = st
            .table(resource)
            .and_then(|t| t.get(id))
            .cloned()
            .ok_or_else(|| SbError::not_found(format!("{resource} {id} not found")))?;
        for (k, v) in patch {
            match (data.get_mut(&k), v) {
                (_, Value::Null) => {
                    data.remove(&k);
                }
                (Some(Value::Object(existing)), Value::Object(new)) => {
                    for (nk, nv) in new {
                        if nv.is_null() {
                            existing.remove(&nk);
                        } else {
                            existing.insert(nk, nv);
                        }
                    }
                }
                (_, v) => {
                    data.insert(k, v);
                }
            }
        }
        st.touch(&mut data);
        if let Some(slot) = st.table_mut(resource).and_then(|t| t.get_mut(id)) {
            *slot = data.clone();
        }
        let event_type = match resource {
            "customer" => "customer_changed".to_string(),
            other => format!("{other}_updated"),
        };
        let actor = self.shared.admin_actor();
        st.emit_one(&event_type, resource, &data, &actor);
        self.shared.flush(&mut st);
        Ok(Value::Object(data))
    }

    fn business_entity_event(
        &self,
        event_type: &str,
        id: &str,
        name: Option<&str>,
        deleted: bool,
    ) -> Value {
        let mut st = self.shared.lock();
        let now = st.now();
        let mut be = st.business_entities.get(id).cloned().unwrap_or_else(|| {
            let mut m = Map::new();
            m.insert("id".into(), json!(id));
            m.insert("status".into(), json!("active"));
            m.insert("created_at".into(), json!(now));
            m.insert("object".into(), json!("business_entity"));
            m
        });
        if let Some(name) = name {
            be.insert("name".into(), json!(name));
        }
        be.insert("deleted".into(), json!(deleted));
        st.touch(&mut be);
        if st.business_entities.contains(id) {
            if let Some(slot) = st.business_entities.get_mut(id) {
                *slot = be.clone();
            }
        } else {
            st.insert("business_entity", id, be.clone());
        }
        let actor = self.shared.admin_actor();
        st.emit_one(event_type, "business_entity", &be, &actor);
        self.shared.flush(&mut st);
        Value::Object(be)
    }

    /// Emit `business_entity_created` (business entities exist in the API only as events).
    pub fn emit_business_entity_created(&self, id: &str, name: &str) -> Value {
        self.business_entity_event("business_entity_created", id, Some(name), false)
    }

    /// Emit `business_entity_updated` with a new name.
    pub fn emit_business_entity_updated(&self, id: &str, name: &str) -> Value {
        self.business_entity_event("business_entity_updated", id, Some(name), false)
    }

    /// Emit `business_entity_deleted`.
    pub fn emit_business_entity_deleted(&self, id: &str) -> Value {
        self.business_entity_event("business_entity_deleted", id, None, true)
    }

    /// Move a customer to another business entity as Chargebee does: copy it to a new id in
    /// the destination, mark the original with `active_id`, and emit
    /// `customer_business_entity_changed`. Returns the new customer id.
    pub fn transfer_customer(
        &self,
        customer_id: &str,
        destination_business_entity_id: &str,
    ) -> Result<String, SbError> {
        let mut st = self.shared.lock();
        let mut old = st.customers.get(customer_id).cloned().ok_or_else(|| {
            SbError::not_found(format!("Customer not found for id {customer_id}"))
        })?;
        let source_be = old
            .get("business_entity_id")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        let new_id = state::random_id("");
        let now = st.now();
        let mut new = old.clone();
        new.insert("id".into(), json!(new_id));
        new.insert(
            "business_entity_id".into(),
            json!(destination_business_entity_id),
        );
        new.insert("created_at".into(), json!(now));
        new.remove("active_id");
        st.touch(&mut new);
        st.insert("customer", &new_id, new.clone());
        old.insert("active_id".into(), json!(new_id));
        st.touch(&mut old);
        if let Some(slot) = st.customers.get_mut(customer_id) {
            *slot = old;
        }
        let transfer = json!({
            "id": state::random_id("bet_"),
            "resource_type": "customer",
            "resource_id": customer_id,
            "active_resource_id": new_id,
            "source_business_entity_id": source_be,
            "destination_business_entity_id": destination_business_entity_id,
            "reason_code": "correction",
            "created_at": now,
            "object": "business_entity_transfer",
        });
        let mut content = Map::new();
        content.insert("business_entity_transfer".into(), transfer);
        content.insert("customer".into(), Value::Object(new));
        let actor = self.shared.admin_actor();
        st.emit("customer_business_entity_changed", content, &actor);
        self.shared.flush(&mut st);
        Ok(new_id)
    }

    /// Queue an already recorded event for delivery again (a Chargebee retry or a manual
    /// resend from the dashboard).
    pub fn redeliver(&self, event_id: &str) -> Result<(), SbError> {
        let event = self
            .shared
            .lock()
            .events
            .get(event_id)
            .cloned()
            .ok_or_else(|| SbError::not_found(format!("Event not found for id {event_id}")))?;
        let _ = self.shared.outbox.send(Value::Object(event));
        Ok(())
    }

    /// Delete a record outside the API, as Chargebee would: customers and orders get
    /// `deleted: true` and disappear from retrieve and default lists; items, item prices and
    /// item families are soft-deleted (`status: deleted`, `deleted: true`) and stay readable.
    /// Emits `<resource>_deleted` (`source` = `admin_console`).
    pub fn dashboard_delete(&self, resource: &str, id: &str) -> Result<Value, SbError> {
        if !matches!(
            resource,
            "customer" | "order" | "item" | "item_price" | "item_family"
        ) {
            return Err(SbError::new(
                400,
                "invalid_request",
                format!("{resource} cannot be deleted"),
            ));
        }
        let mut st = self.shared.lock();
        let mut data = st
            .table(resource)
            .and_then(|t| t.get(id))
            .cloned()
            .ok_or_else(|| SbError::not_found(format!("{resource} {id} not found")))?;
        data.insert("deleted".into(), json!(true));
        if resource != "customer" && resource != "order" {
            data.insert("status".into(), json!("deleted"));
        }
        st.touch(&mut data);
        if let Some(slot) = st.table_mut(resource).and_then(|t| t.get_mut(id)) {
            *slot = data.clone();
        }
        let actor = self.shared.admin_actor();
        st.emit_one(&format!("{resource}_deleted"), resource, &data, &actor);
        self.shared.flush(&mut st);
        Ok(Value::Object(data))
    }

    /// Mark an invoice paid (as a recorded offline payment) and, like Chargebee with Orders
    /// enabled, optionally generate its order (`order_type` = `system_generated`, `source` =
    /// `system`). Returns the generated order.
    pub fn pay_invoice(
        &self,
        invoice_id: &str,
        generate_order: bool,
    ) -> Result<Option<Value>, SbError> {
        let mut st = self.shared.lock();
        let mut inv =
            st.invoices.get(invoice_id).cloned().ok_or_else(|| {
                SbError::not_found(format!("Invoice not found for id {invoice_id}"))
            })?;
        let now = st.now();
        let total = inv.get("total").cloned().unwrap_or(json!(0));
        inv.insert("status".into(), json!("paid"));
        inv.insert("amount_paid".into(), total);
        inv.insert("amount_due".into(), json!(0));
        inv.insert("paid_at".into(), json!(now));
        st.touch(&mut inv);
        if let Some(slot) = st.invoices.get_mut(invoice_id) {
            *slot = inv.clone();
        }
        let admin = self.shared.admin_actor();
        st.emit_one("invoice_updated", "invoice", &inv, &admin);
        let mut order = None;
        if generate_order {
            let id = state::random_id("");
            let o = ops::order_from_invoice(&mut st, &id, &inv, "system_generated", "queued");
            st.insert("order", &id, o.clone());
            ops::link_order(&mut st, invoice_id, &o);
            let system = Actor {
                source: "system",
                user: None,
            };
            st.emit_one("order_created", "order", &o, &system);
            order = Some(Value::Object(o));
        }
        self.shared.flush(&mut st);
        Ok(order)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn error_response(err: &SbError) -> Response {
    json_response(err.status, &err.body(), None)
}

fn json_response(status: u16, body: &Value, extra: Option<(&'static str, String)>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, axum::Json(body.clone())).into_response();
    if let Some((name, value)) = extra {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

fn authorized(headers: &HeaderMap, api_key: &str) -> bool {
    let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let decoded = String::from_utf8_lossy(&decoded);
    let user = decoded.split_once(':').map_or(decoded.as_ref(), |(u, _)| u);
    subtle::ConstantTimeEq::ct_eq(user.as_bytes(), api_key.as_bytes()).into()
}

fn fault_response(kind: &FaultKind) -> Response {
    match kind {
        FaultKind::RateLimit { retry_after_secs } => {
            let mut err = SbError::new(429, "api_request_limit_exceeded", "Sorry, access has been blocked temporarily due to request count exceeding acceptable limits. Please try after some time.");
            err.error_type = Some("operation_failed");
            json_response(
                429,
                &err.body(),
                retry_after_secs.map(|s| ("retry-after", s.to_string())),
            )
        }
        FaultKind::ServerError { status: 500 } => {
            let mut err = SbError::new(
                500,
                "internal_error",
                "Sorry, something went wrong when trying to process the request.",
            );
            err.error_type = None;
            error_response(&err)
        }
        FaultKind::ServerError { status: 503 } => {
            let mut err = SbError::new(
                503,
                "internal_temporary_error",
                "Sorry, something went wrong when trying to process the request. Please try again.",
            );
            err.error_type = None;
            error_response(&err)
        }
        FaultKind::ServerError { status } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, "<html><body>upstream error</body></html>").into_response()
        }
        FaultKind::Latency(_) | FaultKind::LateAnswer(_) => StatusCode::OK.into_response(),
    }
}

async fn serve(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(path) = uri.path().strip_prefix(API_PREFIX) else {
        return error_response(&SbError::not_found("Sorry, we couldn't find that resource"));
    };
    let path = percent_decode(path);
    let (op, id) = match spec::resolve(method.as_str(), &path) {
        Ok(found) => found,
        Err(spec::Resolve::NotFound) => {
            return error_response(&SbError::not_found("Sorry, we couldn't find that resource"))
        }
        Err(spec::Resolve::MethodNotAllowed) => {
            return error_response(&SbError::new(
                405,
                "http_method_not_supported",
                "Sorry, the http method is not supported for this URL",
            ))
        }
    };
    let (latency, fault) = {
        let mut st = shared.lock();
        *st.request_counts.entry(op.id.to_string()).or_default() += 1;
        st.request_times.push(Instant::now());
        faults::take(&mut st.faults, op.id)
    };
    if let Some(FaultKind::Latency(delay)) = latency {
        tokio::time::sleep(delay).await;
    }
    if let Some(kind) = fault {
        return fault_response(&kind);
    }
    let response = answer(&shared, op, id, &headers, &uri, &body);
    if let Some(FaultKind::LateAnswer(delay)) = latency {
        // Handled already: a client that stops waiting loses only the answer.
        tokio::time::sleep(delay).await;
    }
    response
}

/// Authenticates, validates and executes one resolved API request.
fn answer(
    shared: &Shared,
    op: &'static spec::Operation,
    id: Option<String>,
    headers: &HeaderMap,
    uri: &Uri,
    body: &Bytes,
) -> Response {
    if !authorized(headers, &shared.api_key) {
        let mut err = SbError::new(
            401,
            "api_authentication_failed",
            "Sorry, authentication failed. Invalid api key",
        );
        err.error_type = None;
        return error_response(&err);
    }
    let raw = if op.is_write() {
        String::from_utf8_lossy(body).into_owned()
    } else {
        uri.query().unwrap_or_default().to_string()
    };
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(&raw) {
        Ok(p) => p,
        Err(_) => {
            return error_response(&SbError::new(
                400,
                "invalid_request",
                "The request body is not valid form encoding",
            ))
        }
    };
    let params = match state::validate(op, &pairs) {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let idempotency_key = if op.is_write() {
        headers
            .get(crate::clients::chargebee::IDEMPOTENCY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    } else {
        None
    };
    if idempotency_key
        .as_ref()
        .is_some_and(|k| k.len() > 100 || k.is_empty())
    {
        return error_response(&SbError::new(
            400,
            "invalid_request",
            "chargebee-idempotency-key : must be 1 to 100 characters",
        ));
    }
    let mut sorted = pairs.clone();
    sorted.sort();
    let fingerprint = format!(
        "{} {} {}",
        op.id,
        id.as_deref().unwrap_or(""),
        serde_urlencoded::to_string(&sorted).unwrap_or_default()
    );
    let mut st = shared.lock();
    if let Some(key) = &idempotency_key {
        let window = shared.options.idempotency_window;
        st.idempotency.retain(|_, a| a.at.elapsed() < window);
        if let Some(answer) = st.idempotency.get(key) {
            if answer.fingerprint == fingerprint {
                return json_response(
                    answer.status,
                    &answer.body,
                    Some((
                        crate::clients::chargebee::IDEMPOTENCY_REPLAYED_HEADER,
                        "true".into(),
                    )),
                );
            }
            return error_response(&SbError::new(
                400,
                "invalid_request",
                "The idempotency key was already used for a different request",
            ));
        }
    }
    let ctx = Ctx {
        actor: shared.api_actor(),
        currency: &shared.options.currency,
    };
    st.suppress_webhooks = headers
        .get("chargebee-event-webhook")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("all-disabled"));
    let result = ops::execute(&mut st, &ctx, op, id.as_deref(), &params);
    st.suppress_webhooks = false;
    let response = match result {
        Ok(body) => {
            if op.is_write() {
                *st.write_counts.entry(op.id.to_string()).or_default() += 1;
                if let Some(key) = idempotency_key {
                    st.idempotency.insert(
                        key,
                        state::IdempotentAnswer {
                            fingerprint,
                            status: 200,
                            body: body.clone(),
                            at: Instant::now(),
                        },
                    );
                }
            }
            json_response(200, &body, None)
        }
        Err(e) => error_response(&e),
    };
    shared.flush(&mut st);
    response
}
