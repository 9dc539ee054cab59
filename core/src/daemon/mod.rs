//! `pipework daemon`: the one long-running pipework process of a host.
//!
//! It keeps DHCP leases (renewing, rebinding, following the guest's life)
//! and, with `--reconcile`, containers' declared attachments
//! ([`crate::reconcile`]). One per state directory, which means
//! one per host: an exclusive `flock` on `<state>/daemon.lock` decides.
//!
//! - **Starting**: by a systemd unit (`contrib/pipework.service`), or on
//!   demand by the first `pipework ... dhcp` attach, which then lets it exit
//!   after a minute with nothing to do (`--idle-exit`).
//! - **Control**: the Unix socket `<state>/daemon.sock`, mode 0600 in a 0700
//!   directory, and every peer's credentials checked (root, or the daemon's
//!   own user). The protocol is in [`proto`].
//! - **State**: `<state>/leases/<key>.json`, one file per lease, written
//!   atomically before anything else happens, so a daemon killed at any point
//!   resumes every lease on its next start. `<state>/daemon.pid` names the
//!   running daemon.
//! - **Stopping**: SIGTERM or SIGINT stop the services without releasing
//!   anything: leases live on in their files (and in the kernel, whose
//!   address lifetimes end them if no daemon ever comes back).
//!
//! Adding a service: implement [`service::Service`] (its `name` is the
//! `service` field of its requests), and add it to the list in [`run`].

pub mod client;
mod dhcp;
pub mod proto;
pub mod service;
pub mod watch;

use std::fs::{self, File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::dhcp::store::LeaseStore;
use crate::driver::DriverSet;
use crate::error::{Context, Error, ErrorKind, Result};
use crate::netlink::Netlink;
use crate::netns::Netns;
use crate::settings::Settings;
use crate::state::StateDir;
use proto::{Request, Response};
use service::{Hangup, Service};

/// What every service may use.
pub struct DaemonCtx {
    pub settings: Settings,
    pub state: StateDir,
    pub leases: LeaseStore,
    /// rtnetlink and the namespace of the host (for undo contexts).
    pub host: Netlink,
    pub host_ns: Netns,
    pub drivers: Arc<dyn DriverSet>,
    /// Removals under `/run/netns`, for guests that are named namespaces.
    pub netns_events: Option<broadcast::Sender<()>>,
}

/// How the daemon was asked to run.
#[derive(Clone, Debug, Default)]
pub struct DaemonOptions {
    /// Exit after this long with nothing to look after (on-demand start).
    pub idle_exit: Option<Duration>,
    /// Follow a container engine and keep declared attachments.
    pub reconcile: Option<crate::reconcile::ReconcileConfig>,
}

pub fn socket_path(settings: &Settings) -> PathBuf {
    settings.state_dir.join("daemon.sock")
}

fn pid_path(settings: &Settings) -> PathBuf {
    settings.state_dir.join("daemon.pid")
}

/// Takes the one-per-host lock, or says who holds it.
fn lock(settings: &Settings) -> Result<Flock<File>> {
    let path = settings.state_dir.join("daemon.lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::failed(format!("cannot open {}", path.display())).with_source(e))?;
    Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|_| {
        let pid = fs::read_to_string(pid_path(settings)).unwrap_or_default();
        Error::usage(format!(
            "a pipework daemon already runs for {} (pid {})",
            settings.state_dir.display(),
            pid.trim()
        ))
    })
}

/// Runs the daemon until SIGTERM/SIGINT (or idleness, if asked).
pub async fn run(
    drivers: Arc<dyn DriverSet>,
    settings: Settings,
    opts: DaemonOptions,
) -> Result<()> {
    let state = StateDir::open(&settings.state_dir)?;
    let _lock = lock(&settings)?;
    let sock = socket_path(&settings);
    let _ = fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(|e| {
        Error::failed(format!("cannot listen on {}", sock.display())).with_source(e)
    })?;
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::failed("cannot restrict the control socket").with_source(e))?;
    crate::state::write_atomic(
        &pid_path(&settings),
        format!("{}\n", std::process::id()).as_bytes(),
    )?;

    let ctx = Arc::new(DaemonCtx {
        leases: LeaseStore::new(&settings.state_dir),
        host: Netlink::connect_here("host").step("open netlink")?,
        host_ns: Netns::current().step("open host namespace")?,
        netns_events: watch::netns_events(),
        state,
        settings: settings.clone(),
        drivers,
    });
    let mut services: Vec<Arc<dyn Service>> = vec![Arc::new(dhcp::DhcpService::new(ctx.clone()))];
    if let Some(cfg) = opts.reconcile.clone() {
        services.push(Arc::new(crate::reconcile::ReconcileService::new(
            ctx.clone(),
            cfg,
        )));
    }
    for s in &services {
        if let Err(e) = s.start().await {
            warn!("service {} could not resume: {e}", s.name());
        }
    }
    info!(socket = %sock.display(), "pipework daemon running");

    let mut term = signal(SignalKind::terminate()).step("install signal handlers")?;
    let mut int = signal(SignalKind::interrupt()).step("install signal handlers")?;
    let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut idle_since = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            conn = listener.accept() => match conn {
                Ok((stream, _)) => {
                    let services = services.clone();
                    let active = active.clone();
                    active.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::spawn(async move {
                        serve(stream, &services).await;
                        active.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    });
                }
                Err(e) => warn!("accept: {e}"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {
                let busy = active.load(std::sync::atomic::Ordering::SeqCst) > 0
                    || services.iter().any(|s| s.busy());
                if busy {
                    idle_since = tokio::time::Instant::now();
                } else if opts.idle_exit.is_some_and(|d| idle_since.elapsed() >= d) {
                    info!("nothing to look after: exiting");
                    break;
                }
            }
        }
    }
    drop(listener);
    let _ = fs::remove_file(&sock);
    for s in &services {
        s.stop().await;
    }
    let _ = fs::remove_file(pid_path(&settings));
    Ok(())
}

