//! Linux bridge attachments, proved with traffic and `ip -j` witnesses.

use pipework_tests::*;

#[test]
fn two_guests_on_a_new_bridge_ping_each_other() {
    let mut s = Sandbox::new("twoguests");
    let a = s.guest("a");
    let b = s.guest("b");
    assert!(link(&s.host, "br1").is_none());
    s.pipework(&["br1", &a, "10.1.0.2/24"]).ok();
    s.pipework(&["br1", &b, "10.1.0.3/24"]).ok();
    let br = link(&s.host, "br1").expect("bridge created");
    assert_eq!(br["linkinfo"]["info_kind"], "bridge");
    assert!(ping(&a, "10.1.0.3"));
    assert!(ping(&b, "10.1.0.2"));
    assert_eq!(addresses(&a, "eth1")[0], "10.1.0.2/24");
    // The guest end carries the bridge's MTU and the host end is a port.
    let e = link(&a, "eth1").unwrap();
    assert_eq!(e["mtu"], br["mtu"]);
    let ports = ip_json(&s.host, &["link", "show", "master", "br1"]);
    assert_eq!(ports.as_array().unwrap().len(), 2);
    for p in ports.as_array().unwrap() {
        assert!(p["ifname"].as_str().unwrap().len() <= 15);
        // One queue each way, both ends (asked for at creation: see
        // `NewLink::single_queue`).
        let d = ip_json(
            &s.host,
            &["-d", "link", "show", p["ifname"].as_str().unwrap()],
        );
        assert_eq!(d[0]["num_tx_queues"], 1, "{d}");
        assert_eq!(d[0]["num_rx_queues"], 1, "{d}");
    }
    let d = ip_json(&a, &["-d", "link", "show", "eth1"]);
    assert_eq!(d[0]["num_tx_queues"], 1, "{d}");
    assert_eq!(d[0]["num_rx_queues"], 1, "{d}");
}

#[test]
fn ipv6_guests_ping_each_other() {
    let mut s = Sandbox::new("ipv6");
    let a = s.guest("a");
    let b = s.guest("b");
    s.pipework(&["br6", "-a", "6", &a, "fd00:1::2/64"]).ok();
    s.pipework(&["br6", &b, "fd00:1::3/64"]).ok();
    // Attach returns only after DAD: the addresses are usable at once.
    let flags = ip_json(&a, &["-6", "addr", "show", "dev", "eth1"]);
    let tentative = flags[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["tentative"].as_bool() == Some(true));
    assert!(!tentative, "{flags}");
    assert!(ping(&a, "fd00:1::3"));
    assert!(ping(&b, "fd00:1::2"));
}

#[test]
fn dual_stack_in_one_attach() {
    let mut s = Sandbox::new("dualstack");
    let a = s.guest("a");
    let b = s.guest("b");
    s.pipework(&["brd", &a, "10.7.0.2/24,fd00:7::2/64"]).ok();
    s.pipework(&["brd", &b, "10.7.0.3/24,fd00:7::3/64"]).ok();
    assert!(ping(&a, "10.7.0.3"));
    assert!(ping(&a, "fd00:7::3"));
}

/// Router R joins two bridges (a second interface on one guest); A and C
/// reach each other only through their gateways.
#[test]
fn guests_reach_each_other_through_their_gateways() {
    let mut s = Sandbox::new("gateway");
    let a = s.guest("a");
    let c = s.guest("c");
    let r = s.guest("r");
    s.pipework(&["brl", &r, "10.10.0.1/24"]).ok();
    s.pipework(&["brr", "-i", "eth2", &r, "10.20.0.1/24"]).ok();
    ip(&r, &["link", "set", "lo", "up"]);
    must(std::process::Command::new("ip").args([
        "netns",
        "exec",
        &r,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]));
    s.pipework(&["brl", &a, "10.10.0.2/24@10.10.0.1"]).ok();
    // Off-subnet gateway: a /32 address needs an on-link route to it.
    s.pipework(&["brr", &c, "10.20.0.2/32@10.20.0.1"]).ok();
    let def = ip_json(&c, &["route", "show", "default"]);
    assert_eq!(def[0]["gateway"], "10.20.0.1");
    let onlink = ip_json(&c, &["route", "show", "10.20.0.1"]);
    assert_eq!(onlink[0]["scope"], "link");
    assert!(ping(&a, "10.20.0.2"));
    assert!(ping(&c, "10.10.0.2"));
}

