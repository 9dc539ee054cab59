//! A latch for SIGINT, SIGTERM and SIGHUP: the first one is remembered (so
//! that an attach can stop at its next step and undo what it did), and puts
//! the default action back, so that a second one ends the process as usual.

use std::sync::atomic::{AtomicI32, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    RECEIVED.store(sig, Ordering::SeqCst);
    // SAFETY: signal(2) is async-signal-safe; the next one gets the default.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

/// Installs the latch for SIGINT, SIGTERM and SIGHUP.
pub fn install_latch() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic and calls signal(2),
        // both async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// The first signal latched, if any.
pub fn latched() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// The write end of the daemon's self-pipe, once [`Shutdown::install`] made
/// it (-1 before).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// The last signal [`Shutdown`] caught. Not the latch's [`RECEIVED`]: a
/// daemon told to stop finishes what it is doing, it does not undo it.
static SHUTDOWN_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_shutdown_signal(sig: libc::c_int) {
    SHUTDOWN_SIGNAL.store(sig, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; errno is put back so that
        // the interrupted code sees its own. A full pipe already holds a
        // wake-up, so a failed write loses nothing.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, [1u8].as_ptr().cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
}

/// SIGTERM and SIGINT for a long-running process (the daemon): each one
/// wakes [`Shutdown::recv`], none ends the process by itself.
///
/// Our own self-pipe rather than `tokio::signal`: with tokio's `signal`
/// feature compiled in, every runtime sets up its signal driver (a socket
/// pair, a table for every signal number) whether or not anything waits
/// for a signal, and every command of this binary starts a runtime; the
/// attach path has its own latch ([`install_latch`]).
pub struct Shutdown {
    rx: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
}

impl Shutdown {
    /// Installs the handlers; needs a tokio runtime. Call once per process.
    pub fn install() -> std::io::Result<Shutdown> {
        use std::os::fd::FromRawFd;
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two descriptors on success.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both are ours and open; the write end is kept open for
        // the handler for the life of the process (never closed, so the
        // handler never writes to a reused number).
        let rx = unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[0]) };
        // A second install leaves the first write end open (a handler
        // running now may still write to it).
        WAKE_FD.store(fds[1], Ordering::SeqCst);
        for sig in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: a zeroed sigaction with our handler; the handler only
            // touches atomics and write(2).
            let rc = unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_shutdown_signal as *const () as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut())
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(Shutdown {
            rx: crate::fdwatch::readable(rx)?,
        })
    }

    /// Waits for the next SIGTERM or SIGINT; returns its number.
    pub async fn recv(&self) -> std::io::Result<i32> {
        use std::os::fd::AsRawFd;
        loop {
            let mut guard = self.rx.readable().await?;
            let mut buf = [0u8; 64];
            // SAFETY: reads into our buffer from our non-blocking descriptor.
            let n = unsafe {
                libc::read(
                    self.rx.get_ref().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n > 0 {
                return Ok(SHUTDOWN_SIGNAL.load(Ordering::SeqCst));
            }
            let err = std::io::Error::last_os_error();
            if n == 0 || err.kind() != std::io::ErrorKind::WouldBlock {
                return Err(if n == 0 {
                    std::io::Error::other("signal pipe closed")
                } else {
                    err
                });
            }
            guard.clear_ready();
        }
    }
}
