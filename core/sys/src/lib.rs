//! pipework's kernel access: rtnetlink requests with their labels and
//! extended-ack text, network-namespace handles, sysfs, and the raw sockets
//! and system calls the crates above need.
//!
//! Owns: every `unsafe` block of the workspace (each with a SAFETY comment;
//! every other crate is `#![forbid(unsafe_code)]`), and the translation of
//! kernel answers into typed values and errors. Must not: decide anything
//! (which link to create, what to undo), keep state on disk, or know about
//! guests, drivers or the journal; it depends only on `pipework-model`.

pub mod announce;
pub mod bridge_arp;
pub mod dhcp4_socket;
pub mod dhcp6_socket;
pub mod entry;
pub mod fdpass;
pub mod fdwatch;
pub mod isolate;
pub mod late_release;
pub mod netlink;
pub mod netns;
pub mod process;
pub mod rdma;
pub mod signals;
mod sockopt;
pub mod sysfs;

pub use pipework_model as model;
pub use pipework_model::random;
