//! Open vSwitch: a veth pair whose host end becomes a port of an OVS bridge,
//! added through OVSDB in one transaction (and the bridge with it, for a
//! missing `ovs*` name), with optional OpenFlow port security.
//!
//! Nothing here runs `ovs-vsctl` or `ovs-ofctl`: OVSDB (RFC 7047) and
//! OpenFlow 1.3 are spoken directly, see [`ovsdb`] and [`openflow`] for why
//! we carry our own small implementations.
//!
//! Ownership lives in OVSDB itself: the Port and Interface rows carry the
//! original pipework's `external_ids` (`pipework.interface`, `.bridge`,
//! `.containerid`, `.containername`, `.nspid`, `.vlan`) plus the cookie of
//! the attachment's flows, so `pipework gc` can find and remove what a dead
//! container left even without a state record.

mod check;
mod cleanup;
mod follow;
pub mod jsonrpc;
pub mod openflow;
pub mod ovsdb;
mod ports;
pub mod portsec;
pub mod remote;
mod steps;

use std::time::Duration;

use async_trait::async_trait;
use pipework_base::drift::{Finding, RepairScope};
use pipework_base::driver::UndoContext;
use pipework_base::driver::{AttachContext, Driver, DriverKind, MacHandling, Plan, Plugged};
use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::{DriverData, Journal, Step};
use pipework_base::settings::Settings;
use pipework_base::state::AttachmentRecord;
use pipework_model::{AddressMode, AttachRequest, StaticAddress, VlanSet};
use pipework_ovsdb_schemas::keys;
use pipework_ovsdb_schemas::rows::{ExternalIds, PortVlan};
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};

use crate::veth;
use ovsdb::{Ovsdb, OvsdbError};
use ports::{AddError, AddPort};
pub use remote::Remote;
use steps::{read_step, OvsStep};

/// How long a port may take to get its OpenFlow number and come up.
const FORWARDING_TIMEOUT: Duration = Duration::from_secs(10);

/// Cookies of pipework's flows: 16 bits "pw", 40 random bits per
/// attachment, and 8 bits counting the flow sets of that attachment (0 for
/// the first attach, then one per attach that adds addresses), so that an
/// undo removes exactly its own set and `gc` all of them.
const COOKIE_PREFIX: u64 = 0x7077 << 48;
const GENERATION_BITS: u64 = 0xff;

/// The Open vSwitch driver. It keeps one OVSDB connection for the whole run
/// (probe, validation, attach and the readiness wait share it).
#[derive(Default)]
pub struct Ovs {
    db: Mutex<Option<Ovsdb>>,
    follower: Mutex<follow::Follower>,
}

/// What `validate` found for `create`.
struct OvsPlan {
    remote: Remote,
    vlan: PortVlan,
}

fn remote_of(settings: &Settings) -> Result<Remote> {
    settings.ovsdb.parse::<Remote>().map_err(Error::usage)
}

fn db_error(e: OvsdbError) -> Error {
    Error::failed(e.to_string())
}

/// The port's VLAN configuration from `@VID`, `--trunk`, `--native-vlan`.
pub fn port_vlan(req: &AttachRequest) -> Result<PortVlan> {
    let tag = req.tag.as_ref().map(|t| t.as_vlan()).transpose()?;
    let o = &req.options.ovs;
    let ids = |s: &VlanSet| s.ids().iter().map(|v| v.get()).collect::<Vec<u16>>();
    if o.native_tagged && o.native_vlan.is_none() {
        return Err(Error::usage("--native-tagged needs --native-vlan VID"));
    }
    Ok(match (tag, &o.trunk, o.native_vlan) {
        (Some(_), Some(_), _) => return Err(Error::usage(
            "@VID makes an access port; with --trunk, give the untagged VLAN as --native-vlan VID",
        )),
        (Some(_), None, Some(_)) => {
            return Err(Error::usage(
                "give either @VID (an access port) or --native-vlan VID (a trunk), not both",
            ))
        }
        (Some(t), None, None) => PortVlan::Access(t.get()),
        (None, None, None) => PortVlan::Unset,
        (None, Some(t), None) => PortVlan::Trunk(ids(t)),
        (None, t, Some(n)) => PortVlan::Native {
            native: n.get(),
            trunks: t.as_ref().map(ids).unwrap_or_default(),
            tagged: o.native_tagged,
        },
    })
}

