//! Typed rows: what pipework inserts and what it reads back, each built only
//! from the column constants of this crate.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::{bridge, datum, interface, port, UUID};

pub type ExternalIds = BTreeMap<String, String>;

/// How a port treats VLANs (the `tag`, `trunks` and `vlan_mode` columns).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PortVlan {
    /// No VLAN configuration: OVS carries every VLAN.
    #[default]
    Unset,
    /// An access port in this VLAN.
    Access(u16),
    /// A trunk carrying these VLANs (empty: all of them).
    Trunk(Vec<u16>),
    /// A trunk whose untagged frames belong to `native`; `tagged` sends the
    /// native VLAN out tagged too.
    Native {
        native: u16,
        trunks: Vec<u16>,
        tagged: bool,
    },
}

impl PortVlan {
    fn fill(&self, row: &mut Map<String, Value>) {
        let ints = |v: &[u16]| datum::set(v.iter().map(|x| Value::from(*x)).collect());
        match self {
            PortVlan::Unset => {}
            PortVlan::Access(t) => {
                row.insert(port::TAG.name.into(), Value::from(*t));
                row.insert(port::VLAN_MODE.name.into(), "access".into());
            }
            PortVlan::Trunk(v) => {
                row.insert(port::TRUNKS.name.into(), ints(v));
                row.insert(port::VLAN_MODE.name.into(), "trunk".into());
            }
            PortVlan::Native {
                native,
                trunks,
                tagged,
            } => {
                row.insert(port::TAG.name.into(), Value::from(*native));
                row.insert(port::TRUNKS.name.into(), ints(trunks));
                let mode = if *tagged {
                    "native-tagged"
                } else {
                    "native-untagged"
                };
                row.insert(port::VLAN_MODE.name.into(), mode.into());
            }
        }
    }
}

/// An Interface row to insert.
pub struct NewInterface<'a> {
    pub name: &'a str,
    /// `internal` for a bridge's own port; `None` for a system device.
    pub kind: Option<&'a str>,
    pub external_ids: &'a ExternalIds,
}

impl NewInterface<'_> {
    pub fn row(&self) -> Map<String, Value> {
        let mut r = Map::new();
        r.insert(interface::NAME.name.into(), self.name.into());
        if let Some(k) = self.kind {
            r.insert(interface::TYPE.name.into(), k.into());
        }
        if !self.external_ids.is_empty() {
            r.insert(
                interface::EXTERNAL_IDS.name.into(),
                datum::map(self.external_ids),
            );
        }
        r
    }
}

/// A Port row to insert; `interfaces` are references (usually named UUIDs).
pub struct NewPort<'a> {
    pub name: &'a str,
    pub interfaces: Vec<Value>,
    pub vlan: &'a PortVlan,
    pub external_ids: &'a ExternalIds,
}

impl NewPort<'_> {
    pub fn row(&self) -> Map<String, Value> {
        let mut r = Map::new();
        r.insert(port::NAME.name.into(), self.name.into());
        r.insert(
            port::INTERFACES.name.into(),
            datum::set(self.interfaces.clone()),
        );
        self.vlan.fill(&mut r);
        if !self.external_ids.is_empty() {
            r.insert(
                port::EXTERNAL_IDS.name.into(),
                datum::map(self.external_ids),
            );
        }
        r
    }
}

/// A Bridge row to insert.
pub struct NewBridge<'a> {
    pub name: &'a str,
    pub ports: Vec<Value>,
    pub datapath_type: Option<&'a str>,
    pub external_ids: &'a ExternalIds,
}

impl NewBridge<'_> {
    pub fn row(&self) -> Map<String, Value> {
        let mut r = Map::new();
        r.insert(bridge::NAME.name.into(), self.name.into());
        r.insert(bridge::PORTS.name.into(), datum::set(self.ports.clone()));
        if let Some(d) = self.datapath_type {
            r.insert(bridge::DATAPATH_TYPE.name.into(), d.into());
        }
        if !self.external_ids.is_empty() {
            r.insert(
                bridge::EXTERNAL_IDS.name.into(),
                datum::map(self.external_ids),
            );
        }
        r
    }
}

fn text(row: &Value, c: &str) -> String {
    row[c].as_str().unwrap_or_default().to_string()
}

/// A Bridge as selected.
#[derive(Clone, Debug, PartialEq)]
pub struct BridgeRow {
    pub uuid: String,
    pub name: String,
    pub ports: Vec<String>,
    pub datapath_type: String,
    pub external_ids: ExternalIds,
}

