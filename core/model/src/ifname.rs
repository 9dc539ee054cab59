//! Linux interface names: the one place that knows the kernel's rules.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ParseError;

/// IFNAMSIZ is 16 including the terminating NUL.
pub const MAX_IFNAME_LEN: usize = 15;

/// A name the kernel will accept for a network interface (`dev_valid_name`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

impl IfName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For names built by the program itself from parts known to be valid.
    #[doc(hidden)]
    pub fn new_unchecked(s: String) -> IfName {
        debug_assert!(IfName::validate(&s).is_ok(), "{s}");
        IfName(s)
    }

    fn validate(s: &str) -> Result<(), &'static str> {
        if s.is_empty() {
            return Err("is empty");
        }
        if s.len() > MAX_IFNAME_LEN {
            return Err("is longer than 15 characters");
        }
        if s == "." || s == ".." {
            return Err("is reserved");
        }
        // The kernel refuses these: they name the per-family defaults in
        // /proc/sys/net/*/conf/.
        if s == "all" || s == "default" {
            return Err("is reserved by the kernel (net.*.conf.all and .default)");
        }
        if s.chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        {
            return Err("contains '/', ':', whitespace or control characters");
        }
        Ok(())
    }
}

impl FromStr for IfName {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IfName::validate(s).map_err(|why| ParseError::new("interface name", s, why))?;
        Ok(IfName(s.to_string()))
    }
}

impl TryFrom<String> for IfName {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<IfName> for String {
    fn from(n: IfName) -> String {
        n.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl AsRef<str> for IfName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_rules() {
        assert!("eth1".parse::<IfName>().is_ok());
        assert!("a23456789012345".parse::<IfName>().is_ok());
        assert!("a234567890123456".parse::<IfName>().is_err());
        for bad in ["", ".", "..", "a/b", "a b", "a:b", "a\tb", "all", "default"] {
            assert!(bad.parse::<IfName>().is_err(), "{bad:?}");
        }
    }
}
