//! Gratuitous ARP and unsolicited neighbour advertisements reach the
//! neighbours. The case they exist for: a neighbour still caches an old MAC
//! for the address (the container was recreated); after the attach it has
//! the new one without ever asking (witness: `ip -j neigh`). IPv4 neighbours
//! that accept unsolicited ARP also learn brand-new addresses.

use pipework_tests::arpwatch::{neigh_mac, stale_entry, wait_for_mac};
use pipework_tests::*;

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

/// `apply` announces the IPv4 addresses of guests on an untagged Linux
/// bridge port from the host: a packet socket per worker thread sends the
/// guest's gratuitous ARP into the bridge, which floods it to the ports as
/// if the guest had sent it, outside the lock every link change takes (the
/// kernel's `arp_notify` sends it inside). Witnesses: the neighbour's cache
/// (`ip -j neigh`: stale entries updated, a new one made where
/// `arp_accept` is on) and `strace` (`apply` opened packet sockets, one per
/// worker thread). `--no-announce` on a line keeps that guest silent.
#[test]
fn apply_announces_bridge_guests_from_the_host() {
    let mut s = Sandbox::new("announceap");
    let watcher = s.guest("w");
    let guests: Vec<String> = (0..4).map(|i| s.guest(&format!("g{i}"))).collect();
    let quiet = s.guest("q");
    s.pipework(&["brap4", &watcher, "10.44.0.1/24,fd00:44::1/64"])
        .ok();
    for i in 0..4 {
        stale_entry(&watcher, &format!("10.44.0.{}", i + 2));
    }
    stale_entry(&watcher, "fd00:44::2");
    stale_entry(&watcher, "10.44.0.9");
    // And one that accepts unsolicited ARP learns a brand-new address.
    accept_unsolicited(&watcher);
    let fresh = s.guest("f");
    let mut text: String = guests
        .iter()
        .enumerate()
        .map(|(i, g)| {
            format!(
                "brap4 netns:{g} 10.44.0.{}/24 02:00:00:44:00:0{}\n",
                i + 2,
                i + 2
            )
        })
        .collect();
    text = text.replacen("brap4 netns", "brap4 --no-dad netns", 1);
    text = text.replacen(
        "/24 02:00:00:44:00:02",
        "/24,fd00:44::2/64 02:00:00:44:00:02",
        1,
    );
    text.push_str(&format!("brap4 --no-announce netns:{quiet} 10.44.0.9/24\n"));
    text.push_str(&format!(
        "brap4 netns:{fresh} 10.44.0.20/24 02:00:00:44:00:20\n"
    ));
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-apply", s.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("announce.conf");
    std::fs::write(&file, text).unwrap();
    let trace = dir.join("socket.trace");
    let strace: Vec<&std::ffi::OsStr> = ["strace", "-f", "-qq", "-e", "trace=socket", "-o"]
        .iter()
        .map(std::ffi::OsStr::new)
        .chain([trace.as_os_str()])
        .collect();
    let out = run(&mut s.pipework_command(&strace, &["apply", file.to_str().unwrap()]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..4 {
        let mac = format!("02:00:00:44:00:0{}", i + 2);
        let ip = format!("10.44.0.{}", i + 2);
        assert_eq!(wait_for_mac(&watcher, &ip, &mac), Some(mac), "{ip}");
    }
    assert_eq!(
        wait_for_mac(&watcher, "fd00:44::2", "02:00:00:44:00:02").as_deref(),
        Some("02:00:00:44:00:02")
    );
    assert_eq!(
        wait_for_neigh(&watcher, "10.44.0.20").as_deref(),
        Some("02:00:00:44:00:20")
    );
    let calls = std::fs::read_to_string(&trace).unwrap();
    let packet = calls.lines().filter(|l| l.contains("AF_PACKET")).count();
    assert!(
        (1..=4).contains(&packet),
        "{packet} packet sockets:\n{calls}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        neigh_mac(&watcher, "10.44.0.9").as_deref(),
        Some("02:00:00:00:00:99"),
        "--no-announce: silence"
    );
    std::fs::write(&file, "").unwrap();
    s.pipework(&["apply", "--prune", file.to_str().unwrap()])
        .ok();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The STP state of each port of `bridge` in the sandbox's host (witness:
/// `bridge -j link`), by port name.
fn port_states(s: &Sandbox, bridge: &str) -> Vec<(String, String)> {
    let out =
        must(std::process::Command::new("bridge").args(["-n", &s.host, "-j", "link", "show"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["master"] == bridge)
        .map(|p| {
            (
                p["ifname"].as_str().unwrap_or_default().to_string(),
                p["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// On a bridge running STP a new port forwards only after listening and
/// learning (twice the forward delay, 3 s each here). An attach whose
/// guest announces itself waits for its port (up to 2 s, then announces
/// anyway with a warning); one with nothing to announce does not wait;
/// `apply` sends the ARP from the host into the bridge, which reaches a
/// forwarding neighbour while the new guest's own port still listens.
#[test]
fn only_a_guest_that_announces_itself_waits_for_its_port() {
    let mut s = Sandbox::new("announcestp");
    s.ip_host(&[
        "link",
        "add",
        "brstp",
        "type",
        "bridge",
        "stp_state",
        "1",
        "forward_delay",
        "300",
    ]);
    s.ip_host(&["link", "set", "brstp", "up"]);
    let watcher = s.guest("w");
    s.pipework(&["brstp", "--no-announce", &watcher, "10.46.0.1/24"])
        .ok();
    // The watcher's port forwards after 6 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while port_states(&s, "brstp")
        .iter()
        .any(|(_, st)| st != "forwarding")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            port_states(&s, "brstp")
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    const WAITED: &str = "is not forwarding yet";

    let quiet = s.guest("q");
    let r = s
        .pipework(&["brstp", "--no-announce", &quiet, "10.46.0.2/24"])
        .ok();
    assert!(!r.stderr.contains(WAITED), "{}", r.stderr);

    let loud = s.guest("l");
    let r = s.pipework(&["brstp", &loud, "10.46.0.3/24"]).ok();
    assert!(r.stderr.contains(WAITED), "{}", r.stderr);

    stale_entry(&watcher, "10.46.0.4");
    let fresh = s.guest("f");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-apply", s.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("stp.conf");
    std::fs::write(
        &file,
        format!("brstp netns:{fresh} 10.46.0.4/24 02:00:00:46:00:04\n"),
    )
    .unwrap();
    let before: Vec<String> = port_states(&s, "brstp")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let r = s.pipework(&["apply", file.to_str().unwrap()]).ok();
    assert!(!r.stderr.contains(WAITED), "{}", r.stderr);
    let new_port: Vec<(String, String)> = port_states(&s, "brstp")
        .into_iter()
        .filter(|(n, _)| !before.contains(n))
        .collect();
    assert_eq!(new_port.len(), 1, "{new_port:?}");
    assert_ne!(new_port[0].1, "forwarding", "{new_port:?}");
    assert_eq!(
        wait_for_mac(&watcher, "10.46.0.4", "02:00:00:46:00:04").as_deref(),
        Some("02:00:00:46:00:04")
    );
    std::fs::write(&file, "").unwrap();
    s.pipework(&["apply", "--prune", file.to_str().unwrap()])
        .ok();
    let _ = std::fs::remove_dir_all(&dir);
}

fn guest_sysctl(ns: &str, key: &str) -> String {
    must(std::process::Command::new("ip").args(["netns", "exec", ns, "sysctl", "-n", key]))
        .trim()
        .to_string()
}

/// A link pipework makes gets `arp_notify` on (its IPv4 announcement is
/// then one request). A second attach to the same interface adds addresses
/// to a link that is already up: the neighbours learn those too, and the
/// guest's `arp_notify` setting, which the guest may have changed since, is
/// left as it was.
#[test]
fn an_added_address_is_announced_and_arp_notify_is_left_as_it_was() {
    let mut s = Sandbox::new("announceext");
    let watcher = s.guest("w");
    let a = s.guest("a");
    s.pipework(&["brne", &watcher, "10.43.0.1/24,fd00:43::1/64"])
        .ok();
    s.pipework(&["brne", &a, "10.43.0.2/24", "02:00:00:43:00:02"])
        .ok();
    // A link pipework makes gets arp_notify with its first announcement.
    assert_eq!(guest_sysctl(&a, "net.ipv4.conf.eth1.arp_notify"), "1");
    // The guest turns it off: an extend must leave it off.
    must(std::process::Command::new("ip").args([
        "netns",
        "exec",
        &a,
        "sysctl",
        "-qw",
        "net.ipv4.conf.eth1.arp_notify=0",
    ]));
    stale_entry(&watcher, "10.43.0.3");
    stale_entry(&watcher, "fd00:43::3");
    s.pipework(&["brne", "--no-dad", &a, "10.43.0.3/24,fd00:43::3/64"])
        .ok();
    let mac = "02:00:00:43:00:02";
    assert_eq!(
        wait_for_mac(&watcher, "10.43.0.3", mac).as_deref(),
        Some(mac)
    );
    assert_eq!(
        wait_for_mac(&watcher, "fd00:43::3", mac).as_deref(),
        Some(mac)
    );
    assert_eq!(guest_sysctl(&a, "net.ipv4.conf.eth1.arp_notify"), "0");
    assert_eq!(
        link(&a, "eth1").and_then(|l| l["address"].as_str().map(String::from)),
        Some(mac.to_string()),
        "the MAC is set to itself, never changed"
    );

    // A guest that asked for arp_notify keeps it.
    let b = s.guest("b");
    must(std::process::Command::new("ip").args([
        "netns",
        "exec",
        &b,
        "sysctl",
        "-qw",
        "net.ipv4.conf.default.arp_notify=1",
    ]));
    stale_entry(&watcher, "10.43.0.4");
    s.pipework(&["brne", &b, "10.43.0.4/24", "02:00:00:43:00:04"])
        .ok();
    assert_eq!(
        wait_for_mac(&watcher, "10.43.0.4", "02:00:00:43:00:04").as_deref(),
        Some("02:00:00:43:00:04")
    );
    assert_eq!(guest_sysctl(&b, "net.ipv4.conf.eth1.arp_notify"), "1");
}

/// Our processes whose parent is this test process (a child subreaper, so
/// that anything a `pipework` leaves behind becomes our child) and that are
/// not zombies: `(pid, state)`. Matched by command name, not by `exe`: a
/// process already in `exit` has dropped its memory map, and with it the
/// `exe` link, long before it has closed its files.
fn live_children_named_like(bin: &std::path::Path) -> Vec<(i32, String)> {
    let me = std::process::id().to_string();
    // The kernel's `comm`: the file name, cut to 15 bytes.
    let comm: String = bin
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("pipework")
        .chars()
        .take(15)
        .collect();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split at ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() >= 2 && f[1] == me && f[0] != "Z" && name == comm {
            out.push((pid, f[0].to_string()));
        }
    }
    out
}

/// "No process of ours outlives the command by more than 1 ms": no
/// `pipework` process is left running once an attach (IPv4 and IPv6, fresh
/// interface or extended one) or a detach has returned. Run alone in its
/// process by nextest, so every `pipework` child is this test's.
#[test]
fn no_pipework_process_outlives_the_command() {
    nix::sys::prctl::set_child_subreaper(true).expect("become a child subreaper");
    let mut s = Sandbox::new("announcelive");
    let watcher = s.guest("w");
    let a = s.guest("a");
    let bin = pipework_bin();
    s.pipework(&["brlv", &watcher, "10.44.0.1/24"]).ok();
    let runs: [&[&str]; 4] = [
        &["brlv", "--no-dad", &a, "10.44.0.2/24,fd00:44::2/64"],
        &["brlv", "--no-dad", &a, "10.44.0.3/24,fd00:44::3/64"],
        &["brlv", "-i", "eth2", &a, "10.44.0.4/24"],
        &["detach", &a],
    ];
    for _round in 0..3 {
        for args in runs {
            s.pipework(args).ok();
            // Scanning /proc takes well under a millisecond here.
            let left = live_children_named_like(&bin);
            assert!(
                left.is_empty(),
                "still running after `pipework {}` returned: {left:?}",
                args.join(" ")
            );
        }
    }
    // Reap whatever exited after all (nothing, when the test passes).
    while nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
        .is_ok_and(|st| st != nix::sys::wait::WaitStatus::StillAlive)
    {}
}
