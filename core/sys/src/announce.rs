//! Telling the neighbours about a new address: gratuitous ARP for IPv4 and an
//! unsolicited neighbour advertisement for IPv6, written as raw frames on a
//! packet socket opened inside the guest. No `arping` needed.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::netns::Netns;
use pipework_model::MacAddr;

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;

fn ethernet(dst: [u8; 6], src: MacAddr, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(86);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An ARP announcement (RFC 5227 section 2.3): sender and target protocol
/// address both ours. `op` 1 is the request form the kernel's `arp_notify`
/// uses, 2 the reply form of `arping -A`; hosts differ in which they heed.
pub fn gratuitous_arp(mac: MacAddr, ip: Ipv4Addr, op: u16) -> Vec<u8> {
    let mut f = ethernet([0xff; 6], mac, ETH_P_ARP);
    f.extend_from_slice(&1u16.to_be_bytes()); // Ethernet
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f.push(6);
    f.push(4);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&if op == 2 { mac.0 } else { [0; 6] });
    f.extend_from_slice(&ip.octets());
    f
}

/// An unsolicited neighbour advertisement to all nodes (RFC 4861 section
/// 7.2.6): override flag set, target link-layer address option included.
pub fn unsolicited_na(mac: MacAddr, ip: Ipv6Addr) -> Vec<u8> {
    let all_nodes: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut icmp = Vec::with_capacity(32);
    icmp.push(136); // neighbour advertisement
    icmp.push(0);
    icmp.extend_from_slice(&[0, 0]); // checksum, filled below
    icmp.extend_from_slice(&0x2000_0000u32.to_be_bytes()); // O flag
    icmp.extend_from_slice(&ip.octets());
    icmp.push(2); // target link-layer address
    icmp.push(1); // 8 bytes
    icmp.extend_from_slice(&mac.0);
    let sum = icmpv6_checksum(&ip, &all_nodes, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut f = ethernet([0x33, 0x33, 0, 0, 0, 1], mac, ETH_P_IPV6);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.push(58); // ICMPv6
    f.push(255); // hop limit: receivers drop ND with anything else
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&all_nodes.octets());
    f.extend_from_slice(&icmp);
    f
}

fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, body: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += u32::from(w);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(body.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(body);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The frames announcing `addrs` from `mac`.
pub fn frames(mac: MacAddr, addrs: &[IpAddr]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for a in addrs {
        match a {
            IpAddr::V4(v4) => {
                out.push(gratuitous_arp(mac, *v4, 1));
                out.push(gratuitous_arp(mac, *v4, 2));
            }
            IpAddr::V6(v6) => out.push(unsolicited_na(mac, *v6)),
        }
    }
    out
}

/// A packet socket inside the guest, opened while the namespace is entered
/// for other reasons (see [`crate::netlink::Netlink::connect_in_with`]).
pub struct Announcer {
    /// Always `Some` until dropped: the drop hands the only reference over.
    sock: Option<OwnedFd>,
}

impl Announcer {
    /// Opens the socket; call on a thread inside the guest's namespace.
    pub fn open() -> io::Result<Announcer> {
        // Protocol 0: send only, never receives.
        // SAFETY: plain socket(2); checked below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is new and ours.
        Ok(Announcer {
            sock: Some(unsafe { OwnedFd::from_raw_fd(fd) }),
        })
    }

    /// Sends the announcements for `addrs` out of `ifindex`.
    pub fn send(&self, ifindex: u32, mac: MacAddr, addrs: &[IpAddr]) -> io::Result<()> {
        let sock = self.sock.as_ref().expect("open until dropped");
        for f in frames(mac, addrs) {
            send_frame(sock, ifindex, &f)?;
        }
        Ok(())
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        if let Some(fd) = self.sock.take() {
            crate::deferred_close::close_deferred(fd);
        }
    }
}

/// Opens an announcer inside `ns` and sends; for callers that have not
/// opened one already.
pub async fn announce(ns: &Netns, ifindex: u32, mac: MacAddr, addrs: &[IpAddr]) -> io::Result<()> {
    if addrs.is_empty() {
        return Ok(());
    }
    let a = ns.run_async(Announcer::open).await??;
    a.send(ifindex, mac, addrs)
}

fn send_frame(sock: &OwnedFd, ifindex: u32, frame: &[u8]) -> io::Result<()> {
    // SAFETY: zeroed sockaddr_ll is a valid value; fields set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&frame[..6]);
    sll.sll_protocol = u16::from_be_bytes([frame[12], frame[13]]).to_be();
    // SAFETY: buffer and address are valid for the given lengths.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            0,
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_layout() {
        let mac: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let f = gratuitous_arp(mac, "10.0.0.2".parse().unwrap(), 2);
        assert_eq!(f.len(), 42);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[28..32], &[10, 0, 0, 2]);
        assert_eq!(&f[38..42], &[10, 0, 0, 2]);
    }

    #[test]
    fn na_checksum_verifies() {
        let mac: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let ip: Ipv6Addr = "fd00::2".parse().unwrap();
        let f = unsolicited_na(mac, ip);
        assert_eq!(f.len(), 14 + 40 + 32);
        let body = &f[54..];
        // Summing a packet that includes its checksum gives 0 after inversion.
        let dst: Ipv6Addr = "ff02::1".parse().unwrap();
        assert_eq!(icmpv6_checksum(&ip, &dst, body), 0);
    }
}
