//! Linux bridge VLAN filtering: the bridge's `vlan_filtering` switch and the
//! VLANs of a port (what `ip link set BR type bridge vlan_filtering 1` and
//! `bridge vlan add/del dev PORT vid N [pvid] [untagged]` send).

use netlink_packet_route::link::{
    AfSpecBridge, BridgeVlanInfo, BridgeVlanInfoFlags, InfoKind, LinkAttribute, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{LinkBridge, LinkMessageBuilder};

use super::{LinkChange, Netlink, NlError};

impl LinkChange {
    /// Turns VLAN filtering of a bridge on or off.
    pub fn bridge_vlan_filtering(bridge: u32, on: bool) -> LinkChange {
        // rtnetlink's bridge builder by index (`LinkBridge::new` takes a
        // name and would set the bridge up).
        let b = LinkMessageBuilder::<LinkBridge>::new_with_info_kind(InfoKind::Bridge)
            .index(bridge)
            .vlan_filtering(on);
        LinkChange::from_builder(
            b,
            format!(
                "turn {} VLAN filtering on bridge #{bridge}",
                if on { "on" } else { "off" }
            ),
        )
        .via_newlink()
    }
}

fn port_vlan_message(port: u32, vid: u16, flags: BridgeVlanInfoFlags) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.interface_family = AddressFamily::Bridge;
    m.header.index = port;
    m.attributes
        .push(LinkAttribute::AfSpecBridge(vec![AfSpecBridge::VlanInfo(
            BridgeVlanInfo { flags, vid },
        )]));
    m
}

impl Netlink {
    /// Makes `vid` the port's PVID, untagged on egress: the guest behind the
    /// port sees plain frames, the bridge tags them `vid`.
    pub async fn bridge_port_set_pvid(&self, port: u32, vid: u16) -> Result<(), NlError> {
        let m = port_vlan_message(
            port,
            vid,
            BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged,
        );
        self.request(RouteNetlinkMessage::SetLink(m), 0, || {
            format!("add VLAN {vid} (PVID, untagged) to bridge port #{port}")
        })
        .await
        .map(drop)
    }

    /// Removes `vid` from a port's VLANs.
    pub async fn bridge_port_del_vlan(&self, port: u32, vid: u16) -> Result<(), NlError> {
        let m = port_vlan_message(port, vid, BridgeVlanInfoFlags::empty());
        self.request(RouteNetlinkMessage::DelLink(m), 0, || {
            format!("remove VLAN {vid} from bridge port #{port}")
        })
        .await
        .map(drop)
    }
}
