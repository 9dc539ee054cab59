//! macvlan attachments on a stand-in NIC (a veth with carrier).

use pipework_tests::*;

#[test]
fn macvlan_guests_on_one_parent_ping_each_other() {
    let mut s = Sandbox::new("macvlan");
    s.fake_nic("nic0");
    s.ip_host(&["link", "set", "nic0", "mtu", "1400"]);
    let a = s.guest("a");
    let b = s.guest("b");
    s.pipework(&["nic0", &a, "10.60.0.2/24"]).ok();
    s.pipework(&["nic0", &b, "10.60.0.3/24"]).ok();
    let e = link(&a, "eth1").unwrap();
    assert_eq!(e["linkinfo"]["info_kind"], "macvlan");
    assert_eq!(e["linkinfo"]["info_data"]["mode"], "bridge");
    assert_eq!(e["mtu"], 1400, "MTU of the parent");
    assert!(ping(&a, "10.60.0.3"));
}

#[test]
fn private_mode_isolates_siblings() {
    let mut s = Sandbox::new("mvprivate");
    s.fake_nic("nic1");
    let a = s.guest("a");
    let b = s.guest("b");
    s.pipework(&["--macvlan-mode", "private", "nic1", &a, "10.61.0.2/24"])
        .ok();
    s.pipework(&["nic1", "--macvlan-mode", "private", &b, "10.61.0.3/24"])
        .ok();
    assert_eq!(
        link(&a, "eth1").unwrap()["linkinfo"]["info_data"]["mode"],
        "private"
    );
    assert!(!ping(&a, "10.61.0.3"));
}

#[test]
fn vepa_and_passthru_modes() {
    let mut s = Sandbox::new("mvmodes");
    s.fake_nic("nic2");
    s.fake_nic("nic3");
    let a = s.guest("a");
    let b = s.guest("b");
    let c = s.guest("c");
    s.pipework(&["nic2", "--macvlan-mode", "vepa", &a, "10.62.0.2/24"])
        .ok();
    assert_eq!(
        link(&a, "eth1").unwrap()["linkinfo"]["info_data"]["mode"],
        "vepa"
    );
    s.pipework(&["nic3", "--macvlan-mode", "passthru", &b, "10.63.0.2/24"])
        .ok();
    assert_eq!(
        link(&b, "eth1").unwrap()["linkinfo"]["info_data"]["mode"],
        "passthru"
    );
    // passthru owns its parent: a second one is refused and nothing is left.
    let before = s.host_links();
    let r = s.pipework(&["nic3", "--macvlan-mode", "passthru", &c, "10.63.0.3/24"]);
    assert_ne!(r.code, 0);
    assert_eq!(s.host_links(), before);
    assert!(link(&c, "eth1").is_none());
    s.pipework(&["detach", &a]).ok();
    s.pipework(&["detach", &b]).ok();
    assert!(link(&b, "eth1").is_none());
}

#[test]
fn a_down_parent_is_brought_up_and_put_back_down_on_failure() {
    let mut s = Sandbox::new("mvdown");
    s.fake_nic("nic4");
    s.ip_host(&["link", "set", "nic4", "down"]);
    let a = s.guest("a");
    let before = s.host_links();
    let r = s.pipework_env(
        &["nic4", &a, "10.64.0.2/24"],
        &[("PIPEWORK_FAULT", "routes-added")],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(s.host_links(), before, "parent is down again");
    s.pipework(&["nic4", &a, "10.64.0.2/24"]).ok();
    assert!(link(&s.host, "nic4").unwrap()["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "UP"));
}

#[test]
fn the_host_interface_by_mac() {
    let mut s = Sandbox::new("bymac");
    s.fake_nic("nic5");
    s.ip_host(&["link", "set", "nic5", "address", "02:aa:bb:cc:dd:05"]);
    // A macvlan on the host shares the MAC: it must not make the match ambiguous.
    s.ip_host(&[
        "link",
        "add",
        "mvh",
        "link",
        "nic5",
        "address",
        "02:aa:bb:cc:dd:05",
        "type",
        "macvlan",
    ]);
    let a = s.guest("a");
    s.pipework(&["mac:02:AA:BB:CC:DD:05", &a, "10.65.0.2/24"])
        .ok();
    let e = link(&a, "eth1").unwrap();
    assert_eq!(e["linkinfo"]["info_kind"], "macvlan");
    let v = s.pipework(&["inspect", &a]).ok().json();
    assert_eq!(v["interfaces"][0]["host_interface"], "nic5");
    // Two unrelated interfaces with one MAC: refused, nothing created.
    s.fake_nic("nic6");
    s.fake_nic("nic7");
    s.ip_host(&["link", "set", "nic6", "address", "02:aa:bb:cc:dd:06"]);
    s.ip_host(&["link", "set", "nic7", "address", "02:aa:bb:cc:dd:06"]);
    let before = s.host_links();
    let b = s.guest("b");
    let r = s.pipework(&["mac:02:aa:bb:cc:dd:06", &b, "10.65.0.3/24"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("ambiguous") && r.stderr.contains("nic6") && r.stderr.contains("nic7"),
        "{}",
        r.stderr
    );
    assert_eq!(s.host_links(), before);
}
