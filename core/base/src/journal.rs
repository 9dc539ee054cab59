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
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::error::{Error, Result};
use pipework_model::DriverKind;
use pipework_sys::netlink::RouteSpec;

/// One recorded change and what it takes to undo it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    /// A link created in the host namespace. Undo: delete it (for a veth,
    /// that removes the guest end too).
    HostLinkCreated { name: String, ifindex: u32 },
    /// A link created directly in the guest namespace. Undo: delete it.
    GuestLinkCreated { name: String, ifindex: u32 },
    /// Read from old records only, never recorded any more: the Linux
    /// bridge driver records this as its own step now, with the very same
    /// fields, and undoes it (see [`Step::as_legacy_driver_step`]).
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
    /// `-l NAME` found a down veth of that name and is renaming it
    /// `aside` (recorded before the rename). Undo: if the link is still
    /// there under `aside`, give it its name back; once the attach has
    /// committed the old link is deleted and there is nothing to undo.
    HostLinkSetAside {
        ifindex: u32,
        name: String,
        aside: String,
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
        data: DriverData,
    },
}

impl Step {
    /// A driver's own step: `step` is the driver's serde-tagged step enum
    /// (`#[serde(tag = "op")]`).
    pub fn driver<T: Serialize>(driver: DriverKind, step: &T) -> Result<Step> {
        Ok(Step::Driver {
            driver,
            data: DriverData::encode(driver, step)?,
        })
    }

    /// An old record's step that a driver undoes now, as that driver's step:
    /// `bridge_used` was a journal step of its own before the Linux bridge
    /// driver took it over, with the same fields.
    pub fn as_legacy_driver_step(&self) -> Option<(DriverKind, DriverData)> {
        match self {
            Step::BridgeUsed { .. } => {
                let data = serde_json::to_value(self).ok()?;
                Some((DriverKind::LinuxBridge, DriverData(data)))
            }
            _ => None,
        }
    }
}

/// A driver's step as the journal keeps it: opaque here, the driver's own
/// step enum on disk. Drivers go through [`Step::driver`] and
/// [`DriverData::decode`], never through the JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DriverData(serde_json::Value);

impl DriverData {
    fn encode<T: Serialize>(driver: DriverKind, step: &T) -> Result<DriverData> {
        serde_json::to_value(step).map(DriverData).map_err(|e| {
            Error::failed(format!("cannot record a {driver} journal step")).with_source(e)
        })
    }

    /// The driver's step. An unreadable one (a record from an unknown
    /// version, a damaged file) is an error that shows the step.
    pub fn decode<T: DeserializeOwned>(&self, driver: DriverKind) -> Result<T> {
        T::deserialize(&self.0).map_err(|e| self.unreadable(driver, e))
    }

    /// Like [`decode`](Self::decode), also reading the layout `L` that older
    /// records used.
    pub fn decode_or_legacy<T, L>(&self, driver: DriverKind) -> Result<T>
    where
        T: DeserializeOwned,
        L: DeserializeOwned + Into<T>,
    {
        match T::deserialize(&self.0) {
            Ok(t) => Ok(t),
            Err(e) => L::deserialize(&self.0)
                .map(Into::into)
                .map_err(|_| self.unreadable(driver, e)),
        }
    }

    fn unreadable(&self, driver: DriverKind, e: serde_json::Error) -> Error {
        Error::failed(format!("unreadable {driver} journal step {}", self.0)).with_source(e)
    }
}

/// Where a guest's `resolv.conf` lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResolvTarget {
    /// `/etc/resolv.conf` inside the root of process `pid`.
    ProcRoot { pid: u32 },
    /// `/etc/netns/<name>/resolv.conf` for a named namespace.
    NetnsEtc { name: String },
}

impl std::fmt::Display for ResolvTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolvTarget::ProcRoot { pid } => {
                write!(f, "/etc/resolv.conf in the root of process {pid}")
            }
            ResolvTarget::NetnsEtc { name } => write!(f, "/etc/netns/{name}/resolv.conf"),
        }
    }
}

/// Why the journal is being replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UndoMode {
    /// A failed attach: put the host back exactly as it was.
    Rollback,
    /// A deliberate detach (or garbage collection).
    Detach,
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

    /// Records a driver's own step (see [`Step::driver`]).
    pub fn record_driver<T: Serialize>(&mut self, driver: DriverKind, step: &T) -> Result<()> {
        self.record(Step::driver(driver, step)?);
        Ok(())
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

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "op", rename_all = "snake_case")]
    enum Mine {
        Thing { name: String },
    }

    #[derive(Deserialize)]
    struct OldMine {
        old: String,
    }

    impl From<OldMine> for Mine {
        fn from(o: OldMine) -> Mine {
            Mine::Thing { name: o.old }
        }
    }

    #[test]
    fn driver_steps_round_trip_and_fail_readably() {
        let mine = Mine::Thing { name: "x".into() };
        let step = Step::driver(DriverKind::Dummy, &mine).unwrap();
        let s = serde_json::to_string(&step).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&s).unwrap(),
            serde_json::json!({"op": "driver", "driver": "dummy", "data": {"op": "thing", "name": "x"}})
        );
        let Step::Driver { data, .. } = serde_json::from_str(&s).unwrap() else {
            panic!("not a driver step")
        };
        assert_eq!(data.decode::<Mine>(DriverKind::Dummy).unwrap(), mine);
        let old = DriverData(serde_json::json!({ "old": "y" }));
        assert_eq!(
            old.decode_or_legacy::<Mine, OldMine>(DriverKind::Dummy)
                .unwrap(),
            Mine::Thing { name: "y".into() }
        );
        let bad = DriverData(serde_json::json!({ "op": "what" }));
        let e = bad
            .decode::<Mine>(DriverKind::Dummy)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unreadable dummy journal step") && e.contains("what"),
            "{e}"
        );
    }

    #[test]
    fn an_old_bridge_used_step_is_the_bridge_driver_s() {
        let old = r#"{"op":"bridge_used","name":"br1","created":true}"#;
        let step: Step = serde_json::from_str(old).unwrap();
        let (driver, data) = step.as_legacy_driver_step().unwrap();
        assert_eq!(driver, DriverKind::LinuxBridge);
        assert_eq!(
            serde_json::to_value(&data).unwrap(),
            serde_json::from_str::<serde_json::Value>(old).unwrap()
        );
    }
}