fn vlan_label(v: &PortVlan, req: &AttachRequest) -> Option<String> {
    match v {
        PortVlan::Unset => None,
        PortVlan::Access(t) => Some(t.to_string()),
        PortVlan::Trunk(_) => req.options.ovs.trunk.as_ref().map(|t| format!("trunk:{t}")),
        PortVlan::Native { native, .. } => Some(match &req.options.ovs.trunk {
            Some(t) => format!("{native},trunk:{t}"),
            None => format!("{native},trunk:all"),
        }),
    }
}

fn new_cookie() -> u64 {
    let mut b = [0u8; 8];
    pipework_model::random::fill(&mut b[2..7]);
    COOKIE_PREFIX | u64::from_be_bytes(b)
}

fn cookie_text(c: u64) -> String {
    format!("{c:#018x}")
}

fn parse_cookie(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

impl Ovs {
    pub fn new() -> Ovs {
        Ovs::default()
    }

    /// The shared connection, opened on first use (or after a failure).
    async fn session(&self, remote: &Remote) -> Result<MutexGuard<'_, Option<Ovsdb>>, OvsdbError> {
        let mut g = self.db.lock().await;
        if g.as_ref().is_none_or(|d| d.remote() != remote) {
            *g = Some(Ovsdb::connect(remote).await?);
        }
        Ok(g)
    }

    async fn transact(
        &self,
        remote: &Remote,
        ops: Vec<Value>,
        extra: Duration,
    ) -> Result<Vec<Value>, OvsdbError> {
        let mut g = self.session(remote).await?;
        let r = g.as_mut().expect("connected").transact(ops, extra).await;
        if matches!(r, Err(OvsdbError::Rpc { .. })) {
            // The stream may hold half a reply: start afresh next time.
            *g = None;
        }
        r
    }

    async fn select(
        &self,
        remote: &Remote,
        table: &str,
        conditions: Vec<Value>,
        columns: &[&str],
    ) -> Result<Vec<Value>, OvsdbError> {
        let r = self
            .transact(
                remote,
                vec![ovsdb::op::select(table, conditions, columns)],
                Duration::ZERO,
            )
            .await?;
        Ok(ovsdb::rows(&r[0]))
    }

    /// `DriverSet::changed`: returns once flows pipework owns may have been
    /// lost (see [`follow`]).
    pub async fn changed(&self, settings: &Settings) -> String {
        self.follower.lock().await.changed(settings).await
    }

    /// `DriverSet::is_ovs_bridge`: asks OVSDB. An unreachable server is an
    /// error only for `ovs*` names, which would otherwise be created.
    pub async fn is_bridge(&self, name: &str, settings: &Settings) -> Result<bool> {
        let remote = remote_of(settings)?;
        match self.bridge(&remote, name).await {
            Ok(b) => Ok(b.is_some()),
            Err(OvsdbError::Unreachable { .. }) if !name.starts_with("ovs") => Ok(false),
            Err(e) => Err(db_error(e)),
        }
    }

    fn external_ids(
        ctx: &AttachContext<'_>,
        port: &str,
        vlan: &PortVlan,
        cookie: u64,
    ) -> ExternalIds {
        let g = &ctx.guest.info;
        let mut m = ExternalIds::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put(keys::INTERFACE, port.to_string());
        put(keys::BRIDGE, ctx.host_ifname.to_string());
        put(keys::GUEST_INTERFACE, ctx.guest_ifname.to_string());
        put(keys::COOKIE, cookie_text(cookie));
        if let Some(id) = &g.container_id {
            put(keys::CONTAINER_ID, id.clone());
        }
        if let Some(n) = &g.container_name {
            put(keys::CONTAINER_NAME, n.clone());
        }
        if let Some(p) = g.pid {
            put(keys::NSPID, p.to_string());
        }
        if let Some(v) = vlan_label(vlan, ctx.request) {
            put(keys::VLAN, v);
        }
        m
    }
}

