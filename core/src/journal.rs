//! The rollback journal.
//!
//! Every change an attach makes is recorded as a [`Step`] *before* the next
//! change is attempted. If any step fails, the recorded steps are undone in
//! reverse order. On success the journal is saved in the attachment record,
//! and `detach` replays the very same undos later: one mechanism for both.
//!
//! Undos are idempotent: an object that is already gone counts as undone, so a
//! journal can be replayed after a crash, a container exit or a second detach.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::dhcp::resolv::ResolvTarget;
use crate::driver::{DriverKind, DriverSet};
use crate::error::{Context, Error, Result};
use crate::netlink::{LinkChange, Netlink, NlError, RouteSpec};
use crate::netns::Netns;
use crate::settings::Settings;
use crate::state::StateDir;

/// One recorded change and what it takes to undo it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    /// A link created in the host namespace. Undo: delete it (for a veth,
    /// that removes the guest end too).
    HostLinkCreated { name: String, ifindex: u32 },
    /// A link created directly in the guest namespace. Undo: delete it.
    GuestLinkCreated { name: String, ifindex: u32 },
    /// A bridge is about to get our port; `created` if this attach made it.
    /// Undo: once our port is gone, delete the bridge if pipework created it
    /// (this time or earlier) and it has no ports left.
    BridgeUsed { name: String, created: bool },
    /// A host link that was down and that we brought up. Undone on rollback
    /// only: other attachments may share it by the time of a detach.
    HostLinkUp { name: String, ifindex: u32 },
    /// Undo: delete the address.
    GuestAddressAdded { ifindex: u32, address: IpNet },
    /// Undo: delete the route.
    GuestRouteAdded { route: RouteSpec },
    /// The default route was replaced atomically. Undo: if ours is still the
    /// default, put `previous` back (or delete ours when there was none).
    GuestDefaultRouteReplaced {
        ours: RouteSpec,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<RouteSpec>,
    },
    /// A host link moved into the guest (physical NIC, VF, sub-interface).
    /// Undo: move it back to the host namespace under its original name.
    LinkMovedToGuest {
        host_name: String,
        guest_ifindex: u32,
        was_up: bool,
    },
    /// The alias (`IFLA_IFALIAS`) of a host link was set, to keep its name
    /// while it lives in a guest under another. Undo: put `previous` back
    /// (none clears it), if the alias is still ours.
    HostLinkAliasSet {
        name: String,
        alias: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<String>,
    },
    /// A guest link renamed in place. Undo: give it its old name back.
    GuestLinkRenamed {
        ifindex: u32,
        from: String,
        to: String,
    },
    /// The guest link's MTU was changed (a DHCP lease asked). Undo: put
    /// the previous one back.
    GuestMtuChanged { ifindex: u32, previous: u32 },
    /// The guest's `resolv.conf` was written (`--dns`). Undo: restore what
    /// it held, or remove the file we created.
    GuestResolvConfWritten {
        target: ResolvTarget,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<String>,
    },
    /// A lease the daemon keeps for this interface. Undo: ask the daemon to
    /// release it, which also undoes what the lease configured.
    DhcpLease { key: String },
    /// A host DHCP client (a compatible mode) left running in the guest.
    /// Undo: end it and its private directory.
    CompatClient { dir: PathBuf },
    /// A change only the named driver knows how to undo.
    Driver {
        driver: DriverKind,
        data: serde_json::Value,
    },
}

/// Why the journal is being replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UndoMode {
    /// A failed attach: put the host back exactly as it was.
    Rollback,
    /// A deliberate detach (or garbage collection).
    Detach,
}

/// What undos need.
pub struct UndoContext<'a> {
    pub host: &'a Netlink,
    /// `None` when the guest's namespace is gone (its links went with it).
    pub guest: Option<&'a Netlink>,
    /// The host namespace, for moving links back.
    pub host_ns: &'a Netns,
    pub drivers: &'a dyn DriverSet,
    pub state: &'a StateDir,
    pub settings: &'a Settings,
    pub mode: UndoMode,
}

/// Told every step as it is recorded, so that an attach killed half-way
/// (SIGKILL, a daemon stopped at any point) leaves its undo list on disk.
pub type Sink = std::sync::Arc<dyn Fn(&[Step]) + Send + Sync>;

