//! DHCP for guests: a native client (v4 and v6) that runs inside the guest's
//! network namespace, the lease model shared with the daemon that keeps the
//! leases, and the compatible modes that run the host's own clients.
//!
//! Why these pieces:
//! - Packets are encoded and decoded by `dhcproto` (maintained, used by
//!   production DHCP servers, covers DHCPv4 and DHCPv6 with every option we
//!   read). The state machines (RFC 2131 section 4.4, RFC 8415 section 18) are
//!   ours: they are small, and they must fit pipework's namespaces and journal.
//! - DHCPv4 listens on an `AF_PACKET` socket with a BPF filter for UDP port
//!   68, like every real client: before the guest has an address, the
//!   kernel's UDP path may drop the server's replies (reverse-path filtering
//!   of a source it cannot route back to). Broadcasts are written through the
//!   same packet socket; unicast renewals go through a UDP socket bound to the
//!   interface, so the kernel routes them like any other traffic.
//! - DHCPv6 needs no raw socket: the link-local address is there from the
//!   start.
//! - Sockets are opened on a thread that entered the guest namespace
//!   ([`pipework_sys::netns::Netns::run`]); they stay bound to it afterwards, so all
//!   the protocol work runs on ordinary async tasks.
//!
//! Everything a lease changes in the guest (address, routes, MTU,
//! `resolv.conf`) is made through journaled steps, so a failed attach, a
//! detach and the loss of a lease all undo it the same way.
//!
//! Owns: the protocol, the lease files, the compatible-mode clients, the
//! guest's `resolv.conf`, and the client side of the daemon's socket.
//! Must not: run the daemon (that is `pipework-daemon`, which holds the lease
//! supervisor), orchestrate an attach, or use `unsafe` (sockets come from
//! `pipework-sys`).

#![forbid(unsafe_code)]

pub mod apply;
pub mod attach;
pub mod compat;
pub mod daemon;
pub mod ident;
pub mod lease;
pub mod resolv;
pub mod resolv_share;
pub mod store;
pub mod undo;
pub mod v4;
pub mod v6;

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Incoming packets a client threw away, by reason. Hostile or broken
/// traffic must cost a counter, never the daemon.
#[derive(Debug, Default)]
pub struct Drops {
    /// Could not be decoded at all (truncated, bad lengths, bad options).
    pub malformed: AtomicU64,
    /// Well formed but not for us (another transaction, another MAC).
    pub foreign: AtomicU64,
    /// For us but unusable (no server id, a zero or multicast address, a
    /// zero or holed subnet mask...).
    pub invalid: AtomicU64,
    /// Options left out of a packet that was otherwise used (an interface
    /// MTU out of range): dropped, never applied.
    pub ignored_options: AtomicU64,
}

/// A snapshot of [`Drops`] for state files and `list --json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCounts {
    pub malformed: u64,
    pub foreign: u64,
    pub invalid: u64,
    #[serde(default)]
    pub ignored_options: u64,
}

impl Drops {
    pub fn snapshot(&self) -> DropCounts {
        DropCounts {
            malformed: self.malformed.load(Ordering::Relaxed),
            foreign: self.foreign.load(Ordering::Relaxed),
            invalid: self.invalid.load(Ordering::Relaxed),
            ignored_options: self.ignored_options.load(Ordering::Relaxed),
        }
    }

    /// Starts from counts saved before a daemon restart.
    pub fn restore(c: DropCounts) -> Drops {
        Drops {
            malformed: AtomicU64::new(c.malformed),
            foreign: AtomicU64::new(c.foreign),
            invalid: AtomicU64::new(c.invalid),
            ignored_options: AtomicU64::new(c.ignored_options),
        }
    }

    pub(crate) fn count(&self, why: DropReason) {
        let c = match why {
            DropReason::Malformed => &self.malformed,
            DropReason::Foreign => &self.foreign,
            DropReason::Invalid => &self.invalid,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_ignored_options(&self, n: u32) {
        self.ignored_options
            .fetch_add(u64::from(n), Ordering::Relaxed);
    }
}

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    Malformed,
    Foreign,
    Invalid,
}
