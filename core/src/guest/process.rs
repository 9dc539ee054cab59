//! A process held by pidfd, so its namespace can be opened without a PID-reuse
//! race and its exit noticed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use crate::netns::Netns;

#[derive(Debug)]
pub struct Process {
    pid: u32,
    pidfd: OwnedFd,
}

impl Process {
    /// Opens the process and its network namespace. The pidfd is taken first
    /// and checked again after the namespace is open: if the process was still
    /// alive then, the namespace is the one of the process the user meant.
    pub fn open_with_netns(pid: u32) -> io::Result<(Process, Netns)> {
        // SAFETY: plain syscall; the result is a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::ESRCH) {
                io::Error::new(io::ErrorKind::NotFound, format!("no process {pid}"))
            } else {
                e
            });
        }
        // SAFETY: fd is a new, owned descriptor.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let p = Process { pid, pidfd };
        let netns = Netns::open(&PathBuf::from(format!("/proc/{pid}/ns/net")))?;
        if !p.is_alive() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("process {pid} exited"),
            ));
        }
        Ok((p, netns))
    }

    /// Wraps a pidfd received from elsewhere (the daemon gets it from the
    /// attach over its socket).
    pub fn from_pidfd(pid: u32, pidfd: OwnedFd) -> Process {
        Process { pid, pidfd }
    }

    /// The pidfd: readable once the process has exited.
    pub fn pidfd(&self) -> &OwnedFd {
        &self.pidfd
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A pidfd becomes readable when the process exits.
    pub fn is_alive(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n == 0
    }
}
