//! The reconciler against a real engine: Podman's Docker-compatible API,
//! real containers (network none), the daemon in the sandbox's host
//! namespace.
//!
//! Long file: one test binary per area keeps the suite's link time down,
//! and the reconciler's cases share one engine setup.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pipework_tests::dhcp::{DhcpServer, ServerConfig};
use pipework_tests::ovs::OvsSwitch;
use pipework_tests::podman::{Podman, IMAGE};
use pipework_tests::*;
use serde_json::Value;

/// `pipework daemon --engine ...` in the sandbox's host namespace.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(s: &Sandbox, pm: &Podman, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        // The state directory must be root's alone (0700), as pipework makes it.
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&s.state_dir)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            })
            .unwrap();
        let log = s
            .state_dir
            .with_file_name(format!("{}-daemon-{}.log", s.prefix, now_ms()));
        let out = std::fs::File::create(&log).unwrap();
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &s.host])
            .arg(pipework_bin())
            .args(["daemon", "--engine", &pm.docker_host()])
            .args(extra)
            .env("PIPEWORK_STATE_DIR", &s.state_dir)
            .env(
                "PIPEWORK_LOG",
                "info,pipework_core=debug,pipework_daemon=debug",
            )
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out);
        for (k, v) in env {
            c.env(k, v);
        }
        let d = Daemon {
            child: c.spawn().expect("pipework daemon"),
            log,
        };
        d.wait_log("following the engine's events", Duration::from_secs(20));
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str, within: Duration) {
        let until = Instant::now() + within;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < until,
                "the daemon never said '{needle}':\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("daemon log:\n{}", self.log());
        }
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Polls until `f` holds; returns how long it took.
fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t0.elapsed()
}

/// `podman create` with declarations; started later.
fn create(pm: &mut Podman, name: &str, env: &[String], labels: &[String]) {
    let mut c = pm.podman();
    c.args(["create", "--network", "none", "--name", name]);
    for e in env {
        c.arg("-e").arg(e);
    }
    for l in labels {
        c.arg("--label").arg(l);
    }
    c.args([IMAGE, "/bin/sleep", "600"]);
    must(&mut c);
    pm.track(name);
}

fn podman(pm: &Podman, args: &[&str]) {
    must(pm.podman().args(args));
}

/// The container's interface as `ip -j` shows it, if it exists.
fn container_link(pm: &Podman, name: &str, ifname: &str) -> Option<Value> {
    let pid = pm.pid(name);
    if pid == 0 {
        return None;
    }
    let o = run(Command::new("nsenter").args([
        "-t",
        &pid.to_string(),
        "-n",
        "ip",
        "-j",
        "addr",
        "show",
        "dev",
        ifname,
    ]));
    if !o.status.success() {
        return None;
    }
    serde_json::from_slice::<Value>(&o.stdout)
        .ok()?
        .get(0)
        .cloned()
}

