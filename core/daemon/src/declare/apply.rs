//! `pipework apply <file>`: make a file's intents hold, and with `prune`
//! detach what an earlier version of the file declared and this one does not.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::ensure::ensure;
use super::{labels, Intent};
use pipework_base::driver::DriverSet;
use pipework_base::error::Result;
use pipework_base::guest::{Guest, ResolveOptions};
use pipework_base::settings::Settings;
use pipework_core::attach::HostSide;
use pipework_core::detach::detach_matching;

/// What happened to one guest interface.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub guest: String,
    pub interface: String,
    /// `unchanged`, `attached`, `replaced`, `pruned` or `failed`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How many guests `apply` attaches at once.
const CONCURRENT_GUESTS: usize = 16;
/// At most this many threads share them (one per CPU below that).
const MAX_THREADS: usize = 4;

/// Resolves the intent's guest and makes the intent hold there.
async fn ensure_one(
    host: &HostSide,
    intent: &Intent,
    owner: &BTreeMap<String, String>,
    drivers: &dyn DriverSet,
    settings: &Settings,
) -> Entry {
    let wait = intent
        .requests
        .first()
        .map(|r| r.options.timeout)
        .unwrap_or_default();
    let res = async {
        let guest = Guest::resolve(&intent.guest, &ResolveOptions { wait_running: wait })
            .await
            .map_err(|e| e.context(format!("guest {}", intent.guest)))?;
        ensure(host, &guest, intent, owner, drivers, settings).await
    }
    .await;
    Entry {
        guest: intent.guest.to_string(),
        interface: intent.ifname.clone(),
        outcome: res.as_ref().map(|o| o.as_str()).unwrap_or("failed"),
        error: res.err().map(|e| e.to_string()),
    }
}

/// Applies `intents` declared in `file` (an absolute path: it tells the
/// attachments of this file from any other's).
pub async fn apply(
    intents: &[Intent],
    file: &str,
    prune: bool,
    drivers: &dyn DriverSet,
    settings: &Settings,
) -> Result<Vec<Entry>> {
    let owner = BTreeMap::from([
        (labels::OWNER.to_string(), "apply".to_string()),
        (labels::FILE.to_string(), file.to_string()),
    ]);
    // Guests are independent: their attaches run concurrently (an HPC job
    // starts hundreds at once), a guest's own interfaces one after the
    // other in file order (they share the guest's lock anyway). The bound
    // keeps open sockets few; the kernel serialises link creation itself,
    // so more would only queue. They are spread over a thread per CPU.
    let mut slot: HashMap<&pipework_model::GuestRef, usize> = HashMap::new();
    let mut by_guest: Vec<Vec<(usize, &Intent)>> = Vec::new();
    for (i, intent) in intents.iter().enumerate() {
        let k = *slot.entry(&intent.guest).or_insert_with(|| {
            by_guest.push(Vec::new());
            by_guest.len() - 1
        });
        by_guest[k].push((i, intent));
    }
    let mut done = attach_all(by_guest, &owner, drivers, settings).await;
    // A worker thread that died took its entries with it: each of those
    // interfaces is reported, not dropped from the report.
    let seen: HashSet<usize> = done.iter().map(|(i, _)| *i).collect();
    for (i, intent) in intents.iter().enumerate() {
        if !seen.contains(&i) {
            let entry = Entry {
                guest: intent.guest.to_string(),
                interface: intent.ifname.clone(),
                outcome: "failed",
                error: Some("internal error: its attach stopped without a result".into()),
            };
            done.push((i, entry));
        }
    }
    done.sort_by_key(|(i, _)| *i);
    let mut out: Vec<Entry> = done.into_iter().map(|(_, e)| e).collect();
    if prune {
        let declared: HashSet<(&pipework_model::GuestRef, &str)> = intents
            .iter()
            .map(|i| (&i.guest, i.ifname.as_str()))
            .collect();
        let declared = |r: &pipework_base::state::AttachmentRecord| {
            declared.contains(&(&r.guest.reference, r.interface.as_str()))
        };
        let select = |r: &pipework_base::state::AttachmentRecord| {
            r.labels.get(labels::FILE).map(String::as_str) == Some(file) && !declared(r)
        };
        for r in detach_matching(select, drivers, settings).await? {
            out.push(Entry {
                guest: r.guest.reference.to_string(),
                interface: r.interface,
                outcome: "pruned",
                error: None,
            });
        }
    }
    Ok(out)
}

