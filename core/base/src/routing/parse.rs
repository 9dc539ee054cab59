//! The `ip route` grammar: `[-4|-6] VERB ARGS`, with iproute2's verbs and
//! keywords (and their abbreviations: `tab` is `table`), its defaults
//! (protocol boot, link scope without a gateway, the local table for local
//! routes), and stricter checks: a keyword given twice, a word that is no
//! keyword and an IPv4 prefix with host bits set are refused before
//! anything is sent.

use std::collections::BTreeSet;

use ipnet::IpNet;
use pipework_model::{Family, ParseError};
use pipework_sys::netlink::route_msg::{NextHop, RouteMsg};

use super::names::{matches, proto_number, scope_number, table_number, type_number, u32_of};
use super::query::{filter, get};
use super::words::{address, agree, err, family_of, once, selector, value, Words, UNSUPPORTED};
use super::{RouteCommand, Selector, Verb};

/// Parses `[-4|-6] [add|del|change|replace|prepend|append|test|show|list|get|flush] ...`.
pub fn parse_route(args: &[String]) -> Result<RouteCommand, ParseError> {
    let mut it = args.iter().peekable();
    let mut family = None;
    while let Some(a) = it.peek() {
        match a.as_str() {
            "-4" => family = Some(Family::V4),
            "-6" => family = Some(Family::V6),
            _ => break,
        }
        it.next();
    }
    let Some(v) = it.next() else {
        return filter(&mut it, family, false).map(RouteCommand::Show);
    };
    let v = v.as_str();
    let verb = if matches(v, "add") {
        Verb::Add
    } else if matches(v, "change") || v == "chg" {
        Verb::Change
    } else if matches(v, "replace") {
        Verb::Replace
    } else if matches(v, "prepend") {
        Verb::Prepend
    } else if matches(v, "append") {
        Verb::Append
    } else if matches(v, "test") {
        Verb::Test
    } else if matches(v, "delete") {
        Verb::Delete
    } else if matches(v, "list") || matches(v, "show") || matches(v, "lst") {
        return filter(&mut it, family, false).map(RouteCommand::Show);
    } else if matches(v, "get") {
        return get(&mut it, family);
    } else if matches(v, "flush") {
        if it.peek().is_none() {
            return Err(ParseError::new(
                "route command",
                "flush",
                "requires arguments (\"ip route flush\" requires arguments): a prefix, dev, table, proto, scope or type",
            ));
        }
        return filter(&mut it, family, true).map(RouteCommand::Flush);
    } else {
        return Err(ParseError::new(
            "route command",
            v,
            "must be add, del, change, replace, prepend, append, test, show, list, get or flush",
        ));
    };
    modify(&mut it, family, verb)
}

