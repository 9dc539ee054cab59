//! The whole command line, parsed in one place.
//!
//! The original grammar is positional and irregular, so it is parsed by hand
//! here with one clear error per malformed part. The newer subcommands
//! are ordinary clap commands, in [`crate::subcommands`].

use std::path::PathBuf;
use std::time::Duration;

use pipework_core::model::{
    AddressMode, AttachRequest, DatapathType, Family, GuestRef, HostSelector, IfName, MacSpec,
    MacvlanMode, Tag, VlanId, VlanSet,
};
use pipework_core::routing;
use pipework_core::wait::WaitFor;

/// Options valid with every command.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Global {
    pub state_dir: Option<PathBuf>,
    pub verbose: u8,
    pub json: bool,
    /// `--ovsdb`: the OVSDB server, checked to be `unix:` or `tcp:`.
    pub ovsdb: Option<String>,
}

pub use crate::command::Command;

#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    pub global: Global,
    pub command: Command,
}

pub use crate::usage_error::UsageError;

/// An empty `--state-dir` would put pipework's state in the current
/// directory.
fn state_dir(v: &str) -> Result<PathBuf, UsageError> {
    if v.is_empty() {
        return Err(usage("--state-dir: an empty path"));
    }
    Ok(PathBuf::from(v))
}

pub(crate) use crate::usage_error::usage;

const SUBCOMMANDS: &[&str] = &[
    "detach",
    "inspect",
    "inspect-all",
    "list",
    "gc",
    "check",
    "daemon",
    "apply",
    "demo",
    "help",
    "version",
];

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Invocation, UsageError> {
    let mut global = Global::default();
    let mut rest: Vec<String> = Vec::new();
    let mut it = args.iter().cloned().peekable();
    // Global options are taken anywhere, except after route/rule/tc <guest>,
    // whose arguments belong to them verbatim.
    let mut passthrough = false;
    let mut positionals = 0;
    while let Some(a) = it.next() {
        if passthrough {
            rest.push(a);
            continue;
        }
        match a.as_str() {
            "--state-dir" => global.state_dir = Some(state_dir(&value(&a, it.next())?)?),
            s if s.starts_with("--state-dir=") => {
                global.state_dir = Some(state_dir(&s["--state-dir=".len()..])?)
            }
            "--ovsdb" => global.ovsdb = Some(ovsdb_addr(&value(&a, it.next())?)?),
            s if s.starts_with("--ovsdb=") => {
                global.ovsdb = Some(ovsdb_addr(&s["--ovsdb=".len()..])?)
            }
            "-v" | "--verbose" => global.verbose += 1,
            "-vv" => global.verbose += 2,
            "--json" => global.json = true,
            _ => {
                if !a.starts_with('-') {
                    positionals += 1;
                    if positionals == 2
                        && matches!(
                            rest.iter()
                                .find(|r| !r.starts_with('-'))
                                .map(String::as_str),
                            Some("route" | "rule" | "tc")
                        )
                    {
                        passthrough = true;
                    }
                }
                rest.push(a);
            }
        }
    }
    let command = parse_command(&rest)?;
    Ok(Invocation { global, command })
}

/// `--ovsdb`: what the driver's parser takes, and neither a `tcp:` host
/// that is not a name or an address nor a `unix:` path too long for a
/// socket address.
fn ovsdb_addr(s: &str) -> Result<String, UsageError> {
    s.parse::<pipework_drivers::ovs::Remote>().map_err(usage)?;
    let bad = |why: &str| usage(format!("bad OVSDB address '{}': {why}", short(s)));
    if let Some(p) = s.strip_prefix("unix:") {
        // sun_path holds 108 bytes with the final NUL.
        if p.len() > 107 {
            return Err(bad("the socket path is longer than 107 bytes"));
        }
    } else if let Some((host, _)) = s.strip_prefix("tcp:").and_then(|r| r.rsplit_once(':')) {
        let ok = match host.strip_prefix('[') {
            Some(h) => h
                .strip_suffix(']')
                .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok()),
            None => {
                host.parse::<std::net::Ipv4Addr>().is_ok()
                    || (host.len() <= 253
                        && host.split('.').all(|l| {
                            !l.is_empty()
                                && l.len() <= 63
                                && !l.starts_with('-')
                                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        }))
            }
        };
        if !ok {
            return Err(bad(
                "the host is not a host name, an IPv4 address or an [IPv6] address in brackets",
            ));
        }
    }
    Ok(s.to_string())
}