#[async_trait]
impl Driver for Ovs {
    fn kind(&self) -> DriverKind {
        DriverKind::Ovs
    }

    /// `--trunk`, `--native-vlan`, `--port-security`... are this driver's.
    fn refuse_options(&self, req: &AttachRequest, chosen: DriverKind, host: &str) -> Result<()> {
        if req.options.ovs.any() {
            return Err(Error::usage(format!(
                "{} apply only to Open vSwitch bridges, and {host} is handled by the {chosen} driver",
                req.options.ovs.flags().join(", "),
            )));
        }
        Ok(())
    }

    async fn validate(&self, ctx: &AttachContext<'_>) -> Result<Plan> {
        let vlan = port_vlan(ctx.request)?;
        let remote = remote_of(ctx.settings)?;
        let o = &ctx.request.options.ovs;
        let name = ctx.host_ifname;
        let found = self
            .bridge(&remote, name)
            .await
            .map_err(db_error)
            .step("find OVS bridge")?;
        match found {
            Some(b) => {
                if let Some(dp) = &o.datapath_type {
                    let have = if b.datapath_type.is_empty() {
                        "system"
                    } else {
                        &b.datapath_type
                    };
                    if have != dp.as_str() {
                        return Err(Error::usage(format!(
                            "OVS bridge {name} exists with datapath type {have}; --datapath-type {dp} applies only to a bridge pipework creates"
                        )));
                    }
                }
            }
            None if !name.starts_with("ovs") => {
                return Err(Error::usage(format!("Open vSwitch has no bridge {name}")))
            }
            None => {}
        }
        if o.port_security
            && (matches!(ctx.request.address, AddressMode::Dhcp(_)) || ctx.request.options.slaac)
        {
            // The flows name the guest's addresses; a lease or a SLAAC
            // address is not known when they are written.
            return Err(Error::usage(
                "--port-security needs static addresses (or 0/0): it cannot follow DHCP or SLAAC",
            ));
        }
        if o.port_security && !ctx.settings.ovs_rundir.is_dir() {
            return Err(Error::usage(format!(
                "--port-security needs the Open vSwitch run directory {} (set PIPEWORK_OVS_RUNDIR)",
                ctx.settings.ovs_rundir.display()
            )));
        }
        Ok(Plan::new(OvsPlan { remote, vlan }))
    }

