pub fn placeholder() {}

pub mod clients;
