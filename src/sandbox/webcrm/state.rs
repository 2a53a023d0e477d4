//! The sandbox's in-memory data and the handle tests use to inspect and steer it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, SecondsFormat, Timelike, Utc};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::clients::webcrm::{
    format_query_datetime, parse_webcrm_datetime, FieldKind, FieldSpec, Hook, HookEntity,
    HookEventType,
};

use super::options::{
    DateStyle, Fault, HookDelivery, HookPayloadShape, PutSemantics, SandboxEntity,
    WebcrmSandboxOptions,
};

/// A refusal: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// The path matches no webCRM route (answered like the router's fallback).
    pub unrouted: bool,
}

impl Reject {
    pub(super) fn bad_request(message: impl Into<String>) -> Reject {
        Reject {
            status: 400,
            body: json!({"Message": message.into(), "Type": "BadRequestException"}),
            unrouted: false,
        }
    }
    pub(super) fn invalid_field(field: &str, message: impl Into<String>) -> Reject {
        Reject {
            status: 400,
            body: json!({
                "Message": "The request is invalid.",
                "errors": { field: [message.into()] }
            }),
            unrouted: false,
        }
    }
    pub(super) fn not_found(message: impl Into<String>) -> Reject {
        Reject {
            status: 404,
            body: json!({"Message": message.into(), "Type": "NotFoundException"}),
            unrouted: false,
        }
    }
    pub(super) fn unrouted() -> Reject {
        Reject {
            status: 404,
            body: json!({"Message": "No HTTP resource was found that matches the request URI."}),
            unrouted: true,
        }
    }
}

/// One request the sandbox answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    /// HTTP method.
    pub method: String,
    /// Path as requested.
    pub path: String,
    /// Path with numeric segments replaced by `{id}`, e.g. `/Persons/{id}`.
    pub route: String,
    /// Status answered; 0 when the client went away before the answer.
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
}

/// An API PUT of a record and the API read it could have been based on. webCRM's PUT
/// replaces the whole record and checks no version, so a UI edit made between the two is
/// overwritten; the sandbox keeps these to show how wide that window is and when an edit
/// fell into it.
#[derive(Debug, Clone, PartialEq)]
pub struct PutAfterRead {
    pub entity: SandboxEntity,
    pub id: i64,
    /// Time from the API's last read of the record to the PUT being carried out (`None`
    /// when the API had not read it).
    pub gap: Option<Duration>,
    /// UI edits made inside that gap whose values the PUT replaced: (field, value the UI
    /// set, value the PUT left).
    pub overwritten: Vec<(String, Value, Value)>,
}

/// One hook notification the sandbox sent (or tried to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookDeliveryRecord {
    /// The hook's id.
    pub hook_id: i64,
    /// Entity collection.
    pub entity: HookEntity,
    /// Create / Update / Delete.
    pub event_type: HookEventType,
    /// The changed record.
    pub record_id: i64,
    /// Where it went.
    pub target_url: String,
    /// The body sent.
    pub body: String,
    /// Status the target answered, if it answered.
    pub status: Option<u16>,
    /// Transport error, if any.
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) struct PendingDelivery {
    hook_id: i64,
    entity: HookEntity,
    event_type: HookEventType,
    record_id: i64,
    target_url: String,
    body: String,
}

#[derive(Debug, Clone)]
struct StoredHook {
    entity: HookEntity,
    dto: Map<String, Value>,
}

#[derive(Debug, Clone)]
struct FaultPlan {
    fault: Fault,
    remaining: Option<u32>,
    percent: Option<u8>,
    include_login: bool,
    /// Only requests of this method and route (`POST /Persons`).
    request: Option<String>,
}

/// Who makes a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Actor {
    Api,
    Ui,
}

pub(super) struct Data {
    pub(super) options: WebcrmSandboxOptions,
    pub(super) api_token: String,
    records: BTreeMap<SandboxEntity, BTreeMap<i64, Map<String, Value>>>,
    next_id: BTreeMap<SandboxEntity, i64>,
    inactive_users: BTreeSet<i64>,
    line_links: BTreeMap<i64, i64>,
    linked_setup: Map<String, Value>,
    hooks: BTreeMap<i64, StoredHook>,
    next_hook_id: i64,
    tokens: HashMap<String, Instant>,
    calls: Vec<RecordedCall>,
    /// The API's last read of each record, and the UI edits made since (the fields set).
    api_reads: HashMap<(SandboxEntity, i64), Instant>,
    ui_edits: HashMap<(SandboxEntity, i64), Vec<(String, Value)>>,
    puts: Vec<PutAfterRead>,
    logins: u64,
    faults: Vec<FaultPlan>,
    window: VecDeque<Instant>,
    pending: Vec<PendingDelivery>,
    deliveries: Vec<HookDeliveryRecord>,
    rotate: usize,
    clock_offset: chrono::Duration,
}

pub(super) struct StateInner {
    data: Mutex<Data>,
    immediate_tx: Mutex<Option<mpsc::UnboundedSender<PendingDelivery>>>,
    http: reqwest::Client,
}

/// Handle on a running sandbox's data: inspect records and calls, make "UI" edits that
/// bypass the API, inject faults. Cheap to clone.
#[derive(Clone)]
pub struct WebcrmSandboxState {
    pub(super) inner: Arc<StateInner>,
}

impl std::fmt::Debug for WebcrmSandboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebcrmSandboxState").finish_non_exhaustive()
    }
}

