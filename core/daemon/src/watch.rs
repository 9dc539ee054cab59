//! Noticing that a guest died: a process guest by its pidfd (readable when
//! the process exits); any other guest by its namespace, which we hold, and
//! which is gone once nothing but us refers to it any more
//! ([`crate::liveness`]). That is asked after every removal in `/run/netns`
//! (inotify: `ip netns del` removes a file there, whichever mount namespace
//! it ran in, since the directory is the same) and every
//! [`RECHECK`] for namespaces kept elsewhere. Never by re-opening the
//! guest's path: a daemon in another mount namespace than the one where the
//! guest's bind mount was made does not see it, and would release the lease
//! of a live guest.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::broadcast;
use tracing::{debug, warn};

use crate::ctx::DaemonCtx;
use pipework_base::guest::{Guest, NETNS_RUN_DIR};
use pipework_sys::netns::NetnsId;

/// How often a namespace is asked again with no event in `/run/netns`.
pub const RECHECK: Duration = Duration::from_secs(30);

/// How one lease learns that its guest died.
pub enum GuestWatch {
    Process(AsyncFd<OwnedFd>),
    Netns {
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
        match &ctx.netns_events {
            Some(tx) => GuestWatch::Netns {
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
            GuestWatch::Netns { id, events } => loop {
                match events.recv().await {
                    Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        let id = *id;
                        let alive =
                            tokio::task::spawn_blocking(move || crate::liveness::netns_alive(id))
                                .await
                                .unwrap_or(true);
                        if !alive {
                            debug!("namespace {id} is gone");
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

/// Broadcasts "ask again" after every removal in `/run/netns` and every
/// [`RECHECK`]. Never `None` now; the option stays for callers that run
/// without a watch.
pub fn netns_events() -> Option<broadcast::Sender<()>> {
    let dir = Path::new(NETNS_RUN_DIR);
    if let Err(e) = std::fs::create_dir_all(dir) {
        warn!("cannot create {NETNS_RUN_DIR}: {e}");
    }
    let fd = match inotify(dir) {
        Ok(fd) => pipework_sys::fdwatch::readable(fd).ok(),
        Err(e) => {
            warn!("cannot watch {NETNS_RUN_DIR}: {e} (namespaces are asked every {RECHECK:?})");
            None
        }
    };
    let (tx, _) = broadcast::channel(16);
    let sender = tx.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        let mut tick = tokio::time::interval(RECHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let removed = async {
                match &fd {
                    Some(afd) => match afd.readable().await {
                        Ok(mut g) => {
                            // The events themselves do not matter: each lease
                            // asks about its own namespace.
                            let _ = g.try_io(|fd| {
                                nix::unistd::read(fd.get_ref(), &mut buf)
                                    .map(|_| ())
                                    .map_err(io::Error::from)
                            });
                        }
                        Err(_) => std::future::pending::<()>().await,
                    },
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = removed => {}
                _ = tick.tick() => {}
            }
            if sender.receiver_count() > 0 {
                let _ = sender.send(());
            }
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
