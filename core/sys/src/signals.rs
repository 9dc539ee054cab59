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
