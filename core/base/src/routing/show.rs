//! `route show|get|flush`: the kernel's routes selected as iproute2's
//! `filter_nlmsg` selects them and printed as its `print_route` prints them
//! (fields in its order, each followed by a space, IPv6 `pref` without one;
//! fields fixed by the selector are left out, as `ip` leaves them out).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::error::{Context, Error, Result};
use pipework_model::Family;
use pipework_sys::netlink::route_msg::RouteMsg;
use pipework_sys::netlink::Netlink;

use super::names::{proto_name, scope_name, table_name, type_name};
use super::{RouteFilter, Selector};

/// The clock ticks per second of the kernel's `rta_expires` (USER_HZ).
const USER_HZ: i32 = 100;

fn host_len(f: Family) -> u8 {
    match f {
        Family::V4 => 32,
        Family::V6 => 128,
    }
}

fn bits(ip: Option<IpAddr>) -> u128 {
    match ip {
        Some(IpAddr::V4(a)) => u128::from(u32::from(a)) << 96,
        Some(IpAddr::V6(a)) => u128::from(a),
        None => 0,
    }
}

/// The first `len` bits of `a` and of `b` agree (iproute2's `inet_addr_match`).
fn same_bits(a: Option<IpAddr>, b: Option<IpAddr>, len: u8) -> bool {
    if len == 0 {
        return true;
    }
    let mask = if len >= 128 {
        u128::MAX
    } else {
        !(u128::MAX >> len)
    };
    (bits(a) ^ bits(b)) & mask == 0
}

fn family_ok(s: &Selector, f: Family) -> bool {
    s.family.is_none_or(|g| g == f)
}

struct Ifs {
    oif: Option<u32>,
    iif: Option<u32>,
    names: BTreeMap<u32, String>,
}

impl Ifs {
    fn name(&self, i: u32) -> String {
        self.names
            .get(&i)
            .cloned()
            .unwrap_or_else(|| format!("if{i}"))
    }
}

async fn ifs(nl: &Netlink, f: &RouteFilter) -> Result<Ifs> {
    let names: BTreeMap<u32, String> = nl
        .links()
        .await
        .step("list interfaces")?
        .into_iter()
        .map(|l| (l.index, l.name))
        .collect();
    let find = |n: &Option<String>| -> Result<Option<u32>> {
        match n {
            None => Ok(None),
            Some(n) => names
                .iter()
                .find(|(_, v)| *v == n)
                .map(|(k, _)| Some(*k))
                .ok_or_else(|| {
                    Error::usage(format!(
                        "no interface {n} in the guest (Cannot find device \"{n}\")"
                    ))
                }),
        }
    };
    Ok(Ifs {
        oif: find(&f.dev)?,
        iif: find(&f.iif)?,
        names,
    })
}

fn selected(r: &RouteMsg, f: &RouteFilter, ifs: &Ifs, flush: bool) -> bool {
    if f.family.is_some_and(|g| g != r.family) {
        return false;
    }
    if f.cloned != r.is_cloned() {
        return false;
    }
    if f.table != 0 && f.table != r.table {
        return false;
    }
    if f.protocol.is_some_and(|p| p != r.protocol)
        || f.scope.is_some_and(|s| s != r.scope)
        || f.kind.is_some_and(|k| k != r.kind)
        || f.tos.is_some_and(|t| t != r.tos)
    {
        return false;
    }
    if let Some(s) = &f.root {
        if !family_ok(s, r.family) || s.len > r.dst_len || !same_bits(r.dst, s.addr, s.len) {
            return false;
        }
    }
    if let Some(s) = &f.within {
        if !family_ok(s, r.family) || s.len < r.dst_len || !same_bits(r.dst, s.addr, r.dst_len) {
            return false;
        }
    }
    if let Some(s) = &f.from_root {
        if !family_ok(s, r.family) || s.len > r.src_len || !same_bits(r.src, s.addr, s.len) {
            return false;
        }
    }
    if let Some(s) = &f.from_within {
        if !family_ok(s, r.family) || s.len < r.src_len || !same_bits(r.src, s.addr, r.src_len) {
            return false;
        }
    }
    if let Some(s) = &f.via {
        if !family_ok(s, r.family) || !same_bits(r.gateway, s.addr, s.len) {
            return false;
        }
    }
    if let Some(s) = &f.src {
        if !family_ok(s, r.family) || !same_bits(r.prefsrc, s.addr, s.len) {
            return false;
        }
    }
    if ifs.oif.is_some_and(|i| r.oif.unwrap_or(0) != i)
        || ifs.iif.is_some_and(|i| r.iif.unwrap_or(0) != i)
    {
        return false;
    }
    if f.metric.is_some_and(|m| r.priority.unwrap_or(0) != m) {
        return false;
    }
    // The IPv6 null route is not flushed.
    !(flush
        && r.family == Family::V6
        && r.dst_len == 0
        && r.kind == 7
        && r.priority == Some(u32::MAX))
}

