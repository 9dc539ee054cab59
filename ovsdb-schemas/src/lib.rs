//! The part of the `Open_vSwitch` OVSDB schema that pipework reads and
//! writes: tables, columns and their types, the OVSDB value notation for
//! them (RFC 7047 section 5.1), and typed rows built from those columns.
//!
//! This crate is the one place that names an OVSDB column. The driver builds
//! every row and condition from the constants here, and [`check`] compares
//! them against a live server's `get_schema`, so a schema change in a future
//! Open vSwitch shows up as a failing test instead of a runtime surprise.
//!
//! Owns: table and column names, their types, the value notation. Must not:
//! talk to a server (the OVS driver does), depend on any other pipework
//! crate, or use `unsafe`.

#![forbid(unsafe_code)]

pub mod datum;
pub mod rows;

use serde_json::Value;

/// The database every table here belongs to.
pub const DATABASE: &str = "Open_vSwitch";

/// An OVSDB atomic type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Atom {
    Integer,
    String,
    Uuid,
}

impl Atom {
    fn as_str(self) -> &'static str {
        match self {
            Atom::Integer => "integer",
            Atom::String => "string",
            Atom::Uuid => "uuid",
        }
    }
}

/// A column's type: key (and value, for maps) with the set size bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnType {
    pub key: Atom,
    pub value: Option<Atom>,
    pub min: u64,
    /// `None` is "unlimited".
    pub max: Option<u64>,
}

impl ColumnType {
    /// Exactly one atom.
    pub const fn scalar(key: Atom) -> ColumnType {
        ColumnType {
            key,
            value: None,
            min: 1,
            max: Some(1),
        }
    }
    /// Zero or one atom.
    pub const fn optional(key: Atom) -> ColumnType {
        ColumnType {
            key,
            value: None,
            min: 0,
            max: Some(1),
        }
    }
    /// A set of `min..=max` atoms.
    pub const fn set(key: Atom, min: u64, max: Option<u64>) -> ColumnType {
        ColumnType {
            key,
            value: None,
            min,
            max,
        }
    }
    /// A string-to-string map of any size (`external_ids`).
    pub const fn string_map() -> ColumnType {
        ColumnType {
            key: Atom::String,
            value: Some(Atom::String),
            min: 0,
            max: None,
        }
    }
}

/// One column pipework uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    pub table: &'static str,
    pub name: &'static str,
    pub ty: ColumnType,
    /// Enumerated string values pipework writes; the server must accept each.
    pub values: &'static [&'static str],
}

const fn col(table: &'static str, name: &'static str, ty: ColumnType) -> Column {
    Column {
        table,
        name,
        ty,
        values: &[],
    }
}

/// Every row's identity (implicit in every table).
pub const UUID: &str = "_uuid";

/// `external_ids` keys. The first six are the original pipework's, kept so
/// scripts that read them keep working.
pub mod keys {
    pub const INTERFACE: &str = "pipework.interface";
    pub const BRIDGE: &str = "pipework.bridge";
    pub const CONTAINER_ID: &str = "pipework.containerid";
    pub const CONTAINER_NAME: &str = "pipework.containername";
    pub const NSPID: &str = "pipework.nspid";
    pub const VLAN: &str = "pipework.vlan";
    /// The OpenFlow cookie of the port's flows, hex, so that `gc` can find
    /// them without a state record.
    pub const COOKIE: &str = "pipework.cookie";
    /// The guest interface name inside the container.
    pub const GUEST_INTERFACE: &str = "pipework.guestinterface";
    /// On a bridge: pipework created it, so the detach that empties it
    /// deletes it.
    pub const OWNED: &str = "pipework.owned";
}

pub mod open_vswitch {
    use super::*;
    pub const TABLE: &str = "Open_vSwitch";
    pub const BRIDGES: Column = col(TABLE, "bridges", ColumnType::set(Atom::Uuid, 0, None));
    pub const COLUMNS: &[Column] = &[BRIDGES];
}

