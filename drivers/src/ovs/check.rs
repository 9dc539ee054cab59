//! `pipework check` for an OVS attachment: the Port row on its bridge with
//! the recorded VLAN tag and trunks, and the port-security flows, read back over
//! OpenFlow and counted per flow set (cookie). A vswitchd restart loses
//! every flow while OVSDB keeps the rows: the flows are what drifts.

use std::net::IpAddr;

use pipework_base::drift::{Finding, Repair, RepairScope};
use pipework_base::error::Error;
use pipework_base::journal::Step;
use pipework_base::settings::Settings;
use pipework_base::state::{AttachmentRecord, StateDir};
use pipework_model::{DriverKind, VlanSet};
use pipework_ovsdb_schemas::{bridge, datum, interface, keys, port, UUID};
use serde_json::{Map, Value};

use super::openflow::{Flow, Switch};
use super::ovsdb::op;
use super::steps::{read_step, OvsStep};
use super::{parse_cookie, portsec, Ovs, Remote};

/// What the journal says this attachment put into OVS.
struct Made {
    ovsdb: String,
    bridge: String,
    port: String,
    cookie: String,
    /// One entry per flow set: its management socket, cookie, and the
    /// addresses it let through (the first set also holds the drops).
    flows: Vec<(std::path::PathBuf, String, Vec<IpAddr>)>,
}

fn made(rec: &AttachmentRecord) -> Result<Option<Made>, String> {
    let mut found: Option<Made> = None;
    let mut flows = Vec::new();
    // Addresses are added before the flows that let them out (attach and
    // extension alike): each flow set takes the addresses added since the
    // previous one.
    let mut addrs = Vec::new();
    for s in rec.journal.steps() {
        match s {
            Step::GuestAddressAdded { address, .. } => addrs.push(address.addr()),
            Step::Driver {
                driver: DriverKind::Ovs,
                data,
            } => match read_step(data).map_err(|e| e.to_string())? {
                OvsStep::Port {
                    ovsdb,
                    bridge,
                    port,
                    cookie,
                } => {
                    found = Some(Made {
                        ovsdb,
                        bridge,
                        port,
                        cookie,
                        flows: Vec::new(),
                    })
                }
                OvsStep::Flows {
                    rundir,
                    bridge,
                    cookie,
                } => flows.push((
                    rundir.join(format!("{bridge}.mgmt")),
                    cookie,
                    std::mem::take(&mut addrs),
                )),
            },
            _ => {}
        }
    }
    Ok(found.map(|mut m| {
        m.flows = flows;
        m
    }))
}