/// A value cut for a message: the first 40 characters and a count.
fn short(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}... ({} bytes)", &s[..i], s.len()),
        None => s.to_string(),
    }
}

/// The interface names in route/rule arguments (`dev`, `oif`, `iif`),
/// checked here: the names the kernel would refuse are refused before the
/// guest is touched.
fn check_route_ifnames(args: &[String]) -> Result<(), UsageError> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if matches!(a.as_str(), "dev" | "oif" | "iif") {
            if let Some(name) = it.next() {
                name.parse::<IfName>()?;
            }
        }
    }
    Ok(())
}

fn value(flag: &str, v: Option<String>) -> Result<String, UsageError> {
    match v {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(usage(format!("option {flag} needs a value"))),
    }
}

fn parse_command(args: &[String]) -> Result<Command, UsageError> {
    let Some(first) = args.first() else {
        return Err(usage("nothing to do: try 'pipework --help'"));
    };
    match first.as_str() {
        "-V" | "--version" if args.len() > 1 => {
            return Err(usage(format!(
                "{first} takes no arguments (got '{}')",
                args[1]
            )))
        }
        "-h" | "--help" => return Ok(Command::Help),
        "-V" | "--version" => return Ok(Command::Version),
        "--wait" => return parse_wait(&args[1..]),
        _ => {}
    }
    if SUBCOMMANDS.contains(&first.as_str()) {
        return crate::subcommands::parse(args);
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Command::Help);
    }
    parse_legacy(args)
}

fn parse_wait(args: &[String]) -> Result<Command, UsageError> {
    let mut ifname: IfName = "eth1".parse().expect("valid");
    let mut timeout = None;
    let mut wait_for = WaitFor::Configured;
    let mut it = args.iter().cloned();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-i" => ifname = value("-i", it.next())?.parse()?,
            "--timeout" => timeout = Some(seconds(&value("--timeout", it.next())?)?),
            "--link-only" | "--address" => {
                let w = if a == "--link-only" {
                    WaitFor::Carrier
                } else {
                    WaitFor::Address
                };
                if wait_for != WaitFor::Configured && wait_for != w {
                    return Err(usage("--wait takes --link-only or --address, not both"));
                }
                wait_for = w;
            }
            other => return Err(usage(format!("--wait does not take '{other}' (use: --wait [-i IF] [--timeout SECS] [--link-only | --address])"))),
        }
    }
    Ok(Command::Wait {
        ifname,
        timeout,
        wait_for,
    })
}

fn seconds(s: &str) -> Result<Duration, UsageError> {
    let v: f64 = s.parse().map_err(|_| {
        usage(format!(
            "bad timeout '{s}': expected seconds, e.g. 10 or 0.5"
        ))
    })?;
    if !(0.0..=86400.0 * 365.0).contains(&v) || !v.is_finite() {
        return Err(usage(format!("bad timeout '{s}': out of range")));
    }
    Ok(Duration::from_secs_f64(v))
}

