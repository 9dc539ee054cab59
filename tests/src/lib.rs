//! Test harness: real network namespaces, the real `pipework` binary, and
//! independent witnesses (`ip -j`, `ping`).
//!
//! Every test gets a [`Sandbox`]: a fresh network namespace that plays the
//! host (pipework runs inside it through `ip netns exec`), guest namespaces
//! around it, and a private state directory. Dropping the sandbox deletes the
//! namespaces, which takes every link inside them along, so nothing outlives a
//! test even when it fails half-way.
//!
//! Owns: fixtures (namespaces, OVS, dnsmasq, Podman, LXC) and witnesses.
//! Must not: read pipework's own state to prove behaviour (a witness is
//! independent: `ip -j`, `ovs-vsctl`, traffic), or use `unsafe`.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

pub mod arpwatch;
pub mod dhcp;
pub mod hw;
pub mod lxc;
pub mod ovs;
pub mod podman;
pub mod rawframe;
pub mod wire;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A number unique within this test process, for file and object names.
pub fn next_seq() -> u32 {
    SEQ.fetch_add(1, Ordering::SeqCst)
}

/// The binary under test: `PIPEWORK_BIN`, else `target/debug/pipework`.
pub fn pipework_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PIPEWORK_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let p = target.join("debug/pipework");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p pipework-cli --features fault-injection` first (tests/host does)",
        p.display()
    );
    p
}

/// Runs a command, panicking with its output if it cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
pub fn must(cmd: &mut Command) -> String {
    let o = run(cmd);
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The result of one pipework run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "pipework failed: {}{}",
            self.stdout, self.stderr
        );
        self
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// A test's private world.
pub struct Sandbox {
    /// Unique prefix for every name this test creates.
    pub prefix: String,
    /// The namespace playing the host.
    pub host: String,
    namespaces: Vec<String>,
    pub state_dir: PathBuf,
    /// Extra environment for pipework runs.
    pub env: Vec<(String, String)>,
    /// The host's `/etc/resolv.conf` when the test began: it must be
    /// byte-identical when the test ends.
    host_resolv: Option<Vec<u8>>,
}

impl Sandbox {
    pub fn new(test: &str) -> Sandbox {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let short: String = test
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(12)
            .collect();
        let prefix = format!("pwt{}{}{n}", short, std::process::id());
        let state_dir = std::env::temp_dir().join(format!("{prefix}-state"));
        let mut s = Sandbox {
            host: format!("{prefix}-host"),
            prefix,
            namespaces: Vec::new(),
            state_dir,
            env: Vec::new(),
            host_resolv: std::fs::read("/etc/resolv.conf").ok(),
        };
        let host = s.host.clone();
        s.add_netns(&host);
        s
    }

    fn add_netns(&mut self, name: &str) {
        must(Command::new("ip").args(["netns", "add", name]));
        self.namespaces.push(name.to_string());
        must(Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]));
    }

    /// A new named guest namespace; returns its name (usable as `<guest>`).
    pub fn guest(&mut self, label: &str) -> String {
        let name = format!("{}-{label}", self.prefix);
        self.add_netns(&name);
        name
    }

    /// A stand-in physical NIC in the host namespace: one end of a veth whose
    /// other end is up, so the NIC has carrier.
    pub fn fake_nic(&self, name: &str) {
        self.ip_host(&[
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{name}p"),
        ]);
        self.ip_host(&["link", "set", &format!("{name}p"), "up"]);
        self.ip_host(&["link", "set", name, "up"]);
        // Until the kernel's link watch has run, the pair shows NO-CARRIER
        // beside LOWER_UP: a snapshot of the host taken now would differ
        // from any taken later, whatever pipework does.
        self.host_links_after_link_watch();
    }

    /// Runs pipework inside the host namespace with the sandbox's state dir.
    pub fn pipework(&self, args: &[&str]) -> Run {
        self.pipework_env(args, &[])
    }

    /// The command [`Sandbox::pipework`] runs: pipework with `args` in the
    /// host namespace, with the sandbox's state directory and environment,
    /// under `wrapper` (e.g. strace and its options) if any; not started.
    pub fn pipework_command(&self, wrapper: &[&std::ffi::OsStr], args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.host])
            .args(wrapper)
            .arg(pipework_bin())
            .args(args)
            .env("PIPEWORK_STATE_DIR", &self.state_dir);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn pipework_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.pipework_command(&[], args);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = run(&mut c);
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// pipework as a CNI plugin: `command` for `CNI_IFNAME` in the named
    /// guest namespace, the configuration on stdin.
    pub fn cni(
        &self,
        command: &str,
        guest: &str,
        ifname: &str,
        container: &str,
        conf: &Value,
    ) -> Run {
        use std::io::Write;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.host]).arg(pipework_bin());
        c.env("PIPEWORK_STATE_DIR", &self.state_dir)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container)
            .env("CNI_NETNS", format!("/run/netns/{guest}"))
            .env("CNI_IFNAME", ifname);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pipework");
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(conf.to_string().as_bytes())
            .expect("write the configuration");
        let o = child.wait_with_output().expect("pipework");
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// `ip -n <host> ...`
    pub fn ip_host(&self, args: &[&str]) -> String {
        ip(&self.host, args)
    }

    /// Links of the host namespace, in a form that compares equal when
    /// nothing was created, deleted or reconfigured.
    pub fn host_links(&self) -> Vec<Value> {
        links(&self.host)
    }

    /// The host links once they equal `want` (a moved-back NIC's carrier
    /// settles a moment after it is up), else as they are after 3 s.
    pub fn host_links_settled(&self, want: &[Value]) -> Vec<Value> {
        let t = std::time::Instant::now();
        loop {
            let now = self.host_links();
            if now == want || t.elapsed() > std::time::Duration::from_secs(3) {
                return now;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The host links once the kernel's link watch has caught up (no link
    /// both `LOWER_UP` and `NO-CARRIER`: a bridge's running state follows
    /// its first forwarding port up to a second later), else as they are
    /// after 3 s. For a snapshot taken right after an attach that later
    /// snapshots are compared with.
    pub fn host_links_after_link_watch(&self) -> Vec<Value> {
        let t = std::time::Instant::now();
        loop {
            let now = self.host_links();
            let has = |l: &Value, f: &str| {
                l["flags"]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|x| x == f))
            };
            let pending = now
                .iter()
                .any(|l| has(l, "LOWER_UP") && has(l, "NO-CARRIER"));
            if !pending || t.elapsed() > std::time::Duration::from_secs(3) {
                return now;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The PID of the sandbox's pipework daemon, if one runs.
    pub fn daemon_pid(&self) -> Option<i32> {
        let p: i32 = std::fs::read_to_string(self.state_dir.join("daemon.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // A killed daemon may linger as a zombie until someone reaps it.
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        let state = stat.rsplit(')').next()?.split_whitespace().next()?;
        (state != "Z").then_some(p)
    }

    /// Names of the host namespace's links: for comparisons across attaches
    /// to a bridge with no other port, whose MAC and carrier move as ports
    /// come and go.
    pub fn host_link_names(&self) -> Vec<Value> {
        self.host_links()
            .into_iter()
            .map(|l| l["ifname"].clone())
            .collect()
    }

    /// Pings from one namespace; true on a reply.
    pub fn ping(&self, from: &str, addr: &str) -> bool {
        ping(from, addr)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Every process in our namespaces goes first (the pipework daemon in
        // the host, DHCP servers and clients in the guests): a process keeps
        // its namespace, and its links, alive.
        for ns in self.namespaces.iter().rev() {
            kill_netns_processes(ns);
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
        let now = std::fs::read("/etc/resolv.conf").ok();
        if !std::thread::panicking() {
            assert!(
                now == self.host_resolv,
                "the host's /etc/resolv.conf changed during the test"
            );
        }
    }
}

/// Kills every process whose network namespace is `ns`, and waits for them.
/// The PIDs of the processes in a named namespace whose command name is
/// `comm` (what `ip netns pids` and `/proc/<pid>/comm` say: a witness
/// independent of pipework's own state).
pub fn netns_pids_named(ns: &str, comm: &str) -> Vec<i32> {
    let o = run(Command::new("ip").args(["netns", "pids", ns]));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p: &i32| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

pub fn kill_netns_processes(ns: &str) {
    for _ in 0..50 {
        let o = run(Command::new("ip").args(["netns", "pids", ns]));
        let pids: Vec<i32> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            return;
        }
        for p in pids {
            // A process inside a namespace this test made.
            kill(p, libc::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sends signal `sig` to `pid`; one that is gone already is no error.
pub fn kill(pid: i32, sig: i32) {
    if let Ok(sig) = nix::sys::signal::Signal::try_from(sig) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `ip -n <ns> <args>`, must succeed.
pub fn ip(ns: &str, args: &[&str]) -> String {
    must(Command::new("ip").arg("-n").arg(ns).args(args))
}

/// `ip -j` output as JSON.
pub fn ip_json(ns: &str, args: &[&str]) -> Value {
    let out = must(Command::new("ip").arg("-n").arg(ns).arg("-j").args(args));
    if out.trim().is_empty() {
        return Value::Array(vec![]);
    }
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {out}"))
}

/// Links of a namespace with only stable fields kept.
pub fn links(ns: &str) -> Vec<Value> {
    let v = ip_json(ns, &["-d", "link", "show"]);
    let mut out: Vec<Value> = v
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|l| {
            serde_json::json!({
                "ifindex": l["ifindex"],
                "ifname": l["ifname"],
                "kind": l["linkinfo"]["info_kind"],
                "master": l["master"],
                "mtu": l["mtu"],
                "address": l["address"],
                "flags": l["flags"],
            })
        })
        .collect();
    out.sort_by_key(|l| l["ifindex"].as_u64());
    out
}

/// Every route and rule of a namespace, both families, all tables.
pub fn routes(ns: &str) -> Value {
    serde_json::json!({
        "v4": ip_json(ns, &["-4", "route", "show", "table", "all"]),
        "v6": ip_json(ns, &["-6", "route", "show", "table", "all"]),
        "rules4": ip_json(ns, &["-4", "rule", "show"]),
    })
}

/// The addresses of one interface in a namespace (`ip -j addr`).
pub fn addresses(ns: &str, ifname: &str) -> Vec<String> {
    let v = ip_json(ns, &["addr", "show", "dev", ifname]);
    v[0]["addr_info"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect()
}

/// One link of a namespace, or `None`.
pub fn link(ns: &str, ifname: &str) -> Option<Value> {
    let o = run(Command::new("ip").args(["-n", ns, "-j", "-d", "link", "show", "dev", ifname]));
    if !o.status.success() {
        return None;
    }
    serde_json::from_slice::<Value>(&o.stdout)
        .ok()?
        .get(0)
        .cloned()
}

/// `ping` from inside a namespace: three tries, one second each.
pub fn ping(from: &str, addr: &str) -> bool {
    let six = addr.contains(':');
    let mut c = Command::new("ip");
    c.args(["netns", "exec", from, "ping"]);
    if six {
        c.arg("-6");
    }
    c.args(["-c", "1", "-W", "1", addr]);
    for _ in 0..3 {
        if run(&mut c).status.success() {
            return true;
        }
    }
    false
}

/// A process living in a namespace (for PID guests); killed on drop.
pub struct GuestProcess {
    pub child: std::process::Child,
}

impl GuestProcess {
    /// `sleep` inside a new, unnamed network namespace.
    pub fn spawn_unshared() -> GuestProcess {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare");
        let p = GuestProcess { child };
        // Wait until the child has entered its namespace.
        let me = std::fs::read_link("/proc/self/ns/net").expect("own netns");
        for _ in 0..200 {
            if let Ok(l) = std::fs::read_link(format!("/proc/{}/ns/net", p.pid())) {
                if l != me {
                    ip_pid(p.pid(), &["link", "set", "lo", "up"]);
                    return p;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("unshare --net did not enter a new namespace");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GuestProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `ip <args>` inside the namespace of a process, through nsenter.
pub fn ip_pid(pid: u32, args: &[&str]) -> String {
    must(
        Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "ip"])
            .args(args),
    )
}
