//! Faithful in-memory emulators of the external APIs, for tests, `demo` and `sandbox`.

pub mod chargebee;
pub mod webcrm;
