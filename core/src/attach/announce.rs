//! The attach's announcement of its static addresses: a gratuitous ARP
//! (through the kernel's `arp_notify`) and unsolicited neighbour
//! advertisements, so that neighbours learn the guest's MAC at once.

use std::net::IpAddr;

use tracing::warn;

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
    pub(super) async fn announce(
        &self,
        ifindex: u32,
        mac: MacAddr,
        statics: &[StaticAddress],
        notify_on: bool,
        marked: bool,
    ) -> Result<bool> {
        let mut cleared = false;
        if let Some(a) = self.announcer {
            let mut addrs: Vec<IpAddr> = statics.iter().map(|a| a.address.addr()).collect();
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
