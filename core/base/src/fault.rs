//! The named steps of an attach: where a signal stops it (see
//! `interrupt.rs`) and, in test builds, where faults are injected.
//!
//! Built only with the `fault-injection` feature, which the test suite enables
//! and installed binaries do not. Two environment variables drive it:
//! - `PIPEWORK_FAULT=<point>`: the attach fails at that point, as if the step
//!   after it had failed, so the rollback from there can be checked;
//! - `PIPEWORK_FAULT_HOOK=<point>:<shell command>`: runs the command at that
//!   point and waits for it (to kill the guest mid-attach, say).

use crate::error::Result;

/// The points, in the order an attach passes them.
pub const POINTS: &[&str] = &[
    "validated",
    "bridge-made",
    "bridge-ready",
    "ovs-bridge-read",
    "ovs-port-added",
    "link-created",
    "link-configured",
    "address-added",
    "routes-added",
    "link-up",
    "ovs-flows-added",
    "dhcp-bound",
    "announced",
    "before-commit",
];

/// Fails or runs a hook when the test environment asks for this point.
#[cfg(feature = "fault-injection")]
pub fn point(name: &str) -> Result<()> {
    debug_assert!(POINTS.contains(&name), "unknown fault point {name}");
    tracing::trace!(point = name, "reached");
    if let Ok(hook) = std::env::var("PIPEWORK_FAULT_HOOK") {
        if let Some((p, cmd)) = hook.split_once(':') {
            if p == name {
                let _ = std::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg(cmd)
                    .status();
            }
        }
    }
    if std::env::var("PIPEWORK_FAULT").ok().as_deref() == Some(name) {
        return Err(crate::error::Error::failed(format!(
            "injected fault at {name}"
        )));
    }
    crate::interrupt::check()
}

/// In normal builds a point only shows in `-vv` output, with its time.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(name: &str) -> Result<()> {
    tracing::trace!(point = name, "reached");
    crate::interrupt::check()
}
