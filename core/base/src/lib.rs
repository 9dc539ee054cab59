//! What pipework's drivers, its DHCP client and its attach orchestration
//! share: errors with their exit codes, settings, guest resolution (named
//! namespaces, processes, containers through the engine's API), the
//! [`driver::Driver`] trait, the rollback [`journal`] and the undo of its
//! kernel steps, the state directory, the probe that picks a driver, and the
//! journaled kernel operations every driver uses.
//!
//! Owns: the vocabulary of an attach and its bookkeeping. Must not: run an
//! attach or a detach end to end (that is `pipework-core`), speak DHCP, know
//! any concrete driver, or use `unsafe` (kernel access goes through
//! `pipework-sys`).

#![forbid(unsafe_code)]

pub mod docker;
pub mod drift;
pub mod driver;
pub mod error;
pub mod fault;
pub mod guest;
pub mod hostname;
pub mod interrupt;
pub mod journal;
pub mod ops;
pub mod probe;
pub mod routing;
pub mod settings;
pub mod shared;
pub mod slaac;
pub mod state;
pub mod statefs;
pub mod undo;
pub mod wait;

pub use error::{Context, Error, ErrorKind, Result};
