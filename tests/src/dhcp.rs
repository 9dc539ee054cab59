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

/// A DHCPv4 server that lies, in Python's standard library: it answers
/// with the malformed replies a hostile or broken server sends, and logs
/// every DISCOVER and REQUEST it sees on a packet socket (a capture, not
/// its own UDP socket). What it answers is read from its mode file at each
/// request:
/// - `hostile`: before each OFFER and ACK, one reply of each malformed kind
///   (wrong magic cookie; a subnet mask of length 4 with 2 bytes and no
///   END; an option length past the end; a mask of length 2; no END; a
///   holed mask; a 0.0.0.0 mask), then a good one with an MTU of 65535;
/// - `bad`: the malformed replies only;
/// - `nak`: a good OFFER, and a NAK to every REQUEST;
/// - `good`: good replies only.
///
/// The good lease: `<net>.50/24`, router and server `<net>.1`, an hour
/// long (or as given to [`LyingServer::start_with_lease`]), T1 as given, T2
/// at 3000 s (at most 7/8 of the lease).
const LIAR: &str = r#"
import socket, struct, sys, time
ifname, net, modefile, logfile, t1 = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
lease_secs = int(sys.argv[6])
t2 = min(3000, lease_secs * 7 // 8)
srv, yi = net + ".1", net + ".50"
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
rx.bind((ifname, 0))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
tx.bind((srv, 67))
log = open(logfile, "a", buffering=1)
a = socket.inet_aton
COOKIE = bytes([99, 130, 83, 99])
MASK24 = bytes([1, 4, 255, 255, 255, 0])

def reply(req, kind, opts, cookie=COOKIE, end=True, lease=True):
    hdr = bytes([2, 1, 6, 0]) + req[4:8] + bytes(8) + a(yi) + a(srv) + bytes(4) + req[28:44] + bytes(192)
    o = bytes([53, 1, kind, 54, 4]) + a(srv)
    if lease:
        o += bytes([51, 4]) + struct.pack("!I", lease_secs) + bytes([58, 4]) + struct.pack("!I", t1)
        o += bytes([59, 4]) + struct.pack("!I", t2) + bytes([3, 4]) + a(srv)
    return hdr + cookie + o + opts + (b"\xff" if end else b"")

def bad(req, kind):
    return [
        reply(req, kind, MASK24, cookie=bytes.fromhex("deadbeef")),
        reply(req, kind, bytes([1, 4, 255, 255]), end=False),
        reply(req, kind, MASK24 + bytes([12, 200]) + b"ab", end=False),
        reply(req, kind, bytes([1, 2, 255, 255])),
        reply(req, kind, MASK24, end=False),
        reply(req, kind, bytes([1, 4, 255, 0, 255, 0])),
        reply(req, kind, bytes([1, 4, 0, 0, 0, 0])),
    ]

def msg_type(d):
    i = 240
    while i + 1 < len(d):
        c = d[i]
        if c == 0:
            i += 1
            continue
        if c == 255:
            break
        if c == 53:
            return d[i + 2]
        i += 2 + d[i + 1]
    return None

while True:
    f, addr = rx.recvfrom(4096)
    if addr[2] == 4:  # PACKET_OUTGOING: our own replies
        continue
    ip = f[14:]
    if len(ip) < 20 or ip[9] != 17:
        continue
    ihl = (ip[0] & 15) * 4
    udp = ip[ihl:]
    if len(udp) < 8 or struct.unpack("!H", udp[2:4])[0] != 67:
        continue
    d = udp[8:]
    if len(d) < 240 or d[0] != 1:
        continue
    t = msg_type(d)
    mode = open(modefile).read().strip()
    log.write("%.3f %s %s\n" % (time.monotonic(), {1: "DISCOVER", 3: "REQUEST", 7: "RELEASE"}.get(t, t), mode))
    if t not in (1, 3):
        continue
    kind = 2 if t == 1 else 5
    out = []
    if mode == "nak" and t == 3:
        out = [reply(d, 6, b"", lease=False)]
    elif mode in ("nak", "good"):
        out = [reply(d, kind if mode == "good" else 2, MASK24)]
    elif mode in ("hostile", "bad"):
        out = bad(d, kind)
        if mode == "hostile":
            out.append(reply(d, kind, MASK24 + bytes([26, 2, 255, 255])))
    for p in out:
        tx.sendto(p, ("255.255.255.255", 68))
"#;

/// [`LIAR`] running in a namespace of its own, plugged into a bridge of the
/// sandbox's host like [`DhcpServer`].
pub struct LyingServer {
    pub ns: String,
    pub bridge: String,
    /// `<net>.1`.
    pub addr: String,
    modefile: PathBuf,
    logfile: PathBuf,
    child: Child,
}

/// One DISCOVER or REQUEST the lying server saw: monotonic seconds, kind,
/// and the mode it was in.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: f64,
    pub kind: String,
    pub mode: String,
}

