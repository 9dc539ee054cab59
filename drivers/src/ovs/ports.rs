//! The OVSDB transactions of an attachment: add the port (creating the bridge
//! if need be) in one transaction, wait until it forwards, remove it in one
//! transaction, delete a bridge pipework created once it is empty.

use std::time::{Duration, Instant};

use pipework_ovsdb_schemas::rows::{
    BridgeRow, ExternalIds, InterfaceState, NewBridge, NewInterface, NewPort, PortRow, PortVlan,
};
use pipework_ovsdb_schemas::{bridge, datum, interface, keys, open_vswitch, port, UUID};
use serde_json::{json, Value};

use super::ovsdb::{inserted_uuid, op, rows, OvsdbError, TxnError};
use super::Ovs;
use super::Remote;

/// How many times an attach re-reads and retries after a transaction that
/// lost a race (a bridge created or replaced by someone else meanwhile).
pub const MAX_ATTEMPTS: u32 = 5;

/// What the attach transaction made.
#[derive(Debug)]
pub struct Added {
    pub port_uuid: String,
    pub interface_uuid: String,
    pub created_bridge: bool,
}

/// Why adding the port failed.
#[derive(Debug)]
pub enum AddError {
    Db(OvsdbError),
    /// The bridge existed when the attach started and is gone now.
    BridgeDeleted,
    /// A port by this name exists and is not pipework's.
    ForeignPort,
    /// OVSDB has no `Open_vSwitch` row to hang a new bridge on.
    NotInitialised,
    /// Every attempt lost a race.
    GaveUp(TxnError),
    /// A test-only injected fault.
    Fault(pipework_base::Error),
}

impl From<OvsdbError> for AddError {
    fn from(e: OvsdbError) -> AddError {
        AddError::Db(e)
    }
}

/// What one attempt read before writing.
struct Seen {
    bridge: Option<BridgeRow>,
    stale: Option<PortRow>,
}

pub struct AddPort<'a> {
    pub bridge: &'a str,
    pub port: &'a str,
    pub vlan: &'a PortVlan,
    pub external_ids: &'a ExternalIds,
    pub datapath_type: Option<&'a str>,
}

fn by_name(name: &str) -> Vec<Value> {
    vec![op::eq("name", name.into())]
}

fn by_uuid(u: &str) -> Vec<Value> {
    vec![op::eq(UUID, datum::uuid(u))]
}

/// Rows whose `external_ids` hold `key=value`.
fn marked((key, value): (&str, &str)) -> Value {
    let mut m = ExternalIds::new();
    m.insert(key.to_string(), value.to_string());
    op::includes(port::EXTERNAL_IDS.name, datum::map(&m))
}

impl Ovs {
    async fn read(&self, remote: &Remote, a: &AddPort<'_>) -> Result<Seen, OvsdbError> {
        let r = self
            .transact(
                remote,
                vec![
                    op::select(bridge::TABLE, by_name(a.bridge), BridgeRow::IDENTITY),
                    op::select(port::TABLE, by_name(a.port), PortRow::COLUMNS),
                ],
                Duration::ZERO,
            )
            .await?;
        Ok(Seen {
            bridge: rows(&r[0]).first().and_then(BridgeRow::from_json),
            stale: rows(&r[1]).first().and_then(PortRow::from_json),
        })
    }

