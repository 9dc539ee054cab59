//! One attach at a time to a Linux bridge: pipework (both builds) against
//! iproute2's fastest route, rounds interleaved, at N = 1, 10, 100, 1000
//! ports on the bridge.
//!
//! The iproute2 route is two processes, the fewest it can do: one `ip link
//! add` creates the veth with the host end already a port of the bridge and
//! up and the peer inside the namespace under its final name (a single
//! `RTM_NEWLINK`); then `ip -n <ns> -batch -` adds the address and sets the
//! peer up. Both ends get one queue each way (`numtxqueues 1 numrxqueues
//! 1`), as pipework's veths do: without it the kernel creates a queue per
//! CPU and waits for two RCU grace periods cutting them down to one, a
//! wait pipework does not pay, so iproute2 is spared it too. One process
//! cannot do both: `ip -batch` takes no `-n` per line
//! (`netns exec` forks another `ip`), and the kernel refuses a veth peer
//! created up (`ENOTCONN`), so the guest side needs a second process in the
//! namespace.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{
    addr, bridge, ip_veth_args, median, netns_batch, netns_delete_and_settle, running, stats, time,
    time_cpu, time_stdin_cpu, Bins,
};

/// One way of attaching a guest, on its own bridge and guest interface.
#[derive(Clone)]
enum Route {
    Pipework {
        label: &'static str,
        bin: PathBuf,
        bridge: &'static str,
        ifname: &'static str,
        net: u8,
    },
    Iproute2,
}

const IP_BRIDGE: &str = "brip";

impl Route {
    fn label(&self) -> &'static str {
        match self {
            Route::Pipework { label, .. } => label,
            Route::Iproute2 => "iproute2",
        }
    }

    fn bridge(&self) -> &'static str {
        match self {
            Route::Pipework { bridge, .. } => bridge,
            Route::Iproute2 => IP_BRIDGE,
        }
    }

    /// Wall time and CPU time (all its processes) of one attach.
    fn attach(&self, state: &Path, guest: &str, i: usize) -> (Duration, Duration) {
        match self {
            Route::Pipework {
                bin,
                bridge,
                ifname,
                net,
                ..
            } => time_cpu(Command::new(bin).arg("--state-dir").arg(state).args([
                bridge,
                "-i",
                ifname,
                guest,
                &addr(*net, i),
            ])),
            Route::Iproute2 => {
                let host = format!("vb{i}");
                let a = addr(2, i);
                let guest_side = format!("addr add {a} dev eth2\nlink set eth2 up\n");
                let (w1, c1) =
                    time_cpu(Command::new("ip").args(ip_veth_args(&host, IP_BRIDGE, guest)));
                let (w2, c2) = time_stdin_cpu(
                    Command::new("ip").args(["-n", guest, "-batch", "-"]),
                    &guest_side,
                );
                (w1 + w2, c1 + c2)
            }
        }
    }

    /// CPU time of the route's program starting and exiting without doing
    /// anything (`--version`, `ip -V`): timed beside each attach, so that
    /// what an attach spends beyond its start-ups comes from one moment.
    fn startup_cpu(&self) -> Duration {
        match self {
            Route::Pipework { bin, .. } => time_cpu(Command::new(bin).arg("--version")).1,
            Route::Iproute2 => time_cpu(Command::new("ip").arg("-V")).1,
        }
    }

    /// How many start-ups one attach of the route pays.
    fn processes(&self) -> f64 {
        match self {
            Route::Pipework { .. } => 1.0,
            Route::Iproute2 => 2.0,
        }
    }

    fn detach(&self, state: &Path, guest: &str, i: usize) -> Duration {
        match self {
            Route::Pipework { bin, ifname, .. } => time(
                Command::new(bin)
                    .arg("--state-dir")
                    .arg(state)
                    .args(["detach", guest, "-i", ifname]),
            ),
            Route::Iproute2 => time(Command::new("ip").args(["link", "del", &format!("vb{i}")])),
        }
    }
}

pub struct Row {
    pub n: usize,
    /// Per route (in [`routes`]'s order): attach and detach samples.
    pub attach: Vec<Vec<Duration>>,
    /// CPU time (user + system) of each attach's processes.
    pub attach_cpu: Vec<Vec<Duration>>,
    /// CPU time of one start-up of the route's program, one per attach.
    pub startup_cpu: Vec<Vec<Duration>>,
    pub detach: Vec<Vec<Duration>>,
}

fn routes(bins: &Bins) -> Vec<Route> {
    vec![
        Route::Pipework {
            label: "pipework dynamic",
            bin: bins.dynamic.clone(),
            bridge: "brdyn",
            ifname: "eth1",
            net: 1,
        },
        Route::Pipework {
            label: "pipework static",
            bin: bins.static_.clone(),
            bridge: "brsta",
            ifname: "eth3",
            net: 3,
        },
        Route::Iproute2,
    ]
}

