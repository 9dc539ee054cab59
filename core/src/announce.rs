//! Telling the neighbours about a new address: gratuitous ARP for IPv4 and an
//! unsolicited neighbour advertisement for IPv6, written as raw frames on a
//! packet socket opened inside the guest. No `arping` needed.
//!
//! The frames go out from a forked child process. Closing a packet socket
//! waits for an RCU grace period (`synchronize_net()` in the kernel's
//! `packet_release`), about 10 ms, the largest single cost of an attach when
//! paid inline; and a process cannot exit before its sockets are released.
//! The child sends, reports, shuts every other descriptor (so no pipe reader
//! waits on it) and pays for the close on its own time.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};

use crate::model::MacAddr;
use crate::netns::Netns;

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

/// Sends the announcements out of `ifindex` in the guest namespace.
pub async fn announce(ns: &Netns, ifindex: u32, mac: MacAddr, addrs: &[IpAddr]) -> io::Result<()> {
    let frames = frames(mac, addrs);
    if frames.is_empty() {
        return Ok(());
    }
    // A fork and a pipe read: well under a millisecond, fine inline.
    send_from_child(ns.as_raw_fd(), ifindex, &frames)
}

fn link_address(ifindex: u32, frame: &[u8]) -> libc::sockaddr_ll {
    // SAFETY: zeroed sockaddr_ll is a valid value; fields set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&frame[..6]);
    sll.sll_protocol = u16::from_be_bytes([frame[12], frame[13]]).to_be();
    sll
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Forks a child that enters the guest namespace, sends `frames` on a packet
/// socket and writes 0 (or the errno that stopped it) to a pipe.
fn send_from_child(ns: RawFd, ifindex: u32, frames: &[Vec<u8>]) -> io::Result<()> {
    // Everything the child touches is made here: after fork() in a
    // multi-threaded process the child may only make async-signal-safe calls.
    let addresses: Vec<libc::sockaddr_ll> =
        frames.iter().map(|f| link_address(ifindex, f)).collect();
    let mut pipe = [0 as RawFd; 2];
    // SAFETY: pipe2 fills the array on success.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [reader, writer] = pipe;
    // SAFETY: the child runs only raw system calls and ends with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the child; see above.
        unsafe { child(ns, frames, &addresses, writer) }
    }
    // SAFETY: our own descriptor.
    unsafe { libc::close(writer) };
    if pid < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: our own descriptor.
        unsafe { libc::close(reader) };
        return Err(e);
    }
    let mut status = [0u8; 4];
    // SAFETY: reading into a local buffer of the given size.
    let n = unsafe { libc::read(reader, status.as_mut_ptr() as *mut libc::c_void, 4) };
    // SAFETY: our own descriptor.
    unsafe { libc::close(reader) };
    // Reaped in the background; a CLI that exits first leaves it to init.
    std::thread::spawn(move || {
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    });
    match (n, i32::from_ne_bytes(status)) {
        (4, 0) => Ok(()),
        (4, e) => Err(io::Error::from_raw_os_error(e)),
        _ => Err(io::Error::other("the announcing process died")),
    }
}

/// The child's whole life.
///
/// SAFETY: call only in a freshly forked child; it never returns.
unsafe fn child(
    ns: RawFd,
    frames: &[Vec<u8>],
    addresses: &[libc::sockaddr_ll],
    writer: RawFd,
) -> ! {
    let mut err = 0;
    let mut sock = -1;
    if libc::setns(ns, libc::CLONE_NEWNET) != 0 {
        err = errno();
    } else {
        // Protocol 0: send only, never receives.
        sock = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            err = errno();
        }
    }
    if err == 0 {
        for (f, a) in frames.iter().zip(addresses) {
            let n = libc::sendto(
                sock,
                f.as_ptr() as *const libc::c_void,
                f.len(),
                0,
                a as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            );
            if n < 0 {
                err = errno();
                break;
            }
        }
    }
    libc::write(writer, err.to_ne_bytes().as_ptr() as *const libc::c_void, 4);
    // Every inherited descriptor but the packet socket goes now (standard
    // output, locks, the parent's sockets); _exit then releases the socket.
    if sock > 0 {
        libc::syscall(libc::SYS_close_range, 0u32, (sock - 1) as u32, 0u32);
    }
    libc::syscall(
        libc::SYS_close_range,
        (sock + 1).max(0) as u32,
        u32::MAX,
        0u32,
    );
    libc::_exit(0)
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