pub mod bridge {
    use super::*;
    pub const TABLE: &str = "Bridge";
    pub const NAME: Column = col(TABLE, "name", ColumnType::scalar(Atom::String));
    pub const PORTS: Column = col(TABLE, "ports", ColumnType::set(Atom::Uuid, 0, None));
    pub const DATAPATH_TYPE: Column = col(TABLE, "datapath_type", ColumnType::scalar(Atom::String));
    pub const EXTERNAL_IDS: Column = col(TABLE, "external_ids", ColumnType::string_map());
    pub const COLUMNS: &[Column] = &[NAME, PORTS, DATAPATH_TYPE, EXTERNAL_IDS];
}

pub mod port {
    use super::*;
    pub const TABLE: &str = "Port";
    pub const NAME: Column = col(TABLE, "name", ColumnType::scalar(Atom::String));
    pub const INTERFACES: Column = col(TABLE, "interfaces", ColumnType::set(Atom::Uuid, 1, None));
    pub const TAG: Column = col(TABLE, "tag", ColumnType::optional(Atom::Integer));
    pub const TRUNKS: Column = col(
        TABLE,
        "trunks",
        ColumnType::set(Atom::Integer, 0, Some(4096)),
    );
    pub const VLAN_MODE: Column = Column {
        values: &["access", "trunk", "native-tagged", "native-untagged"],
        ..col(TABLE, "vlan_mode", ColumnType::optional(Atom::String))
    };
    pub const EXTERNAL_IDS: Column = col(TABLE, "external_ids", ColumnType::string_map());
    pub const COLUMNS: &[Column] = &[NAME, INTERFACES, TAG, TRUNKS, VLAN_MODE, EXTERNAL_IDS];
}

pub mod interface {
    use super::*;
    pub const TABLE: &str = "Interface";
    pub const NAME: Column = col(TABLE, "name", ColumnType::scalar(Atom::String));
    pub const TYPE: Column = Column {
        values: &["", "internal"],
        ..col(TABLE, "type", ColumnType::scalar(Atom::String))
    };
    pub const OFPORT: Column = col(TABLE, "ofport", ColumnType::optional(Atom::Integer));
    pub const LINK_STATE: Column = Column {
        values: &["up", "down"],
        ..col(TABLE, "link_state", ColumnType::optional(Atom::String))
    };
    pub const ERROR: Column = col(TABLE, "error", ColumnType::optional(Atom::String));
    pub const MTU: Column = col(TABLE, "mtu", ColumnType::optional(Atom::Integer));
    pub const EXTERNAL_IDS: Column = col(TABLE, "external_ids", ColumnType::string_map());
    pub const COLUMNS: &[Column] = &[NAME, TYPE, OFPORT, LINK_STATE, ERROR, MTU, EXTERNAL_IDS];
}

/// Every column pipework uses, table by table.
pub fn used_columns() -> impl Iterator<Item = &'static Column> {
    [
        open_vswitch::COLUMNS,
        bridge::COLUMNS,
        port::COLUMNS,
        interface::COLUMNS,
    ]
    .into_iter()
    .flatten()
}

/// Compares the columns we use with a server's schema (the `result` of
/// `get_schema`). Returns one line per difference; empty means compatible.
pub fn check(schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if schema["name"] != DATABASE {
        problems.push(format!(
            "schema is {}, not {DATABASE}",
            schema["name"].as_str().unwrap_or("unnamed")
        ));
        return problems;
    }
    for c in used_columns() {
        let Some(table) = schema["tables"].get(c.table) else {
            problems.push(format!("table {} is missing", c.table));
            continue;
        };
        let Some(column) = table["columns"].get(c.name) else {
            problems.push(format!("column {}.{} is missing", c.table, c.name));
            continue;
        };
        match parse_type(&column["type"]) {
            Some((ty, enums)) => {
                if ty != c.ty {
                    problems.push(format!(
                        "column {}.{} is {}, we expect {}",
                        c.table,
                        c.name,
                        describe(&ty),
                        describe(&c.ty)
                    ));
                }
                if let Some(allowed) = enums {
                    for v in c.values {
                        if !allowed.iter().any(|a| a == v) {
                            problems.push(format!(
                                "column {}.{} no longer accepts {v:?}",
                                c.table, c.name
                            ));
                        }
                    }
                }
            }
            None => problems.push(format!(
                "column {}.{} has a type we cannot read: {}",
                c.table, c.name, column["type"]
            )),
        }
    }
    problems
}

