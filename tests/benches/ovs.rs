//! Per-attach latency to an Open vSwitch bridge with a VLAN tag, for
//! N = 1, 10, 100, 1000 attachments on one bridge (median and p95 of the N),
//! with pipework and, in the same run, with the command-line route the
//! original takes: `ip link add ... type veth`, `ip link set up`,
//! `ovs-vsctl add-port <br> <veth> tag=10`, then `ip` inside the guest for
//! the name, address and link.
//!
//! Run as root: `cargo bench -p pipework-tests --bench ovs` (after building
//! the CLI). `PIPEWORK_BENCH_N=1,10` picks other sizes. Each route and size
//! gets a fresh sandbox with private ovsdb-server/ovs-vswitchd (userspace
//! datapath) and a new bridge. Both routes run from inside the sandbox's
//! host namespace, entered by this process, so neither pays for
//! `ip netns exec`.

use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pipework_tests::ovs::OvsSwitch;
use pipework_tests::{pipework_bin, Sandbox};

const BRIDGE: &str = "ovsbench";

fn sh(cmd: &mut Command) {
    let st = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("spawn");
    assert!(st.success(), "{cmd:?} failed");
}

fn address(i: usize) -> String {
    format!("10.90.{}.{}/16", i / 250, i % 250 + 2)
}

/// Enters the sandbox's host namespace for the duration of `f`.
fn in_host<T>(s: &Sandbox, f: impl FnOnce() -> T) -> T {
    let me = std::fs::File::open("/proc/self/ns/net").unwrap();
    let host = std::fs::File::open(format!("/run/netns/{}", s.host)).unwrap();
    nix::sched::setns(host.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    let r = f();
    nix::sched::setns(me.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    r
}

/// The binary to measure: `PIPEWORK_BIN`, else a release build if there is
/// one (what users install), else the debug build the tests use.
fn product() -> std::path::PathBuf {
    if std::env::var_os("PIPEWORK_BIN").is_none() {
        let release = pipework_bin().with_file_name("pipework");
        let release = release
            .parent()
            .and_then(|d| d.parent())
            .map(|t| t.join("release/pipework"))
            .unwrap_or(release);
        if release.exists() {
            return release;
        }
    }
    pipework_bin()
}

fn pipework_route(n: usize) -> Vec<Duration> {
    let mut s = Sandbox::new("benchpw");
    let sw = OvsSwitch::start(&mut s);
    sw.add_bridge(BRIDGE);
    let guests: Vec<String> = (0..n).map(|i| s.guest(&format!("g{i}"))).collect();
    let bin = product();
    let env = s.env.clone();
    let state = s.state_dir.clone();
    in_host(&s, || {
        guests
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let mut c = Command::new(&bin);
                c.args([BRIDGE, g, &address(i), "@10"]);
                c.env("PIPEWORK_STATE_DIR", &state);
                for (k, v) in &env {
                    c.env(k, v);
                }
                let t = Instant::now();
                sh(&mut c);
                t.elapsed()
            })
            .collect()
    })
}

fn command_line_route(n: usize) -> Vec<Duration> {
    let mut s = Sandbox::new("benchcli");
    let sw = OvsSwitch::start(&mut s);
    sw.add_bridge(BRIDGE);
    let guests: Vec<String> = (0..n).map(|i| s.guest(&format!("g{i}"))).collect();
    let db = sw.db();
    in_host(&s, || {
        guests
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let host = format!("vb{i}");
                let t = Instant::now();
                sh(Command::new("ip").args([
                    "link", "add", &host, "mtu", "1500", "type", "veth", "peer", "name", "eth1",
                    "netns", g,
                ]));
                sh(Command::new("ip").args(["link", "set", &host, "up"]));
                sh(Command::new("ovs-vsctl")
                    .arg(format!("--db={db}"))
                    .args(["add-port", BRIDGE, &host, "tag=10"]));
                sh(Command::new("ip").args(["-n", g, "addr", "add", &address(i), "dev", "eth1"]));
                sh(Command::new("ip").args(["-n", g, "link", "set", "eth1", "up"]));
                t.elapsed()
            })
            .collect()
    })
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| ms(v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]);
    (p(0.5), p(0.95))
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let sizes: Vec<usize> = std::env::var("PIPEWORK_BENCH_N")
        .unwrap_or_else(|_| "1,10,100,1000".into())
        .split(',')
        .map(|x| x.trim().parse().expect("PIPEWORK_BENCH_N: numbers"))
        .collect();
    println!(
        "per-attach latency to an OVS bridge, VLAN tag 10 (userspace datapath); pipework = {}",
        product().display()
    );
    println!(
        "{:>5}  {:>16} {:>9}  {:>16} {:>9}  {:>7}",
        "N", "pipework median", "p95", "ip+vsctl median", "p95", "ratio"
    );
    for n in sizes {
        let (pm, pp) = stats(pipework_route(n));
        let (cm, cp) = stats(command_line_route(n));
        println!(
            "{n:>5}  {pm:>13.2} ms {pp:>6.2} ms  {cm:>13.2} ms {cp:>6.2} ms  {:>7.2}",
            pm / cm
        );
    }
}
