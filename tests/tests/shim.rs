//! The host ↔ macvlan shim (`--host-route`), and attaches killed half-way.

use pipework_tests::*;

/// The sandbox's host namespace pings a macvlan guest only through the shim;
/// the shim is shared, and goes with the last attachment that used it.
#[test]
fn the_host_reaches_macvlan_guests_only_through_the_shim() {
    let mut s = Sandbox::new("shim");
    s.fake_nic("nic9");
    // The parent has an address in the same subnet, as a real host's NIC
    // would: the host then believes 10.90.0.0/24 is on nic9 and fails.
    s.ip_host(&["addr", "add", "10.90.0.1/24", "dev", "nic9"]);
    let before = s.host_links();
    let a = s.guest("a");
    let b = s.guest("b");
    s.pipework(&["nic9", &a, "10.90.0.2/24"]).ok();
    assert!(!s.ping(&s.host, "10.90.0.2"), "no shim, yet reachable");
    s.pipework(&["detach", &a]).ok();

    s.pipework(&["nic9", &a, "10.90.0.2/24", "--host-route", "10.90.0.254/24"])
        .ok();
    s.pipework(&["nic9", &b, "10.90.0.3/24", "--host-route", "auto"])
        .ok();
    let shim = link(&s.host, "pwh-nic9").expect("the shim");
    assert_eq!(shim["linkinfo"]["info_kind"], "macvlan");
    assert_eq!(shim["linkinfo"]["info_data"]["mode"], "bridge");
    let addrs = addresses(&s.host, "pwh-nic9");
    assert!(addrs.contains(&"10.90.0.254/24".to_string()), "{addrs:?}");
    let routes = s.ip_host(&["route", "show", "dev", "pwh-nic9"]);
    assert!(
        routes.contains("10.90.0.2 ") && routes.contains("10.90.0.3 "),
        "{routes}"
    );
    assert!(s.ping(&s.host, "10.90.0.2"));
    assert!(s.ping(&s.host, "10.90.0.3"));
    assert!(ping(&a, "10.90.0.254"), "the guest reaches the host too");

    // `check` sees a host route through the shim go, and `--repair` puts
    // it back.
    assert_eq!(s.pipework(&["check"]).code, 0);
    s.ip_host(&["route", "del", "10.90.0.2", "dev", "pwh-nic9"]);
    assert!(!s.ping(&s.host, "10.90.0.2"));
    let r = s.pipework(&["check", &a]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("the host route to 10.90.0.2 through the shim pwh-nic9 is gone"),
        "{r:?}"
    );
    assert_eq!(s.pipework(&["check", "--repair"]).code, 0);
    let routes = s.ip_host(&["route", "show", "dev", "pwh-nic9"]);
    assert!(routes.contains("10.90.0.2 "), "{routes}");
    assert!(s.ping(&s.host, "10.90.0.2"));

    // Shared: the first detach leaves it for the other guest.
    s.pipework(&["detach", &a]).ok();
    assert!(link(&s.host, "pwh-nic9").is_some());
    let routes = s.ip_host(&["route", "show", "dev", "pwh-nic9"]);
    assert!(!routes.contains("10.90.0.2 "), "{routes}");
    assert!(s.ping(&s.host, "10.90.0.3"));
    s.pipework(&["detach", &b]).ok();
    assert_eq!(s.host_links(), before);
}

#[test]
fn a_failed_or_killed_attach_takes_its_shim_along() {
    let mut s = Sandbox::new("shimfail");
    s.fake_nic("nic8");
    let before = s.host_links();
    let a = s.guest("a");
    let r = s.pipework_env(
        &["nic8", &a, "10.91.0.2/24", "--host-route", "auto"],
        &[("PIPEWORK_FAULT", "before-commit")],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(s.host_links(), before);
    assert!(link(&a, "eth1").is_none());
    let r = s.pipework(&["brshim", &a, "10.91.0.2/24", "--host-route", "auto"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("macvlan"), "{}", r.stderr);
    let r = s.pipework(&[
        "nic8",
        "--macvlan-mode",
        "vepa",
        &a,
        "10.91.0.2/24",
        "--host-route",
        "auto",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(s.host_links(), before);

    // SIGKILL right after the shim was made: nothing can roll back, so the
    // next gc must.
    let r = s.pipework_env(
        &["nic8", &a, "10.91.0.2/24", "--host-route", "auto"],
        &[("PIPEWORK_FAULT_HOOK", "before-commit:kill -9 $PPID")],
    );
    assert_ne!(r.code, 0);
    assert!(
        link(&s.host, "pwh-nic8").is_some(),
        "killed before its undo"
    );
    let g = s.pipework(&["gc"]).ok();
    assert!(
        g.stdout.contains("undid the unfinished attach of eth1"),
        "{}",
        g.stdout
    );
    assert_eq!(s.host_links(), before);
    assert!(link(&a, "eth1").is_none());
}

/// A bridge attach killed after its veth was renamed in the guest: the next
/// attach of the same interface undoes it and succeeds, with no leftovers.
#[test]
fn an_attach_killed_half_way_is_undone_by_the_next_one() {
    let mut s = Sandbox::new("killed");
    let before = s.host_link_names();
    let a = s.guest("a");
    let r = s.pipework_env(
        &["brkill", &a, "10.92.0.2/24"],
        &[("PIPEWORK_FAULT_HOOK", "address-added:kill -9 $PPID")],
    );
    assert_ne!(r.code, 0);
    assert!(link(&a, "eth1").is_some(), "killed after the rename");
    // What a kill between creating a link and recording it would leave.
    ip(
        &a,
        &[
            "link",
            "add",
            "pwtmp0badc0de",
            "type",
            "veth",
            "peer",
            "name",
            "pwtmp0badc0df",
        ],
    );
    s.pipework(&["brkill", &a, "10.92.0.2/24"]).ok();
    let links = ip_json(&a, &["link", "show"]);
    assert_eq!(links.as_array().unwrap().len(), 2, "lo and eth1: {links}");
    let peers: Vec<_> = s
        .host_links()
        .into_iter()
        .filter(|l| l["kind"] == "veth")
        .collect();
    assert_eq!(peers.len(), 1, "{peers:?}");
    s.pipework(&["detach", &a]).ok();
    assert_eq!(s.host_link_names(), before);
}
