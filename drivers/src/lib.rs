//! pipework's drivers, one module each, and the registry the CLI hands to the
//! core.
//!
//! Every kind of the design: Linux bridge (with VLAN filtering), macvlan (on
//! 802.1Q sub-interfaces too), Open vSwitch, dummy, physical NIC
//! (`--direct-phys`), SR-IOV VF, IPoIB.
//!
//! Owns: how each kind of link is made and undone, and the host-side objects
//! that only one driver knows (OVS ports and flows, bridge VLANs, 802.1Q
//! parents, the host shim). Must not: run an attach end to end, write the
//! state directory except through `pipework-base`'s state API, make a kernel
//! or OVSDB change without recording its undo in the journal first, or use
//! `unsafe` (kernel access goes through `pipework-sys`).

#![forbid(unsafe_code)]

pub mod bridge;
mod bridge_vlan;
pub mod dummy;
pub mod ipoib;
pub mod macvlan;
pub mod ovs;
pub mod phys;
mod shared_gc;
pub mod shim;
pub mod sriov;
mod sriov_check;
mod veth;
mod vlan;

use async_trait::async_trait;
use pipework_base::driver::{Driver, DriverKind, DriverSet};
use pipework_base::error::Result;
use pipework_base::settings::Settings;

/// Every driver this build has.
pub struct Drivers {
    bridge: bridge::LinuxBridge,
    macvlan: macvlan::Macvlan,
    ovs: ovs::Ovs,
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
            ovs: ovs::Ovs::new(),
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
            DriverKind::Ovs => Some(&self.ovs),
            DriverKind::Dummy => Some(&self.hw.dummy),
            DriverKind::Phys => Some(&self.hw.phys),
            DriverKind::SriovVf => Some(&self.hw.sriov),
            DriverKind::Ipoib => Some(&self.hw.ipoib),
        }
    }

    async fn is_ovs_bridge(&self, name: &str, settings: &Settings) -> Result<bool> {
        self.ovs.is_bridge(name, settings).await
    }

    async fn changed(&self, settings: &Settings) -> String {
        self.ovs.changed(settings).await
    }

    async fn gc(&self, settings: &Settings) -> Result<Vec<String>> {
        let mut removed = self.ovs.gc(settings).await?;
        removed.extend(shared_gc::gc(settings).await?);
        Ok(removed)
    }
}
