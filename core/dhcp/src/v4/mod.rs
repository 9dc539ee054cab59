//! DHCPv4 (RFC 2131): packets (their framing checked in `wire`), the
//! namespace-bound socket, the client.

pub mod client;
pub mod packet;
mod wire;

pub use client::{Client4, Outcome};
