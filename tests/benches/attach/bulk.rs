//! Bulk attach, as an HPC job starting hundreds of containers on a node:
//! `pipework apply` of one file naming N guests, against the fastest
//! iproute2 script for the same work (one `ip -batch` for every host side,
//! then one `ip -n G -batch -` per guest) and against N separate `pipework`
//! commands, rounds interleaved. Every round uses fresh namespaces. The
//! script sends no gratuitous ARP, so `apply --no-announce` (the same work
//! as the script) runs beside `apply` as pipework runs by default.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{
    addr, bridge, ip_veth_args, median, netns_batch, netns_delete_and_settle, time, time_stdin,
};

const LABELS: [&str; 4] = [
    "pipework apply",
    "apply --no-announce",
    "iproute2 script",
    "N pipework commands",
];

pub struct Row {
    pub n: usize,
    pub totals: [Vec<Duration>; 4],
}

/// `apply` onto bridge `brapply` (interface eth1), or with `--no-announce`
/// onto `brquiet` (eth4).
fn apply(bin: &Path, state: &Path, guests: &[String], announce: bool) -> Duration {
    // Beside the state directory, not in it: that is pipework's.
    let file = state.with_extension(if announce { "conf" } else { "quiet.conf" });
    std::fs::create_dir_all(state.parent().unwrap()).expect("bench directory");
    let (bridge, ifname, net, opt) = match announce {
        true => ("brapply", "eth1", 31, ""),
        false => ("brquiet", "eth4", 34, "--no-announce "),
    };
    let text: String = guests
        .iter()
        .enumerate()
        .map(|(i, g)| format!("{opt}{bridge} -i {ifname} netns:{g} {}\n", addr(net, i)))
        .collect();
    std::fs::write(&file, text).expect("write the apply file");
    let d = time(
        Command::new(bin)
            .arg("--state-dir")
            .arg(state)
            .arg("apply")
            .arg(&file),
    );
    let _ = std::fs::remove_file(&file);
    d
}

fn script(guests: &[String]) -> Duration {
    let host: String = guests
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut line = ip_veth_args(&format!("vs{i}"), "brscript", g).join(" ");
            line.push('\n');
            line
        })
        .collect();
    let t0 = Instant::now();
    time_stdin(Command::new("ip").args(["-batch", "-"]), &host);
    for (i, g) in guests.iter().enumerate() {
        time_stdin(
            Command::new("ip").args(["-n", g, "-batch", "-"]),
            &format!("addr add {} dev eth2\nlink set eth2 up\n", addr(32, i)),
        );
    }
    t0.elapsed()
}

fn separate(bin: &Path, state: &Path, guests: &[String]) -> Duration {
    let t0 = Instant::now();
    for (i, g) in guests.iter().enumerate() {
        time(Command::new(bin).arg("--state-dir").arg(state).args([
            "brsep",
            "-i",
            "eth3",
            g,
            &addr(33, i),
        ]));
    }
    t0.elapsed()
}

/// `rounds` rounds per size; in each, the three routes go in a rotating
/// order, each on its own bridge, into the same fresh namespaces.
pub fn run(bin: &Path, state: &Path, tag: &str, sizes: &[usize], rounds: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for &n in sizes {
        let mut row = Row {
            n,
            totals: [Vec::new(), Vec::new(), Vec::new(), Vec::new()],
        };
        for round in 0..rounds {
            for b in ["brapply", "brquiet", "brscript", "brsep"] {
                bridge(b);
            }
            let guests: Vec<String> = (0..n).map(|i| format!("{tag}-b{i}")).collect();
            netns_batch("add", &guests);
            let st = state.join(format!("bulk{n}-{round}"));
            for j in 0..4 {
                let which = (round + j) % 4;
                let d = match which {
                    0 => apply(bin, &st, &guests, true),
                    1 => apply(bin, &st, &guests, false),
                    2 => script(&guests),
                    _ => separate(bin, &st, &guests),
                };
                row.totals[which].push(d);
            }
            // Deleting the namespaces deletes every guest end, and with it
            // its host end; the records left are thrown away with the
            // round's state directory. The next round starts once the
            // kernel is done with that (4N links).
            netns_delete_and_settle(&guests);
            let _ = std::fs::remove_dir_all(&st);
        }
        rows.push(row);
    }
    rows
}

pub fn print(rows: &[Row], rounds: usize) {
    println!("## Bulk attach of N guests, total time (median of {rounds} rounds)");
    println!();
    println!(
        "| N | {} | {} | {} | {} | apply / script | --no-announce / script | apply / commands |",
        LABELS[0], LABELS[1], LABELS[2], LABELS[3]
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let m: Vec<f64> = r.totals.iter().map(|t| median(t)).collect();
        println!(
            "| {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.2} | {:.2} | {:.2} |",
            r.n,
            m[0],
            m[1],
            m[2],
            m[3],
            m[0] / m[2],
            m[1] / m[2],
            m[0] / m[3]
        );
    }
    println!();
}
