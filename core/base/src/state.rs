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
//!
//! Every file and directory is reached through [`crate::statefs`]: the
//! directories must be ours alone, nothing is followed if it is a link, and
//! what is created is 0700/0600. Other crates use the relative-path methods
//! here (`write_file`, `read_file`, `open_file`, `list`, ...) and never build
//! absolute state paths to open themselves.

use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::guest::GuestInfo;
use crate::journal::Journal;
pub use crate::statefs::{Dir, OpenHow};
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
///
/// Every access goes through [`crate::statefs`]: the directory and each one
/// in it must belong to us and be writable by nobody else (else a usage
/// error naming the path), and nothing beneath it is followed if it is a
/// symbolic link.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
    /// What [`StateDir::open`] verified (the root, its known directories
    /// that exist), held for this value's life (one command or daemon pass)
    /// instead of verified again on every access (~20 system calls an
    /// attach); a swap of the directory behind our back cannot redirect it.
    verified: Option<Verified>,
}

#[derive(Clone, Debug)]
struct Verified {
    root: Dir,
    known: Vec<(&'static str, Dir)>,
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::failed(what).with_source(e)
}

/// The directories of the state root, verified whenever it is opened.
const KNOWN_DIRS: &[&str] = &[
    "attachments",
    "bridges",
    "locks",
    "pending",
    "leases",
    "compat",
    "vlans",
    "shims",
];
/// Those [`StateDir::open`] creates.
const CREATED_DIRS: &[&str] = &["attachments", "bridges", "locks"];

/// `a/b/c` -> (`a/b`, `c`).
fn split(rel: &str) -> (&str, &str) {
    match rel.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", rel),
    }
}

impl StateDir {
    /// Opens the state directory, creating it (mode 0700) if needed.
    pub fn open(root: &Path) -> Result<StateDir> {
        let dir = Dir::open_root(root, true)?
            .ok_or_else(|| Error::failed(format!("cannot create {}", root.display())))?;
        let mut known = Vec::new();
        for sub in KNOWN_DIRS {
            if let Some(d) = dir.sub(sub, CREATED_DIRS.contains(sub))? {
                known.push((*sub, d));
            }
        }
        Ok(StateDir {
            root: root.to_path_buf(),
            verified: Some(Verified { root: dir, known }),
        })
    }