fn default_linked_setup() -> Map<String, Value> {
    let v = json!({
        "QuotationLineLinkedSetupId": 1,
        "QuotationLineLinkedSetupEntityType": "Product",
        "QuotationLineLinkedSetupField1": 1,
        "QuotationLineLinkedSetupField2": 2,
        "QuotationLineLinkedSetupField3": 3,
        "QuotationLineLinkedSetupMemoField": 4,
        "QuotationLineLinkedSetupUseLinkedField1": true,
        "QuotationLineLinkedSetupUseLinkedField2": true,
        "QuotationLineLinkedSetupUseLinkedField3": false,
        "QuotationLineLinkedSetupUseQuantity": true,
        "QuotationLineLinkedSetupUseDiscount": true,
        "QuotationLineLinkedSetupUseVat": true,
        "QuotationLineLinkedSetupUseVatPerLine": true,
        "QuotationLineLinkedSetupPriceLabel": "Price",
        "QuotationLineLinkedSetupListPriceLabel": "List price",
        "QuotationLineLinkedSetupCostPriceLabel": "Cost price",
        "QuotationLineLinkedSetupQuantityLabel": "Quantity",
        "QuotationLineLinkedSetupIsUniqueValueRequired": true,
        "QuotationLineLinkedSetupLinkMode": "Regular",
        "QuotationLineLinkedSetupLookupMode": "DropdownLists",
        "QuotationLineLinkedSetupUseItemGroup": false,
        "QuotationLineLinkedSetupCostPriceEditMode": "Never"
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A random GUID-shaped token.
pub(super) fn random_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A random JWT-shaped access token.
fn random_jwt() -> String {
    use base64::Engine as _;
    let mut rng = rand::rng();
    let part = |n: usize, rng: &mut rand::rngs::ThreadRng| {
        let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let header =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    format!("{header}.{}.{}", part(48, &mut rng), part(32, &mut rng))
}

impl WebcrmSandboxState {
    pub(super) fn new(options: WebcrmSandboxOptions) -> Self {
        let api_token = options.api_token.clone().unwrap_or_else(random_guid);
        let next_id = SandboxEntity::ALL
            .into_iter()
            .map(|e| (e, e.first_id()))
            .collect();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        WebcrmSandboxState {
            inner: Arc::new(StateInner {
                data: Mutex::new(Data {
                    options,
                    api_token,
                    records: BTreeMap::new(),
                    next_id,
                    inactive_users: BTreeSet::new(),
                    line_links: BTreeMap::new(),
                    linked_setup: default_linked_setup(),
                    hooks: BTreeMap::new(),
                    next_hook_id: 1,
                    tokens: HashMap::new(),
                    calls: Vec::new(),
                    api_reads: HashMap::new(),
                    ui_edits: HashMap::new(),
                    puts: Vec::new(),
                    logins: 0,
                    faults: Vec::new(),
                    window: VecDeque::new(),
                    pending: Vec::new(),
                    deliveries: Vec::new(),
                    rotate: 0,
                    clock_offset: chrono::Duration::zero(),
                }),
                immediate_tx: Mutex::new(None),
                http,
            }),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Data> {
        self.inner.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ----- inspection ----------------------------------------------------------------

    /// The application token `ApiLogin` accepts.
    pub fn api_token(&self) -> String {
        self.lock().api_token.clone()
    }

    /// A copy of the current options.
    pub fn options(&self) -> WebcrmSandboxOptions {
        self.lock().options.clone()
    }

    /// Changes options at run time (e.g. the hook payload shape or date style).
    pub fn configure(&self, change: impl FnOnce(&mut WebcrmSandboxOptions)) {
        change(&mut self.lock().options);
    }

    /// A record as GET would answer it, or `None`.
    pub fn record(&self, entity: SandboxEntity, id: i64) -> Option<Map<String, Value>> {
        let data = self.lock();
        data.get(entity, id).map(|r| data.render(entity, r))
    }

    /// A record as the API reads it (`GET /{Entity}/{id}`); the read is remembered, so a
    /// later PUT can be measured against it.
    pub(super) fn api_read(&self, entity: SandboxEntity, id: i64) -> Option<Map<String, Value>> {
        let mut data = self.lock();
        let record = data.get(entity, id).map(|r| data.render(entity, r))?;
        data.api_reads.insert((entity, id), Instant::now());
        data.ui_edits.remove(&(entity, id));
        Some(record)
    }

    /// Every API PUT so far, with the read it followed and any UI edit it overwrote.
    pub fn puts_after_reads(&self) -> Vec<PutAfterRead> {
        self.lock().puts.clone()
    }

    /// A record decoded into a client DTO.
    pub fn record_as<T: DeserializeOwned>(&self, entity: SandboxEntity, id: i64) -> Option<T> {
        self.record(entity, id)
            .and_then(|m| serde_json::from_value(Value::Object(m)).ok())
    }

    /// Every record of an entity, in id order, as GET would answer them.
    pub fn records(&self, entity: SandboxEntity) -> Vec<Map<String, Value>> {
        let data = self.lock();
        data.table(entity)
            .map(|t| t.values().map(|r| data.render(entity, r)).collect())
            .unwrap_or_default()
    }

    /// Number of records of an entity.
    pub fn count(&self, entity: SandboxEntity) -> usize {
        self.lock().table(entity).map_or(0, BTreeMap::len)
    }

    /// The catalogue item a quotation line was written with (`QuotationLineLinkedDataId`).
    pub fn quotation_line_link(&self, line_id: i64) -> Option<i64> {
        self.lock().line_links.get(&line_id).copied()
    }

    /// Every request answered so far.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.lock().calls.clone()
    }

    /// Forgets the recorded calls (and deliveries).
    pub fn reset_calls(&self) {
        let mut data = self.lock();
        data.calls.clear();
        data.deliveries.clear();
    }

    /// Requests with this method and route (`/Persons/{id}`) answered with a 2xx.
    pub fn successful_calls(&self, method: &str, route: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| {
                c.method.eq_ignore_ascii_case(method)
                    && c.route == route
                    && (200..300).contains(&c.status)
            })
            .count()
    }

    /// Applied API writes (2xx) of `method` to an entity's collection or records.
    pub fn write_count(&self, entity: SandboxEntity, method: &str) -> usize {
        let item = format!("{}/{{id}}", entity.path());
        self.lock()
            .calls
            .iter()
            .filter(|c| {
                c.method.eq_ignore_ascii_case(method)
                    && (c.route == entity.path() || c.route == item)
                    && (200..300).contains(&c.status)
            })
            .count()
    }

    /// All applied API writes (POST, PUT, PATCH, DELETE with a 2xx), logins excluded.
    pub fn total_writes(&self) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| {
                c.method != "GET" && c.route != "/Auth/ApiLogin" && (200..300).contains(&c.status)
            })
            .count()
    }

    /// How many `ApiLogin` calls succeeded.
    pub fn login_count(&self) -> u64 {
        self.lock().logins
    }

    /// Hook subscriptions, as GET would answer them.
    pub fn hooks(&self) -> Vec<(HookEntity, Hook)> {
        let data = self.lock();
        data.hooks
            .values()
            .filter_map(|h| {
                serde_json::from_value(Value::Object(data.render_hook(&h.dto)))
                    .ok()
                    .map(|dto| (h.entity, dto))
            })
            .collect()
    }

    /// Hook notifications sent so far.
    pub fn hook_deliveries(&self) -> Vec<HookDeliveryRecord> {
        self.lock().deliveries.clone()
    }

    /// Number of notifications waiting (manual delivery).
    pub fn pending_hook_count(&self) -> usize {
        self.lock().pending.len()
    }

    /// Loses every queued notification (manual delivery), as a network failure would;
    /// returns how many were lost.
    pub fn drop_pending_hooks(&self) -> usize {
        std::mem::take(&mut self.lock().pending).len()
    }

    // ----- faults and clock ----------------------------------------------------------

    /// The next `n` API requests (not logins) fail with `fault`.
    pub fn fail_next(&self, n: u32, fault: Fault) {
        self.lock().faults.push(FaultPlan {
            fault,
            remaining: Some(n),
            percent: None,
            include_login: false,
            request: None,
        });
    }

    /// The next `n` requests including logins fail with `fault`.
    pub fn fail_next_including_login(&self, n: u32, fault: Fault) {
        self.lock().faults.push(FaultPlan {
            fault,
            remaining: Some(n),
            percent: None,
            include_login: true,
            request: None,
        });
    }

    /// Each API request (not logins) fails with `fault` with this probability (0-100).
    pub fn fail_percent(&self, percent: u8, fault: Fault) {
        self.lock().faults.push(FaultPlan {
            fault,
            remaining: None,
            percent: Some(percent.min(100)),
            include_login: false,
            request: None,
        });
    }

    /// The next `n` requests of one method and route (`"POST /Persons"`, ids as `{id}`)
    /// fail with `fault`.
    pub fn fail_next_request(&self, request: &str, n: u32, fault: Fault) {
        self.lock().faults.push(FaultPlan {
            fault,
            remaining: Some(n),
            percent: None,
            include_login: false,
            request: Some(request.to_owned()),
        });
    }

    /// Removes every fault plan.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Every access token handed out so far (tests check that none reaches a log).
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.lock().tokens.keys().cloned().collect()
    }

    /// Expires every access token handed out so far (the next call gets a 401).
    pub fn expire_access_tokens(&self) {
        let mut data = self.lock();
        let past = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now);
        for expiry in data.tokens.values_mut() {
            *expiry = past;
        }
    }

    /// Moves the sandbox clock (used for `*At` stamps) forward.
    pub fn advance_clock(&self, by: Duration) {
        let mut data = self.lock();
        let by = chrono::Duration::from_std(by).unwrap_or_else(|_| chrono::Duration::zero());
        data.clock_offset += by;
    }

    /// The sandbox's current time (whole seconds, as stamps are written).
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now()
    }

    // ----- seeding and UI edits ------------------------------------------------------

    /// Creates a record as a user would in webCRM's UI: no API call is counted, the
    /// stamps name the UI user, hooks fire. `fields` is a DTO-shaped JSON object.
    pub fn ui_create(&self, entity: SandboxEntity, fields: Value) -> Result<i64, Reject> {
        self.create(entity, fields, Actor::Ui)
    }

    /// Changes some properties of a record as a UI user would (hooks fire).
    pub fn ui_update(&self, entity: SandboxEntity, id: i64, changes: Value) -> Result<(), Reject> {
        self.update(entity, id, changes, Actor::Ui, PutSemantics::Merge)
    }

    /// Deletes a record as a UI user would (possible for every entity; hooks fire).
    pub fn ui_delete(&self, entity: SandboxEntity, id: i64) -> Result<(), Reject> {
        self.delete(entity, id, Actor::Ui)
    }

    /// Marks a user active or inactive (for `GET /Users/AllActive`).
    pub fn set_user_active(&self, id: i64, active: bool) {
        let mut data = self.lock();
        if active {
            data.inactive_users.remove(&id);
        } else {
            data.inactive_users.insert(id);
        }
    }

    // ----- writes (API and UI) -------------------------------------------------------

    pub(super) fn create(
        &self,
        entity: SandboxEntity,
        body: Value,
        actor: Actor,
    ) -> Result<i64, Reject> {
        let deliveries = {
            let mut data = self.lock();
            let fields = data.validate(entity, &body)?;
            let id = data.allocate_id(entity);
            let mut record = Map::new();
            for (k, v) in fields {
                record.insert(k, v);
            }
            data.apply_rules(entity, id, None, &mut record)?;
            let now = data.now_text();
            let who = data.actor_name(actor);
            record.insert(entity.id_field().to_owned(), Value::from(id));
            if entity.has_audit_fields() {
                let p = entity.prefix();
                record.insert(format!("{p}CreatedAt"), Value::String(now.clone()));
                record.insert(format!("{p}CreatedBy"), Value::String(who.clone()));
                record.insert(format!("{p}UpdatedAt"), Value::String(now));
                record.insert(format!("{p}UpdatedBy"), Value::String(who));
            }
            data.records.entry(entity).or_default().insert(id, record);
            let deliveries = data.hook_deliveries_for(entity, id, HookEventType::Create);
            (id, deliveries)
        };
        let (id, deliveries) = deliveries;
        self.dispatch(deliveries);
        Ok(id)
    }

    pub(super) fn update(
        &self,
        entity: SandboxEntity,
        id: i64,
        body: Value,
        actor: Actor,
        semantics: PutSemantics,
    ) -> Result<(), Reject> {
        let deliveries = {
            let mut data = self.lock();
            let Some(existing) = data.get(entity, id).cloned() else {
                return Err(Reject::not_found(format!(
                    "{} with id {id} was not found",
                    entity.prefix()
                )));
            };
            let fields = data.validate(entity, &body)?;
            let mut record = match semantics {
                PutSemantics::Merge => existing.clone(),
                PutSemantics::Replace => {
                    // Only system-maintained properties survive a replace.
                    let mut kept = Map::new();
                    for (k, v) in &existing {
                        if is_system_field(entity, k) {
                            kept.insert(k.clone(), v.clone());
                        }
                    }
                    kept
                }
            };
            for (k, v) in &fields {
                if v.is_null() {
                    record.remove(k);
                } else {
                    record.insert(k.clone(), v.clone());
                }
            }
            data.apply_rules(entity, id, Some(&existing), &mut record)?;
            data.note_update(entity, id, actor, fields, &record);
            if entity.has_audit_fields() {
                let p = entity.prefix();
                let now = data.now_text();
                let who = data.actor_name(actor);
                record.insert(format!("{p}UpdatedAt"), Value::String(now));
                record.insert(format!("{p}UpdatedBy"), Value::String(who));
            }
            data.records.entry(entity).or_default().insert(id, record);
            data.hook_deliveries_for(entity, id, HookEventType::Update)
        };
        self.dispatch(deliveries);
        Ok(())
    }

    pub(super) fn delete(
        &self,
        entity: SandboxEntity,
        id: i64,
        _actor: Actor,
    ) -> Result<(), Reject> {
        let deliveries = {
            let mut data = self.lock();
            if data.get(entity, id).is_none() {
                return Err(Reject::not_found(format!(
                    "{} with id {id} was not found",
                    entity.prefix()
                )));
            }
            // Hooks report the record as it was.
            let deliveries = data.hook_deliveries_for(entity, id, HookEventType::Delete);
            if let Some(t) = data.records.get_mut(&entity) {
                t.remove(&id);
            }
            data.line_links.remove(&id);
            deliveries
        };
        self.dispatch(deliveries);
        Ok(())
    }

    // ----- hooks ---------------------------------------------------------------------

    pub(super) fn set_immediate_sender(&self, tx: mpsc::UnboundedSender<PendingDelivery>) {
        *self
            .inner
            .immediate_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(tx);
    }

    fn dispatch(&self, deliveries: Vec<PendingDelivery>) {
        if deliveries.is_empty() {
            return;
        }
        let mode = self.lock().options.hook_delivery;
        match mode {
            HookDelivery::Manual => self.lock().pending.extend(deliveries),
            HookDelivery::Immediate => {
                let tx = self
                    .inner
                    .immediate_tx
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                match tx {
                    Some(tx) => {
                        for d in deliveries {
                            let _ = tx.send(d);
                        }
                    }
                    None => self.lock().pending.extend(deliveries),
                }
            }
        }
    }

    /// Sends every queued notification (manual delivery), shuffled when the options ask
    /// for reordering, and returns what happened.
    pub async fn deliver_pending_hooks(&self) -> Vec<HookDeliveryRecord> {
        let mut batch = std::mem::take(&mut self.lock().pending);
        if self.lock().options.hook_reorder {
            batch.shuffle(&mut rand::rng());
        }
        let mut out = Vec::with_capacity(batch.len());
        for d in batch {
            out.push(self.send_delivery(d).await);
        }
        out
    }

    pub(super) async fn send_delivery(&self, d: PendingDelivery) -> HookDeliveryRecord {
        let mut request = self.inner.http.post(&d.target_url);
        if !d.body.is_empty() {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(d.body.clone());
        }
        let (status, error) = match request.send().await {
            Ok(resp) => (Some(resp.status().as_u16()), None),
            Err(e) => (None, Some(e.without_url().to_string())),
        };
        let record = HookDeliveryRecord {
            hook_id: d.hook_id,
            entity: d.entity,
            event_type: d.event_type,
            record_id: d.record_id,
            target_url: d.target_url,
            body: d.body,
            status,
            error,
        };
        self.lock().deliveries.push(record.clone());
        record
    }

    pub(super) fn reorder_enabled(&self) -> bool {
        self.lock().options.hook_reorder
    }

    pub(super) fn create_hook(&self, entity: HookEntity, body: &Value) -> Result<i64, Reject> {
        let mut data = self.lock();
        let mut dto = validate_hook(entity, body)?;
        let id = data.next_hook_id;
        data.next_hook_id += 1;
        let now = data.now_text();
        let who = data.options.api_user_name.clone();
        dto.insert("Id".into(), Value::from(id));
        dto.insert("CreatedAt".into(), Value::String(now.clone()));
        dto.insert("CreatedBy".into(), Value::String(who.clone()));
        dto.insert("UpdatedAt".into(), Value::String(now));
        dto.insert("UpdatedBy".into(), Value::String(who));
        data.hooks.insert(id, StoredHook { entity, dto });
        Ok(id)
    }

    pub(super) fn update_hook(
        &self,
        entity: HookEntity,
        id: i64,
        body: &Value,
    ) -> Result<(), Reject> {
        let mut data = self.lock();
        let now = data.now_text();
        let who = data.options.api_user_name.clone();
        let Some(stored) = data.hooks.get_mut(&id).filter(|h| h.entity == entity) else {
            return Err(Reject::not_found(format!("hook {id} was not found")));
        };
        let mut dto = validate_hook(entity, body)?;
        for k in ["CreatedAt", "CreatedBy"] {
            if let Some(v) = stored.dto.get(k) {
                dto.insert(k.into(), v.clone());
            }
        }
        dto.insert("Id".into(), Value::from(id));
        dto.insert("UpdatedAt".into(), Value::String(now));
        dto.insert("UpdatedBy".into(), Value::String(who));
        stored.dto = dto;
        Ok(())
    }

    pub(super) fn delete_hook(&self, entity: HookEntity, id: i64) -> Result<(), Reject> {
        let mut data = self.lock();
        match data.hooks.get(&id) {
            Some(h) if h.entity == entity => {
                data.hooks.remove(&id);
                Ok(())
            }
            _ => Err(Reject::not_found(format!("hook {id} was not found"))),
        }
    }

    pub(super) fn get_hook(
        &self,
        entity: HookEntity,
        id: i64,
    ) -> Result<Map<String, Value>, Reject> {
        let data = self.lock();
        match data.hooks.get(&id) {
            Some(h) if h.entity == entity => Ok(data.render_hook(&h.dto)),
            _ => Err(Reject::not_found(format!("hook {id} was not found"))),
        }
    }

    pub(super) fn list_hooks(&self, entity: HookEntity) -> Vec<Map<String, Value>> {
        let data = self.lock();
        data.hooks
            .values()
            .filter(|h| h.entity == entity)
            .map(|h| data.render_hook(&h.dto))
            .collect()
    }

    // ----- request plumbing ----------------------------------------------------------

    pub(super) fn record_call(&self, call: RecordedCall) {
        self.lock().calls.push(call);
    }

    /// A fault to apply to this request, if a plan says so.
    pub(super) fn take_fault(&self, is_login: bool, request: &str) -> Option<Fault> {
        let mut data = self.lock();
        let mut rng = rand::rng();
        let mut chosen = None;
        for plan in data.faults.iter_mut() {
            if is_login && !plan.include_login {
                continue;
            }
            if plan.request.as_deref().is_some_and(|r| r != request) {
                continue;
            }
            if let Some(remaining) = plan.remaining.as_mut() {
                if *remaining > 0 {
                    *remaining -= 1;
                    chosen = Some(plan.fault.clone());
                    break;
                }
            } else if let Some(p) = plan.percent {
                if rng.random_range(0..100u8) < p {
                    chosen = Some(plan.fault.clone());
                    break;
                }
            }
        }
        data.faults.retain(|p| p.remaining != Some(0));
        chosen
    }

    /// Sliding-window limit: `Some(retry_after_secs)` when this request is over budget.
    pub(super) fn rate_limited(&self) -> Option<u64> {
        let mut data = self.lock();
        let limit = data.options.rate_limit_per_minute?;
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        while data
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= minute)
        {
            data.window.pop_front();
        }
        if data.window.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
            let oldest = data.window.front().copied().unwrap_or(now);
            let wait = minute.saturating_sub(now.duration_since(oldest));
            return Some(wait.as_secs().max(1));
        }
        data.window.push_back(now);
        None
    }

    /// `Ok` when the bearer token is valid; `Err(reason)` otherwise.
    pub(super) fn check_token(&self, token: Option<&str>) -> Result<(), &'static str> {
        let data = self.lock();
        let token = token.ok_or("missing")?;
        match data.tokens.get(token) {
            Some(expiry) if *expiry > Instant::now() => Ok(()),
            Some(_) => Err("expired"),
            None => Err("invalid"),
        }
    }

    /// Issues an access token for a correct application token.
    pub(super) fn login(&self, auth_code: &str) -> Option<(String, u64)> {
        let mut data = self.lock();
        if auth_code.trim() != data.api_token {
            return None;
        }
        let token = random_jwt();
        let lifetime = data.options.token_lifetime;
        data.tokens.insert(token.clone(), Instant::now() + lifetime);
        data.logins += 1;
        Some((token, lifetime.as_secs()))
    }
}

