//! Chargebee webhooks: HTTP Basic verification, the lenient event envelope, and which
//! records an event asks us to sync.

use axum::http::HeaderMap;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::{Side, SyncTarget, REKEY_JOB};
use crate::store::{Millis, NewJob};

/// Event types we subscribe to when registering our endpoint; also what the poller asks for.
pub const SUBSCRIBED_EVENT_TYPES: &[&str] = &[
    "customer_created",
    "customer_changed",
    "customer_deleted",
    "customer_moved_in",
    "customer_moved_out",
    "customer_business_entity_changed",
    "business_entity_created",
    "business_entity_updated",
    "business_entity_deleted",
    "order_created",
    "order_updated",
    "order_cancelled",
    "order_deleted",
    "order_delivered",
    "order_ready_to_process",
    "order_ready_to_ship",
    "order_resent",
    "order_returned",
    "item_created",
    "item_updated",
    "item_deleted",
    "item_price_created",
    "item_price_updated",
    "item_price_deleted",
    "invoice_generated",
    "invoice_updated",
];

/// The webhook credentials Chargebee is configured to send.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: SecretString,
}

/// A request body whose sender presented the right credentials. Only this type can be
/// parsed into an event, so unverified input cannot reach the store by mistake.
#[derive(Debug)]
pub struct Authenticated<'a>(&'a [u8]);

/// Checks `Authorization: Basic …` in constant time (user and password both compared, so
/// the timing does not tell which one was wrong).
pub fn authenticate<'a>(
    headers: &HeaderMap,
    expected: &Credentials,
    body: &'a [u8],
) -> Option<Authenticated<'a>> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let split = decoded.iter().position(|&b| b == b':')?;
    let (user, password) = (&decoded[..split], &decoded[split + 1..]);
    let user_ok = user.ct_eq(expected.username.as_bytes());
    let password_ok = password.ct_eq(expected.password.expose_secret().as_bytes());
    bool::from(user_ok & password_ok).then_some(Authenticated(body))
}

/// The event envelope, read leniently: only `id` and `event_type` are required.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: String,
    pub event_type: String,
    pub occurred_at: Option<i64>,
    pub source: Option<String>,
    pub user: Option<String>,
    pub api_version: Option<String>,
    pub content: Value,
}

impl Authenticated<'_> {
    pub fn parse(&self) -> Result<Envelope, String> {
        parse_envelope(self.0)
    }

    pub fn raw(&self) -> &[u8] {
        self.0
    }
}

/// Parses an event body; the error names what is wrong. Pure, so it can be fuzzed.
pub fn parse_envelope(body: &[u8]) -> Result<Envelope, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let obj = value
        .as_object()
        .ok_or("body must be a JSON object (a Chargebee event)")?;
    let text = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_string);
    let id = text("id")
        .filter(|s| !s.trim().is_empty())
        .ok_or("event has no `id`")?;
    let event_type = text("event_type")
        .filter(|s| !s.trim().is_empty())
        .ok_or("event has no `event_type`")?;
    Ok(Envelope {
        id,
        event_type,
        occurred_at: obj.get("occurred_at").and_then(Value::as_i64),
        source: text("source"),
        user: text("user"),
        api_version: text("api_version"),
        content: obj.get("content").cloned().unwrap_or(Value::Null),
    })
}

/// What an event asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing to do; the reason is kept in the event log.
    Ignore(&'static str),
    /// Sync these records.
    Sync(Vec<SyncTarget>),
    /// A customer moved to another business entity and now has a new id: links keyed by the
    /// old id must follow, then the customer is synced under its new id.
    Rekey {
        old_id: String,
        new_id: String,
        then: Vec<SyncTarget>,
    },
}

const CUSTOMER_PAIRINGS: &[&str] = &["persons_customers", "users_customers"];
const ORDER_PAIRINGS: &[&str] = &["opportunities_orders", "quotationlines_orders"];

