//! What pipework remembers: one JSON record per attachment, bridges it owns,
//! and the lock files that keep concurrent runs apart.
//!
//! Layout under the state directory (default `/run/pipework`):
//! - `attachments/<netns-inode>/<ifname>.json`: one record per guest interface;
//! - `bridges/<name>`: marker for a bridge pipework created;
//! - `locks/guest-<netns-inode>`, `locks/bridge-<name>`: `flock` files.
//!
//! Records are written to a temporary file and renamed into place, so a reader
//! (or a crash) never sees half a record. Changes to one guest happen under its
//! lock, so two runs never write the same record.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::guest::GuestInfo;
use crate::journal::Journal;
use pipework_model::DriverKind;
use pipework_model::MacAddr;
use pipework_sys::netns::NetnsId;

pub const RECORD_VERSION: u32 = 1;

/// Everything known about one attached guest interface.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    pub version: u32,
    pub guest: GuestInfo,
    /// The interface name inside the guest.
    pub interface: String,
    /// Its index inside the guest namespace.
    pub ifindex: u32,
    pub mac: MacAddr,
    pub mtu: u32,
    pub driver: DriverKind,
    /// The host interface named on the command line (bridge, parent NIC...).
    pub host_interface: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_peer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    #[serde(default)]
    pub addresses: Vec<IpNet>,
    #[serde(default)]
    pub gateways: Vec<IpAddr>,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// And the nanoseconds within that second: a guest's attachments are
    /// detached newest first, and scripts make several in one second.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub created_at_nanos: u32,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
    /// The request's labels (who made this attachment and why).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The steps that made this attachment; `detach` undoes them.
    pub journal: Journal,
}

/// A held `flock`; released when dropped.
pub struct LockGuard {
    _lock: Flock<File>,
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::failed(what).with_source(e)
}

