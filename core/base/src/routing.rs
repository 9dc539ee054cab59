//! `pipework route|rule|tc <guest> ...`: the original passed these to `ip` and
//! `tc` inside the guest. Routes and rules are parsed here (the `ip route` /
//! `ip rule` words people use) and sent over netlink; `tc` runs the real `tc`
//! binary inside the guest's namespace, since its grammar is a language.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Context, Error, Result};
use pipework_model::{Family, ParseError};
use pipework_sys::netlink::{Netlink, RouteSpec, RuleSpec};
use pipework_sys::netns::Netns;

/// `add`, `del`, ...
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Add,
    Delete,
    /// Add or replace.
    Replace,
    /// Replace an existing one only.
    Change,
}

fn verb(s: &str, what: &str) -> Result<Verb, ParseError> {
    match s {
        "add" | "a" => Ok(Verb::Add),
        "del" | "delete" | "d" => Ok(Verb::Delete),
        "replace" | "repl" => Ok(Verb::Replace),
        "change" | "chg" => Ok(Verb::Change),
        _ => Err(ParseError::new(
            &format!("{what} command"),
            s,
            "must be add, del, replace or change",
        )),
    }
}

/// A parsed `route` command.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteCommand {
    pub verb: Verb,
    pub route: RouteSpec,
    /// `dev NAME`, resolved to an index inside the guest at run time.
    pub dev: Option<String>,
}

fn number(what: &str, v: Option<&String>) -> Result<u32, ParseError> {
    let v = v.ok_or_else(|| ParseError::new(what, "", "is missing its value"))?;
    if let Some(h) = v.strip_prefix("0x") {
        return u32::from_str_radix(h, 16).map_err(|_| ParseError::new(what, v, "is not a number"));
    }
    v.parse()
        .map_err(|_| ParseError::new(what, v, "is not a number"))
}

fn table(v: Option<&String>) -> Result<u32, ParseError> {
    match v.map(String::as_str) {
        Some("main") => Ok(254),
        Some("local") => Ok(255),
        Some("default") => Ok(253),
        _ => number("table", v),
    }
}

fn prefix(s: &str, family: Option<Family>) -> Result<Option<IpNet>, ParseError> {
    if s == "default" || s == "all" {
        return Ok(None);
    }
    let net: IpNet = match s.parse() {
        Ok(n) => n,
        Err(_) => {
            let ip: IpAddr = s
                .parse()
                .map_err(|_| ParseError::new("prefix", s, "is not an address or prefix"))?;
            IpNet::from(ip)
        }
    };
    if let Some(f) = family {
        if Family::of(&net.addr()) != f {
            return Err(ParseError::new("prefix", s, &format!("is not {f}")));
        }
    }
    Ok(Some(net.trunc()))
}