    /// Opens for reading only; a missing directory reads as empty.
    pub fn open_read(root: &Path) -> StateDir {
        StateDir {
            root: root.to_path_buf(),
            verified: None,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The state root, verified; `None` if it does not exist and `create`
    /// is false.
    pub fn root_dir(&self, create: bool) -> Result<Option<Dir>> {
        match &self.verified {
            Some(v) => Ok(Some(v.root.clone())),
            None => Dir::open_root(&self.root, create),
        }
    }

    /// A directory beneath the root (`""` is the root), every directory on
    /// the way verified; created (0700) when `create`.
    pub fn dir(&self, rel: &str, create: bool) -> Result<Option<Dir>> {
        if let Some(v) = &self.verified {
            let (first, rest) = rel.split_once('/').unwrap_or((rel, ""));
            if let Some((_, d)) = v.known.iter().find(|(n, _)| *n == first) {
                return if rest.is_empty() {
                    Ok(Some(d.clone()))
                } else {
                    d.walk(rest, create)
                };
            }
        }
        let Some(root) = self.root_dir(create)? else {
            return Ok(None);
        };
        if rel.is_empty() {
            return Ok(Some(root));
        }
        root.walk(rel, create)
    }

    /// Refuses (usage error, naming the path) a state directory that is not
    /// ours alone, or whose known directories are not; fine when missing.
    pub fn check(&self) -> Result<()> {
        let Some(root) = self.root_dir(false)? else {
            return Ok(());
        };
        for sub in KNOWN_DIRS {
            root.sub(sub, false)?;
        }
        Ok(())
    }

    /// Writes a file beneath the root atomically (temporary file and
    /// rename), creating its directories.
    pub fn write_file(&self, rel: &str, data: &[u8]) -> Result<()> {
        let (d, name) = split(rel);
        self.dir(d, true)?
            .ok_or_else(|| Error::failed(format!("cannot create {}", self.root.join(d).display())))?
            .write_atomic(name, data)
    }

    /// A file's content; `None` if it (or its directory) does not exist.
    pub fn read_file(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let (d, name) = split(rel);
        match self.dir(d, false)? {
            Some(dir) => dir.read(name),
            None => Ok(None),
        }
    }

    /// Opens a file beneath the root (see [`OpenHow`]); its directories are
    /// created unless reading.
    pub fn open_file(&self, rel: &str, how: OpenHow) -> Result<Option<File>> {
        let (d, name) = split(rel);
        match self.dir(d, how != OpenHow::Read)? {
            Some(dir) => dir.open(name, how),
            None => Ok(None),
        }
    }

    /// Removes a file (a symbolic link itself, never its target); a missing
    /// one is fine.
    pub fn remove_file(&self, rel: &str) -> Result<()> {
        let (d, name) = split(rel);
        match self.dir(d, false)? {
            Some(dir) => dir.unlink(name),
            None => Ok(()),
        }
    }

    /// Removes a directory if it is empty.
    pub fn remove_dir(&self, rel: &str) -> Result<()> {
        let (d, name) = split(rel);
        match self.dir(d, false)? {
            Some(dir) => dir.rmdir(name),
            None => Ok(()),
        }
    }

    /// Removes a directory and everything in it, following no link.
    pub fn remove_tree(&self, rel: &str) -> Result<()> {
        let (d, name) = split(rel);
        match self.dir(d, false)? {
            Some(dir) => dir.remove_tree(name),
            None => Ok(()),
        }
    }

    /// The names in a directory, sorted; none if it does not exist.
    pub fn list(&self, rel: &str) -> Result<Vec<String>> {
        match self.dir(rel, false)? {
            Some(dir) => Ok(dir.entries()?.into_iter().map(|(n, _)| n).collect()),
            None => Ok(Vec::new()),
        }
    }

    pub(crate) async fn lock_file(&self, file: String, exclusive: bool) -> Result<LockGuard> {
        let dir = self
            .dir("locks", true)?
            .ok_or_else(|| Error::failed(format!("cannot create {}/locks", self.root.display())))?;
        loop {
            let path = dir.path().join(&file);
            let f = dir
                .open(&file, OpenHow::Create)?
                .ok_or_else(|| Error::failed(format!("cannot open lock {}", path.display())))?;
            // Uncontended is the common case: take it here without a thread.
            let try_arg = if exclusive {
                FlockArg::LockExclusiveNonblock
            } else {
                FlockArg::LockSharedNonblock
            };
            let lock = match Flock::lock(f, try_arg) {
                Ok(lock) => lock,
                Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                    let p = path.clone();
                    tokio::task::spawn_blocking(move || -> Result<Flock<File>> {
                        let arg = if exclusive {
                            FlockArg::LockExclusive
                        } else {
                            FlockArg::LockShared
                        };
                        Flock::lock(f, arg).map_err(|(_, e)| {
                            Error::failed(format!("cannot lock {}", p.display()))
                                .with_source(std::io::Error::from(e))
                        })
                    })
                    .await
                    .map_err(|e| Error::failed("lock task failed").with_source(e))??
                }
                Err((_, e)) => {
                    return Err(Error::failed(format!("cannot lock {}", path.display()))
                        .with_source(std::io::Error::from(e)))
                }
            };
            // `gc` removes the lock files nobody uses, under the lock: if it
            // removed this one between our open and our lock, the lock we
            // hold is on a file nobody else will open. Take the new one.
            if still_linked(&dir, &file, &lock)? {
                return Ok(LockGuard { _lock: lock });
            }
        }
    }

    /// Removes `locks/<name>` if nobody holds it and `unused` (asked while
    /// holding it) says nothing needs it. Returns whether it was removed.
    pub fn remove_lock_if(&self, name: &str, unused: impl FnOnce() -> bool) -> Result<bool> {
        let Some(dir) = self.dir("locks", false)? else {
            return Ok(false);
        };
        let Some(f) = dir.open(name, OpenHow::Read)? else {
            return Ok(false);
        };
        let lock = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err(_) => return Ok(false),
        };
        if !still_linked(&dir, name, &lock)? || !unused() {
            return Ok(false);
        }
        dir.unlink(name)?;
        drop(lock);
        Ok(true)
    }

