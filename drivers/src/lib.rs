//! pipework's drivers, one module each, and the registry the CLI hands to the
//! core.
//!
//! Implemented: Linux bridge, macvlan. The other kinds of the design (OVS,
//! IPoIB, SR-IOV VF, physical NIC, dummy) are chosen by the same probe and are
//! refused with a clear message until their modules land.

pub mod bridge;
pub mod macvlan;
pub mod shim;
mod veth;

use async_trait::async_trait;
use pipework_core::driver::{Driver, DriverKind, DriverSet};

/// Every driver this build has.
pub struct Drivers {
    bridge: bridge::LinuxBridge,
    macvlan: macvlan::Macvlan,
}

impl Drivers {
    pub fn new() -> Drivers {
        Drivers {
            bridge: bridge::LinuxBridge,
            macvlan: macvlan::Macvlan,
        }
    }
}

impl Default for Drivers {
    fn default() -> Self {
        Drivers::new()
    }
}

#[async_trait]
impl DriverSet for Drivers {
    fn get(&self, kind: DriverKind) -> Option<&dyn Driver> {
        match kind {
            DriverKind::LinuxBridge => Some(&self.bridge),
            DriverKind::Macvlan => Some(&self.macvlan),
            _ => None,
        }
    }
}
