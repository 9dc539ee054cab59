//! The driver trait: one implementation per way of plugging a guest into a
//! host interface.
//!
//! The attach orchestrator (`attach.rs`) owns everything common to all drivers:
//! guest resolution, validation of the request, renaming, MAC, addresses,
//! routes, announcement, state. A driver only creates the guest's link (and
//! whatever the host side needs), recording every change in the journal.

use std::any::Any;

use async_trait::async_trait;

pub use pipework_model::DriverKind;

use crate::drift::{Finding, RepairScope};
use crate::error::Result;
use crate::guest::Guest;
use crate::journal::{DriverData, Journal, UndoMode};
use crate::settings::Settings;
use crate::state::{AttachmentRecord, StateDir};
use pipework_model::{AttachRequest, IfName, MacAddr, StaticAddress};
use pipework_sys::netlink::{Link, Netlink};
use pipework_sys::netns::Netns;

/// Everything a driver may look at while attaching.
pub struct AttachContext<'a> {
    pub request: &'a AttachRequest,
    pub guest: &'a Guest,
    /// rtnetlink in the host namespace.
    pub host: &'a Netlink,
    /// rtnetlink in the guest namespace.
    pub guest_nl: &'a Netlink,
    /// The host interface's name (resolved from `mac:` if need be).
    pub host_ifname: &'a str,
    /// The host interface, if it exists.
    pub host_link: Option<&'a Link>,
    /// The final name in the guest (`-i`, or the driver's default).
    pub guest_ifname: &'a IfName,
    /// The name the link gets in the guest until it is renamed.
    pub temp_name: &'a str,
    /// The MAC address the guest link must have.
    pub mac: MacAddr,
    pub state: &'a StateDir,
    pub settings: &'a Settings,
}

impl<'a> AttachContext<'a> {
    /// The host interface, for drivers that stack on or take an existing one.
    pub fn existing_host_link(&self) -> Result<&'a Link> {
        self.host_link.ok_or_else(|| {
            crate::error::Error::usage(format!("no host interface {}", self.host_ifname))
        })
    }
}

/// What the undo of a step needs (a driver's own steps included).
pub struct UndoContext<'a> {
    pub host: &'a Netlink,
    /// `None` when the guest's namespace is gone (its links went with it).
    pub guest: Option<&'a Netlink>,
    /// The host namespace, for moving links back.
    pub host_ns: &'a Netns,
    pub state: &'a StateDir,
    pub settings: &'a Settings,
    pub mode: UndoMode,
}

/// What a driver's [`Driver::validate`] worked out for its
/// [`Driver::create`] (the parent link, the VLAN, the OVS port's VLAN
/// configuration...), so that nothing is looked up or parsed twice. Opaque
/// to the orchestrator, which only hands it over; each driver has its own
/// type in it.
pub struct Plan(Box<dyn Any + Send + Sync>);

impl Plan {
    pub fn new<T: Any + Send + Sync>(plan: T) -> Plan {
        Plan(Box::new(plan))
    }

    /// The plan of a driver that needs none.
    pub fn empty() -> Plan {
        Plan::new(())
    }

    /// The driver's own plan back. Another type is a bug (a plan handed to
    /// the wrong driver), reported as an error rather than a panic.
    pub fn take<T: Any>(self) -> Result<T> {
        self.0.downcast::<T>().map(|b| *b).map_err(|_| {
            crate::error::Error::failed(format!(
                "internal error: a driver was handed another driver's plan (wanted {})",
                std::any::type_name::<T>()
            ))
        })
    }
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Plan")
    }
}

/// Who gives the guest link its MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MacHandling {
    /// The driver created the link with `ctx.mac`.
    #[default]
    SetAtCreation,
    /// The orchestrator sets `ctx.mac` on the link (with the rename): the
    /// driver could not set it at creation.
    SetByOrchestrator,
    /// The link keeps a MAC of its own rather than `ctx.mac` (a moved NIC, a
    /// passthru macvlan, IPoIB): the orchestrator reads it back for the
    /// record.
    KeepsOwn,
}

