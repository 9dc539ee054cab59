//! A process held by pidfd, so its namespace can be opened without a PID-reuse
//! race and its exit noticed.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use pipework_sys::netns::Netns;

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
        let pidfd = pipework_sys::process::pidfd_open(pid)?;
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
        !pipework_sys::process::pidfd_exited(self.pidfd.as_fd())
    }
}