    async fn create(
        &self,
        ctx: &AttachContext<'_>,
        plan: Plan,
        journal: &mut Journal,
    ) -> Result<Plugged> {
        let OvsPlan { remote, vlan } = plan.take()?;
        let bridge = ctx.host_ifname;
        // Shared: other attaches add ports meanwhile; the detach that deletes
        // an empty bridge pipework created takes it exclusively.
        let _lock = ctx.state.lock_bridge(bridge, false).await?;
        // The bridge's own device carries its MTU (a new bridge: the default).
        let mtu = ctx.host_link.map_or(1500, |l| l.mtu);
        pipework_base::fault::point("bridge-ready")?;
        let pair = veth::create(ctx, mtu, None, journal).await?;
        let port = pair.host.name.clone();
        let cookie = new_cookie();
        let ids = Self::external_ids(ctx, &port, &vlan, cookie);
        journal.record_driver(
            DriverKind::Ovs,
            &OvsStep::Port {
                ovsdb: remote.to_string(),
                bridge: bridge.to_string(),
                port: port.clone(),
                cookie: cookie_text(cookie),
            },
        )?;
        let add = AddPort {
            bridge,
            port: &port,
            vlan: &vlan,
            external_ids: &ids,
            datapath_type: ctx
                .request
                .options
                .ovs
                .datapath_type
                .as_ref()
                .map(|d| d.as_str()),
        };
        let added = self.add_port(&remote, &add).await.map_err(|e| match e {
            AddError::Db(e) => db_error(e),
            AddError::BridgeDeleted => Error::failed(format!(
                "OVS bridge {bridge} was deleted while pipework was adding a port to it"
            )),
            AddError::ForeignPort => Error::usage(format!(
                "Open vSwitch already has a port {port} that pipework does not own"
            )),
            AddError::NotInitialised => Error::failed(
                "OVSDB has no Open_vSwitch row to add a bridge to (the database was never initialised)",
            ),
            AddError::GaveUp(t) => Error::failed(format!(
                "gave up after {} OVSDB transactions that lost a race for bridge {bridge}; last: {t}",
                ports::MAX_ATTEMPTS
            )),
            AddError::Fault(e) => e,
        });
        let added = added.step("add OVS port")?;
        pipework_base::fault::point("ovs-port-added")?;
        let mut details = serde_json::Map::new();
        details.insert("ovs_port_uuid".into(), added.port_uuid.into());
        details.insert("ovs_interface_uuid".into(), added.interface_uuid.into());
        details.insert("ovs_created_bridge".into(), added.created_bridge.into());
        details.insert("ovs_cookie".into(), cookie_text(cookie).into());
        if let Some(t) = &ctx.request.options.ovs.trunk {
            details.insert("ovs_trunks".into(), t.to_string().into());
        }
        let vlan_id = match vlan {
            PortVlan::Access(t) => Some(t),
            PortVlan::Native { native, .. } => Some(native),
            _ => None,
        };
        Ok(Plugged {
            guest_ifindex: pair.guest_index,
            mac: MacHandling::SetAtCreation,
            host_peer: Some(port),
            bridge: Some(bridge.to_string()),
            vlan: vlan_id,
            untagged_bridge: None,
            mtu,
            details,
        })
    }

    async fn after_up(
        &self,
        ctx: &AttachContext<'_>,
        plugged: &mut Plugged,
        _guest_announces: bool,
        journal: &mut Journal,
    ) -> Result<()> {
        let remote = remote_of(ctx.settings)?;
        let port = plugged.host_peer.clone().unwrap_or_default();
        let bridge = ctx.host_ifname;
        let ofport = self
            .wait_forwarding(&remote, &port, FORWARDING_TIMEOUT)
            .await
            .map_err(Error::failed)
            .step("wait for the OVS port to forward")?;
        plugged.details.insert("ovs_ofport".into(), ofport.into());
        if !ctx.request.options.ovs.port_security {
            return Ok(());
        }
        let cookie = plugged
            .details
            .get("ovs_cookie")
            .and_then(Value::as_str)
            .and_then(parse_cookie)
            .ok_or_else(|| Error::failed("the OVS port's cookie went missing"))?;
        let rundir = ctx.settings.ovs_rundir.clone();
        journal.record_driver(
            DriverKind::Ovs,
            &OvsStep::Flows {
                rundir: rundir.clone(),
                bridge: bridge.to_string(),
                cookie: cookie_text(cookie),
            },
        )?;
        let addrs: Vec<std::net::IpAddr> = ctx
            .request
            .address
            .statics()
            .iter()
            .map(|a| a.address.addr())
            .collect();
        let flows = portsec::flows(cookie, ofport, ctx.mac, &addrs);
        let sock = rundir.join(format!("{bridge}.mgmt"));
        let install = async {
            let mut sw = openflow::Switch::connect(&sock).await?;
            sw.add_flows(&flows).await
        };
        install
            .await
            .map_err(|e| Error::failed(format!("{}: {e}", sock.display())))
            .step("add port-security flows")?;
        plugged
            .details
            .insert("ovs_port_security".into(), true.into());
        pipework_base::fault::point("ovs-flows-added")
    }

