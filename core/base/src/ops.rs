//! Journaled changes: each helper makes one kernel change and records its undo
//! before returning, so drivers and the orchestrator cannot forget one.

use std::os::fd::AsFd;

use ipnet::IpNet;

use crate::error::{Context, Error, Result};
use crate::journal::{Journal, Step};
use pipework_model::Family;
use pipework_sys::netlink::{Link, LinkChange, Netlink, NewLink, NlError, RouteSpec};
use pipework_sys::netns::Netns;

/// Creates a veth in the host namespace whose step is journaled *before*
/// the request (write-ahead): for a link whose other end is created in the guest
/// under its final name, where nothing else would let a later `gc` find
/// the pair after a kill between the kernel's answer and the journal. The
/// step (undone by name while its index is 0) is taken back if the kernel
/// refuses the request. The name must be one no other run uses at the same
/// time (pipework's host-side names are per guest and interface, and the
/// guest's lock is held).
pub async fn create_host_link_ahead(
    host: &Netlink,
    name: &str,
    new: NewLink,
    journal: &mut Journal,
) -> Result<Link, NlError> {
    journal.record(Step::HostLinkCreated {
        name: name.to_string(),
        ifindex: 0,
    });
    match host.create_link_echo(new).await {
        Err(e) => {
            journal.steps_mut().pop();
            journal.persist();
            Err(e)
        }
        // The kernel's echo names the link: no lookup (one request fewer
        // per attach on kernels from 6.3).
        Ok(Some(l)) if l.name == name && l.index != 0 => {
            complete_step(journal, l.index);
            Ok(l)
        }
        Ok(_) => complete_host_link(host, name, journal).await,
    }
}

/// Fills in the index of the host link the last journal step names.
fn complete_step(journal: &mut Journal, index: u32) {
    if let Some(Step::HostLinkCreated { ifindex, .. }) = journal.last_mut() {
        *ifindex = index;
    }
    journal.persist();
}

/// Finds the host link just made under `name` and completes its journal
/// step (the last one) with its index.
async fn complete_host_link(
    host: &Netlink,
    name: &str,
    journal: &mut Journal,
) -> Result<Link, NlError> {
    let Some(l) = host.link_by_name(name).await? else {
        return Err(NlError::other(
            format!("find link {name}"),
            host.label(),
            "vanished right after creation".into(),
        ));
    };
    complete_step(journal, l.index);
    Ok(l)
}

/// Creates a link directly inside the guest (the request carries the guest's
/// netns fd and goes through the host socket, so the parent can be a host
/// link), then finds it there by its temporary name and records it.
pub async fn create_guest_link(
    host: &Netlink,
    guest: &Netlink,
    guest_ns: &Netns,
    temp_name: &str,
    new: NewLink,
    journal: &mut Journal,
) -> Result<Link, NlError> {
    host.create_link(new.netns(guest_ns.as_fd())).await?;
    let link = guest.link_by_name(temp_name).await?;
    match link {
        Some(l) => {
            journal.record(Step::GuestLinkCreated {
                name: temp_name.to_string(),
                ifindex: l.index,
            });
            Ok(l)
        }
        None => Err(NlError::other(
            format!("find link {temp_name}"),
            guest.label(),
            "not in the guest after creation".into(),
        )),
    }
}

/// Brings a host link up if it is down, recording that for rollback.
pub async fn ensure_host_link_up(
    host: &Netlink,
    link: &Link,
    journal: &mut Journal,
) -> Result<(), NlError> {
    if link.up {
        return Ok(());
    }
    host.change_link(
        LinkChange::new(link.index)
            .up()
            .describe(format!("set {} up", link.name)),
    )
    .await?;
    journal.record(Step::HostLinkUp {
        name: link.name.clone(),
        ifindex: link.index,
    });
    Ok(())
}

