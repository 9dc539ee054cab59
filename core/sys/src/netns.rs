//! Network namespaces held by file descriptor.
//!
//! A guest's namespace is opened once and every operation goes through that fd,
//! so a PID that exits and is reused cannot redirect us to another namespace.
//! Code that must *run* inside a namespace (opening a netlink or packet socket,
//! writing a sysctl) does so on a fresh OS thread that calls `setns` and then
//! ends ([`Netns::run`], [`Netns::run_async`]). The one exception is
//! [`Netns::enter_briefly`], for a few non-blocking system calls: the calling
//! thread enters and comes back before anything else can run on it.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sched::{setns, unshare, CloneFlags};
use serde::{Deserialize, Serialize};

/// `NS_GET_NSTYPE` from `<linux/nsfs.h>`: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Identifies a live network namespace: the nsfs inode number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NetnsId(pub u64);

impl std::fmt::Display for NetnsId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An open network namespace.
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
    id: NetnsId,
}

impl Netns {
    /// Opens a namespace file and checks that it really is a network namespace.
    pub fn open(path: &Path) -> io::Result<Netns> {
        let f = File::open(path)?;
        Netns::from_fd(f.into())
    }

    /// Takes ownership of an fd that refers to a network namespace.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Netns> {
        // SAFETY: ioctl on a valid fd with no argument.
        let t = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
        if t < 0 {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::ENOTTY) {
                io::Error::new(io::ErrorKind::InvalidInput, "not a namespace file")
            } else {
                e
            });
        }
        if t != libc::CLONE_NEWNET {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a namespace file, but not a network namespace",
            ));
        }
        let ino = File::from(fd.try_clone()?).metadata()?.ino();
        Ok(Netns {
            fd,
            id: NetnsId(ino),
        })
    }

    /// The namespace of the calling thread.
    pub fn current() -> io::Result<Netns> {
        Netns::open(Path::new("/proc/thread-self/ns/net"))
    }

    /// The identity of the calling thread's namespace, from one `stat`
    /// (for a comparison; no handle kept).
    pub fn current_id() -> io::Result<NetnsId> {
        Ok(NetnsId(
            std::fs::metadata("/proc/thread-self/ns/net")?.ino(),
        ))
    }

    /// A new, empty namespace that lives as long as the returned handle (or
    /// anything else holding it: a bind mount, a process).
    pub fn create_anonymous() -> io::Result<Netns> {
        std::thread::spawn(|| -> io::Result<Netns> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            Netns::current()
        })
        .join()
        .map_err(|_| io::Error::other("namespace thread panicked"))?
    }

    pub fn id(&self) -> NetnsId {
        self.id
    }

    pub fn try_clone(&self) -> io::Result<Netns> {
        Ok(Netns {
            fd: self.fd.try_clone()?,
            id: self.id,
        })
    }

    /// A path that reopens this namespace from any process while we hold it.
    pub fn proc_path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd())
    }

    /// Runs `f` on the calling thread inside this namespace, then takes the
    /// thread back to the namespace it was in.
    ///
    /// Why not a thread, as [`Netns::run`]: starting one (its stack, the
    /// clone, waking the caller when it is done) was the largest part of an
    /// attach's start-up, for two socket() calls. `f` must be short and must
    /// neither block nor await: nothing else runs on the thread meanwhile, so
    /// no other code (a tokio task, a signal handler's effects) ever sees it
    /// in the other namespace. Sockets opened by `f` stay bound to this
    /// namespace after the thread leaves it.
    pub fn enter_briefly<T>(&self, f: impl FnOnce() -> T) -> io::Result<T> {
        let home: OwnedFd = File::open("/proc/thread-self/ns/net")?.into();
        self.enter_briefly_from(home.as_fd(), f)
    }

    /// [`Netns::enter_briefly`] for a caller that already holds the
    /// namespace its thread is in (`home`, e.g. the host's handle an
    /// attach opened), which saves opening it again from `/proc`. The
    /// thread goes back to `home`, so it must be the thread's namespace.
    pub fn enter_briefly_from<T>(
        &self,
        home: BorrowedFd<'_>,
        f: impl FnOnce() -> T,
    ) -> io::Result<T> {
        setns(&self.fd, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        // Taken back on every way out of `f`, unwinding included.
        let _back = GoBack(home);
        Ok(f())
    }

    /// Runs `f` on a new OS thread that has entered this namespace, and waits.
    pub fn run<T, F>(&self, f: F) -> io::Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let fd = self.fd.try_clone()?;
        std::thread::Builder::new()
            .name("pipework-netns".into())
            .spawn(move || -> io::Result<T> {
                setns(&fd, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                Ok(f())
            })?
            .join()
            .map_err(|_| io::Error::other("namespace thread panicked"))?
    }

    /// Like [`Netns::run`], without blocking the async caller.
    pub async fn run_async<T, F>(&self, f: F) -> io::Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let fd = self.fd.try_clone()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("pipework-netns".into())
            .spawn(move || {
                let r = setns(&fd, CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from)
                    .map(|_| f());
                let _ = tx.send(r);
            })?;
        rx.await
            .map_err(|_| io::Error::other("namespace thread panicked"))?
    }
}

/// Takes the thread back to the namespace it came from ([`Netns::enter_briefly`]).
struct GoBack<'a>(BorrowedFd<'a>);

impl Drop for GoBack<'_> {
    fn drop(&mut self) {
        if let Err(e) = setns(self.0, CloneFlags::CLONE_NEWNET) {
            // Going on would make every later link, address and socket of
            // this process in the other namespace (a guest's, usually).
            // Nothing done from here could be trusted, so the process stops
            // at once; an attach's pending journal lets the next run settle
            // what it had begun. setns back into a namespace we hold an fd
            // of, with the capability we just used, does not fail in
            // practice.
            eprintln!("pipework: cannot return to the host's network namespace: {e}; stopping");
            std::process::abort();
        }
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Netns {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_namespace_files() {
        let e = Netns::open(Path::new("/proc/self/status")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = Netns::open(Path::new("/proc/self/ns/uts")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn enter_briefly_comes_back() {
        let home = Netns::current().unwrap();
        let other = Netns::create_anonymous().unwrap();
        let inside = other
            .enter_briefly(|| Netns::current().unwrap().id())
            .unwrap();
        assert_eq!(inside, other.id());
        assert_eq!(Netns::current().unwrap().id(), home.id());
    }

    #[test]
    fn enter_briefly_from_comes_back_to_home() {
        let home = Netns::current().unwrap();
        let other = Netns::create_anonymous().unwrap();
        let inside = other
            .enter_briefly_from(home.as_fd(), || Netns::current_id().unwrap())
            .unwrap();
        assert_eq!(inside, other.id());
        assert_eq!(Netns::current_id().unwrap(), home.id());
        assert_ne!(home.id(), other.id());
    }

    #[test]
    fn current_is_a_netns() {
        let a = Netns::current().unwrap();
        let b = Netns::open(Path::new("/proc/self/ns/net")).unwrap();
        assert_eq!(a.id(), b.id());
    }
}
