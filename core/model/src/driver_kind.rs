//! Which driver plugs a guest in: the probe's answer, recorded with every
//! attachment.

use serde::{Deserialize, Serialize};

/// The seven drivers of the design.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverKind {
    /// veth pair, host end a port of a Linux bridge.
    LinuxBridge,
    /// veth pair, host end a port of an Open vSwitch bridge.
    Ovs,
    /// macvlan child of a physical interface (optionally of its 802.1Q child).
    Macvlan,
    /// IPoIB child with a partition key.
    Ipoib,
    /// An SR-IOV virtual function moved into the guest.
    SriovVf,
    /// The physical NIC itself moved into the guest (`--direct-phys`).
    Phys,
    /// A dummy interface created in the guest.
    Dummy,
}

impl DriverKind {
    pub const ALL: [DriverKind; 7] = [
        DriverKind::LinuxBridge,
        DriverKind::Ovs,
        DriverKind::Macvlan,
        DriverKind::Ipoib,
        DriverKind::SriovVf,
        DriverKind::Phys,
        DriverKind::Dummy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::LinuxBridge => "linux_bridge",
            DriverKind::Ovs => "ovs",
            DriverKind::Macvlan => "macvlan",
            DriverKind::Ipoib => "ipoib",
            DriverKind::SriovVf => "sriov_vf",
            DriverKind::Phys => "phys",
            DriverKind::Dummy => "dummy",
        }
    }
}

impl std::fmt::Display for DriverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