    /// Adds the port in one transaction; re-reads and retries (at most
    /// [`MAX_ATTEMPTS`] times) when another client changed the bridge first.
    pub async fn add_port(&self, remote: &Remote, a: &AddPort<'_>) -> Result<Added, AddError> {
        let mut existed = None;
        let mut last = None;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
            }
            let seen = self.read(remote, a).await?;
            let had = *existed.get_or_insert(seen.bridge.is_some());
            if had && seen.bridge.is_none() {
                return Err(AddError::BridgeDeleted);
            }
            if let Some(s) = &seen.stale {
                if !s.external_ids.contains_key(keys::INTERFACE) {
                    return Err(AddError::ForeignPort);
                }
            }
            pipework_base::fault::point("ovs-bridge-read").map_err(AddError::Fault)?;
            let (ops, create_at) = write_ops(a, &seen);
            match self.transact(remote, ops, Duration::ZERO).await {
                Ok(r) => {
                    if let Some(i) = create_at {
                        if op::count(&r[i]) != 1 {
                            return Err(AddError::NotInitialised);
                        }
                    }
                    let base = usize::from(seen.stale.is_some()) * 3
                        + 1
                        + if create_at.is_some() { 2 } else { 0 };
                    return Ok(Added {
                        interface_uuid: inserted_uuid(&r[base]).unwrap_or_default(),
                        port_uuid: inserted_uuid(&r[base + 1]).unwrap_or_default(),
                        created_bridge: create_at.is_some(),
                    });
                }
                Err(OvsdbError::Txn(t)) if t.is_wait_failure() || t.is_constraint_violation() => {
                    tracing::debug!(attempt, "OVSDB transaction lost a race: {t}");
                    last = Some(t);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AddError::GaveUp(last.expect("at least one attempt")))
    }