pub async fn show(nl: &Netlink, f: &RouteFilter) -> Result<String> {
    let ifs = ifs(nl, f).await?;
    let mut out = String::new();
    for r in nl.dump_routes(f.family).await.step("list routes")? {
        if selected(&r, f, &ifs, false) {
            format_route(&mut out, &r, f, &ifs);
        }
    }
    Ok(out)
}

/// Deletes every selected route, round after round until none is left
/// (deleting one can take others with it, or bring none back).
pub async fn flush(nl: &Netlink, f: &RouteFilter) -> Result<()> {
    let ifs = ifs(nl, f).await?;
    for _round in 0..10 {
        let v: Vec<RouteMsg> = nl
            .dump_routes(f.family)
            .await
            .step("list routes")?
            .into_iter()
            .filter(|r| selected(r, f, &ifs, true))
            .collect();
        if v.is_empty() {
            return Ok(());
        }
        for mut r in v {
            r.expires = None;
            r.error = None;
            r.uid = None;
            match nl.del_route_msg(&r).await {
                Ok(()) => {}
                Err(e) if e.is_gone() => {}
                Err(e) => return Err(e).step("flush routes"),
            }
        }
    }
    Err(Error::failed("routes came back after 10 rounds of flush"))
}

pub async fn get(nl: &Netlink, q: &RouteMsg) -> Result<String> {
    let f = RouteFilter {
        table: 0,
        ..RouteFilter::default()
    };
    let ifs = ifs(nl, &f).await?;
    let mut out = String::new();
    if let Some(r) = nl.get_route(q).await.step("get route")? {
        format_route(&mut out, &r, &f, &ifs);
    }
    Ok(out)
}

fn fixed(s: &Option<Selector>, f: Family) -> bool {
    s.is_some_and(|s| s.len == host_len(f))
}

/// One route as `ip route show` prints it (its `print_route`).
fn format_route(o: &mut String, r: &RouteMsg, f: &RouteFilter, ifs: &Ifs) {
    let hl = host_len(r.family);
    if r.kind != 1 {
        let _ = write!(o, "{} ", type_name(r.kind));
    }
    match r.dst {
        Some(d) if r.dst_len != hl => {
            let _ = write!(o, "{d}/{} ", r.dst_len);
        }
        Some(d) => {
            let _ = write!(o, "{d} ");
        }
        None if r.dst_len != 0 => {
            let _ = write!(o, "0/{}  ", r.dst_len);
        }
        None => o.push_str("default "),
    }
    match r.src {
        Some(s) if r.src_len != hl => {
            let _ = write!(o, "from {s}/{} ", r.src_len);
        }
        Some(s) => {
            let _ = write!(o, "from {s} ");
        }
        None if r.src_len != 0 => {
            let _ = write!(o, "from 0/{} ", r.src_len);
        }
        None => {}
    }
    if r.tos != 0 && f.tos.is_none() {
        let _ = write!(o, "tos 0x{:02x} ", r.tos);
    }
    if let Some(g) = r.gateway {
        if !fixed(&f.via, r.family) {
            let _ = write!(o, "via {g} ");
        }
    }
    if let Some(i) = r.oif {
        if f.dev.is_none() {
            let _ = write!(o, "dev {} ", ifs.name(i));
        }
    }
    if r.table != 0 && r.table != 254 && f.table == 0 {
        let _ = write!(o, "table {} ", table_name(r.table));
    }
    if !r.is_cloned() {
        if r.protocol != 3 && f.protocol.is_none() {
            let _ = write!(o, "proto {} ", proto_name(r.protocol));
        }
        if r.scope != 0 && f.scope.is_none() {
            let _ = write!(o, "scope {} ", scope_name(r.scope));
        }
    }
    if let Some(p) = r.prefsrc {
        if !fixed(&f.src, r.family) {
            let _ = write!(o, "src {p} ");
        }
    }
    if let Some(m) = r.priority {
        if f.metric.is_none() {
            let _ = write!(o, "metric {m} ");
        }
    }
    flags(o, r.flags);
    if let Some(m) = r.mark.filter(|m| *m != 0) {
        if m >= 16 {
            let _ = write!(o, "mark 0x{m:x} ");
        } else {
            let _ = write!(o, "mark {m} ");
        }
    }
    if let Some(u) = r.uid {
        let _ = write!(o, "uid {u} ");
    }
    if r.family == Family::V4 && r.is_cloned() {
        cache_flags(o, r.flags);
    }
    if let Some(e) = r.expires.filter(|e| *e != 0) {
        let _ = write!(o, "expires {}sec ", e / USER_HZ);
    }
    if let Some(e) = r.error.filter(|e| *e != 0) {
        let _ = write!(o, "error {e} ");
    }
    metrics(o, &r.metrics);
    if let Some(i) = r.iif {
        if f.iif.is_none() {
            let _ = write!(o, "iif {} ", ifs.name(i));
        }
    }
    if let Some(p) = r.pref {
        match p {
            3 => o.push_str("pref low"),
            0 => o.push_str("pref medium"),
            1 => o.push_str("pref high"),
            n => {
                let _ = write!(o, "{n}");
            }
        }
    }
    for nh in &r.multipath {
        o.push_str("\n\tnexthop ");
        if let Some(g) = nh.gateway {
            let _ = write!(o, "via {g} ");
        }
        let _ = write!(o, "dev {} ", ifs.name(nh.ifindex));
        let _ = write!(o, "weight {} ", u32::from(nh.hops) + 1);
        flags(o, u32::from(nh.flags));
    }
    o.push('\n');
}

