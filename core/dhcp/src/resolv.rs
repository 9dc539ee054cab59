//! The guest's `resolv.conf`, written only when asked (`--dns`) and never the
//! host's.
//!
//! A container's file is reached through `/proc/<pid>/root` with `openat2`
//! and `RESOLVE_IN_ROOT`, so a symlink inside the container (say to
//! `/etc/shadow`) resolves inside the container's tree, not the host's. A
//! named namespace has no root of its own: its file is
//! `/etc/netns/<name>/resolv.conf`, which `ip netns exec` mounts over
//! `/etc/resolv.conf`. A guest that shares the host's mount namespace has no
//! file of its own, so `--dns` is refused for it; and before every write the
//! file is compared with the host's own, byte for inode.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::lease::Lease;
use pipework_base::error::{Error, Result};
use pipework_base::guest::{Guest, NETNS_RUN_DIR};
use pipework_model::GuestRef;

pub use pipework_base::journal::ResolvTarget;

fn mnt_ns(pid: &str) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(|m| m.ino())
}

/// Chooses the file for `guest`, or says why it has none.
pub fn target_for(guest: &Guest) -> Result<ResolvTarget> {
    let named = match &guest.info.reference {
        GuestRef::Netns(n) => Some(n.clone()),
        GuestRef::Auto(n) if Path::new(NETNS_RUN_DIR).join(n).exists() => Some(n.clone()),
        GuestRef::Path(p) => p
            .strip_prefix(NETNS_RUN_DIR)
            .ok()
            .and_then(|r| r.to_str())
            .filter(|r| !r.is_empty() && !r.contains('/'))
            .map(String::from),
        _ => None,
    };
    if let Some(name) = named {
        return Ok(ResolvTarget::NetnsEtc { name });
    }
    let Some(pid) = guest.info.pid else {
        return Err(Error::usage(
            "--dns needs a guest with a filesystem of its own (a container or a process), or a named netns",
        ));
    };
    let theirs = mnt_ns(&pid.to_string());
    if theirs.is_none() || theirs == mnt_ns("self") || theirs == mnt_ns("1") {
        return Err(Error::usage(format!(
            "--dns: {} shares the host's filesystem, so its resolv.conf is the host's; refusing to write it",
            guest.name()
        )));
    }
    let target = ResolvTarget::ProcRoot { pid };
    // The mount namespace check misses a guest that has one of its own but
    // still sees the host's file (a copy of the host's mounts).
    if let Err(e) = open(&target, libc::O_RDONLY) {
        if e.kind() == io::ErrorKind::PermissionDenied {
            return Err(Error::usage(format!(
                "--dns: {} sees the host's resolv.conf as its own; refusing to write it",
                guest.name()
            )));
        }
    }
    Ok(target)
}

/// The file's contents for the leases of one interface: the IPv4 lease's
/// search domains and servers first, then the IPv6 one's.
pub fn render(leases: &[&Lease], ifname: &str) -> String {
    let mut leases = leases.to_vec();
    leases.sort_by_key(|l| l.address.addr().is_ipv6());
    let what = if leases.len() > 1 { "leases" } else { "lease" };
    let mut s = format!("# Written by pipework from the DHCP {what} of {ifname}.\n");
    let mut search: Vec<&str> = Vec::new();
    for d in leases.iter().flat_map(|l| &l.search) {
        if !search.contains(&d.as_str()) {
            search.push(d);
        }
    }
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    // The resolver reads at most three (MAXNS): each family's first server
    // before any family's second, so both families are asked.
    let mut servers: Vec<IpAddr> = Vec::new();
    for i in 0.. {
        let round: Vec<IpAddr> = leases
            .iter()
            .filter_map(|l| l.dns.get(i).copied())
            .collect();
        if round.is_empty() {
            break;
        }
        for a in round {
            if !servers.contains(&a) {
                servers.push(a);
            }
        }
    }
    for d in servers.iter().take(3) {
        s.push_str(&format!("nameserver {d}\n"));
    }
    s
}

fn netns_file(name: &str) -> PathBuf {
    PathBuf::from("/etc/netns").join(name).join("resolv.conf")
}

/// Opens the container's file below its root, symlinks resolved inside it.
fn open_in_root(pid: u32, flags: libc::c_int) -> io::Result<File> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use nix::sys::stat::Mode;
    let root = File::open(format!("/proc/{pid}/root"))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let mode = if flags.contains(OFlag::O_CREAT) {
        Mode::from_bits_truncate(0o644)
    } else {
        Mode::empty()
    };
    let how = OpenHow::new()
        .flags(flags)
        .mode(mode)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(&root, c"etc/resolv.conf", how).map_err(io::Error::from)?;
    Ok(File::from(fd))
}

