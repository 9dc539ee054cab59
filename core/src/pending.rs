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
//! file knows its writer is dead. Settling happens before any new attach to
//! the same interface, in `gc`, and when the daemon starts.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use pipework_base::driver::DriverSet;
use pipework_base::driver::UndoContext;
use pipework_base::error::{Context, Error, Result};
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
    format!("{DIR}/{netns}-{ifname}.json")
}

/// The pending file of one attach.
pub struct Pending {
    state: StateDir,
    path: String,
}

impl Pending {
    /// A journal sink appending this attach's state on every step. The file
    /// is opened at the first step, so an attach refused before it changed
    /// anything leaves none.
    pub fn start(state: &StateDir, guest: &GuestInfo, ifname: &str) -> (Pending, Sink) {
        let p = path(guest.netns, ifname);
        let target = p.clone();
        let st = state.clone();
        let guest = guest.clone();
        let ifname = ifname.to_string();
        let file: Mutex<Option<File>> = Mutex::new(None);
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
        (
            Pending {
                state: state.clone(),
                path: p,
            },
            sink,
        )
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

/// The last complete line of a pending file.
fn read(state: &StateDir, p: &str) -> Result<Option<PendingAttach>> {
    let Some(b) = state.read_file(p)? else {
        return Ok(None);
    };
    Ok(parse(state, p, &b))
}

fn parse(state: &StateDir, p: &str, b: &[u8]) -> Option<PendingAttach> {
    let p = state.root().join(p);
    let end = b.iter().rposition(|&c| c == b'\n')?;
    let last = b[..end].split(|&c| c == b'\n').next_back()?;
    match serde_json::from_slice(last) {
        Ok(r) => Some(r),
        Err(e) => {
            warn!("ignoring unreadable pending file {}: {e}", p.display());
            None
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
    let Some(pending) = read(ctx.state, &p)? else {
        return Ok(None);
    };
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

/// Settles the pending files of one guest (the caller holds its lock), and
/// deletes the links an attach killed in the instant between creating one
/// and recording it left under their temporary names: only an attach
/// holding the guest's lock ever has such a link, so with the lock held any
/// that exists is a leftover. Deleting a veth's guest end deletes its host
/// end too.
pub async fn settle_guest(ctx: &Replay<'_>, netns: NetnsId) -> Result<()> {
    if let Some(g) = ctx.guest {
        for l in g.links().await? {
            if pipework_base::hostname::is_temp_guest_name(&l.name) {
                warn!(link = %l.name, "deleting a link an interrupted attach left");
                match g.delete_link(l.index, &l.name).await {
                    Err(e) if !e.is_gone() => return Err(e).step("delete a leftover link"),
                    _ => {}
                }
            }
        }
    }
    let prefix = format!("{netns}-");
    for name in ctx.state.list(DIR)? {
        if let Some(ifname) = name
            .strip_prefix(&prefix)
            .and_then(|n| n.strip_suffix(".json"))
        {
            settle_one(ctx, netns, ifname).await?;
        }
    }
    Ok(())
}

/// Settles every pending file whose attach is no longer running (waiting
/// for those still running to finish). Returns the attaches undone.
pub async fn settle_all(
    drivers: &dyn DriverSet,
    settings: &Settings,
) -> Result<Vec<PendingAttach>> {
    let state = StateDir::open(&settings.state_dir)?;
    let files: Vec<String> = state
        .list(DIR)?
        .into_iter()
        .filter(|n| n.ends_with(".json"))
        .map(|n| format!("{DIR}/{n}"))
        .collect();
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let host_ns = Netns::current().step("open host namespace")?;
    let host = Netlink::connect_here("host").step("open netlink")?;
    let mut done = Vec::new();
    for f in files {
        let Some(first) = read(&state, &f)? else {
            continue;
        };
        let _lock = state.lock_guest(first.guest.netns).await?;
        let guest_nl = match pipework_base::guest::reopen(&first.guest) {
            Some(ns) => Netlink::connect_in(&ns, &first.guest.name).await.ok(),
            None => None,
        };
        let ctx = Replay {
            ctx: UndoContext {
                host: &host,
                guest: guest_nl.as_ref(),
                host_ns: &host_ns,
                state: &state,
                settings,
                mode: UndoMode::Rollback,
            },
            drivers,
            addressing: &pipework_dhcp::undo::DhcpUndo,
        };
        match settle_one(&ctx, first.guest.netns, &first.interface).await {
            Ok(Some(p)) => done.push(p),
            Ok(None) => {}
            Err(e) => warn!("{e}"),
        }
    }
    Ok(done)
}