impl LyingServer {
    pub fn start(s: &mut Sandbox, bridge: &str, net: &str, mode: &str, t1: u32) -> LyingServer {
        LyingServer::start_with_lease(s, bridge, net, mode, t1, 3600)
    }

    /// [`LyingServer::start`] with leases `lease_secs` long.
    pub fn start_with_lease(
        s: &mut Sandbox,
        bridge: &str,
        net: &str,
        mode: &str,
        t1: u32,
        lease_secs: u32,
    ) -> LyingServer {
        let tag: String = net.chars().filter(char::is_ascii_digit).collect();
        let ns = s.guest(&format!("liar{tag}"));
        if crate::link(&s.host, bridge).is_none() {
            s.ip_host(&["link", "add", bridge, "type", "bridge"]);
            s.ip_host(&["link", "set", bridge, "up"]);
        }
        let peer = format!("lv{tag}");
        s.ip_host(&[
            "link", "add", &peer, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        s.ip_host(&["link", "set", &peer, "master", bridge, "up"]);
        ip(&ns, &["addr", "add", &format!("{net}.1/24"), "dev", "eth0"]);
        ip(&ns, &["link", "set", "eth0", "up"]);
        let modefile = std::env::temp_dir().join(format!("{}-liar.mode", s.prefix));
        let logfile = std::env::temp_dir().join(format!("{}-liar.log", s.prefix));
        std::fs::write(&modefile, mode).expect("mode file");
        std::fs::write(&logfile, "").expect("log file");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "/usr/bin/python3",
                "-c",
                LIAR,
                "eth0",
                net,
            ])
            .arg(&modefile)
            .arg(&logfile)
            .arg(t1.to_string())
            .arg(lease_secs.to_string())
            .stdin(Stdio::null())
            .spawn()
            .expect("python3");
        // Bound once its UDP socket is (the packet socket opens before it).
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            let ss = exec(&ns, &["ss", "-Hlun", "sport", "=", ":67"]);
            if !ss.trim().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        LyingServer {
            ns,
            bridge: bridge.to_string(),
            addr: format!("{net}.1"),
            modefile,
            logfile,
            child,
        }
    }

    pub fn set_mode(&self, mode: &str) {
        std::fs::write(&self.modefile, mode).expect("mode file");
    }

    /// Every DISCOVER and REQUEST seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        std::fs::read_to_string(&self.logfile)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some(Seen {
                    at: w.next()?.parse().ok()?,
                    kind: w.next()?.to_string(),
                    mode: w.next()?.to_string(),
                })
            })
            .collect()
    }

    /// Waits until `pred` holds for some seen message.
    pub fn wait_seen(&self, pred: impl Fn(&Seen) -> bool, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.seen().iter().any(&pred) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for LyingServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        crate::kill_netns_processes(&self.ns);
        let _ = std::fs::remove_file(&self.modefile);
        let _ = std::fs::remove_file(&self.logfile);
    }
}