/// Parses `[-4|-6] add|del|replace|change [TYPE] PREFIX [via ADDR] [dev IF] ...`.
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
    let v = it
        .next()
        .ok_or_else(|| ParseError::new("route command", "", "needs add, del, replace or change"))?;
    let verb = verb(v, "route")?;
    let mut r = RouteSpec::new(family.unwrap_or(Family::V4));
    let mut dst_given = false;
    let mut dev = None;
    let mut scope_given = false;
    while let Some(a) = it.next() {
        match a.as_str() {
            "unicast" => r.kind = 1,
            "blackhole" => r.kind = 6,
            "unreachable" => r.kind = 7,
            "prohibit" => r.kind = 8,
            "to" => {
                let p = it.next().ok_or_else(|| ParseError::new("route", "to", "needs a prefix"))?;
                r.destination = prefix(p, family)?;
                dst_given = true;
            }
            "via" => {
                let mut g = it.next().ok_or_else(|| ParseError::new("route", "via", "needs an address"))?;
                if g == "inet" || g == "inet6" {
                    g = it.next().ok_or_else(|| ParseError::new("route", "via", "needs an address"))?;
                }
                let ip: IpAddr = g.parse().map_err(|_| ParseError::new("gateway", g, "is not an IP address"))?;
                r.gateway = Some(ip);
            }
            "dev" | "oif" => {
                let d = it.next().ok_or_else(|| ParseError::new("route", "dev", "needs an interface name"))?;
                dev = Some(d.clone());
            }
            "metric" | "priority" | "preference" => r.metric = Some(number("metric", it.next())?),
            "table" => r.table = table(it.next())?,
            "src" => {
                let s = it.next().ok_or_else(|| ParseError::new("route", "src", "needs an address"))?;
                r.source = Some(s.parse().map_err(|_| ParseError::new("source", s, "is not an IP address"))?);
            }
            "scope" => {
                let s = it.next();
                r.scope = match s.map(String::as_str) {
                    Some("global") | Some("universe") => 0,
                    Some("link") => 253,
                    Some("host") => 254,
                    _ => u8::try_from(number("scope", s)?)
                        .map_err(|_| ParseError::new("scope", s.map(String::as_str).unwrap_or(""), "is out of range"))?,
                };
                scope_given = true;
            }
            "proto" | "protocol" => {
                let s = it.next();
                r.protocol = match s.map(String::as_str) {
                    Some("boot") => 3,
                    Some("static") => 4,
                    Some("kernel") => 2,
                    _ => u8::try_from(number("proto", s)?)
                        .map_err(|_| ParseError::new("proto", s.map(String::as_str).unwrap_or(""), "is out of range"))?,
                };
            }
            "onlink" => r.onlink = true,
            "mtu" => r.mtu = Some(number("mtu", it.next())?),
            other if !dst_given && !other.starts_with('-') => {
                r.destination = prefix(other, family)?;
                dst_given = true;
            }
            other => {
                return Err(ParseError::new(
                    "route argument",
                    other,
                    "is not supported (use: PREFIX|default, via, dev, metric, table, src, scope, proto, onlink, mtu, blackhole, unreachable, prohibit)",
                ))
            }
        }
    }
    if !dst_given {
        return Err(ParseError::new(
            "route",
            &args.join(" "),
            "needs a destination prefix or 'default'",
        ));
    }
    // The family follows the addresses when -4/-6 was not given.
    if family.is_none() {
        if let Some(f) = r
            .destination
            .map(|d| Family::of(&d.addr()))
            .or(r.gateway.map(|g| Family::of(&g)))
        {
            r.family = f;
        }
    }
    if let Some(g) = r.gateway {
        if Family::of(&g) != r.family {
            return Err(ParseError::new(
                "gateway",
                &g.to_string(),
                "does not match the route's address family",
            ));
        }
    }
    if !scope_given && r.gateway.is_none() && r.kind == 1 && dev.is_some() {
        r.scope = 253;
    }
    if r.kind != 1 {
        r.scope = 0;
    }
    Ok(RouteCommand {
        verb,
        route: r,
        dev,
    })
}

/// A parsed `rule` command.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleCommand {
    pub verb: Verb,
    pub rule: RuleSpec,
}

/// Parses `[-4|-6] add|del [from P] [to P] [table N] [priority N] [fwmark N[/M]] [iif IF] [oif IF] [blackhole|unreachable|prohibit]`.
pub fn parse_rule(args: &[String]) -> Result<RuleCommand, ParseError> {
    let mut it = args.iter().peekable();
    let mut r = RuleSpec::default();
    while let Some(a) = it.peek() {
        match a.as_str() {
            "-4" => r.family = Some(Family::V4),
            "-6" => r.family = Some(Family::V6),
            _ => break,
        }
        it.next();
    }
    let v = it
        .next()
        .ok_or_else(|| ParseError::new("rule command", "", "needs add or del"))?;
    let verb = verb(v, "rule")?;
    if matches!(verb, Verb::Replace | Verb::Change) {
        return Err(ParseError::new("rule command", v, "must be add or del"));
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "from" => r.from = prefix(it.next().ok_or_else(|| ParseError::new("rule", "from", "needs a prefix"))?, r.family)?,
            "to" => r.to = prefix(it.next().ok_or_else(|| ParseError::new("rule", "to", "needs a prefix"))?, r.family)?,
            "table" | "lookup" => r.table = Some(table(it.next())?),
            "priority" | "pref" | "order" => r.priority = Some(number("priority", it.next())?),
            "fwmark" => {
                let s = it.next().ok_or_else(|| ParseError::new("rule", "fwmark", "needs a value"))?;
                let (m, mask) = match s.split_once('/') {
                    Some((m, k)) => (m.to_string(), Some(k.to_string())),
                    None => (s.clone(), None),
                };
                r.fwmark = Some(number("fwmark", Some(&m))?);
                if let Some(k) = mask {
                    r.fwmask = Some(number("fwmark mask", Some(&k))?);
                }
            }
            "iif" | "dev" => r.iif = Some(it.next().ok_or_else(|| ParseError::new("rule", "iif", "needs an interface"))?.clone()),
            "oif" => r.oif = Some(it.next().ok_or_else(|| ParseError::new("rule", "oif", "needs an interface"))?.clone()),
            "blackhole" => r.action = Some(6),
            "unreachable" => r.action = Some(7),
            "prohibit" => r.action = Some(8),
            other => {
                return Err(ParseError::new(
                    "rule argument",
                    other,
                    "is not supported (use: from, to, table, priority, fwmark, iif, oif, blackhole, unreachable, prohibit)",
                ))
            }
        }
    }
    if verb == Verb::Add && r.table.is_none() && r.action.is_none() {
        return Err(ParseError::new(
            "rule",
            &args.join(" "),
            "needs a table (lookup) or an action",
        ));
    }
    Ok(RuleCommand { verb, rule: r })
}

