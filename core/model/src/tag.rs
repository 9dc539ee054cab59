//! The `@<tag>` suffix of the MAC positional: a VLAN id on Ethernet, a partition
//! key on InfiniBand. Which one it is depends on the host interface, so the raw
//! text is kept and read as either once the driver is known.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ParseError;

/// An IEEE 802.1Q VLAN id, 1..=4094 (0 and 4095 are reserved).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct VlanId(u16);

impl VlanId {
    pub fn new(v: u16) -> Result<VlanId, ParseError> {
        if (1..=4094).contains(&v) {
            Ok(VlanId(v))
        } else {
            Err(ParseError::new(
                "VLAN id",
                &v.to_string(),
                "must be between 1 and 4094",
            ))
        }
    }
    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for VlanId {
    type Error = ParseError;
    fn try_from(v: u16) -> Result<Self, Self::Error> {
        VlanId::new(v)
    }
}
impl From<VlanId> for u16 {
    fn from(v: VlanId) -> u16 {
        v.0
    }
}

impl FromStr for VlanId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v: u16 = s.parse().map_err(|_| {
            ParseError::new("VLAN id", s, "must be a decimal number between 1 and 4094")
        })?;
        VlanId::new(v).map_err(|_| ParseError::new("VLAN id", s, "must be between 1 and 4094"))
    }
}

impl fmt::Display for VlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An InfiniBand partition key. The top bit is the membership type: set for full
/// members, clear for limited members. The kernel's ipoib driver always sets it
/// on the child it creates (`ipoib_vlan_add` ORs in 0x8000), so `@0001` and
/// `@8001` name the same partition; we normalise to the full-member form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Pkey(u16);

impl Pkey {
    pub const FULL_MEMBER: u16 = 0x8000;

    pub fn new(v: u16) -> Result<Pkey, ParseError> {
        // 0x0000 and 0x8000 are invalid; 0x7fff/0xffff is the default partition.
        if v & 0x7fff == 0 {
            return Err(ParseError::new(
                "partition key",
                &format!("{v:#06x}"),
                "the low 15 bits must not be zero",
            ));
        }
        Ok(Pkey(v | Self::FULL_MEMBER))
    }
    /// The key with the full-membership bit set, as the kernel stores it.
    pub fn get(self) -> u16 {
        self.0
    }
    /// The 15-bit partition number without the membership bit.
    pub fn base(self) -> u16 {
        self.0 & 0x7fff
    }
}

impl TryFrom<u16> for Pkey {
    type Error = ParseError;
    fn try_from(v: u16) -> Result<Self, Self::Error> {
        Pkey::new(v)
    }
}
impl From<Pkey> for u16 {
    fn from(p: Pkey) -> u16 {
        p.0
    }
}

impl FromStr for Pkey {
    type Err = ParseError;
    /// Hexadecimal, with or without `0x`, as in the original (`@8001`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        if digits.is_empty() || digits.len() > 4 {
            return Err(ParseError::new(
                "partition key",
                s,
                "must be 1 to 4 hex digits, e.g. 8001",
            ));
        }
        let v = u16::from_str_radix(digits, 16)
            .map_err(|_| ParseError::new("partition key", s, "is not hexadecimal"))?;
        Pkey::new(v).map_err(|e| ParseError::new("partition key", s, e.why()))
    }
}

impl fmt::Display for Pkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x}", self.0)
    }
}

/// The raw `@<tag>` text, checked to be a valid VLAN id or a valid pkey.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tag(String);

impl Tag {
    pub fn as_vlan(&self) -> Result<VlanId, ParseError> {
        self.0.parse()
    }
    pub fn as_pkey(&self) -> Result<Pkey, ParseError> {
        self.0.parse()
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.parse::<VlanId>().is_ok() || s.parse::<Pkey>().is_ok() {
            Ok(Tag(s.to_string()))
        } else {
            Err(ParseError::new(
                "VLAN tag",
                s,
                "must be a VLAN id 1-4094 (or a hex partition key on InfiniBand)",
            ))
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_bounds() {
        assert!("0".parse::<VlanId>().is_err());
        assert!("4095".parse::<VlanId>().is_err());
        assert_eq!("10".parse::<VlanId>().unwrap().get(), 10);
        assert!("x".parse::<VlanId>().is_err());
    }

    #[test]
    fn pkey_membership_bit() {
        assert_eq!("8001".parse::<Pkey>().unwrap().get(), 0x8001);
        assert_eq!("0x0001".parse::<Pkey>().unwrap().get(), 0x8001);
        assert_eq!("1".parse::<Pkey>().unwrap().base(), 1);
        assert!("8000".parse::<Pkey>().is_err());
        assert!("0".parse::<Pkey>().is_err());
        assert!("10000".parse::<Pkey>().is_err());
        assert!("zz".parse::<Pkey>().is_err());
    }

    #[test]
    fn tag_accepts_either() {
        assert!("10".parse::<Tag>().is_ok());
        assert!("8001".parse::<Tag>().is_ok());
        assert!("ffff".parse::<Tag>().is_ok());
        assert!("".parse::<Tag>().is_err());
        assert!("vlan".parse::<Tag>().is_err());
    }
}
