//! Test-only fault injection at named steps of an attach.
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
    "bridge-ready",
    "ovs-bridge-read",
    "ovs-port-added",
    "link-created",
    "link-configured",
    "address-added",
    "routes-added",
    "link-up",
    "ovs-flows-added",
    "announced",
    "before-commit",
];

/// Fails or runs a hook when the test environment asks for this point.
#[cfg(feature = "fault-injection")]
pub fn point(name: &str) -> Result<()> {
    debug_assert!(POINTS.contains(&name), "unknown fault point {name}");
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
    Ok(())
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) -> Result<()> {
    Ok(())
}
