//! Options of the webCRM sandbox, fault plans and the entity table.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::clients::webcrm::{
    FieldSpec, HookEntity, LinkedDataItem, Opportunity, Organisation, Person, QuotationLine,
    QuotationLineUpdate, User,
};

/// What a failed `ApiLogin` looks like (webCRM does not document it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailureStyle {
    /// HTTP 200 with `IsError: true` (what `TokenResponseDto` suggests).
    IsErrorOk,
    /// HTTP 401.
    Unauthorized,
    /// HTTP 400 with `IsError: true`.
    BadRequest,
}

/// How date-times are written in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateStyle {
    /// `2018-05-02T10:39:47+00:00` after shifting to this fixed offset in minutes
    /// (0 is what webCRM's own fixtures show; 120 gives `+02:00`).
    Offset(i32),
    /// `2018-05-02T10:39:47Z`
    Zulu,
    /// `2018-05-02T10:39:47` (no offset; UTC)
    Naive,
    /// `2018-05-02T10:39:47.0000000Z` (.NET round-trip)
    DotNetRoundTrip,
}

/// What `PUT /{Entity}/{id}` does with properties the body leaves out (undocumented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutSemantics {
    /// The body replaces the record: omitted properties become unset.
    Replace,
    /// Omitted properties keep their value.
    Merge,
}

/// The body of a hook notification (webCRM does not document it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPayloadShape {
    /// `{"HookId", "EventType", "EntityType", "Id", "OccurredAt"}`
    Envelope,
    /// The record's DTO (the last known state for a delete).
    Dto,
    /// The bare id: `123`.
    IdOnly,
    /// A list of ids: `[123]`.
    IdList,
    /// An empty body.
    Empty,
    /// Each delivery takes the next of the shapes above in turn.
    Rotate,
}

/// When hook notifications are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookDelivery {
    /// In the background, right after the change.
    Immediate,
    /// Queued until [`super::WebcrmSandboxState::deliver_pending_hooks`] is awaited.
    Manual,
}

/// Options of a sandbox.
#[derive(Debug, Clone)]
pub struct WebcrmSandboxOptions {
    /// Address to bind.
    pub bind: IpAddr,
    /// Port (0 picks a free one).
    pub port: u16,
    /// The application token `ApiLogin` accepts; a random GUID when `None`.
    pub api_token: Option<String>,
    /// `ExpiresIn` of access tokens.
    pub token_lifetime: Duration,
    /// Answer to a wrong `authCode`.
    pub login_failure: LoginFailureStyle,
    /// How date-times are written.
    pub date_style: DateStyle,
    /// PUT behaviour.
    pub put_semantics: PutSemantics,
    /// Whether `POST /Organisations` answers with the new id (the spec says it does not).
    pub organisation_post_returns_id: bool,
    /// Emulate webCRM's sliding-window limit (250 per minute) when set.
    pub rate_limit_per_minute: Option<u32>,
    /// `Size` when a list request has none.
    pub default_page_size: u32,
    /// Add the raw `RowNumber` column to `/Queries` rows, as webCRM does.
    pub query_row_number: bool,
    /// The `*UpdatedBy` / `*CreatedBy` name of writes through the API.
    pub api_user_name: String,
    /// The name UI edits are attributed to.
    pub ui_user_name: String,
    /// Hook body shape.
    pub hook_payload: HookPayloadShape,
    /// Hook timing.
    pub hook_delivery: HookDelivery,
    /// Send every hook notification twice.
    pub hook_duplicates: bool,
    /// Deliver hook notifications out of order (shuffled per batch).
    pub hook_reorder: bool,
}

impl Default for WebcrmSandboxOptions {
    fn default() -> Self {
        WebcrmSandboxOptions {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            api_token: None,
            token_lifetime: Duration::from_secs(3600),
            login_failure: LoginFailureStyle::IsErrorOk,
            date_style: DateStyle::Offset(0),
            put_semantics: PutSemantics::Replace,
            organisation_post_returns_id: false,
            rate_limit_per_minute: None,
            default_page_size: 50,
            query_row_number: true,
            api_user_name: "API Sandbox integration".to_owned(),
            ui_user_name: "Sandbox UI user".to_owned(),
            hook_payload: HookPayloadShape::Envelope,
            hook_delivery: HookDelivery::Immediate,
            hook_duplicates: false,
            hook_reorder: false,
        }
    }
}

/// One injected failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429 with webCRM's throttling body; `header` adds `Retry-After`, `body` adds
    /// `RetryAfterSeconds`.
    RateLimit {
        /// Seconds to wait.
        retry_after_secs: u64,
        /// Send the `Retry-After` header.
        header: bool,
        /// Send `RetryAfterSeconds` in the body.
        body: bool,
    },
    /// This 5xx status with an error body.
    ServerError(u16),
    /// Answer 401 as if the token had expired.
    Unauthorized,
    /// Wait this long, then answer normally.
    Latency(Duration),
    /// Handle the request, then wait this long before answering: a client that gives up
    /// first never learns that its write happened (a timeout after the fact).
    LateAnswer(Duration),
}

