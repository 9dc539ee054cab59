//! DHCPv6 (RFC 8415) for one IA_NA: Solicit/Advertise/Request/Reply, then
//! Renew, Rebind and Release, over a UDP socket bound to the interface inside
//! the guest. Routes come from router advertisements, never from DHCPv6, so
//! the address is a /128 (RFC 8415 section 21.6).

pub mod client;
pub mod packet;

pub use client::Client6;