fn describe(t: &ColumnType) -> String {
    let max = t.max.map_or("unlimited".to_string(), |m| m.to_string());
    match t.value {
        Some(v) => format!(
            "map {}->{} [{}..{}]",
            t.key.as_str(),
            v.as_str(),
            t.min,
            max
        ),
        None => format!("{} [{}..{}]", t.key.as_str(), t.min, max),
    }
}

/// A base type: `"integer"` or `{"type": "integer", ...}`; with its enum.
fn parse_base(v: &Value) -> Option<(Atom, Option<Vec<String>>)> {
    let (name, en) = match v {
        Value::String(s) => (s.as_str(), None),
        Value::Object(o) => (o.get("type")?.as_str()?, o.get("enum")),
        _ => return None,
    };
    let atom = match name {
        "integer" => Atom::Integer,
        "string" => Atom::String,
        "uuid" => Atom::Uuid,
        _ => return None,
    };
    let values = en.map(|e| match datum::set_members(e) {
        Some(m) => m
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        None => e.as_str().map(|s| vec![s.to_string()]).unwrap_or_default(),
    });
    Some((atom, values))
}

/// A column type (RFC 7047 section 3.2, `<type>`).
fn parse_type(v: &Value) -> Option<(ColumnType, Option<Vec<String>>)> {
    if let Some((key, en)) = parse_base(v).filter(|_| v.is_string()) {
        return Some((ColumnType::scalar(key), en));
    }
    let o = v.as_object()?;
    let (key, en) = parse_base(o.get("key")?)?;
    let value = match o.get("value") {
        Some(x) => Some(parse_base(x)?.0),
        None => None,
    };
    let min = o.get("min").map_or(Some(1), Value::as_u64)?;
    let max = match o.get("max") {
        None => Some(1),
        Some(Value::String(s)) if s == "unlimited" => None,
        Some(m) => Some(m.as_u64()?),
    };
    Some((
        ColumnType {
            key,
            value,
            min,
            max,
        },
        en,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema_with(port_tag: Value) -> Value {
        let mut tables = serde_json::Map::new();
        for c in used_columns() {
            let t = tables
                .entry(c.table)
                .or_insert_with(|| json!({"columns": {}}));
            let ty = if c.table == "Port" && c.name == "tag" {
                port_tag.clone()
            } else {
                let base = |a: Atom| -> Value {
                    if c.values.is_empty() {
                        json!(a.as_str())
                    } else {
                        json!({"type": a.as_str(), "enum": ["set", c.values]})
                    }
                };
                let mut o = json!({"key": base(c.ty.key), "min": c.ty.min});
                o["max"] = c.ty.max.map_or(json!("unlimited"), |m| json!(m));
                if let Some(v) = c.ty.value {
                    o["value"] = json!(v.as_str());
                }
                o
            };
            t["columns"][c.name] = json!({ "type": ty });
        }
        json!({"name": "Open_vSwitch", "tables": tables})
    }

    #[test]
    fn a_matching_schema_passes() {
        let s = schema_with(
            json!({"key": {"type": "integer", "minInteger": 0, "maxInteger": 4095}, "min": 0, "max": 1}),
        );
        assert_eq!(check(&s), Vec::<String>::new());
    }

    #[test]
    fn a_changed_type_or_missing_column_fails() {
        let s = schema_with(json!("string"));
        let p = check(&s);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("Port.tag"), "{p:?}");
        let mut s = schema_with(json!({"key": "integer", "min": 0, "max": 1}));
        s["tables"]["Interface"]["columns"]
            .as_object_mut()
            .unwrap()
            .remove("ofport");
        assert!(check(&s)[0].contains("Interface.ofport is missing"));
        let mut s = schema_with(json!({"key": "integer", "min": 0, "max": 1}));
        s["tables"]["Port"]["columns"]["vlan_mode"]["type"]["key"]["enum"] =
            json!(["set", ["access", "trunk"]]);
        assert!(check(&s).iter().any(|l| l.contains("native-tagged")));
    }

    #[test]
    fn the_installed_schema_file_matches_when_present() {
        // The live-server test in tests/ is the real proof; this one catches
        // a mismatch without daemons on machines that ship the file.
        let p = "/usr/share/openvswitch/vswitch.ovsschema";
        if let Ok(text) = std::fs::read_to_string(p) {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(check(&v), Vec::<String>::new());
        }
    }
}