/// Runs every size; returns the rows and the most processes of ours seen
/// alive right after an attach returned.
pub fn run(bins: &Bins, state: &Path, tag: &str, sizes: &[usize]) -> (Vec<Row>, usize) {
    let routes = routes(bins);
    let mut rows = Vec::new();
    let mut leftover = 0;
    for &n in sizes {
        for r in &routes {
            bridge(r.bridge());
        }
        // N = 1: 21 rounds of one guest attached and detached, so that the
        // median is not one sample.
        let (guests, rounds): (Vec<String>, usize) = if n == 1 {
            (vec![format!("{tag}-solo")], 21)
        } else {
            ((0..n).map(|i| format!("{tag}-{i}")).collect(), 1)
        };
        netns_batch("add", &guests);
        let mut row = Row {
            n,
            attach: vec![Vec::new(); routes.len()],
            attach_cpu: vec![Vec::new(); routes.len()],
            startup_cpu: vec![Vec::new(); routes.len()],
            detach: vec![Vec::new(); routes.len()],
        };
        for round in 0..rounds {
            let mut pending = Vec::new();
            for (i, g) in guests.iter().enumerate() {
                let k = round + i;
                // Who goes first rotates: the kernel finishes deletions
                // and flood work in the background, and whoever comes
                // next pays for it.
                for j in 0..routes.len() {
                    let which = (k + j) % routes.len();
                    let r = &routes[which];
                    let (wall, cpu) = r.attach(state, g, i);
                    row.attach[which].push(wall);
                    row.attach_cpu[which].push(cpu);
                    row.startup_cpu[which].push(r.startup_cpu());
                    if n == 1 {
                        if let Route::Pipework { bin, .. } = r {
                            leftover = leftover.max(running(bin));
                        }
                    }
                }
                pending.push((i, g));
            }
            for (i, g) in pending {
                let k = round + i;
                for j in 0..routes.len() {
                    let which = (k + j) % routes.len();
                    row.detach[which].push(routes[which].detach(state, g, i));
                }
            }
        }
        netns_delete_and_settle(&guests);
        rows.push(row);
    }
    (rows, leftover)
}

pub fn print(bins: &Bins, rows: &[Row]) {
    let routes = routes(bins);
    println!("## Attach latency, one process per attach, one bridge per route");
    println!();
    println!(
        "iproute2: `ip link add vbI mtu 1500 numtxqueues 1 numrxqueues 1 master brip up type veth peer name eth2 numtxqueues 1 numrxqueues 1 netns G` + `ip -n G -batch -` (addr add; link set up)"
    );
    println!();
    ratio_table(&routes, rows, |r| &r.attach, true);
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        if first.n == 1 && last.n > 1 {
            print!("\nGrowth, median at N={} / median at N=1:", last.n);
            for (j, r) in routes.iter().enumerate() {
                print!(
                    " {} {:.2};",
                    r.label(),
                    median(&last.attach[j]) / median(&first.attach[j])
                );
            }
            println!();
        }
    }
    println!();
    println!(
        "CPU time per attach (median; user + system time of the route's processes, getrusage of reaped children):"
    );
    println!();
    ratio_table(&routes, rows, |r| &r.attach_cpu, false);
    println!();
    println!("## Detach latency (pipework detach -i; ip link del)");
    println!();
    print!("| N |");
    for r in &routes {
        print!(" {} median |", r.label());
    }
    println!();
    print!("| ---: |");
    for _ in &routes {
        print!(" ---: |");
    }
    println!();
    for row in rows {
        print!("| {} |", row.n);
        for s in &row.detach {
            print!(" {:.2} ms |", median(s));
        }
        println!();
    }
    println!();
}

/// One row per N: each route's median (and p95 when `p95`) of the samples
/// `pick` chooses, then both builds' medians over iproute2's.
fn ratio_table(
    routes: &[Route],
    rows: &[Row],
    pick: impl Fn(&Row) -> &Vec<Vec<Duration>>,
    p95: bool,
) {
    let (head, rule) = if p95 {
        (" median | p95 |", " ---: | ---: |")
    } else {
        (" |", " ---: |")
    };
    print!("| N |");
    for r in routes {
        print!(" {}{head}", r.label());
    }
    println!(" dynamic / iproute2 | static / iproute2 |");
    print!("| ---: |");
    for _ in routes {
        print!("{rule}");
    }
    println!(" ---: | ---: |");
    for row in rows {
        let samples = pick(row);
        print!("| {} |", row.n);
        for s in samples {
            let (m, p) = stats(s);
            if p95 {
                print!(" {m:.2} ms | {p:.2} ms |");
            } else {
                print!(" {m:.2} ms |");
            }
        }
        let ip = median(&samples[2]);
        println!(
            " {:.2} | {:.2} |",
            median(&samples[0]) / ip,
            median(&samples[1]) / ip
        );
    }
}

/// The arithmetic of the 0.6 target, in CPU time: what 0.6 of iproute2's
/// route leaves pipework after its own start-up, beside what iproute2's
/// route spends beyond its two start-ups (its requests: the same veth,
/// address and link-up) and what each pipework build spends beyond its one.
/// Start-ups are the ones timed beside the same size's attaches.
pub fn print_budget(bins: &Bins, rows: &[Row]) {
    let routes = routes(bins);
    println!("## What 0.6 of iproute2 leaves (CPU, medians of the same rounds)");
    println!();
    println!(
        "Start-up: the route's program run with `--version` (`ip -V`) beside each attach; an attach's own work: its CPU time less its start-ups (two for iproute2)."
    );
    println!();
    print!("| N | iproute2 route | `ip -V` |");
    for r in &routes[..2] {
        print!(" {} `--version` |", r.label());
    }
    print!(" iproute2's own work |");
    for r in &routes[..2] {
        print!(" {}'s own work |", r.label());
    }
    println!(" 0.6 x route - dynamic's start-up |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        let start: Vec<f64> = row.startup_cpu.iter().map(|s| median(s)).collect();
        let work: Vec<f64> = routes
            .iter()
            .enumerate()
            .map(|(j, r)| median(&row.attach_cpu[j]) - r.processes() * start[j])
            .collect();
        let ip = median(&row.attach_cpu[2]);
        println!(
            "| {} | {ip:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            row.n,
            start[2],
            start[0],
            start[1],
            work[2],
            work[0],
            work[1],
            0.6 * ip - start[0],
        );
    }
    println!();
}
