//! The `ip rule` grammar (`add`, `del`, `show`/`list` with its selectors,
//! `not`) and `ip rule show`'s output.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;
use pipework_model::{Family, ParseError};
use pipework_sys::netlink::{Netlink, RuleEntry, RuleSpec};

use super::names::{matches, proto_name, table_name, table_number, type_name, type_number, u32_of};
use crate::error::{Context, Result};

/// A parsed `rule` command.
#[derive(Clone, Debug, PartialEq)]
pub enum RuleCommand {
    Add(RuleSpec),
    Delete(RuleSpec),
    /// The selectors: a rule is shown when it has all they name.
    Show(RuleSpec),
}

fn err(word: &str, why: &str) -> ParseError {
    ParseError::new("rule argument", word, why)
}

fn prefix(s: &str, family: Option<Family>) -> Result<Option<IpNet>, ParseError> {
    if matches!(s, "default" | "all" | "any") {
        return Ok(None);
    }
    let net: IpNet = match s.parse() {
        Ok(n) => n,
        Err(_) => IpNet::from(
            s.parse::<IpAddr>()
                .map_err(|_| ParseError::new("prefix", s, "is not an address or prefix"))?,
        ),
    };
    if let Some(f) = family {
        if Family::of(&net.addr()) != f {
            return Err(ParseError::new("prefix", s, &format!("is not {f}")));
        }
    }
    Ok(Some(net))
}

/// Parses `[-4|-6] add|del|show|list [not] [from P] [to P] [table|lookup T]
/// [priority|pref N] [fwmark N[/M]] [iif IF] [oif IF] [TYPE]`.
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
    #[derive(PartialEq)]
    enum V {
        Add,
        Del,
        Show,
    }
    let v = match it.next().map(String::as_str) {
        None => V::Show,
        Some(w) if matches(w, "list") || matches(w, "lst") || matches(w, "show") => V::Show,
        Some(w) if matches(w, "add") => V::Add,
        Some(w) if matches(w, "delete") => V::Del,
        Some(w) => {
            return Err(ParseError::new(
                "rule command",
                w,
                "must be add, del, show or list",
            ))
        }
    };
    let mut seen = BTreeSet::new();
    let mut once = |kw: &'static str| {
        if seen.insert(kw) {
            Ok(())
        } else {
            Err(err(kw, "is given twice"))
        }
    };
    let mut any = false;
    while let Some(a) = it.next() {
        any = true;
        let w = a.as_str();
        let mut val = || {
            it.next()
                .map(String::as_str)
                .ok_or_else(|| err(w, "is missing its value"))
        };
        if w == "not" {
            once("not")?;
            r.invert = true;
        } else if w == "from" || (v == V::Show && matches(w, "src")) {
            once("from")?;
            r.from = prefix(val()?, r.family)?;
            r.family = r.family.or(r.from.map(|n| Family::of(&n.addr())));
        } else if w == "to" || (v == V::Show && matches(w, "dst")) {
            once("to")?;
            r.to = prefix(val()?, r.family)?;
            r.family = r.family.or(r.to.map(|n| Family::of(&n.addr())));
        } else if matches(w, "preference") || matches(w, "order") || matches(w, "priority") {
            once("priority")?;
            r.priority = Some(u32_of("priority", val()?)?);
        } else if w == "fwmark" {
            once("fwmark")?;
            let s = val()?;
            let (m, k) = match s.split_once('/') {
                Some((m, k)) => (m, Some(k)),
                None => (s, None),
            };
            r.fwmark = Some(u32_of("fwmark", m)?);
            if let Some(k) = k {
                r.fwmask = Some(u32_of("fwmark mask", k)?);
            }
        } else if matches(w, "table") || w == "lookup" || (v == V::Show && matches(w, "lookup")) {
            once("table")?;
            r.table = Some(table_number(val()?)?);
        } else if w == "dev" || w == "iif" {
            once("iif")?;
            r.iif = Some(val()?.to_string());
        } else if w == "oif" {
            once("oif")?;
            r.oif = Some(val()?.to_string());
        } else if v != V::Show {
            let t = if w == "type" { val()? } else { w };
            match type_number(t) {
                Some(n @ (6..=8)) => {
                    once("type")?;
                    r.action = Some(n);
                }
                Some(_) => return Err(err(t, "is not supported by pipework's rule command")),
                None => return Err(err(t, "is not a rule keyword or type")),
            }
        } else {
            return Err(err(w, "is not a rule selector"));
        }
    }
    Ok(match v {
        V::Show => RuleCommand::Show(r),
        V::Add if !any => {
            return Err(ParseError::new("rule add", "", "requires arguments"));
        }
        V::Add => {
            // iproute2: no table and no action means `lookup main`.
            if r.table.is_none() && r.action.is_none() {
                r.table = Some(254);
            }
            RuleCommand::Add(r)
        }
        V::Del if !any => {
            return Err(ParseError::new("rule del", "", "requires arguments"));
        }
        V::Del => RuleCommand::Delete(r),
    })
}