/// Decides which records an event concerns. Pure: no I/O; of the field values only the ids
/// and the `resource_version` (which orders a record's events) are used here.
pub fn plan(event: &Envelope) -> Plan {
    if mentions_demo_customer(&event.content) {
        return Plan::Ignore("Chargebee test-button sample (cbdemo_ customer)");
    }
    let t = event.event_type.as_str();
    let targets =
        |pairings: &[&'static str], resource: &str, ids: Vec<String>| -> Vec<SyncTarget> {
            let version = event
                .content
                .get(resource)
                .and_then(|r| r.get("resource_version"))
                // Only a number orders events (and the queue compares it when jobs merge).
                .filter(|v| v.is_i64())
                .cloned()
                .unwrap_or(Value::Null);
            let hint = json!({
                "event_id": event.id,
                "event_type": event.event_type,
                "occurred_at": event.occurred_at,
                "resource_version": version,
            });
            ids.iter()
                .flat_map(|id| {
                    pairings.iter().map(|p| SyncTarget {
                        pairing: p,
                        side: Side::Chargebee,
                        id: id.clone(),
                        hint: hint.clone(),
                    })
                })
                .collect()
        };
    let id_of = |resource: &str, field: &str| -> Vec<String> {
        event
            .content
            .get(resource)
            .and_then(|r| r.get(field))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| vec![s.to_string()])
            .unwrap_or_default()
    };
    let found = |v: Vec<SyncTarget>, missing: &'static str| {
        if v.is_empty() {
            Plan::Ignore(missing)
        } else {
            Plan::Sync(v)
        }
    };
    if t == "customer_business_entity_changed" {
        let transfer = event.content.get("business_entity_transfer");
        let field = |f: &str| {
            transfer
                .and_then(|t| t.get(f))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        return match (field("resource_id"), field("active_resource_id")) {
            (Some(old_id), Some(new_id)) => Plan::Rekey {
                then: targets(CUSTOMER_PAIRINGS, "customer", vec![new_id.clone()]),
                old_id,
                new_id,
            },
            _ => Plan::Ignore("transfer without resource ids"),
        };
    }
    if t.starts_with("business_entity_") {
        found(
            targets(
                &["organisations_business_entities"],
                "business_entity",
                id_of("business_entity", "id"),
            ),
            "event without a business entity id",
        )
    } else if t.starts_with("customer_") {
        found(
            targets(CUSTOMER_PAIRINGS, "customer", id_of("customer", "id")),
            "event without a customer",
        )
    } else if t.starts_with("order_") {
        found(
            targets(ORDER_PAIRINGS, "order", id_of("order", "id")),
            "event without an order",
        )
    } else if t.starts_with("item_price_") {
        found(
            targets(
                &["products_items"],
                "item_price",
                id_of("item_price", "item_id"),
            ),
            "item price event without an item id",
        )
    } else if t.starts_with("item_family_") || t.starts_with("item_entitlements_") {
        Plan::Ignore("event type not used by any pairing")
    } else if t.starts_with("item_") {
        found(
            targets(&["products_items"], "item", id_of("item", "id")),
            "event without an item",
        )
    } else if t.starts_with("invoice_") {
        let orders: Vec<String> = event
            .content
            .get("invoice")
            .and_then(|i| i.get("linked_orders"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|o| o.get("id").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        found(
            targets(ORDER_PAIRINGS, "order", orders),
            "invoice event that carries no orders",
        )
    } else {
        Plan::Ignore("event type not used by any pairing")
    }
}

/// Chargebee's "Test Webhook" button sends sample events about `cbdemo_*` customers.
fn mentions_demo_customer(content: &Value) -> bool {
    let Some(obj) = content.as_object() else {
        return false;
    };
    obj.values().any(|resource| {
        ["id", "customer_id"].iter().any(|k| {
            resource
                .get(k)
                .and_then(Value::as_str)
                .is_some_and(|id| id.starts_with("cbdemo_"))
        })
    })
}

/// The jobs an event calls for (only for `enabled` pairings), and why none when it calls
/// for none. Webhooks and the poller both go through here, so a webhook and a poll of the
/// same event enqueue the same jobs (and the event id deduplicates them).
pub fn jobs_for(
    envelope: &Envelope,
    enabled: &dyn Fn(&str) -> bool,
    now: Millis,
    max_attempts: i32,
) -> (Vec<NewJob>, Option<&'static str>) {
    let keep = |targets: Vec<SyncTarget>| -> Vec<NewJob> {
        targets
            .into_iter()
            .filter(|t| enabled(t.pairing))
            .map(|t| t.into_job(now, max_attempts))
            .collect()
    };
    match plan(envelope) {
        Plan::Ignore(reason) => (Vec::new(), Some(reason)),
        Plan::Sync(targets) => {
            let jobs = keep(targets);
            let ignored = jobs
                .is_empty()
                .then_some("every pairing it concerns is disabled");
            (jobs, ignored)
        }
        Plan::Rekey {
            old_id,
            new_id,
            then,
        } => {
            let mut jobs = vec![NewJob {
                kind: REKEY_JOB.into(),
                pairing: None,
                dedupe_key: format!("rekey:customer:{old_id}"),
                payload: json!({ "event_id": envelope.id, "old_id": old_id, "new_id": new_id }),
                run_at: now,
                max_attempts,
            }];
            jobs.extend(keep(then));
            (jobs, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn creds() -> Credentials {
        Credentials {
            username: "chargebee".into(),
            password: SecretString::from("s3cret"),
        }
    }

    fn basic(user: &str, pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        h.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn authenticate_accepts_only_the_configured_pair() {
        assert!(authenticate(&basic("chargebee", "s3cret"), &creds(), b"{}").is_some());
        assert!(authenticate(&basic("chargebee", "s3cret!"), &creds(), b"{}").is_none());
        assert!(authenticate(&basic("other", "s3cret"), &creds(), b"{}").is_none());
        assert!(authenticate(&basic("chargebee:s3cret", ""), &creds(), b"{}").is_none());
        assert!(authenticate(&HeaderMap::new(), &creds(), b"{}").is_none());
        let mut bearer = HeaderMap::new();
        bearer.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(authenticate(&bearer, &creds(), b"{}").is_none());
    }

    #[test]
    fn parse_envelope_names_what_is_missing() {
        assert!(parse_envelope(b"{").unwrap_err().contains("not valid JSON"));
        assert!(parse_envelope(b"[]").unwrap_err().contains("JSON object"));
        assert!(parse_envelope(br#"{"event_type":"x"}"#)
            .unwrap_err()
            .contains("`id`"));
        assert!(parse_envelope(br#"{"id":"ev_1"}"#)
            .unwrap_err()
            .contains("`event_type`"));
        let e = parse_envelope(
            br#"{"id":"ev_1","event_type":"customer_changed","occurred_at":5,"extra":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(e.occurred_at, Some(5));
        assert_eq!(e.content, Value::Null);
    }

    fn event(event_type: &str, content: Value) -> Envelope {
        Envelope {
            id: "ev_1".into(),
            event_type: event_type.into(),
            occurred_at: Some(1),
            source: None,
            user: None,
            api_version: None,
            content,
        }
    }

    fn targets(plan: Plan) -> Vec<(&'static str, String)> {
        match plan {
            Plan::Sync(t) => t.into_iter().map(|t| (t.pairing, t.id)).collect(),
            other => panic!("expected targets, got {other:?}"),
        }
    }

    #[test]
    fn plan_maps_each_resource_to_its_pairings() {
        let c = plan(&event(
            "customer_changed",
            json!({"customer": {"id": "c1"}}),
        ));
        assert_eq!(
            targets(c),
            vec![
                ("persons_customers", "c1".to_string()),
                ("users_customers", "c1".to_string())
            ]
        );
        let o = plan(&event("order_updated", json!({"order": {"id": "7"}})));
        assert_eq!(
            targets(o),
            vec![
                ("opportunities_orders", "7".to_string()),
                ("quotationlines_orders", "7".to_string())
            ]
        );
        let i = plan(&event(
            "item_price_updated",
            json!({"item_price": {"id": "p-EUR", "item_id": "p"}}),
        ));
        assert_eq!(targets(i), vec![("products_items", "p".to_string())]);
        let b = plan(&event(
            "business_entity_updated",
            json!({"business_entity": {"id": "2"}}),
        ));
        assert_eq!(
            targets(b),
            vec![("organisations_business_entities", "2".to_string())]
        );
        let inv = plan(&event(
            "invoice_updated",
            json!({"invoice": {"id": "inv", "linked_orders": [{"id": "9"}]}}),
        ));
        assert_eq!(targets(inv).len(), 2);
    }

    #[test]
    fn plan_ignores_irrelevant_and_sample_events() {
        assert!(matches!(
            plan(&event(
                "subscription_created",
                json!({"customer": {"id": "c"}})
            )),
            Plan::Ignore(_)
        ));
        assert!(matches!(
            plan(&event(
                "customer_changed",
                json!({"customer": {"id": "cbdemo_tom"}})
            )),
            Plan::Ignore(_)
        ));
        assert!(matches!(
            plan(&event("invoice_generated", json!({"invoice": {"id": "i"}}))),
            Plan::Ignore(_)
        ));
        assert!(matches!(
            plan(&event(
                "customer_entitlements_updated",
                json!({"impacted_customer": {}})
            )),
            Plan::Ignore(_)
        ));
    }

    #[test]
    fn plan_rekeys_a_transferred_customer() {
        let p = plan(&event(
            "customer_business_entity_changed",
            json!({"business_entity_transfer": {"resource_id": "old", "active_resource_id": "new"},
                   "customer": {"id": "new"}}),
        ));
        match p {
            Plan::Rekey {
                old_id,
                new_id,
                then,
            } => {
                assert_eq!((old_id.as_str(), new_id.as_str()), ("old", "new"));
                assert!(then.iter().all(|t| t.id == "new"));
            }
            other => panic!("{other:?}"),
        }
    }
}
