//! Ethernet MAC addresses and the three ways a request can name one.

use std::fmt;
use std::str::FromStr;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::ParseError;

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// True for group (multicast or broadcast) addresses: bit 0 of the first octet.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for locally administered addresses: bit 1 of the first octet.
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// A random locally administered unicast address.
    pub fn random_local() -> MacAddr {
        let mut b = [0u8; 6];
        crate::random::fill(&mut b);
        b[0] = (b[0] & 0xfc) | 0x02;
        MacAddr(b)
    }

    /// The original pipework's `U:<string>` rule: MD5 of the string followed by a
    /// newline (it piped `echo $string` into `md5sum`), first five bytes, after `02`.
    pub fn from_unique_string(s: &str) -> MacAddr {
        let mut h = Md5::new();
        h.update(s.as_bytes());
        h.update(b"\n");
        let d = h.finalize();
        MacAddr([0x02, d[0], d[1], d[2], d[3], d[4]])
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Builds from a netlink attribute, which may be any length for odd link types.
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(b).ok().map(MacAddr)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = ParseError;

    /// Accepts `aa:bb:cc:dd:ee:ff` and `aa-bb-cc-dd-ee-ff`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| ParseError::new("MAC address", s, why);
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad("expected six hex octets like 02:42:ac:11:00:02"));
        }
        let mut b = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.is_empty() || p.len() > 2 {
                return Err(bad("each octet is one or two hex digits"));
            }
            b[i] = u8::from_str_radix(p, 16).map_err(|_| bad("not hexadecimal"))?;
        }
        Ok(MacAddr(b))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How the request names the guest interface's MAC address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MacSpec {
    /// No MAC given: a random locally administered unicast address.
    #[default]
    Random,
    /// An explicit unicast address.
    Explicit(MacAddr),
    /// `U:<string>`: derived from the string, stable across runs.
    Unique(String),
}

impl MacSpec {
    /// Parses the MAC part of the 4th positional (`<mac>` or `U:<string>`).
    pub fn parse(s: &str) -> Result<MacSpec, ParseError> {
        if let Some(rest) = s.strip_prefix("U:").or_else(|| s.strip_prefix("u:")) {
            if rest.is_empty() {
                return Err(ParseError::new(
                    "MAC address",
                    s,
                    "U: needs a string after it, e.g. U:myhost.example.com",
                ));
            }
            return Ok(MacSpec::Unique(rest.to_string()));
        }
        let mac: MacAddr = s.parse()?;
        if mac.is_multicast() {
            return Err(ParseError::new(
                "MAC address",
                s,
                "is a multicast address (lowest bit of the first octet is set)",
            ));
        }
        if mac.is_zero() {
            return Err(ParseError::new("MAC address", s, "is all zeros"));
        }
        Ok(MacSpec::Explicit(mac))
    }

    /// The concrete address; `Random` draws a new one on every call.
    pub fn resolve(&self) -> MacAddr {
        match self {
            MacSpec::Random => MacAddr::random_local(),
            MacSpec::Explicit(m) => *m,
            MacSpec::Unique(s) => MacAddr::from_unique_string(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_string_matches_the_original_readme() {
        assert_eq!(
            MacAddr::from_unique_string("myhost.foo.com").to_string(),
            "02:72:6c:cd:9b:8d"
        );
    }

    #[test]
    fn parses_and_prints() {
        let m: MacAddr = "26:2E:71:98:60:8f".parse().unwrap();
        assert_eq!(m.to_string(), "26:2e:71:98:60:8f");
        assert!("26:2e:71:98:60".parse::<MacAddr>().is_err());
        assert!("26:2e:71:98:60:8g".parse::<MacAddr>().is_err());
        assert!("26:2e:71:98:60:800".parse::<MacAddr>().is_err());
    }

    #[test]
    fn rejects_multicast_and_zero() {
        assert!(MacSpec::parse("01:00:5e:00:00:01").is_err());
        assert!(MacSpec::parse("ff:ff:ff:ff:ff:ff").is_err());
        assert!(MacSpec::parse("00:00:00:00:00:00").is_err());
        assert!(MacSpec::parse("U:").is_err());
        assert_eq!(
            MacSpec::parse("U:web1").unwrap(),
            MacSpec::Unique("web1".into())
        );
    }

    #[test]
    fn random_is_local_unicast() {
        for _ in 0..100 {
            let m = MacAddr::random_local();
            assert!(m.is_local() && !m.is_multicast());
        }
    }
}