impl Ovs {
    pub(super) async fn check_record(
        &self,
        rec: &AttachmentRecord,
        settings: &Settings,
        scope: RepairScope,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let m = match made(rec) {
            Ok(Some(m)) => m,
            Ok(None) => return out,
            Err(e) => {
                out.push(Finding::new(
                    "ovs_port",
                    format!("the record's OVS steps cannot be read: {e}"),
                    Repair::left(scope, "the record is damaged"),
                ));
                return out;
            }
        };
        let remote: Remote = match m.ovsdb.parse() {
            Ok(r) => r,
            Err(e) => {
                out.push(Finding::new(
                    "ovs_port",
                    e,
                    Repair::left(scope, "bad record"),
                ));
                return out;
            }
        };
        let unreachable = |e: &dyn std::fmt::Display| {
            Finding::new(
                "ovs_port",
                format!("cannot read OVSDB at {remote}: {e}"),
                Repair::left(scope, "OVSDB does not answer"),
            )
        };
        let by_name = |n: &str| vec![op::eq("name", n.into())];
        let row = match self
            .select(
                &remote,
                port::TABLE,
                by_name(&m.port),
                &[
                    UUID,
                    port::TAG.name,
                    port::TRUNKS.name,
                    port::EXTERNAL_IDS.name,
                ],
            )
            .await
        {
            Ok(rows) => rows.into_iter().find(|r| {
                datum::string_map(&r[port::EXTERNAL_IDS.name]).get(keys::COOKIE) == Some(&m.cookie)
            }),
            Err(e) => {
                out.push(unreachable(&e));
                return out;
            }
        };
        let Some(row) = row else {
            out.push(Finding::new(
                "ovs_port",
                format!("OVS port {} is gone from bridge {}", m.port, m.bridge),
                Repair::left(scope, "detach and attach again"),
            ));
            return out;
        };
        let uuid = datum::as_uuid(&row[UUID]).unwrap_or_default();
        match self
            .select(
                &remote,
                bridge::TABLE,
                by_name(&m.bridge),
                &[bridge::PORTS.name],
            )
            .await
        {
            Ok(rows)
                if rows
                    .iter()
                    .any(|b| datum::uuids(&b[bridge::PORTS.name]).contains(&uuid)) => {}
            Ok(_) => {
                out.push(Finding::new(
                    "bridge",
                    format!("OVS port {} is not a port of bridge {}", m.port, m.bridge),
                    Repair::left(scope, "detach and attach again"),
                ));
                return out;
            }
            Err(e) => {
                out.push(unreachable(&e));
                return out;
            }
        }
        let tag = datum::optional_int(&row[port::TAG.name]).and_then(|t| u16::try_from(t).ok());
        if tag != rec.vlan {
            let say = |t: Option<u16>| t.map_or_else(|| "none".to_string(), |t| t.to_string());
            let value = rec.vlan.map_or_else(datum::empty_set, Value::from);
            let repair = self
                .set_port_column(&remote, &uuid, port::TAG.name, value, scope)
                .await;
            out.push(Finding::new(
                "ovs_vlan",
                format!(
                    "OVS port {} has VLAN tag {} where the record says {}",
                    m.port,
                    say(tag),
                    say(rec.vlan)
                ),
                repair,
            ));
        }
        // The trunks the attach set (`--trunk`); none means every VLAN.
        let mut want_trunks: Vec<i64> = rec
            .details
            .get("ovs_trunks")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<VlanSet>().ok())
            .map(|t| t.ids().iter().map(|v| i64::from(v.get())).collect())
            .unwrap_or_default();
        want_trunks.sort_unstable();
        let mut have_trunks: Vec<i64> = datum::set_members(&row[port::TRUNKS.name])
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        have_trunks.sort_unstable();
        if have_trunks != want_trunks {
            let say = |v: &[i64]| {
                if v.is_empty() {
                    "all".to_string()
                } else {
                    v.iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                }
            };
            let value = datum::set(want_trunks.iter().map(|x| Value::from(*x)).collect());
            let repair = self
                .set_port_column(&remote, &uuid, port::TRUNKS.name, value, scope)
                .await;
            out.push(Finding::new(
                "ovs_vlan",
                format!(
                    "OVS port {} trunks VLANs {} where the record says {}",
                    m.port,
                    say(&have_trunks),
                    say(&want_trunks)
                ),
                repair,
            ));
        }
        if !m.flows.is_empty() {
            if let Some(f) = self.check_flows(rec, &m, &remote, settings, scope).await {
                out.push(f);
            }
        }
        out
    }

    /// The port-security flows: every flow set complete, else one finding
    /// (and every set installed again, when repairing).
    /// Repairs one column of a Port row (its tag, its trunks) when the
    /// scope allows it.
    async fn set_port_column(
        &self,
        remote: &Remote,
        uuid: &str,
        column: &str,
        value: Value,
        scope: RepairScope,
    ) -> Repair {
        if !scope.host_side() {
            return Repair::NotAsked;
        }
        let mut row = Map::new();
        row.insert(column.into(), value);
        let update = op::update(port::TABLE, vec![op::eq(UUID, datum::uuid(uuid))], row);
        Repair::of(
            self.transact(remote, vec![update], std::time::Duration::ZERO)
                .await
                .map(drop),
        )
    }

    async fn check_flows(
        &self,
        rec: &AttachmentRecord,
        m: &Made,
        remote: &Remote,
        settings: &Settings,
        scope: RepairScope,
    ) -> Option<Finding> {
        let recorded = rec.details.get("ovs_ofport").and_then(Value::as_u64);
        let live = match self
            .select(
                remote,
                interface::TABLE,
                vec![op::eq("name", m.port.as_str().into())],
                &[interface::OFPORT.name],
            )
            .await
        {
            Ok(rows) => rows
                .first()
                .and_then(|r| datum::optional_int(&r[interface::OFPORT.name])),
            Err(e) => {
                return Some(Finding::new(
                    "ovs_flows",
                    format!("cannot read OVSDB at {remote}: {e}"),
                    Repair::left(scope, "OVSDB does not answer"),
                ))
            }
        };
        let renumbered = |l: Option<i64>| {
            format!(
                "OVS port {} has OpenFlow number {} where its flows name {}",
                m.port,
                l.map_or("none".into(), |l| l.to_string()),
                recorded.map_or("none".into(), |r| r.to_string())
            )
        };
        // The port got another OpenFlow number (deleted and added again, an
        // `ofport_request`): the flows still name the old one, which may now
        // be another guest's port, whose traffic they would judge by this
        // guest's MAC and addresses. Moved to the new number on repair.
        let (ofport, moved) = match (recorded, live) {
            (Some(r), Some(l)) if l == r as i64 => (r as u32, false),
            (_, Some(l)) if l > 0 && l < i64::from(u16::MAX) => {
                if !scope.host_side() {
                    return Some(Finding::new(
                        "ovs_flows",
                        renumbered(Some(l)),
                        Repair::NotAsked,
                    ));
                }
                (l as u32, true)
            }
            (_, l) => {
                return Some(Finding::new(
                    "ovs_flows",
                    renumbered(l),
                    Repair::left(scope, "detach and attach again"),
                ))
            }
        };
        let mut want: Vec<(u64, Vec<Flow>)> = Vec::new();
        for (i, (_, cookie, addrs)) in m.flows.iter().enumerate() {
            let Some(c) = parse_cookie(cookie) else {
                return Some(Finding::new(
                    "ovs_flows",
                    format!("bad cookie {cookie} in the record"),
                    Repair::left(scope, "the record is damaged"),
                ));
            };
            let set = if i == 0 {
                portsec::flows(c, ofport, rec.mac, addrs)
            } else {
                portsec::address_flows(c, ofport, rec.mac, addrs)
            };
            want.push((c, set));
        }
        let sock = &m.flows[0].0;
        let mut sw = match Switch::connect(sock).await {
            Ok(s) => s,
            Err(e) => {
                return Some(Finding::new(
                    "ovs_flows",
                    format!(
                        "cannot read the port-security flows of {} on bridge {}: {}: {e}",
                        m.port,
                        m.bridge,
                        sock.display()
                    ),
                    Repair::left(scope, "ovs-vswitchd does not answer"),
                ))
            }
        };
        if moved {
            let all: Vec<Flow> = want.iter().flat_map(|(_, s)| s.clone()).collect();
            let cookies: Vec<u64> = want.iter().map(|(c, _)| *c).collect();
            let repair =
                Repair::of(move_flows(&mut sw, &cookies, &all, settings, rec, ofport).await);
            return Some(Finding::new(
                "ovs_flows",
                renumbered(Some(i64::from(ofport))),
                repair,
            ));
        }
        let (mut have, mut total) = (0, 0);
        for (c, set) in &want {
            total += set.len();
            match sw.flow_cookies(*c, u64::MAX).await {
                Ok(v) => have += v.len().min(set.len()),
                Err(e) => {
                    return Some(Finding::new(
                        "ovs_flows",
                        format!("cannot read the flows of bridge {}: {e}", m.bridge),
                        Repair::left(scope, "ovs-vswitchd does not answer"),
                    ))
                }
            }
        }
        if have == total {
            return None;
        }
        let repair = if scope.host_side() {
            let all: Vec<Flow> = want.into_iter().flat_map(|(_, s)| s).collect();
            Repair::of(sw.add_flows(&all).await)
        } else {
            Repair::NotAsked
        };
        Some(Finding::new(
            "ovs_flows",
            format!(
                "port-security flows of OVS port {} on bridge {}: {have} of {total} in place",
                m.port, m.bridge
            ),
            repair,
        ))
    }
}

/// Replaces a record's port-security flows (every cookie of it) with `all`,
/// built for the port's new OpenFlow number, and records that number. The
/// flows go first: a record saved after them that fails leaves the old
/// number recorded, and the next check moves the flows again (the same
/// result), then saves.
async fn move_flows(
    sw: &mut Switch,
    cookies: &[u64],
    all: &[Flow],
    settings: &Settings,
    rec: &AttachmentRecord,
    ofport: u32,
) -> pipework_base::error::Result<()> {
    let of = |e: super::openflow::OfError| Error::failed(e.to_string());
    for c in cookies {
        sw.delete_cookie(*c, u64::MAX).await.map_err(of)?;
    }
    sw.add_flows(all).await.map_err(of)?;
    // The caller (check) holds the guest's lock: no attach or detach of this
    // guest changes the record meanwhile.
    let state = StateDir::open(&settings.state_dir)?;
    let mut now = state
        .load(rec.guest.netns, &rec.interface)?
        .ok_or_else(|| Error::failed("the record is gone"))?;
    now.details.insert("ovs_ofport".into(), ofport.into());
    state.save(&now)
}