    /// Waits (server side) until ovs-vswitchd gave the port an OpenFlow
    /// number and its link is up. Returns the number.
    pub async fn wait_forwarding(
        &self,
        remote: &Remote,
        name: &str,
        timeout: Duration,
    ) -> Result<u32, String> {
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let ofport = op::wait(
            interface::TABLE,
            by_name(name),
            &[interface::OFPORT.name],
            false,
            vec![json!({ (interface::OFPORT.name): datum::empty_set() })],
            left(),
        );
        let select = || op::select(interface::TABLE, by_name(name), InterfaceState::COLUMNS);
        let state = match self.transact(remote, vec![ofport, select()], left()).await {
            Ok(r) => rows(&r[1]).first().map(InterfaceState::from_json),
            Err(OvsdbError::Txn(t)) if t.is_wait_failure() => {
                return Err(format!(
                    "ovs-vswitchd did not take port {name} within {} s (is it running?)",
                    timeout.as_secs()
                ))
            }
            Err(e) => return Err(e.to_string()),
        };
        let Some(state) = state else {
            return Err(format!(
                "port {name} vanished from OVSDB (was the bridge deleted?)"
            ));
        };
        let number = match state.ofport {
            Some(n) if n > 0 => n as u32,
            _ => {
                return Err(format!(
                    "Open vSwitch could not add port {name}: {}",
                    state.error.as_deref().unwrap_or("no OpenFlow port number")
                ))
            }
        };
        if state.link_up {
            return Ok(number);
        }
        let up = op::wait(
            interface::TABLE,
            by_name(name),
            &[interface::LINK_STATE.name],
            true,
            vec![json!({ (interface::LINK_STATE.name): "up" })],
            left(),
        );
        match self.transact(remote, vec![up, select()], left()).await {
            Ok(r) if !rows(&r[1]).is_empty() => Ok(number),
            Ok(_) => Err(format!("port {name} vanished from OVSDB")),
            Err(OvsdbError::Txn(t)) if t.is_wait_failure() => Err(format!(
                "port {name} did not come up within {} s",
                timeout.as_secs()
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Removes the Port and Interface rows named `name` whose `external_ids`
    /// carry `mark` (the attachment's cookie), in one transaction. Already
    /// gone counts as done.
    pub async fn remove_port(
        &self,
        remote: &Remote,
        name: &str,
        mark: (&str, &str),
    ) -> Result<bool, OvsdbError> {
        let mut cond = by_name(name);
        cond.push(marked(mark));
        let found = self
            .select(remote, port::TABLE, cond.clone(), &[UUID])
            .await?;
        let Some(u) = found.first().and_then(|r| datum::as_uuid(&r[UUID])) else {
            return Ok(false);
        };
        self.transact(
            remote,
            vec![
                op::mutate(
                    bridge::TABLE,
                    vec![op::includes(bridge::PORTS.name, datum::uuid(&u))],
                    vec![json!([bridge::PORTS.name, "delete", datum::uuid(&u)])],
                ),
                op::delete(port::TABLE, by_uuid(&u)),
                op::delete(interface::TABLE, cond),
            ],
            Duration::ZERO,
        )
        .await?;
        Ok(true)
    }

    /// Deletes a bridge pipework created once only its own internal port is
    /// left. Returns whether it did. A port added meanwhile makes the guarded
    /// transaction fail, and the bridge stays.
    pub async fn release_bridge(&self, remote: &Remote, name: &str) -> Result<bool, OvsdbError> {
        let found = self
            .select(remote, bridge::TABLE, by_name(name), BridgeRow::COLUMNS)
            .await?;
        let Some(b) = found.first().and_then(BridgeRow::from_json) else {
            return Ok(false);
        };
        if b.external_ids.get(keys::OWNED).map(String::as_str) != Some("true") || b.ports.len() > 1
        {
            return Ok(false);
        }
        let ports = datum::set(b.ports.iter().map(|p| datum::uuid(p)).collect());
        let r = self
            .transact(
                remote,
                vec![
                    op::wait(
                        bridge::TABLE,
                        by_uuid(&b.uuid),
                        &[bridge::PORTS.name],
                        true,
                        vec![json!({ (bridge::PORTS.name): ports })],
                        Duration::ZERO,
                    ),
                    // Ports and interfaces are not root tables: dropping the
                    // bridge's reference deletes them with it.
                    op::mutate(
                        open_vswitch::TABLE,
                        vec![],
                        vec![json!([
                            open_vswitch::BRIDGES.name,
                            "delete",
                            datum::uuid(&b.uuid)
                        ])],
                    ),
                ],
                Duration::ZERO,
            )
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(OvsdbError::Txn(t)) if t.is_wait_failure() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every Port row pipework owns.
    pub async fn owned_ports(&self, remote: &Remote) -> Result<Vec<PortRow>, OvsdbError> {
        Ok(self
            .select(remote, port::TABLE, vec![], PortRow::COLUMNS)
            .await?
            .iter()
            .filter_map(PortRow::from_json)
            .filter(|p| p.external_ids.contains_key(keys::INTERFACE))
            .collect())
    }

    /// The bridge row by name, without its list of ports.
    pub async fn bridge(
        &self,
        remote: &Remote,
        name: &str,
    ) -> Result<Option<BridgeRow>, OvsdbError> {
        Ok(self
            .select(remote, bridge::TABLE, by_name(name), BridgeRow::IDENTITY)
            .await?
            .first()
            .and_then(BridgeRow::from_json))
    }
}

/// The write transaction of one attempt, and the index of the operation that
/// hangs a new bridge on the `Open_vSwitch` row, if it creates one.
fn write_ops(a: &AddPort<'_>, seen: &Seen) -> (Vec<Value>, Option<usize>) {
    let mut ops = Vec::new();
    // The assumption this attempt rests on, checked by the server at commit:
    // the bridge we read is still that row, or there still is none.
    match &seen.bridge {
        Some(b) => ops.push(op::wait(
            bridge::TABLE,
            by_uuid(&b.uuid),
            &[bridge::NAME.name],
            true,
            vec![json!({ (bridge::NAME.name): a.bridge })],
            Duration::ZERO,
        )),
        None => ops.push(op::wait(
            bridge::TABLE,
            by_name(a.bridge),
            &[bridge::NAME.name],
            true,
            vec![],
            Duration::ZERO,
        )),
    }
    // A row left by an attachment whose veth died (same host-side name,
    // reused now): ours to replace.
    if let Some(s) = &seen.stale {
        ops.push(op::mutate(
            bridge::TABLE,
            vec![op::includes(bridge::PORTS.name, datum::uuid(&s.uuid))],
            vec![json!([bridge::PORTS.name, "delete", datum::uuid(&s.uuid)])],
        ));
        ops.push(op::delete(port::TABLE, by_uuid(&s.uuid)));
        ops.push(op::delete(interface::TABLE, by_name(a.port)));
    }
    let none = ExternalIds::new();
    let mut owned = ExternalIds::new();
    owned.insert(keys::OWNED.to_string(), "true".to_string());
    let creating = seen.bridge.is_none();
    if creating {
        ops.push(op::insert(
            interface::TABLE,
            NewInterface {
                name: a.bridge,
                kind: Some("internal"),
                external_ids: &none,
            }
            .row(),
            Some("bridge_iface"),
        ));
        ops.push(op::insert(
            port::TABLE,
            NewPort {
                name: a.bridge,
                interfaces: vec![datum::named("bridge_iface")],
                vlan: &PortVlan::Unset,
                external_ids: &none,
            }
            .row(),
            Some("bridge_port"),
        ));
    }
    ops.push(op::insert(
        interface::TABLE,
        NewInterface {
            name: a.port,
            kind: None,
            external_ids: a.external_ids,
        }
        .row(),
        Some("iface"),
    ));
    ops.push(op::insert(
        port::TABLE,
        NewPort {
            name: a.port,
            interfaces: vec![datum::named("iface")],
            vlan: a.vlan,
            external_ids: a.external_ids,
        }
        .row(),
        Some("port"),
    ));
    match &seen.bridge {
        Some(b) => {
            ops.push(op::mutate(
                bridge::TABLE,
                by_uuid(&b.uuid),
                vec![json!([
                    bridge::PORTS.name,
                    "insert",
                    datum::set(vec![datum::named("port")])
                ])],
            ));
            (ops, None)
        }
        None => {
            ops.push(op::insert(
                bridge::TABLE,
                NewBridge {
                    name: a.bridge,
                    ports: vec![datum::named("bridge_port"), datum::named("port")],
                    datapath_type: a.datapath_type,
                    external_ids: &owned,
                }
                .row(),
                Some("bridge"),
            ));
            ops.push(op::mutate(
                open_vswitch::TABLE,
                vec![],
                vec![json!([
                    open_vswitch::BRIDGES.name,
                    "insert",
                    datum::set(vec![datum::named("bridge")])
                ])],
            ));
            let at = ops.len() - 1;
            (ops, Some(at))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add<'a>(vlan: &'a PortVlan, ids: &'a ExternalIds) -> AddPort<'a> {
        AddPort {
            bridge: "ovs0",
            port: "veth1pl9",
            vlan,
            external_ids: ids,
            datapath_type: Some("netdev"),
        }
    }

    #[test]
    fn existing_bridge_one_transaction() {
        let ids = ExternalIds::new();
        let v = PortVlan::Access(10);
        let seen = Seen {
            bridge: Some(BridgeRow {
                uuid: "b".into(),
                name: "ovs0".into(),
                ports: vec![],
                datapath_type: "netdev".into(),
                external_ids: ExternalIds::new(),
            }),
            stale: None,
        };
        let (ops, create) = write_ops(&add(&v, &ids), &seen);
        let kinds: Vec<&str> = ops.iter().map(|o| o["op"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["wait", "insert", "insert", "mutate"]);
        assert_eq!(create, None);
        assert_eq!(ops[2]["row"]["tag"], 10);
        assert_eq!(ops[3]["where"][0][2], json!(["uuid", "b"]));
    }

    #[test]
    fn new_bridge_and_stale_row() {
        let ids = ExternalIds::new();
        let v = PortVlan::Unset;
        let seen = Seen {
            bridge: None,
            stale: Some(PortRow {
                uuid: "old".into(),
                name: "veth1pl9".into(),
                interfaces: vec![],
                external_ids: ExternalIds::new(),
            }),
        };
        let (ops, create) = write_ops(&add(&v, &ids), &seen);
        let kinds: Vec<&str> = ops.iter().map(|o| o["op"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "wait", "mutate", "delete", "delete", "insert", "insert", "insert", "insert",
                "insert", "mutate"
            ]
        );
        assert_eq!(create, Some(9));
        assert_eq!(ops[4]["row"]["type"], "internal");
        assert_eq!(ops[8]["row"]["datapath_type"], "netdev");
        assert_eq!(ops[0]["rows"], json!([]));
    }
}
