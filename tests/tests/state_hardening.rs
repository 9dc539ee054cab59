//! The state directory cannot be turned against root: symbolic links in it
//! are never followed, a directory others can write to (or that root does
//! not own) is refused with exit 2 and one line naming it, what pipework
//! creates is 0700/0600 whatever the umask, `gc` removes the temporary files
//! of killed writers and the lock files nothing needs, and the DHCP daemon
//! tells live guests from dead ones wherever its mounts are.
//!
//! Witnesses: `find`/`sha256sum` of a decoy directory the planted links
//! point to, `stat`, `ip -j link`/`addr`, dnsmasq's log and lease file.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pipework_tests::dhcp::{mac_of, DhcpServer, ServerConfig};
use pipework_tests::*;

/// A directory outside the state directory that planted links point to;
/// removed on drop.
struct Decoy(PathBuf);

impl Decoy {
    fn new(s: &Sandbox) -> Decoy {
        let d = std::env::temp_dir().join(format!("{}-decoy", s.prefix));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("target"), "precious\n").unwrap();
        std::fs::write(d.join("sub/other"), "also precious\n").unwrap();
        Decoy(d)
    }

    /// Every name, type, mode, owner and size, and every file's checksum.
    fn snapshot(&self) -> String {
        let sh = format!(
            "cd '{}' && find . -printf '%p %y %m %u %s\\n' | sort && find . -type f -exec sha256sum {{}} + | sort",
            self.0.display()
        );
        must(Command::new("sh").args(["-c", &sh]))
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mkdir700(p: &Path) {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .unwrap();
    must(Command::new("chmod").arg("700").arg(p));
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// The inode of a named namespace (what the state directory files it by).
fn netns_ino(name: &str) -> String {
    must(Command::new("stat").args(["-L", "-c", "%i", &format!("/run/netns/{name}")]))
        .trim()
        .to_string()
}

/// A fresh, trusted state directory with the layout pipework makes.
fn fresh_state(s: &Sandbox) {
    let _ = std::fs::remove_dir_all(&s.state_dir);
    for d in ["attachments", "bridges", "locks", "pending"] {
        mkdir700(&s.state_dir.join(d));
    }
}

fn assert_refused(r: &Run, path: &Path, what: &str) {
    assert_eq!(r.code, 2, "{what}: {r:?}");
    assert_eq!(r.stderr.trim().lines().count(), 1, "{what}: {}", r.stderr);
    assert!(
        r.stderr.contains(&path.display().to_string()),
        "{what}: the message does not name {}: {}",
        path.display(),
        r.stderr
    );
}

#[test]
fn a_tampered_state_directory_is_refused_and_nothing_outside_it_changes() {
    let mut s = Sandbox::new("sttamper");
    let g = s.guest("g");
    let ino = netns_ino(&g);
    s.ip_host(&["link", "add", "brh", "type", "bridge"]);
    s.ip_host(&["link", "set", "brh", "up"]);
    // A host link a planted journal will name.
    s.ip_host(&[
        "link", "add", "hostlnk", "type", "veth", "peer", "name", "hostlnkp",
    ]);
    let decoy = Decoy::new(&s);
    let before = decoy.snapshot();
    let st = s.state_dir.clone();
    let attach: &[&str] = &["brh", &g, "10.71.0.2/24"];

    type Setup<'a> = Box<dyn Fn() -> PathBuf + 'a>;
    // Each case: how to tamper, and the commands that must refuse.
    let cases: Vec<(&str, Setup, Vec<Vec<&str>>)> = vec![
        (
            "symlinked pending file",
            Box::new(|| {
                let p = st.join(format!("pending/{ino}-eth1.json"));
                symlink(&decoy.0.join("target"), &p);
                p
            }),
            vec![attach.to_vec(), vec!["gc"]],
        ),
        (
            "symlinked lock file",
            Box::new(|| {
                let p = st.join(format!("locks/guest-{ino}"));
                symlink(&decoy.0.join("target"), &p);
                p
            }),
            vec![attach.to_vec()],
        ),
        (
            "symlinked daemon.log",
            Box::new(|| {
                let p = st.join("daemon.log");
                symlink(&decoy.0.join("log"), &p);
                p
            }),
            vec![vec!["brh", &g, "dhcp", "--timeout", "1"]],
        ),
        (
            "symlinked record directory",
            Box::new(|| {
                let p = st.join(format!("attachments/{ino}"));
                symlink(&decoy.0, &p);
                p
            }),
            vec![
                attach.to_vec(),
                vec!["list"],
                vec!["gc"],
                vec!["inspect", &g],
            ],
        ),
        (
            "a 0777 state directory",
            Box::new(|| {
                must(Command::new("chmod").arg("777").arg(&st));
                st.clone()
            }),
            vec![
                attach.to_vec(),
                vec!["list"],
                vec!["gc"],
                vec!["inspect", &g],
            ],
        ),
        (
            "a state directory owned by another user",
            Box::new(|| {
                must(Command::new("chown").arg("65534").arg(&st));
                st.clone()
            }),
            vec![attach.to_vec(), vec!["list"], vec!["gc"]],
        ),
        (
            "a group-writable directory in it",
            Box::new(|| {
                let p = st.join("locks");
                must(Command::new("chmod").arg("770").arg(&p));
                p
            }),
            vec![attach.to_vec(), vec!["list"], vec!["gc"]],
        ),
        (
            "a symlinked leases directory",
            Box::new(|| {
                let p = st.join("leases");
                symlink(&decoy.0, &p);
                p
            }),
            vec![attach.to_vec(), vec!["list"], vec!["gc"]],
        ),
    ];
    for (what, setup, commands) in &cases {
        fresh_state(&s);
        let path = setup();
        let links_before = s.host_link_names();
        for c in commands {
            let r = s.pipework(c);
            assert_refused(&r, &path, &format!("{what}: pipework {}", c.join(" ")));
            assert_eq!(
                s.host_link_names(),
                links_before,
                "{what}: {c:?} changed the host"
            );
            assert!(link(&g, "eth1").is_none(), "{what}: {c:?}");
        }
        assert_eq!(decoy.snapshot(), before, "{what}: the decoy changed");
    }

    // A bridge marker that is a link is not pipework's word: the host's
    // bridge is used, and not deleted by the detach.
    fresh_state(&s);
    symlink(&decoy.0.join("target"), &st.join("bridges/brh"));
    s.pipework(attach).ok();
    s.pipework(&["detach", &g]).ok();
    assert!(
        link(&s.host, "brh").is_some(),
        "the host's bridge was deleted"
    );
    assert_eq!(decoy.snapshot(), before, "bridge marker: the decoy changed");

    // A journal planted by an ordinary user naming a host link: root's gc
    // refuses the directory, the link stays.
    let hostlnk = ip_json(&s.host, &["link", "show", "dev", "hostlnk"]);
    let idx = hostlnk[0]["ifindex"].as_u64().unwrap();
    let journal = serde_json::json!({
        "guest": {"name": "gone", "kind": "netns", "reference": {"auto": "gone"}, "netns": 1},
        "interface": "eth9",
        "journal": [{"op": "host_link_created", "name": "hostlnk", "ifindex": idx}],
    });
    let plant = |owner: &str, mode: &str| {
        fresh_state(&s);
        std::fs::write(st.join("pending/1-eth9.json"), format!("{journal}\n")).unwrap();
        must(Command::new("chown").args(["-R", owner]).arg(&st));
        must(Command::new("chmod").arg(mode).arg(&st));
    };
    plant("65534", "700");
    assert_refused(&s.pipework(&["gc"]), &st, "planted journal (other owner)");
    assert!(link(&s.host, "hostlnk").is_some(), "gc deleted a host link");
    plant("0", "777");
    assert_refused(&s.pipework(&["gc"]), &st, "planted journal (0777)");
    assert!(link(&s.host, "hostlnk").is_some(), "gc deleted a host link");
    // The control: the same journal in a directory only root can write is
    // root's own, and gc does act on it.
    plant("0", "700");
    s.pipework(&["gc"]).ok();
    assert!(
        link(&s.host, "hostlnk").is_none(),
        "the control journal did nothing"
    );

    assert_eq!(decoy.snapshot(), before);
}

#[test]
fn empty_state_dir_settings_are_refused() {
    let s = Sandbox::new("stempty");
    let r = s.pipework(&["--state-dir=", "list"]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = s.pipework_env(&["list"], &[("PIPEWORK_STATE_DIR", "")]);
    assert_eq!(r.code, 2, "{r:?}");
}

/// `find` of the state directory: `<mode> <type> <path>` per entry.
fn modes(dir: &Path) -> Vec<String> {
    let out = must(
        Command::new("find")
            .arg(dir)
            .args(["-printf", "%m %y %p\\n"]),
    );
    out.lines().map(String::from).collect()
}

#[test]
fn what_pipework_creates_is_0700_and_0600_whatever_the_umask() {
    let mut s = Sandbox::new("stmodes");
    let g = s.guest("g");
    let h = s.guest("h");
    s.ip_host(&["link", "add", "brm", "type", "bridge"]);
    s.ip_host(&["link", "set", "brm", "up"]);
    // A daemon.log an older pipework left world-readable.
    mkdir700(&s.state_dir);
    std::fs::write(s.state_dir.join("daemon.log"), "").unwrap();
    must(
        Command::new("chmod")
            .arg("644")
            .arg(s.state_dir.join("daemon.log")),
    );
    let with_umask = |args: &[&str]| {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("umask 000; exec \"$@\"")
            .arg("sh")
            .args(["ip", "netns", "exec", &s.host])
            .arg(pipework_bin())
            .args(args)
            .env("PIPEWORK_STATE_DIR", &s.state_dir);
        let o = run(&mut c);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = with_umask(&["brnew", &g, "10.72.0.2/24"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = with_umask(&["brm", &h, "-i", "eth2", "10.72.1.2/24"]);
    assert_eq!(code, Some(0), "{err}");
    // No DHCP server: the attach fails, the daemon it started stays.
    let (code, err) = with_umask(&["brm", &h, "dhcp", "--timeout", "1"]);
    assert_eq!(code, Some(1), "{err}");
    let all = modes(&s.state_dir);
    assert!(all.iter().any(|l| l.ends_with("/daemon.log")), "{all:?}");
    for l in &all {
        let (mode, rest) = l.split_once(' ').unwrap();
        let want = match rest.split_once(' ').unwrap().0 {
            "d" => "700",
            "f" | "s" => "600",
            t => panic!("unexpected type {t} in {l}"),
        };
        assert_eq!(mode, want, "{l}");
    }
}

/// A process that has exited: its pid is not alive.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

fn file_count(dir: &Path) -> usize {
    must(Command::new("find").arg(dir).args(["-type", "f"]))
        .lines()
        .count()
}

#[test]
fn gc_removes_dead_writers_temp_files_and_lock_files_nothing_needs() {
    let mut s = Sandbox::new("stgcfiles");
    let a = s.guest("a");
    let b = s.guest("b");
    let c = s.guest("c");
    s.ip_host(&["link", "add", "brg", "type", "bridge"]);
    s.ip_host(&["link", "set", "brg", "up"]);
    s.pipework(&["brg", &a, "10.73.0.2/24"]).ok();
    s.pipework(&["brg", &b, "10.73.0.3/24"]).ok();
    s.pipework(&["brg", &c, "10.73.0.4/24"]).ok();
    let (ia, ib, ic) = (netns_ino(&a), netns_ino(&b), netns_ino(&c));
    // a detached, c's namespace deleted: their lock files are not needed.
    s.pipework(&["detach", &a]).ok();
    must(Command::new("ip").args(["netns", "del", &c]));
    let st = &s.state_dir;
    let dead = dead_pid();
    let me = std::process::id();
    let planted_dead = [
        format!("attachments/{ib}/eth1.tmp.{dead}.0badcafe"),
        format!("bridges/brx.tmp.{dead}.12345678"),
        format!("daemon.tmp.{dead}.abcdef01"),
    ];
    // A live writer's (this test process) recent temp file stays.
    let planted_live = format!("attachments/{ib}/eth2.tmp.{me}.feedf00d");
    for f in planted_dead.iter().chain([&planted_live]) {
        std::fs::write(st.join(f), "half").unwrap();
    }
    // A lock someone (this test) holds stays too.
    let held = format!("locks/guest-{}", 4_000_000_000u64 + u64::from(me));
    let holder = nix::fcntl::Flock::lock(
        std::fs::File::create(st.join(&held)).unwrap(),
        nix::fcntl::FlockArg::LockExclusive,
    )
    .unwrap();
    let lock = |i: &str| st.join(format!("locks/guest-{i}"));
    assert!(lock(&ia).exists() && lock(&ib).exists() && lock(&ic).exists());
    let count_before = file_count(st);

    let out = s.pipework(&["gc"]).ok().stdout;
    for f in &planted_dead {
        assert!(!st.join(f).exists(), "{f} left: {out}");
        assert!(
            out.contains(f.as_str()),
            "gc did not say it removed {f}: {out}"
        );
    }
    assert!(st.join(&planted_live).exists(), "a live writer's file went");
    assert!(!lock(&ia).exists(), "a detached guest's lock left: {out}");
    assert!(!lock(&ic).exists(), "a gone guest's lock left: {out}");
    assert!(lock(&ib).exists(), "a live guest's lock went");
    assert!(st.join(&held).exists(), "a held lock went");
    // Three temp files, a and c's locks, c's record, and the lock of the
    // bridge nothing uses any more.
    assert_eq!(file_count(st), count_before - 7, "{out}");
    // b is untouched and still works.
    assert!(addresses(&b, "eth1").contains(&"10.73.0.3/24".to_string()));

    drop(holder);
    let out = s.pipework(&["gc"]).ok().stdout;
    assert!(!st.join(&held).exists(), "{out}");
    std::fs::remove_file(st.join(&planted_live)).unwrap();
    // And the next attach to a works as before (its lock comes back).
    s.pipework(&["brg", &a, "10.73.0.2/24"]).ok();
    assert!(lock(&ia).exists());
}

/// Lines of dnsmasq's log about a release of `mac`.
fn releases_of(srv: &DhcpServer, mac: &str) -> usize {
    srv.log()
        .lines()
        .filter(|l| l.contains("DHCPRELEASE") && l.to_lowercase().contains(mac))
        .count()
}

fn leased(ns: &str) -> Option<String> {
    addresses(ns, "eth1").into_iter().find(|a| a.contains('.'))
}

#[test]
fn a_daemon_in_a_private_mount_namespace_keeps_live_guests_leases() {
    let mut s = Sandbox::new("stmntns");
    let srv = DhcpServer::start(
        &mut s,
        "brp",
        &ServerConfig {
            extra: &["--dhcp-option=option:T1,4", "--dhcp-option=option:T2,8"],
            ..ServerConfig::v4("10.74.0")
        },
    );
    // The daemon first, in a mount namespace of its own that later mounts
    // in /run/netns do not reach.
    mkdir700(&s.state_dir);
    let mut daemon = Command::new("ip")
        .args(["netns", "exec", &s.host])
        .args(["unshare", "-m", "--propagation", "private"])
        .arg(pipework_bin())
        .args(["daemon", "--state-dir"])
        .arg(&s.state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while !s.state_dir.join("daemon.sock").exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let dpid = s.daemon_pid().expect("the daemon runs");
    let my_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_ne!(
        std::fs::read_link(format!("/proc/{dpid}/ns/mnt")).unwrap(),
        my_mnt
    );
    // Guests made after it, in this mount namespace.
    let a = s.guest("a");
    let b = s.guest("b");
    s.pipework(&["brp", &a, "dhcp"]).ok();
    s.pipework(&["brp", &b, "dhcp"]).ok();
    assert_eq!(
        s.daemon_pid(),
        Some(dpid),
        "the attaches used another daemon"
    );
    let (addr_a, addr_b) = (leased(&a).unwrap(), leased(&b).unwrap());
    let (mac_a, mac_b) = (mac_of(&a, "eth1"), mac_of(&b, "eth1"));
    // The daemon cannot see them where their bind mounts are: in its mount
    // namespace the path is the empty file under the mount.
    let seen = must(Command::new("nsenter").args([
        "-t",
        &dpid.to_string(),
        "-m",
        "stat",
        "-L",
        "-c",
        "%i",
        &format!("/run/netns/{a}"),
    ]));
    assert_ne!(
        seen.trim(),
        netns_ino(&a),
        "the daemon's mount namespace sees the guest"
    );

    // Guests come and go around them.
    for i in 0..4 {
        let t = s.guest(&format!("t{i}"));
        s.pipework(&["brp", &t, "dhcp"]).ok();
        let mac_t = mac_of(&t, "eth1");
        must(Command::new("ip").args(["netns", "del", &t]));
        let end = Instant::now() + Duration::from_secs(10);
        while releases_of(&srv, &mac_t) == 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            releases_of(&srv, &mac_t),
            1,
            "a gone guest's lease was kept: {}",
            srv.log()
        );
        let _extra = s.guest(&format!("x{i}"));
    }
    // The live ones kept theirs, and renew them.
    let acks = srv.count("DHCPACK");
    assert!(
        srv.wait_count("DHCPACK", acks + 2, Duration::from_secs(15)),
        "{}",
        srv.log()
    );
    assert_eq!(releases_of(&srv, &mac_a), 0, "{}", srv.log());
    assert_eq!(releases_of(&srv, &mac_b), 0, "{}", srv.log());
    assert_eq!(leased(&a), Some(addr_a));
    assert_eq!(leased(&b), Some(addr_b));
    assert!(srv.lease_of(&mac_a).is_some() && srv.lease_of(&mac_b).is_some());
    assert!(ping(&a, &srv.addr));

    // And one that really goes is still noticed.
    must(Command::new("ip").args(["netns", "del", &a]));
    let end = Instant::now() + Duration::from_secs(10);
    while releases_of(&srv, &mac_a) == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(releases_of(&srv, &mac_a), 1, "{}", srv.log());
    assert_eq!(releases_of(&srv, &mac_b), 0, "{}", srv.log());
    let _ = daemon.kill();
    let _ = daemon.wait();
}

#[test]
fn gc_removing_lock_files_never_races_attach_and_detach() {
    let mut s = Sandbox::new("stlockrace");
    let g = s.guest("g");
    s.ip_host(&["link", "add", "brl", "type", "bridge"]);
    s.ip_host(&["link", "set", "brl", "up"]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let rounds = 60;
    let gcs = std::thread::scope(|scope| {
        let gc = scope.spawn(|| {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let r = s.pipework(&["gc"]);
                assert_eq!(r.code, 0, "gc: {r:?}");
                n += 1;
            }
            n
        });
        // Stops the gc loop however this thread ends (a failed assertion).
        struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let stopper = Stop(&stop);
        for i in 0..rounds {
            let r = s.pipework(&["brl", &g, "10.75.0.2/24"]);
            assert_eq!(r.code, 0, "attach {i}: {r:?}");
            assert!(addresses(&g, "eth1").contains(&"10.75.0.2/24".to_string()));
            let r = s.pipework(&["detach", &g]);
            assert_eq!(r.code, 0, "detach {i}: {r:?}");
            assert!(link(&g, "eth1").is_none(), "detach {i} left eth1");
        }
        drop(stopper);
        gc.join().unwrap()
    });
    assert!(gcs > 0);
    // Only the host's bridge and loopback are left, and no lock file of a
    // guest that has nothing recorded once gc has run.
    assert_eq!(
        s.host_link_names(),
        vec![serde_json::json!("lo"), serde_json::json!("brl")]
    );
    s.pipework(&["gc"]).ok();
    let locks = must(Command::new("ls").arg(s.state_dir.join("locks")));
    assert!(!locks.contains("guest-"), "{locks}");
}
