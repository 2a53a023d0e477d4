//! webcrm-chargebee-sync: two-way sync between webCRM and Chargebee.

pub mod admin;
pub mod cli;
pub mod clients;
pub mod config;
pub mod console;
pub mod demo;
pub mod hex;
pub mod http;
pub mod intake;
pub mod poller;
pub mod queue;
pub mod reconciler;
pub mod register;
pub mod resync_command;
pub mod sandbox;
pub mod serve;
pub mod store;
pub mod sync;
pub mod telemetry;
