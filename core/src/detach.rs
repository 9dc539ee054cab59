//! Detach and garbage collection: replaying the journals that attach saved.

use tracing::warn;

use crate::driver::DriverSet;
use crate::error::{Context, Error, Result};
use crate::guest::{Guest, GuestInfo, ResolveOptions};
use crate::journal::{UndoContext, UndoMode};
use crate::model::{GuestRef, IfName};
use crate::netlink::Netlink;
use crate::netns::Netns;
use crate::settings::Settings;
use crate::state::{AttachmentRecord, StateDir};

/// Removes what attach created for a guest (all its interfaces, or one).
/// A guest that no longer exists is matched by the records' names, and only
/// the host side is cleaned (its own links died with its namespace).
pub async fn detach(
    guest_ref: &GuestRef,
    ifname: Option<&IfName>,
    drivers: &dyn DriverSet,
    settings: &Settings,
) -> Result<Vec<AttachmentRecord>> {
    let state = StateDir::open(&settings.state_dir)?;
    let opts = ResolveOptions {
        wait_running: std::time::Duration::ZERO,
    };
    match Guest::resolve(guest_ref, &opts).await {
        Ok(guest) => detach_live(&guest, ifname, drivers, settings, &state)
            .await
            .map_err(|e| e.context(format!("guest {}", guest.name()))),
        Err(resolve_err) => {
            let done = detach_matching(
                |r| {
                    names_guest(&r.guest, guest_ref)
                        && ifname.is_none_or(|i| i.as_str() == r.interface)
                },
                drivers,
                settings,
            )
            .await?;
            if done.is_empty() {
                return Err(resolve_err);
            }
            Ok(done)
        }
    }
}

/// [`detach`] for a guest already resolved.
pub async fn detach_guest(
    guest: &Guest,
    ifname: Option<&IfName>,
    drivers: &dyn DriverSet,
    settings: &Settings,
) -> Result<Vec<AttachmentRecord>> {
    let state = StateDir::open(&settings.state_dir)?;
    detach_live(guest, ifname, drivers, settings, &state)
        .await
        .map_err(|e| e.context(format!("guest {}", guest.name())))
}

