//! Pure normalisation between webCRM's and Chargebee's representations.
//!
//! webCRM stores money as `f64` in major units, countries as free text and currencies as
//! whatever the installation configured (sometimes system codes such as `"00"`); Chargebee wants
//! integer minor units, ISO 3166-1 alpha-2 countries, ISO 4217 currencies and short fields.
//! Everything here is side-effect free so the engine can compare and convert records
//! deterministically, and so the rules can be tested without either API.

pub mod country;
pub mod currency;
pub mod money;
pub mod text;