/// Properties the server maintains: never taken from a request body.
fn is_system_field(entity: SandboxEntity, name: &str) -> bool {
    let p = entity.prefix();
    name == entity.id_field()
        || (entity.has_audit_fields()
            && [
                "CreatedAt",
                "CreatedBy",
                "UpdatedAt",
                "UpdatedBy",
                "History",
            ]
            .iter()
            .any(|s| name.len() == p.len() + s.len() && name.starts_with(p) && name.ends_with(s)))
}

fn validate_hook(entity: HookEntity, body: &Value) -> Result<Map<String, Value>, Reject> {
    let Some(obj) = body.as_object() else {
        return Err(Reject::bad_request("a hook object is required"));
    };
    let mut out = Map::new();
    let target = obj.get("TargetUrl").and_then(Value::as_str).unwrap_or("");
    match url::Url::parse(target) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => {
            return Err(Reject::invalid_field(
                "TargetUrl",
                "an absolute http(s) URL is required",
            ))
        }
    }
    out.insert("TargetUrl".into(), Value::String(target.to_owned()));
    let Some(enabled) = obj.get("IsEnabled").and_then(Value::as_bool) else {
        return Err(Reject::invalid_field(
            "IsEnabled",
            "The IsEnabled field is required.",
        ));
    };
    out.insert("IsEnabled".into(), Value::Bool(enabled));
    let Some(filter) = obj.get("Filter").and_then(Value::as_array) else {
        return Err(Reject::invalid_field(
            "Filter",
            "The Filter field is required.",
        ));
    };
    for f in filter {
        let ok = f
            .as_str()
            .is_some_and(|s| entity.allowed_filters().contains(&s));
        if !ok {
            return Err(Reject::invalid_field(
                "Filter",
                format!("invalid filter value {f}"),
            ));
        }
    }
    out.insert("Filter".into(), Value::Array(filter.clone()));
    match obj.get("EventType") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if ["Create", "Update", "Delete"].contains(&s.as_str()) => {
            out.insert("EventType".into(), Value::String(s.clone()));
        }
        Some(other) => {
            return Err(Reject::invalid_field(
                "EventType",
                format!("invalid event type {other}"),
            ))
        }
    }
    Ok(out)
}

