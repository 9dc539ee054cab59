//! Parsing of the route and rule grammars (no kernel needed).

use super::*;
use pipework_sys::netlink::route_msg::RouteMsg;

fn s(v: &str) -> Vec<String> {
    v.split_whitespace().map(String::from).collect()
}

fn modify(v: &str) -> (Verb, RouteMsg, Option<String>) {
    match parse_route(&s(v)).unwrap() {
        RouteCommand::Modify {
            verb, route, dev, ..
        } => (verb, route, dev),
        other => panic!("{v}: {other:?}"),
    }
}

#[test]
fn route_changes() {
    let (v, r, _) = modify("add 10.0.5.0/24 via 192.168.2.1");
    assert_eq!(v, Verb::Add);
    assert_eq!((r.dst, r.dst_len), (Some("10.0.5.0".parse().unwrap()), 24));
    assert_eq!(r.gateway, Some("192.168.2.1".parse().unwrap()));
    assert_eq!((r.protocol, r.scope, r.kind, r.table), (3, 0, 1, 254));
    let (_, r, dev) = modify("replace default via fd00::1 dev eth1 metric 5");
    assert_eq!(r.family, Family::V6);
    assert_eq!((r.dst, r.dst_len), (None, 0));
    assert_eq!(dev.as_deref(), Some("eth1"));
    assert_eq!(modify("add 10.9.0.0/16 dev eth1").1.scope, 253);
    let (_, r, _) = modify("add blackhole 10.8.0.0/16 tab 100");
    assert_eq!((r.kind, r.table), (6, 100));
    let (_, r, _) = modify("add local 10.1.2.3 dev lo");
    assert_eq!((r.kind, r.table, r.scope, r.dst_len), (2, 255, 254, 32));
    assert_eq!(modify("append 10.0.0.0/8 dev x").0, Verb::Append);
    assert_eq!(modify("prepend 10.0.0.0/8 dev x").0, Verb::Prepend);
    assert_eq!(modify("test 10.0.0.0/8 dev x").0, Verb::Test);
    assert_eq!(modify("chg 10.0.0.0/8 dev x").0, Verb::Change);
    let (v, r, _) = modify("del 10.0.0.0/8");
    assert_eq!((v, r.protocol, r.scope, r.kind), (Verb::Delete, 0, 255, 0));
    let (_, r, _) = modify("add 10.0.0.0/8 mtu lock 1400 proto static");
    assert_eq!(r.metrics, vec![(2, 1400), (1, 1 << 2)]);
    assert_eq!(r.protocol, 4);
    // IPv6 keeps the network part, as the kernel does.
    let (_, r, _) = modify("add fd00::5/64 dev x");
    assert_eq!(r.dst, Some("fd00::".parse().unwrap()));
}

#[test]
fn multipath() {
    match parse_route(&s(
        "add 10.1.0.0/16 nexthop via 10.0.0.1 dev a weight 3 nexthop via 10.0.0.2 dev b onlink",
    ))
    .unwrap()
    {
        RouteCommand::Modify {
            route,
            nexthop_devs,
            ..
        } => {
            assert_eq!(route.multipath.len(), 2);
            assert_eq!(route.multipath[0].hops, 2);
            assert_eq!(route.multipath[1].flags, 4);
            assert_eq!(route.scope, 0);
            assert_eq!(
                nexthop_devs,
                vec![Some("a".to_string()), Some("b".to_string())]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn route_queries() {
    let RouteCommand::Show(f) = parse_route(&s("show")).unwrap() else {
        panic!()
    };
    assert_eq!((f.family, f.table), (Some(Family::V4), 254));
    let RouteCommand::Show(f) = parse_route(&s("list table all")).unwrap() else {
        panic!()
    };
    assert_eq!((f.family, f.table), (None, 0));
    let RouteCommand::Show(f) = parse_route(&s("show fd00::/64")).unwrap() else {
        panic!()
    };
    assert_eq!(f.family, Some(Family::V6));
    assert_eq!(f.root, f.within);
    let RouteCommand::Flush(f) = parse_route(&s("flush dev eth1 proto static")).unwrap() else {
        panic!()
    };
    assert_eq!((f.dev.as_deref(), f.protocol), (Some("eth1"), Some(4)));
    let RouteCommand::Get { query, .. } = parse_route(&s("get 10.1.2.3")).unwrap() else {
        panic!()
    };
    assert_eq!((query.dst_len, query.flags), (32, 0x1000));
    assert!(matches!(parse_route(&[]).unwrap(), RouteCommand::Show(_)));
}

#[test]
fn route_errors() {
    for (bad, word) in [
        ("frobnicate", "frobnicate"),
        ("add", ""),
        ("flush", "flush"),
        ("add 10.0.0.0/8 via x", "x"),
        ("add 10.0.0.0/8 bogus 1", "bogus"),
        ("add 10.0.0.0/8 via fd00::1", "fd00::1"),
        ("add 10/8 metric x", "10/8"),
        ("add 10.0.15.6/24 via 10.0.0.1", "10.0.15.6/24"),
        ("add 10.0.15.0/24 via 10.0.0.1 via 10.0.0.2", "via"),
        ("add 10.0.15.0/24 dev a dev b", "dev"),
        ("add 10.0.15.0/24 metric 1 metric 2", "metric"),
        ("add 10.0.0.0/8 nexthop via 10.0.0.1 frob", "frob"),
        ("add 10.0.0.0/8 nexthop via 10.0.0.1 weight 0", "0"),
        ("add 10.0.0.0/8 encap mpls 100", "encap"),
        ("show frob", "frob"),
        ("get", ""),
    ] {
        let e = parse_route(&s(bad)).expect_err(bad).to_string();
        assert!(e.contains(&format!("'{word}'")), "{bad}: {e}");
    }
    let e = parse_route(&s("add 10.0.15.6/24 via 10.0.0.1")).unwrap_err();
    assert_eq!(e.why(), "Invalid prefix for given prefix length");
}

#[test]
fn rules() {
    let RuleCommand::Add(r) =
        parse_rule(&s("add from 10.0.0.0/24 table 100 priority 1000")).unwrap()
    else {
        panic!()
    };
    assert_eq!((r.table, r.priority), (Some(100), Some(1000)));
    let RuleCommand::Add(r) = parse_rule(&s("add fwmark 0x10/0xff lookup 5")).unwrap() else {
        panic!()
    };
    assert_eq!((r.fwmark, r.fwmask), (Some(16), Some(255)));
    // No table and no action: `lookup main`, as iproute2.
    let RuleCommand::Add(r) = parse_rule(&s("add not from 10.0.0.0/8")).unwrap() else {
        panic!()
    };
    assert_eq!((r.table, r.invert), (Some(254), true));
    let RuleCommand::Add(r) = parse_rule(&s("add to 10.1.0.0/16 prohibit")).unwrap() else {
        panic!()
    };
    assert_eq!((r.action, r.table), (Some(8), None));
    assert!(matches!(
        parse_rule(&s("show")).unwrap(),
        RuleCommand::Show(_)
    ));
    assert!(matches!(
        parse_rule(&s("list table 5")).unwrap(),
        RuleCommand::Show(_)
    ));
    assert!(matches!(parse_rule(&[]).unwrap(), RuleCommand::Show(_)));
    for bad in [
        "add",
        "del",
        "add from",
        "replace from 1.2.3.4 table 5",
        "add from x table 1",
        "add frob 1",
        "add pref 1 pref 2",
        "show frob",
    ] {
        assert!(parse_rule(&s(bad)).is_err(), "{bad}");
    }
}
