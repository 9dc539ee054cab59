//! The small pieces of the `ip route` grammar that `parse` (changes) and
//! `query` (show, flush, get) share: values, prefixes, repeated keywords.

use std::collections::BTreeSet;
use std::net::IpAddr;

use pipework_model::{Family, ParseError};

use super::Selector;

pub(super) type Words<'a> = std::iter::Peekable<std::slice::Iter<'a, String>>;

pub(super) fn err(word: &str, why: &str) -> ParseError {
    ParseError::new("route argument", word, why)
}

pub(super) fn value<'a>(it: &mut Words<'a>, kw: &str) -> Result<&'a str, ParseError> {
    it.next()
        .map(String::as_str)
        .ok_or_else(|| err(kw, "is missing its value"))
}

pub(super) fn host_len(f: Family) -> u8 {
    match f {
        Family::V4 => 32,
        Family::V6 => 128,
    }
}

pub(super) fn family_of(ip: &IpAddr) -> Family {
    Family::of(ip)
}

/// Sets or checks the command's family against an address's.
pub(super) fn agree(
    family: &mut Option<Family>,
    ip: &IpAddr,
    word: &str,
) -> Result<(), ParseError> {
    let f = family_of(ip);
    match family {
        Some(g) if *g != f => Err(err(word, &format!("is not {g}"))),
        _ => {
            *family = Some(f);
            Ok(())
        }
    }
}

pub(super) fn address(word: &str, what: &str) -> Result<IpAddr, ParseError> {
    word.parse()
        .map_err(|_| ParseError::new(what, word, "is not an IP address"))
}

/// `default`, `all`, `any`, `ADDR` or `ADDR/LEN` (iproute2's `get_prefix`).
pub(super) fn selector(word: &str, family: Option<Family>) -> Result<Selector, ParseError> {
    if matches!(word, "default" | "all" | "any") {
        return Ok(Selector {
            family,
            addr: None,
            len: 0,
        });
    }
    let (a, len) = match word.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (word, None),
    };
    let ip = address(a, "prefix").map_err(|_| err(word, "is not a keyword, address or prefix"))?;
    let f = family_of(&ip);
    if family.is_some_and(|g| g != f) {
        return Err(err(word, &format!("is not {}", family.unwrap_or(f))));
    }
    let len = match len {
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= host_len(f))
            .ok_or_else(|| ParseError::new("prefix", word, "has an invalid prefix length"))?,
        None => host_len(f),
    };
    Ok(Selector {
        family: Some(f),
        addr: Some(ip),
        len,
    })
}

/// Records `kw` as given; a second time is an error.
pub(super) fn once(
    seen: &mut BTreeSet<&'static str>,
    kw: &'static str,
    hint: &str,
) -> Result<(), ParseError> {
    if seen.insert(kw) {
        Ok(())
    } else {
        Err(err(kw, &format!("is given twice{hint}")))
    }
}

/// Keywords of `ip route` that pipework does not implement.
pub(super) const UNSUPPORTED: [&str; 13] = [
    "as",
    "expires",
    "realms",
    "encap",
    "vrf",
    "congctl",
    "rtt",
    "rttvar",
    "rto_min",
    "ttl-propagate",
    "fastopen_no_cookie",
    "nhid",
    "realm",
];