fn flags(o: &mut String, fl: u32) {
    for (bit, name) in [
        (0x1, "dead"),
        (0x4, "onlink"),
        (0x2, "pervasive"),
        (0x8, "offload"),
        (0x40, "trap"),
        (0x100, "notify"),
        (0x10, "linkdown"),
        (0x20, "unresolved"),
        (0x4000, "rt_offload"),
        (0x8000, "rt_trap"),
        (0x2000_0000, "rt_offload_failed"),
    ] {
        if fl & bit != 0 {
            o.push_str(name);
            o.push(' ');
        }
    }
}

fn cache_flags(o: &mut String, fl: u32) {
    let mut fl = fl & !0xFFFF;
    o.push_str("\n    cache ");
    if fl == 0 {
        return;
    }
    o.push('<');
    for (bit, name) in [
        (0x8000_0000u32, "local"),
        (0x4000_0000, "reject"),
        (0x2000_0000, "mc"),
        (0x1000_0000, "brd"),
        (0x0800_0000, "dst-nat"),
        (0x0080_0000, "src-nat"),
        (0x0040_0000, "masq"),
        (0x0002_0000, "dst-direct"),
        (0x0400_0000, "src-direct"),
        (0x0004_0000, "redirected"),
        (0x0100_0000, "redirect"),
        (0x0020_0000, "fastroute"),
        (0x0001_0000, "notify"),
        (0x0008_0000, "proxy"),
    ] {
        if fl & bit != 0 {
            fl &= !bit;
            o.push_str(name);
            o.push_str(if fl != 0 { "," } else { "> " });
        }
    }
    if fl != 0 {
        let _ = write!(o, "{fl:x}>");
    }
}

fn metrics(o: &mut String, ms: &[(u16, u32)]) {
    let lock = ms.iter().find(|(k, _)| *k == 1).map_or(0, |(_, v)| *v);
    let names = [
        "",
        "lock",
        "mtu",
        "window",
        "rtt",
        "rttvar",
        "ssthresh",
        "cwnd",
        "advmss",
        "reordering",
        "hoplimit",
        "initcwnd",
        "features",
        "rto_min",
        "initrwnd",
        "quickack",
        "congctl",
        "fastopen_no_cookie",
    ];
    for i in 2u16..=17 {
        let v = ms.iter().find(|(k, _)| *k == i).map(|(_, v)| *v);
        let locked = i < 32 && lock & (1 << i) != 0;
        if v.is_none() && !locked {
            continue;
        }
        let mut val = v.unwrap_or(0);
        if i == 10 && val == u32::MAX {
            continue;
        }
        let _ = write!(o, "{} ", names[usize::from(i)]);
        if locked {
            o.push_str("lock ");
        }
        match i {
            12 => {
                if val & 1 != 0 {
                    o.push_str("ecn ");
                }
                if val & !1 != 0 {
                    let _ = write!(o, "{val:#x} ");
                }
            }
            4 | 5 | 13 => {
                if i == 4 {
                    val /= 8;
                } else if i == 5 {
                    val /= 4;
                }
                if val >= 1000 {
                    let _ = write!(o, "{}s ", f64::from(val) / 1e3);
                } else {
                    let _ = write!(o, "{val}ms ");
                }
            }
            _ => {
                let _ = write!(o, "{val} ");
            }
        }
    }
}
