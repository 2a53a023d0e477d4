//! Typed client for the webCRM REST API (`https://api.webcrm.com`).
//!
//! - [`WebcrmClient`]: login (`POST /Auth/ApiLogin`) with a shared, single-flight token cache
//!   and one re-login on 401, every call through the shared outbound limiter and retry
//!   policy, errors classified into [`ApiError`], paged lists as streams.
//! - [`entities`]: the DTOs, generated from webCRM's Swagger definitions.
//! - [`query`]: the only way to build `/Queries` scripts.
//! - [`dates`]: the lenient date-time parser.

mod client;
pub mod config;
pub mod dates;
pub mod dto;
pub mod entities;
mod ops;
pub mod query;

pub use crate::clients::outbound::ApiError;
pub use client::{classify_error, WebcrmClient, API_NAME};
pub use config::{
    WebcrmClientConfig, WebcrmTimeouts, DEFAULT_BASE_URL, DEFAULT_RATE_LIMIT_PER_MINUTE,
    MAX_PAGE_SIZE,
};
pub use dates::{
    format_query_datetime, format_webcrm_datetime, parse_webcrm_datetime, DateParseError,
};
pub use dto::{
    ErrorBody, FieldKind, FieldSpec, Hook, HookEntity, HookEventType, TokenResponse, WebcrmEntity,
};
pub use entities::{
    LinkedDataItem, LinkedSetup, Opportunity, Organisation, Person, QuotationLine,
    QuotationLineUpdate, User,
};
pub use ops::{row_id, QueryRow};
pub use query::{col, CmpOp, Condition, Literal, Order, Query, QueryError, Table};
