//! Attachments that stay as promised: `pipework check` compares every
//! record with the host and `--repair` puts back what drifted; the daemon
//! puts port-security flows back on its own after ovs-vswitchd restarts, and
//! starts a kept DHCP client that was killed again.
//! Witnesses: `ovs-ofctl dump-flows`, `ip -j`, and traffic (a guest
//! spoofing an address it was not given).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pipework_tests::ovs::{eventually, OvsSwitch};
use pipework_tests::*;
use serde_json::Value;

/// pipework's flows on a bridge (those with its cookie prefix), sorted.
fn our_flows(sw: &OvsSwitch, bridge: &str) -> Vec<String> {
    sw.flows(bridge)
        .into_iter()
        .filter(|f| f.contains("cookie=0x7077"))
        .collect()
}

/// Two guests on one VLAN with port security: `a` honest, `m` about to lie.
fn protected_pair(s: &mut Sandbox, sw: &OvsSwitch, bridge: &str) -> (String, String) {
    sw.add_bridge(bridge);
    let a = s.guest("a");
    let m = s.guest("m");
    s.pipework(&[bridge, &a, "10.41.0.2/24", "@10", "--port-security"])
        .ok();
    s.pipework(&[bridge, &m, "10.41.0.9/24", "@10", "--port-security"])
        .ok();
    (a, m)
}

/// `m` takes an address it was not given and pings `a` from it.
fn spoof_gets_through(m: &str) -> bool {
    ip(m, &["addr", "flush", "dev", "eth1"]);
    ip(m, &["addr", "add", "10.41.0.66/24", "dev", "eth1"]);
    let through = ping(m, "10.41.0.2");
    ip(m, &["addr", "flush", "dev", "eth1"]);
    ip(m, &["addr", "add", "10.41.0.9/24", "dev", "eth1"]);
    through
}

