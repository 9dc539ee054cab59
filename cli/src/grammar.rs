//! The whole command line, parsed in one place.
//!
//! The original grammar is positional and irregular, so it is parsed by hand
//! here with one clear error per malformed part. The newer subcommands
//! (`detach`, `inspect`, `list`, `gc`, `demo`) are ordinary clap commands.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use pipework_core::docker::Endpoint;
use pipework_core::model::{
    AddressMode, AttachRequest, DatapathType, Family, GuestRef, HostSelector, IfName, MacSpec,
    MacvlanMode, ParseError, Tag, VlanId, VlanSet,
};
use pipework_core::routing::{self, RouteCommand, RuleCommand};

/// Options valid with every command.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Global {
    pub state_dir: Option<PathBuf>,
    pub verbose: u8,
    pub json: bool,
    /// `--ovsdb`: the OVSDB server, checked to be `unix:` or `tcp:`.
    pub ovsdb: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Attach(Box<AttachRequest>),
    Route {
        guest: GuestRef,
        cmd: RouteCommand,
    },
    Rule {
        guest: GuestRef,
        cmd: RuleCommand,
    },
    Tc {
        guest: GuestRef,
        args: Vec<String>,
    },
    Wait {
        ifname: IfName,
        timeout: Option<Duration>,
        need_address: bool,
    },
    Detach {
        guest: GuestRef,
        ifname: Option<IfName>,
    },
    Inspect {
        guest: GuestRef,
    },
    List,
    Gc,
    Daemon {
        idle_exit: Option<Duration>,
        /// `--reconcile` (or `--engine`): follow a container engine; the
        /// engine is `DOCKER_HOST`'s (or the usual sockets) when `None`.
        reconcile: bool,
        engine: Option<Endpoint>,
        key: Option<String>,
    },
    Apply {
        file: PathBuf,
        prune: bool,
    },
    Demo,
    Help,
    Version,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    pub global: Global,
    pub command: Command,
}

/// A usage error: one line, exit code 2.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageError(pub String);

