//! Gratuitous ARP and unsolicited neighbour advertisements reach the
//! neighbours. The case they exist for: a neighbour still caches an old MAC
//! for the address (the container was recreated); after the attach it has
//! the new one without ever asking (witness: `ip -j neigh`). IPv4 neighbours
//! that accept unsolicited ARP also learn brand-new addresses.

use pipework_tests::*;

fn neigh_mac(ns: &str, addr: &str) -> Option<String> {
    let v = ip_json(ns, &["neigh", "show", "to", addr]);
    v.as_array()?.first()?["lladdr"].as_str().map(String::from)
}

fn accept_unsolicited(ns: &str) {
    must(std::process::Command::new("ip").args([
        "netns",
        "exec",
        ns,
        "sysctl",
        "-qw",
        "net.ipv4.conf.all.arp_accept=1",
        "net.ipv4.conf.eth1.arp_accept=1",
    ]));
}

/// A stale cache entry with a MAC that is no longer true.
fn stale_entry(ns: &str, addr: &str) {
    ip(
        ns,
        &[
            "neigh",
            "replace",
            addr,
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "eth1",
            "nud",
            "stale",
        ],
    );
}

fn wait_for_mac(ns: &str, addr: &str, mac: &str) -> Option<String> {
    for _ in 0..100 {
        let m = neigh_mac(ns, addr);
        if m.as_deref() == Some(mac) {
            return m;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    neigh_mac(ns, addr)
}

fn wait_for_neigh(ns: &str, addr: &str) -> Option<String> {
    for _ in 0..50 {
        if let Some(m) = neigh_mac(ns, addr) {
            return Some(m);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    None
}

#[test]
fn neighbours_learn_a_new_bridge_guest_without_asking() {
    let mut s = Sandbox::new("announce");
    let watcher = s.guest("w");
    let a = s.guest("a");
    s.pipework(&["bran", &watcher, "10.40.0.1/24,fd00:40::1/64"])
        .ok();
    stale_entry(&watcher, "10.40.0.2");
    stale_entry(&watcher, "fd00:40::2");
    s.pipework(&[
        "bran",
        &a,
        "10.40.0.2/24,fd00:40::2/64",
        "02:00:00:40:00:02",
    ])
    .ok();
    let mac = "02:00:00:40:00:02";
    assert_eq!(
        wait_for_mac(&watcher, "10.40.0.2", mac).as_deref(),
        Some(mac)
    );
    assert_eq!(
        wait_for_mac(&watcher, "fd00:40::2", mac).as_deref(),
        Some(mac)
    );
    // A neighbour that accepts unsolicited ARP learns a brand-new address too.
    accept_unsolicited(&watcher);
    let b = s.guest("b");
    s.pipework(&["bran", &b, "10.40.0.3/24", "02:00:00:40:00:03"])
        .ok();
    assert_eq!(
        wait_for_neigh(&watcher, "10.40.0.3").as_deref(),
        Some("02:00:00:40:00:03")
    );
}

#[test]
fn neighbours_learn_a_new_macvlan_guest_without_asking() {
    let mut s = Sandbox::new("announcemv");
    s.fake_nic("nic0");
    let watcher = s.guest("w");
    let a = s.guest("a");
    s.pipework(&["nic0", &watcher, "10.41.0.1/24,fd00:41::1/64"])
        .ok();
    stale_entry(&watcher, "10.41.0.2");
    stale_entry(&watcher, "fd00:41::2");
    s.pipework(&[
        "nic0",
        &a,
        "10.41.0.2/24,fd00:41::2/64",
        "02:00:00:41:00:02",
    ])
    .ok();
    let mac = "02:00:00:41:00:02";
    assert_eq!(
        wait_for_mac(&watcher, "10.41.0.2", mac).as_deref(),
        Some(mac)
    );
    assert_eq!(
        wait_for_mac(&watcher, "fd00:41::2", mac).as_deref(),
        Some(mac)
    );
}

#[test]
fn no_announce_means_silence() {
    let mut s = Sandbox::new("noannounce");
    let watcher = s.guest("w");
    let a = s.guest("a");
    s.pipework(&["brna", &watcher, "10.42.0.1/24"]).ok();
    accept_unsolicited(&watcher);
    stale_entry(&watcher, "10.42.0.9");
    s.pipework(&["brna", "--no-announce", &a, "10.42.0.2/24"])
        .ok();
    s.pipework(&["brna", "--no-announce", "-i", "eth2", &a, "10.42.0.9/24"])
        .ok();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(neigh_mac(&watcher, "10.42.0.2"), None);
    assert_eq!(
        neigh_mac(&watcher, "10.42.0.9").as_deref(),
        Some("02:00:00:00:00:99")
    );
}
