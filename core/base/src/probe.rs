//! Choosing the driver: facts about the host interface are gathered once
//! (netlink, OVSDB, sysfs) and one pure function decides.

use crate::driver::{DriverKind, DriverSet};
use crate::error::{Error, Result};
use crate::settings::Settings;
use pipework_model::{HostSelector, MacAddr};
use pipework_sys::netlink::{Link, Netlink};
use pipework_sys::sysfs::Sysfs;

/// `ARPHRD_INFINIBAND`.
pub const ARPHRD_INFINIBAND: u16 = 32;
/// `ARPHRD_LOOPBACK`.
pub const ARPHRD_LOOPBACK: u16 = 772;

/// What we know about the host interface.
#[derive(Clone, Debug, Default)]
pub struct HostFacts {
    pub name: String,
    /// `None` when no such interface exists (yet).
    pub link: Option<Link>,
    /// Open vSwitch has a bridge by this name.
    pub ovs_bridge: bool,
    /// `device/sriov_totalvfs` from sysfs; 0 when not an SR-IOV PF.
    pub sriov_totalvfs: u32,
    /// `type` from sysfs, when sysfs has the interface: overrides the
    /// netlink link type (a fixture tree can say InfiniBand).
    pub sysfs_arphrd: Option<u16>,
    /// sysfs has a `bridge/` directory for it.
    pub sysfs_bridge: bool,
    /// The interface is itself an SR-IOV VF (`device/physfn`).
    pub is_vf: bool,
}

impl HostFacts {
    /// The link type, sysfs first.
    pub fn arphrd(&self) -> Option<u16> {
        self.sysfs_arphrd.or(self.link.as_ref().map(|l| l.arphrd))
    }
}

/// The parts of the request that steer the choice.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProbeFlags {
    /// `--direct-phys`
    pub direct_phys: bool,
    /// An explicit request for an SR-IOV VF of this PF.
    pub vf: bool,
}

/// The one decision table.
pub fn decide(f: &HostFacts, flags: ProbeFlags) -> std::result::Result<DriverKind, String> {
    let name = f.name.as_str();
    if flags.direct_phys && flags.vf {
        return Err(
            "--direct-phys moves a whole interface and --vf takes a VF of a PF: choose one"
                .to_string(),
        );
    }
    let Some(link) = &f.link else {
        if flags.direct_phys || flags.vf {
            return Err(format!("no host interface named {name}"));
        }
        if f.ovs_bridge || name.starts_with("ovs") {
            return Ok(DriverKind::Ovs);
        }
        if name.starts_with("br") {
            return Ok(DriverKind::LinuxBridge);
        }
        if name.starts_with("dummy") {
            return Ok(DriverKind::Dummy);
        }
        return Err(format!(
            "no host interface named {name} (a missing name starting with br or ovs creates that bridge, dummy creates a dummy interface)"
        ));
    };
    let is_bridge = link.is_kind("bridge") || f.sysfs_bridge;
    if is_bridge || f.ovs_bridge {
        if flags.direct_phys || flags.vf {
            return Err(format!(
                "{name} is a bridge: it cannot be moved or split into VFs"
            ));
        }
        return Ok(if is_bridge {
            DriverKind::LinuxBridge
        } else {
            DriverKind::Ovs
        });
    }
    // ovs-vswitchd removes a deleted bridge's device (a tap with the
    // userspace datapath, an `openvswitch` device with the kernel's) a moment
    // after OVSDB forgot the bridge: such a leftover is no NIC to hang a
    // macvlan on, and attaching to the name makes the bridge again.
    if name.starts_with("ovs") && (link.is_kind("tun") || link.is_kind("openvswitch")) {
        if flags.direct_phys || flags.vf {
            return Err(format!("{name} is an Open vSwitch device"));
        }
        return Ok(DriverKind::Ovs);
    }
    let arphrd = f.arphrd().unwrap_or(link.arphrd);
    if arphrd == ARPHRD_LOOPBACK {
        return Err(format!("{name} is a loopback interface"));
    }
    if flags.vf {
        if f.is_vf {
            return Err(format!(
                "{name} is itself an SR-IOV VF: name its PF with --vf, or move it with --direct-phys"
            ));
        }
        return if f.sriov_totalvfs > 0 {
            Ok(DriverKind::SriovVf)
        } else {
            Err(format!(
                "{name} is not an SR-IOV physical function (no VFs in sysfs)"
            ))
        };
    }
    if flags.direct_phys {
        return Ok(DriverKind::Phys);
    }
    if arphrd == ARPHRD_INFINIBAND {
        return Ok(DriverKind::Ipoib);
    }
    Ok(DriverKind::Macvlan)
}

