//! `pipework apply <file>`: make a file's intents hold, and with `prune`
//! detach what an earlier version of the file declared and this one does not.

use std::collections::{BTreeMap, HashSet};

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
    let mut out = Vec::new();
    for intent in intents {
        let wait = intent
            .requests
            .first()
            .map(|r| r.options.timeout)
            .unwrap_or_default();
        let res = async {
            let guest = Guest::resolve(&intent.guest, &ResolveOptions { wait_running: wait })
                .await
                .map_err(|e| e.context(format!("guest {}", intent.guest)))?;
            ensure(&guest, intent, &owner, drivers, settings).await
        }
        .await;
        out.push(Entry {
            guest: intent.guest.to_string(),
            interface: intent.ifname.clone(),
            outcome: res.as_ref().map(|o| o.as_str()).unwrap_or("failed"),
            error: res.err().map(|e| e.to_string()),
        });
    }
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
