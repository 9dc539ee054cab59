//! pipework's drivers, one module each, and the registry the CLI hands to the
//! core.
//!
//! Implemented: Linux bridge, macvlan, Open vSwitch. The other kinds of the
//! design (IPoIB, SR-IOV VF, physical NIC, dummy) are chosen by the same probe
//! and are refused with a clear message until their modules land.

pub mod bridge;
pub mod macvlan;
pub mod ovs;
pub mod shim;
mod veth;

use async_trait::async_trait;
use pipework_core::driver::{Driver, DriverKind, DriverSet};
use pipework_core::error::Result;
use pipework_core::settings::Settings;

/// Every driver this build has.
pub struct Drivers {
    bridge: bridge::LinuxBridge,
    macvlan: macvlan::Macvlan,
    ovs: ovs::Ovs,
}

impl Drivers {
    pub fn new() -> Drivers {
        Drivers {
            bridge: bridge::LinuxBridge,
            macvlan: macvlan::Macvlan,
            ovs: ovs::Ovs::new(),
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
            DriverKind::Ovs => Some(&self.ovs),
            _ => None,
        }
    }

    async fn is_ovs_bridge(&self, name: &str, settings: &Settings) -> Result<bool> {
        self.ovs.is_bridge(name, settings).await
    }

    async fn gc(&self, settings: &Settings) -> Result<Vec<String>> {
        self.ovs.gc(settings).await
    }
}
