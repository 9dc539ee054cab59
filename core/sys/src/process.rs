//! Processes: pidfds (to name a process without a PID-reuse race and to
//! notice its exit), signals, and what a child does between fork and exec.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// `pidfd_open(2)`. A process that does not exist is `NotFound`.
///
/// Raw because neither `nix` 0.31 nor `std` wraps it (std's pidfd support
/// is for children only).
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let raw = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("pid {pid}")))?;
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(libc::ESRCH) {
            io::Error::new(io::ErrorKind::NotFound, format!("no process {pid}"))
        } else {
            e
        });
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("pidfd_open: bad descriptor"))?;
    // SAFETY: the kernel just returned this descriptor to us and nothing
    // else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether the process behind a pidfd has exited (the pidfd is readable
/// then). An fd that cannot be polled counts as exited.
pub fn pidfd_exited(pidfd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(pidfd, PollFlags::POLLIN)];
    !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(0))
}

/// Sends signal number `sig` to process `pid`.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    let sig = Signal::try_from(sig).map_err(io::Error::from)?;
    nix::sys::signal::kill(Pid::from_raw(pid), sig).map_err(io::Error::from)
}

/// This process's effective user id.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Makes `cmd`'s child start a session of its own (so that a terminal's
/// signals do not reach a daemon started on demand).
pub fn new_session_on_exec(cmd: &mut Command) {
    // SAFETY: setsid(2) is async-signal-safe and the closure does nothing else.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// Makes `cmd`'s child enter the network namespace `ns` before it runs the
/// program. `ns` must stay open until the child has been spawned.
pub fn enter_netns_on_exec(cmd: &mut Command, ns: &impl AsFd) {
    let fd = ns.as_fd().as_raw_fd();
    // SAFETY: setns(2) is async-signal-safe and the closure does nothing
    // else; the caller keeps `ns` open until spawn returns, so `fd` is valid
    // in the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
