//! The attach's announcement of its static addresses: a gratuitous ARP
//! (out of the guest's link from a packet socket inside the guest, or
//! through the kernel's `arp_notify`, or for `apply` on an untagged Linux
//! bridge port from the host into the bridge) and unsolicited neighbour
//! advertisements, so that neighbours learn the guest's MAC at once.

use std::net::{IpAddr, Ipv4Addr};

use tracing::{debug, warn};

use super::Job;
use crate::fault;
use pipework_base::error::Result;
use pipework_model::{MacAddr, StaticAddress};
use pipework_sys::netlink::LinkChange;

impl Job<'_> {
    /// With the command's `BridgeArp` (`apply`) and a guest on an untagged
    /// Linux bridge port (`untagged_bridge`, see [`Plugged::untagged_bridge`]):
    /// announces the static IPv4 addresses from the host into the bridge.
    /// Returns whether all of them went out; if not, [`Job::announce`]
    /// has the guest's kernel announce them all.
    ///
    /// [`Plugged::untagged_bridge`]: pipework_base::driver::Plugged::untagged_bridge
    pub(super) fn announce_from_host(
        &self,
        untagged_bridge: Option<u32>,
        mac: MacAddr,
        statics: &[StaticAddress],
    ) -> bool {
        let (Some(_), Some(arp), Some(bridge)) = (self.announcer, self.bridge_arp, untagged_bridge)
        else {
            return false;
        };
        statics.iter().all(|a| match a.address.addr() {
            IpAddr::V4(v4) => arp
                .announce(bridge, mac, v4)
                .map_err(|e| debug!("{e}: announcing through the guest instead"))
                .is_ok(),
            IpAddr::V6(_) => true,
        })
    }

    /// Whether the guest itself will send announcements (so that its
    /// bridge port must forward first): an IPv6 address, or an IPv4 one
    /// the host did not announce.
    pub(super) fn guest_announces(&self, statics: &[StaticAddress], host_sent: bool) -> bool {
        self.announcer.is_some()
            && statics
                .iter()
                .any(|a| a.address.addr().is_ipv6() || !host_sent)
    }

    /// Announces the static addresses the host did not (`host_sent`: see
    /// [`Job::announce_from_host`]). Returns whether the attaching
    /// marker was cleared on the way.
    ///
    /// A fresh Ethernet link (`fresh.ethernet`) announces its IPv4
    /// addresses from the guest's packet socket when it has one. Otherwise
    /// a fresh link (`fresh.notify_on`) announces them with one request,
    /// its MAC set again, and the marker's clearing rides in that request
    /// instead of one of its own.
    pub(super) async fn announce(
        &self,
        ifindex: u32,
        host_sent: bool,
        mac: MacAddr,
        statics: &[StaticAddress],
        fresh: Fresh,
    ) -> Result<bool> {
        let mut cleared = false;
        if let Some(a) = self.announcer {
            let mut addrs: Vec<IpAddr> = statics.iter().map(|a| a.address.addr()).collect();
            if host_sent {
                addrs.retain(IpAddr::is_ipv6);
            }
            let v4: Vec<Ipv4Addr> = addrs
                .iter()
                .filter_map(|a| match a {
                    IpAddr::V4(v4) => Some(*v4),
                    IpAddr::V6(_) => None,
                })
                .collect();
            if fresh.ethernet && !v4.is_empty() {
                match a.send_arp(ifindex, mac, &v4) {
                    Ok(()) => addrs.retain(IpAddr::is_ipv6),
                    Err(e) => debug!("{e}: the kernel announces instead"),
                }
            }
            if fresh.notify_on && fresh.marked && addrs.iter().any(IpAddr::is_ipv4) {
                let poke = LinkChange::new(ifindex)
                    .mac(mac)
                    .alias("")
                    .describe(format!(
                        "announce the IPv4 addresses of link #{ifindex} and mark the attach done"
                    ));
                match self.guest_nl.change_link(poke).await {
                    Ok(()) => {
                        cleared = true;
                        addrs.retain(IpAddr::is_ipv6);
                    }
                    // The announcer tries the IPv4 announcement again below.
                    Err(e) => warn!("gratuitous ARP not sent: {e}"),
                }
            }
            if !addrs.is_empty() {
                if let Err(e) = a
                    .send(self.guest_nl, ifindex, mac, &addrs, fresh.notify_on)
                    .await
                {
                    // Neighbours learn the address on first use anyway.
                    warn!("gratuitous ARP / unsolicited NA not sent: {e}");
                }
            }
        }
        fault::point("announced")?;
        Ok(cleared)
    }
}

/// What the attach knows of the link it announces on.
pub(super) struct Fresh {
    /// Made by this attach, with `arp_notify` turned on.
    pub notify_on: bool,
    /// Made by this attach, and an Ethernet link (veth, macvlan).
    pub ethernet: bool,
    /// Carries the attaching marker (cleared with the announcement when
    /// that is the kernel's).
    pub marked: bool,
}