impl Data {
    fn table(&self, entity: SandboxEntity) -> Option<&BTreeMap<i64, Map<String, Value>>> {
        self.records.get(&entity)
    }

    /// Keeps what a lost update needs: the UI's edits since the API's last read of the
    /// record, and for an API PUT, how long after that read it came and which of those
    /// edits it replaced.
    fn note_update(
        &mut self,
        entity: SandboxEntity,
        id: i64,
        actor: Actor,
        set: Vec<(String, Value)>,
        after: &Map<String, Value>,
    ) {
        let key = (entity, id);
        match actor {
            Actor::Ui => self.ui_edits.entry(key).or_default().extend(set),
            Actor::Api => {
                let gap = self.api_reads.get(&key).map(|at| at.elapsed());
                // The UI's last value of each field it edited since the read.
                let edited: BTreeMap<String, Value> = self
                    .ui_edits
                    .remove(&key)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                let overwritten = edited
                    .into_iter()
                    .filter_map(|(field, value)| {
                        let left = after.get(&field).cloned().unwrap_or(Value::Null);
                        (left != value).then_some((field, value, left))
                    })
                    .collect();
                self.puts.push(PutAfterRead {
                    entity,
                    id,
                    gap,
                    overwritten,
                });
            }
        }
    }

    pub(super) fn get(&self, entity: SandboxEntity, id: i64) -> Option<&Map<String, Value>> {
        self.records.get(&entity).and_then(|t| t.get(&id))
    }

