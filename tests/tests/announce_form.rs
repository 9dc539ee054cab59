//! The form and the socket of a single attach's gratuitous ARP: the reply
//! form from a packet socket in the guest that the kernel releases after
//! the command, or, where io_uring is refused, the guest kernel's own
//! announcement. Witnesses: the frame as a neighbour receives it, the
//! neighbour's cache, `/proc/net/packet` in the guest.

use pipework_tests::arpwatch::*;
use pipework_tests::*;

/// A sandbox with a watcher on bridge `bridge` (10.`net`.0.1/24) that
/// caches a stale MAC for 10.`net`.0.2, a guest to attach there as
/// 02:00:00:`net`:00:02, and a listener on the watcher for that MAC's
/// first ARP.
struct Watched {
    s: Sandbox,
    watcher: String,
    guest: String,
    ip: std::net::Ipv4Addr,
    mac: [u8; 6],
    arp: ArpWatch,
}

fn watched(prefix: &str, bridge: &str, net: u8) -> Watched {
    let mut s = Sandbox::new(prefix);
    let watcher = s.guest("w");
    let guest = s.guest("a");
    s.pipework(&[bridge, &watcher, &format!("10.{net}.0.1/24")])
        .ok();
    stale_entry(&watcher, &format!("10.{net}.0.2"));
    let mac = [0x02, 0, 0, net, 0, 0x02];
    let arp = watch_arp_from(&watcher, "eth1", mac, std::time::Duration::from_secs(10));
    Watched {
        s,
        watcher,
        guest,
        ip: std::net::Ipv4Addr::new(10, net, 0, 2),
        mac,
        arp,
    }
}

impl Watched {
    /// The attach's arguments: bridge, guest, address, MAC.
    fn args(&self, bridge: &str) -> Vec<String> {
        let m = self.mac;
        vec![
            bridge.to_string(),
            self.guest.clone(),
            format!("{}/24", self.ip),
            format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
        ]
    }

    /// Checks, after the attach, that the watcher's cache has the guest's
    /// MAC for its address and that the guest's first ARP was a broadcast
    /// `op` (1 request, 2 reply) for its address with `target_mac`.
    /// Returns the guest's name.
    fn announced(self, op: u16, target_mac: [u8; 6]) -> String {
        let mac = self.args("")[3].clone();
        let learned =
            wait_for_mac(&self.watcher, &self.ip.to_string(), &mac).as_deref() == Some(&mac);
        assert_eq!(
            self.arp.first(),
            Some(SeenArp {
                dst: [0xff; 6],
                op,
                sender_mac: self.mac,
                sender_ip: self.ip,
                target_mac,
                target_ip: self.ip,
            })
        );
        assert!(learned, "the watcher did not learn the new MAC");
        self.guest
    }
}

/// A single attach announces the guest's IPv4 address out of the guest's
/// own link (so the bridge learns the MAC on its port) in the reply form
/// (sender and target both the guest: each receiver updates its cache
/// without the route lookup a request costs it), to the broadcast address.
/// The packet socket that sent it is released by the kernel after the
/// command (through an io_uring instance's teardown, off the command's
/// path): it is gone from the guest soon after (no process of ours stays
/// to close it: `no_pipework_process_outlives_the_command`).
#[test]
fn a_bridge_guest_announces_itself_in_the_reply_form_and_keeps_no_socket() {
    let w = watched("announcerf", "brrf", 45);
    let args = w.args("brrf");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    w.s.pipework(&args).ok();
    let mac = w.mac;
    let guest = w.announced(2, mac);
    let mut left = packet_sockets(&guest);
    for _ in 0..250 {
        if left == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        left = packet_sockets(&guest);
    }
    assert_eq!(left, 0, "the announcement's packet socket is still open");
}

/// Where the kernel refuses io_uring (a container runtime's default seccomp
/// filter, `kernel.io_uring_disabled`), a packet socket could only be
/// closed by the command, which would wait an RCU grace period: none is
/// used, and the guest's kernel announces instead (`arp_notify`, the
/// request form of RFC 5227). Neighbours still learn the MAC.
#[test]
fn without_io_uring_the_guest_kernel_announces() {
    let w = watched("announcenu", "brnu", 46);
    let wrapper: Vec<&std::ffi::OsStr> = ["python3", "-c", WITHOUT_IO_URING]
        .iter()
        .map(std::ffi::OsStr::new)
        .collect();
    let args = w.args("brnu");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&mut w.s.pipework_command(&wrapper, &args));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let guest = w.announced(1, [0; 6]);
    assert_eq!(packet_sockets(&guest), 0);
}
