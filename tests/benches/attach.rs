//! Attach/detach latency on a Linux bridge: pipework against iproute2 in three
//! processes (not its fastest: see the README), in the same run.
//!
//! `cargo bench -p pipework-tests --bench attach` (as root). For each N in
//! 1, 10, 100, 1000 (or `PIPEWORK_BENCH_SIZES=1,10`), N guest namespaces are
//! attached one by one to a bridge, each attach a separate `pipework`
//! process; alternately, the same guests get a second interface the iproute2
//! way: the veth peer created directly in the namespace with `ip -batch`,
//! then `ip -n` for the address and for link up. Then both are detached
//! (`pipework detach -i`, `ip link del`). N = 1 is 20 rounds of one attach
//! and one detach each way, taking turns at going first, so its median is
//! not a single sample. Everything runs in a private network namespace that
//! plays the host.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("the attach bench creates namespaces and links: run it as root");
        std::process::exit(2);
    }
    let sizes: Vec<usize> = std::env::var("PIPEWORK_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 10, 100, 1000]);
    let bin = pipework_release();
    // The bench process and every child it starts live in a fresh namespace.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare a private host namespace");
    quiet(Command::new("ip").args(["link", "set", "lo", "up"]));
    let state = PathBuf::from(format!("/run/pipework-bench-{}", std::process::id()));
    let tag = format!("pwb{}", std::process::id());

    println!("attach and detach latency on a Linux bridge, one process per operation");
    let how = if std::env::var_os("PIPEWORK_BIN").is_some() {
        "from PIPEWORK_BIN"
    } else {
        "release build, statically linked"
    };
    println!("pipework: {} ({how})", bin.display());
    println!("iproute2: ip -batch (veth peer created in the namespace) + ip -n addr add + ip -n link set up");
    println!("{}", machine());
    println!();
    println!(
        "{:>5} | {:>14} {:>9} | {:>14} {:>9} | {:>6} || {:>14} {:>9} | {:>14} {:>9}",
        "N",
        "attach median",
        "p95",
        "iproute2 med",
        "p95",
        "ratio",
        "detach median",
        "p95",
        "ip del med",
        "p95"
    );
    let mut ours_at_1 = None;
    for &n in &sizes {
        let r = if n == 1 {
            run_rounds(&bin, &state, &tag, 20)
        } else {
            run_n(&bin, &state, &tag, n)
        };
        let (am, ap) = stats(&r.attach);
        let (im, ip) = stats(&r.ip_attach);
        let (dm, dp) = stats(&r.detach);
        let (xm, xp) = stats(&r.ip_detach);
        println!(
            "{:>5} | {:>11.2} ms {:>6.2} ms | {:>11.2} ms {:>6.2} ms | {:>5.2}x || {:>11.2} ms {:>6.2} ms | {:>11.2} ms {:>6.2} ms",
            n, am, ap, im, ip, am / im, dm, dp, xm, xp
        );
        if n == 1 {
            ours_at_1 = Some(am);
        } else if let Some(one) = ours_at_1 {
            println!(
                "{:>5}   attach median at N={n} is {:.2}x the median at N=1",
                "",
                am / one
            );
        }
    }
    let _ = std::fs::remove_dir_all(&state);
}

struct Samples {
    attach: Vec<Duration>,
    ip_attach: Vec<Duration>,
    detach: Vec<Duration>,
    ip_detach: Vec<Duration>,
}

fn bridges() {
    for b in ["brours", "brip"] {
        let _ = Command::new("ip")
            .args(["link", "del", b])
            .stderr(Stdio::null())
            .status();
        quiet(Command::new("ip").args(["link", "add", b, "type", "bridge"]));
        quiet(Command::new("ip").args(["link", "set", b, "up"]));
    }
}

fn run_n(bin: &PathBuf, state: &PathBuf, tag: &str, n: usize) -> Samples {
    bridges();
    let guests: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    netns_batch("add", &guests);
    let mut s = Samples {
        attach: Vec::new(),
        ip_attach: Vec::new(),
        detach: Vec::new(),
        ip_detach: Vec::new(),
    };
    for (i, g) in guests.iter().enumerate() {
        s.attach.push(attach_ours(bin, state, g, i));
        s.ip_attach.push(attach_ip(g, i));
    }
    for (i, g) in guests.iter().enumerate() {
        s.detach.push(time(
            Command::new(bin)
                .args(["--state-dir"])
                .arg(state)
                .args(["detach", g, "-i", "eth1"]),
        ));
        s.ip_detach.push(time(Command::new("ip").args([
            "link",
            "del",
            &format!("vb{i}"),
        ])));
    }
    netns_batch("del", &guests);
    s
}

