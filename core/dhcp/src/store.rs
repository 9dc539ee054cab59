//! Leases on disk: one JSON file per lease under `<state>/leases/`, written
//! atomically, so a daemon that is killed at any moment finds on restart
//! either the previous or the next state of each lease, never half of one.
//! Beside each, `<key>.drops` holds the drop counters as they grow between
//! two changes of the lease (a server sending nothing but bad packets
//! changes no lease, and must still show in `inspect`).

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::lease::{Lease, LeaseSpec, Phase};
use super::DropCounts;
use pipework_base::error::{Error, Result};
use pipework_base::journal::Journal;
use pipework_base::state::write_atomic;

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
    dir: PathBuf,
}

impl LeaseStore {
    pub fn new(state_root: &Path) -> LeaseStore {
        LeaseStore {
            dir: state_root.join("leases"),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    fn drops_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.drops"))
    }

    /// Saves the counters of a lease that is on disk (and only then: a
    /// lease removed meanwhile leaves no counters behind).
    pub fn save_drops(&self, key: &str, c: &DropCounts) -> Result<()> {
        if !self.path(key).is_file() {
            return Ok(());
        }
        let json = serde_json::to_vec(c)
            .map_err(|e| Error::failed("cannot encode drop counters").with_source(e))?;
        write_atomic(&self.drops_path(key), &json)
    }

    /// The counters of `f`, or the newer ones beside it (they only grow).
    fn with_drops(&self, mut f: LeaseFile) -> LeaseFile {
        let newer: Option<DropCounts> = fs::read(self.drops_path(&f.spec.key))
            .ok()
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
        if !self.dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|e| {
                    Error::failed(format!("cannot create {}", self.dir.display())).with_source(e)
                })?;
        }
        let json = serde_json::to_vec_pretty(f)
            .map_err(|e| Error::failed("cannot encode lease").with_source(e))?;
        write_atomic(&self.path(&f.spec.key), &json)?;
        // The file holds the counters now; a stale side file (of an earlier
        // lease with the same key) must not add to them.
        let _ = fs::remove_file(self.drops_path(&f.spec.key));
        Ok(())
    }

    pub fn remove(&self, key: &str) -> Result<()> {
        let _ = fs::remove_file(self.drops_path(key));
        match fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::failed(format!("cannot remove lease {key}")).with_source(e))
            }
            _ => Ok(()),
        }
    }

    pub fn load(&self, key: &str) -> Option<LeaseFile> {
        let b = fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&b).ok().map(|f| self.with_drops(f))
    }

    /// Every lease file, sorted by key. A corrupt file is reported and
    /// skipped: one bad file must not stop the daemon from keeping the rest.
    pub fn all(&self) -> Vec<LeaseFile> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<LeaseFile> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().and_then(|x| x.to_str()) == Some("json"))
            .filter_map(|p| match fs::read(&p).map(|b| serde_json::from_slice(&b)) {
                Ok(Ok(f)) => Some(self.with_drops(f)),
                Ok(Err(e)) => {
                    warn!("ignoring corrupt lease file {}: {e}", p.display());
                    None
                }
                Err(_) => None,
            })
            .collect();
        out.sort_by(|a: &LeaseFile, b| a.spec.key.cmp(&b.spec.key));
        out
    }
}