impl StateDir {
    /// Opens the state directory, creating it (mode 0700) if needed.
    pub fn open(root: &Path) -> Result<StateDir> {
        for sub in ["attachments", "bridges", "locks"] {
            let p = root.join(sub);
            if !p.is_dir() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&p)
                    .map_err(io_err(format!(
                        "cannot create state directory {}",
                        p.display()
                    )))?;
            }
        }
        Ok(StateDir {
            root: root.to_path_buf(),
        })
    }

    /// Opens for reading only; a missing directory reads as empty.
    pub fn open_read(root: &Path) -> StateDir {
        StateDir {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) async fn lock_file(&self, file: String, exclusive: bool) -> Result<LockGuard> {
        let path = self.root.join("locks").join(&file);
        let f = open_lock(&path)?;
        // Uncontended is the common case: take it here without a thread.
        let try_arg = if exclusive {
            FlockArg::LockExclusiveNonblock
        } else {
            FlockArg::LockSharedNonblock
        };
        let f = match Flock::lock(f, try_arg) {
            Ok(lock) => return Ok(LockGuard { _lock: lock }),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) => f,
            Err((_, e)) => {
                return Err(Error::failed(format!("cannot lock {}", path.display()))
                    .with_source(std::io::Error::from(e)))
            }
        };
        tokio::task::spawn_blocking(move || -> Result<LockGuard> {
            let arg = if exclusive {
                FlockArg::LockExclusive
            } else {
                FlockArg::LockShared
            };
            let lock = Flock::lock(f, arg).map_err(|(_, e)| {
                Error::failed(format!("cannot lock {}", path.display()))
                    .with_source(std::io::Error::from(e))
            })?;
            Ok(LockGuard { _lock: lock })
        })
        .await
        .map_err(|e| Error::failed("lock task failed").with_source(e))?
    }

    /// The guest's lock if nobody holds it, without waiting.
    pub fn try_lock_guest(&self, id: NetnsId) -> Result<Option<LockGuard>> {
        let path = self.root.join("locks").join(format!("guest-{id}"));
        let f = open_lock(&path)?;
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(LockGuard { _lock: lock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(Error::failed(format!("cannot lock {}", path.display()))
                .with_source(std::io::Error::from(e))),
        }
    }

    /// Serialises every change to one guest.
    pub async fn lock_guest(&self, id: NetnsId) -> Result<LockGuard> {
        self.lock_file(format!("guest-{id}"), true).await
    }

    /// A lock for anything else that needs one (a PF's VF pool, ...).
    pub async fn lock_named(&self, name: &str) -> Result<LockGuard> {
        self.lock_file(name.replace('/', "_"), true).await
    }

    fn guest_dir(&self, id: NetnsId) -> PathBuf {
        self.root.join("attachments").join(id.to_string())
    }

    fn record_path(&self, id: NetnsId, ifname: &str) -> PathBuf {
        self.guest_dir(id).join(format!("{ifname}.json"))
    }

    pub fn save(&self, rec: &AttachmentRecord) -> Result<()> {
        let dir = self.guest_dir(rec.guest.netns);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(format!("cannot create {}", dir.display())))?;
        let path = self.record_path(rec.guest.netns, &rec.interface);
        let json = serde_json::to_vec_pretty(rec)
            .map_err(|e| Error::failed("cannot encode record").with_source(e))?;
        write_atomic(&path, &json)
    }

    pub fn remove(&self, id: NetnsId, ifname: &str) -> Result<()> {
        let p = self.record_path(id, ifname);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(format!("cannot remove {}", p.display()))(e)),
        }
        // Leaves the directory if another record is still there.
        let _ = fs::remove_dir(self.guest_dir(id));
        Ok(())
    }

    pub fn load(&self, id: NetnsId, ifname: &str) -> Result<Option<AttachmentRecord>> {
        read_record(&self.record_path(id, ifname))
    }

    /// The records of one guest namespace, sorted by interface name.
    pub fn guest_records(&self, id: NetnsId) -> Result<Vec<AttachmentRecord>> {
        read_dir_records(&self.guest_dir(id))
    }

    /// Every record, grouped by guest.
    pub fn all(&self) -> Result<Vec<AttachmentRecord>> {
        let base = self.root.join("attachments");
        let rd = match fs::read_dir(&base) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(format!("cannot read {}", base.display()))(e)),
        };
        let mut out = Vec::new();
        for ent in rd.flatten() {
            out.extend(read_dir_records(&ent.path())?);
        }
        out.sort_by(|a, b| {
            (a.guest.name.as_str(), a.interface.as_str())
                .cmp(&(b.guest.name.as_str(), b.interface.as_str()))
        });
        Ok(out)
    }
}

fn open_lock(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(format!("cannot open lock {}", path.display())))
}

fn read_record(p: &Path) -> Result<Option<AttachmentRecord>> {
    match fs::read(p) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            Error::failed(format!("corrupt state record {}", p.display())).with_source(e)
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(format!("cannot read {}", p.display()))(e)),
    }
}

fn read_dir_records(dir: &Path) -> Result<Vec<AttachmentRecord>> {
    let rd = match fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(format!("cannot read {}", dir.display()))(e)),
    };
    let mut out = Vec::new();
    for ent in rd.flatten() {
        let p = ent.path();
        if p.extension().and_then(|x| x.to_str()) == Some("json") {
            // One unreadable record must not hide the others from list, gc
            // and detach: it is reported, with its path, and skipped.
            match read_record(&p) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(e) => tracing::warn!("skipping a state record: {e}"),
            }
        }
    }
    out.sort_by(|a, b| a.interface.cmp(&b.interface));
    Ok(out)
}

/// Writes `data` to `path` through a uniquely named temporary file and a rename.
///
/// The rename makes the write atomic for any reader and across a killed
/// process, which is what the state needs. There is no fsync: what the state
/// describes (namespaces, links, leases) does not outlive a reboot either,
/// and on hosts whose /run is not a tmpfs a sync per attach costs more than
/// the attach itself.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        pipework_model::random::hex(8)
    ));
    let res = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map_err(io_err(format!("cannot write {}", path.display())))
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Seconds and nanoseconds since the epoch, for records.
pub fn now() -> (u64, u32) {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_secs(), d.subsec_nanos()))
        .unwrap_or((0, 0))
}

/// Seconds since the epoch, for records.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