#[test]
fn gateway_replaces_default_and_detach_restores_it() {
    let mut s = Sandbox::new("defroute");
    let g = s.guest("g");
    // The guest already has a default route through an interface of its own.
    ip(
        &g,
        &["link", "add", "up0", "type", "veth", "peer", "name", "up0p"],
    );
    ip(&g, &["link", "set", "up0", "up"]);
    ip(&g, &["link", "set", "up0p", "up"]);
    ip(&g, &["addr", "add", "172.30.0.2/24", "dev", "up0"]);
    ip(&g, &["route", "add", "default", "via", "172.30.0.1"]);
    let before = routes(&g);
    s.pipework(&["brg", &g, "10.30.0.2/24@10.30.0.1"]).ok();
    let def = ip_json(&g, &["route", "show", "default"]);
    assert_eq!(def.as_array().unwrap().len(), 1, "{def}");
    assert_eq!(def[0]["gateway"], "10.30.0.1");
    assert_eq!(def[0]["dev"], "eth1");
    s.pipework(&["detach", &g]).ok();
    assert_eq!(routes(&g), before);
}

#[test]
fn a_second_address_and_a_second_interface() {
    let mut s = Sandbox::new("second");
    let a = s.guest("a");
    let b = s.guest("b");
    s.pipework(&["br2", &a, "10.2.0.2/24"]).ok();
    // The original failed with "File exists" here.
    s.pipework(&["br2", &a, "10.2.1.2/24"]).ok();
    s.pipework(&["br2", "-i", "eth2", &a, "10.2.2.2/24"]).ok();
    s.pipework(&["br2", &b, "10.2.1.3/24"]).ok();
    let eth1 = addresses(&a, "eth1");
    assert!(
        eth1.contains(&"10.2.0.2/24".into()) && eth1.contains(&"10.2.1.2/24".into()),
        "{eth1:?}"
    );
    assert_eq!(addresses(&a, "eth2")[0], "10.2.2.2/24");
    assert!(ping(&b, "10.2.1.2"));
    // The same address twice, or a second gateway, is refused untouched.
    let r = s.pipework(&["br2", &a, "10.2.1.2/24"]);
    assert_eq!(r.code, 2, "{r:?}");
    let inspect = s.pipework(&["inspect", &a]).ok().json();
    assert_eq!(inspect["interfaces"].as_array().unwrap().len(), 2);
    // Detaching one interface leaves the other.
    s.pipework(&["detach", &a, "-i", "eth1"]).ok();
    assert!(link(&a, "eth1").is_none());
    assert!(link(&a, "eth2").is_some());
}

#[test]
fn detach_leaves_links_and_routes_as_before() {
    let mut s = Sandbox::new("detach");
    let a = s.guest("a");
    let b = s.guest("b");
    // An existing bridge is used, never deleted; a new one is deleted with its
    // last port.
    // With a MAC of its own, as real bridges have (a port-less bridge that
    // never had one shows 00:00:00:00:00:00 and adopts its first port's MAC
    // for good: the kernel's doing, which no detach can reverse).
    s.ip_host(&[
        "link",
        "add",
        "brkeep",
        "address",
        "02:00:00:00:0b:01",
        "type",
        "bridge",
    ]);
    let host_before = s.host_links();
    let a_before = (links(&a), routes(&a));
    let b_before = (links(&b), routes(&b));
    s.pipework(&["brkeep", &a, "10.3.0.2/24@10.3.0.1"]).ok();
    s.pipework(&["brnew", &b, "10.4.0.2/24"]).ok();
    s.pipework(&["brnew", "-i", "eth9", &a, "10.4.0.3/24"]).ok();
    assert!(ping(&a, "10.4.0.2"));
    s.pipework(&["detach", &b]).ok();
    assert!(link(&s.host, "brnew").is_some(), "still has a's eth9");
    s.pipework(&["detach", &a]).ok();
    assert_eq!(s.host_links(), host_before);
    assert_eq!((links(&a), routes(&a)), a_before);
    assert_eq!((links(&b), routes(&b)), b_before);
    let list = s.pipework(&["list", "--json"]).ok().json();
    assert_eq!(list, serde_json::json!([]));
    // A second detach says there is nothing to detach.
    assert_eq!(s.pipework(&["detach", &a]).code, 2);
}

