//! Registering descriptors we own with tokio, to wait until they are
//! readable (packet sockets, pidfds, inotify, a client's hang-up).

use std::io;
use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Takes `fd` and registers it for readability with the current runtime.
pub fn readable(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the descriptor, so it can be neither closed
    // nor replaced while it is registered.
    Ok(unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?)
}
