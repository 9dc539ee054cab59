//! SIGINT, SIGTERM and SIGHUP during an attach: the first one makes the attach
//! stop at its next step and undo what it did, instead of dying half-way and
//! leaving links behind (the original's `set -e` behaviour). A second signal
//! kills the process as usual.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::error::{Error, Result};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    RECEIVED.store(sig, Ordering::SeqCst);
    // SAFETY: signal(2) is async-signal-safe; the next one gets the default.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

/// Installs the handlers (the CLI does, before any change).
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only touches an atomic and calls signal(2).
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// Fails once a signal has arrived.
pub fn check() -> Result<()> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => Ok(()),
        sig => Err(Error::failed(format!("interrupted by signal {sig}"))),
    }
}