pub async fn add_guest_address(
    guest: &Netlink,
    ifindex: u32,
    net: &IpNet,
    nodad: bool,
    journal: &mut Journal,
) -> Result<()> {
    match guest.add_address(ifindex, net, nodad).await {
        Ok(()) => {}
        Err(e) if e.is(libc::EEXIST) => {
            return Err(Error::usage(format!(
                "address {net} is already on this interface"
            )))
        }
        Err(e) => return Err(e.into()),
    }
    journal.record(Step::GuestAddressAdded {
        ifindex,
        address: *net,
    });
    Ok(())
}

pub async fn add_guest_route(
    guest: &Netlink,
    route: RouteSpec,
    journal: &mut Journal,
) -> Result<()> {
    match guest.add_route(&route, false).await {
        Ok(()) => {}
        // An identical route is already there (a second address in the same
        // subnet): nothing of ours to record or undo.
        Err(e) if e.is(libc::EEXIST) => return Ok(()),
        Err(e) => return Err(e).step("add route"),
    }
    journal.record(Step::GuestRouteAdded { route });
    Ok(())
}

/// Points the default route of `family` at `gw` out of `ifindex`, replacing
/// the preferred existing default in one atomic `RTM_NEWROUTE` with
/// `NLM_F_REPLACE`: the guest is never without a default route.
pub async fn replace_default_route(
    guest: &Netlink,
    family: Family,
    gw: std::net::IpAddr,
    ifindex: u32,
    journal: &mut Journal,
) -> Result<()> {
    let previous = guest.default_routes(family).await?.into_iter().next();
    let mut ours = RouteSpec::default_via(gw, ifindex);
    ours.metric = previous.as_ref().and_then(|p| p.metric);
    guest
        .add_route(&ours, true)
        .await
        .step("replace default route")?;
    journal.record(Step::GuestDefaultRouteReplaced { ours, previous });
    Ok(())
}

/// Moves a host link into the guest under `temp_name`, recording where it
/// came from, and returns it as the guest sees it.
pub async fn move_link_to_guest(
    host: &Netlink,
    guest: &Netlink,
    guest_ns: &Netns,
    link: &Link,
    temp_name: &str,
    journal: &mut Journal,
) -> Result<Link, NlError> {
    host.change_link(
        LinkChange::new(link.index)
            .down()
            .netns(guest_ns.as_fd())
            .name(temp_name)
            .describe(format!("move {} into the guest", link.name)),
    )
    .await?;
    // The kernel keeps the index when it is free in the guest; recorded before
    // the lookup so that a failed lookup still moves it back.
    journal.record(Step::LinkMovedToGuest {
        host_name: link.name.clone(),
        guest_ifindex: link.index,
        was_up: link.up,
    });
    match guest.link_by_name(temp_name).await? {
        Some(l) => {
            if let Some(Step::LinkMovedToGuest { guest_ifindex, .. }) = journal.last_mut() {
                *guest_ifindex = l.index;
            }
            Ok(l)
        }
        None => Err(NlError::other(
            format!("find {temp_name}"),
            guest.label(),
            format!("{} is not in the guest after the move", link.name),
        )),
    }
}

/// Sets a host link's alias, recording the previous one.
pub async fn set_host_alias(
    host: &Netlink,
    link: &Link,
    alias: &str,
    journal: &mut Journal,
) -> Result<(), NlError> {
    if link.alias.as_deref() == Some(alias) {
        return Ok(());
    }
    host.change_link(
        LinkChange::new(link.index)
            .alias(alias)
            .describe(format!("set the alias of {}", link.name)),
    )
    .await?;
    journal.record(Step::HostLinkAliasSet {
        name: link.name.clone(),
        alias: alias.to_string(),
        previous: link.alias.clone().filter(|a| !a.is_empty()),
    });
    Ok(())
}

impl Journal {
    pub(crate) fn last_mut(&mut self) -> Option<&mut Step> {
        self.steps_mut().last_mut()
    }
}
