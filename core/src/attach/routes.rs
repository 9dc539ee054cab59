//! The guest's routes: a default route through each static address's
//! gateway (with an on-link route to a gateway outside the subnet), then the
//! request's own routes, every one journaled.

use std::net::IpAddr;

use super::Job;
use pipework_base::error::Result;
use pipework_base::journal::Journal;
use pipework_base::ops;
use pipework_model::{Family, StaticAddress};
use pipework_sys::netlink::RouteSpec;

impl Job<'_> {
    pub(super) async fn routes(
        &self,
        ifindex: u32,
        statics: &[StaticAddress],
        journal: &mut Journal,
    ) -> Result<()> {
        for a in statics {
            let Some(gw) = a.gateway else { continue };
            let link_local = matches!(gw, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
            if a.gateway_is_off_link() && !link_local {
                ops::add_guest_route(self.guest_nl, RouteSpec::host_on_link(gw, ifindex), journal)
                    .await
                    .map_err(|e| e.context(format!("step on-link route to {gw}")))?;
            }
            ops::replace_default_route(self.guest_nl, a.family(), gw, ifindex, journal)
                .await
                .map_err(|e| e.context(format!("step default route via {gw}")))?;
        }
        Ok(())
    }

    /// The request's own routes ([`AttachRequest::routes`]), each journaled.
    /// They come once every address is on the link, leased ones included:
    /// a gateway is reachable only once its subnet is.
    pub(super) async fn extra_routes(&self, ifindex: u32, journal: &mut Journal) -> Result<()> {
        for r in &self.req.routes {
            let mut spec = RouteSpec::new(Family::of(&r.destination.addr()));
            spec.destination = Some(r.destination.trunc());
            spec.gateway = r.gateway;
            spec.oif = Some(ifindex);
            if r.gateway.is_none() {
                // RT_SCOPE_LINK, as `ip route add <dst> dev <if>` makes it.
                spec.scope = 253;
            }
            ops::add_guest_route(self.guest_nl, spec, journal)
                .await
                .map_err(|e| e.context(format!("step route {r}")))?;
        }
        Ok(())
    }
}
