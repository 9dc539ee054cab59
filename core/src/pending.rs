//! Attaches in progress, on disk.
//!
//! An attach keeps its journal in memory until it commits the record. A
//! process killed in between (SIGKILL, an OOM kill, the daemon stopped at
//! any point) would leave its links and routes with nobody knowing how to
//! undo them. So every step is also written to
//! `<state>/pending/<netns>-<ifname>.json` as it is recorded, and the file is
//! removed once the attach has either committed or rolled back.
//!
//! The file is a log: each time the journal changes, its whole state is
//! appended as one JSON line with a single `write(2)`, which a killed
//! process cannot leave half-done; the last complete line is the truth.
//! Appending costs one system call per step, where replacing a file by
//! rename cost four (and, on a disk-backed /run, journal commits).
//!
//! A pending file whose attach is gone is *settled*: if the record it led to
//! was saved (the process died between saving and removing the file) it is
//! simply dropped, otherwise its journal is rolled back. The attach holds the
//! guest's lock throughout, so whoever gets that lock and still finds the
//! file knows its writer is dead. Settling happens before any new attach
//! (the attach's own guest first, then other guests whose lock is free), in
//! `gc`, and when the daemon starts.
//!
//! The file is written before the attach's first change, with an empty
//! journal, so that a kill at any instant leaves a file naming the guest:
//! settling it also deletes the links still under a temporary name there.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use pipework_base::driver::DriverSet;
use pipework_base::driver::UndoContext;
use pipework_base::error::{Context, Error, ErrorKind, Result};
use pipework_base::guest::GuestInfo;
use pipework_base::journal::{Journal, Sink, Step, UndoMode};
use pipework_base::settings::Settings;
use pipework_base::state::{OpenHow, StateDir};
use pipework_base::undo::Replay;
use pipework_sys::netlink::Netlink;
use pipework_sys::netns::{Netns, NetnsId};

/// What a pending file holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingAttach {
    pub guest: GuestInfo,
    pub interface: String,
    pub journal: Journal,
}

const DIR: &str = "pending";

/// `pending/<netns>-<ifname>.json`, relative to the state root.
fn path(netns: NetnsId, ifname: &str) -> String {
    // The same key as a shared object's user, so that a use can be told
    // to belong to an attach still in progress (`StateDir::user_exists`).
    format!(
        "{DIR}/{}.json",
        pipework_base::shared::user_key(netns, ifname)
    )
}

/// The pending file of one attach.
pub struct Pending {
    state: StateDir,
    path: String,
}

impl Pending {
    /// A journal sink appending this attach's state on every step. The
    /// file is written at once, with an empty journal, before the attach
    /// changes anything: whatever kills the process from then on leaves a
    /// file naming the guest, so the links it made under temporary names
    /// are found (see [`settle_one`]). An attach that cannot write it
    /// changes nothing.
    pub fn start(state: &StateDir, guest: &GuestInfo, ifname: &str) -> Result<(Pending, Sink)> {
        let p = path(guest.netns, ifname);
        let target = p.clone();
        let st = state.clone();
        let guest = guest.clone();
        let ifname = ifname.to_string();
        let mut first = None;
        let header = PendingAttach {
            guest: guest.clone(),
            interface: ifname.clone(),
            journal: Journal::new(),
        };
        append(state, &p, &mut first, &header)
            .map_err(|e| e.context("step save the attach in progress"))?;
        let file: Mutex<Option<File>> = Mutex::new(first);
        let sink: Sink = Arc::new(move |steps: &[Step]| {
            let rec = PendingAttach {
                guest: guest.clone(),
                interface: ifname.clone(),
                journal: Journal::from_steps(steps.to_vec()),
            };
            let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = append(&st, &target, &mut f, &rec) {
                warn!("cannot save the attach in progress: {e}");
            }
        });
        Ok((
            Pending {
                state: state.clone(),
                path: p,
            },
            sink,
        ))
    }

    /// The attach committed or rolled back: nothing is pending any more.
    pub fn clear(&self) {
        if let Err(e) = self.state.remove_file(&self.path) {
            warn!("{e}");
        }
    }
}

