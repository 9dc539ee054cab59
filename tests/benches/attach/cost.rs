//! What one attach costs besides time: system calls and netlink requests
//! (counted with strace, following every thread and child), peak resident
//! memory (the kernel's `ru_maxrss` of the largest process, through GNU
//! `time`), page faults (its `ru_minflt`, summed over the route's
//! processes), and the binaries' sizes as built and stripped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{
    addr, bridge, ip_veth_args, median, netns_batch, netns_delete_and_settle, time_cpu,
};

/// Per route: (label, system calls, netlink requests, processes+threads
/// started, peak RSS in KiB of its largest process, page faults).
pub struct Cost {
    pub label: String,
    pub syscalls: u64,
    pub netlink: u64,
    pub clones: u64,
    pub rss_kib: u64,
    pub faults: u64,
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
    // What an attach costs without its announcement (no wait for the
    // port either: see the bridge driver's `after_up`).
    if let Some((label, bin)) = bins.first() {
        let cmd = vec![
            bin.display().to_string(),
            "--no-announce".into(),
            "--state-dir".into(),
            state.display().to_string(),
            "brcost".into(),
            "-i".into(),
            "eth9".into(),
            g.into(),
            addr(49, i),
        ];
        out.push((format!("{label}, --no-announce"), vec![cmd]));
    }
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    out.push((
        "iproute2 (2 processes)".into(),
        vec![
            [
                vec!["ip".to_string()],
                ip_veth_args(&format!("vc{i}"), "brcost", g),
            ]
            .concat(),
            // The guest side's batch, from a file: strace must not count
            // the bench's pipe.
            s(&["ip", "-n", g, "-batch", "GUESTBATCH"]),
        ],
    ));
    out
}

/// One decoding trace of `cmd` (followed into threads and children; `-yy`
/// names each socket's protocol): (all calls, clone-like calls, messages
/// sent on netlink sockets). One run only: a second run of the same attach
/// would be an extend of what the first made.
fn strace_counts(cmd: &[String]) -> (u64, u64, u64) {
    let trace = std::env::temp_dir().join(format!("pw-bench-trace-{}", std::process::id()));
    let ok = Command::new("strace")
        .args(["-f", "-qq", "-yy", "-o"])
        .arg(&trace)
        .args(cmd)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "strace {cmd:?} failed");
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    let _ = std::fs::remove_file(&trace);
    let (mut total, mut clones, mut netlink) = (0u64, 0u64, 0u64);
    for line in text.lines() {
        // "PID name(args) = result"; a call split by another thread's is
        // counted at its "unfinished" half, not at its "resumed" one.
        let call = line
            .split_once(' ')
            .map_or(line, |(_, rest)| rest)
            .trim_start();
        if call.starts_with("<...") || call.starts_with("+++") || call.starts_with("---") {
            continue;
        }
        let Some((name, _)) = call.split_once('(') else {
            continue;
        };
        total += 1;
        match name {
            "clone" | "clone3" | "fork" | "vfork" => clones += 1,
            "sendto" | "sendmsg" | "sendmmsg" if call.contains("NETLINK") => netlink += 1,
            _ => {}
        }
    }
    (total, clones, netlink)
}

/// The peak resident set of `cmd`, in KiB, and its minor page faults, as
/// GNU time reports them (the `time` package). Not through a Python or Rust
/// parent: the kernel counts the parent's resident pages as the child's
/// high-water mark up to its exec, so every command then "used" the
/// parent's size. Page faults are most of what a start costs besides the
/// exec itself (each several microseconds in a VM): the mapping of the code
/// as it runs, the relocated data, the heap and the stack.
fn peak_rss_faults(cmd: &[String]) -> (u64, u64) {
    let out = std::env::temp_dir().join(format!("pw-bench-rss-{}", std::process::id()));
    let ok = Command::new("/usr/bin/time")
        .args(["-f", "%M %R", "-o"])
        .arg(&out)
        .args(cmd)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "/usr/bin/time {cmd:?} failed (apt-get install time)");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let mut last = text.lines().last().unwrap_or("").split_whitespace();
    let mut next = || last.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    (next(), next())
}

/// Start-up and exit alone, per command: (label, wall samples, CPU samples).
pub type Startup = Vec<(String, Vec<std::time::Duration>, Vec<std::time::Duration>)>;

/// Measures each route on fresh guests (one for the counts, one for RSS),
/// then start-up alone.
pub fn run(bins: &[(&str, PathBuf)], state: &Path, tag: &str) -> (Vec<Cost>, Startup) {
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
                    faults: 0,
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
                    let (kib, faults) = peak_rss_faults(&cmd);
                    c.rss_kib = c.rss_kib.max(kib);
                    c.faults += faults;
                }
            }
        }
    }
    let _ = std::fs::remove_file(&batch);
    netns_delete_and_settle(&guests);
    (costs, startup(bins))
}

/// Start-up and exit alone: each build's `--version`, `ip -V` and
/// `/bin/true`, 200 runs each, interleaved. What every attach pays before
/// its first change, and the iproute2 route twice.
fn startup(bins: &[(&str, PathBuf)]) -> Startup {
    let mut cmds: Vec<(String, Vec<String>)> = bins
        .iter()
        .map(|(label, bin)| {
            (
                format!("{label} --version"),
                vec![bin.display().to_string(), "--version".into()],
            )
        })
        .collect();
    cmds.push(("ip -V".into(), vec!["ip".into(), "-V".into()]));
    cmds.push(("/bin/true".into(), vec!["/bin/true".into()]));
    let mut out: Vec<_> = cmds
        .iter()
        .map(|(l, _)| (l.clone(), Vec::new(), Vec::new()))
        .collect();
    for round in 0..200 {
        for j in 0..cmds.len() {
            let k = (round + j) % cmds.len();
            let (wall, cpu) = time_cpu(Command::new(&cmds[k].1[0]).args(&cmds[k].1[1..]));
            out[k].1.push(wall);
            out[k].2.push(cpu);
        }
    }
    out
}

pub fn print(costs: &[Cost], startup: &Startup, bins: &[(&str, PathBuf)], leftover: usize) {
    println!(
        "## Cost of one attach (strace -f; GNU time's maximum resident set and minor page faults)"
    );
    println!();
    println!(
        "| route | system calls | netlink requests | processes + threads started | peak RSS | page faults |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for c in costs {
        println!(
            "| {} | {} | {} | {} | {:.1} MiB | {} |",
            c.label,
            c.syscalls,
            c.netlink,
            c.clones,
            c.rss_kib as f64 / 1024.0,
            c.faults
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
    println!("Start-up and exit alone (200 runs each, interleaved; medians; CPU: user + system of the process):");
    println!();
    println!("| command | wall | CPU |");
    println!("| --- | ---: | ---: |");
    for (label, wall, cpu) in startup {
        println!(
            "| {label} | {:.2} ms | {:.2} ms |",
            median(wall),
            median(cpu)
        );
    }
    println!();
}