/// MAC and first IPv4 address of a container interface.
fn mac_and_v4(l: &Value) -> (String, String) {
    let addr = l["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["family"] == "inet")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .unwrap_or_default();
    (l["address"].as_str().unwrap_or("").to_string(), addr)
}

fn records(s: &Sandbox) -> Vec<Value> {
    s.pipework(&["list", "--json"])
        .ok()
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn host_veths(s: &Sandbox) -> usize {
    s.host_links()
        .iter()
        .filter(|l| l["kind"] == "veth")
        .count()
}

#[test]
fn declared_attachments_follow_the_container() {
    let s = Sandbox::new("reconcile");
    let mut pm = Podman::start(&s.prefix);
    let baseline = s.host_link_names();
    let _d = Daemon::start(&s, &pm, &[], &[]);
    let name = format!("{}-web_7", s.prefix);
    create(
        &mut pm,
        &name,
        &["pipework_cmd=brrc @CONTAINER_NAME@ 10.93.0.2/24 # the app network".into()],
        &["io.pipework.attach.1=brrd -i eth2 @CONTAINER_NAME@ 10.94.0.@INSTANCE@/24".into()],
    );
    podman(&pm, &["start", &name]);
    // Within 10 s, a third of the 30-s recheck: the container's start
    // event did it, not a periodic pass. How fast is printed, not asserted
    // (a loaded machine is slower, not wrong).
    let took = until("the declared interfaces", Duration::from_secs(10), || {
        container_link(&pm, &name, "eth1").is_some() && container_link(&pm, &name, "eth2").is_some()
    });
    eprintln!("attached {took:?} after podman start returned");
    let eth1 = mac_and_v4(&container_link(&pm, &name, "eth1").unwrap());
    let eth2 = mac_and_v4(&container_link(&pm, &name, "eth2").unwrap());
    assert_eq!(eth1.1, "10.93.0.2/24");
    assert_eq!(eth2.1, "10.94.0.7/24");
    assert_eq!(records(&s).len(), 2);

    // Restarted: a new namespace, the same MACs and addresses, and nothing
    // left of the first run.
    let pid = pm.pid(&name);
    podman(&pm, &["restart", "-t", "0", &name]);
    until(
        "the interfaces after the restart",
        Duration::from_secs(10),
        || {
            pm.pid(&name) != pid
                && container_link(&pm, &name, "eth1").is_some()
                && container_link(&pm, &name, "eth2").is_some()
        },
    );
    assert_eq!(
        mac_and_v4(&container_link(&pm, &name, "eth1").unwrap()),
        eth1
    );
    assert_eq!(
        mac_and_v4(&container_link(&pm, &name, "eth2").unwrap()),
        eth2
    );
    until("the old run's veths to go", Duration::from_secs(10), || {
        host_veths(&s) == 2 && records(&s).len() == 2
    });

    // Stopped: everything pipework made is gone, bridges included.
    podman(&pm, &["stop", "-t", "0", &name]);
    until("the teardown", Duration::from_secs(10), || {
        records(&s).is_empty() && s.host_link_names() == baseline
    });

    // Started again, then removed outright.
    podman(&pm, &["start", &name]);
    until("the second start", Duration::from_secs(10), || {
        container_link(&pm, &name, "eth1").is_some()
    });
    assert_eq!(
        mac_and_v4(&container_link(&pm, &name, "eth1").unwrap()),
        eth1
    );
    pm.remove(&name);
    until("the teardown after rm", Duration::from_secs(10), || {
        records(&s).is_empty() && s.host_link_names() == baseline
    });
}

#[test]
fn the_key_and_containers_without_declarations() {
    let s = Sandbox::new("reconkey");
    let mut pm = Podman::start(&s.prefix);
    let _d = Daemon::start(&s, &pm, &["--key", "s3cret"], &[]);
    let keyed = format!("{}-keyed", s.prefix);
    let stranger = format!("{}-stranger", s.prefix);
    let plain = format!("{}-plain", s.prefix);
    create(
        &mut pm,
        &keyed,
        &[
            "pipework_key=s3cret".into(),
            "pipework_cmd=brk @CONTAINER_NAME@ 10.96.0.2/24".into(),
        ],
        &[],
    );
    create(
        &mut pm,
        &stranger,
        &["pipework_cmd=brk @CONTAINER_NAME@ 10.96.0.3/24".into()],
        &[],
    );
    create(&mut pm, &plain, &[], &[]);
    podman(&pm, &["start", &stranger, &plain, &keyed]);
    until("the keyed container", Duration::from_secs(10), || {
        container_link(&pm, &keyed, "eth1").is_some()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(container_link(&pm, &stranger, "eth1").is_none());
    assert!(container_link(&pm, &plain, "eth1").is_none());
    assert_eq!(records(&s).len(), 1);
}

/// The daemon killed in the middle of an attach (and more containers coming
/// and going while it is down): the next one converges, with nothing leaked
/// and nothing twice.
#[test]
fn a_daemon_killed_mid_stream_converges() {
    let s = Sandbox::new("reconkill");
    let mut pm = Podman::start(&s.prefix);
    let baseline = s.host_link_names();
    let names: Vec<String> = (0..8).map(|i| format!("{}-c{i}", s.prefix)).collect();
    for (i, n) in names.iter().enumerate() {
        create(
            &mut pm,
            n,
            &[format!(
                "pipework_cmd=brkl @CONTAINER_NAME@ 10.97.0.{}/24",
                i + 10
            )],
            &[],
        );
    }
    let mut d = Daemon::start(
        &s,
        &pm,
        &[],
        &[("PIPEWORK_FAULT_HOOK", "address-added:kill -9 $PPID")],
    );
    let first: Vec<&str> = names[..6].iter().map(String::as_str).collect();
    podman(&pm, &[&["start"][..], &first].concat());
    until(
        "the daemon to die mid-attach",
        Duration::from_secs(20),
        || d.child.try_wait().unwrap().is_some(),
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(d.child.wait().unwrap().signal(), Some(9), "{}", d.log());
    // While no daemon runs: two stop, two more start.
    podman(&pm, &["stop", "-t", "0", &names[0], &names[1]]);
    podman(&pm, &["start", &names[6], &names[7]]);
    let d2 = Daemon::start(&s, &pm, &[], &[]);
    d2.wait_log(
        "undid an attach the previous daemon left unfinished",
        Duration::from_secs(5),
    );
    let running = &names[2..];
    until("convergence", Duration::from_secs(30), || {
        running
            .iter()
            .all(|n| container_link(&pm, n, "eth1").is_some())
            && records(&s).len() == running.len()
            && host_veths(&s) == running.len()
    });
    for (i, n) in names.iter().enumerate().skip(2) {
        let l = container_link(&pm, n, "eth1").unwrap();
        assert_eq!(mac_and_v4(&l).1, format!("10.97.0.{}/24", i + 10));
        let pid = pm.pid(n).to_string();
        let all = must(Command::new("nsenter").args(["-t", &pid, "-n", "ip", "-o", "link"]));
        assert_eq!(all.lines().count(), 2, "lo and eth1 only in {n}: {all}");
    }
    let pending = s.state_dir.join("pending");
    let left = std::fs::read_dir(&pending).map(|r| r.count()).unwrap_or(0);
    assert_eq!(left, 0, "pending attaches left");
    let stop: Vec<&str> = running.iter().map(String::as_str).collect();
    podman(&pm, &[&["stop", "-t", "0"][..], &stop].concat());
    until("the teardown", Duration::from_secs(30), || {
        records(&s).is_empty() && s.host_link_names() == baseline
    });
}

/// Fifty containers started at once all get their attachment.
#[test]
fn a_burst_of_fifty_containers() {
    let s = Sandbox::new("reconburst");
    let mut pm = Podman::start(&s.prefix);
    let baseline = s.host_link_names();
    let names: Vec<String> = (0..50).map(|i| format!("{}-b{i}", s.prefix)).collect();
    let t0 = Instant::now();
    std::thread::scope(|sc| {
        for chunk in names.chunks(13) {
            let p = &pm;
            sc.spawn(move || {
                for (n, name) in chunk.iter().enumerate() {
                    let i: usize = name.rsplit('b').next().unwrap().parse().unwrap();
                    let _ = n;
                    must(p.podman().args([
                        "create",
                        "--network",
                        "none",
                        "--name",
                        name,
                        "-e",
                        &format!("pipework_cmd=brbu @CONTAINER_NAME@ 10.98.0.{}/24", i + 10),
                        IMAGE,
                        "/bin/sleep",
                        "600",
                    ]));
                }
            });
        }
    });
    for n in &names {
        pm.track(n);
    }
    eprintln!("created 50 containers in {:?}", t0.elapsed());
    let _d = Daemon::start(&s, &pm, &[], &[]);
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let t0 = Instant::now();
    podman(&pm, &[&["start"][..], &all].concat());
    let started = t0.elapsed();
    until("fifty attachments", Duration::from_secs(60), || {
        records(&s).len() == 50
    });
    let attached = t0.elapsed();
    eprintln!("podman start of 50 took {started:?}; all 50 attached after {attached:?}");
    for (i, n) in names.iter().enumerate() {
        let l = container_link(&pm, n, "eth1").unwrap_or_else(|| panic!("{n} has no eth1"));
        assert_eq!(mac_and_v4(&l).1, format!("10.98.0.{}/24", i + 10));
    }
    assert_eq!(host_veths(&s), 50);
    podman(&pm, &[&["stop", "-t", "0"][..], &all].concat());
    until("the teardown", Duration::from_secs(60), || {
        records(&s).is_empty() && s.host_link_names() == baseline
    });
    eprintln!("stopped and torn down after {:?}", t0.elapsed());
}

/// dreamcat4's `pipework_host_route`: the host reaches the macvlan container
/// through the shim while it runs, and the shim goes when it stops.
#[test]
fn a_declared_host_route_makes_the_shim() {
    let s = Sandbox::new("reconshim");
    let mut pm = Podman::start(&s.prefix);
    s.fake_nic("nic7");
    let baseline = s.host_links();
    let _d = Daemon::start(&s, &pm, &[], &[]);
    let name = format!("{}-mv", s.prefix);
    create(
        &mut pm,
        &name,
        &[
            "pipework_cmd_lan=nic7 @CONTAINER_NAME@ 10.99.0.2/24".into(),
            "pipework_host_route_lan=true".into(),
        ],
        &[],
    );
    podman(&pm, &["start", &name]);
    until("the shim", Duration::from_secs(10), || {
        link(&s.host, "pwh-nic7").is_some()
    });
    let addrs = addresses(&s.host, "pwh-nic7");
    assert!(addrs.contains(&"10.99.0.254/24".to_string()), "{addrs:?}");
    assert!(s.ping(&s.host, "10.99.0.2"));
    podman(&pm, &["stop", "-t", "0", &name]);
    // Names only: the guest's macvlan dies with its namespace, which the
    // kernel cleans up in the background (seconds on a busy machine), and
    // until then nic7 keeps the promiscuity that macvlan gave it.
    let names = |v: &[Value]| v.iter().map(|l| l["ifname"].clone()).collect::<Vec<_>>();
    let t0 = Instant::now();
    loop {
        let (recs, links) = (records(&s), names(&s.host_links()));
        if recs.is_empty() && links == names(&baseline) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the shim did not go: records {recs:?}, host links {links:?}, before {:?}",
            names(&baseline)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The engine goes away and comes back: the daemon reconnects (with
/// back-off) and its sweep catches what happened meanwhile.
#[test]
fn the_engine_restarts() {
    let s = Sandbox::new("reconengine");
    let mut pm = Podman::start(&s.prefix);
    let d = Daemon::start(&s, &pm, &[], &[]);
    let a = format!("{}-a", s.prefix);
    let b = format!("{}-b", s.prefix);
    create(
        &mut pm,
        &a,
        &["pipework_cmd=bren @CONTAINER_NAME@ 10.86.0.2/24".into()],
        &[],
    );
    create(
        &mut pm,
        &b,
        &["pipework_cmd=bren @CONTAINER_NAME@ 10.86.0.3/24".into()],
        &[],
    );
    podman(&pm, &["start", &a]);
    until("a", Duration::from_secs(10), || {
        container_link(&pm, &a, "eth1").is_some()
    });
    pm.stop_service();
    d.wait_log("reconnecting", Duration::from_secs(10));
    // Meanwhile (the CLI needs no service): one stops, one starts.
    podman(&pm, &["stop", "-t", "0", &a]);
    podman(&pm, &["start", &b]);
    std::thread::sleep(Duration::from_millis(500));
    pm.start_service();
    until(
        "the sweep after reconnecting",
        Duration::from_secs(20),
        || container_link(&pm, &b, "eth1").is_some() && records(&s).len() == 1,
    );
    assert_eq!(
        d.log().matches("following the engine's events").count(),
        2,
        "{}",
        d.log()
    );
    // And it follows events again.
    podman(&pm, &["restart", "-t", "0", &a]);
    until("a again", Duration::from_secs(10), || {
        container_link(&pm, &a, "eth1").is_some() && records(&s).len() == 2
    });
}

/// A declared DHCP attachment: the same lease after a restart (the derived
/// MAC is the client's identity), released when the container stops.
#[test]
fn a_declared_dhcp_attachment_keeps_its_lease() {
    let mut s = Sandbox::new("recondhcp");
    let srv = DhcpServer::start(&mut s, "brdr", &ServerConfig::v4("10.82.0"));
    let mut pm = Podman::start(&s.prefix);
    let _d = Daemon::start(&s, &pm, &[], &[]);
    let name = format!("{}-dh", s.prefix);
    create(
        &mut pm,
        &name,
        &["pipework_cmd=brdr @CONTAINER_NAME@ dhcp".into()],
        &[],
    );
    podman(&pm, &["start", &name]);
    let bound = |pm: &Podman| {
        container_link(pm, &name, "eth1").is_some_and(|l| mac_and_v4(&l).1.starts_with("10.82.0."))
    };
    until("the lease", Duration::from_secs(20), || bound(&pm));
    let first = mac_and_v4(&container_link(&pm, &name, "eth1").unwrap());
    let pid = pm.pid(&name);
    podman(&pm, &["restart", "-t", "0", &name]);
    until(
        "the lease after the restart",
        Duration::from_secs(20),
        || pm.pid(&name) != pid && bound(&pm),
    );
    assert_eq!(
        mac_and_v4(&container_link(&pm, &name, "eth1").unwrap()),
        first
    );
    podman(&pm, &["stop", "-t", "0", &name]);
    until("the teardown", Duration::from_secs(10), || {
        records(&s).is_empty()
    });
    assert!(
        srv.wait_log("DHCPRELEASE", Duration::from_secs(10)),
        "{}",
        srv.log()
    );
    let leases = s.state_dir.join("leases");
    until("the lease files to go", Duration::from_secs(10), || {
        std::fs::read_dir(&leases).map(|r| r.count()).unwrap_or(0) == 0
    });
}

/// A declaration that cannot hold yet (its host interface is missing) is
/// tried again, with back-off, until it does.
#[test]
fn a_failed_attach_is_tried_again() {
    let s = Sandbox::new("reconretry");
    let mut pm = Podman::start(&s.prefix);
    let d = Daemon::start(&s, &pm, &[], &[]);
    let name = format!("{}-late", s.prefix);
    create(
        &mut pm,
        &name,
        &["pipework_cmd=nic4 @CONTAINER_NAME@ 10.81.0.2/24".into()],
        &[],
    );
    podman(&pm, &["start", &name]);
    d.wait_log("nic4", Duration::from_secs(10));
    assert!(container_link(&pm, &name, "eth1").is_none());
    s.fake_nic("nic4");
    until("the retry", Duration::from_secs(15), || {
        container_link(&pm, &name, "eth1").is_some()
    });
}

/// An Open vSwitch declaration: its port row and port-security flows exist
/// while the container runs, and OVS is as before once it stops.
#[test]
fn an_ovs_declaration_leaves_ovs_as_before() {
    let mut s = Sandbox::new("reconovs");
    let sw = OvsSwitch::start(&mut s);
    sw.add_bridge("ovsr");
    let show = sw.show();
    let flows = sw.flows("ovsr");
    let mut pm = Podman::start(&s.prefix);
    let _d = Daemon::start(&s, &pm, &[], &[]);
    let name = format!("{}-ovs", s.prefix);
    create(
        &mut pm,
        &name,
        &["pipework_cmd=ovsr @CONTAINER_NAME@ 10.80.0.2/24 @10 --port-security".into()],
        &[],
    );
    podman(&pm, &["start", &name]);
    until("the OVS port", Duration::from_secs(10), || {
        container_link(&pm, &name, "eth1").is_some() && sw.ports("ovsr").len() == 1
    });
    assert_ne!(sw.flows("ovsr"), flows, "port security adds flows");
    podman(&pm, &["stop", "-t", "0", &name]);
    until("OVS as before", Duration::from_secs(10), || {
        records(&s).is_empty() && sw.show() == show && sw.flows("ovsr") == flows
    });
    assert_eq!(host_veths(&s), 0);
}