/// Answers one connection: one request, one response.
async fn serve(stream: UnixStream, services: &[Arc<dyn Service>]) {
    let allowed = stream.peer_cred().is_ok_and(|c| {
        // SAFETY: geteuid cannot fail.
        c.uid() == 0 || c.uid() == unsafe { libc::geteuid() }
    });
    let response = if !allowed {
        failure(&Error::usage("only root may talk to the pipework daemon"))
    } else {
        match proto::read_request(&stream).await {
            Ok((req, fds)) => dispatch(&stream, req, fds, services).await,
            Err(e) => failure(&Error::usage(format!("bad request: {e}"))),
        }
    };
    if let Err(e) = proto::write_response(&stream, &response).await {
        warn!("cannot answer a client: {e}");
    }
}

async fn dispatch(
    stream: &UnixStream,
    req: Request,
    fds: Vec<OwnedFd>,
    services: &[Arc<dyn Service>],
) -> Response {
    let Some(svc) = services.iter().find(|s| s.name() == req.service) else {
        return failure(&Error::usage(format!("no service '{}'", req.service)));
    };
    // A hang-up is the peer closing its end: readable with nothing to read.
    let peer = hangup_watch(stream);
    let hangup: Hangup = Box::pin(async move {
        if let Some(p) = peer {
            let _ = p.readable().await;
        } else {
            std::future::pending::<()>().await
        }
    });
    match svc.handle(&req.op, req.args, fds, hangup).await {
        Ok(v) => Response {
            ok: true,
            result: v,
            error: None,
            kind: None,
        },
        Err(e) => failure(&e),
    }
}

fn failure(e: &Error) -> Response {
    Response {
        ok: false,
        result: serde_json::Value::Null,
        error: Some(e.to_string()),
        kind: Some(
            match e.kind() {
                ErrorKind::Usage => "usage",
                ErrorKind::Failed => "failed",
                ErrorKind::Timeout => "timeout",
            }
            .into(),
        ),
    }
}

/// A second handle on a stream's fd, to wait for its hang-up.
fn hangup_watch(stream: &UnixStream) -> Option<tokio::io::unix::AsyncFd<OwnedFd>> {
    use std::os::fd::AsFd;
    let fd = stream.as_fd().try_clone_to_owned().ok()?;
    crate::fdwatch::readable(fd).ok()
}