#[test]
fn twenty_concurrent_attaches_to_one_new_bridge() {
    let mut s = Sandbox::new("concurrent");
    let guests: Vec<String> = (0..20).map(|i| s.guest(&format!("g{i}"))).collect();
    let results: Vec<Run> = std::thread::scope(|sc| {
        let hs: Vec<_> = guests
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let s = &s;
                sc.spawn(move || s.pipework(&["brrace", g, &format!("10.50.0.{}/24", i + 10)]))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        assert_eq!(r.code, 0, "{r:?}");
    }
    let ports = ip_json(&s.host, &["link", "show", "master", "brrace"]);
    assert_eq!(ports.as_array().unwrap().len(), 20);
    assert!(ping(&guests[0], "10.50.0.29"));
    let list = s.pipework(&["list", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 20);
    // And all detach concurrently; the last one removes the bridge.
    std::thread::scope(|sc| {
        for g in &guests {
            let s = &s;
            sc.spawn(move || s.pipework(&["detach", g]).ok().code);
        }
    });
    assert!(link(&s.host, "brrace").is_none());
}

#[test]
fn host_side_names_honour_dash_l_and_stay_short() {
    let mut s = Sandbox::new("names");
    let a = s.guest("a");
    let p = GuestProcess::spawn_unshared();
    s.pipework(&["brn", "-l", "myveth0", &a, "0/0"]).ok();
    assert_eq!(link(&s.host, "myveth0").unwrap()["master"], "brn");
    // PID guests get the original's v<if>pl<pid> name when it fits.
    s.pipework(&["brn", &p.pid().to_string(), "0/0"]).ok();
    assert!(link(&s.host, &format!("veth1pl{}", p.pid())).is_some());
    // A taken -l name is bad input: exit 2, nothing created.
    let before = s.host_links();
    let b = s.guest("b");
    let r = s.pipework(&["brn", "-l", "myveth0", &b, "0/0"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("myveth0"), "{}", r.stderr);
    assert_eq!(s.host_links(), before);
    // No address: the link is there and up, without an IPv4 address.
    let e = link(&a, "eth1").unwrap();
    assert!(e["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    assert!(addresses(&a, "eth1").iter().all(|x| x.starts_with("fe80")));
}

/// The generated host name is not looked up before the request: when a link
/// has it (here a veth whose peer is in another namespace, what pipework's
/// own would look like), the kernel refuses it and a random one is used;
/// the link that had the name is left as it was.
#[test]
fn a_taken_generated_host_name_gives_way_to_a_random_one() {
    let mut s = Sandbox::new("nametaken");
    let other = s.guest("other");
    let p = GuestProcess::spawn_unshared();
    let planted = format!("veth1pl{}", p.pid());
    s.ip_host(&[
        "link", "add", &planted, "type", "veth", "peer", "name", "x0", "netns", &other,
    ]);
    let before = link(&s.host, &planted).unwrap();
    s.pipework(&["brnt", &p.pid().to_string(), "10.84.0.2/24"])
        .ok();
    let after = link(&s.host, &planted).unwrap();
    assert_eq!(after["ifindex"], before["ifindex"]);
    assert!(after.get("master").is_none(), "{after}");
    let ports = ip_json(&s.host, &["link", "show", "master", "brnt"]);
    let ports = ports.as_array().unwrap();
    assert_eq!(ports.len(), 1, "{ports:?}");
    let name = ports[0]["ifname"].as_str().unwrap();
    assert!(name.starts_with("pw") && name.len() == 12, "{name}");
    let addr = ip_pid(p.pid(), &["-j", "-4", "addr", "show", "eth1"]);
    assert!(addr.contains("10.84.0.2"), "{addr}");
    // Detach removes what the attach made, not the planted link.
    s.pipework(&["detach", &p.pid().to_string()]).ok();
    assert!(link(&s.host, name).is_none());
    assert_eq!(
        link(&s.host, &planted).unwrap()["ifindex"],
        before["ifindex"]
    );
}

/// `-l NAME` of an existing link, as the original: a down veth is replaced
/// (and stderr says so), an up one refused; unlike the original, a failed
/// attach gives the old veth back, and only a veth is replaced.
#[test]
fn dash_l_replaces_a_down_veth_and_refuses_an_up_one() {
    let mut s = Sandbox::new("dashl");
    let a = s.guest("a");
    let b = s.guest("b");
    s.ip_host(&["link", "add", "brl", "type", "bridge"]);
    s.ip_host(&["link", "set", "brl", "up"]);
    s.ip_host(&[
        "link", "add", "old0", "type", "veth", "peer", "name", "old0p",
    ]);
    let old = link(&s.host, "old0").unwrap()["ifindex"].clone();
    let names = s.host_link_names();

    // A failed attach: the old veth is back under its name, nothing new.
    let r = s.pipework_env(
        &["brl", "-l", "old0", &a, "10.95.0.2/24"],
        &[("PIPEWORK_FAULT", "link-up")],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(link(&s.host, "old0").unwrap()["ifindex"], old);
    assert_eq!(s.host_link_names(), names);
    assert!(link(&a, "eth1").is_none());

    // Down: replaced, and said.
    let r = s.pipework(&["brl", "-l", "old0", &a, "10.95.0.2/24"]).ok();
    assert_eq!(r.stderr.matches("replaced").count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("replaced the down veth old0"),
        "{}",
        r.stderr
    );
    let new = link(&s.host, "old0").unwrap();
    assert_ne!(new["ifindex"], old);
    assert_eq!(new["master"], "brl");
    assert!(link(&s.host, "old0p").is_none(), "the old pair is gone");
    assert!(addresses(&a, "eth1").contains(&"10.95.0.2/24".to_string()));

    // Up (the one just made): refused, nothing changed.
    let before = s.host_links();
    let r = s.pipework(&["brl", "-l", "old0", &b, "10.95.0.3/24"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("is up"), "{}", r.stderr);
    // A down link that is not a veth: refused.
    s.ip_host(&["link", "add", "brdown", "type", "bridge"]);
    let before_br = s.host_links();
    let r = s.pipework(&["brl", "-l", "brdown", &b, "10.95.0.3/24"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("only a down veth"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert_eq!(s.host_links(), before_br);
    assert_eq!(before.len() + 1, before_br.len());
    assert!(link(&b, "eth1").is_none());
    assert!(s
        .host_link_names()
        .iter()
        .all(|n| !n.as_str().unwrap_or_default().starts_with("pwold")));
}

/// A whole-guest detach undoes the newest attachment first: eth2 replaced
/// the default route eth1 made and recorded it, so eth2 must give it back
/// while eth1 still has it to give.
#[test]
fn a_whole_guest_detach_goes_newest_first() {
    if !pipework_tests::is_root() {
        return;
    }
    let mut s = Sandbox::new("detachorder");
    let g = s.guest("g");
    let before = pipework_tests::routes(&g);
    s.pipework(&["brord", &g, "-i", "eth1", "10.91.0.2/24@10.91.0.1"])
        .ok();
    s.pipework(&["brord", &g, "-i", "eth2", "10.92.0.2/24@10.92.0.1"])
        .ok();
    let r = s.pipework(&["detach", &g]).ok();
    assert_eq!(r.stderr, "", "a whole-guest detach warned: {}", r.stderr);
    assert_eq!(pipework_tests::routes(&g), before);
}
