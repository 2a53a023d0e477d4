//! List queries (`limit`, `offset`, filters `field[op]=value`, `sort_by[asc]`) and pages.

use std::fmt::Display;

/// Filters and options for a `GET` list call. Every page of a listing resends all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    limit: Option<u32>,
    params: Vec<(String, String)>,
}

impl ListQuery {
    pub fn new() -> Self {
        Self::default()
    }

    /// Page size, clamped to Chargebee's 1..=100.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit.clamp(1, 100));
        self
    }

    /// `field[op]=value`, e.g. `filter("email", "is", "a@b.c")`. Blank values are dropped.
    pub fn filter(mut self, field: &str, op: &str, value: impl Display) -> Self {
        let value = value.to_string();
        if !value.is_empty() {
            self.params.push((format!("{field}[{op}]"), value));
        }
        self
    }

    pub fn is(self, field: &str, value: impl Display) -> Self {
        self.filter(field, "is", value)
    }

    pub fn is_not(self, field: &str, value: impl Display) -> Self {
        self.filter(field, "is_not", value)
    }

    pub fn starts_with(self, field: &str, value: impl Display) -> Self {
        self.filter(field, "starts_with", value)
    }

    /// `field[in]=["a","b"]` (the quoted JSON form the SDKs send).
    pub fn is_in<S: AsRef<str>>(self, field: &str, values: &[S]) -> Self {
        let list: Vec<&str> = values.iter().map(AsRef::as_ref).collect();
        let json = serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_string());
        self.filter(field, "in", json)
    }

    /// `field[after]=<unix seconds>`.
    pub fn after(self, field: &str, unix_seconds: i64) -> Self {
        self.filter(field, "after", unix_seconds)
    }

    /// `field[before]=<unix seconds>`.
    pub fn before(self, field: &str, unix_seconds: i64) -> Self {
        self.filter(field, "before", unix_seconds)
    }

    pub fn sort_asc(mut self, field: &str) -> Self {
        self.params.push(("sort_by[asc]".into(), field.into()));
        self
    }

    pub fn sort_desc(mut self, field: &str) -> Self {
        self.params.push(("sort_by[desc]".into(), field.into()));
        self
    }

    /// `include_deleted=true` (customers and orders).
    pub fn include_deleted(mut self, include: bool) -> Self {
        self.params
            .push(("include_deleted".into(), include.to_string()));
        self
    }

    /// Any other parameter, sent as given.
    pub fn param(mut self, key: &str, value: impl Display) -> Self {
        self.params.push((key.into(), value.to_string()));
        self
    }

    /// The query pairs for one page.
    pub fn to_pairs(&self, offset: Option<&str>) -> Vec<(String, String)> {
        let mut pairs = Vec::with_capacity(self.params.len() + 2);
        if let Some(limit) = self.limit {
            pairs.push(("limit".to_string(), limit.to_string()));
        }
        pairs.extend(self.params.iter().cloned());
        if let Some(offset) = offset {
            pairs.push(("offset".to_string(), offset.to_string()));
        }
        pairs
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; absent on the last page.
    pub next_offset: Option<String>,
}
