//! One `resolv.conf` for the two leases of an interface (`dhcp,dhcp6
//! --dns`): the daemon keeps the DHCPv4 and the DHCPv6 lease apart, each
//! with its own journal, and both have name servers for the same file.
//!
//! Each lease that writes renders the file from its own lease and its
//! sibling's, so the file holds both families whichever was bound last.
//! What the file held before pipework (the "original") is recorded by the
//! first writer, and copied from it by the second, so both journals restore
//! the same thing. When one lease goes while the other still writes, the
//! file is rendered from the sibling alone instead of restored: whichever
//! goes last restores the original, in any order (a detach undoes v6 first,
//! a NAK takes v4 alone, a dead guest ends both at once). The daemon holds
//! one lock around every such decision and the save that publishes it, so
//! the two never decide on a stale view of each other.

use super::lease::{Lease, LeaseSpec, Proto};
use super::store::{LeaseFile, LeaseStore};
use pipework_base::journal::{Journal, ResolvTarget, Step};

/// The other lease of the same guest interface, as saved.
pub fn sibling(store: &LeaseStore, spec: &LeaseSpec) -> Option<LeaseFile> {
    let other = match spec.proto {
        Proto::V4 => Proto::V6,
        Proto::V6 => Proto::V4,
    };
    store.load(&LeaseSpec::key_for(spec.guest.netns, &spec.ifname, other))
}

/// What `f` wrote into `target`: its lease and the original content it
/// recorded. `None` when it has not written there (or holds no lease).
pub fn written<'a>(
    f: &'a LeaseFile,
    target: &ResolvTarget,
) -> Option<(&'a Lease, Option<&'a str>)> {
    let lease = f.lease.as_ref()?;
    f.applied.steps().iter().find_map(|s| match s {
        Step::GuestResolvConfWritten {
            target: t,
            previous,
        } if t == target => Some((lease, previous.as_deref())),
        _ => None,
    })
}

/// Splits `journal` for undoing while the sibling still writes `target`:
/// the journal without our write (the sibling's restores the original), and
/// the content to put in the file now (the sibling's lease alone).
pub fn hand_over(
    journal: Journal,
    target: &ResolvTarget,
    sibling: &LeaseFile,
    ifname: &str,
) -> (Journal, Option<String>) {
    let Some((lease, _)) = written(sibling, target) else {
        return (journal, None);
    };
    let ours =
        |s: &Step| matches!(s, Step::GuestResolvConfWritten { target: t, .. } if t == target);
    if !journal.steps().iter().any(ours) {
        return (journal, None);
    }
    let rest = journal
        .steps()
        .iter()
        .filter(|s| !ours(s))
        .cloned()
        .collect();
    (
        Journal::from_steps(rest),
        Some(super::resolv::render(&[lease], ifname)),
    )
}