fn modify(
    it: &mut Words<'_>,
    mut family: Option<Family>,
    verb: Verb,
) -> Result<RouteCommand, ParseError> {
    let del = verb == Verb::Delete;
    let mut r = RouteMsg::new(family.unwrap_or(Family::V4));
    if del {
        r.scope = 255;
    } else {
        r.protocol = 3;
        r.kind = 1;
    }
    let mut seen = BTreeSet::new();
    let mut dst: Option<(String, Selector)> = None;
    let mut dev = None;
    let mut lock = 0u32;
    let mut nexthops: Vec<(NextHop, Option<String>)> = Vec::new();
    let mut gw_word = None;
    while let Some(a) = it.next() {
        let w = a.as_str();
        if w == "src" {
            once(&mut seen, "src", "")?;
            let ip = address(value(it, w)?, "src")?;
            agree(&mut family, &ip, "src")?;
            r.prefsrc = Some(ip);
        } else if w == "via" {
            once(
                &mut seen,
                "via",
                " (use nexthop syntax to specify multiple via)",
            )?;
            let mut g = value(it, w)?;
            if g == "inet" || g == "inet6" {
                g = value(it, w)?;
            }
            let ip = address(g, "gateway")?;
            agree(&mut family, &ip, g)?;
            r.gateway = Some(ip);
            gw_word = Some(g.to_string());
        } else if w == "from" {
            once(&mut seen, "from", "")?;
            let s = selector(value(it, w)?, family)?;
            family = family.or(s.family);
            r.src = s.addr;
            r.src_len = s.len;
        } else if w == "tos" || matches(w, "dsfield") {
            once(&mut seen, "tos", "")?;
            let v = value(it, w)?;
            r.tos = u8::try_from(u32_of("tos", v)?).map_err(|_| err(v, "is not a TOS value"))?;
        } else if matches(w, "metric") || matches(w, "priority") || w == "preference" {
            once(&mut seen, "metric", "")?;
            r.priority = Some(u32_of("metric", value(it, w)?)?);
        } else if w == "scope" {
            once(&mut seen, "scope", "")?;
            r.scope = scope_number(value(it, w)?)?;
            seen.insert("scope-given");
        } else if let Some((id, kw)) = metric_keyword(w) {
            once(&mut seen, kw, "")?;
            let mut v = value(it, w)?;
            if v == "lock" {
                lock |= 1 << id;
                v = value(it, w)?;
            }
            let n = if id == 12 {
                if v != "ecn" {
                    return Err(err(v, "is not a feature (ecn)"));
                }
                1
            } else {
                u32_of(kw, v)?
            };
            if (id == 10 && n > 255) || (id == 15 && n > 1) {
                return Err(ParseError::new(kw, v, "is out of range"));
            }
            r.metrics.push((id, n));
        } else if w == "onlink" {
            r.flags |= 0x4;
        } else if w == "nexthop" {
            nexthops = parse_nexthops(it, &mut family)?;
        } else if matches(w, "protocol") {
            once(&mut seen, "protocol", "")?;
            r.protocol = proto_number(value(it, w)?)?;
        } else if matches(w, "table") {
            once(&mut seen, "table", "")?;
            r.table = table_number(value(it, w)?)?;
            seen.insert("table-given");
        } else if w == "dev" || w == "oif" {
            once(&mut seen, "dev", "")?;
            dev = Some(value(it, w)?.to_string());
        } else if matches(w, "pref") {
            once(&mut seen, "pref", "")?;
            let v = value(it, w)?;
            r.pref = Some(match v {
                "low" => 3,
                "medium" => 0,
                "high" => 1,
                _ => u8::try_from(u32_of("pref", v)?).map_err(|_| err(v, "is out of range"))?,
            });
        } else if UNSUPPORTED.contains(&w) {
            return Err(err(w, "is not supported by pipework's route command"));
        } else {
            let mut word = w;
            if word == "to" {
                word = value(it, w)?;
            }
            if !word.starts_with(|c: char| c.is_ascii_digit()) {
                if let Some(t) = type_number(word) {
                    once(&mut seen, "type", "")?;
                    r.kind = t;
                    word = value(it, word)?;
                }
            }
            if let Some((first, _)) = &dst {
                return Err(err(
                    word,
                    &format!("is not a keyword (the destination is already {first})"),
                ));
            }
            let s = selector(word, family)?;
            family = family.or(s.family);
            dst = Some((word.to_string(), s));
        }
    }
    let Some((word, d)) = dst else {
        return Err(ParseError::new(
            "route",
            "",
            "needs a destination prefix or 'default'",
        ));
    };
    let f = family.unwrap_or(Family::V4);
    r.family = f;
    if let Some(ip) = d.addr {
        let net =
            IpNet::new(ip, d.len).map_err(|_| ParseError::new("prefix", &word, "is invalid"))?;
        // IPv6: the kernel keeps the network part, as `ip -6 route` shows.
        if net.addr() != net.network() && f == Family::V4 {
            return Err(ParseError::new(
                "prefix",
                &word,
                "Invalid prefix for given prefix length",
            ));
        }
        r.dst = Some(net.network());
    }
    r.dst_len = d.len;
    if let Some(g) = &gw_word {
        if r.gateway.is_some_and(|ip| family_of(&ip) != f) {
            return Err(ParseError::new(
                "gateway",
                g,
                "does not match the route's address family",
            ));
        }
    }
    if lock != 0 {
        r.metrics.push((1, lock));
    }
    if !seen.contains("table-given") && matches!(r.kind, 2 | 3 | 4 | 10) {
        r.table = 255;
    }
    if !seen.contains("scope-given") {
        r.scope = match (f, r.kind) {
            (Family::V6, _) => 0,
            (_, 2 | 10) => 254,
            (_, 3..=5) => 253,
            (_, 0 | 1) if del => 255,
            (_, 0 | 1) if r.gateway.is_none() && nexthops.is_empty() => 253,
            _ => r.scope,
        };
    }
    let nexthop_devs = nexthops.iter().map(|(_, d)| d.clone()).collect();
    r.multipath = nexthops.into_iter().map(|(n, _)| n).collect();
    Ok(RouteCommand::Modify {
        verb,
        route: r,
        dev,
        nexthop_devs,
    })
}