    /// Records of an entity in id order (raw).
    pub(super) fn raw_records(
        &self,
        entity: SandboxEntity,
    ) -> impl Iterator<Item = &Map<String, Value>> {
        self.records
            .get(&entity)
            .into_iter()
            .flat_map(|t| t.values())
    }

    pub(super) fn is_user_active(&self, id: i64) -> bool {
        !self.inactive_users.contains(&id)
    }

    pub(super) fn linked_setup(&self) -> Map<String, Value> {
        self.linked_setup.clone()
    }

    fn allocate_id(&mut self, entity: SandboxEntity) -> i64 {
        let next = self.next_id.entry(entity).or_insert(entity.first_id());
        let id = *next;
        *next += 1;
        id
    }

    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now() + self.clock_offset;
        now.with_nanosecond(0).unwrap_or(now)
    }

    fn now_text(&self) -> String {
        canonical(&self.now())
    }

    fn actor_name(&self, actor: Actor) -> String {
        match actor {
            Actor::Api => self.options.api_user_name.clone(),
            Actor::Ui => self.options.ui_user_name.clone(),
        }
    }

    /// Checks a DTO body against the write definition: known properties of the right type
    /// and length; unknown properties are dropped (as webCRM's model binding does).
    fn validate(
        &self,
        entity: SandboxEntity,
        body: &Value,
    ) -> Result<Vec<(String, Value)>, Reject> {
        let Some(obj) = body.as_object() else {
            return Err(Reject::bad_request(format!(
                "a {} object is required",
                entity.prefix()
            )));
        };
        let fields = entity.write_fields();
        let mut out = Vec::new();
        for (name, value) in obj {
            let Some(spec) = fields.iter().find(|f| f.name == name) else {
                continue;
            };
            if is_system_field(entity, name) {
                continue;
            }
            out.push((name.clone(), check_value(spec, value)?));
        }
        Ok(out)
    }

    /// Entity rules webCRM enforces (as far as they are known).
    fn apply_rules(
        &mut self,
        entity: SandboxEntity,
        id: i64,
        existing: Option<&Map<String, Value>>,
        record: &mut Map<String, Value>,
    ) -> Result<(), Reject> {
        let text = |r: &Map<String, Value>, k: &str| -> String {
            r.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim()
                .to_owned()
        };
        let int = |r: &Map<String, Value>, k: &str| -> i64 {
            r.get(k).and_then(Value::as_i64).unwrap_or(0)
        };
        match entity {
            SandboxEntity::Person => {
                if text(record, "PersonLastName").is_empty() {
                    return Err(Reject::invalid_field(
                        "PersonLastName",
                        "PersonLastName is mandatory",
                    ));
                }
                match existing {
                    // The organisation of a person cannot be changed through the API.
                    Some(old) => match old.get("PersonOrganisationId") {
                        Some(v) => {
                            record.insert("PersonOrganisationId".into(), v.clone());
                        }
                        None => {
                            record.remove("PersonOrganisationId");
                        }
                    },
                    None => {
                        let org = int(record, "PersonOrganisationId");
                        if org != 0 && self.get(SandboxEntity::Organisation, org).is_none() {
                            return Err(Reject::invalid_field(
                                "PersonOrganisationId",
                                format!("organisation {org} does not exist"),
                            ));
                        }
                    }
                }
                let name = ["PersonFirstName", "PersonMiddleName", "PersonLastName"]
                    .iter()
                    .map(|k| text(record, k))
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                record.insert("PersonName".into(), Value::String(name));
            }
            SandboxEntity::Organisation => {
                let name = text(record, "OrganisationName");
                let compare: String = name
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .flat_map(char::to_uppercase)
                    .collect();
                record.insert("OrganisationCompareName".into(), Value::String(compare));
            }
            SandboxEntity::Opportunity => {
                let org = int(record, "OpportunityOrganisationId");
                if org != 0 && self.get(SandboxEntity::Organisation, org).is_none() {
                    return Err(Reject::invalid_field(
                        "OpportunityOrganisationId",
                        format!("organisation {org} does not exist"),
                    ));
                }
            }
            SandboxEntity::QuotationLine => {
                let opp = int(record, "QuotationLineOpportunityId");
                let Some(opportunity) = self.get(SandboxEntity::Opportunity, opp).cloned() else {
                    return Err(Reject::invalid_field(
                        "QuotationLineOpportunityId",
                        format!("opportunity {opp} does not exist"),
                    ));
                };
                for (from, to) in [
                    ("OpportunityOrganisationId", "QuotationLineOrganisationId"),
                    ("OpportunityPersonId", "QuotationLinePersonId"),
                ] {
                    if let Some(v) = opportunity.get(from) {
                        record.insert(to.into(), v.clone());
                    }
                }
                let link = record
                    .remove("QuotationLineLinkedDataId")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(0);
                if link != 0 {
                    let Some(item) = self.get(SandboxEntity::LinkedData, link).cloned() else {
                        return Err(Reject::invalid_field(
                            "QuotationLineLinkedDataId",
                            format!("catalogue item {link} does not exist"),
                        ));
                    };
                    for n in 1..=9 {
                        let from = format!("QuotationLineLinkedDataItemData{n}");
                        let to = format!("QuotationLineData{n}");
                        if let Some(v) = item.get(&from) {
                            record.entry(to).or_insert_with(|| v.clone());
                        }
                    }
                    if let Some(p) = item.get("QuotationLineLinkedDataItemPrice") {
                        record
                            .entry("QuotationLinePrice")
                            .or_insert_with(|| p.clone());
                    }
                    self.line_links.insert(id, link);
                }
            }
            SandboxEntity::LinkedData => {
                for n in 1..=9 {
                    let k = format!("QuotationLineLinkedDataItemData{n}");
                    if record.get(&k).and_then(Value::as_str) == Some("") {
                        return Err(Reject::invalid_field(&k, "empty values are not allowed"));
                    }
                }
                record
                    .entry("QuotationLineLinkedDataItemEntityType")
                    .or_insert_with(|| Value::String("Product".into()));
            }
            SandboxEntity::User => {}
        }
        Ok(())
    }

    /// A stored record as the API answers it: every property of the read DTO, unset ones
    /// as webCRM writes them (null text, zero numbers, `DateTime.MinValue`).
    pub(super) fn render(
        &self,
        entity: SandboxEntity,
        record: &Map<String, Value>,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        for f in entity.read_fields() {
            let v = match (record.get(f.name), f.kind) {
                (Some(Value::String(s)), FieldKind::DateTime) => {
                    Value::String(self.format_date_text(s))
                }
                (Some(v), _) => v.clone(),
                (None, FieldKind::Text) => Value::Null,
                (None, FieldKind::Int32 | FieldKind::Int64) => Value::from(0),
                (None, FieldKind::Double) => json!(0.0),
                (None, FieldKind::Bool) => Value::Bool(false),
                (None, FieldKind::DateTime) => Value::String(self.min_value()),
            };
            out.insert(f.name.to_owned(), v);
        }
        out
    }

    fn render_hook(&self, dto: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for name in Hook::FIELDS {
            let v = match dto.get(*name) {
                Some(Value::String(s)) if name.ends_with("At") => {
                    Value::String(self.format_date_text(s))
                }
                Some(v) => v.clone(),
                None => Value::Null,
            };
            out.insert((*name).to_owned(), v);
        }
        out
    }

    fn format_date_text(&self, canonical_text: &str) -> String {
        match parse_webcrm_datetime(canonical_text) {
            Ok(Some(dt)) => self.format_date(&dt),
            _ => self.min_value(),
        }
    }

    pub(super) fn format_date(&self, dt: &DateTime<Utc>) -> String {
        match self.options.date_style {
            DateStyle::Offset(minutes) => match FixedOffset::east_opt(minutes * 60) {
                Some(offset) => dt
                    .with_timezone(&offset)
                    .to_rfc3339_opts(SecondsFormat::AutoSi, false),
                None => dt.to_rfc3339_opts(SecondsFormat::AutoSi, false),
            },
            DateStyle::Zulu => dt.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            DateStyle::Naive => dt.format("%Y-%m-%dT%H:%M:%S").to_string(),
            DateStyle::DotNetRoundTrip => format_query_datetime(dt),
        }
    }

    fn min_value(&self) -> String {
        match self.options.date_style {
            DateStyle::Offset(_) => "0001-01-01T00:00:00+00:00".to_owned(),
            DateStyle::Zulu => "0001-01-01T00:00:00Z".to_owned(),
            DateStyle::Naive => "0001-01-01T00:00:00".to_owned(),
            DateStyle::DotNetRoundTrip => "0001-01-01T00:00:00.0000000Z".to_owned(),
        }
    }

    fn hook_deliveries_for(
        &mut self,
        entity: SandboxEntity,
        id: i64,
        event: HookEventType,
    ) -> Vec<PendingDelivery> {
        let Some(hook_entity) = entity.hook_entity() else {
            return Vec::new();
        };
        let snapshot = self.get(entity, id).map(|r| self.render(entity, r));
        let matching: Vec<(i64, String)> = self
            .hooks
            .iter()
            .filter(|(_, h)| h.entity == hook_entity)
            .filter(|(_, h)| h.dto.get("IsEnabled").and_then(Value::as_bool) == Some(true))
            .filter(
                |(_, h)| match h.dto.get("EventType").and_then(Value::as_str) {
                    Some(t) => t == event.as_str(),
                    None => true,
                },
            )
            .filter_map(|(hid, h)| {
                h.dto
                    .get("TargetUrl")
                    .and_then(Value::as_str)
                    .map(|u| (*hid, u.to_owned()))
            })
            .collect();
        let mut out = Vec::new();
        for (hook_id, target_url) in matching {
            let body = self.hook_body(hook_id, entity, id, event, snapshot.as_ref());
            let d = PendingDelivery {
                hook_id,
                entity: hook_entity,
                event_type: event,
                record_id: id,
                target_url,
                body,
            };
            if self.options.hook_duplicates {
                out.push(d.clone());
            }
            out.push(d);
        }
        out
    }

    fn hook_body(
        &mut self,
        hook_id: i64,
        entity: SandboxEntity,
        id: i64,
        event: HookEventType,
        snapshot: Option<&Map<String, Value>>,
    ) -> String {
        let shape = match self.options.hook_payload {
            HookPayloadShape::Rotate => {
                const SHAPES: [HookPayloadShape; 5] = [
                    HookPayloadShape::Envelope,
                    HookPayloadShape::Dto,
                    HookPayloadShape::IdOnly,
                    HookPayloadShape::IdList,
                    HookPayloadShape::Empty,
                ];
                let s = SHAPES[self.rotate % SHAPES.len()];
                self.rotate += 1;
                s
            }
            other => other,
        };
        match shape {
            HookPayloadShape::Envelope | HookPayloadShape::Rotate => json!({
                "HookId": hook_id,
                "EventType": event.as_str(),
                "EntityType": entity.prefix(),
                "Id": id,
                "OccurredAt": self.format_date(&self.now()),
            })
            .to_string(),
            HookPayloadShape::Dto => snapshot
                .map(|s| Value::Object(s.clone()).to_string())
                .unwrap_or_else(|| json!({ entity.id_field(): id }).to_string()),
            HookPayloadShape::IdOnly => id.to_string(),
            HookPayloadShape::IdList => json!([id]).to_string(),
            HookPayloadShape::Empty => String::new(),
        }
    }
}