/// `pipework [--direct-phys] <hostif|mac:MAC> [-i IF] [-l NAME] [-a 4|6]
/// <guest> <address> [<mac>][@<tag>]` and the route/rule/tc forms.
fn parse_legacy(args: &[String]) -> Result<Command, UsageError> {
    let mut direct_phys = false;
    let mut guest_ifname: Option<IfName> = None;
    let mut host_ifname: Option<IfName> = None;
    let mut family: Option<Family> = None;
    let mut opts = pipework_core::model::AttachOptions::default();
    let mut mac_scheme: Option<MacSpec> = None;
    let mut pos: Vec<String> = Vec::new();
    let mut it = args.iter().cloned().peekable();
    while let Some(a) = it.next() {
        if matches!(
            pos.first().map(String::as_str),
            Some("route" | "rule" | "tc")
        ) && pos.len() >= 2
        {
            pos.push(a);
            continue;
        }
        match a.as_str() {
            "--direct-phys" => direct_phys = true,
            "-i" => {
                guest_ifname = Some(once(&guest_ifname, "-i", value("-i", it.next())?.parse()?)?)
            }
            "-l" => host_ifname = Some(once(&host_ifname, "-l", value("-l", it.next())?.parse()?)?),
            "-a" => {
                family = Some(once(
                    &family,
                    "-a",
                    Family::parse_flag(&value("-a", it.next())?)?,
                )?)
            }
            "--macvlan-mode" => opts.macvlan_mode = value(&a, it.next())?.parse::<MacvlanMode>()?,
            "--mac-scheme" => {
                let v = value(&a, it.next())?;
                let scheme = match v.as_str() {
                    "network-wrapper" => MacSpec::NetworkWrapper,
                    _ => {
                        return Err(usage(format!(
                            "bad --mac-scheme '{v}': the one scheme is network-wrapper"
                        )))
                    }
                };
                mac_scheme = Some(once(&mac_scheme, "--mac-scheme", scheme)?);
            }
            "--no-announce" => opts.announce = false,
            "--no-dad" => opts.skip_dad = true,
            "--dns" => opts.dns = true,
            "--slaac" => opts.slaac = true,
            "--host-route" => {
                opts.host_route = Some(once(
                    &opts.host_route,
                    "--host-route",
                    value(&a, it.next())?.parse()?,
                )?)
            }
            "--timeout" => opts.timeout = seconds(&value(&a, it.next())?)?,
            "--trunk" => {
                let v = value(&a, it.next())?.parse::<VlanSet>()?;
                opts.ovs.trunk = Some(once(&opts.ovs.trunk, "--trunk", v)?);
            }
            "--native-vlan" => {
                let v = value(&a, it.next())?.parse::<VlanId>()?;
                opts.ovs.native_vlan = Some(once(&opts.ovs.native_vlan, "--native-vlan", v)?);
            }
            "--native-tagged" => opts.ovs.native_tagged = true,
            "--port-security" => opts.ovs.port_security = true,
            "--datapath-type" => {
                let v = value(&a, it.next())?.parse::<DatapathType>()?;
                opts.ovs.datapath_type = Some(v);
            }
            s if crate::grammar_hw::takes(s) => {
                crate::grammar_hw::apply(s, &value(s, it.next())?, &mut opts.hw)?
            }
            s if s.starts_with('-')
                && s.len() > 1
                && !pos.is_empty()
                && s.parse::<f64>().is_err() =>
            {
                return Err(usage(format!("unknown option '{s}' (see pipework --help)")))
            }
            s if s.starts_with('-') && pos.is_empty() => {
                return Err(usage(format!("unknown option '{s}' (see pipework --help)")))
            }
            _ => pos.push(a),
        }
    }
    let Some(hostif) = pos.first().cloned() else {
        return Err(usage("missing the host interface (see pipework --help)"));
    };
    crate::grammar_hw::finish(&opts.hw)?;
    if matches!(hostif.as_str(), "route" | "rule" | "tc") {
        if direct_phys || guest_ifname.is_some() || host_ifname.is_some() || family.is_some() {
            return Err(usage(format!(
                "{hostif} takes no -i, -l, -a or --direct-phys"
            )));
        }
        let guest: GuestRef = pos
            .get(1)
            .ok_or_else(|| {
                usage(format!(
                    "missing the guest: pipework {hostif} <guest> <arguments>"
                ))
            })?
            .parse()?;
        let rest = &pos[2..];
        // `ip route` and `ip rule` alone list, and the original passed
        // everything after the guest to them; `tc` alone only prints usage.
        if rest.is_empty() && hostif == "tc" {
            return Err(usage(format!(
                "missing the {hostif} arguments: pipework {hostif} <guest> <arguments>"
            )));
        }
        if hostif != "tc" {
            check_route_ifnames(rest)?;
        }
        return Ok(match hostif.as_str() {
            "route" => Command::Route {
                guest,
                cmd: routing::parse_route(rest)?,
            },
            "rule" => Command::Rule {
                guest,
                cmd: routing::parse_rule(rest)?,
            },
            _ => Command::Tc {
                guest,
                args: rest.to_vec(),
            },
        });
    }
    if opts.ovs.native_tagged && opts.ovs.native_vlan.is_none() {
        return Err(usage("--native-tagged needs --native-vlan VID"));
    }
    let host: HostSelector = hostif.parse()?;
    let guest: GuestRef = pos
        .get(1)
        .ok_or_else(|| usage("missing the guest (container name or ID, PID, netns name or path)"))?
        .parse()?;
    let addr = pos
        .get(2)
        .ok_or_else(|| usage("missing the address: <ip>/<prefix>[@gateway], 0/0 or dhcp"))?;
    let address = AddressMode::parse(addr, family)?;
    let (mut mac, tag) = match pos.get(3) {
        Some(m) => parse_mac_tag(m)?,
        None => (MacSpec::Random, None),
    };
    if let Some(scheme) = mac_scheme {
        if mac != MacSpec::Random {
            return Err(usage(format!(
                "--mac-scheme makes the MAC: give no MAC as well (got '{}')",
                pos[3]
            )));
        }
        mac = scheme;
    }
    if let Some(extra) = pos.get(4) {
        return Err(usage(format!("unexpected argument '{extra}'")));
    }
    if tag.is_some() && (opts.ovs.trunk.is_some() || opts.ovs.native_vlan.is_some()) {
        return Err(usage(
            "@VID makes an access port: with --trunk or --native-vlan, give the untagged VLAN as --native-vlan VID",
        ));
    }
    let mut req = AttachRequest::new(host, guest, address);
    req.direct_phys = direct_phys;
    req.guest_ifname = guest_ifname;
    req.host_ifname = host_ifname;
    req.family = family;
    req.mac = mac;
    req.tag = tag;
    req.options = opts;
    Ok(Command::Attach(Box::new(req)))
}