    /// The guest's lock if nobody holds it, without waiting.
    pub fn try_lock_guest(&self, id: NetnsId) -> Result<Option<LockGuard>> {
        let file = format!("guest-{id}");
        let dir = self
            .dir("locks", true)?
            .ok_or_else(|| Error::failed(format!("cannot create {}/locks", self.root.display())))?;
        let path = dir.path().join(&file);
        let f = dir
            .open(&file, OpenHow::Create)?
            .ok_or_else(|| Error::failed(format!("cannot open lock {}", path.display())))?;
        let lock = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, e)) => {
                return Err(Error::failed(format!("cannot lock {}", path.display()))
                    .with_source(std::io::Error::from(e)))
            }
        };
        // Removed by gc between our open and our lock: nobody holds the new one.
        if !still_linked(&dir, &file, &lock)? {
            return Ok(None);
        }
        Ok(Some(LockGuard { _lock: lock }))
    }

    /// Serialises every change to one guest.
    pub async fn lock_guest(&self, id: NetnsId) -> Result<LockGuard> {
        self.lock_file(format!("guest-{id}"), true).await
    }

    /// A lock for anything else that needs one (a PF's VF pool, ...).
    pub async fn lock_named(&self, name: &str) -> Result<LockGuard> {
        self.lock_file(name.replace('/', "_"), true).await
    }

    fn guest_rel(id: NetnsId) -> String {
        format!("attachments/{id}")
    }

    pub fn save(&self, rec: &AttachmentRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(rec)
            .map_err(|e| Error::failed("cannot encode record").with_source(e))?;
        self.dir(&Self::guest_rel(rec.guest.netns), true)?
            .ok_or_else(|| Error::failed("cannot create the guest's state directory"))?
            .write_atomic(&format!("{}.json", rec.interface), &json)
    }

    pub fn remove(&self, id: NetnsId, ifname: &str) -> Result<()> {
        let Some(dir) = self.dir("attachments", false)? else {
            return Ok(());
        };
        let name = id.to_string();
        if let Some(g) = dir.sub(&name, false)? {
            g.unlink(&format!("{ifname}.json"))?;
        }
        // Leaves the directory if another record is still there.
        dir.rmdir(&name)
    }

    pub fn load(&self, id: NetnsId, ifname: &str) -> Result<Option<AttachmentRecord>> {
        match self.dir(&Self::guest_rel(id), false)? {
            Some(d) => read_record(&d, &format!("{ifname}.json")),
            None => Ok(None),
        }
    }

    /// The records of one guest namespace, sorted by interface name.
    pub fn guest_records(&self, id: NetnsId) -> Result<Vec<AttachmentRecord>> {
        match self.dir(&Self::guest_rel(id), false)? {
            Some(d) => read_dir_records(&d),
            None => Ok(Vec::new()),
        }
    }

    /// Every record, grouped by guest.
    pub fn all(&self) -> Result<Vec<AttachmentRecord>> {
        let Some(base) = self.dir("attachments", false)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (name, _) in base.entries()? {
            if let Some(d) = base.sub(&name, false)? {
                out.extend(read_dir_records(&d)?);
            }
        }
        out.sort_by(|a, b| {
            (a.guest.name.as_str(), a.interface.as_str())
                .cmp(&(b.guest.name.as_str(), b.interface.as_str()))
        });
        Ok(out)
    }
}

/// Whether `name` in `dir` is still the file `lock` holds.
fn still_linked(dir: &Dir, name: &str, lock: &Flock<File>) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = lock.metadata().map_err(io_err(format!(
        "cannot stat {}",
        dir.path().join(name).display()
    )))?;
    Ok(dir
        .stat(name)?
        .is_some_and(|st| st.st_ino == held.ino() && st.st_dev == held.dev()))
}