impl BridgeRow {
    pub const COLUMNS: &'static [&'static str] = &[
        UUID,
        bridge::NAME.name,
        bridge::PORTS.name,
        bridge::DATAPATH_TYPE.name,
        bridge::EXTERNAL_IDS.name,
    ];

    /// Everything but `ports`, whose size grows with the bridge: for lookups
    /// that only need the bridge's identity.
    pub const IDENTITY: &'static [&'static str] = &[
        UUID,
        bridge::NAME.name,
        bridge::DATAPATH_TYPE.name,
        bridge::EXTERNAL_IDS.name,
    ];

    /// A selected row; `ports` is empty when it was not selected.
    pub fn from_json(row: &Value) -> Option<BridgeRow> {
        Some(BridgeRow {
            uuid: datum::as_uuid(&row[UUID])?,
            name: text(row, bridge::NAME.name),
            ports: datum::uuids(&row[bridge::PORTS.name]),
            datapath_type: text(row, bridge::DATAPATH_TYPE.name),
            external_ids: datum::string_map(&row[bridge::EXTERNAL_IDS.name]),
        })
    }
}

/// A Port as selected.
#[derive(Clone, Debug, PartialEq)]
pub struct PortRow {
    pub uuid: String,
    pub name: String,
    pub interfaces: Vec<String>,
    pub external_ids: ExternalIds,
}

impl PortRow {
    pub const COLUMNS: &'static [&'static str] = &[
        UUID,
        port::NAME.name,
        port::INTERFACES.name,
        port::EXTERNAL_IDS.name,
    ];

    pub fn from_json(row: &Value) -> Option<PortRow> {
        Some(PortRow {
            uuid: datum::as_uuid(&row[UUID])?,
            name: text(row, port::NAME.name),
            interfaces: datum::uuids(&row[port::INTERFACES.name]),
            external_ids: datum::string_map(&row[port::EXTERNAL_IDS.name]),
        })
    }
}

/// The state of an Interface that ovs-vswitchd reports.
#[derive(Clone, Debug, PartialEq)]
pub struct InterfaceState {
    /// `None` until ovs-vswitchd has looked at it; -1 when it failed.
    pub ofport: Option<i64>,
    pub link_up: bool,
    pub error: Option<String>,
}

impl InterfaceState {
    pub const COLUMNS: &'static [&'static str] = &[
        interface::OFPORT.name,
        interface::LINK_STATE.name,
        interface::ERROR.name,
    ];

    pub fn from_json(row: &Value) -> InterfaceState {
        InterfaceState {
            ofport: datum::optional_int(&row[interface::OFPORT.name]),
            link_up: datum::optional_str(&row[interface::LINK_STATE.name]).as_deref() == Some("up"),
            error: datum::optional_str(&row[interface::ERROR.name]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vlan_columns() {
        let ids = ExternalIds::new();
        let row = |v: &PortVlan| {
            Value::Object(
                NewPort {
                    name: "p",
                    interfaces: vec![datum::named("i")],
                    vlan: v,
                    external_ids: &ids,
                }
                .row(),
            )
        };
        let a = row(&PortVlan::Access(10));
        assert_eq!(a["tag"], 10);
        assert_eq!(a["vlan_mode"], "access");
        assert!(a.get("trunks").is_none());
        let t = row(&PortVlan::Trunk(vec![10, 20]));
        assert_eq!(t["trunks"], json!(["set", [10, 20]]));
        let n = row(&PortVlan::Native {
            native: 5,
            trunks: vec![],
            tagged: true,
        });
        assert_eq!(n["vlan_mode"], "native-tagged");
        assert_eq!(n["tag"], 5);
        assert!(row(&PortVlan::Unset).get("vlan_mode").is_none());
    }

    #[test]
    fn rows_read_back() {
        let b = BridgeRow::from_json(&json!({
            "_uuid": ["uuid", "b1"], "name": "ovs0", "ports": ["uuid", "p1"],
            "datapath_type": "netdev", "external_ids": ["map", [["pipework.owned", "true"]]]
        }))
        .unwrap();
        assert_eq!(b.ports, vec!["p1".to_string()]);
        assert_eq!(b.external_ids["pipework.owned"], "true");
        let s = InterfaceState::from_json(
            &json!({"ofport": 3, "link_state": "up", "error": ["set", []]}),
        );
        assert_eq!(s.ofport, Some(3));
        assert!(s.link_up);
        assert_eq!(s.error, None);
    }
}
