//! A failed attach leaves the host and the guest exactly as they were: proved
//! with injected faults at every step, and with real failures.

use pipework_tests::*;

/// The fault points of the core, in attach order.
const POINTS: &[&str] = &[
    "validated",
    "bridge-made",
    "bridge-ready",
    "link-created",
    "link-configured",
    "address-added",
    "link-up",
    "routes-added",
    "announced",
    "before-commit",
];

fn guest_with_default_route(s: &mut Sandbox, label: &str) -> String {
    let g = s.guest(label);
    ip(
        &g,
        &["link", "add", "up0", "type", "veth", "peer", "name", "up0p"],
    );
    // No link-local addresses: their DAD finishing later would change the
    // routes under the comparison.
    ip(&g, &["link", "set", "up0", "addrgenmode", "none"]);
    ip(&g, &["link", "set", "up0p", "addrgenmode", "none"]);
    ip(&g, &["link", "set", "up0", "up"]);
    ip(&g, &["link", "set", "up0p", "up"]);
    ip(&g, &["addr", "add", "172.31.0.5/24", "dev", "up0"]);
    ip(&g, &["addr", "add", "fd31::5/64", "dev", "up0", "nodad"]);
    ip(&g, &["route", "add", "default", "via", "172.31.0.1"]);
    ip(&g, &["-6", "route", "add", "default", "via", "fd31::1"]);
    g
}

