//! Noticing that a guest died, without polling anyone: a process guest by its
//! pidfd (readable when the process exits), a named namespace by inotify on
//! `/run/netns` (its file goes when `ip netns del` runs). A guest known only
//! by some other bind mount is kept until detached.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;
use tokio::sync::broadcast;
use tracing::{debug, warn};

use super::DaemonCtx;
use crate::guest::{Guest, NETNS_RUN_DIR};
use crate::model::GuestRef;
use crate::netns::{Netns, NetnsId};

/// How one lease learns that its guest died.
pub enum GuestWatch {
    Process(AsyncFd<OwnedFd>),
    Named {
        path: PathBuf,
        id: NetnsId,
        events: broadcast::Receiver<()>,
    },
    Never,
}

impl GuestWatch {
    pub fn new(guest: &Guest, ctx: &DaemonCtx) -> GuestWatch {
        if let Some(p) = guest.process() {
            match p.pidfd().try_clone().and_then(crate::fdwatch::readable) {
                Ok(fd) => return GuestWatch::Process(fd),
                Err(e) => warn!("cannot watch guest {}: {e}", guest.name()),
            }
        }
        let path = match &guest.info.reference {
            GuestRef::Netns(n) | GuestRef::Auto(n) => Path::new(NETNS_RUN_DIR).join(n),
            GuestRef::Path(p) if p.starts_with(NETNS_RUN_DIR) => p.clone(),
            _ => return GuestWatch::Never,
        };
        match &ctx.netns_events {
            Some(tx) => GuestWatch::Named {
                path,
                id: guest.info.netns,
                events: tx.subscribe(),
            },
            None => GuestWatch::Never,
        }
    }

    /// Resolves once the guest is gone.
    pub async fn gone(&mut self) {
        match self {
            GuestWatch::Process(fd) => {
                let _ = fd.readable().await;
            }
            GuestWatch::Named { path, id, events } => loop {
                match events.recv().await {
                    Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        let same = Netns::open(path).is_ok_and(|ns| ns.id() == *id);
                        if !same {
                            debug!("{} is gone", path.display());
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                }
            },
            GuestWatch::Never => std::future::pending().await,
        }
    }
}

/// Watches `/run/netns` and broadcasts every removal; `None` when there is
/// no such directory to watch.
pub fn netns_events() -> Option<broadcast::Sender<()>> {
    let dir = Path::new(NETNS_RUN_DIR);
    if let Err(e) = std::fs::create_dir_all(dir) {
        warn!("cannot create {NETNS_RUN_DIR}: {e}");
        return None;
    }
    let fd = match inotify(dir) {
        Ok(fd) => fd,
        Err(e) => {
            warn!("cannot watch {NETNS_RUN_DIR}: {e}");
            return None;
        }
    };
    let (tx, _) = broadcast::channel(16);
    let sender = tx.clone();
    tokio::spawn(async move {
        let Ok(afd) = crate::fdwatch::readable(fd) else {
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            let Ok(mut g) = afd.readable().await else {
                return;
            };
            // The events themselves do not matter: each lease checks its
            // own namespace file again.
            let _ = g.try_io(|fd| {
                // SAFETY: reading into our own buffer.
                let n = unsafe {
                    libc::read(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            let _ = sender.send(());
        }
    });
    Some(tx)
}

fn inotify(dir: &Path) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: valid fd and path.
    let wd = unsafe {
        libc::inotify_add_watch(
            fd.as_raw_fd(),
            c.as_ptr(),
            libc::IN_DELETE | libc::IN_MOVED_FROM | libc::IN_DELETE_SELF,
        )
    };
    if wd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}
