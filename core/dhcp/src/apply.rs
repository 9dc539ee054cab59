//! Turning a lease into guest configuration, one journaled step at a time,
//! so that losing the lease, a detach or a failed attach undo exactly what
//! was done.

use std::net::IpAddr;

use tracing::debug;

use super::lease::{Lease, LeaseSpec};
use super::store::LeaseFile;
use super::{resolv, resolv_share};
use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::{Journal, Step};
use pipework_base::ops;
use pipework_model::Family;
use pipework_sys::netlink::{LinkChange, Netlink, RouteSpec};

/// Configures the guest interface from `lease`. `sibling` is the other
/// lease of the interface, as saved (see [`crate::resolv_share`]).
pub async fn apply(
    nl: &Netlink,
    spec: &LeaseSpec,
    lease: &Lease,
    sibling: Option<&LeaseFile>,
    journal: &mut Journal,
) -> Result<()> {
    let ifindex = spec.ifindex;
    // Replace, not add: after a daemon restart the address may already be
    // there, and it is ours either way.
    nl.set_address_lifetime(
        ifindex,
        &lease.address,
        lease.valid_left(),
        lease.preferred_left(),
        true,
    )
    .await
    .step("add leased address")?;
    journal.record(Step::GuestAddressAdded {
        ifindex,
        address: lease.address,
    });
    if let Some(mtu) = lease.mtu {
        let link = nl
            .link_by_index(ifindex)
            .await?
            .ok_or_else(|| Error::failed("the interface is gone").context("step set MTU"))?;
        if link.mtu != u32::from(mtu) {
            nl.change_link(
                LinkChange::new(ifindex)
                    .mtu(u32::from(mtu))
                    .describe(format!("set MTU {mtu} from the lease")),
            )
            .await
            .step("set MTU")?;
            journal.record(Step::GuestMtuChanged {
                ifindex,
                previous: link.mtu,
            });
        }
    }
    routes(nl, ifindex, lease, journal).await?;
    if let Some(target) = &spec.resolv {
        if !lease.dns.is_empty() {
            let shared = sibling.and_then(|f| resolv_share::written(f, target));
            // The sibling's write holds the original: the file now is ours.
            let previous = match shared {
                Some((_, original)) => original.map(String::from),
                None => resolv::read(target)
                    .map_err(|e| Error::failed(format!("cannot read {target}")).with_source(e))
                    .step("read the guest's resolv.conf")?,
            };
            let mut leases = vec![lease];
            leases.extend(shared.map(|(l, _)| l));
            // Journaled first: a kill during the write still has what was
            // there put back.
            journal.record(Step::GuestResolvConfWritten {
                target: target.clone(),
                previous,
            });
            resolv::write(target, &resolv::render(&leases, &spec.ifname))
                .map_err(|e| Error::failed(format!("cannot write {target}")).with_source(e))
                .step("write the guest's resolv.conf")?;
        }
    }
    debug!(ifname = %spec.ifname, "applied lease {}", lease.summary());
    Ok(())
}

/// Router or classless static routes. RFC 3442 section 1: with option 121
/// present, option 3 is ignored; a 0/0 entry is then the default route.
async fn routes(nl: &Netlink, ifindex: u32, lease: &Lease, journal: &mut Journal) -> Result<()> {
    let on_link_first = |gw: IpAddr| !lease.address.contains(&gw) && !gw.is_unspecified();
    if lease.routes.is_empty() {
        if let Some(gw) = lease.routers.first().copied() {
            if on_link_first(gw) {
                ops::add_guest_route(nl, RouteSpec::host_on_link(gw, ifindex), journal).await?;
            }
            ops::replace_default_route(nl, Family::of(&gw), gw, ifindex, journal)
                .await
                .map_err(|e| e.context(format!("step default route via {gw}")))?;
        }
        return Ok(());
    }
    for (dst, gw) in &lease.routes {
        if on_link_first(*gw) {
            ops::add_guest_route(nl, RouteSpec::host_on_link(*gw, ifindex), journal).await?;
        }
        if dst.prefix_len() == 0 && !gw.is_unspecified() {
            ops::replace_default_route(nl, Family::of(gw), *gw, ifindex, journal)
                .await
                .map_err(|e| e.context(format!("step default route via {gw}")))?;
            continue;
        }
        let mut r = if gw.is_unspecified() {
            let mut r = RouteSpec::host_on_link(dst.addr(), ifindex);
            r.destination = Some(*dst);
            r
        } else {
            let mut r = RouteSpec::default_via(*gw, ifindex);
            r.destination = Some(*dst);
            r
        };
        r.family = Family::of(&dst.addr());
        ops::add_guest_route(nl, r, journal)
            .await
            .map_err(|e| e.context(format!("step route {dst} via {gw}")))?;
    }
    Ok(())
}

/// After a renewal with the same configuration: only the lifetimes move.
pub async fn refresh(nl: &Netlink, spec: &LeaseSpec, lease: &Lease) -> Result<()> {
    nl.set_address_lifetime(
        spec.ifindex,
        &lease.address,
        lease.valid_left(),
        lease.preferred_left(),
        true,
    )
    .await
    .step("refresh the leased address")
}
