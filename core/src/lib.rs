//! pipework's core: the request model, the async driver trait, namespace entry,
//! rtnetlink helpers, the rollback journal and the on-disk state.
//!
//! Drivers live in `pipework-drivers`; the CLI only parses and prints. An attach
//! is `attach::attach`: resolve the guest, probe the host interface, validate,
//! then let the chosen driver create the link while every change is recorded in
//! a [`journal::Journal`] so that any failure undoes it all and `detach` can
//! undo it later.

pub mod announce;
pub mod attach;
pub mod daemon;
pub mod declare;
pub mod detach;
pub mod dhcp;
pub mod docker;
pub mod driver;
pub mod error;
pub mod fault;
pub mod fdwatch;
pub mod guest;
pub mod hostname;
pub mod inspect;
pub mod interrupt;
pub mod journal;
pub mod model;
pub mod netlink;
pub mod netns;
pub mod ops;
pub mod pending;
pub mod probe;
pub mod random;
pub mod reconcile;
pub mod routing;
pub mod settings;
pub mod slaac;
pub mod state;
pub mod sysfs;
pub mod wait;

pub use error::{Context, Error, ErrorKind, Result};