fn read_record(dir: &Dir, name: &str) -> Result<Option<AttachmentRecord>> {
    match dir.read(name)? {
        Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            Error::failed(format!(
                "corrupt state record {}",
                dir.path().join(name).display()
            ))
            .with_source(e)
        }),
        None => Ok(None),
    }
}

fn read_dir_records(dir: &Dir) -> Result<Vec<AttachmentRecord>> {
    let mut out = Vec::new();
    for (name, _) in dir.entries()? {
        if name.ends_with(".json") {
            // One unreadable record must not hide the others from list, gc
            // and detach: it is reported, with its path, and skipped. A
            // record that is not a plain file (a symbolic link) was not
            // written by pipework: that is refused, like a directory others
            // can write to.
            match read_record(dir, &name) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(e) if e.kind() == ErrorKind::Usage => return Err(e),
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
///
/// Neither the temporary file nor `path` is followed if it is a symbolic
/// link, but the directory is taken as given: for files beneath the state
/// directory use [`StateDir::write_file`], which verifies every directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
    else {
        return Err(Error::failed(format!("cannot write {}", path.display())));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    Dir::open_unverified(parent)?.write_atomic(name, data)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A private state root in the temporary directory, removed on drop.
    struct Tmp(PathBuf);

    impl Tmp {
        fn new(tag: &str) -> Tmp {
            let p = std::env::temp_dir()
                .join(format!("pipework-state-test-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            Tmp(p)
        }
    }

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Whether someone holds `locks/<name>` (a non-blocking try fails).
    fn held(root: &Path, name: &str) -> bool {
        let f = File::open(root.join("locks").join(name)).unwrap();
        Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_file_removed_while_someone_waits_for_it_is_taken_anew() {
        let t = Tmp::new("lockrace");
        let state = StateDir::open(&t.0).unwrap();
        let name = "guest-42";
        // gc's part: hold the file, without waiting.
        let path = t.0.join("locks").join(name);
        std::fs::File::create(&path).unwrap();
        let gc = Flock::lock(File::open(&path).unwrap(), FlockArg::LockExclusiveNonblock).unwrap();
        // An attach opens the same file and waits for it.
        let s2 = state.clone();
        let waiter = tokio::spawn(async move { s2.lock_guest(NetnsId(42)).await });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!waiter.is_finished());
        // gc finds it unused, removes it and lets go.
        std::fs::remove_file(&path).unwrap();
        drop(gc);
        let guard = waiter.await.unwrap().unwrap();
        // The attach holds the file that is in locks/ now, so the next one
        // to come waits for it (it would not, had it kept the removed one).
        assert!(path.exists());
        assert!(held(&t.0, name));
        drop(guard);
        assert!(!held(&t.0, name));
    }

    #[test]
    fn unused_lock_files_are_removed_held_ones_kept() {
        let t = Tmp::new("lockgc");
        let state = StateDir::open(&t.0).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let guard = rt.block_on(state.lock_guest(NetnsId(7))).unwrap();
        assert!(!state.remove_lock_if("guest-7", || true).unwrap());
        drop(guard);
        assert!(!state.remove_lock_if("guest-7", || false).unwrap());
        assert!(state.remove_lock_if("guest-7", || true).unwrap());
        assert!(!t.0.join("locks/guest-7").exists());
    }

    #[test]
    fn links_and_open_directories_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let t = Tmp::new("refuse");
        let state = StateDir::open(&t.0).unwrap();
        std::os::unix::fs::symlink("/etc", t.0.join("attachments/9")).unwrap();
        let e = state.guest_records(NetnsId(9)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert!(e.to_string().contains("attachments/9"), "{e}");
        std::fs::remove_file(t.0.join("attachments/9")).unwrap();
        std::fs::set_permissions(&t.0, std::fs::Permissions::from_mode(0o757)).unwrap();
        let e = StateDir::open(&t.0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert!(e.to_string().contains("mode 757"), "{e}");
    }
}
