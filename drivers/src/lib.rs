//! pipework's drivers, one module each, and the registry the CLI hands to the
//! core.
//!
//! Implemented: Linux bridge (with VLAN filtering), macvlan (on 802.1Q
//! sub-interfaces too), dummy, physical NIC (`--direct-phys`), SR-IOV VF,
//! IPoIB. Open vSwitch is chosen by the same probe and refused with a clear
//! message until its module lands.

pub mod bridge;
mod bridge_vlan;
pub mod dummy;
pub mod ipoib;
pub mod macvlan;
pub mod phys;
mod rdma;
pub mod sriov;
mod veth;
mod vlan;

use async_trait::async_trait;
use pipework_core::driver::{Driver, DriverKind, DriverSet};

/// Every driver this build has.
pub struct Drivers {
    bridge: bridge::LinuxBridge,
    macvlan: macvlan::Macvlan,
    hw: Hardware,
}

/// The hardware drivers, grouped to keep the registry's merge points small.
struct Hardware {
    dummy: dummy::Dummy,
    phys: phys::Phys,
    sriov: sriov::SriovVf,
    ipoib: ipoib::Ipoib,
}

impl Drivers {
    pub fn new() -> Drivers {
        Drivers {
            bridge: bridge::LinuxBridge,
            macvlan: macvlan::Macvlan,
            hw: Hardware {
                dummy: dummy::Dummy,
                phys: phys::Phys,
                sriov: sriov::SriovVf,
                ipoib: ipoib::Ipoib,
            },
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
            DriverKind::Dummy => Some(&self.hw.dummy),
            DriverKind::Phys => Some(&self.hw.phys),
            DriverKind::SriovVf => Some(&self.hw.sriov),
            DriverKind::Ipoib => Some(&self.hw.ipoib),
            _ => None,
        }
    }
}
