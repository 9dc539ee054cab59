//! 802.1Q: macvlans on `<nic>.<VID>` sub-interfaces of the emulated igb NIC,
//! `--direct-phys` with `@VID`, and VLAN filtering on Linux bridges.

use pipework_tests::hw::*;
use pipework_tests::*;

fn up(flags: &serde_json::Value) -> bool {
    flags.as_array().unwrap().iter().any(|f| f == "UP")
}

/// The PF in the sandbox, up, with no VFs.
fn nic(s: &Sandbox) -> String {
    set_vfs(0);
    let pf = pf_name();
    s.adopt(&pf);
    s.up_with_carrier(&pf);
    pf
}

#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn macvlan_guests_on_one_vlan_reach_each_other() {
    let mut s = Sandbox::new("dot1q");
    let pf = nic(&s);
    let sub = |v: u16| format!("{pf}.{v}");
    s.ip_host(&[
        "link",
        "add",
        "link",
        &pf,
        "name",
        &sub(30),
        "type",
        "vlan",
        "id",
        "30",
    ]);
    s.ip_host(&["link", "set", &sub(30), "up"]);
    let host_before = s.host_links();
    let (a, b, c, d) = (s.guest("a"), s.guest("b"), s.guest("c"), s.guest("d"));
    s.pipework(&[&pf, &a, "10.70.0.2/24", "@10"]).ok();
    s.pipework(&[&pf, &b, "10.70.0.3/24", "02:00:00:70:00:03@10"])
        .ok();
    s.pipework(&[&pf, &c, "10.70.0.4/24", "@20"]).ok();
    s.pipework(&[&pf, &d, "10.70.0.5/24", "@30"]).ok();
    let v10 = link(&s.host, &sub(10)).expect("the sub-interface was created");
    assert_eq!(v10["linkinfo"]["info_kind"], "vlan");
    assert_eq!(v10["linkinfo"]["info_data"]["id"], 10);
    assert!(up(&v10["flags"]));
    let e = link(&a, "eth1").unwrap();
    assert_eq!(e["linkinfo"]["info_kind"], "macvlan");
    assert_eq!(e["link_index"], v10["ifindex"], "on the VLAN device");
    assert_eq!(link(&b, "eth1").unwrap()["address"], "02:00:00:70:00:03");
    assert!(ping(&a, "10.70.0.3"), "same VLAN");
    assert!(!ping(&a, "10.70.0.4"), "other VLAN");
    let rec = s.pipework(&["inspect", &a]).ok().json();
    assert_eq!(rec["interfaces"][0]["vlan"], 10);
    // The last user of a sub-interface pipework made deletes it; one that
    // was there before stays.
    s.pipework(&["detach", &a]).ok();
    assert!(link(&s.host, &sub(10)).is_some(), "b still uses it");
    s.pipework(&["detach", &b]).ok();
    assert!(link(&s.host, &sub(10)).is_none());
    s.pipework(&["detach", &c]).ok();
    s.pipework(&["detach", &d]).ok();
    assert!(link(&s.host, &sub(30)).is_some());
    assert_eq!(s.host_links(), host_before);
}

#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn a_failed_vlan_attach_removes_only_what_it_made() {
    let mut s = Sandbox::new("dot1qrb");
    let pf = nic(&s);
    let (a, b) = (s.guest("a"), s.guest("b"));
    let host_before = s.host_links();
    for p in [
        "bridge-ready",
        "link-created",
        "routes-added",
        "before-commit",
    ] {
        let r = s.pipework_env(
            &[&pf, &a, "10.71.0.2/24@10.71.0.1", "@40"],
            &[("PIPEWORK_FAULT", p)],
        );
        assert_eq!(r.code, 1, "{p}: {r:?}");
        assert_eq!(s.host_links(), host_before, "{p}");
        assert!(link(&a, "eth1").is_none());
    }
    // With another user on the VLAN, a failure keeps the sub-interface.
    s.pipework(&[&pf, &a, "10.71.0.2/24", "@41"]).ok();
    let with_a = s.host_links_after_link_watch();
    let r = s.pipework_env(
        &[&pf, &b, "10.71.0.3/24", "@41"],
        &[("PIPEWORK_FAULT", "before-commit")],
    );
    assert_eq!(r.code, 1);
    assert_eq!(s.host_links(), with_a);
    s.pipework(&["detach", &a]).ok();
    assert_eq!(s.host_links(), host_before);
}

#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn direct_phys_with_a_vid_moves_the_sub_interface() {
    let mut s = Sandbox::new("dot1qphys");
    let pf = nic(&s);
    let g = s.guest("g");
    let h = s.guest("h");
    let pre = format!("{pf}.60");
    s.ip_host(&[
        "link", "add", "link", &pf, "name", &pre, "type", "vlan", "id", "60",
    ]);
    let host_before = s.host_links();
    // Missing: made in the guest directly, never on the host.
    s.pipework(&["--direct-phys", &pf, &g, "10.72.0.2/24", "@50"])
        .ok();
    let e = link(&g, "eth1").unwrap();
    assert_eq!(e["linkinfo"]["info_kind"], "vlan");
    assert_eq!(e["linkinfo"]["info_data"]["id"], 50);
    assert_eq!(s.host_links(), host_before);
    // Existing: moved in, and back out under its name.
    s.pipework(&["--direct-phys", &pf, &h, "10.72.1.2/24", "@60"])
        .ok();
    assert!(link(&s.host, &pre).is_none());
    assert_eq!(link(&h, "eth1").unwrap()["linkinfo"]["info_data"]["id"], 60);
    s.pipework(&["detach", &g]).ok();
    s.pipework(&["detach", &h]).ok();
    assert!(link(&g, "eth1").is_none());
    assert_eq!(s.host_links(), host_before);
}

