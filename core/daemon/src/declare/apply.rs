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

/// Resolves the intent's guest and makes the intent hold there.
async fn ensure_one(
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
        ensure(&guest, intent, owner, drivers, settings).await
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
    // keeps open sockets and guest threads few; the kernel serialises link
    // creation itself, so more would only queue.
    let mut slot: HashMap<&pipework_model::GuestRef, usize> = HashMap::new();
    let mut by_guest: Vec<Vec<(usize, &Intent)>> = Vec::new();
    for (i, intent) in intents.iter().enumerate() {
        let k = *slot.entry(&intent.guest).or_insert_with(|| {
            by_guest.push(Vec::new());
            by_guest.len() - 1
        });
        by_guest[k].push((i, intent));
    }
    let owner = &owner;
    let mut done: Vec<(usize, Entry)> = stream::iter(by_guest)
        .map(|group| async move {
            let mut out = Vec::new();
            for (i, intent) in group {
                out.push((i, ensure_one(intent, owner, drivers, settings).await));
            }
            out
        })
        .buffer_unordered(CONCURRENT_GUESTS)
        .flat_map(stream::iter)
        .collect()
        .await;
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
