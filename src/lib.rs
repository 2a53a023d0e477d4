pub fn placeholder() {}

pub mod clients;
pub mod sandbox;