/// What a driver created, for the orchestrator and the attachment record.
#[derive(Clone, Debug, Default)]
pub struct Plugged {
    /// The guest link's index in the guest namespace (under `temp_name`,
    /// or already under its final name: a veth's guest end).
    pub guest_ifindex: u32,
    /// Who gives the link its MAC.
    pub mac: MacHandling,
    /// Host-side peer (veth end) name, if any.
    pub host_peer: Option<String>,
    /// The bridge the peer is a port of, if any.
    pub bridge: Option<String>,
    /// 802.1Q id applied (OVS tag, sub-interface, bridge PVID).
    pub vlan: Option<u16>,
    /// The index of the Linux bridge the host end is an untagged port of:
    /// a frame sent into that bridge reaches the guest's neighbours as one
    /// from the guest would (`apply` announces through it).
    pub untagged_bridge: Option<u32>,
    pub mtu: u32,
    /// Driver-specific facts for `inspect` (OVS port UUID, VF index, pkey...).
    pub details: serde_json::Map<String, serde_json::Value>,
}

#[async_trait]
pub trait Driver: Send + Sync {
    fn kind(&self) -> DriverKind;

    /// The guest interface name when `-i` is absent.
    fn default_guest_ifname(&self) -> &'static str {
        "eth1"
    }

    /// Refuses the options this driver owns when another driver (`chosen`)
    /// handles the attachment to `host`: they would be silently ignored.
    /// Called for every driver but the chosen one, before anything else.
    fn refuse_options(&self, _req: &AttachRequest, _chosen: DriverKind, _host: &str) -> Result<()> {
        Ok(())
    }

    /// Checks the request against the host without changing anything, and
    /// returns what it found for [`create`](Self::create). Errors here are
    /// usage errors (exit code 2).
    async fn validate(&self, ctx: &AttachContext<'_>) -> Result<Plan>;

    /// Creates the guest's link inside the guest namespace under
    /// `ctx.temp_name`, plus anything the host side needs, following the
    /// `plan` [`validate`](Self::validate) returned. Every change is
    /// recorded in `journal` before the next one is made.
    async fn create(
        &self,
        ctx: &AttachContext<'_>,
        plan: Plan,
        journal: &mut Journal,
    ) -> Result<Plugged>;

    /// Runs once the guest link is up and addressed, before the announcement
    /// (OVS waits for its port to forward; port security flows).
    /// `guest_announces`: the guest sends its announcement right after
    /// (frames a port that does not forward yet would drop); false when
    /// there is none or the host sent it.
    async fn after_up(
        &self,
        _ctx: &AttachContext<'_>,
        _plugged: &mut Plugged,
        _guest_announces: bool,
        _journal: &mut Journal,
    ) -> Result<()> {
        Ok(())
    }

    /// Runs when a later attach adds `added` to an interface this driver
    /// made (`rec`), before the announcement, so that host-side filters
    /// (OVS port security) let the new addresses through. Every change goes
    /// into `journal`, which is undone if the extension fails.
    async fn extend(
        &self,
        _req: &AttachRequest,
        _rec: &AttachmentRecord,
        _added: &[StaticAddress],
        _settings: &Settings,
        _journal: &mut Journal,
    ) -> Result<()> {
        Ok(())
    }

    /// Compares what this driver made for `rec` with the host as it is now
    /// (for `pipework check` and the daemon's healing), repairing what it
    /// can when `repair` allows host-side repairs. One finding per
    /// difference; none when all is as recorded.
    async fn check(
        &self,
        _rec: &AttachmentRecord,
        _settings: &Settings,
        _repair: RepairScope,
    ) -> Vec<Finding> {
        Vec::new()
    }

    /// Undoes a [`crate::journal::Step::Driver`] step this driver recorded
    /// (read with [`DriverData::decode`]).
    async fn undo(&self, _data: &DriverData, _ctx: &UndoContext<'_>) -> Result<()> {
        Ok(())
    }
}

/// The set of available drivers, plus the host facts only a driver can supply.
#[async_trait]
pub trait DriverSet: Send + Sync {
    fn get(&self, kind: DriverKind) -> Option<&dyn Driver>;

    /// Whether Open vSwitch knows a bridge by this name. `Ok(false)` when no
    /// OVSDB server is reachable.
    async fn is_ovs_bridge(&self, _name: &str, _settings: &Settings) -> Result<bool> {
        Ok(false)
    }

    /// Driver-level garbage collection for `pipework gc`, after the records of
    /// dead guests were undone: objects pipework owns that no record explains
    /// any more (OVS ports whose interface is gone, their flows). Returns a
    /// line per object removed.
    async fn gc(&self, _settings: &Settings) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Returns, saying what happened, once something the drivers keep on
    /// the host may have been lost (ovs-vswitchd restarted and forgot its
    /// flows...): the daemon then checks every record and repairs. Called
    /// again and again; never returns when there is nothing to follow.
    async fn changed(&self, _settings: &Settings) -> String {
        std::future::pending().await
    }
}