fn lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn check_reports_lost_port_security_flows_and_repair_restores_them() {
    let mut s = Sandbox::new("healcheck");
    let sw = OvsSwitch::start(&mut s);
    let (a, m) = protected_pair(&mut s, &sw, "ovsk");
    let installed = our_flows(&sw, "ovsk");
    assert!(installed.len() >= 18, "{installed:#?}");
    let r = s.pipework(&["check"]);
    assert_eq!(r.code, 0, "a healthy host: {r:?}");
    assert!(!spoof_gets_through(&m), "port security holds before");

    sw.restart_vswitchd();
    assert!(
        eventually(Duration::from_secs(20), || sw.flows("ovsk").len() == 1),
        "vswitchd back with only its NORMAL flow: {:#?}",
        sw.flows("ovsk")
    );
    // The restart really lost the protection (no daemon runs here).
    assert!(
        eventually(Duration::from_secs(20), || ping(&m, "10.41.0.2")),
        "ports forward again"
    );
    assert!(
        spoof_gets_through(&m),
        "without flows a spoofed source passes"
    );

    let r = s.pipework(&["check"]);
    assert_eq!(r.code, 1, "{r:?}");
    let found = lines(&r.stdout);
    assert_eq!(found.len(), 2, "one line per attachment: {r:?}");
    for (l, g) in found.iter().zip([&a, &m]) {
        assert!(l.contains("port-security flows"), "{l}");
        assert!(l.contains("0 of 9 in place"), "{l}");
        assert!(
            found.iter().any(|l| l.starts_with(g.as_str())),
            "{g}: {found:?}"
        );
    }
    let j = s.pipework(&["check", &a, "--json"]);
    assert_eq!(j.code, 1, "{j:?}");
    let objs: Vec<Value> = lines(&j.stdout)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 1, "{j:?}");
    assert_eq!(objs[0]["what"], "ovs_flows");
    assert_eq!(objs[0]["interface"], "eth1");
    assert_eq!(objs[0]["repair"], Value::Null);
    let i = s.pipework(&["inspect", &a]).ok().json();
    assert_eq!(
        i["interfaces"][0]["details"]["ovs_port_security"], "missing",
        "inspect must not claim what is not in place: {i}"
    );
    assert_eq!(
        our_flows(&sw, "ovsk"),
        Vec::<String>::new(),
        "check alone changes nothing"
    );

    let r = s.pipework(&["check", "--repair"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(lines(&r.stdout).len(), 2, "{r:?}");
    assert!(
        lines(&r.stdout).iter().all(|l| l.ends_with(": repaired")),
        "{r:?}"
    );
    assert_eq!(
        our_flows(&sw, "ovsk"),
        installed,
        "the very flows of the attach"
    );
    assert!(!spoof_gets_through(&m), "port security holds again");
    assert!(ping(&m, "10.41.0.2"), "the honest address passes");
    let i = s.pipework(&["inspect", &a]).ok().json();
    assert_eq!(i["interfaces"][0]["details"]["ovs_port_security"], true);
    assert_eq!(s.pipework(&["check"]).code, 0);

    // Someone moves the port to another VLAN: reported, and put back.
    let port = i["interfaces"][0]["host_peer"]
        .as_str()
        .unwrap()
        .to_string();
    sw.vsctl(&["set", "port", &port, "tag=20"]);
    let r = s.pipework(&["check", &a]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("has VLAN tag 20 where the record says 10"),
        "{r:?}"
    );
    assert_eq!(s.pipework(&["check", "--repair"]).code, 0);
    assert_eq!(sw.get("Port", &port, "tag"), "10");
    assert!(ping(&m, "10.41.0.2"), "back in VLAN 10");

    // And a trunk port whose VLAN list someone narrowed.
    let t = s.guest("t");
    s.pipework(&["ovsk", &t, "10.41.0.30/24", "--trunk", "10,20"])
        .ok();
    let tp = s.pipework(&["inspect", &t]).ok().json()["interfaces"][0]["host_peer"]
        .as_str()
        .unwrap()
        .to_string();
    sw.vsctl(&["set", "port", &tp, "trunks=10"]);
    let r = s.pipework(&["check", &t]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("trunks VLANs 10 where the record says 10,20"),
        "{r:?}"
    );
    assert_eq!(s.pipework(&["check", &t, "--repair"]).code, 0);
    assert_eq!(sw.get("Port", &tp, "trunks"), "[10, 20]");
    assert_eq!(s.pipework(&["check"]).code, 0);
}

/// `pipework daemon` (no engine) in the sandbox's host namespace.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(s: &Sandbox) -> Daemon {
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&s.state_dir)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            })
            .unwrap();
        let log = s
            .state_dir
            .with_file_name(format!("{}-daemon.log", s.prefix));
        let out = std::fs::File::create(&log).unwrap();
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &s.host])
            .arg(pipework_bin())
            .arg("daemon")
            .env("PIPEWORK_STATE_DIR", &s.state_dir)
            .env("PIPEWORK_LOG", "info")
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out);
        let d = Daemon {
            child: c.spawn().expect("pipework daemon"),
            log,
        };
        assert!(
            eventually(Duration::from_secs(20), || d
                .log()
                .contains("daemon running")),
            "{}",
            d.log()
        );
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("daemon log:\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

#[test]
fn the_daemon_puts_port_security_back_after_vswitchd_restarts() {
    let mut s = Sandbox::new("healdaemon");
    let sw = OvsSwitch::start(&mut s);
    let (_a, m) = protected_pair(&mut s, &sw, "ovsd");
    let installed = our_flows(&sw, "ovsd");
    let d = Daemon::start(&s);
    for round in 0..2 {
        sw.restart_vswitchd();
        let t = Instant::now();
        assert!(
            eventually(Duration::from_secs(20), || our_flows(&sw, "ovsd")
                == installed),
            "round {round}: flows not back: {:#?}\n{}",
            sw.flows("ovsd"),
            d.log()
        );
        eprintln!(
            "round {round}: flows back {:?} after vswitchd was started",
            t.elapsed()
        );
        assert!(
            eventually(Duration::from_secs(20), || ping(&m, "10.41.0.2")),
            "round {round}: ports forward again"
        );
        assert!(
            !spoof_gets_through(&m),
            "round {round}: spoofing is dropped again"
        );
    }
    assert!(d.log().contains("healed"), "{}", d.log());
    // OVSDB changes reach it through its monitor: a tag someone changed.
    let port = s.pipework(&["inspect", &m]).ok().json()["interfaces"][0]["host_peer"]
        .as_str()
        .unwrap()
        .to_string();
    sw.vsctl(&["set", "port", &port, "tag=20"]);
    assert!(
        eventually(Duration::from_secs(10), || sw.get("Port", &port, "tag")
            == "10"),
        "{}",
        d.log()
    );
    assert_eq!(s.pipework(&["check"]).code, 0);
}

#[test]
fn check_reports_and_repairs_addresses_routes_and_bridge_ports() {
    let mut s = Sandbox::new("healaddr");
    let br = "brh".to_string();
    let g = s.guest("g");
    s.pipework(&[&br, &g, "10.43.0.2/24@10.43.0.1"]).ok();
    s.pipework(&[&br, &g, "fd43::2/64", "--no-dad"]).ok();
    assert_eq!(s.pipework(&["check", &g]).code, 0);
    let peer = s.pipework(&["inspect", &g]).ok().json()["interfaces"][0]["host_peer"]
        .as_str()
        .unwrap()
        .to_string();

    // Deleting the address takes the default route through it along.
    ip(&g, &["addr", "del", "10.43.0.2/24", "dev", "eth1"]);
    ip(&g, &["addr", "del", "fd43::2/64", "dev", "eth1"]);
    s.ip_host(&["link", "set", &peer, "nomaster"]);
    let r = s.pipework(&["check", &g]);
    assert_eq!(r.code, 1, "{r:?}");
    let found = lines(&r.stdout);
    assert!(
        found
            .iter()
            .any(|l| l.contains("lacks address 10.43.0.2/24")),
        "{r:?}"
    );
    assert!(
        found.iter().any(|l| l.contains("lacks address fd43::2/64")),
        "{r:?}"
    );
    assert!(
        found
            .iter()
            .any(|l| l.contains("route default via 10.43.0.1 is gone")),
        "{r:?}"
    );
    assert!(
        found
            .iter()
            .any(|l| l.contains(&format!("not a port of bridge {br}"))),
        "{r:?}"
    );
    assert_eq!(found.len(), 4, "{r:?}");

    let r = s.pipework(&["check", &g, "--repair", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    for l in lines(&r.stdout) {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["repair"], "repaired", "{l}");
    }
    let addrs = addresses(&g, "eth1");
    assert!(addrs.iter().any(|a| a == "10.43.0.2/24"), "{addrs:?}");
    assert!(addrs.iter().any(|a| a == "fd43::2/64"), "{addrs:?}");
    let routes = ip_json(&g, &["route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "10.43.0.1", "{routes}");
    let l = ip_json(&s.host, &["link", "show", &peer]);
    assert_eq!(l[0]["master"], br.as_str(), "{l}");
    assert_eq!(s.pipework(&["check"]).code, 0);

    // A guest whose link is gone: reported, nothing to repair.
    ip(&g, &["link", "del", "eth1"]);
    let r = s.pipework(&["check", "--repair"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("is gone from the guest: not repaired"),
        "{r:?}"
    );
}

#[test]
fn bad_input_to_check_exits_2_with_one_line() {
    let s = Sandbox::new("healbad");
    for args in [
        vec!["check", "a", "b"],
        vec!["check", "--bogus"],
        vec!["check", "nosuchguest-pwhl"],
    ] {
        let r = s.pipework(&args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert_eq!(lines(&r.stderr).len(), 1, "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
    }
    // Nothing recorded: nothing differs.
    assert_eq!(s.pipework(&["check"]).code, 0);
}

/// The PIDs in a guest's namespace (`ip netns pids`: the kernel's view).
fn pids_in(ns: &str) -> Vec<i32> {
    must(Command::new("ip").args(["netns", "pids", ns]))
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Kills the guest's kept client (its processes) and waits for the
/// daemon's watch to start a new one there.
fn kill_client_and_see_a_new_one(g: &str, d: &Daemon, within: Duration) {
    let first = pids_in(g);
    assert!(!first.is_empty(), "udhcpc-f kept no client");
    for p in &first {
        kill(*p, libc::SIGKILL);
    }
    assert!(
        eventually(within, || {
            let now = pids_in(g);
            !now.is_empty() && now.iter().all(|p| !first.contains(p))
        }),
        "no new client: {}",
        d.log()
    );
}

#[test]
fn the_daemon_starts_a_dead_kept_dhcp_client_again() {
    use pipework_tests::dhcp::{DhcpServer, ServerConfig};
    let mut s = Sandbox::new("healclient");
    let srv = DhcpServer::start(&mut s, "brh", &ServerConfig::v4("10.46.0"));
    let g = s.guest("g");
    s.pipework(&["brh", &g, "udhcpc-f"]).ok();
    let d = Daemon::start(&s);
    let acks = srv.count("DHCPACK");
    // The daemon's watch sees the death within seconds and starts the
    // client again as the attach did: a new process in the guest, a lease
    // from dnsmasq.
    kill_client_and_see_a_new_one(&g, &d, Duration::from_secs(30));
    assert!(
        srv.wait_count("DHCPACK", acks + 1, Duration::from_secs(20)),
        "the new client got no lease: {}",
        srv.log()
    );
    assert!(
        eventually(Duration::from_secs(10), || d.log().contains("healed")),
        "{}",
        d.log()
    );
    let i = s.pipework(&["inspect", &g]).ok().json();
    assert_eq!(i["interfaces"][0]["dhcp"]["compat"]["running"], true, "{i}");
    assert_eq!(s.pipework(&["check", &g]).code, 0);
}

/// A kept client started again waits for its lease (here it never comes:
/// the DHCP server is gone); the flows of another attachment lost meanwhile
/// come back all the same, without waiting behind it.
#[test]
fn a_client_waiting_for_its_lease_does_not_hold_back_flows() {
    use pipework_tests::dhcp::{DhcpServer, ServerConfig};
    let mut s = Sandbox::new("healboth");
    let sw = OvsSwitch::start(&mut s);
    let (_a, m) = protected_pair(&mut s, &sw, "ovsb");
    let installed = our_flows(&sw, "ovsb");
    // The switch leaves only `ip` on pipework's PATH; the client is wanted too.
    let path = s
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .unwrap()
        .1
        .clone();
    let udhcpc = ["/usr/sbin/udhcpc", "/sbin/udhcpc", "/usr/bin/udhcpc"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("udhcpc (busybox-udhcpc)");
    std::os::unix::fs::symlink(udhcpc, std::path::Path::new(&path).join("udhcpc")).unwrap();
    let srv = DhcpServer::start(&mut s, "brb", &ServerConfig::v4("10.47.0"));
    let g = s.guest("g");
    s.pipework(&["brb", &g, "udhcpc-f"]).ok();
    drop(srv);
    let d = Daemon::start(&s);
    // The watch starts a new client, which now waits (up to 30 s) for a
    // lease no server gives.
    kill_client_and_see_a_new_one(&g, &d, Duration::from_secs(20));
    sw.restart_vswitchd();
    assert!(
        eventually(Duration::from_secs(15), || our_flows(&sw, "ovsb")
            == installed),
        "flows not back: {:#?}\n{}",
        sw.flows("ovsb"),
        d.log()
    );
    assert!(
        !d.log().contains("it has its lease"),
        "the flows came back only after the client's wait: {}",
        d.log()
    );
    assert!(!spoof_gets_through(&m), "spoofing is dropped again");
}

/// An OVS port given another OpenFlow number keeps flows naming the old
/// one (which another port may get): check reports it, `--repair` (and the
/// daemon, on OVSDB's word) moves the flows to the new number.
#[test]
fn a_port_given_another_openflow_number_gets_its_flows_moved() {
    let mut s = Sandbox::new("healofport");
    let sw = OvsSwitch::start(&mut s);
    let (_a, m) = protected_pair(&mut s, &sw, "ovso");
    let port = s.pipework(&["inspect", &m]).ok().json()["interfaces"][0]["host_peer"]
        .as_str()
        .unwrap()
        .to_string();
    let names = |n: &str| {
        our_flows(&sw, "ovso")
            .iter()
            .any(|f| f.contains(&format!("in_port={n},")) || f.contains(&format!("in_port={n} ")))
    };
    let old = sw.get("Interface", &port, "ofport");
    assert!(names(&old), "{:#?}", sw.flows("ovso"));
    sw.vsctl(&["set", "Interface", &port, "ofport_request=77"]);
    assert!(eventually(Duration::from_secs(10), || sw.get(
        "Interface",
        &port,
        "ofport"
    ) == "77"));

    let r = s.pipework(&["check", &m]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("OpenFlow number 77 where its flows name {old}")),
        "{r:?}"
    );
    let r = s.pipework(&["check", "--repair", &m]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(names("77") && !names(&old), "{:#?}", sw.flows("ovso"));
    assert!(
        !spoof_gets_through(&m),
        "port security holds on the new number"
    );
    assert!(ping(&m, "10.41.0.2"), "the honest address passes");
    assert_eq!(s.pipework(&["check"]).code, 0, "the record names 77 now");

    // The daemon does the same on its own.
    let d = Daemon::start(&s);
    sw.vsctl(&["set", "Interface", &port, "ofport_request=78"]);
    assert!(
        eventually(Duration::from_secs(15), || names("78") && !names("77")),
        "{:#?}\n{}",
        sw.flows("ovso"),
        d.log()
    );
    assert!(!spoof_gets_through(&m));
    assert!(
        eventually(Duration::from_secs(10), || s.pipework(&["check"]).code == 0),
        "{}",
        d.log()
    );
}
