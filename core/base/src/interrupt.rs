//! SIGINT, SIGTERM and SIGHUP during an attach: the first one makes the attach
//! stop at its next step and undo what it did, instead of dying half-way and
//! leaving links behind (the original's `set -e` behaviour). A second signal
//! kills the process as usual.

use crate::error::{Error, Result};

/// Installs the handlers (the CLI does, before any change).
pub fn install() {
    pipework_sys::signals::install_latch();
}

/// Fails once a signal has arrived.
pub fn check() -> Result<()> {
    match pipework_sys::signals::latched() {
        None => Ok(()),
        Some(sig) => Err(Error::failed(format!("interrupted by signal {sig}"))),
    }
}
