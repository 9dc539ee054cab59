//! Time from command to bound DHCP lease, against a real dnsmasq, median of
//! 20 runs, beside busybox `udhcpc -q` on the same server in the same run.
//!
//! Three numbers per run, each on a fresh guest namespace:
//! - `pipework <br> <guest> dhcp`: the whole attach (veth, rename, link up)
//!   plus the lease, returned only once it is bound and applied;
//! - `pipework <br> <guest> 0/0`: the same attach without DHCP, so the
//!   difference is what DHCP costs;
//! - `udhcpc -q -i eth1` on a link made beforehand, with a script that
//!   applies the address and default route (no resolv.conf: the guest shares
//!   the host's filesystem).
//!
//! dnsmasq runs with `--no-ping`: by default it pings every address before
//! offering it, which adds the same server-side wait to both clients and
//! hides what the clients themselves cost.
//!
//! Run as root: `cargo build -p pipework-cli --features fault-injection &&
//! cargo bench -p pipework-tests --bench dhcp`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pipework_tests::dhcp::{DhcpServer, ServerConfig};
use pipework_tests::{pipework_bin, Sandbox};

const RUNS: usize = 20;

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

fn timed(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let st = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("run");
    let d = t.elapsed();
    assert!(st.success(), "{cmd:?} failed");
    d
}

fn pipework(s: &Sandbox, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &s.host])
        .arg(pipework_bin())
        .args(args)
        .env("PIPEWORK_STATE_DIR", &s.state_dir);
    c
}

fn main() {
    if !pipework_tests::is_root() {
        eprintln!("bench dhcp: needs root (it creates network namespaces)");
        return;
    }
    let mut s = Sandbox::new("benchdhcp");
    let srv = DhcpServer::start(
        &mut s,
        "brb",
        &ServerConfig {
            extra: &["--no-ping"],
            ..ServerConfig::v4("10.90.0")
        },
    );
    let script = std::env::temp_dir().join(format!("{}-udhcpc.sh", s.prefix));
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\nip addr add \"$ip/${mask:-24}\" dev \"$interface\"\n\
         [ -n \"$router\" ] && ip route replace default via \"${router%% *}\" dev \"$interface\"\nexit 0\n",
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");

    let (mut native, mut link_only, mut udhcpc) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..RUNS {
        let g = s.guest(&format!("n{i}"));
        native.push(timed(&mut pipework(&s, &["brb", &g, "dhcp"])));
        timed(&mut pipework(&s, &["detach", &g]));

        let g = s.guest(&format!("l{i}"));
        link_only.push(timed(&mut pipework(&s, &["brb", &g, "0/0"])));

        let g = s.guest(&format!("u{i}"));
        timed(&mut pipework(&s, &["brb", &g, "0/0"]));
        udhcpc.push(timed(
            Command::new("ip")
                .args([
                    "netns", "exec", &g, "udhcpc", "-q", "-f", "-n", "-i", "eth1",
                ])
                .args(["-t", "5", "-T", "1", "-s"])
                .arg(&script)
                .stderr(Stdio::null()),
        ));
        // Give the address back so the pool does not run dry.
        let _ = Command::new("ip")
            .args([
                "netns", "exec", &g, "udhcpc", "-q", "-f", "-n", "-R", "-i", "eth1",
            ])
            .args(["-t", "1", "-T", "1", "-s", "/bin/true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let first = native[0];
    let (n, l, u) = (
        median(&mut native),
        median(&mut link_only),
        median(&mut udhcpc),
    );
    println!("dhcp: command to bound lease, against dnsmasq 2m leases (--no-ping), median of {RUNS} runs");
    println!("  pipework <br> <guest> dhcp        {:>8.1} ms  (whole attach + lease; first run, starting the daemon: {:.1} ms)", ms(n), ms(first));
    println!(
        "  pipework <br> <guest> 0/0         {:>8.1} ms  (the same attach without DHCP)",
        ms(l)
    );
    println!(
        "  => DHCP part of the native attach {:>8.1} ms",
        ms(n.saturating_sub(l))
    );
    println!("  udhcpc -q (busybox), link exists  {:>8.1} ms", ms(u));
    drop(srv);
    let _ = std::fs::remove_file(&script);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