/// Unlinks `etc/resolv.conf` below the root of process `pid`, unless it is
/// the host's own file.
fn remove_in_root(pid: u32) -> io::Result<()> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use nix::unistd::{unlinkat, UnlinkatFlags};
    let root = File::open(format!("/proc/{pid}/root"))?;
    let how = OpenHow::new()
        .flags(OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let etc = openat2(&root, c"etc", how).map_err(io::Error::from)?;
    let file = openat2(
        &etc,
        c"resolv.conf",
        OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS),
    )
    .map_err(io::Error::from)?;
    not_the_hosts(&File::from(file))?;
    unlinkat(&etc, c"resolv.conf", UnlinkatFlags::NoRemoveDir).map_err(io::Error::from)
}

/// Refuses a file that is the host's own `resolv.conf`.
fn not_the_hosts(f: &File) -> io::Result<()> {
    let m = f.metadata()?;
    for host in ["/etc/resolv.conf", "/proc/1/root/etc/resolv.conf"] {
        if let Ok(h) = fs::metadata(host) {
            if h.dev() == m.dev() && h.ino() == m.ino() {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "the guest's resolv.conf is the host's; not touching it",
                ));
            }
        }
    }
    Ok(())
}

fn open(target: &ResolvTarget, flags: libc::c_int) -> io::Result<File> {
    let f = match target {
        ResolvTarget::ProcRoot { pid } => open_in_root(*pid, flags)?,
        ResolvTarget::NetnsEtc { name } => {
            let p = netns_file(name);
            let mut o = fs::OpenOptions::new();
            o.read(flags & libc::O_ACCMODE == libc::O_RDONLY);
            o.write(flags & libc::O_ACCMODE == libc::O_WRONLY);
            o.create(flags & libc::O_CREAT != 0);
            o.truncate(flags & libc::O_TRUNC != 0);
            std::os::unix::fs::OpenOptionsExt::custom_flags(&mut o, libc::O_NOFOLLOW);
            o.open(p)?
        }
    };
    not_the_hosts(&f)?;
    Ok(f)
}

/// The current contents, `None` when there is no file.
pub fn read(target: &ResolvTarget) -> io::Result<Option<String>> {
    match open(target, libc::O_RDONLY) {
        Ok(f) => {
            let mut s = String::new();
            f.take(64 * 1024).read_to_string(&mut s)?;
            Ok(Some(s))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the contents in place: a container's `resolv.conf` is usually a
/// bind mount, which a rename cannot replace.
pub fn write(target: &ResolvTarget, content: &str) -> io::Result<()> {
    if let ResolvTarget::NetnsEtc { name } = target {
        let dir = netns_file(name);
        if let Some(d) = dir.parent() {
            fs::create_dir_all(d)?;
        }
    }
    let mut f = open(target, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)?;
    f.write_all(content.as_bytes())?;
    f.sync_data()
}

/// Puts `previous` back, or removes the file we created.
pub fn restore(target: &ResolvTarget, previous: Option<&str>) -> io::Result<()> {
    match (previous, target) {
        (Some(p), _) => match write(target, p) {
            // The guest went away with its files.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        },
        (None, ResolvTarget::NetnsEtc { name }) => {
            let p = netns_file(name);
            match fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            if let Some(d) = p.parent() {
                let _ = fs::remove_dir(d);
            }
            Ok(())
        }
        (None, ResolvTarget::ProcRoot { pid }) => {
            // There was none: remove the one we made, below the container's
            // root (its own `/etc`, symlinks resolved inside it). A mount
            // point cannot be unlinked (somebody bound a file there since):
            // it is emptied instead.
            match remove_in_root(*pid) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => match write(target, "") {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    r => r,
                },
                Err(e) => Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(address: &str, dns: &[&str], search: &[&str]) -> Lease {
        Lease {
            address: address.parse().unwrap(),
            server: "10.0.0.1".parse().unwrap(),
            server_duid: vec![],
            routers: vec![],
            routes: vec![],
            dns: dns.iter().map(|s| s.parse().unwrap()).collect(),
            search: search.iter().map(|s| s.to_string()).collect(),
            mtu: None,
            acquired_at: 0,
            lease_secs: 60,
            preferred_secs: 60,
            t1: 30,
            t2: 50,
        }
    }

    #[test]
    fn renders_search_and_at_most_three_servers() {
        let l = lease(
            "10.0.0.5/24",
            &["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"],
            &["a.test", "b.test"],
        );
        let s = render(&[&l], "eth1");
        assert!(s.contains("search a.test b.test\n"));
        assert_eq!(s.matches("nameserver").count(), 3);
    }

    #[test]
    fn both_families_share_the_three_servers_v4_first() {
        let v4 = lease(
            "10.0.0.5/24",
            &["10.0.0.1", "10.0.0.2", "10.0.0.3"],
            &["a.test"],
        );
        let v6 = lease(
            "fd00::5/128",
            &["fd00::1", "fd00::2"],
            &["a.test", "six.test"],
        );
        let s = render(&[&v6, &v4], "eth1");
        let servers: Vec<&str> = s
            .lines()
            .filter_map(|l| l.strip_prefix("nameserver "))
            .collect();
        assert_eq!(servers, ["10.0.0.1", "fd00::1", "10.0.0.2"]);
        assert!(s.contains("search a.test six.test\n"), "{s}");
        assert!(s.contains("leases of eth1"), "{s}");
    }
}