/// The `RTAX_*` metrics given as `KEYWORD [lock] N`.
fn metric_keyword(w: &str) -> Option<(u16, &'static str)> {
    Some(match w {
        "mtu" => (2, "mtu"),
        "hoplimit" => (10, "hoplimit"),
        "advmss" => (8, "advmss"),
        _ if matches(w, "reordering") => (9, "reordering"),
        _ if matches(w, "window") => (3, "window"),
        _ if matches(w, "cwnd") => (7, "cwnd"),
        _ if matches(w, "initcwnd") => (11, "initcwnd"),
        _ if matches(w, "initrwnd") => (14, "initrwnd"),
        _ if matches(w, "features") => (12, "features"),
        _ if matches(w, "quickack") => (15, "quickack"),
        _ if matches(w, "ssthresh") => (6, "ssthresh"),
        _ => return None,
    })
}

/// `nexthop via A dev X weight N onlink nexthop ...`: the rest of the line.
fn parse_nexthops(
    it: &mut Words<'_>,
    family: &mut Option<Family>,
) -> Result<Vec<(NextHop, Option<String>)>, ParseError> {
    let mut out = Vec::new();
    let mut cur = Some((NextHop::default(), None::<String>, BTreeSet::new()));
    while let Some(a) = it.next() {
        let w = a.as_str();
        let Some((nh, dev, seen)) = cur.as_mut() else {
            return Err(err(
                w,
                "is not \"nexthop\" (nexthop or end of line is expected)",
            ));
        };
        match w {
            "nexthop" => {
                if let Some((n, d, _)) = cur.take() {
                    out.push((n, d));
                }
                cur = Some((NextHop::default(), None, BTreeSet::new()));
            }
            "via" => {
                once(seen, "via", " in one nexthop")?;
                let mut g = value(it, w)?;
                if g == "inet" || g == "inet6" {
                    g = value(it, w)?;
                }
                let ip = address(g, "gateway")?;
                agree(family, &ip, g)?;
                nh.gateway = Some(ip);
            }
            "dev" => {
                once(seen, "dev", " in one nexthop")?;
                *dev = Some(value(it, w)?.to_string());
            }
            "weight" => {
                once(seen, "weight", " in one nexthop")?;
                let v = value(it, w)?;
                let n = u32_of("weight", v)?;
                if n == 0 || n > 256 {
                    return Err(ParseError::new("weight", v, "must be 1 to 256"));
                }
                nh.hops = (n - 1) as u8;
            }
            "onlink" => nh.flags |= 0x4,
            _ => {
                return Err(err(
                    w,
                    "is not a nexthop keyword (via, dev, weight, onlink, nexthop)",
                ))
            }
        }
    }
    if let Some((n, d, s)) = cur {
        if s.is_empty() && n == NextHop::default() {
            return Err(err(
                "nexthop",
                "is empty (unexpected end of line after \"nexthop\")",
            ));
        }
        out.push((n, d));
    }
    Ok(out)
}
