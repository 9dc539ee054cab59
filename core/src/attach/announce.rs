//! The attach's announcement of its static addresses: a gratuitous ARP
//! (through the kernel's `arp_notify`, or for `apply` on an untagged Linux
//! bridge port from the host into the bridge) and unsolicited neighbour
//! advertisements, so that neighbours learn the guest's MAC at once.

use std::net::IpAddr;

use tracing::{debug, warn};

use super::Job;
use crate::fault;
use pipework_base::error::Result;
use pipework_model::{MacAddr, StaticAddress};
use pipework_sys::netlink::LinkChange;

impl Job<'_> {
    /// Announces the static addresses. Returns whether the attaching
    /// marker was cleared on the way: a fresh link (`notify_on`) announces
    /// its IPv4 addresses with one request, its MAC set again, and the
    /// marker's clearing rides in that request instead of one of its own.
    /// `untagged_bridge`: see [`Plugged::untagged_bridge`]; with the
    /// command's `BridgeArp` the IPv4 addresses are announced through it.
    ///
    /// [`Plugged::untagged_bridge`]: pipework_base::driver::Plugged::untagged_bridge
    pub(super) async fn announce(
        &self,
        ifindex: u32,
        untagged_bridge: Option<u32>,
        mac: MacAddr,
        statics: &[StaticAddress],
        notify_on: bool,
        marked: bool,
    ) -> Result<bool> {
        let mut cleared = false;
        if let Some(a) = self.announcer {
            let mut addrs: Vec<IpAddr> = statics.iter().map(|a| a.address.addr()).collect();
            if let (Some(arp), Some(bridge)) = (self.bridge_arp, untagged_bridge) {
                // On a failure the kernel's way below announces them all.
                let sent = addrs.iter().all(|a| match a {
                    IpAddr::V4(v4) => arp
                        .announce(bridge, mac, *v4)
                        .map_err(|e| debug!("{e}: announcing through the guest instead"))
                        .is_ok(),
                    IpAddr::V6(_) => true,
                });
                if sent {
                    addrs.retain(IpAddr::is_ipv6);
                }
            }
            if notify_on && marked && addrs.iter().any(IpAddr::is_ipv4) {
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
                if let Err(e) = a.send(self.guest_nl, ifindex, mac, &addrs, notify_on).await {
                    // Neighbours learn the address on first use anyway.
                    warn!("gratuitous ARP / unsolicited NA not sent: {e}");
                }
            }
        }
        fault::point("announced")?;
        Ok(cleared)
    }
}