impl Fault {
    /// A 429 with both the header and the body field.
    pub fn rate_limit(retry_after_secs: u64) -> Fault {
        Fault::RateLimit {
            retry_after_secs,
            header: true,
            body: true,
        }
    }
}

/// Entities the sandbox stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SandboxEntity {
    /// `/Organisations`, table `Organisation`.
    Organisation,
    /// `/Persons`, table `Person`.
    Person,
    /// `/Users`, table `User`.
    User,
    /// `/Opportunities`, table `Opportunity`.
    Opportunity,
    /// `/QuotationLines`, table `QuotationLine`.
    QuotationLine,
    /// `/QuotationLines/LinkedData` (the product catalogue; no query table).
    LinkedData,
}

impl SandboxEntity {
    /// All of them.
    pub const ALL: [SandboxEntity; 6] = [
        SandboxEntity::Organisation,
        SandboxEntity::Person,
        SandboxEntity::User,
        SandboxEntity::Opportunity,
        SandboxEntity::QuotationLine,
        SandboxEntity::LinkedData,
    ];

    /// The collection path.
    pub fn path(self) -> &'static str {
        match self {
            SandboxEntity::Organisation => "/Organisations",
            SandboxEntity::Person => "/Persons",
            SandboxEntity::User => "/Users",
            SandboxEntity::Opportunity => "/Opportunities",
            SandboxEntity::QuotationLine => "/QuotationLines",
            SandboxEntity::LinkedData => "/QuotationLines/LinkedData",
        }
    }

    /// Property name prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            SandboxEntity::Organisation => "Organisation",
            SandboxEntity::Person => "Person",
            SandboxEntity::User => "User",
            SandboxEntity::Opportunity => "Opportunity",
            SandboxEntity::QuotationLine => "QuotationLine",
            SandboxEntity::LinkedData => "QuotationLineLinkedDataItem",
        }
    }

    /// The id property.
    pub fn id_field(self) -> &'static str {
        match self {
            SandboxEntity::Organisation => "OrganisationId",
            SandboxEntity::Person => "PersonId",
            SandboxEntity::User => "UserId",
            SandboxEntity::Opportunity => "OpportunityId",
            SandboxEntity::QuotationLine => "QuotationLineId",
            SandboxEntity::LinkedData => "QuotationLineLinkedDataItemId",
        }
    }

    /// Properties of the read DTO (what GET emits).
    pub fn read_fields(self) -> &'static [FieldSpec] {
        match self {
            SandboxEntity::Organisation => Organisation::FIELDS,
            SandboxEntity::Person => Person::FIELDS,
            SandboxEntity::User => User::FIELDS,
            SandboxEntity::Opportunity => Opportunity::FIELDS,
            SandboxEntity::QuotationLine => QuotationLine::FIELDS,
            SandboxEntity::LinkedData => LinkedDataItem::FIELDS,
        }
    }

    /// Properties of the write DTO (what POST/PUT accept).
    pub fn write_fields(self) -> &'static [FieldSpec] {
        match self {
            SandboxEntity::QuotationLine => QuotationLineUpdate::FIELDS,
            other => other.read_fields(),
        }
    }

    /// The `/Queries` table name.
    pub fn table(self) -> Option<&'static str> {
        match self {
            SandboxEntity::LinkedData => None,
            other => Some(other.prefix()),
        }
    }

    /// By `/Queries` table name (case-insensitive).
    pub fn from_table(name: &str) -> Option<SandboxEntity> {
        SandboxEntity::ALL
            .into_iter()
            .find(|e| e.table().is_some_and(|t| t.eq_ignore_ascii_case(name)))
    }

    /// Whether the record has `*CreatedAt/By`, `*UpdatedAt/By`.
    pub fn has_audit_fields(self) -> bool {
        self != SandboxEntity::LinkedData
    }

    /// The hook collection reporting changes of this entity.
    pub fn hook_entity(self) -> Option<HookEntity> {
        match self {
            SandboxEntity::Organisation => Some(HookEntity::Organisations),
            SandboxEntity::Person => Some(HookEntity::Persons),
            SandboxEntity::User => Some(HookEntity::Users),
            SandboxEntity::Opportunity => Some(HookEntity::Opportunities),
            SandboxEntity::QuotationLine => Some(HookEntity::QuotationLines),
            SandboxEntity::LinkedData => None,
        }
    }

    /// The first id handed out (distinct ranges make mix-ups visible in tests).
    pub(super) fn first_id(self) -> i64 {
        match self {
            SandboxEntity::Organisation => 1001,
            SandboxEntity::Person => 2001,
            SandboxEntity::User => 11,
            SandboxEntity::Opportunity => 3001,
            SandboxEntity::QuotationLine => 4001,
            SandboxEntity::LinkedData => 501,
        }
    }
}
