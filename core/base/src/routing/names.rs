//! The words of `ip route` and `ip rule`: table, protocol, scope and type
//! names both ways (with `/etc/iproute2/rt_tables`, `rt_protos`, `rt_scopes`
//! and their `.d` directories, as iproute2 reads them), iproute2's
//! abbreviation rule and number parsing.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use pipework_model::ParseError;

/// iproute2's `matches(word, keyword)`: `word` is a non-empty prefix of
/// `keyword` ("tab" for "table").
pub fn matches(word: &str, keyword: &str) -> bool {
    !word.is_empty() && keyword.starts_with(word)
}

/// An unsigned number, decimal or `0x` hexadecimal (iproute2's `get_u32`).
pub fn u32_of(what: &str, v: &str) -> Result<u32, ParseError> {
    let r = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None if v.len() > 1 && v.starts_with('0') => u32::from_str_radix(&v[1..], 8),
        None => v.parse(),
    };
    r.map_err(|_| ParseError::new(what, v, "is not a valid number"))
}

struct Tab {
    by_num: BTreeMap<u32, String>,
}

impl Tab {
    fn load(builtin: &[(u32, &str)], file: &str) -> Tab {
        let mut by_num: BTreeMap<u32, String> =
            builtin.iter().map(|(n, s)| (*n, s.to_string())).collect();
        let mut files = vec![
            format!("/usr/lib/iproute2/{file}"),
            format!("/etc/iproute2/{file}"),
        ];
        for dir in [
            format!("/usr/lib/iproute2/{file}.d"),
            format!("/etc/iproute2/{file}.d"),
        ] {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                let mut v: Vec<String> = rd
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                v.sort();
                files.extend(v);
            }
        }
        for f in files {
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let mut w = line.split_whitespace();
                let (Some(n), Some(name)) = (w.next(), w.next()) else {
                    continue;
                };
                if let Ok(n) = u32_of("id", n) {
                    by_num.insert(n, name.to_string());
                }
            }
        }
        Tab { by_num }
    }

    fn name(&self, n: u32) -> String {
        self.by_num
            .get(&n)
            .cloned()
            .unwrap_or_else(|| n.to_string())
    }

    fn number(&self, s: &str) -> Option<u32> {
        self.by_num
            .iter()
            .find(|(_, v)| v.as_str() == s)
            .map(|(k, _)| *k)
            .or_else(|| u32_of("id", s).ok())
    }
}

fn tables() -> &'static Tab {
    static T: OnceLock<Tab> = OnceLock::new();
    T.get_or_init(|| {
        Tab::load(
            &[(253, "default"), (254, "main"), (255, "local")],
            "rt_tables",
        )
    })
}

fn protos() -> &'static Tab {
    static T: OnceLock<Tab> = OnceLock::new();
    T.get_or_init(|| {
        Tab::load(
            &[
                (0, "unspec"),
                (1, "redirect"),
                (2, "kernel"),
                (3, "boot"),
                (4, "static"),
                (8, "gated"),
                (9, "ra"),
                (10, "mrt"),
                (11, "zebra"),
                (12, "bird"),
                (13, "dnrouted"),
                (14, "xorp"),
                (15, "ntk"),
                (16, "dhcp"),
                (18, "keepalived"),
                (42, "babel"),
                (186, "bgp"),
                (187, "isis"),
                (188, "ospf"),
                (189, "rip"),
                (192, "eigrp"),
            ],
            "rt_protos",
        )
    })
}

fn scopes() -> &'static Tab {
    static T: OnceLock<Tab> = OnceLock::new();
    T.get_or_init(|| {
        Tab::load(
            &[
                (0, "global"),
                (200, "site"),
                (253, "link"),
                (254, "host"),
                (255, "nowhere"),
            ],
            "rt_scopes",
        )
    })
}

pub fn table_name(n: u32) -> String {
    tables().name(n)
}

pub fn table_number(s: &str) -> Result<u32, ParseError> {
    tables()
        .number(s)
        .ok_or_else(|| ParseError::new("table", s, "is not a table id or name"))
}

pub fn proto_name(n: u8) -> String {
    protos().name(u32::from(n))
}

pub fn proto_number(s: &str) -> Result<u8, ParseError> {
    protos()
        .number(s)
        .and_then(|n| u8::try_from(n).ok())
        .ok_or_else(|| ParseError::new("protocol", s, "is not a protocol number or name"))
}

pub fn scope_name(n: u8) -> String {
    scopes().name(u32::from(n))
}

pub fn scope_number(s: &str) -> Result<u8, ParseError> {
    scopes()
        .number(s)
        .and_then(|n| u8::try_from(n).ok())
        .ok_or_else(|| ParseError::new("scope", s, "is not a scope number or name"))
}

const TYPES: [&str; 12] = [
    "none",
    "unicast",
    "local",
    "broadcast",
    "anycast",
    "multicast",
    "blackhole",
    "unreachable",
    "prohibit",
    "throw",
    "nat",
    "xresolve",
];

/// `RTN_*` as iproute2 prints it.
pub fn type_name(n: u8) -> String {
    TYPES
        .get(usize::from(n))
        .map(|s| s.to_string())
        .unwrap_or_else(|| n.to_string())
}

/// A route type word (`blackhole`, ... or a number); `None` if not one.
pub fn type_number(s: &str) -> Option<u8> {
    if s == "none" {
        return None;
    }
    TYPES
        .iter()
        .position(|t| *t == s)
        .and_then(|n| u8::try_from(n).ok())
        .or_else(|| u32_of("type", s).ok().and_then(|n| u8::try_from(n).ok()))
}