/// One attach's arguments, as a declaration gives them (the legacy grammar
/// without route/rule/tc): the parser the reconciler and `apply` use.
pub fn parse_attach(args: &[String]) -> Result<AttachRequest, String> {
    if args
        .first()
        .is_some_and(|a| matches!(a.as_str(), "route" | "rule" | "tc"))
    {
        return Err(format!("'{}' is not an attachment", args[0]));
    }
    match parse_legacy(args) {
        Ok(Command::Attach(r)) => Ok(*r),
        Ok(_) => Err("not an attachment".into()),
        Err(e) => Err(e.0),
    }
}

fn once<T>(cur: &Option<T>, flag: &str, v: T) -> Result<T, UsageError> {
    if cur.is_some() {
        return Err(usage(format!("option {flag} given twice")));
    }
    Ok(v)
}

/// `[<mac>|U:<string>][@<tag>]`
fn parse_mac_tag(s: &str) -> Result<(MacSpec, Option<Tag>), UsageError> {
    let (m, t) = match s.split_once('@') {
        Some((m, t)) => (m, Some(t)),
        None => (s, None),
    };
    let mac = if m.is_empty() {
        MacSpec::Random
    } else {
        MacSpec::parse(m)?
    };
    let tag = match t {
        None => None,
        Some("") => return Err(usage(format!("bad VLAN tag in '{s}': nothing after '@'"))),
        Some(t) if t.contains('@') => {
            return Err(usage(format!("bad VLAN tag '{t}': only one '@' allowed")))
        }
        Some(t) => Some(t.parse::<Tag>()?),
    };
    if m.is_empty() && tag.is_none() {
        return Err(usage(format!("bad MAC address '{s}'")));
    }
    Ok((mac, tag))
}

#[cfg(test)]
#[path = "grammar_tests.rs"]
mod tests;
