//! The sync engine's job handlers.

pub mod rekey;
