//! A packet socket whose release the kernel finishes after we are gone.
//!
//! Closing an `AF_PACKET` socket waits for an RCU grace period
//! (`synchronize_net()` in `packet_release`, 12-16 ms on the development
//! machine), in the closing process, and at exit too: the command would
//! pay it, or a process left behind would. Here the socket is also put in
//! the fixed-file table of an io_uring instance made for that alone (no
//! submission ever, no ring mapped). When we close our descriptor the ring
//! still holds the file, so nothing is released; when we close the ring,
//! the kernel tears it down in a workqueue, and the last reference to the
//! socket is dropped there, by a kernel worker: the grace period is waited
//! for off our path, and nothing of ours outlives the command. Two system
//! calls (12 µs here) instead of 12 ms.
//!
//! Our own two system calls rather than the `io-uring` crate: it maps the
//! submission and completion rings, which this never uses.
//!
//! Where the kernel has no io_uring, or refuses it (`kernel.io_uring_disabled`,
//! a seccomp filter such as container runtimes' default), [`LateRelease::new`]
//! fails and gives the socket back: the caller uses another way (the
//! kernel's own announcement) rather than pay the close.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `IORING_REGISTER_FILES`.
const IORING_REGISTER_FILES: libc::c_uint = 2;
/// `sizeof(struct io_uring_params)`: 120 bytes in every kernel so far (its
/// reserved fields keep the size); the kernel writes the ring offsets there.
const PARAMS_LEN: usize = 120;

/// A socket (or any descriptor) whose last close happens in the kernel's
/// io_uring teardown rather than in this process.
///
/// Fields drop in declaration order: our descriptor first (the ring keeps
/// the file), then the ring, whose teardown the kernel queues to a worker
/// and returns. The other order would make our close the last one, and
/// pay the wait.
pub struct LateRelease {
    fd: OwnedFd,
    /// Held for its drop.
    _ring: OwnedFd,
}

/// An io_uring instance made before the descriptor it is to hold, so that
/// a caller can learn that io_uring is refused before it opens a socket
/// whose close would wait (see `ArpSocket::open`).
pub struct LateRing(OwnedFd);

impl LateRing {
    pub fn new() -> io::Result<LateRing> {
        ring().map(LateRing)
    }

    /// Registers `fd` with this instance. On failure, returns `fd`
    /// untouched with the reason.
    pub fn hold(self, fd: OwnedFd) -> Result<LateRelease, (OwnedFd, io::Error)> {
        let files = [fd.as_raw_fd()];
        // SAFETY: io_uring_register(2) reads one int from `files`, which
        // lives across the call; `self.0` is an io_uring descriptor of ours.
        let r = unsafe {
            libc::syscall(
                libc::SYS_io_uring_register,
                self.0.as_raw_fd(),
                IORING_REGISTER_FILES,
                files.as_ptr(),
                1 as libc::c_uint,
            )
        };
        if r < 0 {
            return Err((fd, io::Error::last_os_error()));
        }
        Ok(LateRelease { fd, _ring: self.0 })
    }
}

impl LateRelease {
    /// Registers `fd` with a new io_uring instance. On failure, returns
    /// `fd` untouched with the reason.
    pub fn new(fd: OwnedFd) -> Result<LateRelease, (OwnedFd, io::Error)> {
        match LateRing::new() {
            Ok(r) => r.hold(fd),
            Err(e) => Err((fd, e)),
        }
    }
}

impl AsFd for LateRelease {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A one-entry io_uring instance, close-on-exec (the kernel's default).
fn ring() -> io::Result<OwnedFd> {
    let mut params = [0u64; PARAMS_LEN / 8];
    // SAFETY: io_uring_setup(2) reads and writes `params`, 120 zeroed
    // bytes (no flags: a plain instance); the return value is checked.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_io_uring_setup,
            1 as libc::c_uint,
            params.as_mut_ptr(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor, ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into `fds`.
        let flags = libc::O_CLOEXEC | libc::O_NONBLOCK;
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), flags) }, 0);
        // SAFETY: both new and ours.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    /// The file is released once the ring is gone: the read end of a pipe
    /// sees end-of-file (rather than "try again") only when the write end,
    /// registered with the ring, has been released by the kernel.
    #[test]
    fn the_file_is_released_after_the_ring() {
        let (r, w) = pipe();
        let late = match LateRelease::new(w) {
            Ok(l) => l,
            // No io_uring here (disabled, filtered): nothing to test.
            Err((_, e)) => return eprintln!("io_uring unavailable: {e}"),
        };
        drop(late);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut b = [0u8; 1];
            // SAFETY: reads at most one byte into `b`.
            let n = unsafe { libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
            if n == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the write end was never released"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