#[test]
fn a_fault_at_every_step_of_a_bridge_attach_is_undone() {
    let mut s = Sandbox::new("rbbridge");
    let g = guest_with_default_route(&mut s, "g");
    let host_before = s.host_links();
    let guest_before = (links(&g), routes(&g));
    for p in POINTS {
        let r = s.pipework_env(
            &[
                "brfault",
                &g,
                "10.80.0.2/24@10.80.0.1,fd00:80::2/64@fd00:80::1",
            ],
            &[("PIPEWORK_FAULT", p)],
        );
        assert_eq!(r.code, 1, "{p}: {r:?}");
        assert!(
            r.stderr.contains(&format!("injected fault at {p}")),
            "{p}: {}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
        assert_eq!(
            s.host_links(),
            host_before,
            "host links after a fault at {p}"
        );
        assert_eq!(
            (links(&g), routes(&g)),
            guest_before,
            "guest after a fault at {p}"
        );
        assert!(
            link(&s.host, "brfault").is_none(),
            "{p}: auto-created bridge left behind"
        );
    }
    // Without a fault the same command works, and nothing was recorded before.
    assert_eq!(
        s.pipework(&["list", "--json"]).ok().json(),
        serde_json::json!([])
    );
    s.pipework(&[
        "brfault",
        &g,
        "10.80.0.2/24@10.80.0.1,fd00:80::2/64@fd00:80::1",
    ])
    .ok();
}

#[test]
fn a_fault_in_a_macvlan_attach_is_undone() {
    let mut s = Sandbox::new("rbmacvlan");
    s.fake_nic("nic0");
    let g = guest_with_default_route(&mut s, "g");
    let host_before = s.host_links();
    let guest_before = (links(&g), routes(&g));
    for p in [
        "link-created",
        "address-added",
        "routes-added",
        "before-commit",
    ] {
        let r = s.pipework_env(
            &["nic0", &g, "10.81.0.2/24@10.81.0.1"],
            &[("PIPEWORK_FAULT", p)],
        );
        assert_eq!(r.code, 1, "{p}: {r:?}");
        assert_eq!(s.host_links(), host_before, "{p}");
        assert_eq!((links(&g), routes(&g)), guest_before, "{p}");
    }
}

#[test]
fn a_fault_while_adding_a_second_address_keeps_the_first() {
    let mut s = Sandbox::new("rbextend");
    let g = s.guest("g");
    s.pipework(&["brx", &g, "10.82.0.2/24"]).ok();
    let host_before = s.host_links_after_link_watch();
    let guest_before = (links(&g), routes(&g), addresses(&g, "eth1"));
    let r = s.pipework_env(
        &["brx", &g, "10.82.1.2/24@10.82.1.1"],
        &[("PIPEWORK_FAULT", "before-commit")],
    );
    assert_eq!(r.code, 1);
    assert_eq!(s.host_links(), host_before);
    assert_eq!((links(&g), routes(&g), addresses(&g, "eth1")), guest_before);
    let rec = s.pipework(&["inspect", &g]).ok().json();
    assert_eq!(
        rec["interfaces"][0]["addresses"],
        serde_json::json!(["10.82.0.2/24"])
    );
}

#[test]
fn the_guest_interface_name_already_taken() {
    let mut s = Sandbox::new("rbtaken");
    let g = s.guest("g");
    ip(
        &g,
        &["link", "add", "eth1", "type", "veth", "peer", "name", "x1"],
    );
    let host_before = s.host_links();
    let guest_before = (links(&g), routes(&g));
    let r = s.pipework(&["brtaken", &g, "10.83.0.2/24"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("eth1") && r.stderr.contains(&g),
        "{}",
        r.stderr
    );
    assert_eq!(s.host_links(), host_before);
    assert_eq!((links(&g), routes(&g)), guest_before);
}

#[test]
fn the_guest_dies_mid_attach() {
    let s = Sandbox::new("rbdies");
    let host_before = s.host_links();
    for point in ["link-created", "link-up", "before-commit"] {
        let mut p = GuestProcess::spawn_unshared();
        let pid = p.pid().to_string();
        // Wait until it is really dead (a zombie), as a crashed guest would be.
        let hook = format!("{point}:kill -9 {pid}; while [ \"$(cut -d' ' -f3 /proc/{pid}/stat)\" != Z ]; do sleep 0.01; done");
        let r = s.pipework_env(
            &["brdie", &pid, "10.84.0.2/24"],
            &[("PIPEWORK_FAULT_HOOK", &hook)],
        );
        assert_eq!(r.code, 1, "{point}: {r:?}");
        assert!(r.stderr.contains("exited"), "{point}: {}", r.stderr);
        p.kill();
        assert_eq!(s.host_links(), host_before, "{point}");
    }
    assert_eq!(
        s.pipework(&["list", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn a_gateway_the_kernel_refuses() {
    let mut s = Sandbox::new("rbgateway");
    let g = guest_with_default_route(&mut s, "g");
    let host_before = s.host_links();
    let guest_before = (links(&g), routes(&g));
    // fd31::5 is one of the guest's own addresses: the kernel rejects it as a
    // gateway, after our on-link route to it was already added.
    let r = s.pipework(&["brgw", &g, "10.85.0.2/16,fd85::2/64@fd31::5"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("default route"), "{}", r.stderr);
    assert_eq!(s.host_links(), host_before);
    assert_eq!((links(&g), routes(&g)), guest_before);
}

#[test]
fn an_interrupted_attach_is_undone() {
    let mut s = Sandbox::new("rbsignal");
    let g = guest_with_default_route(&mut s, "g");
    let host_before = s.host_links();
    let guest_before = (links(&g), routes(&g));
    for sig in ["INT", "TERM"] {
        // The hook's shell is a child of pipework: $PPID is pipework itself.
        let hook = format!("link-up:kill -{sig} $PPID");
        let r = s.pipework_env(
            &["brsig", &g, "10.86.0.2/24@10.86.0.1"],
            &[("PIPEWORK_FAULT_HOOK", &hook)],
        );
        assert_eq!(r.code, 1, "{sig}: {r:?}");
        assert!(
            r.stderr.contains("interrupted by signal"),
            "{sig}: {}",
            r.stderr
        );
        assert_eq!(s.host_links(), host_before, "{sig}");
        assert_eq!((links(&g), routes(&g)), guest_before, "{sig}");
    }
}
