//! Chargebee's `application/x-www-form-urlencoded` dialect, both directions.
//!
//! Encoding rules (Chargebee API v2):
//! - scalars: `first_name=Ann`; booleans `true`/`false`; integers in decimal.
//! - nested objects: `billing_address[line1]=...`.
//! - arrays of scalars: `applicable_items[0]=a&applicable_items[1]=b`.
//! - arrays of objects, indexed per field: `charges[amount][0]=100&charges[description][0]=x`.
//! - JSON-typed params (`meta_data`, `metadata`) as one JSON string.
//! - optional values that are absent or blank are omitted: Chargebee treats a blank as null
//!   and clears the field. [`Form::clear`] sends a blank on purpose.
//!
//! [`decode`] turns such pairs back into a JSON tree (all leaves strings); the sandbox parses
//! requests with it and the property tests check that it inverts the encoder.

use std::collections::BTreeMap;
use std::fmt::Display;

use serde_json::{Map, Value};

/// An ordered list of form pairs built with Chargebee's conventions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value` unless the value renders blank.
    pub fn set(&mut self, key: impl Into<String>, value: impl Display) -> &mut Self {
        let value = value.to_string();
        if !value.is_empty() {
            self.pairs.push((key.into(), value));
        }
        self
    }

    /// Adds `key=value` when present and not blank.
    pub fn opt<T: Display>(&mut self, key: &str, value: Option<T>) -> &mut Self {
        if let Some(v) = value {
            self.set(key, v);
        }
        self
    }

    /// Adds a JSON-encoded param (`meta_data`, `metadata`) when present.
    pub fn json(&mut self, key: &str, value: Option<&Value>) -> &mut Self {
        if let Some(v) = value {
            if !v.is_null() {
                self.set(key, v.to_string());
            }
        }
        self
    }

    /// Adds `parent[field]=value` when present and not blank.
    pub fn nested<T: Display>(&mut self, parent: &str, field: &str, value: Option<T>) -> &mut Self {
        if let Some(v) = value {
            self.set(format!("{parent}[{field}]"), v);
        }
        self
    }

    /// Adds `parent[0]=a&parent[1]=b`, skipping blank values (indexes stay contiguous).
    pub fn scalar_list<T: Display>(&mut self, parent: &str, values: &[T]) -> &mut Self {
        let mut index = 0usize;
        for v in values {
            let v = v.to_string();
            if !v.is_empty() {
                self.pairs.push((format!("{parent}[{index}]"), v));
                index += 1;
            }
        }
        self
    }

    /// Adds an array of objects indexed per field: `parent[field][i]`. `fields` renders one
    /// object as `(field, value)` pairs; absent or blank values are skipped, and an object
    /// with no value at all is dropped so that object indexes stay contiguous.
    pub fn object_list<T, F>(&mut self, parent: &str, items: &[T], fields: F) -> &mut Self
    where
        F: Fn(&T) -> Vec<(&'static str, Option<String>)>,
    {
        let mut index = 0usize;
        for item in items {
            let present: Vec<(&'static str, String)> = fields(item)
                .into_iter()
                .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v)))
                .collect();
            if present.is_empty() {
                continue;
            }
            for (field, value) in present {
                self.pairs
                    .push((format!("{parent}[{field}][{index}]"), value));
            }
            index += 1;
        }
        self
    }

    /// Sends `key=` deliberately, which Chargebee treats as "clear this field".
    pub fn clear(&mut self, key: impl Into<String>) -> &mut Self {
        self.pairs.push((key.into(), String::new()));
        self
    }

    /// Appends every pair of `other`.
    pub fn extend(&mut self, other: Form) -> &mut Self {
        self.pairs.extend(other.pairs);
        self
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }

    /// The urlencoded body or query string.
    pub fn encode(&self) -> String {
        serde_urlencoded::to_string(&self.pairs).unwrap_or_default()
    }
}

/// Why a form could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed parameter `{key}`: {reason}")]
pub struct FormError {
    pub key: String,
    pub reason: &'static str,
}

/// Split `a[b][0]` into `["a", "b", "0"]`.
pub fn split_key(key: &str) -> Result<Vec<&str>, FormError> {
    let err = |reason| FormError {
        key: key.to_string(),
        reason,
    };
    let (head, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if head.is_empty() {
        return Err(err("empty name"));
    }
    let mut segments = vec![head];
    while !rest.is_empty() {
        if !rest.starts_with('[') {
            return Err(err("expected `[`"));
        }
        let close = rest.find(']').ok_or_else(|| err("missing `]`"))?;
        let seg = &rest[1..close];
        if seg.is_empty() || seg.contains('[') {
            return Err(err("empty or nested brackets"));
        }
        segments.push(seg);
        rest = &rest[close + 1..];
    }
    Ok(segments)
}

fn index_of(seg: &str) -> Option<usize> {
    if seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_digit()) || seg.len() > 6 {
        return None;
    }
    seg.parse().ok()
}

enum Node {
    Leaf(String),
    Obj(BTreeMap<String, Node>),
    Arr(BTreeMap<usize, Node>),
}