/// Canonical storage form of an instant.
fn canonical(dt: &DateTime<Utc>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Checks one property value against its declared type; returns the value to store
/// (`Null` means "unset").
fn check_value(spec: &FieldSpec, value: &Value) -> Result<Value, Reject> {
    let bad = |what: &str| {
        Reject::invalid_field(
            spec.name,
            format!("Error converting value {value} to type '{what}'."),
        )
    };
    Ok(match (spec.kind, value) {
        (_, Value::Null) => Value::Null,
        (FieldKind::Text, Value::String(s)) => {
            if let Some(max) = spec.max_length {
                if s.chars().count() > usize::try_from(max).unwrap_or(usize::MAX) {
                    return Err(Reject::invalid_field(
                        spec.name,
                        format!(
                            "The field {} must be a string with a maximum length of {max}.",
                            spec.name
                        ),
                    ));
                }
            }
            Value::String(s.clone())
        }
        // Json.NET turns numbers and booleans into text for a string property.
        (FieldKind::Text, Value::Number(n)) => Value::String(n.to_string()),
        (FieldKind::Text, Value::Bool(b)) => {
            Value::String(if *b { "True" } else { "False" }.into())
        }
        (FieldKind::Text, _) => return Err(bad("System.String")),
        (FieldKind::Int32, Value::Number(n)) => {
            match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
                Some(i) => Value::from(i),
                None => return Err(bad("System.Int32")),
            }
        }
        (FieldKind::Int64, Value::Number(n)) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => return Err(bad("System.Int64")),
        },
        (FieldKind::Int32 | FieldKind::Int64, _) => return Err(bad("System.Int32")),
        (FieldKind::Double, Value::Number(n)) => match n.as_f64() {
            Some(f) => json!(f),
            None => return Err(bad("System.Double")),
        },
        (FieldKind::Double, _) => return Err(bad("System.Double")),
        (FieldKind::Bool, Value::Bool(b)) => Value::Bool(*b),
        (FieldKind::Bool, _) => return Err(bad("System.Boolean")),
        (FieldKind::DateTime, Value::String(s)) => match parse_webcrm_datetime(s) {
            Ok(Some(dt)) => Value::String(canonical(&dt)),
            Ok(None) => Value::Null,
            Err(_) => return Err(bad("System.DateTime")),
        },
        (FieldKind::DateTime, _) => return Err(bad("System.DateTime")),
    })
}
