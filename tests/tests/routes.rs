//! `pipework route|rule <guest> ...` as `ip route|rule` inside the guest:
//! every verb, multipath, flush selectors, and `show`/`get` printing the
//! very lines `ip` prints for the same routes (the witness is `ip -n`).

use pipework_tests::*;

/// A guest with two veth ends up and addressed (v4 and v6).
fn guest(s: &mut Sandbox) -> String {
    let g = s.guest("g");
    ip(
        &g,
        &["link", "add", "d0", "type", "veth", "peer", "name", "d1"],
    );
    for (dev, a4, a6) in [
        ("d0", "10.5.0.2/24", "fd05::2/64"),
        ("d1", "10.6.0.2/24", "fd06::2/64"),
    ] {
        ip(&g, &["link", "set", dev, "up"]);
        ip(&g, &["addr", "add", a4, "dev", dev]);
        ip(&g, &["addr", "add", a6, "dev", dev, "nodad"]);
    }
    g
}

fn pw(s: &Sandbox, g: &str, args: &str) -> Run {
    let mut v = vec!["route", g];
    v.extend(args.split_whitespace());
    s.pipework(&v)
}

fn pw_rule(s: &Sandbox, g: &str, args: &str) -> Run {
    let mut v = vec!["rule", g];
    v.extend(args.split_whitespace());
    s.pipework(&v)
}

fn ipw(g: &str, args: &str) -> String {
    ip(g, &args.split_whitespace().collect::<Vec<_>>())
}