impl From<ParseError> for UsageError {
    fn from(e: ParseError) -> Self {
        UsageError(e.to_string())
    }
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

const SUBCOMMANDS: &[&str] = &[
    "detach", "inspect", "list", "gc", "daemon", "apply", "demo", "help", "version",
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
            "--state-dir" => global.state_dir = Some(value(&a, it.next())?.into()),
            s if s.starts_with("--state-dir=") => {
                global.state_dir = Some(s["--state-dir=".len()..].into())
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

fn ovsdb_addr(s: &str) -> Result<String, UsageError> {
    s.parse::<pipework_drivers::ovs::Remote>().map_err(usage)?;
    Ok(s.to_string())
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
        "-h" | "--help" => return Ok(Command::Help),
        "-V" | "--version" => return Ok(Command::Version),
        "--wait" => return parse_wait(&args[1..]),
        _ => {}
    }
    if SUBCOMMANDS.contains(&first.as_str()) {
        return parse_subcommand(args);
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Command::Help);
    }
    parse_legacy(args)
}

fn parse_wait(args: &[String]) -> Result<Command, UsageError> {
    let mut ifname: IfName = "eth1".parse().expect("valid");
    let mut timeout = None;
    let mut need_address = true;
    let mut it = args.iter().cloned();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-i" => ifname = value("-i", it.next())?.parse()?,
            "--timeout" => timeout = Some(seconds(&value("--timeout", it.next())?)?),
            "--link-only" => need_address = false,
            other => return Err(usage(format!("--wait does not take '{other}' (use: --wait [-i IF] [--timeout SECS] [--link-only])"))),
        }
    }
    Ok(Command::Wait {
        ifname,
        timeout,
        need_address,
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
        if rest.is_empty() {
            return Err(usage(format!(
                "missing the {hostif} arguments: pipework {hostif} <guest> <arguments>"
            )));
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
    let (mac, tag) = match pos.get(3) {
        Some(m) => parse_mac_tag(m)?,
        None => (MacSpec::Random, None),
    };
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

#[derive(Parser, Debug)]
#[command(
    name = "pipework",
    no_binary_name = true,
    disable_help_subcommand = true
)]
enum Sub {
    /// Remove what an attach created (all of the guest's interfaces, or one).
    Detach {
        guest: String,
        #[arg(short = 'i', value_name = "IF")]
        ifname: Option<String>,
    },
    /// Print a guest's attachments as JSON.
    Inspect { guest: String },
    /// List every attachment pipework remembers.
    List,
    /// Clean up after guests that are gone.
    Gc,
    /// Keep DHCP leases and, with --reconcile, declared attachments (one per host).
    Daemon {
        /// Exit after this many seconds with nothing to look after.
        #[arg(long, value_name = "SECS")]
        idle_exit: Option<u64>,
        /// Follow the container engine and keep containers' declared attachments.
        #[arg(long)]
        reconcile: bool,
        /// The engine's API (unix:///path or tcp://host:port); implies --reconcile.
        #[arg(long, value_name = "URL")]
        engine: Option<String>,
        /// Handle only containers whose pipework_key equals this.
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
    },
    /// Make the attachments a file declares hold (idempotent).
    Apply {
        file: String,
        /// Also detach what an earlier version of this file declared.
        #[arg(long)]
        prune: bool,
    },
    /// Two throwaway namespaces on a new bridge, a ping, their JSON, cleanup.
    Demo,
    /// Show the help.
    Help,
    /// Show the version.
    Version,
}

fn parse_subcommand(args: &[String]) -> Result<Command, UsageError> {
    let sub = Sub::try_parse_from(args).map_err(|e| {
        let text = e.render().to_string();
        let line = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("bad arguments")
            .trim_start_matches("error: ")
            .to_string();
        usage(line)
    })?;
    Ok(match sub {
        Sub::Detach { guest, ifname } => Command::Detach {
            guest: guest.parse()?,
            ifname: ifname.map(|i| i.parse()).transpose()?,
        },
        Sub::Inspect { guest } => Command::Inspect {
            guest: guest.parse()?,
        },
        Sub::List => Command::List,
        Sub::Gc => Command::Gc,
        Sub::Daemon {
            idle_exit,
            reconcile,
            engine,
            key,
        } => {
            let engine = engine
                .map(|e| Endpoint::parse(&e))
                .transpose()
                .map_err(|e| usage(format!("bad --engine: {}", e.message())))?;
            let reconcile = reconcile || engine.is_some();
            if reconcile && idle_exit.is_some() {
                return Err(usage(
                    "--idle-exit does not go with --reconcile: a reconciler waits for containers",
                ));
            }
            if key.is_some() && !reconcile {
                return Err(usage("--key is for --reconcile"));
            }
            if key.as_deref() == Some("") {
                return Err(usage("--key needs a value"));
            }
            Command::Daemon {
                idle_exit: idle_exit.map(Duration::from_secs),
                reconcile,
                engine,
                key,
            }
        }
        Sub::Apply { file, prune } => {
            if file.is_empty() {
                return Err(usage("apply needs a file"));
            }
            Command::Apply {
                file: file.into(),
                prune,
            }
        }
        Sub::Demo => Command::Demo,
        Sub::Help => Command::Help,
        Sub::Version => Command::Version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Invocation, UsageError> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    fn attach(s: &str) -> AttachRequest {
        match p(s).unwrap().command {
            Command::Attach(r) => *r,
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn the_readme_example() {
        let r = attach("br1 -i eth1 web1 192.168.1.5/24@192.168.1.1 26:2e:71:98:60:8f@10");
        assert_eq!(r.host, HostSelector::Name("br1".parse().unwrap()));
        assert_eq!(r.guest_ifname.unwrap().as_str(), "eth1");
        assert_eq!(r.guest, GuestRef::Auto("web1".into()));
        assert_eq!(
            r.mac,
            MacSpec::Explicit("26:2e:71:98:60:8f".parse().unwrap())
        );
        assert_eq!(r.tag.unwrap().as_str(), "10");
    }

    #[test]
    fn flags_in_any_order_and_place() {
        let a = attach("br1 -a 6 -l vethweb -i eth2 web1 fd00::5/64");
        let b = attach("br1 -i eth2 web1 -l vethweb fd00::5/64 -a 6");
        assert_eq!(a, b);
        let r = attach("--direct-phys eth2 web1 10.0.0.2/24 -v --state-dir /tmp/x");
        assert!(r.direct_phys);
        let inv = p("br1 web1 10.0.0.2/24 --state-dir /tmp/x -vv --json").unwrap();
        assert_eq!(inv.global.verbose, 2);
        assert!(inv.global.json);
        assert_eq!(inv.global.state_dir.unwrap(), PathBuf::from("/tmp/x"));
    }

    #[test]
    fn forms() {
        assert!(matches!(attach("br1 web1 0/0").address, AddressMode::None));
        assert!(matches!(
            attach("eth1 web1 dhcp").address,
            AddressMode::Dhcp(_)
        ));
        assert_eq!(attach("br1 web1 0/0 @10").tag.unwrap().as_str(), "10");
        assert!(matches!(
            attach("br1 web1 0/0 U:web1").mac,
            MacSpec::Unique(_)
        ));
        assert!(matches!(
            attach("mac:02:00:00:00:00:01 web1 0/0").host,
            HostSelector::Mac(_)
        ));
        match p("route web1 add 10.0.5.0/24 via 192.168.2.1 -v").unwrap_err() {
            UsageError(m) => assert!(m.contains("-v"), "{m}"),
        }
        assert!(matches!(
            p("-v route web1 add 10.0.5.0/24 via 192.168.2.1")
                .unwrap()
                .command,
            Command::Route { .. }
        ));
        assert!(matches!(
            p("rule web1 add from 10.0.0.0/8 table 5").unwrap().command,
            Command::Rule { .. }
        ));
        match p("tc web1 qdisc add dev eth1 root netem delay 10ms")
            .unwrap()
            .command
        {
            Command::Tc { args, .. } => assert_eq!(args.len(), 8),
            c => panic!("{c:?}"),
        }
        assert_eq!(
            p("--wait -i eth2 --timeout 3").unwrap().command,
            Command::Wait {
                ifname: "eth2".parse().unwrap(),
                timeout: Some(Duration::from_secs(3)),
                need_address: true
            }
        );
        assert!(matches!(
            p("detach web1 -i eth1").unwrap().command,
            Command::Detach { .. }
        ));
        assert!(matches!(
            p("inspect web1").unwrap().command,
            Command::Inspect { .. }
        ));
        assert!(matches!(p("list --json").unwrap().command, Command::List));
        assert_eq!(
            p("daemon --idle-exit 5 --state-dir /tmp/d")
                .unwrap()
                .command,
            Command::Daemon {
                idle_exit: Some(Duration::from_secs(5)),
                reconcile: false,
                engine: None,
                key: None,
            }
        );
        assert_eq!(
            p("daemon --engine unix:///run/e.sock --key k")
                .unwrap()
                .command,
            Command::Daemon {
                idle_exit: None,
                reconcile: true,
                engine: Some(Endpoint::Unix("/run/e.sock".into())),
                key: Some("k".into()),
            }
        );
        assert_eq!(
            p("apply /etc/pipework.conf --prune").unwrap().command,
            Command::Apply {
                file: "/etc/pipework.conf".into(),
                prune: true
            }
        );
        let a: Vec<String> = "eth0 -i eth2 web 10.0.0.2/24 --host-route auto"
            .split(' ')
            .map(String::from)
            .collect();
        let r = parse_attach(&a).unwrap();
        assert_eq!(
            r.options.host_route,
            Some(pipework_core::model::HostRoute::Auto)
        );
        assert!(parse_attach(&["route".into(), "web".into()]).is_err());
        assert!(parse_attach(&["eth0".into()]).is_err());
        let r = attach("br1 web1 dhcp --dns --slaac");
        assert!(r.options.dns && r.options.slaac);
        match attach("br1 -a 6 web1 dhcp").address {
            AddressMode::Dhcp(d) => assert!(d.v6 && !d.v4),
            a => panic!("{a:?}"),
        }
        match attach("br1 web1 dhcp,dhcp6 U:web1").address {
            AddressMode::Dhcp(d) => assert!(d.v6 && d.v4),
            a => panic!("{a:?}"),
        }
        match attach("br1 web1 dhclient-f:-v").address {
            AddressMode::Dhcp(d) => assert!(d.foreground && d.options == "-v"),
            a => panic!("{a:?}"),
        }
        assert!(matches!(p("--help").unwrap().command, Command::Help));
        assert!(matches!(p("br1 --help").unwrap().command, Command::Help));
    }

    #[test]
    fn ovs_options() {
        let r = attach("ovs0 web1 10.0.0.2/24 --trunk 10,20-22 --native-vlan 5 --native-tagged --port-security --datapath-type netdev");
        let o = &r.options.ovs;
        assert_eq!(o.trunk.as_ref().unwrap().to_string(), "10,20-22");
        assert_eq!(o.native_vlan.unwrap().get(), 5);
        assert!(o.native_tagged && o.port_security);
        assert_eq!(o.datapath_type.as_ref().unwrap().as_str(), "netdev");
        assert_eq!(
            attach("ovs0 web1 0/0 --trunk all").options.ovs.trunk,
            Some(VlanSet::All)
        );
        let inv = p("--ovsdb tcp:127.0.0.1:6640 ovs0 web1 0/0 @10").unwrap();
        assert_eq!(inv.global.ovsdb.as_deref(), Some("tcp:127.0.0.1:6640"));
        let inv = p("gc --ovsdb=unix:/tmp/db.sock").unwrap();
        assert_eq!(inv.global.ovsdb.as_deref(), Some("unix:/tmp/db.sock"));
        assert!(!attach("br1 web1 0/0").options.ovs.any());
    }

    #[test]
    fn every_malformed_part_is_named() {
        for (args, needle) in [
            ("", "nothing to do"),
            ("br1", "missing the guest"),
            ("br1 web1", "missing the address"),
            ("br1 web1 10.0.0.5", "10.0.0.5/24"),
            ("br1 web1 10.0.0.5/40", "address"),
            ("br1 web1 10.0.0.5/24@x", "gateway"),
            ("br1 web1 10.0.0.5/24 zz:zz", "MAC"),
            ("br1 web1 10.0.0.5/24 01:00:5e:00:00:01", "multicast"),
            ("br1 web1 10.0.0.5/24 @", "VLAN"),
            ("br1 web1 10.0.0.5/24 @10000", "VLAN"),
            ("br1 web1 10.0.0.5/24 @10@20", "VLAN"),
            (
                "br1 web1 10.0.0.5/24 02:00:00:00:00:01 extra",
                "unexpected argument 'extra'",
            ),
            ("br1 -i web1", "missing the guest"),
            ("br1 -i eth1 -i eth2 web1 0/0", "given twice"),
            ("br1 -i averyveryverylongname web1 0/0", "interface name"),
            ("br1 -a 5 web1 0/0", "-a"),
            ("br1 -a 4 web1 fd00::1/64", "IPv6"),
            ("br1 -i", "needs a value"),
            ("br1 web1 0/0 --frob", "unknown option"),
            ("--frob br1 web1 0/0", "unknown option"),
            ("averyveryverylonghost web1 0/0", "host interface"),
            ("mac:zz web1 0/0", "MAC"),
            ("br1 pid:x 0/0", "guest"),
            ("br1 web1 0/0 --macvlan-mode weird", "macvlan mode"),
            ("br1 web1 0/0 --timeout x", "timeout"),
            ("route", "missing the guest"),
            ("route web1", "missing the route arguments"),
            ("route web1 show", "route command"),
            ("route web1 add 10.0.0.0/8 via nowhere", "gateway"),
            ("rule web1 add from 10.0.0.0/8", "table"),
            (
                "-i eth1 route web1 add default via 10.0.0.1",
                "route takes no",
            ),
            ("--wait -x", "--wait does not take"),
            ("detach", "required"),
            ("detach web1 extra", "unexpected"),
            ("inspect", "required"),
            ("ovs0 web1 0/0 --trunk", "needs a value"),
            ("ovs0 web1 0/0 --trunk 10,,20", "VLAN list"),
            ("ovs0 web1 0/0 --trunk 30-20", "backwards"),
            ("ovs0 web1 0/0 --trunk 4095", "VLAN list"),
            ("ovs0 web1 0/0 --trunk 10 --trunk 20", "given twice"),
            ("ovs0 web1 0/0 --native-vlan 0", "VLAN id"),
            ("ovs0 web1 0/0 --native-vlan x", "VLAN id"),
            ("ovs0 web1 0/0 --native-tagged", "--native-tagged needs"),
            ("ovs0 web1 0/0 @10 --trunk 20", "access port"),
            ("ovs0 web1 0/0 @10 --native-vlan 20", "access port"),
            ("ovs0 web1 0/0 --datapath-type Net", "datapath type"),
            ("--ovsdb /run/db.sock ovs0 web1 0/0", "OVSDB address"),
            ("--ovsdb tcp:host ovs0 web1 0/0", "OVSDB address"),
            ("--ovsdb=ssl:h:1 gc", "OVSDB address"),
            ("ovs0 web1 0/0 --ovsdb", "needs a value"),
            ("br1 web1 dhcp:--frob", "DHCP option"),
            ("br1 web1 dhcp,udhcpc", "two DHCP clients"),
            ("br1 -a 6 web1 udhcpc", "IPv4 only"),
            ("daemon --idle-exit x", "idle-exit"),
            ("daemon --reconcile --idle-exit 5", "does not go with"),
            ("daemon --key k", "--key is for --reconcile"),
            ("daemon --engine ssh://x", "bad --engine"),
            ("daemon --reconcile --key", "value"),
            ("apply", "required"),
            ("apply a b", "unexpected"),
            ("apply f --frob", "unexpected"),
            ("eth0 web1 0/0 --host-route", "needs a value"),
            ("eth0 web1 0/0 --host-route 10.0.0.1", "host route"),
            ("eth0 web1 0/0 --host-route 0.0.0.0/0", "host route"),
            (
                "eth0 web1 0/0 --host-route auto --host-route auto",
                "given twice",
            ),
        ] {
            let e = p(args).expect_err(args);
            assert!(e.0.contains(needle), "{args:?}: {e}");
            assert!(!e.0.contains('\n'), "{args:?}: multi-line error");
        }
    }
}
