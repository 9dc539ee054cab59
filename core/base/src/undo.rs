//! Replaying a journal: each recorded step undone, last first.
//!
//! The kernel steps are undone here; a driver's own steps by that driver
//! (through the [`DriverSet`]); the addressing layer's steps (DHCP leases,
//! compatible-mode clients, `resolv.conf`) by the [`AddressingUndo`] that
//! layer provides, since it lives above this crate.

use async_trait::async_trait;
use tracing::warn;

use crate::driver::{DriverSet, UndoContext};
use crate::error::{Context, Error, Result};
use crate::journal::{DriverData, Journal, Step, UndoMode};
use pipework_model::DriverKind;
use pipework_sys::netlink::{LinkChange, Netlink, NlError, RouteSpec};

/// Undoes the steps that belong to the addressing layer
/// ([`Step::GuestResolvConfWritten`], [`Step::DhcpLease`],
/// [`Step::CompatClient`]).
#[async_trait]
pub trait AddressingUndo: Send + Sync {
    async fn undo(&self, step: &Step, ctx: &UndoContext<'_>) -> Result<()>;
}

/// Everything a replay needs: the context each undo gets, and who undoes
/// the steps this crate does not know how to.
pub struct Replay<'a> {
    pub ctx: UndoContext<'a>,
    pub drivers: &'a dyn DriverSet,
    pub addressing: &'a dyn AddressingUndo,
}

// A replay is read mostly for its context (`r.host`, `r.state`, ...).
impl<'a> std::ops::Deref for Replay<'a> {
    type Target = UndoContext<'a>;

    fn deref(&self) -> &UndoContext<'a> {
        &self.ctx
    }
}

impl Journal {
    /// Undoes every step, last first. Keeps going past failures and returns
    /// them all, so one stuck object does not strand the rest.
    #[tracing::instrument(name = "undo", skip_all, fields(mode = ?r.ctx.mode, steps = self.len()))]
    pub async fn undo_all(&self, r: &Replay<'_>) -> Vec<Error> {
        let mut errors = Vec::new();
        for step in self.steps().iter().rev() {
            if let Err(e) = undo(step, r).await {
                warn!("undo failed: {e}");
                errors.push(e);
            }
        }
        errors
    }
}

fn gone_ok(r: std::result::Result<(), NlError>) -> std::result::Result<(), NlError> {
    match r {
        Err(e) if e.is_gone() => Ok(()),
        other => other,
    }
}

/// Undoes one step.
pub async fn undo(step: &Step, r: &Replay<'_>) -> Result<()> {
    let ctx = &r.ctx;
    match step {
        Step::HostLinkCreated { name, ifindex } => delete_if_same(ctx.host, *ifindex, name)
            .await
            .step("undo: delete host link"),
        Step::GuestLinkCreated { name, ifindex } => match ctx.guest {
            Some(g) => match g.link_by_index(*ifindex).await? {
                Some(_) => {
                    gone_ok(g.delete_link(*ifindex, name).await).step("undo: delete guest link")
                }
                None => Ok(()),
            },
            None => Ok(()),
        },
        Step::BridgeUsed { .. } => match step.as_legacy_driver_step() {
            Some((driver, data)) => undo_driver(r, driver, &data).await,
            None => Err(Error::failed(format!("unreadable journal step {step:?}"))),
        },
        Step::HostLinkSetAside {
            ifindex,
            name,
            aside,
        } => match ctx.host.link_by_index(*ifindex).await? {
            Some(l) if l.name == *aside => gone_ok(
                ctx.host
                    .change_link(
                        LinkChange::new(*ifindex)
                            .name(name)
                            .describe(format!("rename {aside} back to {name}")),
                    )
                    .await,
            )
            .step("undo: give the -l link its name back"),
            _ => Ok(()),
        },
        Step::HostLinkUp { name, ifindex } => {
            if ctx.mode != UndoMode::Rollback {
                return Ok(());
            }
            match ctx.host.link_by_index(*ifindex).await? {
                Some(l) if l.name == *name => gone_ok(
                    ctx.host
                        .change_link(
                            LinkChange::new(*ifindex)
                                .down()
                                .describe(format!("set {name} down")),
                        )
                        .await,
                )
                .step("undo: set host link down"),
                _ => Ok(()),
            }
        }
        Step::GuestAddressAdded { ifindex, address } => match ctx.guest {
            Some(g) => {
                gone_ok(g.delete_address(*ifindex, address).await).step("undo: delete address")
            }
            None => Ok(()),
        },
        Step::GuestRouteAdded { route } => match ctx.guest {
            Some(g) => gone_ok(g.delete_route(route).await).step("undo: delete route"),
            None => Ok(()),
        },
        Step::GuestDefaultRouteReplaced { ours, previous } => match ctx.guest {
            Some(g) => restore_default(g, ours, previous.as_ref())
                .await
                .step("undo: restore default route"),
            None => Ok(()),
        },
        Step::LinkMovedToGuest {
            host_name,
            guest_ifindex,
            was_up,
        } => {
            match ctx.guest {
                Some(g) => {
                    let c = LinkChange::new(*guest_ifindex)
                        .down()
                        .netns(std::os::fd::AsFd::as_fd(ctx.host_ns))
                        .name(host_name)
                        .describe(format!("move link back to the host as {host_name}"));
                    gone_ok(g.change_link(c).await).step("undo: move link back to host")?;
                }
                // The kernel hands physical devices back to the initial
                // namespace when their namespace dies, under whatever name is
                // free there: find ours by the alias that kept its name.
                None => rename_returned(ctx.host, host_name)
                    .await
                    .step("undo: rename returned link")?,
            }
            if *was_up {
                if let Some(l) = ctx.host.link_by_name(host_name).await? {
                    ctx.host
                        .change_link(
                            LinkChange::new(l.index)
                                .up()
                                .describe(format!("set {host_name} up")),
                        )
                        .await?;
                }
            }
            Ok(())
        }
        Step::HostLinkAliasSet {
            name,
            alias,
            previous,
        } => match ctx.host.link_by_name(name).await? {
            Some(l) if l.alias.as_deref() == Some(alias.as_str()) => gone_ok(
                ctx.host
                    .change_link(
                        LinkChange::new(l.index)
                            .alias(previous.as_deref().unwrap_or(""))
                            .describe(format!("restore the alias of {name}")),
                    )
                    .await,
            )
            .step("undo: restore alias"),
            _ => Ok(()),
        },
        Step::GuestLinkRenamed { ifindex, from, to } => match ctx.guest {
            Some(g) => match g.link_by_index(*ifindex).await? {
                Some(l) if l.name == *to => gone_ok(
                    g.change_link(
                        LinkChange::new(*ifindex)
                            .down()
                            .name(from)
                            .describe(format!("rename {to} back to {from}")),
                    )
                    .await,
                )
                .step("undo: rename"),
                _ => Ok(()),
            },
            None => Ok(()),
        },
        Step::GuestMtuChanged { ifindex, previous } => match ctx.guest {
            Some(g) => match g.link_by_index(*ifindex).await? {
                Some(l) if l.mtu != *previous => gone_ok(
                    g.change_link(
                        LinkChange::new(*ifindex)
                            .mtu(*previous)
                            .describe(format!("restore MTU {previous}")),
                    )
                    .await,
                )
                .step("undo: restore MTU"),
                _ => Ok(()),
            },
            None => Ok(()),
        },
        Step::GuestResolvConfWritten { .. }
        | Step::DhcpLease { .. }
        | Step::CompatClient { .. } => r.addressing.undo(step, ctx).await,
        Step::Driver { driver, data } => undo_driver(r, *driver, data).await,
    }
}

