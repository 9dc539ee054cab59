//! What every part of the bench shares: the binaries under test, timing one
//! process, statistics, namespaces in bulk, the machine's description.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The two builds of pipework a user may run: `cargo install` gives the
/// dynamically linked one, the README's Install section the static one.
pub struct Bins {
    pub dynamic: PathBuf,
    pub static_: PathBuf,
}

impl Bins {
    /// Builds both (release profile), unless `PIPEWORK_BIN_DYNAMIC` and
    /// `PIPEWORK_BIN_STATIC` name binaries already built.
    pub fn build() -> Bins {
        let root = workspace_root();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        let dynamic = std::env::var("PIPEWORK_BIN_DYNAMIC")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                let ok = Command::new(&cargo)
                    .current_dir(&root)
                    .args([
                        "build",
                        "--quiet",
                        "--locked",
                        "--release",
                        "-p",
                        "pipework-cli",
                    ])
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                assert!(ok, "cannot build the release binary");
                target.join("release/pipework")
            });
        let static_ = std::env::var("PIPEWORK_BIN_STATIC")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                let host = host_triple();
                // With an explicit --target, RUSTFLAGS reach only the
                // target's crates, not the proc-macros, which cannot be
                // linked statically.
                let ok = Command::new(&cargo)
                    .current_dir(&root)
                    .env("RUSTFLAGS", "-C target-feature=+crt-static")
                    .args([
                        "build",
                        "--quiet",
                        "--locked",
                        "--release",
                        "-p",
                        "pipework-cli",
                    ])
                    .args(["--target", &host])
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                assert!(ok, "cannot build the static release binary");
                target.join(host).join("release/pipework")
            });
        Bins { dynamic, static_ }
    }
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
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

/// Wall time of one process, from spawn to exit; it must succeed.
pub fn time(c: &mut Command) -> Duration {
    time_cpu(c).0
}

/// The CPU time (user + system) of every child reaped so far, this
/// process's included descendants: `getrusage(RUSAGE_CHILDREN)`.
fn children_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(Duration::ZERO, |ru| {
        let tv = |t: nix::sys::time::TimeVal| {
            Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000)
        };
        tv(ru.user_time()) + tv(ru.system_time())
    })
}

/// iproute2's host-side command of an attach: the veth with its host end
/// `host` a port of `bridge` and up, its peer `eth2` created in `guest`,
/// both ends with one queue each way (as pipework makes them; see
/// `latency.rs`).
pub fn ip_veth_args(host: &str, bridge: &str, guest: &str) -> Vec<String> {
    let one_queue = ["numtxqueues", "1", "numrxqueues", "1"];
    let mut v: Vec<&str> = vec!["link", "add", host, "mtu", "1500"];
    v.extend(one_queue);
    v.extend([
        "master", bridge, "up", "type", "veth", "peer", "name", "eth2",
    ]);
    v.extend(one_queue);
    v.extend(["netns", guest]);
    v.into_iter().map(String::from).collect()
}

/// Like [`time`], also returning the CPU time the command's processes
/// used (user and system, from the kernel's accounting of reaped children:
/// exact, unlike a sampling profiler's).
pub fn time_cpu(c: &mut Command) -> (Duration, Duration) {
    let cpu0 = children_cpu();
    let start = Instant::now();
    let out = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("spawn");
    let d = start.elapsed();
    let cpu = children_cpu().saturating_sub(cpu0);
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (d, cpu)
}

pub fn time_stdin(c: &mut Command, input: &str) -> Duration {
    time_stdin_cpu(c, input).0
}

/// [`time_stdin`] with the CPU time, as [`time_cpu`].
pub fn time_stdin_cpu(c: &mut Command, input: &str) -> (Duration, Duration) {
    let cpu0 = children_cpu();
    let start = Instant::now();
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let d = start.elapsed();
    let cpu = children_cpu().saturating_sub(cpu0);
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (d, cpu)
}

pub fn quiet(c: &mut Command) {
    let out = c.stdout(Stdio::null()).output().expect("spawn");
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private tmpfs (mode 0700, as pipework wants its state directory) on
/// `dir`.
pub fn mount_tmpfs(dir: &Path) {
    quiet(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0700", "pipework-bench"])
            .arg(dir),
    );
}

pub fn ip(args: &[&str]) {
    quiet(Command::new("ip").args(args));
}

/// Creates or deletes many named namespaces with a single `ip` process.
pub fn netns_batch(verb: &str, names: &[String]) {
    let input: String = names
        .iter()
        .map(|n| format!("netns {verb} {n}\n"))
        .collect();
    time_stdin(Command::new("ip").args(["-batch", "-"]), &input);
}

/// Deletes the namespaces, then waits until the kernel has torn down the
/// links that were in them: no veth left in the (private) host namespace,
/// every host end having gone with its guest end, then one more second
/// (at most 180 s in all). A namespace's teardown runs in the background
/// after `ip netns del` returns and takes the lock every link change
/// takes: whatever is timed next pays for it. Without the wait, the
/// 1000-guest iproute2 script took 14 s in one round and 31 s in another.
pub fn netns_delete_and_settle(names: &[String]) {
    netns_batch("del", names);
    let t0 = Instant::now();
    loop {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "type", "veth"])
            .output()
            .expect("ip link show");
        if out.stdout.is_empty() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(180) {
            eprintln!("bench: veths still in the host namespace after 180 s; going on");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
}

/// A fresh bridge, up (deleted first if an earlier size left it).
pub fn bridge(name: &str) {
    let _ = Command::new("ip")
        .args(["link", "del", name])
        .stderr(Stdio::null())
        .status();
    ip(&["link", "add", name, "type", "bridge"]);
    ip(&["link", "set", name, "up"]);
}

/// An address of guest `i` in `10.<net>.0.0/16`.
pub fn addr(net: u8, i: usize) -> String {
    format!("10.{net}.{}.{}/16", i / 250, i % 250 + 1)
}

/// (median, p95) in milliseconds.
pub fn stats(v: &[Duration]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let pick = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    (pick(0.5), pick(0.95))
}

pub fn median(v: &[Duration]) -> f64 {
    stats(v).0
}

/// Processes still running `bin`: what of ours outlived a command.
pub fn running(bin: &Path) -> usize {
    let Ok(want) = std::fs::canonicalize(bin) else {
        return 0;
    };
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .filter(|e| std::fs::read_link(e.path().join("exe")).is_ok_and(|x| x == want))
                .count()
        })
        .unwrap_or(0)
}

pub fn machine() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let ip = Command::new("ip")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "kernel {}, {} cpus ({cpu}), load average {}; {ip}",
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