/// Finds the host interface and gathers the facts about it.
pub async fn gather(
    host: &Netlink,
    sel: &HostSelector,
    drivers: &dyn DriverSet,
    settings: &Settings,
) -> Result<HostFacts> {
    let link = match sel {
        HostSelector::Name(n) => host.link_by_name(n.as_str()).await?,
        HostSelector::Mac(m) => Some(by_mac(host, *m).await?),
    };
    let name = match (&link, sel) {
        (Some(l), _) => l.name.clone(),
        (None, HostSelector::Name(n)) => n.to_string(),
        (None, HostSelector::Mac(_)) => unreachable!("by_mac returns a link or an error"),
    };
    // A Linux bridge is never also an OVS bridge: spare the OVSDB round trip.
    let ovs_bridge = match &link {
        Some(l) if l.is_kind("bridge") || l.is_kind("veth") || l.is_kind("macvlan") => false,
        _ => drivers.is_ovs_bridge(&name, settings).await?,
    };
    Ok(facts(
        name,
        link,
        ovs_bridge,
        &Sysfs::new(&settings.sysfs_root),
    ))
}

/// Combines what netlink and OVSDB said with what sysfs says.
pub fn facts(name: String, link: Option<Link>, ovs_bridge: bool, sys: &Sysfs<'_>) -> HostFacts {
    // Facts about a name that does not exist as a link would describe a
    // stranger (another namespace's device of that name, a stale fixture).
    // A link netlink calls a bridge is decided by that alone (see
    // [`decide`]): its sysfs files are not read (five lookups in /sys an
    // attach to a bridge would pay for nothing).
    let netlink_bridge = link.as_ref().is_some_and(|l| l.is_kind("bridge"));
    let present = link.is_some() && !netlink_bridge && sys.has_interface(&name);
    HostFacts {
        sriov_totalvfs: if present {
            sys.sriov_totalvfs(&name)
        } else {
            0
        },
        sysfs_arphrd: if present { sys.arphrd(&name) } else { None },
        sysfs_bridge: netlink_bridge || (present && sys.is_bridge(&name)),
        is_vf: present && sys.is_vf(&name),
        name,
        link,
        ovs_bridge,
    }
}