async fn detach_live(
    guest: &Guest,
    ifname: Option<&IfName>,
    drivers: &dyn DriverSet,
    settings: &Settings,
    state: &StateDir,
) -> Result<Vec<AttachmentRecord>> {
    let _lock = state.lock_guest(guest.info.netns).await?;
    let recs: Vec<AttachmentRecord> = state
        .guest_records(guest.info.netns)?
        .into_iter()
        .filter(|r| ifname.is_none_or(|i| i.as_str() == r.interface))
        .collect();
    if recs.is_empty() {
        return Err(Error::usage(match ifname {
            Some(i) => format!("pipework has no attachment {i} on this guest"),
            None => "pipework has no attachment on this guest".to_string(),
        }));
    }
    let hs = HostSide::open(state.clone())?;
    let guest_nl = Netlink::connect_in(&guest.netns, guest.name())
        .await
        .step("open netlink in the guest")?;
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for rec in recs {
        match hs.undo(rec, Some(&guest_nl), drivers, settings).await {
            Ok(r) => done.push(r),
            Err(e) => errors.push(e),
        }
    }
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// The host end of every undo: state, host namespace, host netlink.
struct HostSide {
    state: StateDir,
    host_ns: Netns,
    host: Netlink,
}

impl HostSide {
    fn open(state: StateDir) -> Result<HostSide> {
        Ok(HostSide {
            state,
            host_ns: Netns::current().step("open host namespace")?,
            host: Netlink::connect_here("host").step("open netlink")?,
        })
    }

    /// Undoes one record. `guest` is the guest's netlink when its namespace
    /// is alive; it is used only if the record's link is still there under
    /// its name, so a recycled namespace inode cannot make us touch a
    /// stranger's link.
    async fn undo(
        &self,
        rec: AttachmentRecord,
        guest: Option<&Netlink>,
        drivers: &dyn DriverSet,
        settings: &Settings,
    ) -> Result<AttachmentRecord> {
        let mut ours = None;
        if let Some(g) = guest {
            if matches!(g.link_by_index(rec.ifindex).await?, Some(l) if l.name == rec.interface) {
                ours = Some(g);
            }
        }
        let ctx = UndoContext {
            host: &self.host,
            guest: ours,
            host_ns: &self.host_ns,
            drivers,
            state: &self.state,
            settings,
            mode: UndoMode::Detach,
        };
        let mut done = undo_records(&ctx, &self.state, vec![rec]).await?;
        Ok(done.remove(0))
    }
}

/// Undoes each record's journal; drops a record only once all its undos worked.
async fn undo_records(
    ctx: &UndoContext<'_>,
    state: &StateDir,
    mut recs: Vec<AttachmentRecord>,
) -> Result<Vec<AttachmentRecord>> {
    // Newest first, like the journal inside each record.
    recs.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for rec in recs {
        let errs = rec.journal.undo_all(ctx).await;
        if errs.is_empty() {
            state.remove(rec.guest.netns, &rec.interface)?;
            done.push(rec);
        } else {
            failed.push(format!(
                "interface {}: {}",
                rec.interface,
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    if failed.is_empty() {
        Ok(done)
    } else {
        Err(Error::failed(format!(
            "detach incomplete (run it again to retry): {}",
            failed.join("; ")
        )))
    }
}

/// Whether a record's guest is the one the user names.
fn names_guest(g: &GuestInfo, r: &GuestRef) -> bool {
    if g.reference == *r {
        return true;
    }
    match r {
        GuestRef::Auto(n) | GuestRef::Container(n) | GuestRef::Lxc(n) | GuestRef::Netns(n) => {
            g.name == *n
                || g.container_name.as_deref() == Some(n)
                || g.container_id
                    .as_deref()
                    .is_some_and(|id| n.len() >= 12 && id.starts_with(n.as_str()))
        }
        GuestRef::Pid(p) => g.pid == Some(*p),
        GuestRef::Path(p) => g.name == p.display().to_string(),
    }
}

/// Whether the namespace a record describes still exists.
pub fn guest_alive(g: &GuestInfo) -> bool {
    reopen(g).is_some()
}

/// The namespace a record describes, if it still exists (same inode).
pub fn reopen(g: &GuestInfo) -> Option<Netns> {
    let path = match (&g.reference, g.pid) {
        (_, Some(pid)) => format!("/proc/{pid}/ns/net"),
        (GuestRef::Path(p), None) => p.display().to_string(),
        (GuestRef::Netns(n), None) | (GuestRef::Auto(n), None) => {
            format!("{}/{n}", crate::guest::NETNS_RUN_DIR)
        }
        _ => return None,
    };
    Netns::open(std::path::Path::new(&path))
        .ok()
        .filter(|ns| ns.id() == g.netns)
}

/// Detaches every record `select` picks, guest alive or gone: the way for
/// callers that know an attachment by its record rather than by a guest
/// reference (CNI DEL by container ID and interface, the reconciler).
pub async fn detach_matching(
    select: impl Fn(&AttachmentRecord) -> bool,
    drivers: &dyn DriverSet,
    settings: &Settings,
) -> Result<Vec<AttachmentRecord>> {
    let hs = HostSide::open(StateDir::open(&settings.state_dir)?)?;
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for rec in hs.state.all()?.into_iter().filter(|r| select(r)) {
        let _lock = hs.state.lock_guest(rec.guest.netns).await?;
        let guest_nl = match reopen(&rec.guest) {
            Some(ns) => Some(
                Netlink::connect_in(&ns, &rec.guest.name)
                    .await
                    .step("open netlink in the guest")?,
            ),
            None => None,
        };
        match hs.undo(rec, guest_nl.as_ref(), drivers, settings).await {
            Ok(r) => done.push(r),
            Err(e) => errors.push(e),
        }
    }
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

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
        match hs.undo(rec, None, drivers, settings).await {
            Ok(r) => collected.push(r),
            Err(e) => warn!("gc: {e}"),
        }
    }
    let driver_objects = drivers.gc(settings).await?;
    // Clients whose record is gone (an attach killed half-way) or that
    // outlived it.
    let clients = crate::dhcp::compat::gc(settings);
    Ok(Collected {
        records: collected,
        driver_objects,
        clients,
        unfinished,
    })
}
