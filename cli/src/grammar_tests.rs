use super::*;
use pipework_core::docker::Endpoint;

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
            wait_for: WaitFor::Configured
        }
    );
    for (words, wait_for) in [
        ("--wait --link-only", WaitFor::Carrier),
        ("--wait --address", WaitFor::Address),
    ] {
        assert!(matches!(
            p(words).unwrap().command,
            Command::Wait { wait_for: w, .. } if w == wait_for
        ));
    }
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
    for ok in ["tcp:[::1]:6640", "tcp:ovsdb.example.com:6640", "tcp:db-1:1"] {
        assert!(p(&format!("gc --ovsdb {ok}")).is_ok(), "{ok}");
    }
    let long = format!("gc --ovsdb unix:/{}", "x".repeat(5000));
    let e = p(&long).unwrap_err().0;
    assert!(e.contains("longer than 107") && e.len() < 200, "{e}");
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
        ("tc web1", "missing the tc arguments"),
        ("route web1 frob", "route command"),
        ("route web1 add 10.0.0.0/8 via nowhere", "gateway"),
        ("rule web1 add from 10.0.0.0/8 table", "table"),
        (
            "-i eth1 route web1 add default via 10.0.0.1",
            "route takes no",
        ),
        ("--wait -x", "--wait does not take"),
        ("--wait --link-only --address", "not both"),
        ("detach", "required"),
        ("detach web1 extra", "unexpected"),
        ("inspect", "needs a guest"),
        ("inspect --all web1", "not both"),
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
        ("--ovsdb tcp:[::1:6640 gc", "OVSDB address"),
        ("--ovsdb tcp:::1:6640 gc", "OVSDB address"),
        ("--ovsdb tcp:a_b:6640 gc", "OVSDB address"),
        ("--version x", "takes no arguments"),
        (
            "route web1 add 10.0.0.0/8 dev a23456789012345x",
            "longer than 15",
        ),
        ("rule web1 add iif all table 5", "reserved"),
        ("br1 -i all web1 10.0.0.2/24", "reserved"),
        ("br1 -l default web1 10.0.0.2/24", "reserved"),
        ("br1 ../web1 10.0.0.2/24", "no '/'"),
        ("br1 web1 010.062.000.002/24", "leading zero"),
        ("br1 web1 10.0.0.2/24@255.255.255.255", "broadcast"),
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
