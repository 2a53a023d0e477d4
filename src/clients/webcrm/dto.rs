//! Shared DTO machinery (field metadata, lenient decoding) and the small hand-written DTOs:
//! hooks, the login response, the error body.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Type of one DTO property as webCRM's specification declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// `string` (also enums, custom and plus fields).
    Text,
    /// `integer` / `int32`.
    Int32,
    /// `integer` / `int64`.
    Int64,
    /// `number` / `double`.
    Double,
    /// `boolean`.
    Bool,
    /// `string` / `date-time`.
    DateTime,
}

/// One property of a webCRM DTO: its wire name, type and maximum length if the spec has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// PascalCase wire name, e.g. `PersonLastName`.
    pub name: &'static str,
    /// Declared type.
    pub kind: FieldKind,
    /// `maxLength` from the spec.
    pub max_length: Option<u32>,
}

/// A webCRM entity DTO generated from the specification.
pub trait WebcrmEntity {
    /// Name of the Swagger definition, e.g. `PersonDto`.
    const DEFINITION: &'static str;
    /// The required id property, e.g. `PersonId`.
    const ID_FIELD: &'static str;
    /// Every property of the definition.
    fn fields() -> &'static [FieldSpec];
    /// Looks up one property by its exact wire name.
    fn field(name: &str) -> Option<&'static FieldSpec> {
        Self::fields().iter().find(|f| f.name == name)
    }
}

/// Accepts a string, a number or a boolean (as its text) or null for a text field.
///
/// webCRM custom and plus fields changed type between versions (numbers became strings);
/// decoding them leniently keeps a new representation from failing a whole page.
pub fn lenient_text<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => Some(other.to_string()),
    })
}

/// Serde adapter for password-like text fields held as [`SecretString`].
///
/// They are serialised (a full-object PUT must send them back unchanged) but never printed.
pub mod secret_text {
    use super::*;

    /// Writes the secret's text.
    pub fn serialize<S: Serializer>(
        value: &Option<SecretString>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(secret) => serializer.serialize_str(secret.expose_secret()),
            None => serializer.serialize_none(),
        }
    }

    /// Reads text (or a number/boolean as text) into a secret.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SecretString>, D::Error> {
        Ok(lenient_text(deserializer)?.map(SecretString::from))
    }
}

/// The entities that have hook subscriptions and that this client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookEntity {
    /// `/Organisations/Hooks`
    Organisations,
    /// `/Persons/Hooks`
    Persons,
    /// `/Users/Hooks`
    Users,
    /// `/Opportunities/Hooks`
    Opportunities,
    /// `/QuotationLines/Hooks`
    QuotationLines,
}

impl HookEntity {
    /// All of them.
    pub const ALL: [HookEntity; 5] = [
        HookEntity::Organisations,
        HookEntity::Persons,
        HookEntity::Users,
        HookEntity::Opportunities,
        HookEntity::QuotationLines,
    ];

    /// The API collection name, also the first path segment.
    pub fn collection(self) -> &'static str {
        match self {
            HookEntity::Organisations => "Organisations",
            HookEntity::Persons => "Persons",
            HookEntity::Users => "Users",
            HookEntity::Opportunities => "Opportunities",
            HookEntity::QuotationLines => "QuotationLines",
        }
    }

    /// Parses a collection name (exact case).
    pub fn from_collection(name: &str) -> Option<HookEntity> {
        HookEntity::ALL.into_iter().find(|e| e.collection() == name)
    }

    /// Name of the hook definition in the specification.
    pub fn hook_definition(self) -> &'static str {
        match self {
            HookEntity::Organisations => "OrganisationHookDto",
            HookEntity::Persons => "PersonHookDto",
            HookEntity::Users => "UserHookDto",
            HookEntity::Opportunities => "OpportunityHookDto",
            HookEntity::QuotationLines => "QuotationLineHookDto",
        }
    }

    /// The `Filter` values the specification allows for this entity.
    pub fn allowed_filters(self) -> &'static [&'static str] {
        match self {
            HookEntity::Organisations => &["All", "Owner", "Owner2"],
            HookEntity::Persons | HookEntity::QuotationLines => {
                &["All", "OrganisationOwner", "OrganisationOwner2"]
            }
            HookEntity::Users => &["All", "Current"],
            HookEntity::Opportunities => &[
                "All",
                "Responsible",
                "Responsible2",
                "OrganisationOwner",
                "OrganisationOwner2",
            ],
        }
    }
}

impl fmt::Display for HookEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.collection())
    }
}

