//! pipework's request model: typed values parsed once from the command line
//! (addresses, MACs, VLAN ids, partition keys, interface names, the attach
//! request), so that nothing below ever sees a string.
//!
//! Owns: the types and their parsing rules (one place per fact: the
//! interface-name rule, the MAC rule). Must not: touch the kernel, the state
//! directory or anything outside the process; depend on any other pipework
//! crate. Every other crate builds on it.

#![forbid(unsafe_code)]

mod driver_kind;
pub mod random;

mod address;
mod hardware;
mod ifname;
mod mac;
mod ovs;
mod request;
mod tag;

pub use address::{AddressMode, DhcpClient, DhcpSpec, Family, StaticAddress};
pub use driver_kind::DriverKind;
pub use hardware::{parse_rate, parse_switch, HwOptions, IpoibMode, VfLinkState, VfSelect};
pub use ifname::{IfName, MAX_IFNAME_LEN};
pub use mac::{MacAddr, MacSpec};
pub use ovs::{DatapathType, OvsOptions, VlanSet};
pub use request::{
    AttachOptions, AttachRequest, GuestRef, GuestRoute, HostRoute, HostSelector, MacvlanMode,
};
pub use tag::{Pkey, Tag, VlanId};

use std::fmt;

/// A malformed part of the input: what it was meant to be, the text, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    what: String,
    text: String,
    why: String,
}

impl ParseError {
    pub fn new(what: &str, text: &str, why: &str) -> ParseError {
        ParseError {
            what: what.to_string(),
            text: text.to_string(),
            why: why.to_string(),
        }
    }
    pub fn why(&self) -> &str {
        &self.why
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad {} '{}': {}", self.what, self.text, self.why)
    }
}

impl std::error::Error for ParseError {}
