//! In-memory state of the Chargebee sandbox: records, events, idempotency keys, counters,
//! and the request-side machinery shared by all operations (errors, parameter validation,
//! filtering and paging).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::distr::Alphanumeric;
use rand::Rng;
use serde_json::{json, Map, Value};

use super::faults::Fault;
use super::spec::{Kind, Operation};
use crate::clients::chargebee::form;

/// A Chargebee-style error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbError {
    pub status: u16,
    pub api_error_code: &'static str,
    pub error_type: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
}

impl SbError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            api_error_code: code,
            error_type: Some("invalid_request"),
            message: message.into(),
            param: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// 400 `param_wrong_value` naming the parameter, message `"{param} : {problem}"`.
    pub fn bad_param(param: &str, problem: &str) -> Self {
        Self::new(400, "param_wrong_value", format!("{param} : {problem}")).with_param(param)
    }

    /// 404 `resource_not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "resource_not_found", message)
    }

    /// 400 `duplicate_entry` for a value that must be unique.
    pub fn duplicate(param: &str, value: &str) -> Self {
        Self::new(
            400,
            "duplicate_entry",
            format!("{param} : The value {value} is already present."),
        )
        .with_param(param)
    }

    /// The JSON body, with the legacy fields Chargebee still sends.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "message": self.message,
            "api_error_code": self.api_error_code,
            "error_code": self.api_error_code,
            "error_msg": self.message,
            "http_status_code": self.status,
        });
        if let Some(t) = self.error_type {
            body["type"] = json!(t);
        }
        if let Some(p) = &self.param {
            body["param"] = json!(p);
            body["error_param"] = json!(p);
        }
        body
    }
}

pub type SbResult<T> = Result<T, SbError>;

/// Who made a change; becomes the event's `source` and `user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub source: &'static str,
    pub user: Option<String>,
}

/// Validated request parameters: the decoded tree (leaves are strings) and the keys sent
/// blank (which clear a field).
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub tree: Map<String, Value>,
    pub blanks: Vec<String>,
}

impl Params {
    pub fn str(&self, key: &str) -> Option<&str> {
        self.tree.get(key).and_then(Value::as_str)
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        self.str(key).and_then(|s| s.parse().ok())
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        self.str(key).map(|s| s == "true")
    }

    pub fn obj(&self, key: &str) -> Option<&Map<String, Value>> {
        self.tree.get(key).and_then(Value::as_object)
    }

