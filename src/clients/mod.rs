//! Typed clients for the two APIs the service talks to, and the outbound-call machinery they
//! share (rate limiting, retries, error classification).

pub mod chargebee;
pub mod outbound;
pub mod webcrm;
