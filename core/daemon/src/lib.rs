//! `pipework daemon`: the one long-running pipework process of a host.
//!
//! It keeps DHCP leases (renewing, rebinding, following the guest's life)
//! and, with `--reconcile`, containers' declared attachments
//! ([`crate::reconcile`]). One per state directory, which means
//! one per host: an exclusive `flock` on `<state>/daemon.lock` decides.
//!
//! - **Starting**: by a systemd unit (`contrib/pipework.service`), or on
//!   demand by the first `pipework ... dhcp` attach, which then lets it exit
//!   after a minute with nothing to do (`--idle-exit`).
//! - **Control**: the Unix socket `<state>/daemon.sock`, mode 0600 in a 0700
//!   directory, and every peer's credentials checked (root, or the daemon's
//!   own user). The protocol is in `pipework_dhcp::daemon::proto`.
//! - **State**: `<state>/leases/<key>.json`, one file per lease, written
//!   atomically before anything else happens, so a daemon killed at any point
//!   resumes every lease on its next start. `<state>/daemon.pid` names the
//!   running daemon.
//! - **Stopping**: SIGTERM or SIGINT stop the services without releasing
//!   anything: leases live on in their files (and in the kernel, whose
//!   address lifetimes end them if no daemon ever comes back).
//!
//! - **Healing**: what attachments keep on the host side (OVS
//!   port-security flows above all, which a vswitchd restart loses) is
//!   checked and put back when the drivers report a change
//!   ([`heal`]).
//!
//! Adding a service: implement [`service::Service`] (its `name` is the
//! `service` field of its requests), and add it to the list in [`server::run`].
//!
//! Owns: the daemon process (lock, pid file, control socket), the lease
//! supervisor, the reconciler and declared attachments. Must not: speak
//! DHCP on the wire or parse its packets (that is `pipework-dhcp`), make an
//! attach or a detach other than through `pipework-core`, or use `unsafe`.

#![forbid(unsafe_code)]

pub mod ctx;
pub mod declare;
mod dhcp_service;
mod heal;
pub mod liveness;
pub mod reconcile;
pub mod server;
pub mod service;
mod supervise;
pub mod watch;

pub use server::{run, DaemonOptions};
