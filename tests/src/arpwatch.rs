//! Witnesses of a guest's gratuitous ARP: a neighbour's cache (`ip -j
//! neigh`), the frame itself as a neighbour receives it (which form, from
//! whom, to whom), and a way to run pipework
//! where the kernel refuses io_uring, as container runtimes' default seccomp
//! filters do. Python's standard library only (no `unsafe` in our tests, no
//! scapy).

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{ip, ip_json};

/// Listens on a packet socket (ARP only), says `ready`, then prints the
/// first ARP frame whose Ethernet source is the MAC asked for, in hex, and
/// exits (or exits at the deadline).
const LISTENER: &str = r#"
import socket, sys, time
ifname, mac, timeout = sys.argv[1], bytes.fromhex(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((ifname, 0))
s.settimeout(0.2)
print("ready", flush=True)
end = time.monotonic() + timeout
while time.monotonic() < end:
    try:
        data = s.recv(2048)
    except socket.timeout:
        continue
    if data[6:12] == mac:
        print(data.hex(), flush=True)
        break
"#;

/// Runs the rest of its arguments with `io_uring_setup` refused (`EPERM`)
/// by a seccomp filter: load the system call number, refuse 425, allow
/// everything else.
pub const WITHOUT_IO_URING: &str = r#"
import ctypes, os, struct, sys
def insn(code, k, jt=0, jf=0): return struct.pack("HBBI", code, jt, jf, k)
prog = (insn(0x20, 0)                    # ld [nr]
        + insn(0x15, 425, 0, 1)          # jeq io_uring_setup
        + insn(0x06, 0x00050000 | 1)     # ret ERRNO(EPERM)
        + insn(0x06, 0x7fff0000))        # ret ALLOW
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(prog, len(prog))
fp = Fprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_char_p))
if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fp), 0, 0) != 0:
    sys.exit("seccomp: " + os.strerror(ctypes.get_errno()))
os.execvp(sys.argv[1], sys.argv[1:])
"#;

/// An ARP frame as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenArp {
    pub dst: [u8; 6],
    /// 1: request, 2: reply.
    pub op: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

/// A listener started in netns `ns` on `ifname`, ready when returned.
pub struct ArpWatch {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

/// Starts listening, in `ns` on `ifname`, for the first ARP frame sent by
/// `mac`, for at most `timeout`.
pub fn watch_arp_from(ns: &str, ifname: &str, mac: [u8; 6], timeout: Duration) -> ArpWatch {
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", LISTENER, ifname, &hex])
        .arg(format!("{}", timeout.as_secs_f64()))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line).expect("the listener starts");
    assert_eq!(line.trim(), "ready", "the ARP listener did not start");
    ArpWatch { child, out }
}

impl ArpWatch {
    /// The frame, once the listener has seen it (or `None` at its deadline).
    pub fn first(mut self) -> Option<SeenArp> {
        let mut line = String::new();
        let _ = self.out.read_line(&mut line);
        let _ = self.child.wait();
        parse(line.trim())
    }
}

fn parse(hex: &str) -> Option<SeenArp> {
    let b: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    if b.len() < 42 || b[12..14] != [0x08, 0x06] {
        return None;
    }
    let mac = |at: usize| -> [u8; 6] { b[at..at + 6].try_into().unwrap_or_default() };
    let ip = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
    Some(SeenArp {
        dst: mac(0),
        op: u16::from_be_bytes([b[20], b[21]]),
        sender_mac: mac(22),
        sender_ip: ip(28),
        target_mac: mac(32),
        target_ip: ip(38),
    })
}

/// How many packet sockets are open in netns `ns` (`/proc/net/packet`).
pub fn packet_sockets(ns: &str) -> usize {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/packet"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .count()
        .saturating_sub(1)
}

/// The MAC netns `ns` caches for `addr` (`ip -j neigh`).
pub fn neigh_mac(ns: &str, addr: &str) -> Option<String> {
    let v = ip_json(ns, &["neigh", "show", "to", addr]);
    v.as_array()?.first()?["lladdr"].as_str().map(String::from)
}

/// A stale cache entry with a MAC that is no longer true.
pub fn stale_entry(ns: &str, addr: &str) {
    ip(
        ns,
        &[
            "neigh",
            "replace",
            addr,
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "eth1",
            "nud",
            "stale",
        ],
    );
}

/// Waits up to 2 s for `ns` to cache `mac` for `addr`; what it caches then.
pub fn wait_for_mac(ns: &str, addr: &str, mac: &str) -> Option<String> {
    for _ in 0..100 {
        let m = neigh_mac(ns, addr);
        if m.as_deref() == Some(mac) {
            return m;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    neigh_mac(ns, addr)
}