impl Node {
    fn into_value(self) -> Value {
        match self {
            Node::Leaf(s) => Value::String(s),
            Node::Obj(m) => {
                Value::Object(m.into_iter().map(|(k, v)| (k, v.into_value())).collect())
            }
            Node::Arr(m) => {
                let len = m.keys().next_back().map_or(0, |k| k + 1);
                let mut out = vec![Value::Null; len];
                for (i, v) in m {
                    out[i] = v.into_value();
                }
                Value::Array(out)
            }
        }
    }
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn insert(node: &mut Node, path: &[Seg<'_>], value: String, key: &str) -> Result<(), FormError> {
    let err = |reason| FormError {
        key: key.to_string(),
        reason,
    };
    let Some((first, rest)) = path.split_first() else {
        return Err(err("empty path"));
    };
    let child = match (node, first) {
        (Node::Obj(map), Seg::Key(k)) => {
            if rest.is_empty() {
                if map.contains_key(*k) {
                    return Err(err("given more than once"));
                }
                map.insert((*k).to_string(), Node::Leaf(value));
                return Ok(());
            }
            map.entry((*k).to_string())
                .or_insert_with(|| match rest[0] {
                    Seg::Key(_) => Node::Obj(BTreeMap::new()),
                    Seg::Index(_) => Node::Arr(BTreeMap::new()),
                })
        }
        (Node::Arr(map), Seg::Index(i)) => {
            if rest.is_empty() {
                if map.contains_key(i) {
                    return Err(err("given more than once"));
                }
                map.insert(*i, Node::Leaf(value));
                return Ok(());
            }
            map.entry(*i).or_insert_with(|| match rest[0] {
                Seg::Key(_) => Node::Obj(BTreeMap::new()),
                Seg::Index(_) => Node::Arr(BTreeMap::new()),
            })
        }
        _ => return Err(err("conflicts with another parameter")),
    };
    match (child, &rest[0]) {
        (c @ Node::Obj(_), Seg::Key(_)) | (c @ Node::Arr(_), Seg::Index(_)) => {
            insert(c, rest, value, key)
        }
        _ => Err(err("conflicts with another parameter")),
    }
}

/// Decode form pairs into a JSON object whose leaves are strings:
/// `a=1` → `{"a":"1"}`, `a[b]=1` → `{"a":{"b":"1"}}`, `a[0]=x` → `{"a":["x"]}`,
/// `a[f][0]=x` → `{"a":[{"f":"x"}]}` (per-field indexed arrays of objects),
/// `a[b][c]=x` → `{"a":{"b":{"c":"x"}}}`. Gaps in indexes become `null`.
pub fn decode<K: AsRef<str>, V: AsRef<str>>(
    pairs: &[(K, V)],
) -> Result<Map<String, Value>, FormError> {
    let mut root = Node::Obj(BTreeMap::new());
    for (key, value) in pairs {
        let key = key.as_ref();
        let segments = split_key(key)?;
        let mut path: Vec<Seg<'_>> = Vec::with_capacity(segments.len());
        let n = segments.len();
        // `parent[field][i]`: the index belongs to the object, so move it next to the parent.
        let trailing_index = if n >= 3 {
            index_of(segments[n - 1])
        } else {
            None
        };
        match trailing_index {
            Some(i) if index_of(segments[1]).is_none() => {
                path.push(Seg::Key(segments[0]));
                path.push(Seg::Index(i));
                for s in &segments[1..n - 1] {
                    path.push(Seg::Key(s));
                }
            }
            _ => {
                path.push(Seg::Key(segments[0]));
                for s in &segments[1..] {
                    match index_of(s) {
                        Some(i) => path.push(Seg::Index(i)),
                        None => path.push(Seg::Key(s)),
                    }
                }
            }
        }
        insert(&mut root, &path, value.as_ref().to_string(), key)?;
    }
    match root.into_value() {
        Value::Object(m) => Ok(m),
        _ => Ok(Map::new()),
    }
}

/// Parse an urlencoded string and [`decode`] it.
pub fn decode_str(encoded: &str) -> Result<Map<String, Value>, FormError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(encoded).map_err(|_| FormError {
            key: String::new(),
            reason: "not valid form encoding",
        })?;
    decode(&pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encoder_uses_brackets_and_per_field_indexes() {
        let mut f = Form::new();
        f.set("id", "c1")
            .opt::<&str>("first_name", None)
            .opt("last_name", Some(""))
            .nested("billing_address", "line1", Some("Main St 1"))
            .json("meta_data", Some(&json!({"webcrm_id": 7})))
            .scalar_list("applicable_items", &["a", "", "b"])
            .object_list("charges", &[(100, Some("x")), (200, None)], |(a, d)| {
                vec![
                    ("amount", Some(a.to_string())),
                    ("description", d.map(str::to_string)),
                ]
            });
        let keys: Vec<&str> = f.pairs().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "id",
                "billing_address[line1]",
                "meta_data",
                "applicable_items[0]",
                "applicable_items[1]",
                "charges[amount][0]",
                "charges[description][0]",
                "charges[amount][1]",
            ]
        );
        assert_eq!(
            Value::Object(decode(f.pairs()).unwrap()),
            json!({
                "id": "c1",
                "billing_address": {"line1": "Main St 1"},
                "meta_data": "{\"webcrm_id\":7}",
                "applicable_items": ["a", "b"],
                "charges": [{"amount": "100", "description": "x"}, {"amount": "200"}],
            })
        );
    }

    #[test]
    fn decoder_keeps_nested_filters_and_rejects_conflicts() {
        let m = decode_str("relationship%5Bparent_id%5D%5Bis%5D=p1&sort_by%5Basc%5D=updated_at")
            .unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"relationship": {"parent_id": {"is": "p1"}}, "sort_by": {"asc": "updated_at"}})
        );
        assert!(decode(&[("a", "1"), ("a[b]", "2")]).is_err());
        assert!(decode(&[("a", "1"), ("a", "2")]).is_err());
        assert!(decode(&[("a[", "1")]).is_err());
    }
}
