//! Detach and garbage collection: replaying the journals that attach saved.

use pipework_base::driver::DriverSet;
use pipework_base::driver::UndoContext;
use pipework_base::error::{Context, Error, Result};
use pipework_base::guest::{reopen, Guest, GuestInfo, ResolveOptions};
use pipework_base::journal::UndoMode;
use pipework_base::settings::Settings;
use pipework_base::state::{AttachmentRecord, StateDir};
use pipework_base::undo::Replay;
use pipework_model::{GuestRef, IfName};
use pipework_sys::netlink::Netlink;
use pipework_sys::netns::Netns;

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
    let mut recs: Vec<AttachmentRecord> = state
        .guest_records(guest.info.netns)?
        .into_iter()
        .filter(|r| ifname.is_none_or(|i| i.as_str() == r.interface))
        .collect();
    // Newest first: a later attachment may have recorded what an earlier one
    // set up (the default route it replaced), which must still be there when
    // it is put back.
    newest_first(&mut recs);
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

/// Sorts records into reverse order of creation.
pub(crate) fn newest_first(recs: &mut [AttachmentRecord]) {
    recs.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.created_at_nanos, r.ifindex)));
}

/// The host end of every undo: state, host namespace, host netlink.
pub(crate) struct HostSide {
    pub(crate) state: StateDir,
    host_ns: Netns,
    host: Netlink,
}

impl HostSide {
    pub(crate) fn open(state: StateDir) -> Result<HostSide> {
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
    #[tracing::instrument(
        name = "detach",
        skip_all,
        fields(guest = %rec.guest.name, interface = %rec.interface, driver = %rec.driver)
    )]
    pub(crate) async fn undo(
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
        let ctx = Replay {
            ctx: UndoContext {
                host: &self.host,
                guest: ours,
                host_ns: &self.host_ns,
                state: &self.state,
                settings,
                mode: UndoMode::Detach,
            },
            drivers,
            addressing: &pipework_dhcp::undo::DhcpUndo,
        };
        let mut done = undo_records(&ctx, &self.state, vec![rec]).await?;
        Ok(done.remove(0))
    }
}

/// Undoes each record's journal; drops a record only once all its undos worked.
async fn undo_records(
    ctx: &Replay<'_>,
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
pub(crate) fn names_guest(g: &GuestInfo, r: &GuestRef) -> bool {
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
    let mut recs: Vec<AttachmentRecord> =
        hs.state.all()?.into_iter().filter(|r| select(r)).collect();
    newest_first(&mut recs);
    for rec in recs {
        let _lock = hs.state.lock_guest(rec.guest.netns).await?;
        // Read again under the lock: the list above is a snapshot, and an
        // attach to a new guest that reuses a dead one's namespace inode may
        // have replaced the record meanwhile (undoing the old one itself).
        let rec = match hs.state.load(rec.guest.netns, &rec.interface)? {
            Some(now) if now == rec => now,
            _ => continue,
        };
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