fn port_vlans(s: &Sandbox, port: &str) -> serde_json::Value {
    let v = must(std::process::Command::new("ip").args([
        "netns", "exec", &s.host, "bridge", "-j", "vlan", "show", "dev", port,
    ]));
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    v[0]["vlans"].clone()
}

#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn bridge_vlan_filtering_isolates_two_vids() {
    let mut s = Sandbox::new("brvlan");
    let (a, b, c) = (s.guest("a"), s.guest("b"), s.guest("c"));
    s.pipework(&["brv", "-l", "pa", &a, "10.73.0.2/24", "@10"])
        .ok();
    s.pipework(&["brv", "-l", "pb", &b, "10.73.0.3/24", "@10"])
        .ok();
    s.pipework(&["brv", "-l", "pc", &c, "10.73.0.4/24", "@20"])
        .ok();
    let br = link(&s.host, "brv").unwrap();
    assert_eq!(br["linkinfo"]["info_data"]["vlan_filtering"], 1);
    let pa = port_vlans(&s, "pa");
    assert_eq!(pa.as_array().unwrap().len(), 1, "only its VLAN: {pa}");
    assert_eq!(pa[0]["vlan"], 10);
    let flags = pa[0]["flags"].to_string();
    assert!(
        flags.contains("PVID") && flags.contains("Egress Untagged"),
        "{flags}"
    );
    assert!(ping(&a, "10.73.0.3"), "same VLAN");
    assert!(!ping(&a, "10.73.0.4"), "other VLAN");
    assert!(!ping(&c, "10.73.0.2"), "other VLAN");
    for g in [&a, &b, &c] {
        s.pipework(&["detach", g]).ok();
    }
    assert!(
        link(&s.host, "brv").is_none(),
        "the bridge pipework made is gone"
    );
}

#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn a_failed_bridge_vlan_attach_turns_filtering_back_off() {
    let mut s = Sandbox::new("brvlanrb");
    // A fixed MAC and a port of its own keep the bridge's MAC and carrier
    // from following the ports the attaches add and remove.
    s.ip_host(&[
        "link",
        "add",
        "lan",
        "address",
        "02:00:00:74:00:01",
        "type",
        "bridge",
    ]);
    s.ip_host(&[
        "link", "add", "lanp", "master", "lan", "type", "veth", "peer", "name", "lanq",
    ]);
    s.ip_host(&["link", "set", "lanq", "up"]);
    s.ip_host(&["link", "set", "lanp", "up"]);
    s.up_with_carrier("lan");
    let g = s.guest("g");
    let before = s.host_links();
    for p in ["bridge-ready", "link-created", "before-commit"] {
        let r = s.pipework_env(
            &["lan", &g, "10.74.0.2/24", "@10"],
            &[("PIPEWORK_FAULT", p)],
        );
        assert_eq!(r.code, 1, "{p}: {r:?}");
        assert_eq!(s.host_links(), before, "{p}");
        assert_eq!(
            link(&s.host, "lan").unwrap()["linkinfo"]["info_data"]["vlan_filtering"],
            0,
            "{p}"
        );
    }
    // A detach leaves it on: other ports may rely on it by then.
    s.pipework(&["lan", &g, "10.74.0.2/24", "@10"]).ok();
    s.pipework(&["detach", &g]).ok();
    assert_eq!(
        link(&s.host, "lan").unwrap()["linkinfo"]["info_data"]["vlan_filtering"],
        1
    );
}

/// `--host-route` with `@VID`: the shim is a sibling of the guest's macvlan
/// on the 802.1Q sub-interface, so the host reaches the guest on its VLAN.
#[test]
#[ignore = "kernel-gated: runs in the VM lane (tests/vm/run)"]
fn the_shim_of_a_vlan_macvlan_sits_on_its_sub_interface() {
    let mut s = Sandbox::new("dot1qshim");
    let pf = nic(&s);
    let host_before = s.host_links();
    let a = s.guest("a");
    s.pipework(&[
        &pf,
        &a,
        "10.72.0.2/24",
        "@40",
        "--host-route",
        "10.72.0.254/24",
    ])
    .ok();
    let sub = format!("{pf}.40");
    assert!(link(&s.host, &sub).is_some(), "the sub-interface");
    let macvlans = ip_json(&s.host, &["-d", "link", "show", "type", "macvlan"]);
    let shim = macvlans
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["link"] == sub.as_str())
        .unwrap_or_else(|| panic!("no shim on {sub}: {macvlans}"));
    assert!(
        shim["ifname"].as_str().unwrap().starts_with("pwh"),
        "{shim}"
    );
    assert!(ping(&s.host, "10.72.0.2"));
    s.pipework(&["detach", &a]).ok();
    assert_eq!(s.host_links(), host_before);
}
