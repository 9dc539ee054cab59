//! Leases on disk: one JSON file per lease under `<state>/leases/`, written
//! atomically, so a daemon that is killed at any moment finds on restart
//! either the previous or the next state of each lease, never half of one.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::lease::{Lease, LeaseSpec, Phase};
use super::DropCounts;
use pipework_base::error::{Error, Result};
use pipework_base::journal::Journal;
use pipework_base::state::StateDir;

/// Everything the daemon knows about one lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseFile {
    pub spec: LeaseSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    pub phase: Phase,
    /// What the current lease changed in the guest, to undo when it goes.
    #[serde(default)]
    pub applied: Journal,
    #[serde(default)]
    pub drops: DropCounts,
    /// Unix time of the last change.
    pub updated_at: u64,
}

/// `<state>/leases`.
#[derive(Clone, Debug)]
pub struct LeaseStore {
    state: StateDir,
}

const DIR: &str = "leases";

impl LeaseStore {
    pub fn new(state_root: &Path) -> LeaseStore {
        LeaseStore {
            state: StateDir::open_read(state_root),
        }
    }

    fn path(key: &str) -> String {
        format!("{DIR}/{key}.json")
    }

    pub fn save(&self, f: &LeaseFile) -> Result<()> {
        let json = serde_json::to_vec_pretty(f)
            .map_err(|e| Error::failed("cannot encode lease").with_source(e))?;
        self.state.write_file(&Self::path(&f.spec.key), &json)
    }

    pub fn remove(&self, key: &str) -> Result<()> {
        self.state
            .remove_file(&Self::path(key))
            .map_err(|e| e.context(format!("cannot remove lease {key}")))
    }

    /// A lease file; `None` if there is none or it cannot be read (said).
    pub fn load(&self, key: &str) -> Option<LeaseFile> {
        let b = match self.state.read_file(&Self::path(key)) {
            Ok(b) => b?,
            Err(e) => {
                warn!("{e}");
                return None;
            }
        };
        serde_json::from_slice(&b).ok()
    }

    /// Every lease file, sorted by key. A corrupt file is reported and
    /// skipped: one bad file must not stop the daemon from keeping the rest.
    /// A leases directory that is not ours alone is refused (a usage error).
    pub fn all(&self) -> Result<Vec<LeaseFile>> {
        let Some(dir) = self.state.dir(DIR, false)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (name, _) in dir.entries()? {
            if !name.ends_with(".json") {
                continue;
            }
            let Some(b) = dir.read(&name)? else { continue };
            match serde_json::from_slice(&b) {
                Ok(f) => out.push(f),
                Err(e) => warn!(
                    "ignoring corrupt lease file {}: {e}",
                    dir.path().join(&name).display()
                ),
            }
        }
        out.sort_by(|a: &LeaseFile, b| a.spec.key.cmp(&b.spec.key));
        Ok(out)
    }
}