    /// An array of objects (`parent[field][i]`); gaps are skipped.
    pub fn objects(&self, key: &str) -> Vec<(usize, &Map<String, Value>)> {
        match self.tree.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.as_object().map(|o| (i, o)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// An array of scalars (`parent[i]`).
    pub fn strings(&self, key: &str) -> Vec<String> {
        match self.tree.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn is_blank(&self, key: &str) -> bool {
        self.blanks.iter().any(|b| b == key)
    }
}

fn is_email(s: &str) -> bool {
    let mut parts = s.splitn(2, '@');
    match (parts.next(), parts.next()) {
        (Some(local), Some(domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(char::is_whitespace)
        }
        _ => false,
    }
}

fn check_value(key: &str, kind: &Kind, value: &str) -> SbResult<()> {
    let ok = match kind {
        Kind::Str(max) => {
            if value.chars().count() > *max {
                return Err(SbError::bad_param(
                    key,
                    &format!("cannot be longer than {max} characters"),
                ));
            }
            true
        }
        Kind::Email(max) => {
            if value.chars().count() > *max {
                return Err(SbError::bad_param(
                    key,
                    &format!("cannot be longer than {max} characters"),
                ));
            }
            if !is_email(value) {
                return Err(SbError::bad_param(key, "invalid email format"));
            }
            true
        }
        Kind::Int => value.parse::<i64>().is_ok(),
        Kind::IntRange(lo, hi) => match value.parse::<i64>() {
            Ok(v) if v >= *lo && v <= *hi => true,
            Ok(_) => {
                return Err(SbError::bad_param(
                    key,
                    &format!("must be between {lo} and {hi}"),
                ))
            }
            Err(_) => false,
        },
        Kind::Bool => value == "true" || value == "false",
        Kind::Enum(values) => {
            if !values.contains(&value) {
                return Err(SbError::bad_param(
                    key,
                    &format!("invalid value, must be one of {}", values.join(", ")),
                ));
            }
            true
        }
        Kind::Json => matches!(serde_json::from_str::<Value>(value), Ok(Value::Object(_))),
        Kind::Timestamp => value.len() == 10 && value.bytes().all(|b| b.is_ascii_digit()),
        Kind::TimestampRange => parse_ts_range(value).is_some(),
        Kind::List => value.starts_with('[') && value.ends_with(']'),
    };
    if ok {
        Ok(())
    } else {
        Err(SbError::bad_param(key, "invalid value"))
    }
}

fn parse_ts_range(value: &str) -> Option<(i64, i64)> {
    let inner = value.strip_prefix('[')?.strip_suffix(']')?;
    let (a, b) = inner.split_once(',')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// Parse a bracketed list: the JSON form `["a","b"]` or the bare form `[a,b]`.
pub fn parse_list(value: &str) -> Vec<String> {
    if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(value) {
        return items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect();
    }
    value
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Check every pair against the operation's parameter table and decode them.
pub fn validate(op: &Operation, pairs: &[(String, String)]) -> SbResult<Params> {
    let mut kept: Vec<(&str, &str)> = Vec::with_capacity(pairs.len());
    let mut blanks = Vec::new();
    for (key, value) in pairs {
        let segments = form::split_key(key).map_err(|e| {
            SbError::new(400, "invalid_request", e.to_string()).with_param(key.clone())
        })?;
        let last = segments.last().copied().unwrap_or_default();
        let indexed = segments.len() > 1 && last.bytes().all(|b| b.is_ascii_digit());
        let base = if indexed {
            &key[..key.len() - last.len() - 2]
        } else {
            key.as_str()
        };
        let param = op
            .param(base)
            .filter(|p| p.indexed == indexed)
            .ok_or_else(|| {
                SbError::new(
                    400,
                    "invalid_request",
                    format!("{key} : is not a parameter of {}", op.id),
                )
                .with_param(key.clone())
            })?;
        if value.is_empty() {
            if op.is_write() && !indexed {
                blanks.push(key.clone());
            }
            continue;
        }
        check_value(key, &param.kind, value)?;
        kept.push((key.as_str(), value.as_str()));
    }
    for param in op.params.iter().filter(|p| p.required) {
        let present = kept.iter().any(|(k, _)| {
            *k == param.name || (param.indexed && k.starts_with(&format!("{}[", param.name)))
        });
        if !present {
            return Err(SbError::bad_param(&param.name, "cannot be blank"));
        }
    }
    let tree = form::decode(&kept).map_err(|e| {
        SbError::new(400, "invalid_request", e.to_string()).with_param(e.key.clone())
    })?;
    Ok(Params { tree, blanks })
}

/// A stored record; `seq` orders records created in the same instant.
#[derive(Debug, Clone)]
pub struct Row {
    pub seq: u64,
    pub data: Map<String, Value>,
}

/// One resource collection keyed by id.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub rows: HashMap<String, Row>,
}

impl Table {
    pub fn get(&self, id: &str) -> Option<&Map<String, Value>> {
        self.rows.get(id).map(|r| &r.data)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Map<String, Value>> {
        self.rows.get_mut(id).map(|r| &mut r.data)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.rows.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// A stored idempotent answer.
#[derive(Debug, Clone)]
pub struct IdempotentAnswer {
    pub fingerprint: String,
    pub status: u16,
    pub body: Value,
    pub at: Instant,
}

/// One webhook delivery attempt, for tests to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub url: String,
    /// HTTP status, or `None` when the request failed.
    pub status: Option<u16>,
}

/// Stored webhook endpoint credentials (never emitted by the API).
#[derive(Clone, Default)]
pub struct EndpointAuth {
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for EndpointAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// Everything the sandbox remembers.
#[derive(Debug, Default)]
pub struct State {
    pub customers: Table,
    pub item_families: Table,
    pub items: Table,
    pub item_prices: Table,
    pub invoices: Table,
    pub orders: Table,
    pub events: Table,
    pub webhook_endpoints: Table,
    pub business_entities: Table,
    pub endpoint_auth: HashMap<String, EndpointAuth>,
    pub seq: u64,
    pub invoice_counter: u64,
    pub order_counter: u64,
    pub last_version_ms: i64,
    pub clock_offset_ms: i64,
    pub idempotency: HashMap<String, IdempotentAnswer>,
    pub request_counts: BTreeMap<String, u64>,
    /// Arrival time of every request counted in `request_counts`.
    pub request_times: Vec<Instant>,
    pub write_counts: BTreeMap<String, u64>,
    pub faults: Vec<Fault>,
    /// Events waiting to be handed to the webhook sender.
    pub outbox: Vec<Value>,
    /// Set for the duration of a request carrying `chargebee-event-webhook: all-disabled`:
    /// its events are recorded but not delivered.
    pub suppress_webhooks: bool,
    pub deliveries: Vec<Delivery>,
}

/// A random id in Chargebee's style: `prefix` + 16 alphanumerics.
pub fn random_id(prefix: &str) -> String {
    let tail: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl State {
    pub fn now_ms(&self) -> i64 {
        wall_ms() + self.clock_offset_ms
    }

    pub fn now(&self) -> i64 {
        self.now_ms() / 1000
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A fresh `resource_version`: the clock in ms, strictly increasing.
    pub fn next_version(&mut self) -> i64 {
        let v = self.now_ms().max(self.last_version_ms + 1);
        self.last_version_ms = v;
        v
    }

    /// Stamp `resource_version` and `updated_at` on a changed record.
    pub fn touch(&mut self, data: &mut Map<String, Value>) {
        let v = self.next_version();
        data.insert("resource_version".into(), json!(v));
        data.insert("updated_at".into(), json!(v / 1000));
    }

    pub fn table(&self, resource: &str) -> Option<&Table> {
        Some(match resource {
            "customer" => &self.customers,
            "item_family" => &self.item_families,
            "item" => &self.items,
            "item_price" => &self.item_prices,
            "invoice" => &self.invoices,
            "order" => &self.orders,
            "event" => &self.events,
            "webhook_endpoint" => &self.webhook_endpoints,
            "business_entity" => &self.business_entities,
            _ => return None,
        })
    }

    pub fn table_mut(&mut self, resource: &str) -> Option<&mut Table> {
        Some(match resource {
            "customer" => &mut self.customers,
            "item_family" => &mut self.item_families,
            "item" => &mut self.items,
            "item_price" => &mut self.item_prices,
            "invoice" => &mut self.invoices,
            "order" => &mut self.orders,
            "event" => &mut self.events,
            "webhook_endpoint" => &mut self.webhook_endpoints,
            "business_entity" => &mut self.business_entities,
            _ => return None,
        })
    }

    /// Insert a new record.
    pub fn insert(&mut self, resource: &str, id: &str, data: Map<String, Value>) {
        let seq = self.next_seq();
        if let Some(t) = self.table_mut(resource) {
            t.rows.insert(id.to_string(), Row { seq, data });
        }
    }

    /// Record an event for a change and queue it for webhook delivery.
    pub fn emit(&mut self, event_type: &str, content: Map<String, Value>, actor: &Actor) -> Value {
        let id = random_id("ev_");
        let has_endpoints = !self.webhook_endpoints.is_empty();
        let suppressed = has_endpoints && self.suppress_webhooks;
        let mut event = Map::new();
        event.insert("id".into(), json!(id));
        event.insert("occurred_at".into(), json!(self.now()));
        event.insert("source".into(), json!(actor.source));
        if let Some(user) = &actor.user {
            event.insert("user".into(), json!(user));
        }
        event.insert("object".into(), json!("event"));
        event.insert("api_version".into(), json!("v2"));
        event.insert("content".into(), Value::Object(content));
        event.insert("event_type".into(), json!(event_type));
        event.insert(
            "webhook_status".into(),
            json!(if suppressed {
                "skipped"
            } else if has_endpoints {
                "scheduled"
            } else {
                "not_configured"
            }),
        );
        let value = Value::Object(event.clone());
        self.insert("event", &id, event);
        if has_endpoints && !suppressed {
            self.outbox.push(value.clone());
        }
        value
    }

    /// Emit an event whose content is one resource.
    pub fn emit_one(
        &mut self,
        event_type: &str,
        key: &str,
        record: &Map<String, Value>,
        actor: &Actor,
    ) {
        let mut content = Map::new();
        content.insert(key.into(), Value::Object(record.clone()));
        self.emit(event_type, content, actor);
    }
}

/// A sort key: numbers compare as numbers, everything else as strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Missing,
    Int(i64),
    Str(String),
}

fn sort_key(data: &Map<String, Value>, field: &str) -> SortKey {
    match data.get(field) {
        Some(Value::Number(n)) => n.as_i64().map_or(SortKey::Missing, SortKey::Int),
        Some(Value::String(s)) => SortKey::Str(s.clone()),
        _ => SortKey::Missing,
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn matches_filter(data: &Map<String, Value>, field: &str, op: &str, value: &str) -> bool {
    let actual = data.get(field).and_then(scalar);
    let num = |s: &str| s.parse::<i64>().ok();
    match op {
        "is" => actual.as_deref() == Some(value),
        "is_not" => actual.as_deref() != Some(value),
        "starts_with" => actual.is_some_and(|a| a.starts_with(value)),
        "is_present" => actual.is_some_and(|a| !a.is_empty()) == (value == "true"),
        "in" => actual.is_some_and(|a| parse_list(value).contains(&a)),
        "not_in" => !actual.is_some_and(|a| parse_list(value).contains(&a)),
        "after" => actual
            .and_then(|a| num(&a))
            .zip(num(value))
            .is_some_and(|(a, v)| a > v),
        "before" => actual
            .and_then(|a| num(&a))
            .zip(num(value))
            .is_some_and(|(a, v)| a < v),
        "on" => actual
            .and_then(|a| num(&a))
            .zip(num(value))
            .is_some_and(|(a, v)| a / 86_400 == v / 86_400),
        "between" => match (actual.and_then(|a| num(&a)), parse_ts_range(value)) {
            (Some(a), Some((lo, hi))) => a >= lo && a <= hi,
            _ => false,
        },
        _ => false,
    }
}

/// One page of records and the cursor of the next page.
pub type ListPage = (Vec<Map<String, Value>>, Option<String>);

/// How a listing is ordered when the request names no `sort_by`.
#[derive(Debug, Clone, Copy)]
pub struct DefaultSort {
    pub field: &'static str,
    pub ascending: bool,
}

/// Filter, sort and page a table. `offset` is the opaque cursor from a previous page: a
/// JSON array string `["<sort key>","<seq>"]` of the last record returned.
pub fn list(
    table: &Table,
    params: &Params,
    default_sort: DefaultSort,
    include: impl Fn(&Map<String, Value>) -> bool,
) -> SbResult<ListPage> {
    let limit = params.int("limit").unwrap_or(10).clamp(1, 100) as usize;
    let (field, ascending) = match params.obj("sort_by") {
        Some(s) => match (
            s.get("asc").and_then(Value::as_str),
            s.get("desc").and_then(Value::as_str),
        ) {
            (Some(f), None) => (f.to_string(), true),
            (None, Some(f)) => (f.to_string(), false),
            _ => {
                return Err(SbError::bad_param(
                    "sort_by",
                    "give exactly one of asc or desc",
                ));
            }
        },
        None => (default_sort.field.to_string(), default_sort.ascending),
    };
    let mut filters: Vec<(&str, &str, &str)> = Vec::new();
    for (name, value) in &params.tree {
        if let Value::Object(ops) = value {
            if name == "sort_by" {
                continue;
            }
            for (op, v) in ops {
                if let Some(v) = v.as_str() {
                    filters.push((name.as_str(), op.as_str(), v));
                }
            }
        }
    }
    let mut rows: Vec<(&Row, SortKey)> = table
        .rows
        .values()
        .filter(|r| include(&r.data))
        .filter(|r| {
            filters
                .iter()
                .all(|(f, op, v)| matches_filter(&r.data, f, op, v))
        })
        .map(|r| (r, sort_key(&r.data, &field)))
        .collect();
    let order = |a: &(SortKey, u64), b: &(SortKey, u64)| -> Ordering {
        let o = a.cmp(b);
        if ascending {
            o
        } else {
            o.reverse()
        }
    };
    rows.sort_by(|a, b| order(&(a.1.clone(), a.0.seq), &(b.1.clone(), b.0.seq)));
    let start = match params.str("offset") {
        None => 0,
        Some(offset) => {
            let cursor = parse_cursor(offset)
                .ok_or_else(|| SbError::bad_param("offset", "invalid offset"))?;
            rows.iter()
                .position(|(r, k)| order(&(k.clone(), r.seq), &cursor) == Ordering::Greater)
                .unwrap_or(rows.len())
        }
    };
    let page: Vec<&(&Row, SortKey)> = rows.iter().skip(start).take(limit).collect();
    let next = if start + page.len() < rows.len() {
        page.last().map(|(r, k)| {
            let key = match k {
                SortKey::Missing => String::new(),
                SortKey::Int(i) => i.to_string(),
                SortKey::Str(s) => format!("s:{s}"),
            };
            json!([key, r.seq.to_string()]).to_string()
        })
    } else {
        None
    };
    Ok((
        page.into_iter().map(|(r, _)| r.data.clone()).collect(),
        next,
    ))
}

fn parse_cursor(offset: &str) -> Option<(SortKey, u64)> {
    let parts: Vec<String> = serde_json::from_str(offset).ok()?;
    let [key, seq] = parts.as_slice() else {
        return None;
    };
    let seq = seq.parse().ok()?;
    let key = if key.is_empty() {
        SortKey::Missing
    } else if let Some(s) = key.strip_prefix("s:") {
        SortKey::Str(s.to_string())
    } else {
        SortKey::Int(key.parse().ok()?)
    };
    Some((key, seq))
}