type Group<'a> = Vec<(usize, &'a Intent)>;

/// Runs the guests' groups, [`CONCURRENT_GUESTS`] at a time, on one thread
/// per CPU (up to [`MAX_THREADS`]), each with a runtime of its own: a
/// guest's attach never leaves its thread (its sockets and its brief visits
/// to the guest's namespace are that thread's), and what the kernel does
/// for one attach outside the bridge's lock (files, namespaces, delivering
/// the announcements) runs beside another's. With one CPU, or what no
/// thread took (none could start, or start its runtime): on this runtime.
async fn attach_all(
    groups: Vec<Group<'_>>,
    owner: &BTreeMap<String, String>,
    drivers: &dyn DriverSet,
    settings: &Settings,
) -> Vec<(usize, Entry)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS)
        .min(groups.len());
    let queue = std::sync::Mutex::new(groups.into_iter());
    let next = || {
        queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next()
    };
    let mut done = Vec::new();
    if threads > 1 {
        let per_thread = CONCURRENT_GUESTS.div_ceil(threads);
        // The calling runtime waits meanwhile: `apply` is all this process
        // does, and nothing of it runs on that runtime.
        done = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .filter_map(|_| {
                    let work = || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .map_err(|e| tracing::warn!("apply: one thread fewer: {e}"))
                            .ok()?;
                        let groups = std::iter::from_fn(next);
                        Some(rt.block_on(run_groups(groups, per_thread, owner, drivers, settings)))
                    };
                    std::thread::Builder::new()
                        .name("pipework-apply".into())
                        .spawn_scoped(s, work)
                        .map_err(|e| tracing::warn!("apply: one thread fewer: {e}"))
                        .ok()
                })
                .collect();
            // A worker that panicked loses its entries: `apply` reports
            // those interfaces as failed.
            workers
                .into_iter()
                .filter_map(|w| w.join().ok().flatten())
                .flatten()
                .collect()
        });
    }
    let left: Vec<Group<'_>> = std::iter::from_fn(next).collect();
    if !left.is_empty() {
        let groups = left.into_iter();
        done.extend(run_groups(groups, CONCURRENT_GUESTS, owner, drivers, settings).await);
    }
    done
}

/// Each group's interfaces one after the other (they share the guest's
/// lock anyway), `at_once` groups at a time, all sharing one [`HostSide`]
/// opened on this runtime. If it cannot be opened, every interface of these
/// groups fails with that error (each attach would have failed opening it).
async fn run_groups<'a>(
    groups: impl Iterator<Item = Group<'a>>,
    at_once: usize,
    owner: &BTreeMap<String, String>,
    drivers: &dyn DriverSet,
    settings: &Settings,
) -> Vec<(usize, Entry)> {
    let host = match HostSide::open(settings) {
        Ok(h) => h.with_bridge_arp(),
        Err(e) => {
            let error = e.to_string();
            return groups
                .flatten()
                .map(|(i, intent)| {
                    let entry = Entry {
                        guest: intent.guest.to_string(),
                        interface: intent.ifname.clone(),
                        outcome: "failed",
                        error: Some(error.clone()),
                    };
                    (i, entry)
                })
                .collect();
        }
    };
    let host = &host;
    stream::iter(groups)
        .map(|group| async move {
            let mut out = Vec::new();
            for (i, intent) in group {
                out.push((i, ensure_one(host, intent, owner, drivers, settings).await));
            }
            out
        })
        .buffer_unordered(at_once)
        .flat_map(stream::iter)
        .collect()
        .await
}
