//! webCRM hooks. webCRM signs nothing, so the hook URL carries a token derived from our
//! secret; the payload is undocumented, so only an id is taken from it, leniently.

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{Side, SyncTarget};

/// An entity webCRM can notify us about: its API collection name (the URL segment), the
/// prefix of its DTO fields, and the pairings its changes feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookEntity {
    pub collection: &'static str,
    pub singular: &'static str,
    pub pairings: &'static [&'static str],
}

/// The entities we register hooks for. An organisation feeds its business entity and the
/// Chargebee customers of its persons (company, address and VAT number come from it).
pub const HOOK_ENTITIES: &[HookEntity] = &[
    HookEntity {
        collection: "Organisations",
        singular: "Organisation",
        pairings: &["organisations_business_entities", "persons_customers"],
    },
    HookEntity {
        collection: "Persons",
        singular: "Person",
        pairings: &["persons_customers"],
    },
    HookEntity {
        collection: "Opportunities",
        singular: "Opportunity",
        pairings: &["opportunities_orders"],
    },
    HookEntity {
        collection: "QuotationLines",
        singular: "QuotationLine",
        pairings: &["quotationlines_orders"],
    },
    HookEntity {
        collection: "Users",
        singular: "User",
        pairings: &["users_customers"],
    },
];

pub fn entity(collection: &str) -> Option<&'static HookEntity> {
    HOOK_ENTITIES.iter().find(|e| e.collection == collection)
}

/// base64url (no padding) of HMAC-SHA256(key = secret, message = entity), both UTF-8.
pub fn hook_token(secret: &SecretString, entity: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail; an empty token never matches.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return String::new();
    };
    mac.update(entity.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The path a hook for `entity` must call.
pub fn hook_path(secret: &SecretString, entity: &str) -> String {
    format!("/webhooks/webcrm/{entity}/{}", hook_token(secret, entity))
}

pub fn token_matches(secret: &SecretString, entity: &str, token: &str) -> bool {
    let expected = hook_token(secret, entity);
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
}

/// What a hook delivery told us, read leniently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: Option<String>,
    /// `Create`, `Update` or `Delete` when the payload says so.
    pub event_type: Option<String>,
}

/// Reads the record id and event type from a hook body of unknown shape: an object with
/// `{Entity}Id`, `Id` or `EntityId` (also one level down), a bare id, or a list of ids.
/// Pure, so it can be fuzzed.
pub fn read_notification(entity: &HookEntity, body: &[u8]) -> Notification {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        // Not JSON: maybe a bare id as text.
        Err(_) => {
            let id = std::str::from_utf8(body)
                .ok()
                .map(str::trim)
                .and_then(|t| t.parse::<u64>().ok())
                .filter(|n| *n > 0)
                .map(|n| n.to_string());
            return Notification {
                id,
                event_type: None,
            };
        }
    };
    let entity_id_key = format!("{}Id", entity.singular);
    Notification {
        id: find_id(&value, &entity_id_key, 0),
        event_type: find_event_type(&value),
    }
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => n.as_u64().filter(|n| *n > 0).map(|n| n.to_string()),
        // Canonical decimal, so `"+12"`, `"012"` and `12` name the same record (one job,
        // one link) and never `0`.
        Value::String(s) => s
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| n.to_string()),
        _ => None,
    }
}

fn find_id(value: &Value, entity_id_key: &str, depth: usize) -> Option<String> {
    match value {
        Value::Object(map) => {
            for key in [entity_id_key, "Id", "EntityId", "id", "entityId"] {
                if let Some(id) = map.get(key).and_then(id_text) {
                    return Some(id);
                }
            }
            // One level down only: deeper ids belong to related records.
            if depth == 0 {
                map.values()
                    .filter(|v| v.is_object())
                    .find_map(|v| find_id(v, entity_id_key, depth + 1))
            } else {
                None
            }
        }
        Value::Array(items) if depth == 0 => items.first().and_then(|v| match v {
            Value::Object(_) => find_id(v, entity_id_key, depth + 1),
            other => id_text(other),
        }),
        other if depth == 0 => id_text(other),
        _ => None,
    }
}

