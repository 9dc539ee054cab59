//! The compatible modes: Debian's udhcpc (busybox), dhclient (isc-dhcp-client)
//! and dhcpcd (dhcpcd5), run by pipework inside the guest, against dnsmasq.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use pipework_tests::dhcp::{DhcpServer, ServerConfig};
use pipework_tests::*;

fn pids_in(ns: &str) -> Vec<String> {
    must(std::process::Command::new("ip").args(["netns", "pids", ns]))
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn comm(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn v4_addr(ns: &str) -> Option<String> {
    addresses(ns, "eth1")
        .into_iter()
        .find(|a| a.starts_with("10."))
}

/// The `valid_life_time` of one address of eth1 (`ip -j`).
fn valid_life(ns: &str, addr: &str) -> u64 {
    let v = ip_json(ns, &["addr", "show", "dev", "eth1"]);
    let local = addr.split('/').next().unwrap_or_default();
    v[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["local"] == local)
        .and_then(|a| a["valid_life_time"].as_u64())
        .unwrap_or_else(|| panic!("no {addr}: {v}"))
}

/// One mode end to end: a lease, a ping, the client kept (or not) as the
/// mode says, renewals when kept, and nothing left after detach.
fn mode(form: &str, stays: bool, net: &str) {
    let mut s = Sandbox::new(&format!("compat{}", form.replace('-', "")));
    // A name server in the lease: every client's script then writes
    // /etc/resolv.conf, which must land in its private overlay (the sandbox
    // checks the host's file when it ends).
    let dns = format!("--dhcp-option=option:dns-server,{net}.1");
    let srv = DhcpServer::start(
        &mut s,
        "brc",
        &ServerConfig {
            extra: &[
                "--dhcp-option=option:T1,4",
                "--dhcp-option=option:T2,8",
                &dns,
            ],
            ..ServerConfig::v4(net)
        },
    );
    let g = s.guest("g");
    s.pipework(&["brc", &g, form]).ok();
    let addr =
        v4_addr(&g).unwrap_or_else(|| panic!("{form}: no address: {:?}", addresses(&g, "eth1")));
    assert!(addr.starts_with(&format!("{net}.1")), "{form}: {addr}");
    if form.starts_with("udhcpc") {
        // Our script gives the address the lease's lifetime (the
        // default one made it permanent: 4294967295, "forever").
        let life = valid_life(&g, &addr);
        assert!(life > 0 && life < 24 * 3600, "{form}: valid_lft {life}");
    }
    assert!(ping(&g, &srv.addr), "{form}");
    let pids = pids_in(&g);
    // `inspect` names the client and its PID, one of the processes the
    // kernel has in the guest's namespace (none when the mode keeps none).
    let i = s.pipework(&["inspect", &g]).ok().json();
    let dhcp = &i["interfaces"][0]["dhcp"];
    assert_eq!(dhcp["client"], form.trim_end_matches("-f"), "{form}: {i}");
    assert_eq!(dhcp["compat"]["running"], stays, "{form}: {i}");
    if stays {
        assert!(
            pids.contains(&dhcp["pid"].to_string()),
            "{form}: {dhcp} not among {pids:?}"
        );
    } else {
        assert!(dhcp["pid"].is_null(), "{form}: {i}");
    }
    if stays {
        assert!(!pids.is_empty(), "{form}: the client did not stay");
        // What the client's script wrote is in the client's own view only
        // (dhcpcd's privilege-separated helpers are chrooted: any process).
        let views: Vec<String> = pids
            .iter()
            .map(|p| {
                std::fs::read_to_string(format!("/proc/{p}/root/etc/resolv.conf"))
                    .unwrap_or_default()
            })
            .collect();
        assert!(
            views.iter().any(|v| v.contains(&format!("{net}.1"))),
            "{form}: {views:?}"
        );
        let acks = srv.count("DHCPACK");
        if form.starts_with("udhcpc") {
            // busybox renews at half the lease whatever T1 says; SIGUSR1 asks
            // it to renew now (the 2-minute renewal is in the slow tests).
            for p in pids.iter().filter(|p| comm(p) == "udhcpc") {
                must(std::process::Command::new("kill").args(["-USR1", p]));
            }
        }
        assert!(
            srv.wait_count("DHCPACK", acks + 1, Duration::from_secs(15)),
            "{form}: the client kept running but did not renew: {}",
            srv.log()
        );
        if form.starts_with("udhcpc") {
            let renewed = v4_addr(&g).unwrap_or_default();
            assert!(
                (1..24 * 3600).contains(&valid_life(&g, &renewed)),
                "{form}: the renewal left the address forever"
            );
        }
        // A kept client that dies: `check` says so (exit 1).
        assert_eq!(s.pipework(&["check", &g]).code, 0, "{form}");
        for p in pids_in(&g) {
            kill(p.parse().unwrap(), libc::SIGKILL);
        }
        assert!(
            pipework_tests::ovs::eventually(Duration::from_secs(10), || pids_in(&g).is_empty()),
            "{form}"
        );
        let r = s.pipework(&["check", &g]);
        assert_eq!(r.code, 1, "{form}: {r:?}");
        assert!(
            r.stdout
                .contains("client that keeps its lease is not running"),
            "{form}: {r:?}"
        );
        // `check --repair` starts it again as the attach did: a new
        // client in the guest that gets a lease (dnsmasq's log), after
        // which `check` finds nothing.
        let acks = srv.count("DHCPACK");
        let r = s.pipework(&["check", "--repair", &g]);
        assert_eq!(r.code, 0, "{form}: nothing should remain: {r:?}");
        assert!(r.stdout.contains(": repaired"), "{form}: {r:?}");
        assert!(!pids_in(&g).is_empty(), "{form}: no client after --repair");
        assert!(
            srv.wait_count("DHCPACK", acks + 1, Duration::from_secs(15)),
            "{form}: the restarted client got no lease: {}",
            srv.log()
        );
        let r = s.pipework(&["check", &g]);
        assert_eq!(r.code, 0, "{form}: {r:?}");
    } else {
        assert!(
            pids.is_empty(),
            "{form}: left {:?}",
            pids.iter().map(|p| comm(p)).collect::<Vec<_>>()
        );
    }
    // Its files are per guest and interface, under the state directory.
    let dirs: Vec<_> = std::fs::read_dir(s.state_dir.join("compat"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(dirs.len(), 1);
    assert!(dirs[0].file_name().to_string_lossy().ends_with("-eth1"));
    s.pipework(&["detach", &g]).ok();
    assert!(pids_in(&g).is_empty(), "{form}: client left after detach");
    assert!(std::fs::read_dir(s.state_dir.join("compat"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn udhcpc_once() {
    mode("udhcpc", false, "10.71.0");
}

#[test]
fn udhcpc_f_keeps_renewing() {
    mode("udhcpc-f", true, "10.72.0");
}

#[test]
fn dhclient_once() {
    mode("dhclient", false, "10.73.0");
}

#[test]
fn dhclient_f_keeps_renewing() {
    mode("dhclient-f", true, "10.74.0");
}

#[test]
fn dhcpcd_stays() {
    mode("dhcpcd", true, "10.75.0");
}

#[test]
fn options_pass_through_and_two_guests_do_not_collide() {
    let mut s = Sandbox::new("compatopts");
    let srv = DhcpServer::start(&mut s, "brco", &ServerConfig::v4("10.76.0"));
    let a = s.guest("a");
    let b = s.guest("b");
    // Same interface name in two guests: the original's pidfiles collided.
    s.pipework(&["brco", &a, "udhcpc-f:-x hostname:chosen"])
        .ok();
    s.pipework(&["brco", &b, "udhcpc-f"]).ok();
    assert!(v4_addr(&a).is_some() && v4_addr(&b).is_some());
    assert_ne!(v4_addr(&a), v4_addr(&b));
    assert!(!pids_in(&a).is_empty() && !pids_in(&b).is_empty());
    assert!(srv.leases().contains("chosen"), "{}", srv.leases());
    s.pipework(&["detach", &a]).ok();
    assert!(pids_in(&a).is_empty());
    assert!(!pids_in(&b).is_empty(), "detaching a ended b's client");
}

#[test]
fn gc_ends_clients_whose_guest_is_gone() {
    let mut s = Sandbox::new("compatgc");
    let _srv = DhcpServer::start(&mut s, "brcg", &ServerConfig::v4("10.77.0"));
    let mut p = GuestProcess::spawn_unshared();
    s.pipework(&["brcg", &p.pid().to_string(), "dhclient-f"])
        .ok();
    let netns = std::fs::metadata(format!("/proc/{}/ns/net", p.pid()))
        .unwrap()
        .ino();
    let in_guest = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| std::fs::metadata(e.path().join("ns/net")).is_ok_and(|m| m.ino() == netns))
            .count()
    };
    assert!(in_guest() >= 2, "guest and client");
    p.kill();
    // The client holds the namespace alive after its guest died.
    assert!(in_guest() >= 1);
    let r = s.pipework(&["gc"]).ok();
    assert!(r.stdout.contains("removed eth1"), "{}", r.stdout);
    assert_eq!(in_guest(), 0, "{}", r.stdout);
}
