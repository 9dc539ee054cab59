//! The attach benchmark: one run, one set of tables (Markdown, for the
//! README), pipework beside the tool a user would otherwise pick, rounds
//! interleaved.
//!
//! `cargo bench -p pipework-tests --bench attach` (as root). Builds the
//! release binary both ways (dynamic as `cargo install` gives it, static
//! as the README's Install section does) unless `PIPEWORK_BIN_DYNAMIC` and
//! `PIPEWORK_BIN_STATIC` name them, then, in a private network namespace
//! that plays the host:
//! - latency of one attach and one detach at N = 1, 10, 100, 1000 ports on
//!   the bridge against iproute2's fastest route (`PIPEWORK_BENCH_SIZES`);
//! - CNI mode against the reference bridge plugin and netavark;
//! - bulk attach of 100 and 1000 guests with `pipework apply` (announcing,
//!   and with `--no-announce`, the script's work) against an iproute2
//!   script and separate commands (`PIPEWORK_BENCH_BULK`);
//! - system calls, netlink requests, processes, peak memory per attach and
//!   binary sizes, start-up alone, and what 0.6 of iproute2's route leaves
//!   pipework once started.
//!
//! Set a size list to an empty string to skip that part.

mod bulk;
mod cni;
mod common;
mod cost;
mod latency;

use std::path::PathBuf;
use std::process::Command;

fn sizes(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("the attach bench creates namespaces and links: run it as root");
        std::process::exit(2);
    }
    let latency_sizes = sizes("PIPEWORK_BENCH_SIZES", &[1, 10, 100, 1000]);
    let bulk_sizes = sizes("PIPEWORK_BENCH_BULK", &[100, 1000]);
    let bins = common::Bins::build();
    // The bench process and every child it starts live in a fresh namespace.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare a private host namespace");
    common::ip(&["link", "set", "lo", "up"]);
    let state = PathBuf::from(format!("/run/pipework-bench-{}", std::process::id()));
    let tag = format!("pwb{}", std::process::id());
    // The state directory on a tmpfs of its own, as `/run` is on any
    // Debian host (systemd and initscripts mount it so): on a machine whose
    // `/run` is a disk file system (this development machine: ext4), ext4's
    // inode allocation after many deletions (`recently_deleted`) cost
    // pipework a quarter of its kernel time, a cost no host has.
    std::fs::create_dir_all(&state).expect("bench state directory");
    common::mount_tmpfs(&state);
    // Whatever way the bench ends (a failed step panics), its namespaces
    // and state go: a failed run once left ~120 behind.
    let _cleanup = Cleanup {
        tag: tag.clone(),
        state: state.clone(),
    };
    let date = Command::new("date")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();

    println!("# pipework attach benchmark, {date}");
    println!();
    println!("{}", common::machine());
    println!();
    println!("- pipework dynamic: {}", bins.dynamic.display());
    println!("- pipework static: {}", bins.static_.display());
    println!();

    let (rows, leftover) = latency::run(&bins, &state.join("latency"), &tag, &latency_sizes);
    if !rows.is_empty() {
        latency::print(&bins, &rows);
    }
    cni::run_and_print(&bins.dynamic, &state.join("cni"), &tag, 21);
    if !bulk_sizes.is_empty() {
        let rounds = 3;
        let bulk = bulk::run(
            &bins.dynamic,
            &state.join("bulk"),
            &tag,
            &bulk_sizes,
            rounds,
        );
        bulk::print(&bulk, rounds);
    }
    let named = [
        ("pipework dynamic", bins.dynamic.clone()),
        ("pipework static", bins.static_.clone()),
    ];
    let (costs, startup) = cost::run(&named, &state.join("cost"), &tag);
    cost::print(&costs, &startup, &named, leftover);
    if !rows.is_empty() {
        latency::print_budget(&bins, &rows);
    }
}

/// Deletes the bench's namespaces (their names start with its tag) and its
/// state directory when dropped, also while a panic unwinds.
struct Cleanup {
    tag: String,
    state: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let names: Vec<String> = std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(&self.tag))
            .collect();
        if !names.is_empty() {
            let input: String = names.iter().map(|n| format!("netns del {n}\n")).collect();
            // Not `common::time_stdin`: nothing may panic while unwinding.
            if let Ok(mut child) = Command::new("ip")
                .args(["-batch", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()
            {
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = std::io::Write::write_all(&mut stdin, input.as_bytes());
                }
                let _ = child.wait();
            }
        }
        let _ = Command::new("umount").arg(&self.state).status();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
