//! The DHCPv6 client's socket: UDP on port 546, bound to one interface
//! inside the guest, multicasting through it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::sockopt::setsockopt;

/// The DHCPv6 client port (RFC 8415 section 7.2).
pub const CLIENT_PORT: u16 = 546;

/// Opens the socket; call it on a thread inside the guest's namespace.
pub fn open(ifindex: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is new and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let set = |level, name, v: libc::c_int| setsockopt(&fd, level, name, &v);
    set(libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    set(
        libc::SOL_SOCKET,
        libc::SO_BINDTOIFINDEX,
        ifindex as libc::c_int,
    )?;
    set(
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_IF,
        ifindex as libc::c_int,
    )?;
    set(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    let sa = libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: CLIENT_PORT.to_be(),
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
        sin6_scope_id: 0,
    };
    // SAFETY: a valid sockaddr_in6.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}