/// Runs a route command inside the guest.
pub async fn run_route(nl: &Netlink, mut cmd: RouteCommand) -> Result<()> {
    if let Some(d) = &cmd.dev {
        let l = nl
            .link_by_name(d)
            .await?
            .ok_or_else(|| Error::usage(format!("no interface {d} in the guest")))?;
        cmd.route.oif = Some(l.index);
    }
    match cmd.verb {
        Verb::Add => nl.add_route(&cmd.route, false).await.step("add route"),
        Verb::Replace => nl.add_route(&cmd.route, true).await.step("replace route"),
        Verb::Change => {
            let exists = nl
                .routes(cmd.route.family, cmd.route.table)
                .await?
                .iter()
                .any(|r| r.destination == cmd.route.destination);
            if !exists {
                return Err(Error::usage(format!("no route {} to change", cmd.route)));
            }
            nl.add_route(&cmd.route, true).await.step("change route")
        }
        Verb::Delete => nl.delete_route(&cmd.route).await.step("delete route"),
    }
}

pub async fn run_rule(nl: &Netlink, cmd: RuleCommand) -> Result<()> {
    match cmd.verb {
        Verb::Delete => nl.delete_rule(&cmd.rule).await.step("delete rule"),
        _ => nl.add_rule(&cmd.rule).await.step("add rule"),
    }
}

/// Runs `tc <args>` inside the guest's namespace and returns its exit status.
pub fn run_tc(ns: &Netns, args: &[String]) -> Result<i32> {
    let mut cmd = std::process::Command::new("tc");
    cmd.args(args);
    pipework_sys::process::enter_netns_on_exec(&mut cmd, ns);
    let st = cmd
        .status()
        .map_err(|e| Error::failed("cannot run tc (is iproute2 installed?)").with_source(e))?;
    Ok(st.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Vec<String> {
        v.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn routes() {
        let c = parse_route(&s("add 10.0.5.0/24 via 192.168.2.1")).unwrap();
        assert_eq!(c.verb, Verb::Add);
        assert_eq!(c.route.destination, Some("10.0.5.0/24".parse().unwrap()));
        assert_eq!(c.route.gateway, Some("192.168.2.1".parse().unwrap()));
        let c = parse_route(&s("replace default via fd00::1 dev eth1 metric 5")).unwrap();
        assert_eq!(c.route.family, Family::V6);
        assert!(c.route.destination.is_none());
        assert_eq!(c.dev.as_deref(), Some("eth1"));
        let c = parse_route(&s("add 10.9.0.0/16 dev eth1")).unwrap();
        assert_eq!(c.route.scope, 253);
        let c = parse_route(&s("add blackhole 10.8.0.0/16 table 100")).unwrap();
        assert_eq!((c.route.kind, c.route.table), (6, 100));
        for bad in [
            "",
            "show",
            "add",
            "add 10.0.0.0/8 via x",
            "add 10.0.0.0/8 bogus 1",
            "add 10.0.0.0/8 via fd00::1",
            "add 10/8 metric x",
        ] {
            assert!(parse_route(&s(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn rules() {
        let c = parse_rule(&s("add from 10.0.0.0/24 table 100 priority 1000")).unwrap();
        assert_eq!(c.rule.table, Some(100));
        assert_eq!(c.rule.priority, Some(1000));
        let c = parse_rule(&s("add fwmark 0x10/0xff lookup 5")).unwrap();
        assert_eq!((c.rule.fwmark, c.rule.fwmask), (Some(16), Some(255)));
        for bad in [
            "",
            "add",
            "add from",
            "replace from 1.2.3.4 table 5",
            "add from x table 1",
            "add frob 1",
        ] {
            assert!(parse_rule(&s(bad)).is_err(), "{bad}");
        }
    }
}