/// The steps of one attach, in the order they were made.
#[derive(Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Journal {
    steps: Vec<Step>,
    #[serde(skip)]
    sink: Option<Sink>,
}

// A copy (kept in a record) must not keep writing the attach's pending file.
impl Clone for Journal {
    fn clone(&self) -> Journal {
        Journal::from_steps(self.steps.clone())
    }
}

impl PartialEq for Journal {
    fn eq(&self, other: &Journal) -> bool {
        self.steps == other.steps
    }
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.steps.fmt(f)
    }
}

impl Journal {
    pub fn new() -> Journal {
        Journal::default()
    }

    /// A journal that hands every new step to `sink`.
    pub fn with_sink(sink: Sink) -> Journal {
        Journal {
            steps: Vec::new(),
            sink: Some(sink),
        }
    }

    pub fn from_steps(steps: Vec<Step>) -> Journal {
        Journal { steps, sink: None }
    }

    pub fn record(&mut self, step: Step) {
        debug!(?step, "journal");
        self.steps.push(step);
        self.persist();
    }

    /// Hands the steps to the sink again (after a step was completed in place).
    pub(crate) fn persist(&self) {
        if let Some(s) = &self.sink {
            s(&self.steps);
        }
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub(crate) fn steps_mut(&mut self) -> &mut Vec<Step> {
        &mut self.steps
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Appends another journal (a second address on an existing attachment).
    pub fn extend(&mut self, other: Journal) {
        self.steps.extend(other.steps);
    }

    /// Undoes every step, last first. Keeps going past failures and returns
    /// them all, so one stuck object does not strand the rest.
    pub async fn undo_all(&self, ctx: &UndoContext<'_>) -> Vec<Error> {
        let mut errors = Vec::new();
        for step in self.steps.iter().rev() {
            if let Err(e) = undo(step, ctx).await {
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
pub async fn undo(step: &Step, ctx: &UndoContext<'_>) -> Result<()> {
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
        Step::BridgeUsed { name, created } => release_bridge(ctx, name, *created)
            .await
            .step("undo: release bridge"),
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
        Step::GuestResolvConfWritten { target, previous } => {
            crate::dhcp::resolv::restore(target, previous.as_deref())
                .step("undo: restore the guest's resolv.conf")
        }
        Step::DhcpLease { key } => crate::daemon::client::release(ctx.settings, key)
            .await
            .map_err(|e| e.context("step undo: release the DHCP lease")),
        Step::CompatClient { dir } => {
            crate::dhcp::compat::stop(dir).step("undo: end the DHCP client")
        }
        Step::Driver { driver, data } => match ctx.drivers.get(*driver) {
            Some(d) => d.undo(data, ctx).await,
            None => Err(Error::failed(format!(
                "undo needs the {driver} driver, which this build lacks"
            ))),
        },
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

async fn release_bridge(ctx: &UndoContext<'_>, name: &str, created: bool) -> Result<()> {
    let _lock = ctx.state.lock_bridge(name, true).await?;
    if !created && !ctx.state.bridge_is_owned(name) {
        return Ok(());
    }
    let Some(br) = ctx.host.link_by_name(name).await? else {
        ctx.state.forget_bridge(name)?;
        return Ok(());
    };
    if !ctx.host.ports_of(br.index).await?.is_empty() {
        return Ok(());
    }
    gone_ok(ctx.host.delete_link(br.index, name).await)?;
    ctx.state.forget_bridge(name)?;
    Ok(())
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

/// The gateway of a default-route step, for records.
pub fn gateway_of(step: &Step) -> Option<IpAddr> {
    match step {
        Step::GuestDefaultRouteReplaced { ours, .. } => ours.gateway,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_serialise_with_an_op_tag() {
        let j = Journal::from_steps(vec![
            Step::HostLinkCreated {
                name: "veth1pl42".into(),
                ifindex: 7,
            },
            Step::GuestAddressAdded {
                ifindex: 3,
                address: "10.0.0.2/24".parse().unwrap(),
            },
        ]);
        let s = serde_json::to_string(&j).unwrap();
        assert!(s.contains(r#""op":"host_link_created""#), "{s}");
        let back: Journal = serde_json::from_str(&s).unwrap();
        assert_eq!(back, j);
    }
}