/// Appends one line. No fsync: this guards against the process dying, and
/// what the file describes does not outlive a machine crash either.
fn append(state: &StateDir, p: &str, f: &mut Option<File>, rec: &PendingAttach) -> Result<()> {
    let file = match f {
        Some(file) => file,
        None => f.insert(
            state
                .open_file(p, OpenHow::Truncate)?
                .ok_or_else(|| Error::failed(format!("cannot create {p}")))?,
        ),
    };
    let mut line = serde_json::to_vec(rec).map_err(|e| Error::failed("encode").with_source(e))?;
    line.push(b'\n');
    file.write_all(&line)
        .map_err(|e| Error::failed(format!("cannot write {p}")).with_source(e))
}

/// What a pending file holds: its last complete line, or why there is none.
enum Read {
    Missing,
    /// Empty, or no complete line: the attach was killed between creating
    /// the file and its first write, before it changed anything.
    Unfinished,
    Attach(PendingAttach),
}

/// Reads a pending file. A file the state directory's rules refuse (a
/// symbolic link, a directory not ours) is an error, not an unreadable file.
fn read(state: &StateDir, p: &str) -> Result<Read> {
    let Some(b) = state.read_file(p)? else {
        return Ok(Read::Missing);
    };
    Ok(parse(state, p, &b))
}

fn parse(state: &StateDir, p: &str, b: &[u8]) -> Read {
    let Some(end) = b.iter().rposition(|&c| c == b'\n') else {
        return Read::Unfinished;
    };
    let Some(last) = b[..end].split(|&c| c == b'\n').next_back() else {
        return Read::Unfinished;
    };
    match serde_json::from_slice(last) {
        Ok(r) => Read::Attach(r),
        Err(e) => {
            warn!(
                "unreadable pending file {}: {e}",
                state.root().join(p).display()
            );
            Read::Unfinished
        }
    }
}

/// Settles the pending file of one guest interface, if any. The caller holds
/// the guest's lock and gives the undo context (with the guest's netlink when
/// its namespace is alive). Returns the attach if it had to be undone.
pub async fn settle_one(
    ctx: &Replay<'_>,
    netns: NetnsId,
    ifname: &str,
) -> Result<Option<PendingAttach>> {
    let p = path(netns, ifname);
    let pending = match read(ctx.state, &p)? {
        Read::Missing => return Ok(None),
        Read::Unfinished => {
            // Written before the attach's first change: nothing to undo.
            warn!(
                "removing {}: an attach stopped before it changed anything",
                ctx.state.root().join(&p).display()
            );
            ctx.state.remove_file(&p)?;
            return Ok(None);
        }
        Read::Attach(a) => a,
    };
    sweep_temp_links(ctx).await?;
    let committed = ctx
        .state
        .load(netns, ifname)?
        .is_some_and(|r| r.journal.steps().ends_with(pending.journal.steps()));
    if committed {
        ctx.state.remove_file(&p)?;
        return Ok(None);
    }
    {
        info!(
            guest = %pending.guest.name,
            interface = %pending.interface,
            steps = pending.journal.len(),
            "undoing an attach that did not finish"
        );
        let errs = pending.journal.undo_all(ctx).await;
        if let Some(e) = errs.into_iter().next() {
            return Err(e.context(format!(
                "undoing the unfinished attach of {} on {}",
                pending.interface, pending.guest.name
            )));
        }
    }
    ctx.state.remove_file(&p)?;
    Ok(Some(pending))
}

