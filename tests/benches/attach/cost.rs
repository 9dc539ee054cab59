//! What one attach costs besides time: system calls and netlink requests
//! (counted with strace, following every thread and child), peak resident
//! memory (the kernel's `ru_maxrss` of the waited process, read by a small
//! Python parent), and the binaries' sizes as built and stripped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{addr, bridge, netns_batch};

/// Per route: (label, system calls, netlink requests, processes+threads
/// started, peak RSS in KiB of its largest process).
pub struct Cost {
    pub label: String,
    pub syscalls: u64,
    pub netlink: u64,
    pub clones: u64,
    pub rss_kib: u64,
}

/// The commands of one attach of guest `g` (index `i`) by each route.
fn commands(
    bins: &[(&str, PathBuf)],
    state: &Path,
    g: &str,
    i: usize,
) -> Vec<(String, Vec<Vec<String>>)> {
    let mut out: Vec<(String, Vec<Vec<String>>)> = bins
        .iter()
        .enumerate()
        .map(|(k, (label, bin))| {
            let cmd = vec![
                bin.display().to_string(),
                "--state-dir".into(),
                state.display().to_string(),
                "brcost".into(),
                "-i".into(),
                format!("eth{}", k + 4),
                g.into(),
                addr(40 + k as u8, i),
            ];
            (label.to_string(), vec![cmd])
        })
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    out.push((
        "iproute2 (2 processes)".into(),
        vec![
            s(&[
                "ip",
                "link",
                "add",
                &format!("vc{i}"),
                "mtu",
                "1500",
                "master",
                "brcost",
                "up",
                "type",
                "veth",
                "peer",
                "name",
                "eth2",
                "netns",
                g,
            ]),
            // The guest side's batch, from a file: strace must not count
            // the bench's pipe.
            s(&["ip", "-n", g, "-batch", "GUESTBATCH"]),
        ],
    ));
    out
}

/// strace's per-syscall summary of `cmd` (followed into threads and
/// children): (all calls, clone-like calls, netlink requests).
fn strace_counts(cmd: &[String]) -> (u64, u64, u64) {
    let summary = std::env::temp_dir().join(format!("pw-bench-strace-{}", std::process::id()));
    let trace = std::env::temp_dir().join(format!("pw-bench-trace-{}", std::process::id()));
    let ok = Command::new("strace")
        .args(["-f", "-qq", "-c", "-o"])
        .arg(&summary)
        .args(cmd)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "strace -c {cmd:?} failed");
    let text = std::fs::read_to_string(&summary).unwrap_or_default();
    let (mut total, mut clones) = (0u64, 0u64);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // "% time seconds usecs/call calls [errors] syscall"
        if f.len() >= 5 && f[0].parse::<f64>().is_ok() {
            let calls: u64 = f[3].parse().unwrap_or(0);
            let name = *f.last().unwrap();
            if name == "total" {
                total = calls;
            } else if matches!(name, "clone" | "clone3" | "fork" | "vfork") {
                clones += calls;
            }
        }
    }
    let _ = std::fs::remove_file(&summary);
    (total, clones, netlink_requests(cmd, &trace))
}

/// Messages sent on netlink sockets (route and generic netlink), counted
/// from a second, decoding trace (`-yy` names each socket's protocol).
fn netlink_requests(cmd: &[String], trace: &Path) -> u64 {
    let ok = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-yy",
            "-e",
            "trace=sendto,sendmsg,sendmmsg",
            "-o",
        ])
        .arg(trace)
        .args(cmd)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "strace {cmd:?} failed");
    let n = std::fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("NETLINK"))
        .count() as u64;
    let _ = std::fs::remove_file(trace);
    n
}

/// The peak resident set of `cmd`, in KiB.
fn peak_rss(cmd: &[String]) -> u64 {
    let out = Command::new("python3")
        .args([
            "-c",
            "import resource,subprocess,sys\n\
             r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL)\n\
             print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
        ])
        .args(cmd)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = text.split_whitespace();
    assert_eq!(f.next(), Some("0"), "{cmd:?} failed under python3");
    f.next().and_then(|x| x.parse().ok()).unwrap_or(0)
}

/// Measures each route on fresh guests (one for the counts, one for RSS).
pub fn run(bins: &[(&str, PathBuf)], state: &Path, tag: &str) -> Vec<Cost> {
    bridge("brcost");
    let guests: Vec<String> = (0..2).map(|i| format!("{tag}-c{i}")).collect();
    netns_batch("add", &guests);
    let batch = state.join("guest.batch");
    let mut costs: Vec<Cost> = Vec::new();
    for (i, g) in guests.iter().enumerate() {
        std::fs::create_dir_all(state).expect("state dir");
        std::fs::write(
            &batch,
            format!("addr add {} dev eth2\nlink set eth2 up\n", addr(39, i)),
        )
        .expect("write the guest batch");
        for (k, (label, cmds)) in commands(bins, state, g, i).into_iter().enumerate() {
            if costs.len() <= k {
                costs.push(Cost {
                    label,
                    syscalls: 0,
                    netlink: 0,
                    clones: 0,
                    rss_kib: 0,
                });
            }
            for mut cmd in cmds {
                for a in cmd.iter_mut().filter(|a| *a == "GUESTBATCH") {
                    *a = batch.display().to_string();
                }
                let c = &mut costs[k];
                if i == 0 {
                    let (all, clones, netlink) = strace_counts(&cmd);
                    c.syscalls += all;
                    c.clones += clones;
                    c.netlink += netlink;
                } else {
                    c.rss_kib = c.rss_kib.max(peak_rss(&cmd));
                }
            }
        }
    }
    let _ = std::fs::remove_file(&batch);
    netns_batch("del", &guests);
    costs
}

pub fn print(costs: &[Cost], bins: &[(&str, PathBuf)], leftover: usize) {
    println!("## Cost of one attach (strace -f; ru_maxrss)");
    println!();
    println!(
        "| route | system calls | netlink requests | processes + threads started | peak RSS |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for c in costs {
        println!(
            "| {} | {} | {} | {} | {:.1} MiB |",
            c.label,
            c.syscalls,
            c.netlink,
            c.clones,
            c.rss_kib as f64 / 1024.0
        );
    }
    println!();
    println!(
        "Processes of ours still running right after an attach returned (N = 1 rounds): {leftover}"
    );
    println!();
    println!("| binary | size as built | stripped |");
    println!("| --- | ---: | ---: |");
    for (label, bin) in bins {
        let built = std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0);
        let stripped = std::env::temp_dir().join(format!("pw-bench-strip-{}", std::process::id()));
        let ok = Command::new("strip")
            .arg("-o")
            .arg(&stripped)
            .arg(bin)
            .status()
            .is_ok_and(|s| s.success());
        let size = if ok {
            std::fs::metadata(&stripped).map(|m| m.len()).unwrap_or(0)
        } else {
            0
        };
        let _ = std::fs::remove_file(&stripped);
        println!(
            "| {label} | {:.1} MiB | {:.1} MiB |",
            built as f64 / 1048576.0,
            size as f64 / 1048576.0
        );
    }
    println!();
}