    async fn extend(
        &self,
        req: &AttachRequest,
        rec: &AttachmentRecord,
        added: &[StaticAddress],
        settings: &Settings,
        journal: &mut Journal,
    ) -> Result<()> {
        if req.options.ovs.any() {
            return Err(Error::usage(format!(
                "{} apply when pipework makes the port, and {} exists already (detach it to change them)",
                req.options.ovs.flags().join(", "),
                rec.interface
            )));
        }
        if rec
            .details
            .get("ovs_port_security")
            .and_then(Value::as_bool)
            != Some(true)
        {
            return Ok(());
        }
        let detail = |k: &str| rec.details.get(k).cloned().unwrap_or_default();
        let (Some(ofport), Some(base), Some(bridge)) = (
            detail("ovs_ofport").as_u64(),
            detail("ovs_cookie").as_str().and_then(parse_cookie),
            rec.bridge.as_deref(),
        ) else {
            return Err(Error::failed(
                "the attachment record lacks its OVS port details",
            ));
        };
        let mut generation = 0u64;
        for s in rec.journal.steps() {
            if let Step::Driver {
                driver: DriverKind::Ovs,
                data,
            } = s
            {
                if matches!(read_step(data)?, OvsStep::Flows { .. }) {
                    generation += 1;
                }
            }
        }
        if generation > GENERATION_BITS {
            return Err(Error::usage(format!(
                "{} has had too many addresses added; detach and attach it again",
                rec.interface
            )));
        }
        let cookie = (base & !GENERATION_BITS) | generation;
        journal.record_driver(
            DriverKind::Ovs,
            &OvsStep::Flows {
                rundir: settings.ovs_rundir.clone(),
                bridge: bridge.to_string(),
                cookie: cookie_text(cookie),
            },
        )?;
        let addrs: Vec<std::net::IpAddr> = added.iter().map(|a| a.address.addr()).collect();
        let flows = portsec::address_flows(cookie, ofport as u32, rec.mac, &addrs);
        let sock = settings.ovs_rundir.join(format!("{bridge}.mgmt"));
        let install = async {
            let mut sw = openflow::Switch::connect(&sock).await?;
            sw.add_flows(&flows).await
        };
        install
            .await
            .map_err(|e| Error::failed(format!("{}: {e}", sock.display())))
            .step("add port-security flows for the new addresses")
    }

    async fn check(
        &self,
        rec: &AttachmentRecord,
        settings: &Settings,
        repair: RepairScope,
    ) -> Vec<Finding> {
        self.check_record(rec, settings, repair).await
    }

    async fn undo(&self, data: &DriverData, ctx: &UndoContext<'_>) -> Result<()> {
        match read_step(data)? {
            OvsStep::Port {
                ovsdb,
                bridge,
                port,
                cookie,
            } => {
                let remote: Remote = ovsdb.parse().map_err(Error::failed)?;
                {
                    let _lock = ctx.state.lock_bridge(&bridge, false).await?;
                    self.remove_port(&remote, &port, (keys::COOKIE, &cookie))
                        .await
                        .map_err(db_error)
                        .step("undo: remove OVS port")?;
                }
                self.release(ctx.state, &remote, &bridge).await
            }
            OvsStep::Flows {
                rundir,
                bridge,
                cookie,
            } => {
                let c = parse_cookie(&cookie)
                    .ok_or_else(|| Error::failed(format!("bad cookie {cookie}")))?;
                self.delete_flows(&rundir, &bridge, c, u64::MAX)
                    .await
                    .step("undo: delete port-security flows")
            }
        }
    }
}

#[cfg(test)]
mod tests;
