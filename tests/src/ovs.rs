//! A private Open vSwitch for one test: `ovsdb-server` and `ovs-vswitchd`
//! (userspace datapath) started inside the sandbox's host namespace, in a
//! temporary directory, and killed by [`OvsSwitch`]'s `Drop`, pass or fail.
//!
//! Running `ovs-vswitchd` inside the sandbox puts the tap devices it makes
//! (`ovs-netdev`, one per bridge) there too, so they vanish with the
//! namespace. `ovs-vsctl` and `ovs-ofctl` are only witnesses here: pipework
//! itself runs with a `PATH` that holds `ip` and nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{must, run, Sandbox};

/// The schema file Debian's openvswitch-common installs.
pub const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// The TCP port ovsdb-server also listens on, on the sandbox's loopback.
pub const TCP_PORT: u16 = 6640;

pub struct OvsSwitch {
    pub dir: PathBuf,
    /// The sandbox host namespace the daemons run in.
    pub netns: String,
}

fn pid_of(file: &Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

fn kill_and_wait(pid: i32) {
    let alive = || Path::new(&format!("/proc/{pid}")).exists();
    crate::kill(pid, libc::SIGTERM);
    let t = Instant::now();
    while alive() && t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive() {
        crate::kill(pid, libc::SIGKILL);
    }
}

impl OvsSwitch {
    /// Starts both daemons in `s`'s host namespace and points the sandbox's
    /// pipework runs at them (with a `PATH` that has no OVS tools).
    pub fn start(s: &mut Sandbox) -> OvsSwitch {
        let dir = std::env::temp_dir().join(format!("{}-ovs", s.prefix));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sw = OvsSwitch {
            dir: dir.clone(),
            netns: s.host.clone(),
        };
        must(
            Command::new("ovsdb-tool")
                .arg("create")
                .arg(dir.join("conf.db"))
                .arg(SCHEMA),
        );
        sw.start_ovsdb();
        sw.vsctl(&["--no-wait", "init"]);
        sw.start_vswitchd();
        // Only `ip` on the PATH of pipework runs: proof that the product
        // never execs an OVS tool.
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("ip");
        std::os::unix::fs::symlink(ip, bin.join("ip")).unwrap();
        s.env.push(("PATH".into(), bin.display().to_string()));
        s.env.push(("PIPEWORK_OVSDB".into(), sw.db()));
        s.env
            .push(("PIPEWORK_OVS_RUNDIR".into(), dir.display().to_string()));
        sw
    }

    /// (Re)starts ovsdb-server on the same database.
    pub fn start_ovsdb(&self) {
        let d = self.dir.display();
        must(
            Command::new("ip")
                .args(["netns", "exec", &self.netns, "ovsdb-server"])
                .arg(self.dir.join("conf.db"))
                .arg(format!("--remote=punix:{d}/db.sock"))
                .arg(format!("--remote=ptcp:{TCP_PORT}:127.0.0.1"))
                .arg(format!("--unixctl={d}/ovsdb.ctl"))
                .arg(format!("--pidfile={d}/ovsdb.pid"))
                .arg(format!("--log-file={d}/ovsdb.log"))
                .args(["--detach", "--no-chdir", "-vconsole:off"]),
        );
    }

    /// (Re)starts ovs-vswitchd on the same database.
    pub fn start_vswitchd(&self) {
        let d = self.dir.display();
        must(
            Command::new("ip")
                .args(["netns", "exec", &self.netns, "ovs-vswitchd"])
                .arg(format!("unix:{d}/db.sock"))
                .arg(format!("--pidfile={d}/vswitchd.pid"))
                .arg(format!("--unixctl={d}/vswitchd.ctl"))
                .arg(format!("--log-file={d}/vswitchd.log"))
                .args(["--detach", "--no-chdir", "-vconsole:off"])
                .env("OVS_RUNDIR", &self.dir),
        );
    }

    /// Stops ovs-vswitchd (SIGTERM, as an upgrade would) and starts it
    /// again: OVSDB keeps every row, the bridges lose every flow.
    pub fn restart_vswitchd(&self) {
        if let Some(p) = pid_of(&self.dir.join("vswitchd.pid")) {
            kill_and_wait(p);
        }
        self.start_vswitchd();
    }

    /// Kills ovsdb-server at once (SIGKILL), as a crash would.
    pub fn crash_ovsdb(&self) {
        if let Some(p) = pid_of(&self.dir.join("ovsdb.pid")) {
            crate::kill(p, libc::SIGKILL);
            while Path::new(&format!("/proc/{p}")).exists() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    pub fn ovsdb_pidfile(&self) -> PathBuf {
        self.dir.join("ovsdb.pid")
    }

    /// `unix:<dir>/db.sock`
    pub fn db(&self) -> String {
        format!("unix:{}/db.sock", self.dir.display())
    }

    /// `ovs-vsctl` as a witness (absolute path: usable from fault hooks).
    pub fn vsctl_cmd(&self) -> String {
        format!("/usr/bin/ovs-vsctl --db={} --timeout=10", self.db())
    }

    pub fn vsctl(&self, args: &[&str]) -> String {
        must(
            Command::new("ovs-vsctl")
                .arg(format!("--db={}", self.db()))
                .arg("--timeout=10")
                .args(args),
        )
    }

    /// A bridge made by hand, as an administrator would, with the
    /// userspace datapath.
    pub fn add_bridge(&self, name: &str) {
        self.vsctl(&[
            "add-br",
            name,
            "--",
            "set",
            "bridge",
            name,
            "datapath_type=netdev",
        ]);
    }

    /// `ovs-vsctl show` without the database UUID line.
    pub fn show(&self) -> String {
        self.vsctl(&["show"])
            .lines()
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `ovs-ofctl dump-flows --no-stats`, sorted; empty if the bridge is gone.
    pub fn flows(&self, bridge: &str) -> Vec<String> {
        let sock = self.dir.join(format!("{bridge}.mgmt"));
        let o = run(Command::new("ovs-ofctl")
            .args(["--no-stats", "dump-flows"])
            .arg(format!("unix:{}", sock.display())));
        if !o.status.success() {
            return Vec::new();
        }
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with("NXST") && !l.starts_with("OFPST"))
            .map(|l| l.trim().to_string())
            .collect();
        v.sort();
        v
    }

    /// One column of one row, as `ovs-vsctl get` prints it.
    pub fn get(&self, table: &str, row: &str, column: &str) -> String {
        self.vsctl(&["get", table, row, column]).trim().to_string()
    }

    pub fn ports(&self, bridge: &str) -> Vec<String> {
        self.vsctl(&["list-ports", bridge])
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for OvsSwitch {
    fn drop(&mut self) {
        for f in ["vswitchd.pid", "ovsdb.pid"] {
            if let Some(p) = pid_of(&self.dir.join(f)) {
                kill_and_wait(p);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `f` until it holds or `timeout` passes; returns its last answer.
/// ovs-vswitchd applies OVSDB changes (deleting a bridge's tap device, say)
/// a moment after the transaction.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
