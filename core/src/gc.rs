//! `pipework gc`: what guests that are gone and attaches killed half-way
//! left behind.

use tracing::warn;

use pipework_base::driver::DriverSet;
use pipework_base::error::Result;
use pipework_base::guest::guest_alive;
use pipework_base::settings::Settings;
use pipework_base::state::{AttachmentRecord, StateDir};

use crate::detach::HostSide;

/// What `gc` removed.
pub struct Collected {
    /// Records of dead guests, undone and dropped.
    pub records: Vec<AttachmentRecord>,
    /// Objects the drivers removed on their own account.
    pub driver_objects: Vec<String>,
    /// Compatible-mode DHCP clients ended because their guest is gone.
    pub clients: Vec<String>,
    /// Attaches killed half-way, rolled back (see [`crate::pending`]).
    pub unfinished: Vec<crate::pending::PendingAttach>,
    /// Files of the state directory nothing needs any more (temporary files
    /// of killed writers, lock files of guests gone), relative to it.
    pub files: Vec<String>,
}

/// Cleans up after guests that are gone: their host-side leftovers (veths
/// already died with the namespace; OVS rows, flows, owned bridges did not)
/// and their records, then whatever the drivers find orphaned.
pub async fn gc(drivers: &dyn DriverSet, settings: &Settings) -> Result<Collected> {
    let unfinished = crate::pending::settle_all(drivers, settings).await?;
    let hs = HostSide::open(StateDir::open(&settings.state_dir)?)?;
    let mut collected = Vec::new();
    for rec in hs.state.all()? {
        if guest_alive(&rec.guest) {
            continue;
        }
        let _lock = hs.state.lock_guest(rec.guest.netns).await?;
        // Read again under the lock (see `detach_matching`).
        let rec = match hs.state.load(rec.guest.netns, &rec.interface)? {
            Some(now) if now == rec => now,
            _ => continue,
        };
        match hs.undo(rec, None, drivers, settings).await {
            Ok(r) => collected.push(r),
            Err(e) => warn!("gc: {e}"),
        }
    }
    let driver_objects = drivers.gc(settings).await?;
    // Clients whose record is gone (an attach killed half-way) or that
    // outlived it.
    let clients = pipework_dhcp::compat::gc(settings);
    let mut files = crate::sweep::temp_files(&hs.state)?;
    files.extend(crate::sweep::guest_locks(&hs.state)?);
    files.extend(crate::sweep::shared_locks(&hs.state)?);
    Ok(Collected {
        files,
        records: collected,
        driver_objects,
        clients,
        unfinished,
    })
}

/// What the daemon collects when it starts: attaches killed half-way and
/// the shared objects and OVS rows nobody uses any more. Nothing here
/// depends on telling whether a guest is alive (a daemon may run in another
/// mount namespace than the guests' `/run/netns`), only on locks, pending
/// files and what the kernel and OVSDB hold.
pub async fn leftovers(drivers: &dyn DriverSet, settings: &Settings) -> Result<Vec<String>> {
    let mut out: Vec<String> = crate::pending::settle_all(drivers, settings)
        .await?
        .into_iter()
        .map(|p| {
            format!(
                "the unfinished attach of {} on {}",
                p.interface, p.guest.name
            )
        })
        .collect();
    out.extend(drivers.gc(settings).await?);
    Ok(out)
}