/// Deletes the links an attach killed in the instant between creating one
/// and recording it left in the guest under their temporary names: only an
/// attach holding the guest's lock ever has such a link, so with the lock
/// held any that exists is a leftover. Deleting a veth's guest end deletes
/// its host end too (and with it the port it was on a bridge).
async fn sweep_temp_links(ctx: &Replay<'_>) -> Result<()> {
    let Some(g) = ctx.guest else {
        return Ok(());
    };
    for l in g.links().await? {
        if pipework_base::hostname::is_temp_guest_name(&l.name) {
            warn!(link = %l.name, "deleting a link an interrupted attach left");
            match g.delete_link(l.index, &l.name).await {
                Err(e) if !e.is_gone() => return Err(e).step("delete a leftover link"),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Before an attach to `own` (whose lock the caller holds): settles that
/// guest's pending files, then those attaches to other guests left when
/// they were killed (a file whose guest's lock is held is an attach still
/// running and is left alone). One directory read when there is none, the
/// common case (a request saved on every attach).
///
/// A temporary link in the guest is only ever left by an attach killed
/// half-way, and such an attach always leaves its pending file (written
/// before its first change): with none for this guest there is nothing to
/// sweep, and the guest's links are not listed.
pub async fn settle_before_attach(ctx: &Replay<'_>, own: NetnsId) -> Result<()> {
    let files = files(ctx.state)?;
    if files.is_empty() {
        return Ok(());
    }
    let ours: Vec<&str> = files
        .iter()
        .filter(|(ns, _)| *ns == own)
        .map(|(_, ifname)| ifname.as_str())
        .collect();
    if !ours.is_empty() {
        sweep_temp_links(ctx).await?;
        for ifname in ours {
            settle_one(ctx, own, ifname).await?;
        }
    }
    let env = Env {
        state: ctx.state,
        host: ctx.host,
        host_ns: ctx.host_ns,
        drivers: ctx.drivers,
        settings: ctx.settings,
    };
    env.settle(files, Some(own)).await?;
    Ok(())
}

/// Settles every pending file whose attach is no longer running (waiting
/// for those still running to finish). Returns the attaches undone.
pub async fn settle_all(
    drivers: &dyn DriverSet,
    settings: &Settings,
) -> Result<Vec<PendingAttach>> {
    let state = StateDir::open(&settings.state_dir)?;
    let files = files(&state)?;
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let host_ns = Netns::current().step("open host namespace")?;
    let host = Netlink::connect_here("host").step("open netlink")?;
    let env = Env {
        state: &state,
        host: &host,
        host_ns: &host_ns,
        drivers,
        settings,
    };
    env.settle(files, None).await
}

/// The pending files, with the guest and interface their names give.
fn files(state: &StateDir) -> Result<Vec<(NetnsId, String)>> {
    Ok(state
        .list(DIR)?
        .into_iter()
        .filter_map(|name| {
            let (ns, ifname) = name.strip_suffix(".json")?.split_once('-')?;
            Some((NetnsId(ns.parse().ok()?), ifname.to_string()))
        })
        .collect())
}

struct Env<'a> {
    state: &'a StateDir,
    host: &'a Netlink,
    host_ns: &'a Netns,
    drivers: &'a dyn DriverSet,
    settings: &'a Settings,
}

impl Env<'_> {
    /// `skip`: the caller's own guest; with it, busy guests are skipped
    /// instead of waited for. A file the state directory's rules refuse (a
    /// symbolic link, say) stops it with that error (exit 2); other
    /// failures are said and the next file is tried.
    async fn settle(
        &self,
        files: Vec<(NetnsId, String)>,
        skip: Option<NetnsId>,
    ) -> Result<Vec<PendingAttach>> {
        let mut done = Vec::new();
        for (netns, ifname) in files {
            if skip == Some(netns) {
                continue;
            }
            let lock = match skip {
                None => self.state.lock_guest(netns).await.map(Some),
                Some(_) => self.state.try_lock_guest(netns),
            };
            let _lock = match lock {
                Ok(Some(l)) => l,
                Ok(None) => continue,
                Err(e) => {
                    warn!("{e}");
                    continue;
                }
            };
            // Read under the lock: the attach may have finished meanwhile.
            let guest_nl = match read(self.state, &path(netns, &ifname))? {
                Read::Attach(a) => match pipework_base::guest::reopen(&a.guest) {
                    Some(ns) => Netlink::connect_in(&ns, &a.guest.name).await.ok(),
                    None => None,
                },
                _ => None,
            };
            let ctx = Replay {
                ctx: UndoContext {
                    host: self.host,
                    guest: guest_nl.as_ref(),
                    host_ns: self.host_ns,
                    state: self.state,
                    settings: self.settings,
                    mode: UndoMode::Rollback,
                },
                drivers: self.drivers,
                addressing: &pipework_dhcp::undo::DhcpUndo,
            };
            match settle_one(&ctx, netns, &ifname).await {
                Ok(Some(p)) => done.push(p),
                Ok(None) => {}
                Err(e) if e.kind() == ErrorKind::Usage => return Err(e),
                Err(e) => warn!("{e}"),
            }
        }
        Ok(done)
    }
}
