pub mod clients;
pub mod sandbox;

pub fn placeholder() {}
