//! Whether a network namespace is still alive, asked in a way that does not
//! depend on the daemon's mount namespace.
//!
//! The daemon holds an fd of every guest's namespace it keeps a lease for,
//! so the namespace cannot die under it, and holding it says nothing about
//! whether anyone else still uses it. A namespace lives on while something
//! other than us refers to it, and the kernel (before Linux 6.19's `listns`
//! and its active references, which are not there yet on the kernels we
//! support) gives no count of those. So we look at what can refer to it,
//! host-wide, through `/proc`, which does not depend on where our own
//! mounts are:
//!
//! 1. a process in it (`/proc/<pid>/ns/net`);
//! 2. a bind mount of it in any mount namespace (`/proc/<pid>/mountinfo`,
//!    read once per distinct mount namespace, lists it as `net:[<inode>]`):
//!    how `ip netns add`, CNI runtimes and Podman keep namespaces with no
//!    process, wherever their mounts were made;
//! 3. an fd of it held by another process (`/proc/<pid>/fd/*` reads
//!    `net:[<inode>]`), asked only when 1 and 2 found nothing.
//!
//! Our own process is left out (its fd is the one we hold), and so are
//! processes whose namespaces we may not read. When `/proc` cannot be read
//! at all, or the daemon runs outside the initial PID namespace (its `/proc`
//! shows only some processes), the namespace counts as alive: a lease kept
//! too long expires on its own, a lease released under a live guest takes
//! its address away. Checking only PID 1's mount table (the initial mount
//! namespace) would miss namespaces mounted in another mount namespace
//! (a container engine's); checking only processes would miss every `ip
//! netns add` guest, which has none.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use pipework_sys::netns::{Netns, NetnsId};

fn pids() -> Option<Vec<u32>> {
    let rd = fs::read_dir("/proc").ok()?;
    Some(
        rd.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|p| *p != std::process::id())
            .collect(),
    )
}

fn ns_ino(pid: u32, ns: &str) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/{ns}"))
        .ok()
        .map(|m| m.ino())
}

/// Mount points of `net:[ino]` in a mountinfo text.
fn nsfs_mounts<'a>(mountinfo: &'a str, target: &'a str) -> impl Iterator<Item = String> + 'a {
    mountinfo.lines().filter_map(move |l| {
        let mut f = l.split(' ');
        let root = f.nth(3)?;
        let point = f.next()?;
        (root == target).then(|| unescape(point))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What refers to the namespace, in the order it is cheapest to find.
enum Found {
    Process(u32),
    Mount { pid: u32, point: String },
    Fd,
}

fn find_ref(id: NetnsId, with_fds: bool) -> Option<Option<Found>> {
    let pids = pids()?;
    let target = format!("net:[{}]", id.0);
    let mut seen_mnt = HashSet::new();
    for &pid in &pids {
        if ns_ino(pid, "net") == Some(id.0) {
            return Some(Some(Found::Process(pid)));
        }
        let Some(mnt) = ns_ino(pid, "mnt") else {
            continue;
        };
        if !seen_mnt.insert(mnt) {
            continue;
        }
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
            // Gone meanwhile: another process of its namespace may say.
            seen_mnt.remove(&mnt);
            continue;
        };
        let point = nsfs_mounts(&text, &target).next();
        if let Some(point) = point {
            return Some(Some(Found::Mount { pid, point }));
        }
    }
    if with_fds {
        for &pid in &pids {
            let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            for e in rd.flatten() {
                if fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == target.as_str()) {
                    return Some(Some(Found::Fd));
                }
            }
        }
    }
    Some(None)
}

/// The inode of the initial PID namespace (`PROC_PID_INIT_INO`, fixed by
/// the kernel).
const INITIAL_PID_NS: u64 = 0xEFFF_FFFC;

/// False only when nothing but us refers to the namespace any more (see the
/// module's doc); true when that cannot be told, which includes a daemon
/// outside the initial PID namespace: its `/proc` does not show every
/// process.
pub fn netns_alive(id: NetnsId) -> bool {
    let pid_ns = fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino());
    if pid_ns != Some(INITIAL_PID_NS) {
        return true;
    }
    match find_ref(id, true) {
        None => true,
        Some(found) => found.is_some(),
    }
}

/// Opens a namespace by its inode wherever it is kept: through a process in
/// it, or through its bind mount as seen from a process of the mount
/// namespace that has it (`/proc/<pid>/root/<mount point>`), so a daemon in
/// another mount namespace still finds a guest named in `/run/netns`.
pub fn find_netns(id: NetnsId) -> Option<Netns> {
    let path: PathBuf = match find_ref(id, false)?? {
        Found::Process(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
        Found::Mount { pid, point } => {
            Path::new(&format!("/proc/{pid}/root")).join(point.trim_start_matches('/'))
        }
        Found::Fd => return None,
    };
    Netns::open(&path).ok().filter(|ns| ns.id() == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nsfs_mounts_in_mountinfo() {
        let text = "36 35 0:4 net:[4026532288] /run/netns/a\\040b rw shared:5 - nsfs nsfs rw\n\
                    37 35 0:4 net:[4026532300] /run/netns/c rw - nsfs nsfs rw\n\
                    22 1 0:21 / /run rw - tmpfs tmpfs rw\n";
        let m: Vec<String> = nsfs_mounts(text, "net:[4026532288]").collect();
        assert_eq!(m, vec!["/run/netns/a b".to_string()]);
        assert_eq!(nsfs_mounts(text, "net:[1]").count(), 0);
    }

    #[test]
    fn our_own_namespace_is_alive() {
        let me = Netns::current().unwrap();
        // Other processes (the test runner's parent at least) share it.
        assert!(netns_alive(me.id()));
    }
}
