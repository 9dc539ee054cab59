//! Noticing that a guest died, without polling anyone: a process guest by its
//! pidfd (readable when the process exits), a named namespace by inotify on
//! `/run/netns` (its file goes when `ip netns del` runs). A guest known only
//! by some other bind mount is kept until detached.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;
use tokio::sync::broadcast;
use tracing::{debug, warn};

use crate::ctx::DaemonCtx;
use pipework_base::guest::{Guest, NETNS_RUN_DIR};
use pipework_model::GuestRef;
use pipework_sys::netns::{Netns, NetnsId};

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
            match p
                .pidfd()
                .try_clone()
                .and_then(pipework_sys::fdwatch::readable)
            {
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
        let Ok(afd) = pipework_sys::fdwatch::readable(fd) else {
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
                nix::unistd::read(fd.get_ref(), &mut buf)
                    .map(|_| ())
                    .map_err(io::Error::from)
            });
            let _ = sender.send(());
        }
    });
    Some(tx)
}

fn inotify(dir: &Path) -> io::Result<OwnedFd> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    ino.add_watch(
        dir,
        AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM | AddWatchFlags::IN_DELETE_SELF,
    )?;
    Ok(OwnedFd::from(ino))
}
