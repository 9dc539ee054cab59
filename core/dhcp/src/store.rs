//! Leases on disk: one JSON file per lease under `<state>/leases/`, written
//! atomically, so a daemon that is killed at any moment finds on restart
//! either the previous or the next state of each lease, never half of one.
//! Beside each, `<key>.drops` holds the drop counters as they grow between
//! two changes of the lease (a server sending nothing but bad packets
//! changes no lease, and must still show in `list`).

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

    fn drops_path(key: &str) -> String {
        format!("{DIR}/{key}.drops")
    }

    /// Saves the counters of a lease that is on disk (and only then: a
    /// lease removed meanwhile leaves no counters behind).
    pub fn save_drops(&self, key: &str, c: &DropCounts) -> Result<()> {
        if !matches!(self.state.read_file(&Self::path(key)), Ok(Some(_))) {
            return Ok(());
        }
        let json = serde_json::to_vec(c)
            .map_err(|e| Error::failed("cannot encode drop counters").with_source(e))?;
        self.state.write_file(&Self::drops_path(key), &json)
    }

    /// The counters of `f`, or the newer ones beside it (they only grow).
    fn with_drops(&self, mut f: LeaseFile) -> LeaseFile {
        let newer: Option<DropCounts> = self
            .state
            .read_file(&Self::drops_path(&f.spec.key))
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(n) = newer {
            let d = &mut f.drops;
            d.malformed = d.malformed.max(n.malformed);
            d.foreign = d.foreign.max(n.foreign);
            d.invalid = d.invalid.max(n.invalid);
            d.ignored_options = d.ignored_options.max(n.ignored_options);
        }
        f
    }

    pub fn save(&self, f: &LeaseFile) -> Result<()> {
        let json = serde_json::to_vec_pretty(f)
            .map_err(|e| Error::failed("cannot encode lease").with_source(e))?;
        self.state.write_file(&Self::path(&f.spec.key), &json)?;
        // The file holds the counters now; a stale side file (of an earlier
        // lease with the same key) must not add to them.
        let _ = self.state.remove_file(&Self::drops_path(&f.spec.key));
        Ok(())
    }

    pub fn remove(&self, key: &str) -> Result<()> {
        let _ = self.state.remove_file(&Self::drops_path(key));
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
        serde_json::from_slice(&b).ok().map(|f| self.with_drops(f))
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
                Ok(f) => out.push(self.with_drops(f)),
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
