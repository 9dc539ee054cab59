//! pipework's attach core: `attach` (resolve the guest, probe the host
//! interface, validate, let the chosen driver create the link, address it,
//! announce it, record it), `detach`, `inspect`, and the garbage collection
//! of what a killed attach left. Every change is recorded in a
//! [`pipework_base::journal::Journal`] so that any failure undoes it all and
//! `detach` undoes it later.
//!
//! The layers, each depending only on those below it:
//!
//! ```text
//! pipework (cli)        parse and print
//! pipework-cni          the CNI verbs            pipework-daemon   leases, reconciler, declarations
//! pipework-drivers      bridge, macvlan, OVS, …  pipework-core     attach, detach, inspect, gc   (this crate)
//!                                                pipework-dhcp     DHCP client, leases, resolv.conf
//! pipework-base         errors, settings, guests, Driver trait, journal, state, probe
//! pipework-sys          netlink, namespaces, sysfs, sockets: all the `unsafe`
//! pipework-model        typed values
//! ```
//!
//! Owns: the order of an attach and of its undo, the pending-attach log, the
//! records. Must not: know a concrete driver (they come in as a
//! [`pipework_base::driver::DriverSet`]), parse command lines, print, or use
//! `unsafe`.
//!
//! The modules of the layers below are re-exported under their old names so
//! that the front ends (CLI, CNI, tests) name one crate.

#![forbid(unsafe_code)]

pub mod attach;
pub mod check;
pub mod detach;
pub mod gc;
pub mod inspect;
pub mod kept_client;
pub mod live;
pub mod local_name;
pub mod pending;
pub mod ping;
pub mod sweep;

pub use pipework_base::{
    docker, drift, driver, error, fault, guest, hostname, interrupt, journal, ops, probe, routing,
    settings, slaac, state, undo, wait,
};
pub use pipework_base::{Context, Error, ErrorKind, Result};
pub use pipework_dhcp as dhcp;
pub use pipework_model as model;
pub use pipework_model::random;
pub use pipework_sys::{announce, entry_point, fdwatch, netlink, netns, sysfs};
