//! The DHCPv4 client's sockets, bound to one interface inside the guest.
//!
//! The protocol (building and reading the packets) is `pipework-dhcp`'s;
//! this module only opens, sends and receives.

use std::io;
use std::mem::size_of;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use crate::netns::Netns;
use crate::sockopt::{cvt, setsockopt};

const ETH_P_IP: u16 = 0x0800;
/// The DHCPv4 client port (RFC 2131 section 4.1).
pub const CLIENT_PORT: u16 = 68;
/// The DHCPv4 server port.
pub const SERVER_PORT: u16 = 67;
const PACKET_OUTGOING: u8 = 4;

/// A packet socket for everything we receive and for broadcasts, plus a UDP
/// socket on port 68 for unicast (and so that the kernel does not answer the
/// server's unicast replies with ICMP port unreachable).
#[derive(Debug)]
pub struct Socket4 {
    raw: AsyncFd<OwnedFd>,
    udp: OwnedFd,
    ifindex: u32,
}

/// Classic BPF: accept IPv4 UDP to port 68 that is not a fragment, so the
/// daemon is not woken by the guest's other traffic.
fn filter() -> [libc::sock_filter; 9] {
    let s = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    [
        s(0x30, 0, 0, 9),           // ldb [9]           protocol
        s(0x15, 0, 6, 17),          // jeq #17 else drop
        s(0x28, 0, 0, 6),           // ldh [6]           flags + offset
        s(0x45, 4, 0, 0x1fff),      // jset #0x1fff -> drop
        s(0xb1, 0, 0, 0),           // ldxb 4*([0]&0xf)
        s(0x48, 0, 0, 2),           // ldh [x+2]         UDP destination port
        s(0x15, 0, 1, 68),          // jeq #68 else drop
        s(0x06, 0, 0, 0x0004_0000), // accept
        s(0x06, 0, 0, 0),           // drop
    ]
}

fn open_raw(ifindex: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            i32::from(ETH_P_IP.to_be()),
        )
    })?;
    // SAFETY: fd is new and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let prog = filter();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)?;
    // SAFETY: zeroed sockaddr_ll is valid; fields set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_IP.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: valid address of the given size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const _ as *const libc::sockaddr,
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

fn sockaddr_in(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn open_udp(ifindex: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: fd is new and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one)?;
    // Bound to the interface before bind(2): two interfaces of one guest can
    // each have their client on port 68.
    let idx = ifindex as libc::c_int;
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_BINDTOIFINDEX, &idx)?;
    // Replies are read from the packet socket; keep this queue tiny.
    let small: libc::c_int = 1;
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &small)?;
    let sa = sockaddr_in(Ipv4Addr::UNSPECIFIED, CLIENT_PORT);
    // SAFETY: valid address of the given size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

impl Socket4 {
    /// Opens both sockets inside `ns`, bound to `ifindex`.
    pub async fn open(ns: &Netns, ifindex: u32) -> io::Result<Socket4> {
        let (raw, udp) = ns
            .run_async(move || -> io::Result<(OwnedFd, OwnedFd)> {
                Ok((open_raw(ifindex)?, open_udp(ifindex)?))
            })
            .await??;
        Ok(Socket4 {
            raw: crate::fdwatch::readable(raw)?,
            udp,
            ifindex,
        })
    }

    /// Broadcasts `pkt`, a whole IPv4 packet, to the Ethernet broadcast
    /// address.
    pub fn broadcast(&self, pkt: &[u8]) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_IP.to_be();
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // SAFETY: buffer and address valid for their lengths.
        let n = unsafe {
            libc::sendto(
                self.raw.get_ref().as_raw_fd(),
                pkt.as_ptr() as *const libc::c_void,
                pkt.len(),
                0,
                &sll as *const _ as *const libc::sockaddr,
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends `payload` to `server`:67 through the kernel's UDP stack.
    pub fn unicast(&self, server: Ipv4Addr, payload: &[u8]) -> io::Result<()> {
        let sa = sockaddr_in(server, SERVER_PORT);
        // SAFETY: buffer and address valid for their lengths.
        let n = unsafe {
            libc::sendto(
                self.udp.as_raw_fd(),
                payload.as_ptr() as *const libc::c_void,
                payload.len(),
                0,
                &sa as *const _ as *const libc::sockaddr,
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next received IPv4 packet (not one of our own outgoing ones).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.raw.readable().await?;
            let r = guard.try_io(|fd| {
                // SAFETY: zeroed sockaddr_ll is valid for recvfrom to fill.
                let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                // SAFETY: buffer and address valid for their lengths.
                let n = unsafe {
                    libc::recvfrom(
                        fd.get_ref().as_raw_fd(),
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                        0,
                        &mut sll as *mut _ as *mut libc::sockaddr,
                        &mut len,
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok((n as usize, sll.sll_pkttype))
            });
            match r {
                Ok(Ok((_, PACKET_OUTGOING))) => continue,
                Ok(Ok((n, _))) => return Ok(n),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}
