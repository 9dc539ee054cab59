//! A real DHCP server for tests: dnsmasq in a namespace of its own, plugged
//! into a bridge of the sandbox's host with a veth made by `ip` (not by
//! pipework, so the fixture does not depend on what it tests).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ip, must, Sandbox};

/// A running dnsmasq serving `<net>.0/24` (and `<v6>::/64` when asked).
pub struct DhcpServer {
    /// The server's namespace.
    pub ns: String,
    /// The bridge in the sandbox's host that guests attach to.
    pub bridge: String,
    /// The server's IPv4 address (`<net>.1`).
    pub addr: String,
    /// The server's IPv6 address (`<v6>::1`), when IPv6 is served.
    pub addr6: Option<String>,
    pub leasefile: PathBuf,
    pub logfile: PathBuf,
    child: Child,
}

/// What the server hands out.
pub struct ServerConfig<'a> {
    /// `10.61.0`: the server is `.1`, leases come from `.100`-`.199`.
    pub net: &'a str,
    /// `fd61::`-style IPv6 prefix (without the trailing `::`), or none.
    pub v6: Option<&'a str>,
    /// IPv6 by router advertisements only (SLAAC), no DHCPv6.
    pub ra_only: bool,
    /// More dnsmasq arguments (`--dhcp-option=...`).
    pub extra: &'a [&'a str],
}

impl<'a> ServerConfig<'a> {
    pub fn v4(net: &'a str) -> ServerConfig<'a> {
        ServerConfig {
            net,
            v6: None,
            ra_only: false,
            extra: &[],
        }
    }
}

impl DhcpServer {
    pub fn start(s: &mut Sandbox, bridge: &str, cfg: &ServerConfig<'_>) -> DhcpServer {
        let tag: String = cfg.net.chars().filter(char::is_ascii_digit).collect();
        let ns = s.guest(&format!("srv{tag}"));
        if crate::link(&s.host, bridge).is_none() {
            s.ip_host(&["link", "add", bridge, "type", "bridge"]);
            s.ip_host(&["link", "set", bridge, "up"]);
        }
        let peer = format!("sv{tag}");
        s.ip_host(&[
            "link", "add", &peer, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        s.ip_host(&["link", "set", &peer, "master", bridge, "up"]);
        ip(
            &ns,
            &["addr", "add", &format!("{}.1/24", cfg.net), "dev", "eth0"],
        );
        let mut args: Vec<String> = vec![
            "--no-daemon".into(),
            "--port=0".into(),
            "--interface=eth0".into(),
            "--bind-interfaces".into(),
            "--log-dhcp".into(),
            "--conf-file=/dev/null".into(),
            format!("--dhcp-range={0}.100,{0}.199,2m", cfg.net),
        ];
        let mut addr6 = None;
        if let Some(p) = cfg.v6 {
            ip(
                &ns,
                &["addr", "add", &format!("{p}::1/64"), "dev", "eth0", "nodad"],
            );
            args.push("--enable-ra".into());
            args.push("--ra-param=eth0,4".into());
            if cfg.ra_only {
                args.push(format!("--dhcp-range={p}::,ra-only,64"));
            } else {
                args.push(format!("--dhcp-range={p}::100,{p}::1ff,64,2m"));
            }
            addr6 = Some(format!("{p}::1"));
        }
        ip(&ns, &["link", "set", "eth0", "up"]);
        let leasefile = std::env::temp_dir().join(format!("{}-leases", s.prefix));
        let logfile = std::env::temp_dir().join(format!("{}-dnsmasq.log", s.prefix));
        let _ = std::fs::remove_file(&leasefile);
        args.push(format!("--dhcp-leasefile={}", leasefile.display()));
        args.push(format!(
            "--pid-file={}",
            std::env::temp_dir()
                .join(format!("{}-dnsmasq.pid", s.prefix))
                .display()
        ));
        args.extend(cfg.extra.iter().map(|e| e.to_string()));
        let log = std::fs::File::create(&logfile).expect("dnsmasq log");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "dnsmasq"])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("dnsmasq (apt-get install dnsmasq-base)");
        let srv = DhcpServer {
            ns,
            bridge: bridge.to_string(),
            addr: format!("{}.1", cfg.net),
            addr6,
            leasefile,
            logfile,
            child,
        };
        assert!(
            srv.wait_log("DHCP, sockets bound", Duration::from_secs(10)),
            "dnsmasq did not start: {}",
            srv.log()
        );
        srv
    }

    /// dnsmasq's lease file (one line per lease: expiry, MAC, address...).
    pub fn leases(&self) -> String {
        std::fs::read_to_string(&self.leasefile).unwrap_or_default()
    }

    /// The lease line for `mac`, if dnsmasq has one.
    pub fn lease_of(&self, mac: &str) -> Option<String> {
        self.leases()
            .lines()
            .find(|l| l.to_lowercase().contains(&mac.to_lowercase()))
            .map(String::from)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.logfile).unwrap_or_default()
    }

    /// How many log lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits until the log holds `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_count(needle, 1, timeout)
    }

    /// Waits until the log holds `needle` at least `n` times.
    pub fn wait_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.count(needle) >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for DhcpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        crate::kill_netns_processes(&self.ns);
        let _ = std::fs::remove_file(&self.leasefile);
        let _ = std::fs::remove_file(&self.logfile);
    }
}

/// The MAC of a guest interface, lowercase.
pub fn mac_of(ns: &str, ifname: &str) -> String {
    let v = crate::link(ns, ifname).expect("interface exists");
    v["address"].as_str().unwrap_or_default().to_lowercase()
}

/// A process with its own network and mount namespace whose
/// `/etc/resolv.conf` is a private file (`resolv`), like a container's.
pub struct RootedGuest {
    pub child: Child,
    pub resolv: PathBuf,
}

impl RootedGuest {
    pub fn spawn(tag: &str) -> RootedGuest {
        let resolv = std::env::temp_dir().join(format!("pwt-resolv-{tag}-{}", std::process::id()));
        std::fs::write(&resolv, "nameserver 192.0.2.53\n").expect("write");
        let child = Command::new("unshare")
            .args(["--net", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /etc/resolv.conf && ip link set lo up && exec sleep 600",
                resolv.display()
            ))
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare");
        let g = RootedGuest { child, resolv };
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            let comm =
                std::fs::read_to_string(format!("/proc/{}/comm", g.pid())).unwrap_or_default();
            if comm.trim() == "sleep" {
                return g;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the rooted guest did not start");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RootedGuest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.resolv);
    }
}

/// `ip netns exec <ns> <cmd...>`, must succeed.
pub fn exec(ns: &str, cmd: &[&str]) -> String {
    must(Command::new("ip").args(["netns", "exec", ns]).args(cmd))
}
