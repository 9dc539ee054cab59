//! The two socket helpers both DHCP clients need.
//!
//! Raw `setsockopt(2)` because `nix` 0.31 has no wrapper for the options
//! used here (`SO_BINDTOIFINDEX`, `IPV6_MULTICAST_IF`, `PACKET_*`,
//! `SO_ATTACH_FILTER`).

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd};

pub(crate) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub(crate) fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    v: &T,
) -> io::Result<()> {
    // SAFETY: `v` points to a live value of the size given.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            v as *const T as *const libc::c_void,
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}