fn run_rounds(bin: &PathBuf, state: &PathBuf, tag: &str, rounds: usize) -> Samples {
    bridges();
    let g = format!("{tag}-solo");
    netns_batch("add", std::slice::from_ref(&g));
    let mut s = Samples {
        attach: Vec::new(),
        ip_attach: Vec::new(),
        detach: Vec::new(),
        ip_detach: Vec::new(),
    };
    // The kernel finishes a deletion in the background; whichever attach
    // comes right after one pays for it, so the two take turns going first.
    for round in 0..rounds {
        if round % 2 == 0 {
            s.attach.push(attach_ours(bin, state, &g, 0));
            s.ip_attach.push(attach_ip(&g, 0));
        } else {
            s.ip_attach.push(attach_ip(&g, 0));
            s.attach.push(attach_ours(bin, state, &g, 0));
        }
        let ours = || {
            time(
                Command::new(bin)
                    .args(["--state-dir"])
                    .arg(state)
                    .args(["detach", &g, "-i", "eth1"]),
            )
        };
        let ip = || time(Command::new("ip").args(["link", "del", "vb0"]));
        if round % 2 == 0 {
            s.detach.push(ours());
            s.ip_detach.push(ip());
        } else {
            s.ip_detach.push(ip());
            s.detach.push(ours());
        }
    }
    netns_batch("del", std::slice::from_ref(&g));
    s
}

fn addr(net: u8, i: usize) -> String {
    format!("10.{net}.{}.{}/16", i / 250, i % 250 + 1)
}

fn attach_ours(bin: &PathBuf, state: &PathBuf, guest: &str, i: usize) -> Duration {
    time(
        Command::new(bin)
            .arg("--state-dir")
            .arg(state)
            .args(["brours", guest, &addr(1, i)]),
    )
}

fn attach_ip(guest: &str, i: usize) -> Duration {
    let batch = format!(
        "link add vb{i} mtu 1500 type veth peer name eth2 netns {guest}\nlink set vb{i} master brip up\n"
    );
    let start = Instant::now();
    let mut c = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("ip -batch");
    use std::io::Write;
    c.stdin.take().unwrap().write_all(batch.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success(), "ip -batch failed");
    let a = addr(2, i);
    for args in [
        vec!["-n", guest, "addr", "add", &a, "dev", "eth2"],
        vec!["-n", guest, "link", "set", "eth2", "up"],
    ] {
        assert!(Command::new("ip").args(&args).status().unwrap().success());
    }
    start.elapsed()
}

fn time(c: &mut Command) -> Duration {
    let start = Instant::now();
    let st = c.stdout(Stdio::null()).status().expect("spawn");
    let d = start.elapsed();
    assert!(st.success(), "{c:?} failed");
    d
}

fn quiet(c: &mut Command) {
    assert!(
        c.stdout(Stdio::null()).status().expect("spawn").success(),
        "{c:?}"
    );
}

/// Creates or deletes many named namespaces with a single `ip` process.
fn netns_batch(verb: &str, names: &[String]) {
    let mut c = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("ip -batch");
    use std::io::Write;
    let mut input = String::new();
    for n in names {
        input.push_str(&format!("netns {verb} {n}\n"));
    }
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success());
}

/// (median, p95) in milliseconds.
fn stats(v: &[Duration]) -> (f64, f64) {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let pick = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    (pick(0.5), pick(0.95))
}

/// The binary the README's install section recommends: a release build
/// linked statically (`+crt-static`), which starts about 0.5 ms faster than
/// the dynamically linked one. `PIPEWORK_BIN` measures another.
fn pipework_release() -> PathBuf {
    if let Ok(p) = std::env::var("PIPEWORK_BIN") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let host = host_triple();
    // With an explicit --target, RUSTFLAGS reach only the target's crates,
    // not the proc-macros, which cannot be linked statically.
    let ok = Command::new(cargo)
        .current_dir(&root)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .args(["build", "--quiet", "--release", "-p", "pipework-cli"])
        .args(["--target", &host])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "cannot build the release binary");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    target.join(host).join("release/pipework")
}

fn host_triple() -> String {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host")
}

fn machine() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "kernel {}, {} cpus, load average {}",
        kernel.trim(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}
