//! Telling the neighbours about a new address: a gratuitous ARP for IPv4 and
//! an unsolicited neighbour advertisement for IPv6. No `arping` needed.
//!
//! - IPv4, on an Ethernet link this attach made (veth, macvlan): a
//!   gratuitous ARP in the reply form ([`crate::bridge_arp::gratuitous_arp_reply`]) out of
//!   the
//!   guest's link, from a packet socket opened inside the guest. Closing a
//!   packet socket waits for an RCU grace period (`synchronize_net()` in
//!   `packet_release`, 12-16 ms on the development machine), which either
//!   the command or a process left behind would pay: this one is released
//!   by the kernel after us ([`crate::late_release`]), and where that is
//!   not possible it is not used.
//! - IPv4 otherwise (and as the fallback): the kernel sends the gratuitous
//!   ARP itself. With the link's `arp_notify` devconf set, a
//!   `NETDEV_CHANGEADDR` event makes it send one ARP announcement (the
//!   request form, RFC 5227 section 2.3) for every IPv4 address of the link;
//!   setting the link's MAC to the value it already has raises that event
//!   without changing anything else. The reply form is preferred where we
//!   can send it: every receiver of a request also looks a route up for its
//!   target (a route entry made and freed through RCU, per receiver), which
//!   made the announcement cost twice the CPU on a bridge of 1000 ports
//!   (3.5 against 1.75 ms for the whole host, per announcement, 2026-12-02).
//!   Side effect of the event, inside the guest only: the link's neighbour
//!   cache entries are flushed (they are relearned on next use).
//! - IPv6: the advertisement goes out of a raw ICMPv6 socket opened inside
//!   the guest (as sriov-cni does), whose close costs nothing.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use netlink_packet_core::DefaultNla;
use netlink_packet_route::link::{AfSpecInet, AfSpecUnspec, LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use crate::bridge_arp::ArpSocket;
use crate::netlink::{LinkChange, Netlink};
use pipework_model::MacAddr;

/// `IFLA_INET_CONF` inside `IFLA_AF_SPEC`/`AF_INET`.
const IFLA_INET_CONF: u16 = 1;
/// `IPV4_DEVCONF_ARP_NOTIFY`.
const IPV4_DEVCONF_ARP_NOTIFY: u16 = 22;
/// `ICMP6_FILTER` (`<netinet/icmp6.h>`), at level `IPPROTO_ICMPV6`.
const ICMP6_FILTER: libc::c_int = 1;

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The ICMPv6 part of an unsolicited neighbour advertisement to all nodes
/// (RFC 4861 section 7.2.6): override flag set, target link-layer address
/// option included. The checksum is left 0: the kernel fills it in on raw
/// ICMPv6 sockets.
pub fn unsolicited_na(mac: MacAddr, ip: Ipv6Addr) -> [u8; 32] {
    let mut icmp = [0u8; 32];
    icmp[0] = 136; // neighbour advertisement
    icmp[4..8].copy_from_slice(&0x2000_0000u32.to_be_bytes()); // O flag
    icmp[8..24].copy_from_slice(&ip.octets());
    icmp[24] = 2; // target link-layer address
    icmp[25] = 1; // 8 bytes
    icmp[26..32].copy_from_slice(&mac.0);
    icmp
}

/// What announces the addresses: a packet socket inside the guest or the
/// guest's netlink socket for IPv4, a raw ICMPv6 socket inside the guest
/// for IPv6.
pub struct Announcer {
    /// `Err` when the guest has no IPv6 (the socket could not be made).
    icmp6: io::Result<OwnedFd>,
    /// `Err` when no socket released after us could be made: the kernel
    /// announces instead.
    arp: io::Result<ArpSocket>,
}

impl Announcer {
    /// Opens the packet socket if `ipv4` addresses are to be announced and
    /// the ICMPv6 socket if `ipv6` ones are; call on a thread inside the
    /// guest's namespace (see [`crate::netlink::Netlink::connect_in_with`]).
    /// Never fails: without IPv6 in the guest only the IPv6 announcements
    /// fail, and without the packet socket the kernel sends the ARP.
    pub fn open(ipv4: bool, ipv6: bool) -> io::Result<Announcer> {
        fn none<T>(what: &str) -> io::Result<T> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("no {what} address was to be announced"),
            ))
        }
        let icmp6 = if ipv6 { open_icmp6() } else { none("IPv6") };
        let arp = if ipv4 {
            ArpSocket::open(true)
        } else {
            none("IPv4")
        };
        Ok(Announcer { icmp6, arp })
    }

    /// Announces `addrs` on link `ifindex`, an Ethernet link whose MAC is
    /// `mac`, with a gratuitous ARP each out of the link from the guest's
    /// side (learned on the way by the bridge or switch it is a port of).
    /// Fails if there is no packet socket (see [`Announcer::open`]): the
    /// caller then has the kernel announce them.
    pub fn send_arp(&self, ifindex: u32, mac: MacAddr, addrs: &[Ipv4Addr]) -> io::Result<()> {
        let sock = self
            .arp
            .as_ref()
            .map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
        addrs.iter().try_for_each(|ip| sock.send(ifindex, mac, *ip))
    }

    /// Announces `addrs`, the addresses of link `ifindex` (whose MAC is
    /// `mac`), through `nl`, a netlink socket in the link's namespace. Tries
    /// every address; returns the first failure.
    ///
    /// `notify_on`: the caller turned `arp_notify` on for this link (a link
    /// pipework made in this attach, see [`fresh_link_notify`]), so one
    /// request, the MAC set again, is the whole IPv4 announcement.
    pub async fn send(
        &self,
        nl: &Netlink,
        ifindex: u32,
        mac: MacAddr,
        addrs: &[IpAddr],
        notify_on: bool,
    ) -> io::Result<()> {
        let mut first_err = None;
        if addrs.iter().any(IpAddr::is_ipv4) {
            let r = if notify_on {
                nl.change_link(
                    LinkChange::new(ifindex)
                        .mac(mac)
                        .describe(format!("announce the IPv4 addresses of link #{ifindex}")),
                )
                .await
                .map_err(io::Error::other)
            } else {
                kernel_garp(nl, ifindex).await
            };
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        for a in addrs {
            let IpAddr::V6(v6) = a else { continue };
            let r = match &self.icmp6 {
                Ok(sock) => send_na(sock, ifindex, *v6, &unsolicited_na(mac, *v6)),
                Err(e) => Err(io::Error::new(e.kind(), format!("no ICMPv6 socket: {e}"))),
            };
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// Turns `arp_notify` on as part of `change`, the request that names and
/// brings up a link pipework has just made: its later announcement is then
/// one request (the MAC set again), and the guest keeps announcing itself on
/// its own link-ups and MAC changes, which is what `arp_notify` is for.
pub fn fresh_link_notify(change: LinkChange) -> LinkChange {
    change.arp_notify()
}

/// Makes the kernel send a gratuitous ARP for every IPv4 address of
/// `ifindex`: `arp_notify` on, the link's own MAC set again (raising
/// `NETDEV_CHANGEADDR`), `arp_notify` back to its value in the same request
/// (the kernel applies `IFLA_ADDRESS` before `IFLA_AF_SPEC`).
async fn kernel_garp(nl: &Netlink, ifindex: u32) -> io::Result<()> {
    let (mac, notify, noarp) = link_mac_and_notify(nl, ifindex).await?;
    if noarp {
        return Ok(());
    }
    let mut poke = LinkChange::new(ifindex)
        .mac(mac)
        .describe(format!("announce the IPv4 addresses of link #{ifindex}"));
    if notify == 0 {
        nl.change_link(
            LinkChange::new(ifindex)
                .arp_notify()
                .describe(format!("set arp_notify on link #{ifindex}")),
        )
        .await
        .map_err(io::Error::other)?;
        poke = poke.attribute(arp_notify_attr(0));
    }
    match nl.change_link(poke).await {
        Ok(()) => Ok(()),
        Err(e) => {
            if notify == 0 {
                // Put the setting back on its own; if that fails too the
                // guest merely announces its next link-up or MAC change.
                let _ = nl
                    .change_link(
                        LinkChange::new(ifindex)
                            .attribute(arp_notify_attr(0))
                            .describe(format!("reset arp_notify on link #{ifindex}")),
                    )
                    .await;
            }
            Err(io::Error::other(e))
        }
    }
}

/// `IFLA_AF_SPEC` setting the `arp_notify` devconf to `value` (the
/// library's `InetDevConf` request form leaves out zero values).
fn arp_notify_attr(value: u32) -> LinkAttribute {
    let mut conf = Vec::with_capacity(8);
    conf.extend_from_slice(&8u16.to_ne_bytes());
    conf.extend_from_slice(&IPV4_DEVCONF_ARP_NOTIFY.to_ne_bytes());
    conf.extend_from_slice(&value.to_ne_bytes());
    LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![AfSpecInet::Other(
        DefaultNla::new(IFLA_INET_CONF, conf),
    )])])
}

