//! OVSDB's JSON notation for values (RFC 7047 section 5.1): atoms, `["set",
//! [...]]`, `["map", [[k, v], ...]]`, `["uuid", "..."]`, `["named-uuid", "..."]`.
//! A set of exactly one element may also arrive as the bare atom.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// A reference to an existing row.
pub fn uuid(u: &str) -> Value {
    json!(["uuid", u])
}

/// A reference to a row inserted earlier in the same transaction.
pub fn named(n: &str) -> Value {
    json!(["named-uuid", n])
}

pub fn set(items: Vec<Value>) -> Value {
    json!(["set", items])
}

pub fn empty_set() -> Value {
    set(Vec::new())
}

pub fn map(m: &BTreeMap<String, String>) -> Value {
    let pairs: Vec<Value> = m.iter().map(|(k, v)| json!([k, v])).collect();
    json!(["map", pairs])
}

/// The members of a set value; a bare atom counts as a set of one.
pub fn set_members(v: &Value) -> Option<Vec<Value>> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, items]) if tag == "set" => items.as_array().cloned(),
        Some([tag, _]) if tag == "map" => None,
        _ => Some(vec![v.clone()]),
    }
}

/// The UUID in `["uuid", "..."]`.
pub fn as_uuid(v: &Value) -> Option<String> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, u]) if tag == "uuid" => u.as_str().map(String::from),
        _ => None,
    }
}

/// Every UUID in a set of references.
pub fn uuids(v: &Value) -> Vec<String> {
    set_members(v)
        .unwrap_or_default()
        .iter()
        .filter_map(as_uuid)
        .collect()
}

/// An optional integer column: empty set is `None`.
pub fn optional_int(v: &Value) -> Option<i64> {
    set_members(v)?.first()?.as_i64()
}

/// An optional string column: empty set is `None`.
pub fn optional_str(v: &Value) -> Option<String> {
    set_members(v)?.first()?.as_str().map(String::from)
}

/// A string-to-string map column.
pub fn string_map(v: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some([tag, pairs]) = v.as_array().map(Vec::as_slice) {
        if tag == "map" {
            for p in pairs.as_array().into_iter().flatten() {
                if let (Some(k), Some(v)) = (p[0].as_str(), p[1].as_str()) {
                    out.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_of_one_may_be_bare() {
        assert_eq!(optional_int(&json!(5)), Some(5));
        assert_eq!(optional_int(&json!(["set", []])), None);
        assert_eq!(optional_str(&json!("up")), Some("up".into()));
        assert_eq!(uuids(&json!(["uuid", "a"])), vec!["a".to_string()]);
        assert_eq!(
            uuids(&json!(["set", [["uuid", "a"], ["uuid", "b"]]])),
            vec!["a".to_string(), "b".to_string()]
        );
        let m = string_map(&json!(["map", [["k", "v"]]]));
        assert_eq!(m.get("k").map(String::as_str), Some("v"));
        assert_eq!(set_members(&json!(["map", []])), None);
    }
}