fn find_event_type(value: &Value) -> Option<String> {
    let map = value.as_object()?;
    ["EventType", "eventType", "Event", "Action", "Type"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_str))
        .filter(|s| s.len() <= 64)
        .map(str::to_string)
}

/// The records a notification with an id asks us to sync.
/// The webCRM collection whose records a pairing links; hooks of other collections name
/// their record as `{collection}/{id}` so its jobs never share a key with the pairing's own.
pub fn pairing_collection(pairing: &str) -> Option<&'static str> {
    match pairing {
        "persons_customers" => Some("Persons"),
        "users_customers" => Some("Users"),
        "organisations_business_entities" => Some("Organisations"),
        "opportunities_orders" => Some("Opportunities"),
        "quotationlines_orders" => Some("QuotationLines"),
        _ => None,
    }
}

/// How a hook's record is named in the inbox (`Persons/123`), to count the hooks it got.
pub fn hook_subject(collection: &str, id: &str) -> String {
    format!("{collection}/{id}")
}

pub fn targets(entity: &HookEntity, id: &str, event_type: Option<&str>) -> Vec<SyncTarget> {
    entity
        .pairings
        .iter()
        .map(|p| SyncTarget {
            pairing: p,
            side: Side::Webcrm,
            id: if pairing_collection(p) == Some(entity.collection) {
                id.to_string()
            } else {
                hook_subject(entity.collection, id)
            },
            hint: json!({ "entity": entity.collection, "event_type": event_type }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn persons() -> &'static HookEntity {
        entity("Persons").unwrap()
    }

    #[test]
    fn hook_token_matches_a_fixed_vector() {
        // Computed independently: base64url(HMAC-SHA256("test-webhook-secret", "Persons")).
        let secret = SecretString::from("test-webhook-secret");
        assert_eq!(
            hook_token(&secret, "Persons"),
            "t_8Ip9cLEyaDMOJMJsYu91YTb5TvvjPtiW0thFR7uMY"
        );
        assert!(token_matches(
            &secret,
            "Persons",
            &hook_token(&secret, "Persons")
        ));
        assert!(!token_matches(
            &secret,
            "Users",
            &hook_token(&secret, "Persons")
        ));
        assert!(!token_matches(&secret, "Persons", ""));
    }

    #[test]
    fn read_notification_finds_the_id_in_every_known_shape() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (
                br#"{"PersonId": 12, "PersonOrganisationId": 3}"#,
                Some("12"),
            ),
            (
                br#"{"HookId": 1, "EventType": "Update", "Id": 12}"#,
                Some("12"),
            ),
            (br#"{"EntityId": "12"}"#, Some("12")),
            (br#"{"Data": {"PersonId": 12}}"#, Some("12")),
            (br#"12"#, Some("12")),
            (br#"[12]"#, Some("12")),
            (br#"[{"PersonId": 12}]"#, Some("12")),
            (b"12\n", Some("12")),
            (br#"{"PersonId": "+12"}"#, Some("12")),
            (br#"{"PersonId": " 012 "}"#, Some("12")),
            (b"00", None),
            (b"+0", None),
            (b"", None),
            (br#"{}"#, None),
            (br#"{"Id": -4}"#, None),
            (br#"{"Id": "abc"}"#, None),
            (br#"{"A": {"B": {"PersonId": 12}}}"#, None),
            (&[0xff, 0xfe, 0x00], None),
        ];
        for (body, expected) in cases {
            assert_eq!(
                read_notification(persons(), body).id.as_deref(),
                *expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn read_notification_takes_the_event_type_when_given() {
        let n = read_notification(persons(), br#"{"EventType": "Delete", "Id": 5}"#);
        assert_eq!(n.event_type.as_deref(), Some("Delete"));
        assert_eq!(read_notification(persons(), b"5").event_type, None);
    }
}
