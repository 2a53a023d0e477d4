//! Typed client for the webCRM REST API (`https://api.webcrm.com`).

pub mod dates;
pub mod dto;
pub mod entities;
pub mod query;

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
pub use query::{col, CmpOp, Condition, Literal, Order, Query, QueryError, Table};