/// Hands a driver's step to that driver.
async fn undo_driver(r: &Replay<'_>, driver: DriverKind, data: &DriverData) -> Result<()> {
    match r.drivers.get(driver) {
        Some(d) => d.undo(data, &r.ctx).await,
        None => Err(Error::failed(format!(
            "undo needs the {driver} driver, which this build lacks"
        ))),
    }
}

/// Deletes a link if it still is the one we made (same index and name; index
/// 0 means it was recorded before its index was known).
async fn delete_if_same(
    nl: &Netlink,
    ifindex: u32,
    name: &str,
) -> std::result::Result<(), NlError> {
    let found = if ifindex == 0 {
        nl.link_by_name(name).await?
    } else {
        nl.link_by_index(ifindex).await?
    };
    match found {
        // A step still without its index was written ahead of a veth's
        // creation (`ops::create_host_link_ahead`): the kernel may have
        // refused the pair because another link has the name, and a kill
        // before the step was taken back leaves it naming that link. Only
        // what the request would have made is deleted: a veth whose peer is
        // in another namespace.
        Some(l) if ifindex == 0 && !(l.is_kind("veth") && l.parent_netnsid.is_some()) => Ok(()),
        Some(l) if l.name == name => gone_ok(nl.delete_link(l.index, name).await),
        _ => Ok(()),
    }
}

/// Renames the host link whose alias is `name` back to `name`, if that name
/// is free.
async fn rename_returned(host: &Netlink, name: &str) -> std::result::Result<(), NlError> {
    if host.link_by_name(name).await?.is_some() {
        return Ok(());
    }
    let links = host.links().await?;
    let Some(l) = links.iter().find(|l| l.alias.as_deref() == Some(name)) else {
        return Ok(());
    };
    gone_ok(
        host.change_link(
            LinkChange::new(l.index)
                .down()
                .name(name)
                .describe(format!("rename {} back to {name}", l.name)),
        )
        .await,
    )
}

async fn restore_default(
    g: &Netlink,
    ours: &RouteSpec,
    previous: Option<&RouteSpec>,
) -> Result<()> {
    let current = g.default_routes(ours.family).await?;
    let still_ours = current.iter().any(|r| same_default(r, ours));
    if !still_ours {
        // Someone changed the default route since; leave theirs alone.
        return Ok(());
    }
    match previous {
        Some(p) => {
            if let Err(e) = g.add_route(p, true).await {
                // The previous route's interface may be gone; dropping ours is
                // still right.
                warn!("cannot restore previous default route {p}: {e}");
                gone_ok(g.delete_route(ours).await)?;
            }
        }
        None => gone_ok(g.delete_route(ours).await)?,
    }
    Ok(())
}

fn same_default(a: &RouteSpec, b: &RouteSpec) -> bool {
    a.gateway == b.gateway && a.oif == b.oif && a.metric.unwrap_or(0) == b.metric.unwrap_or(0)
}
