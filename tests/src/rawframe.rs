//! 802.1Q-tagged ARP on a packet socket, for proving trunk ports: this
//! kernel has no 8021q module, so a guest cannot make VLAN sub-interfaces,
//! but it can still write tagged frames and read the tag of the frames it
//! gets (the kernel strips it into `PACKET_AUXDATA`).

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

/// An ARP reply seen by [`arp_ask`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpReply {
    /// The VLAN the reply came in on (`None`: untagged).
    pub vlan: Option<u16>,
    pub sender_mac: [u8; 6],
}

/// The witness itself, in Python's standard library (no `unsafe` in our
/// tests, no scapy needed): sends the frame every 0.5 s, reads with
/// `PACKET_AUXDATA` so that a tag the kernel stripped is still seen, and
/// prints `<vlan or -> <frame hex>` for each frame received until the
/// reply it waits for or the deadline.
const WITNESS: &str = r#"
import socket, struct, sys, time
ifname, frame, timeout = sys.argv[1], bytes.fromhex(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((ifname, 0))
s.setsockopt(263, 8, 1)  # SOL_PACKET, PACKET_AUXDATA
s.settimeout(0.2)
end, sent = time.monotonic() + timeout, 0.0
while time.monotonic() < end:
    if time.monotonic() - sent > 0.5:
        s.send(frame)
        sent = time.monotonic()
    try:
        data, anc, _, _ = s.recvmsg(2048, 256)
    except socket.timeout:
        continue
    tag = "-"
    for level, kind, d in anc:
        if level == 263 and kind == 8 and len(d) >= 20:
            status, tci = struct.unpack_from("I", d, 0)[0], struct.unpack_from("H", d, 16)[0]
            if status & (1 << 4):
                tag = str(tci & 0xfff)
    print(tag, data.hex(), flush=True)
    p = data[:12] + data[16:] if data[12:14] == b"\x81\x00" else data
    if p[12:14] == b"\x08\x06" and p[20:22] == b"\x00\x02" and p[28:32].hex() == sys.argv[5] and p[38:42].hex() == sys.argv[4]:
        break
"#;

fn arp_request(vlan: Option<u16>, mac: [u8; 6], ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    if let Some(v) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// From inside netns `ns`, on `ifname`, asks "who has `target`" as
/// `mac`/`ip` in `vlan` (untagged if `None`), and returns the first reply
/// for it within `timeout`.
pub fn arp_ask(
    ns: &str,
    ifname: &str,
    vlan: Option<u16>,
    mac: [u8; 6],
    ip: Ipv4Addr,
    target: Ipv4Addr,
    timeout: Duration,
) -> Option<ArpReply> {
    let frame = arp_request(vlan, mac, ip, target);
    let hex = hex_of(&frame);
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", WITNESS, ifname, &hex])
        .arg(format!("{}", timeout.as_secs_f64()))
        .arg(hex_of(&ip.octets()))
        .arg(hex_of(&target.octets()))
        .output()
        .expect("python3 runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| reply_in(l, ip, target))
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An ARP reply (op 2) from `target` to `ip` in one line of the witness.
fn reply_in(line: &str, ip: Ipv4Addr, target: Ipv4Addr) -> Option<ArpReply> {
    let (tag, hex) = line.split_once(' ')?;
    let mut pkt: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let mut vlan = tag.parse::<u16>().ok();
    if pkt.len() >= 18 && pkt[12..14] == [0x81, 0x00] {
        vlan = Some(u16::from_be_bytes([pkt[14], pkt[15]]) & 0x0fff);
        pkt.drain(12..16);
    }
    if pkt.len() >= 42
        && pkt[12..14] == [0x08, 0x06]
        && pkt[20..22] == [0, 2]
        && pkt[28..32] == target.octets()
        && pkt[38..42] == ip.octets()
    {
        let mut sender_mac = [0u8; 6];
        sender_mac.copy_from_slice(&pkt[22..28]);
        return Some(ArpReply { vlan, sender_mac });
    }
    None
}