/// The link's MAC, its own `arp_notify` devconf and whether it is `NOARP`.
async fn link_mac_and_notify(nl: &Netlink, ifindex: u32) -> io::Result<(MacAddr, i32, bool)> {
    let mut m = LinkMessage::default();
    m.header.index = ifindex;
    let replies = nl
        .request(RouteNetlinkMessage::GetLink(m), 0, || {
            format!("get link #{ifindex}")
        })
        .await
        .map_err(io::Error::other)?;
    let link = replies
        .iter()
        .find_map(|r| match r {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        })
        .ok_or_else(|| io::Error::other(format!("link #{ifindex} not found")))?;
    let mut mac = None;
    let mut notify = None;
    for a in &link.attributes {
        match a {
            LinkAttribute::Address(b) if b.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(b);
                mac = Some(MacAddr(m));
            }
            LinkAttribute::AfSpecUnspec(specs) => {
                for s in specs {
                    let AfSpecUnspec::Inet(inet) = s else {
                        continue;
                    };
                    for i in inet {
                        if let AfSpecInet::DevConf(c) = i {
                            notify = Some(c.arp_notify);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let noarp = link.header.flags.contains(LinkFlags::Noarp);
    let mac =
        mac.ok_or_else(|| io::Error::other(format!("link #{ifindex} has no Ethernet address")))?;
    let notify = notify
        .ok_or_else(|| io::Error::other(format!("link #{ifindex} has no IPv4 configuration")))?;
    Ok((mac, notify, noarp))
}

/// A raw ICMPv6 socket: hop limit 255 for multicast (receivers drop
/// neighbour discovery with any other), no loopback of our own
/// advertisements, and every incoming ICMPv6 message filtered out (it only
/// sends).
fn open_icmp6() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMPV6,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is new and ours.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    setsockopt(
        &sock,
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_HOPS,
        &255i32,
    )?;
    setsockopt(&sock, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &0i32)?;
    // struct icmp6_filter: a set bit blocks that type; all blocked.
    setsockopt(&sock, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &[u32::MAX; 8])?;
    Ok(sock)
}

fn setsockopt<T>(sock: &OwnedFd, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` is valid for `size_of::<T>()` bytes; the kernel copies it.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `icmp` to all nodes on link `ifindex` from `src` (`IPV6_PKTINFO`
/// picks both). The kernel refuses a tentative `src`: an address still in
/// duplicate address detection must not be advertised.
fn send_na(sock: &OwnedFd, ifindex: u32, src: Ipv6Addr, icmp: &[u8]) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_in6.
    let mut dst: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    dst.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    dst.sin6_addr.s6_addr = ALL_NODES.octets();
    dst.sin6_scope_id = ifindex;
    let info = libc::in6_pktinfo {
        ipi6_addr: libc::in6_addr {
            s6_addr: src.octets(),
        },
        ipi6_ifindex: ifindex,
    };
    // Room for one cmsghdr carrying an in6_pktinfo, suitably aligned.
    let mut cbuf = [0u64; 8];
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::in6_pktinfo>() as u32) };
    if space as usize > std::mem::size_of_val(&cbuf) {
        return Err(io::Error::other("control buffer too small"));
    }
    let mut iov = libc::iovec {
        iov_base: icmp.as_ptr() as *mut libc::c_void,
        iov_len: icmp.len(),
    };
    // SAFETY: all-zero is a valid msghdr; the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut dst as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as usize;
    // SAFETY: msg_control points at `space` zeroed, aligned bytes, enough
    // for one header and its in6_pktinfo (checked above), so the first
    // header and its data are in bounds.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() {
            return Err(io::Error::other("no room for IPV6_PKTINFO"));
        }
        (*c).cmsg_level = libc::IPPROTO_IPV6;
        (*c).cmsg_type = libc::IPV6_PKTINFO;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::in6_pktinfo>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>(), info);
    }
    // SAFETY: msg and everything it points to live across the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("neighbour advertisement for {src}: {e}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn na_layout() {
        let mac: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let ip: Ipv6Addr = "fd00::2".parse().unwrap();
        let b = unsolicited_na(mac, ip);
        assert_eq!(b[0], 136);
        assert_eq!(&b[2..4], &[0, 0], "the kernel fills the checksum in");
        assert_eq!(b[4], 0x20, "override set, solicited and router clear");
        assert_eq!(&b[8..24], &ip.octets());
        assert_eq!(&b[24..26], &[2, 1]);
        assert_eq!(&b[26..32], &mac.0);
        // What the kernel will put in verifies.
        let mut c = b;
        let sum = icmpv6_checksum(&ip, &ALL_NODES, &c);
        c[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(icmpv6_checksum(&ip, &ALL_NODES, &c), 0);
    }

    #[test]
    fn arp_notify_attribute_bytes() {
        use netlink_packet_core::Emitable;
        let a = arp_notify_attr(0);
        let mut buf = vec![0u8; a.buffer_len()];
        a.emit(&mut buf);
        // IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF { ARP_NOTIFY = 0 } } }:
        // three nesting headers, then the one setting.
        let kind = |at: usize| u16::from_ne_bytes([buf[at + 2], buf[at + 3]]) & 0x3fff;
        assert_eq!(buf.len(), 20);
        assert_eq!((kind(0), kind(4), kind(8)), (26, 2, 1));
        let mut want = Vec::new();
        want.extend_from_slice(&8u16.to_ne_bytes());
        want.extend_from_slice(&22u16.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        assert_eq!(&buf[12..], &want[..]);
    }
}