#[test]
fn every_verb_and_output_identical_to_ip() {
    let mut s = Sandbox::new("routes");
    let g = guest(&mut s);
    for add in [
        "add 10.7.0.0/16 via 10.5.0.1 metric 5 proto static",
        "add 10.8.0.0/16 nexthop via 10.5.0.1 dev d0 weight 2 nexthop via 10.6.0.1 dev d1",
        "add blackhole 10.9.0.0/16 table 100",
        "add unreachable 10.11.0.0/16",
        "add prohibit 10.12.0.0/16 metric 7",
        "add 10.10.0.0/24 dev d0 mtu 1400 src 10.5.0.2",
        "add 10.13.0.0/24 via 10.77.0.1 dev d0 onlink",
        "add 10.14.0.0/24 dev d1 scope host table 101",
        "add fd07::/64 via fd05::1 pref high",
        "add fd08::/64 dev d1 metric 9",
        "append 10.10.0.0/24 dev d1",
        "prepend 10.15.0.0/24 dev d1",
    ] {
        pw(&s, &g, add).ok();
    }
    // Multipath: both nexthops, as ip -j sees them.
    let mp = ip_json(&g, &["route", "show", "10.8.0.0/16"]);
    let hops = mp[0]["nexthops"].as_array().expect("nexthops");
    assert_eq!(hops.len(), 2, "{mp}");
    assert_eq!(hops[0]["gateway"], "10.5.0.1");
    assert_eq!(hops[0]["weight"], 2);
    assert_eq!(hops[1]["dev"], "d1");
    // show/get: the same lines as ip, byte for byte.
    for (ours, theirs) in [
        ("show", "route show"),
        ("list table all", "route show table all"),
        ("show table 100", "route show table 100"),
        ("show table 101", "route show table 101"),
        ("show dev d0", "route show dev d0"),
        ("show 10.8.0.0/16", "route show 10.8.0.0/16"),
        ("show root 10.0.0.0/8", "route show root 10.0.0.0/8"),
        ("show match 10.7.1.1", "route show match 10.7.1.1"),
        ("show proto static", "route show proto static"),
        ("show scope link", "route show scope link"),
        ("show type unreachable", "route show type unreachable"),
        ("show via 10.5.0.1", "route show via 10.5.0.1"),
        ("-6 show", "-6 route show"),
        ("-6 show dev d1", "-6 route show dev d1"),
        ("get 10.7.1.1", "route get 10.7.1.1"),
        ("get 10.5.0.2", "route get 10.5.0.2"),
        ("get 10.10.0.9", "route get 10.10.0.9"),
        ("get fd07::1", "route get fd07::1"),
    ] {
        let r = pw(&s, &g, ours).ok();
        assert_eq!(r.stdout, ipw(&g, theirs), "route {ours}");
    }
    // change / replace / test / del.
    pw(
        &s,
        &g,
        "change 10.7.0.0/16 via 10.6.0.1 metric 5 proto static",
    )
    .ok();
    assert_eq!(
        ip_json(&g, &["route", "show", "10.7.0.0/16"])[0]["gateway"],
        "10.6.0.1"
    );
    pw(
        &s,
        &g,
        "replace 10.7.0.0/16 via 10.5.0.1 metric 5 proto static",
    )
    .ok();
    assert_eq!(
        ip_json(&g, &["route", "show", "10.7.0.0/16"])[0]["gateway"],
        "10.5.0.1"
    );
    assert_eq!(pw(&s, &g, "test 10.7.0.0/16 via 10.5.0.1 metric 5").code, 1);
    let r = pw(&s, &g, "change 10.99.0.0/16 via 10.5.0.1");
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    pw(&s, &g, "del 10.7.0.0/16").ok();
    assert!(ipw(&g, "route show 10.7.0.0/16").is_empty());
    pw(&s, &g, "del 10.8.0.0/16").ok();
    assert!(ipw(&g, "route show 10.8.0.0/16").is_empty());
    // A kernel error: exit 1, one line.
    let r = pw(&s, &g, "add 10.20.0.0/16 via 10.99.0.1");
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[test]
fn flush_removes_exactly_the_selected_routes() {
    let mut s = Sandbox::new("flush");
    let g = guest(&mut s);
    for add in [
        "add 10.7.0.0/16 via 10.5.0.1 proto static",
        "add 10.7.1.0/24 via 10.5.0.1",
        "add 10.8.0.0/16 via 10.6.0.1 proto static",
        "add 10.9.0.0/16 dev d1 table 100",
        "add 10.9.1.0/24 dev d0 table 100",
        "add fd07::/64 via fd05::1 proto static",
    ] {
        pw(&s, &g, add).ok();
    }
    let before = ipw(&g, "route show table all");
    pw(&s, &g, "flush root 10.7.0.0/16").ok();
    let v4 = ipw(&g, "route show");
    assert!(!v4.contains("10.7."), "{v4}");
    assert!(v4.contains("10.8.0.0/16"), "{v4}");
    pw(&s, &g, "flush table 100 dev d1").ok();
    assert_eq!(
        ipw(&g, "route show table 100"),
        "10.9.1.0/24 dev d0 scope link \n"
    );
    pw(&s, &g, "flush proto static").ok();
    let all = ipw(&g, "route show table all");
    assert!(!all.contains("10.8.0.0/16"), "{all}");
    // IPv4 only unless -6, as ip.
    assert!(all.contains("fd07::/64"), "{all}");
    pw(&s, &g, "-6 flush proto static").ok();
    assert!(!ipw(&g, "-6 route show").contains("fd07::/64"));
    // The kernel's own routes are untouched.
    for l in before.lines().filter(|l| l.contains("proto kernel")) {
        assert!(ipw(&g, "route show table all").contains(l), "{l}");
    }
}

#[test]
fn bad_route_and_rule_input_exits_2_and_changes_nothing() {
    let mut s = Sandbox::new("routebad");
    let g = guest(&mut s);
    pw(&s, &g, "add 10.7.0.0/16 via 10.5.0.1").ok();
    let before = routes(&g);
    for (args, word) in [
        (
            "route add 10.0.15.6/24 via 10.5.0.1",
            "Invalid prefix for given prefix length",
        ),
        ("route add 10.0.15.0/24 via 10.5.0.1 via 10.6.0.1", "'via'"),
        ("route add 10.0.15.0/24 dev d0 dev d1", "'dev'"),
        ("route add 10.0.15.0/24 frob 1", "'frob'"),
        ("route flush", "flush"),
        ("route show frob", "'frob'"),
        ("route save", "'save'"),
        (
            "route add 10.0.15.0/24 nexthop via 10.5.0.1 bogus",
            "'bogus'",
        ),
        ("route get", "get"),
        ("rule add frob 1", "'frob'"),
        ("rule add pref 5 pref 6 table 1", "'priority'"),
        ("rule show bogus", "'bogus'"),
    ] {
        let mut v: Vec<&str> = args.split_whitespace().collect();
        v.insert(1, &g);
        let r = s.pipework(&v);
        assert_eq!(r.code, 2, "{args}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args}: {}", r.stderr);
        assert!(r.stderr.contains(word), "{args}: {}", r.stderr);
        assert_eq!(routes(&g), before, "{args}");
    }
    assert!(ipw(&g, "route show 10.0.15.0/24").is_empty());
}

#[test]
fn rules_show_not_and_defaults_as_ip() {
    let mut s = Sandbox::new("rules");
    let g = guest(&mut s);
    for add in [
        "add from 10.5.0.0/24 table 100 pref 1000",
        "add not to 10.9.0.5/16 lookup 101",
        "add fwmark 0x10/0xff prohibit",
        "add iif d0 table main pref 2000",
        "add oif d1 from 10.6.0.0/24 pref 2100 lookup 5",
        "add from 10.1.0.0/16 pref 2200",
        "-6 add from fd05::/64 table 7",
    ] {
        pw_rule(&s, &g, add).ok();
    }
    for (ours, theirs) in [
        ("show", "rule show"),
        ("list table 100", "rule show table 100"),
        ("show not", "rule show not"),
        ("show pref 2200", "rule show pref 2200"),
        ("-6 show", "-6 rule show"),
    ] {
        let r = pw_rule(&s, &g, ours).ok();
        assert_eq!(r.stdout, ipw(&g, theirs), "rule {ours}");
    }
    // No table: lookup main, as ip rule add.
    assert!(ipw(&g, "rule show pref 2200").contains("lookup main"));
    pw_rule(&s, &g, "del not to 10.9.0.5/16 lookup 101").ok();
    assert!(!ipw(&g, "rule show").contains("not"));
    pw_rule(&s, &g, "del pref 1000").ok();
    assert!(!ipw(&g, "rule show").contains("1000:"));
}

/// `route <guest>` and `rule <guest>` with nothing after the guest list, as
/// `ip route` and `ip rule` alone do (the original passed the empty rest to
/// them): the very lines `ip` prints, a default route and a table's
/// routes, rules and both families included.
#[test]
fn route_and_rule_alone_list_like_ip() {
    let mut s = Sandbox::new("routealone");
    let g = guest(&mut s);
    ip(&g, &["route", "add", "default", "via", "10.5.0.1"]);
    ip(
        &g,
        &[
            "route",
            "add",
            "10.7.0.0/16",
            "via",
            "10.6.0.1",
            "metric",
            "5",
        ],
    );
    ip(&g, &["route", "add", "fd07::/64", "via", "fd05::1"]);
    ip(&g, &["-6", "route", "add", "default", "via", "fd06::1"]);
    ip(&g, &["rule", "add", "from", "10.5.0.0/24", "table", "100"]);
    for (ours, theirs) in [("", "route"), ("-6", "-6 route"), ("-4", "-4 route")] {
        let r = pw(&s, &g, ours).ok();
        let want = ipw(&g, theirs);
        assert!(want.contains("default via"), "{want}");
        assert_eq!(r.stdout, want, "route {ours:?}");
    }
    let r = pw_rule(&s, &g, "").ok();
    let want = ipw(&g, "rule");
    assert!(want.contains("lookup 100"), "{want}");
    assert_eq!(r.stdout, want);
    // Listing changed nothing.
    assert_eq!(ipw(&g, "route"), ipw(&g, "route show"));
    // tc alone has nothing to list: still a usage error.
    let r = s.pipework(&["tc", &g]);
    assert_eq!(r.code, 2, "{r:?}");
}