pub async fn run(nl: &Netlink, cmd: RuleCommand) -> Result<String> {
    match cmd {
        RuleCommand::Add(r) => nl
            .add_rule(&r)
            .await
            .step("add rule")
            .map(|()| String::new()),
        RuleCommand::Delete(r) => nl
            .delete_rule(&r)
            .await
            .step("delete rule")
            .map(|()| String::new()),
        RuleCommand::Show(f) => {
            let fam = f.family.unwrap_or(Family::V4);
            let mut out = String::new();
            for e in nl.dump_rules(fam).await.step("list rules")? {
                if selected(&e, &f) {
                    format_rule(&mut out, &e);
                }
            }
            Ok(out)
        }
    }
}

fn prefix_ok(sel: Option<IpNet>, addr: Option<IpAddr>, len: u8) -> bool {
    let Some(s) = sel else { return true };
    if s.prefix_len() > len {
        return false;
    }
    match addr {
        None => true,
        Some(a) => IpNet::new(a, s.prefix_len()).is_ok_and(|n| n.network() == s.network()),
    }
}

fn selected(e: &RuleEntry, f: &RuleSpec) -> bool {
    f.priority.is_none_or(|p| e.priority.unwrap_or(0) == p)
        && (!f.invert || e.flags & 2 != 0)
        && prefix_ok(f.from, e.src, e.src_len)
        && prefix_ok(f.to, e.dst, e.dst_len)
        && f.fwmark.is_none_or(|m| e.fwmark.unwrap_or(0) == m)
        && f.fwmask.is_none_or(|m| e.fwmask.unwrap_or(0) == m)
        && f.iif.as_ref().is_none_or(|i| e.iif.as_ref() == Some(i))
        && f.oif.as_ref().is_none_or(|i| e.oif.as_ref() == Some(i))
        && f.table.is_none_or(|t| t == 0 || e.table == t)
}

/// One rule as `ip rule show` prints it.
fn format_rule(o: &mut String, e: &RuleEntry) {
    let hl = match e.family {
        Some(Family::V6) => 128,
        _ => 32,
    };
    let _ = write!(o, "{}:\t", e.priority.unwrap_or(0));
    if e.flags & 2 != 0 {
        o.push_str("not ");
    }
    match e.src {
        Some(s) => {
            let _ = write!(o, "from {s}");
            if e.src_len != hl {
                let _ = write!(o, "/{}", e.src_len);
            }
        }
        None if e.src_len != 0 => {
            let _ = write!(o, "from 0/{}", e.src_len);
        }
        None => o.push_str("from all"),
    }
    match e.dst {
        Some(d) => {
            let _ = write!(o, " to {d}");
            if e.dst_len != hl {
                let _ = write!(o, "/{}", e.dst_len);
            }
        }
        None if e.dst_len != 0 => {
            let _ = write!(o, " to 0/{}", e.dst_len);
        }
        None => {}
    }
    if e.tos != 0 {
        let _ = write!(o, " tos 0x{:02x}", e.tos);
    }
    if e.fwmark.is_some() || e.fwmask.is_some() {
        let m = e.fwmark.unwrap_or(0);
        let _ = write!(o, " fwmark {}", hex(m));
        if let Some(k) = e.fwmask.filter(|k| *k != u32::MAX) {
            let _ = write!(o, "/{}", hex(k));
        }
    }
    if let Some(i) = &e.iif {
        let _ = write!(o, " iif {i}");
        if e.flags & 8 != 0 {
            o.push_str(" [detached]");
        }
    }
    if let Some(i) = &e.oif {
        let _ = write!(o, " oif {i}");
        if e.flags & 16 != 0 {
            o.push_str(" [detached]");
        }
    }
    if e.table != 0 {
        let _ = write!(o, " lookup {}", table_name(e.table));
        if let Some(p) = e.suppress_prefixlen.filter(|p| *p != u32::MAX) {
            let _ = write!(o, " suppress_prefixlength {p}");
        }
    }
    match e.action {
        2 => {
            match e.goto {
                Some(g) => {
                    let _ = write!(o, " goto {g}");
                }
                None => o.push_str(" goto none"),
            }
            if e.flags & 4 != 0 {
                o.push_str(" [unresolved]");
            }
        }
        3 => o.push_str(" nop"),
        1 => {}
        a => {
            let _ = write!(o, " {}", type_name(a));
        }
    }
    if let Some(p) = e.protocol.filter(|p| *p != 0 && *p != 2) {
        let _ = write!(o, " proto {}", proto_name(p));
    }
    o.push('\n');
}

/// C's `%#llx`: `0` for zero, `0x..` otherwise.
fn hex(v: u32) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    }
}