/// Which change a hook reports (`EventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HookEventType {
    /// A record was created.
    Create,
    /// A record was updated.
    Update,
    /// A record was deleted.
    Delete,
}

impl HookEventType {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            HookEventType::Create => "Create",
            HookEventType::Update => "Update",
            HookEventType::Delete => "Delete",
        }
    }
}

/// A hook subscription (`OrganisationHookDto`, `PersonHookDto`, ... all have this shape).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Hook {
    /// Server-assigned id (send 0 on create).
    #[serde(rename = "Id", default)]
    pub id: i64,
    /// Where webCRM posts the notification.
    #[serde(rename = "TargetUrl", default)]
    pub target_url: String,
    /// Whether the hook fires.
    #[serde(rename = "IsEnabled", default)]
    pub is_enabled: bool,
    /// Whose records trigger it; `["All"]` for everything.
    #[serde(rename = "Filter", default)]
    pub filter: Vec<String>,
    /// The one event type this hook reports.
    #[serde(rename = "EventType", default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<HookEventType>,
    /// Set by the server.
    #[serde(
        rename = "CreatedAt",
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::dates::serde_opt"
    )]
    pub created_at: Option<DateTime<Utc>>,
    /// Set by the server.
    #[serde(
        rename = "CreatedBy",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_text"
    )]
    pub created_by: Option<String>,
    /// Set by the server.
    #[serde(
        rename = "UpdatedAt",
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::dates::serde_opt"
    )]
    pub updated_at: Option<DateTime<Utc>>,
    /// Set by the server.
    #[serde(
        rename = "UpdatedBy",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_text"
    )]
    pub updated_by: Option<String>,
    /// Properties this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Hook {
    /// Every property of the hook definitions in the specification.
    pub const FIELDS: &'static [&'static str] = &[
        "Id",
        "TargetUrl",
        "IsEnabled",
        "Filter",
        "EventType",
        "CreatedAt",
        "CreatedBy",
        "UpdatedAt",
        "UpdatedBy",
    ];

    /// A new enabled hook for every record (`Filter = ["All"]`).
    pub fn new(target_url: impl Into<String>, event_type: HookEventType) -> Self {
        Hook {
            target_url: target_url.into(),
            is_enabled: true,
            filter: vec!["All".to_owned()],
            event_type: Some(event_type),
            ..Hook::default()
        }
    }
}

/// `TokenResponseDto`, the answer of `POST /Auth/ApiLogin`.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer token (a JWT).
    #[serde(
        rename = "AccessToken",
        default,
        skip_serializing_if = "Option::is_none",
        with = "secret_text"
    )]
    pub access_token: Option<SecretString>,
    /// Refresh token (unused: the client logs in again instead).
    #[serde(
        rename = "RefreshToken",
        default,
        skip_serializing_if = "Option::is_none",
        with = "secret_text"
    )]
    pub refresh_token: Option<SecretString>,
    /// Lifetime of the access token in seconds.
    #[serde(rename = "ExpiresIn", default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
    /// Usually `Bearer`.
    #[serde(
        rename = "TokenType",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_text"
    )]
    pub token_type: Option<String>,
    /// True when the login failed although the status was 200.
    #[serde(rename = "IsError", default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// Error code when `IsError`.
    #[serde(
        rename = "Error",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_text"
    )]
    pub error: Option<String>,
    /// Error text when `IsError`.
    #[serde(
        rename = "ErrorDescription",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_text"
    )]
    pub error_description: Option<String>,
}

impl TokenResponse {
    /// Every property of `TokenResponseDto` in the specification.
    pub const FIELDS: &'static [&'static str] = &[
        "AccessToken",
        "RefreshToken",
        "Error",
        "ErrorDescription",
        "IsError",
        "ExpiresIn",
        "TokenType",
    ];
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_in", &self.expires_in)
            .field("token_type", &self.token_type)
            .field("is_error", &self.is_error)
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .finish()
    }
}

/// The error body webCRM documents for 429 (`RetryAfterSeconds`, `Message`, `Type`); other
/// error statuses are read with the same shape where they have it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Seconds to wait (429 only).
    #[serde(
        rename = "RetryAfterSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_after_seconds: Option<u64>,
    /// Human-readable message.
    #[serde(rename = "Message", default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Exception type, e.g. `TooManyRequestsException`.
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
}

/// A catalogue entity type (`QuotationLineLinkedDataItemEntityType`); products are `Product`.
pub const LINKED_DATA_ENTITY_PRODUCT: &str = "Product";
