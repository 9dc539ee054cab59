//! DHCPv4 (RFC 2131): packets, the namespace-bound socket, the client.

pub mod client;
pub mod packet;

pub use client::{Client4, Outcome};