/// The interface with this MAC. VLAN children, macvlans and bridges share a
/// lower device's MAC, so links stacked on another match are dropped; if more
/// than one remains the choice is ambiguous and refused.
pub async fn by_mac(host: &Netlink, mac: MacAddr) -> Result<Link> {
    let links = host.links().await?;
    let matches: Vec<&Link> = links.iter().filter(|l| l.mac == Some(mac)).collect();
    let candidates = pick_by_mac(&matches);
    match candidates.as_slice() {
        [] => Err(Error::usage(format!(
            "no host interface has MAC address {mac}"
        ))),
        [one] => Ok((*one).clone()),
        many => Err(Error::usage(format!(
            "MAC address {mac} is ambiguous: {}",
            many.iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn pick_by_mac<'a>(matches: &[&'a Link]) -> Vec<&'a Link> {
    let stacked = |l: &Link| {
        matches!(
            l.kind.as_deref(),
            Some("vlan" | "macvlan" | "macvtap" | "bridge" | "bond")
        ) || l
            .master
            .is_some_and(|m| matches.iter().any(|x| x.index == m))
    };
    let roots: Vec<&Link> = matches.iter().copied().filter(|l| !stacked(l)).collect();
    if roots.is_empty() {
        matches.to_vec()
    } else {
        roots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, kind: Option<&str>, arphrd: u16) -> Link {
        Link {
            index: 5,
            name: name.into(),
            kind: kind.map(Into::into),
            mtu: 1500,
            mac: None,
            perm_mac: None,
            master: None,
            parent: None,
            parent_netnsid: None,
            up: true,
            carrier: true,
            arphrd,
            alias: None,
            num_vf: None,
            vlan_id: None,
            bridge_port_state: None,
            vlan_filtering: None,
        }
    }

    #[test]
    fn decision_table() {
        use DriverKind::*;
        let none = ProbeFlags::default();
        let dp = ProbeFlags {
            direct_phys: true,
            vf: false,
        };
        let vf = ProbeFlags {
            direct_phys: false,
            vf: true,
        };
        struct Row {
            name: &'static str,
            link: Option<Link>,
            ovs: bool,
            vfs: u32,
            flags: ProbeFlags,
            want: Option<DriverKind>,
        }
        let r = |name, link, ovs, vfs, flags, want| Row {
            name,
            link,
            ovs,
            vfs,
            flags,
            want,
        };
        let rows = vec![
            r("br1", None, false, 0, none, Some(LinuxBridge)),
            r("ovsbr0", None, false, 0, none, Some(Ovs)),
            r("sw0", None, true, 0, none, Some(Ovs)),
            r("dummy0", None, false, 0, none, Some(Dummy)),
            r("eth9", None, false, 0, none, None),
            r("br1", None, false, 0, dp, None),
            r(
                "br1",
                Some(link("br1", Some("bridge"), 1)),
                false,
                0,
                none,
                Some(LinuxBridge),
            ),
            r(
                "lan",
                Some(link("lan", Some("bridge"), 1)),
                false,
                0,
                none,
                Some(LinuxBridge),
            ),
            r(
                "br1",
                Some(link("br1", Some("bridge"), 1)),
                false,
                0,
                dp,
                None,
            ),
            r(
                "ovsbr0",
                Some(link("ovsbr0", Some("openvswitch"), 1)),
                true,
                0,
                none,
                Some(Ovs),
            ),
            r(
                "ovsbr0",
                Some(link("ovsbr0", Some("tun"), 1)),
                true,
                0,
                none,
                Some(Ovs),
            ),
            r(
                "ib0",
                Some(link("ib0", None, 32)),
                false,
                0,
                none,
                Some(Ipoib),
            ),
            r("ib0", Some(link("ib0", None, 32)), false, 0, dp, Some(Phys)),
            r(
                "ib0",
                Some(link("ib0", None, 32)),
                false,
                4,
                vf,
                Some(SriovVf),
            ),
            r(
                "eth2",
                Some(link("eth2", None, 1)),
                false,
                0,
                none,
                Some(Macvlan),
            ),
            r(
                "eth2",
                Some(link("eth2", None, 1)),
                false,
                7,
                none,
                Some(Macvlan),
            ),
            r(
                "eth2",
                Some(link("eth2", None, 1)),
                false,
                7,
                vf,
                Some(SriovVf),
            ),
            r("eth2", Some(link("eth2", None, 1)), false, 0, vf, None),
            r(
                "eth2",
                Some(link("eth2", None, 1)),
                false,
                0,
                dp,
                Some(Phys),
            ),
            r(
                "eth2.10",
                Some(link("eth2.10", Some("vlan"), 1)),
                false,
                0,
                dp,
                Some(Phys),
            ),
            r(
                "veth0",
                Some(link("veth0", Some("veth"), 1)),
                false,
                0,
                none,
                Some(Macvlan),
            ),
            r(
                "dummy0",
                Some(link("dummy0", Some("dummy"), 1)),
                false,
                0,
                none,
                Some(Macvlan),
            ),
            r("lo", Some(link("lo", None, 772)), false, 0, none, None),
            // A bridge's device that outlives its OVSDB row for a moment.
            r(
                "ovsbr0",
                Some(link("ovsbr0", Some("tun"), 1)),
                false,
                0,
                none,
                Some(Ovs),
            ),
            r(
                "tap0",
                Some(link("tap0", Some("tun"), 1)),
                false,
                0,
                none,
                Some(Macvlan),
            ),
        ];
        for row in rows {
            let f = HostFacts {
                name: row.name.into(),
                link: row.link.clone(),
                ovs_bridge: row.ovs,
                sriov_totalvfs: row.vfs,
                ..Default::default()
            };
            let got = decide(&f, row.flags).ok();
            assert_eq!(
                got,
                row.want,
                "{} {:?} ovs={} vfs={} {:?}",
                row.name,
                row.link.map(|l| l.kind),
                row.ovs,
                row.vfs,
                row.flags
            );
        }
    }

    /// The decision on fixture sysfs trees shaped like real devices.
    #[test]
    fn decision_on_sysfs_fixtures() {
        use pipework_sys::sysfs::fixture::Tree;
        use DriverKind::*;
        let t = Tree::new("probe");
        let pf = "devices/pci0000:00/0000:00:02.0";
        let vf = "devices/pci0000:00/0000:01:10.0";
        t.file(&format!("{pf}/sriov_totalvfs"), "7")
            .file(&format!("{pf}/sriov_numvfs"), "2")
            .link(&format!("{pf}/virtfn0"), "../0000:01:10.0")
            .link(&format!("{vf}/physfn"), "../0000:00:02.0")
            .file("class/net/eth0/type", "1")
            .link("class/net/eth0/device", &format!("../../../{pf}"))
            .file("class/net/eth1/type", "1")
            .link("class/net/eth1/device", &format!("../../../{vf}"))
            .file("class/net/ib0/type", "32")
            .dir("class/net/ib0/device/infiniband/mlx5_0")
            .file("class/net/br0/type", "1")
            .dir("class/net/br0/bridge")
            .file("class/net/d0/type", "1")
            .file("class/net/lo/type", "772")
            .file("class/net/nic/type", "1");
        let sys = Sysfs::new(t.path());
        let none = ProbeFlags::default();
        let dp = ProbeFlags {
            direct_phys: true,
            vf: false,
        };
        let vff = ProbeFlags {
            direct_phys: false,
            vf: true,
        };
        let both = ProbeFlags {
            direct_phys: true,
            vf: true,
        };
        // netlink says every existing one is a plain Ethernet link with no
        // kind: the sysfs tree alone must steer the decision.
        let eth = |n: &str| Some(link(n, None, 1));
        type Row<'a> = (&'a str, Option<Link>, bool, ProbeFlags, Option<DriverKind>);
        let rows: Vec<Row> = vec![
            ("eth0", eth("eth0"), false, none, Some(Macvlan)),
            ("eth0", eth("eth0"), false, vff, Some(SriovVf)),
            ("eth0", eth("eth0"), false, dp, Some(Phys)),
            ("eth0", eth("eth0"), false, both, None),
            ("eth1", eth("eth1"), false, none, Some(Macvlan)),
            ("eth1", eth("eth1"), false, dp, Some(Phys)),
            ("eth1", eth("eth1"), false, vff, None),
            ("ib0", eth("ib0"), false, none, Some(Ipoib)),
            ("ib0", eth("ib0"), false, dp, Some(Phys)),
            ("ib0", eth("ib0"), false, vff, None),
            ("br0", eth("br0"), false, none, Some(LinuxBridge)),
            ("br0", eth("br0"), false, dp, None),
            ("sw0", eth("sw0"), true, none, Some(Ovs)),
            (
                "d0",
                Some(link("d0", Some("dummy"), 1)),
                false,
                none,
                Some(Macvlan),
            ),
            ("lo", eth("lo"), false, none, None),
            ("nic", eth("nic"), false, vff, None),
            ("dummy5", None, false, none, Some(Dummy)),
            ("br7", None, false, none, Some(LinuxBridge)),
            ("ovs7", None, false, none, Some(Ovs)),
            ("eth9", None, false, none, None),
            ("dummy5", None, false, dp, None),
            // A fixture entry for a name netlink does not know is ignored.
            ("ib0", None, false, none, None),
        ];
        for (name, l, ovs, flags, want) in rows {
            let f = facts(name.to_string(), l, ovs, &sys);
            let got = decide(&f, flags);
            assert_eq!(got.clone().ok(), want, "{name} {flags:?}: {got:?}");
        }
        let f = facts("eth1".into(), eth("eth1"), false, &sys);
        assert!(decide(&f, vff).unwrap_err().contains("itself an SR-IOV VF"));
        let f = facts("eth0".into(), eth("eth0"), false, &sys);
        assert!(decide(&f, both).unwrap_err().contains("choose one"));
    }

    #[test]
    fn mac_ambiguity() {
        let mut eth = link("eth0", None, 1);
        eth.index = 2;
        let mut vlan = link("eth0.10", Some("vlan"), 1);
        vlan.index = 3;
        let mut mv = link("mv0", Some("macvlan"), 1);
        mv.index = 4;
        let got = pick_by_mac(&[&eth, &vlan, &mv]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, "eth0");
        let mut eth1 = link("eth1", None, 1);
        eth1.index = 9;
        assert_eq!(pick_by_mac(&[&eth, &eth1]).len(), 2);
    }
}
