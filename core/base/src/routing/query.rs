//! The `ip route` commands that read: `show`/`list` and `flush` selectors
//! (iproute2's route filter) and `get`.

use std::collections::BTreeSet;

use pipework_model::{Family, ParseError};
use pipework_sys::netlink::route_msg::RouteMsg;

use super::names::{matches, proto_number, scope_number, table_number, type_number, u32_of};
use super::words::{err, host_len, once, selector, value, Words, UNSUPPORTED};
use super::{RouteCommand, RouteFilter, Selector};

/// The selectors of `show` and `flush`.
pub(super) fn filter(
    it: &mut Words<'_>,
    family: Option<Family>,
    flush: bool,
) -> Result<RouteFilter, ParseError> {
    let mut f = RouteFilter {
        family,
        table: 254,
        ..RouteFilter::default()
    };
    let mut seen = BTreeSet::new();
    let _ = flush;
    while let Some(a) = it.next() {
        let w = a.as_str();
        if matches(w, "table") {
            once(&mut seen, "table", "")?;
            let v = value(it, w)?;
            f.table = match v {
                "all" => 0,
                "cache" => {
                    f.cloned = true;
                    254
                }
                _ => table_number(v)?,
            };
        } else if matches(w, "cached") || matches(w, "cloned") {
            f.cloned = true;
        } else if w == "tos" || matches(w, "dsfield") {
            once(&mut seen, "tos", "")?;
            let v = value(it, w)?;
            f.tos =
                Some(u8::try_from(u32_of("tos", v)?).map_err(|_| err(v, "is not a TOS value"))?);
        } else if matches(w, "protocol") {
            once(&mut seen, "protocol", "")?;
            let v = value(it, w)?;
            f.protocol = if v == "all" {
                None
            } else {
                Some(proto_number(v)?)
            };
        } else if matches(w, "scope") {
            once(&mut seen, "scope", "")?;
            let v = value(it, w)?;
            f.scope = if v == "all" {
                None
            } else {
                Some(scope_number(v)?)
            };
        } else if matches(w, "type") {
            once(&mut seen, "type", "")?;
            let v = value(it, w)?;
            f.kind = Some(type_number(v).ok_or_else(|| err(v, "is not a route type"))?);
        } else if w == "dev" || w == "oif" {
            once(&mut seen, "dev", "")?;
            f.dev = Some(value(it, w)?.to_string());
        } else if w == "iif" {
            once(&mut seen, "iif", "")?;
            f.iif = Some(value(it, w)?.to_string());
        } else if matches(w, "metric") || matches(w, "priority") || w == "preference" {
            once(&mut seen, "metric", "")?;
            f.metric = Some(u32_of("metric", value(it, w)?)?);
        } else if w == "via" {
            once(&mut seen, "via", "")?;
            let mut g = value(it, w)?;
            if g == "inet" || g == "inet6" {
                g = value(it, w)?;
            }
            f.via = Some(selector(g, family)?);
        } else if w == "src" {
            once(&mut seen, "src", "")?;
            f.src = Some(selector(value(it, w)?, family)?);
        } else if matches(w, "from") {
            once(&mut seen, "from", "")?;
            let v = value(it, w)?;
            let (root, within) = prefix_selector(it, v, family)?;
            f.from_root = root;
            f.from_within = within;
        } else if UNSUPPORTED.contains(&w) || w == "mark" || matches(w, "realms") {
            return Err(err(w, "is not supported by pipework's route command"));
        } else {
            once(&mut seen, "to", "")?;
            let mut word = w;
            if matches(word, "to") {
                word = value(it, w)?;
            }
            let (root, within) = prefix_selector(it, word, family)?;
            f.root = root;
            f.within = within;
        }
    }
    // iproute2 dumps IPv4 only unless told -6 or `table all`; a selector
    // in IPv6 means IPv6 here (iproute2 would print nothing).
    if f.family.is_none() {
        f.family = [f.root, f.within, f.via, f.src, f.from_root, f.from_within]
            .iter()
            .flatten()
            .find_map(|s| s.family);
    }
    if f.family.is_none() && f.table != 0 {
        f.family = Some(Family::V4);
    }
    Ok(f)
}

/// `[root|match|exact] PREFIX` → (root, match) selectors.
fn prefix_selector(
    it: &mut Words<'_>,
    word: &str,
    family: Option<Family>,
) -> Result<(Option<Selector>, Option<Selector>), ParseError> {
    if matches(word, "root") {
        return Ok((Some(selector(value(it, word)?, family)?), None));
    }
    if matches(word, "match") {
        return Ok((None, Some(selector(value(it, word)?, family)?)));
    }
    let w = if matches(word, "exact") {
        value(it, word)?
    } else {
        word
    };
    let s = selector(w, family)?;
    Ok((Some(s), Some(s)))
}

/// `get [to] ADDR [from ADDR] [iif IF] [oif IF] [mark N] [uid N] [tos T] [fibmatch]`.
pub(super) fn get(
    it: &mut Words<'_>,
    mut family: Option<Family>,
) -> Result<RouteCommand, ParseError> {
    let mut q = RouteMsg::new(family.unwrap_or(Family::V4));
    let mut seen = BTreeSet::new();
    let (mut iif, mut oif) = (None, None);
    let mut dst = None;
    let mut fibmatch = false;
    while let Some(a) = it.next() {
        let w = a.as_str();
        if w == "tos" || matches(w, "dsfield") {
            once(&mut seen, "tos", "")?;
            let v = value(it, w)?;
            q.tos = u8::try_from(u32_of("tos", v)?).map_err(|_| err(v, "is not a TOS value"))?;
        } else if matches(w, "from") {
            once(&mut seen, "from", "")?;
            let s = selector(value(it, w)?, family)?;
            family = family.or(s.family);
            q.src = s.addr;
            q.src_len = s.len;
        } else if matches(w, "iif") {
            once(&mut seen, "iif", "")?;
            iif = Some(value(it, w)?.to_string());
        } else if matches(w, "mark") {
            once(&mut seen, "mark", "")?;
            q.mark = Some(u32_of("mark", value(it, w)?)?);
        } else if matches(w, "oif") || w == "dev" {
            once(&mut seen, "dev", "")?;
            oif = Some(value(it, w)?.to_string());
        } else if matches(w, "uid") {
            once(&mut seen, "uid", "")?;
            q.uid = Some(u32_of("uid", value(it, w)?)?);
        } else if matches(w, "fibmatch") {
            fibmatch = true;
        } else if matches(w, "notify") {
            q.flags |= 0x100;
        } else if ["connected", "vrf", "as", "sport", "dport", "ipproto"]
            .iter()
            .any(|k| matches(w, k))
        {
            return Err(err(w, "is not supported by pipework's route get"));
        } else {
            if dst.is_some() {
                return Err(err(w, "is not a keyword (the address is already given)"));
            }
            let word = if w == "to" { value(it, w)? } else { w };
            let s = selector(word, family)?;
            let ip = s
                .addr
                .ok_or_else(|| err(word, "is not an address (route get needs one)"))?;
            family = family.or(s.family);
            dst = Some(ip);
        }
    }
    let Some(ip) = dst else {
        return Err(ParseError::new(
            "route get",
            "",
            "needs a destination address",
        ));
    };
    let f = family.unwrap_or(Family::V4);
    q.family = f;
    q.dst = Some(ip);
    q.dst_len = host_len(f);
    if f == Family::V4 {
        q.flags |= 0x1000;
    }
    if fibmatch {
        q.flags |= 0x2000;
    }
    Ok(RouteCommand::Get { query: q, iif, oif })
}
