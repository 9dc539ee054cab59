//! The daemon process: its lock, pid file and control socket, and the
//! services it runs.

use std::fs::{self, File};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use tokio::net::{UnixListener, UnixStream};
use tracing::{info, warn};

use crate::ctx::DaemonCtx;
use crate::service::{Hangup, Service};
use pipework_base::driver::DriverSet;
use pipework_base::error::{Context, Error, ErrorKind, Result};
use pipework_base::settings::Settings;
use pipework_base::state::{OpenHow, StateDir};
use pipework_dhcp::daemon::proto::{self, Request, Response};
use pipework_dhcp::daemon::socket_path;
use pipework_dhcp::store::LeaseStore;
use pipework_sys::netlink::Netlink;
use pipework_sys::netns::Netns;

/// How the daemon was asked to run.
#[derive(Clone, Debug, Default)]
pub struct DaemonOptions {
    /// Exit after this long with nothing to look after (on-demand start).
    pub idle_exit: Option<Duration>,
    /// Follow a container engine and keep declared attachments.
    pub reconcile: Option<crate::reconcile::ReconcileConfig>,
}

const PID_FILE: &str = "daemon.pid";
const SOCKET: &str = "daemon.sock";

/// Takes the one-per-host lock, or says who holds it.
fn lock(settings: &Settings, state: &StateDir) -> Result<Flock<File>> {
    let f = state
        .open_file("daemon.lock", OpenHow::Create)?
        .ok_or_else(|| Error::failed("cannot open the daemon lock"))?;
    Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|_| {
        let pid = state
            .read_file(PID_FILE)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
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
    let _lock = lock(&settings, &state)?;
    let sock = socket_path(&settings);
    let listener = {
        // Bound through the verified directory's fd, never through a path
        // someone could have redirected; made 0600 the same way.
        let root = state
            .root_dir(false)?
            .ok_or_else(|| Error::failed(format!("{} is gone", settings.state_dir.display())))?;
        root.unlink(SOCKET)?;
        let at = root.fd_path().join(SOCKET);
        let l = UnixListener::bind(&at).map_err(|e| {
            Error::failed(format!("cannot listen on {}", sock.display())).with_source(e)
        })?;
        fs::set_permissions(&at, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::failed("cannot restrict the control socket").with_source(e))?;
        l
    };
    state.write_file(PID_FILE, format!("{}\n", std::process::id()).as_bytes())?;
    match pipework_core::sweep::temp_files(&state) {
        Ok(files) => {
            for f in files {
                info!("removed {f} (a temporary file a killed writer left)");
            }
        }
        Err(e) => warn!("{e}"),
    }

    let ctx = Arc::new(DaemonCtx {
        leases: LeaseStore::new(&settings.state_dir),
        host: Netlink::connect_here("host").step("open netlink")?,
        host_ns: Netns::current().step("open host namespace")?,
        netns_events: crate::watch::netns_events(),
        state: state.clone(),
        settings: settings.clone(),
        drivers,
        resolv_lock: tokio::sync::Mutex::new(()),
    });
    let mut services: Vec<Arc<dyn Service>> = vec![
        Arc::new(crate::dhcp_service::DhcpService::new(ctx.clone())),
        Arc::new(crate::heal::HealService::new(ctx.clone())),
    ];
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
    // What killed commands left, collected in the background: an attach
    // that started this daemon must not wait for it.
    {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            match pipework_core::gc::leftovers(ctx.drivers.as_ref(), &ctx.settings).await {
                Ok(done) => {
                    for d in done {
                        info!("collected {d}");
                    }
                }
                Err(e) => warn!("cannot collect leftovers: {e}"),
            }
        });
    }

    let shutdown = pipework_sys::signals::Shutdown::install().step("install signal handlers")?;
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
            _ = shutdown.recv() => break,
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
    let _ = state.remove_file(SOCKET);
    for s in &services {
        s.stop().await;
    }
    let _ = state.remove_file(PID_FILE);
    Ok(())
}

/// Answers one connection: one request, one response.
async fn serve(stream: UnixStream, services: &[Arc<dyn Service>]) {
    let allowed = stream
        .peer_cred()
        .is_ok_and(|c| c.uid() == 0 || c.uid() == pipework_sys::process::euid());
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
    pipework_sys::fdwatch::readable(fd).ok()
}
