//! Parsing of the route and rule grammars (no kernel needed).

use super::*;

fn s(v: &str) -> Vec<String> {
    v.split_whitespace().map(String::from).collect()
}
