//! Options that only an Open vSwitch port can honour: trunks, the native
//! VLAN, port security, the datapath of a bridge pipework creates.
//!
//! They sit in one struct so the orchestrator can refuse them in a single
//! check when the probe chose another driver.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{ParseError, VlanId};

/// The VLANs a trunk port carries (`--trunk 10,20-30`, or `--trunk all`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VlanSet {
    /// Every VLAN: OVS reads an empty `trunks` column this way.
    All,
    /// These VLANs, sorted, without duplicates, never empty.
    List(Vec<VlanId>),
}

impl VlanSet {
    pub fn contains(&self, v: VlanId) -> bool {
        match self {
            VlanSet::All => true,
            VlanSet::List(l) => l.binary_search(&v).is_ok(),
        }
    }

    /// The ids for the `trunks` column; empty means all.
    pub fn ids(&self) -> &[VlanId] {
        match self {
            VlanSet::All => &[],
            VlanSet::List(l) => l,
        }
    }
}

impl FromStr for VlanSet {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "all" {
            return Ok(VlanSet::All);
        }
        let bad = |why: &str| ParseError::new("VLAN list", s, why);
        let mut out = Vec::new();
        for item in s.split(',') {
            if item.is_empty() {
                return Err(bad("has an empty item (use e.g. 10,20-30)"));
            }
            let (lo, hi) = match item.split_once('-') {
                Some((a, b)) => (a, b),
                None => (item, item),
            };
            let lo: VlanId = lo
                .parse()
                .map_err(|_| bad(&format!("'{item}' is not a VLAN id 1-4094 or a range a-b")))?;
            let hi: VlanId = hi
                .parse()
                .map_err(|_| bad(&format!("'{item}' is not a VLAN id 1-4094 or a range a-b")))?;
            if lo > hi {
                return Err(bad(&format!("range '{item}' runs backwards")));
            }
            for v in lo.get()..=hi.get() {
                out.push(VlanId::new(v).expect("within two valid ids"));
            }
        }
        out.sort();
        out.dedup();
        Ok(VlanSet::List(out))
    }
}

impl fmt::Display for VlanSet {
    /// Compact ranges, the way the user would type them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = match self {
            VlanSet::All => return f.write_str("all"),
            VlanSet::List(l) => l,
        };
        let mut i = 0;
        let mut first = true;
        while i < l.len() {
            let mut j = i;
            while j + 1 < l.len() && l[j + 1].get() == l[j].get() + 1 {
                j += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if i == j {
                write!(f, "{}", l[i])?;
            } else {
                write!(f, "{}-{}", l[i], l[j])?;
            }
            i = j + 1;
        }
        Ok(())
    }
}

/// An OVS datapath type for a bridge pipework creates (`--datapath-type`):
/// `system` (the kernel module) or `netdev` (userspace), or another name a
/// build of OVS offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatapathType(String);

impl DatapathType {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DatapathType {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(DatapathType(s.to_string()))
        } else {
            Err(ParseError::new(
                "datapath type",
                s,
                "must be a name like system or netdev",
            ))
        }
    }
}

impl fmt::Display for DatapathType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Open vSwitch port options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OvsOptions {
    /// `--trunk`: a trunk port carrying these VLANs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk: Option<VlanSet>,
    /// `--native-vlan`: untagged frames belong to this VLAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_vlan: Option<VlanId>,
    /// `--native-tagged`: the native VLAN leaves the port tagged.
    #[serde(default)]
    pub native_tagged: bool,
    /// `--port-security`: only the guest's own MAC and addresses get in.
    #[serde(default)]
    pub port_security: bool,
    /// `--datapath-type`: for a bridge pipework creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapath_type: Option<DatapathType>,
}

impl OvsOptions {
    /// True when any option was given (the other drivers refuse them).
    pub fn any(&self) -> bool {
        *self != OvsOptions::default()
    }

    /// The flags that were given, for an error message.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.trunk.is_some() {
            v.push("--trunk");
        }
        if self.native_vlan.is_some() {
            v.push("--native-vlan");
        }
        if self.native_tagged {
            v.push("--native-tagged");
        }
        if self.port_security {
            v.push("--port-security");
        }
        if self.datapath_type.is_some() {
            v.push("--datapath-type");
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &str) -> Vec<u16> {
        match s.parse::<VlanSet>().unwrap() {
            VlanSet::List(l) => l.into_iter().map(VlanId::get).collect(),
            VlanSet::All => vec![],
        }
    }

    #[test]
    fn vlan_lists() {
        assert_eq!(ids("10"), vec![10]);
        assert_eq!(ids("10,20-23"), vec![10, 20, 21, 22, 23]);
        assert_eq!(ids("30,10,10,9-11"), vec![9, 10, 11, 30]);
        assert_eq!("all".parse::<VlanSet>().unwrap(), VlanSet::All);
        assert_eq!(
            "10,20-30,31".parse::<VlanSet>().unwrap().to_string(),
            "10,20-31"
        );
        for bad in [
            "", ",", "10,", "0", "4095", "20-10", "x", "10-", "-5", "1-2-3",
        ] {
            assert!(bad.parse::<VlanSet>().is_err(), "{bad:?}");
        }
        let e = "10,,20".parse::<VlanSet>().unwrap_err().to_string();
        assert!(e.contains("empty item"), "{e}");
    }

    #[test]
    fn datapath_types() {
        assert!("netdev".parse::<DatapathType>().is_ok());
        assert!("system".parse::<DatapathType>().is_ok());
        assert!("".parse::<DatapathType>().is_err());
        assert!("Net dev".parse::<DatapathType>().is_err());
    }

    #[test]
    fn any_and_flags() {
        assert!(!OvsOptions::default().any());
        let o = OvsOptions {
            port_security: true,
            ..Default::default()
        };
        assert!(o.any());
        assert_eq!(o.flags(), vec!["--port-security"]);
    }
}
