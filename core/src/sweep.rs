//! Files in the state directory that nothing needs any more: the temporary
//! files of writers killed between writing and renaming, and the lock files
//! of guests nothing refers to. `gc` removes them, and the daemon's start
//! the temporary files.

use std::time::{Duration, SystemTime};

use tracing::warn;

use pipework_base::error::Result;
use pipework_base::state::StateDir;
use pipework_base::statefs::parse_temp_name;

/// A temporary file this old is abandoned even if a process with its pid
/// runs (the pid was reused): a write takes milliseconds.
const TEMP_MAX_AGE: Duration = Duration::from_secs(3600);

/// The directories where [`pipework_base::statefs::Dir::write_atomic`]
/// writes; `*` is every directory in the one before.
const TEMP_DIRS: &[&str] = &[
    "",
    "attachments/*",
    "bridges",
    "leases",
    "pending",
    "compat/*",
    "vlans/*",
    "vlans/*/users",
    "shims/*",
];

fn alive(pid: i32) -> bool {
    // Signal 0 only asks whether it exists; EPERM: it does, not ours.
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Expands `*` in a pattern into the directories that exist.
fn expand(state: &StateDir, pattern: &str) -> Result<Vec<String>> {
    let mut out = vec![String::new()];
    for part in pattern.split('/').filter(|p| !p.is_empty()) {
        let mut next = Vec::new();
        for base in out {
            let join = |n: &str| {
                if base.is_empty() {
                    n.to_string()
                } else {
                    format!("{base}/{n}")
                }
            };
            if part == "*" {
                if let Some(d) = state.dir(&base, false)? {
                    for (name, st) in d.entries()? {
                        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                            next.push(join(&name));
                        }
                    }
                }
            } else {
                next.push(join(part));
            }
        }
        out = next;
    }
    Ok(out)
}

/// Removes the temporary files whose writer is dead (or that are older than
/// an hour). Returns their paths relative to the state root.
pub fn temp_files(state: &StateDir) -> Result<Vec<String>> {
    let me = std::process::id() as i32;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut removed = Vec::new();
    for pattern in TEMP_DIRS {
        for rel in expand(state, pattern)? {
            let Some(dir) = state.dir(&rel, false)? else {
                continue;
            };
            for (name, st) in dir.entries()? {
                let Some(pid) = parse_temp_name(&name) else {
                    continue;
                };
                if st.st_mode & libc::S_IFMT != libc::S_IFREG || pid == me {
                    continue;
                }
                let old = now - st.st_mtime > TEMP_MAX_AGE.as_secs() as i64;
                if alive(pid) && !old {
                    continue;
                }
                dir.unlink(&name)?;
                removed.push(if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                });
            }
        }
    }
    Ok(removed)
}

/// Removes `locks/guest-<netns>` files that nobody holds and that no record,
/// pending attach or DHCP client of that namespace needs. Each is checked
/// while holding it (non-blocking), and the lock-taking code re-checks after
/// locking that the file it holds is still the one in `locks/`, so removing
/// one never lets two runs hold "the" lock. Returns the paths removed.
pub fn guest_locks(state: &StateDir) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in state.list("locks")? {
        let Some(ino) = name.strip_prefix("guest-") else {
            continue;
        };
        if ino.is_empty() || !ino.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let needed = || -> Result<bool> {
            if !state.list(&format!("attachments/{ino}"))?.is_empty() {
                return Ok(true);
            }
            let prefix = format!("{ino}-");
            for dir in ["pending", "compat"] {
                if state.list(dir)?.iter().any(|n| n.starts_with(&prefix)) {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        // Cheap first look without the lock; the answer that counts is the
        // one asked while holding it.
        if needed()? {
            continue;
        }
        let mut err = None;
        let gone = state.remove_lock_if(&name, || match needed() {
            Ok(n) => !n,
            Err(e) => {
                err = Some(e);
                false
            }
        })?;
        if let Some(e) = err {
            warn!("keeping locks/{name}: {e}");
        }
        if gone {
            removed.push(format!("locks/{name}"));
        }
    }
    Ok(removed)
}

/// Lock files of shared objects (`bridge-*`, `vlan-*`, `shim-*`) with no
/// account left in the state (no marker, no user): nobody holds them, and
/// removing one is safe even if somebody is about to take it (the locker
/// checks, once it holds the lock, that the file is still the one linked;
/// see `StateDir::remove_lock_if`). Without this, `locks/` grows by one
/// file per bridge ever used.
pub fn shared_locks(state: &StateDir) -> Result<Vec<String>> {
    use pipework_base::shared::SharedKind;
    let mut removed = Vec::new();
    for name in state.list("locks")? {
        let (kind, object) = if let Some(o) = name.strip_prefix("bridge-") {
            (SharedKind::Bridge, o)
        } else if let Some(o) = name.strip_prefix("vlan-") {
            (SharedKind::Vlan, o)
        } else if let Some(o) = name.strip_prefix("shim-") {
            (SharedKind::Shim, o)
        } else {
            continue;
        };
        let shared = state.shared(kind, object);
        let unused =
            || shared.created().is_none() && shared.users().map(|u| u.is_empty()).unwrap_or(false);
        if state.remove_lock_if(&name, unused)? {
            removed.push(format!("locks/{name}"));
        }
    }
    Ok(removed)
}
