//! `inspect`: live state next to the records, gone guests, every guest at
//! once; network-wrapper's names and MAC scheme. Witnesses: `ip -j`, `ip
//! netns`.

use pipework_tests::*;

fn strs(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn inspect_reads_the_kernel_prints_gone_guests_and_all_guests() {
    let mut s = Sandbox::new("inspectgone");
    let a = s.guest("a");
    let b = s.guest("b");
    s.pipework(&["bri", &a, "10.90.0.2/24@10.90.0.1"]).ok();
    s.pipework(&["bri", &b, "10.90.0.3/24"]).ok();
    // An address added behind pipework's back shows in the live view only.
    ip(&a, &["addr", "add", "10.91.0.2/24", "dev", "eth1"]);
    let v = s.pipework(&["inspect", &a]).ok().json();
    assert_eq!(v["guest_alive"], true, "{v}");
    let i = &v["interfaces"][0];
    let mut kernel = addresses(&a, "eth1");
    kernel.sort();
    let mut live = strs(&i["live"]["addresses"]);
    live.sort();
    // ip lists the IPv6 link-local address too; so does the live view.
    assert_eq!(live, kernel, "{i}");
    assert!(live.contains(&"10.91.0.2/24".to_string()), "{i}");
    assert_eq!(strs(&i["addresses"]), vec!["10.90.0.2/24"], "{i}");
    let def = ip_json(&a, &["route", "show", "default"]);
    assert_eq!(def[0]["gateway"], "10.90.0.1");
    assert_eq!(strs(&i["live"]["gateways"]), vec!["10.90.0.1"], "{i}");
    assert!(i.get("dhcp").is_none(), "{i}");
    // list reads the kernel too: its table and its JSON.
    let list = s.pipework(&["list"]).ok().stdout;
    let line = list.lines().find(|l| l.starts_with(a.as_str())).unwrap();
    assert!(line.contains("10.91.0.2/24"), "{list}");
    let lj = s.pipework(&["list", "--json"]).ok().json();
    let e = lj
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["guest"]["name"] == a.as_str())
        .unwrap();
    assert!(strs(&e["live"]["addresses"]).contains(&"10.91.0.2/24".to_string()));
    assert_eq!(strs(&e["live"]["gateways"]), vec!["10.90.0.1"], "{e}");

    // b is gone (its namespace deleted): printed from its records.
    must(std::process::Command::new("ip").args(["netns", "del", &b]));
    let netns = must(std::process::Command::new("ip").args(["netns", "list"]));
    assert!(!netns.contains(&b), "{netns}");
    let r = s.pipework(&["inspect", &b]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["guest_alive"], false, "{v}");
    assert_eq!(v["guest"]["name"], b.as_str(), "{v}");
    assert_eq!(strs(&v["interfaces"][0]["addresses"]), vec!["10.90.0.3/24"]);
    assert_eq!(v["interfaces"][0]["live"]["present"], false, "{v}");
    let list = s.pipework(&["list"]).ok().stdout;
    assert!(list.contains(&format!("{b} (gone)")), "{list}");

    // --all: both, alive and gone.
    let all = s.pipework(&["inspect", "--all"]).ok().json();
    let all = all.as_array().expect("an array");
    assert_eq!(all.len(), 2, "{all:?}");
    let by = |n: &str| {
        all.iter()
            .find(|g| g["guest"]["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by(&a)["guest_alive"], true);
    assert_eq!(by(&b)["guest_alive"], false);
    assert_eq!(
        strs(&by(&a)["interfaces"][0]["live"]["gateways"]),
        vec!["10.90.0.1"]
    );

    // Neither or both: a usage error naming the conflict.
    for args in [vec!["inspect"], vec!["inspect", "--all", &a]] {
        let r = s.pipework(&args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
    // A guest never seen: still an error.
    let r = s.pipework(&["inspect", &format!("{}-nosuch", s.prefix)]);
    assert_eq!(r.code, 2, "{r:?}");
}

/// One object per line-separated JSON value (network-wrapper printed its
/// objects one after the other).
fn stream(text: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .map(|v| v.unwrap_or_else(|e| panic!("{e}: {text}")))
        .collect()
}

#[test]
fn network_wrapper_format_has_its_names_and_the_live_values() {
    use pipework_tests::dhcp::{DhcpServer, ServerConfig};
    let mut s = Sandbox::new("inspectnw");
    let _srv = DhcpServer::start(
        &mut s,
        "brnw",
        &ServerConfig {
            extra: &["--dhcp-option=option:dns-server,10.92.0.53,10.92.0.54"],
            ..ServerConfig::v4("10.92.0")
        },
    );
    let d = s.guest("d");
    let st = s.guest("st");
    s.pipework(&["brnw", &d, "dhcp"]).ok();
    s.pipework(&["brnw", &st, "10.92.0.9/24@10.92.0.1"]).ok();

    let out = s
        .pipework(&["inspect", "--format", "network-wrapper", &d])
        .ok()
        .stdout;
    let v = stream(&out);
    assert_eq!(v.len(), 1, "{out}");
    let v = &v[0];
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["Container", "NetworkSettings"], "{v}");
    let n = v["NetworkSettings"].as_object().unwrap();
    let mut names: Vec<&str> = n.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Bridge",
            "DHCP_PID",
            "DNS",
            "Gateway",
            "HWAddr",
            "IPAddress",
            "IPPrefixLen"
        ],
        "{v}"
    );
    assert!(
        n.values().all(|x| x.is_string()),
        "every value a string: {v}"
    );
    // Each value against its witness.
    assert_eq!(v["Container"], d.as_str());
    let link = link(&d, "eth1").unwrap();
    assert_eq!(n["HWAddr"], link["address"], "{v}");
    let a = &ip_json(&d, &["-4", "addr", "show", "dev", "eth1"])[0]["addr_info"][0];
    assert_eq!(n["IPAddress"], a["local"], "{v}");
    assert_eq!(n["IPPrefixLen"], a["prefixlen"].to_string(), "{v}");
    let def = ip_json(&d, &["route", "show", "default"]);
    assert_eq!(n["Gateway"], def[0]["gateway"], "{v}");
    assert_eq!(n["Bridge"], "brnw");
    assert_eq!(n["DNS"], "10.92.0.53, 10.92.0.54", "{v}");
    let daemons = netns_pids_named(&s.host, "pipework");
    assert_eq!(daemons.len(), 1, "{daemons:?}");
    assert_eq!(n["DHCP_PID"], daemons[0].to_string(), "{v}");

    // inspect-all: network-wrapper's name, every guest, one object each.
    let out = s
        .pipework(&["inspect-all", "--format", "network-wrapper"])
        .ok()
        .stdout;
    let all = stream(&out);
    assert_eq!(all.len(), 2, "{out}");
    let stat = all.iter().find(|o| o["Container"] == st.as_str()).unwrap();
    assert_eq!(stat["NetworkSettings"]["IPAddress"], "10.92.0.9");
    assert_eq!(stat["NetworkSettings"]["IPPrefixLen"], "24");
    assert_eq!(stat["NetworkSettings"]["Gateway"], "10.92.0.1");
    assert_eq!(stat["NetworkSettings"]["DHCP_PID"], "");
    // inspect-all is inspect --all.
    assert_eq!(
        s.pipework(&["inspect-all"]).ok().json(),
        s.pipework(&["inspect", "--all"]).ok().json()
    );
    let r = s.pipework(&["inspect", "--format", "yaml", &d]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("yaml"), "{}", r.stderr);
}

/// The guest link's MAC as `ip -j` reports it, as octets.
fn mac_octets(ns: &str, ifname: &str) -> Vec<u8> {
    let l = link(ns, ifname).unwrap_or_else(|| panic!("no {ifname} in {ns}"));
    l["address"]
        .as_str()
        .unwrap()
        .split(':')
        .map(|o| u8::from_str_radix(o, 16).unwrap())
        .collect()
}

#[test]
fn network_wrapper_mac_scheme_carries_the_host_address() {
    let mut s = Sandbox::new("nwmac");
    // No bridge yet, no default route: no address to take, refused before
    // anything changes.
    let g0 = s.guest("g0");
    let before = s.host_links();
    let r = s.pipework(&[
        "brm2",
        &g0,
        "10.93.9.2/24",
        "--mac-scheme",
        "network-wrapper",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("--mac-scheme network-wrapper"),
        "{}",
        r.stderr
    );
    assert_eq!(s.host_links(), before);
    assert!(link(&g0, "eth1").is_none());

    // The host interface's own address: 10.93.4.5 gives 5d:04:05.
    s.ip_host(&["link", "add", "brm", "type", "bridge"]);
    s.ip_host(&["addr", "add", "10.93.4.5/24", "dev", "brm"]);
    s.ip_host(&["link", "set", "brm", "up"]);
    let mut seen = Vec::new();
    for n in 0..4 {
        let g = s.guest(&format!("g{}", n + 1));
        s.pipework(&[
            "brm",
            &g,
            &format!("10.93.4.{}/24", 10 + n),
            "--mac-scheme",
            "network-wrapper",
        ])
        .ok();
        let m = mac_octets(&g, "eth1");
        assert_eq!(m[0] & 0b11, 0b10, "unicast, locally administered: {m:02x?}");
        assert_eq!(&m[1..4], &[0x5d, 0x04, 0x05], "{m:02x?}");
        // The same MAC on the guest's record.
        let v = s.pipework(&["inspect", &g]).ok().json();
        assert_eq!(
            v["interfaces"][0]["mac"],
            link(&g, "eth1").unwrap()["address"]
        );
        assert!(ping(&g, "10.93.4.5"));
        seen.push(m);
    }
    seen.dedup();
    assert_eq!(seen.len(), 4, "the random parts vary: {seen:02x?}");

    // A bridge pipework creates has no address: the default route's source.
    s.ip_host(&["link", "add", "up0", "type", "veth", "peer", "name", "up0p"]);
    s.ip_host(&["addr", "add", "10.94.1.2/24", "dev", "up0"]);
    s.ip_host(&["link", "set", "up0", "up"]);
    s.ip_host(&["link", "set", "up0p", "up"]);
    s.ip_host(&["route", "add", "default", "via", "10.94.1.1"]);
    s.pipework(&[
        "brm2",
        &g0,
        "10.93.9.2/24",
        "--mac-scheme",
        "network-wrapper",
    ])
    .ok();
    let m = mac_octets(&g0, "eth1");
    assert_eq!(m[0] & 0b11, 0b10, "{m:02x?}");
    assert_eq!(&m[1..4], &[0x5e, 0x01, 0x02], "{m:02x?}");

    // With a MAC of its own: one or the other.
    let g5 = s.guest("g5");
    let r = s.pipework(&[
        "brm",
        &g5,
        "10.93.4.30/24",
        "02:00:00:00:00:05",
        "--mac-scheme",
        "network-wrapper",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = s.pipework(&["brm", &g5, "10.93.4.30/24", "--mac-scheme", "nw"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("'nw'"), "{}", r.stderr);
}
