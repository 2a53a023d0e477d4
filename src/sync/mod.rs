//! The sync engine: the shared merge, the `sync` job handler, and one module per pairing.

pub mod engine;
pub mod merge;
pub mod normalize;
pub mod pairing;
pub mod pairings;
pub mod rekey;
pub mod resync;
pub mod values;
