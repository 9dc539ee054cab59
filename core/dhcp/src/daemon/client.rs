//! Talking to the daemon from the CLI, starting it when none runs.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::debug;

use super::proto::{self, Request};
use super::socket_path;
use crate::store::{LeaseFile, LeaseStore};
use pipework_base::error::{Error, ErrorKind, Result};
use pipework_base::settings::Settings;

/// How long an on-demand daemon stays with nothing to do.
pub const ON_DEMAND_IDLE: Duration = Duration::from_secs(60);

/// Sends one request (with `fds`) and waits for the answer, starting the
/// daemon first if none answers.
///
/// The wait (a DHCP lease may take the whole attach timeout) gives way to
/// SIGINT, SIGTERM and SIGHUP within a tenth of a second: the connection
/// is shut down, the daemon sees the client gone and drops what it was
/// doing for it, and the attach rolls back saying it was interrupted.
pub async fn call(settings: &Settings, req: Request, fds: Vec<OwnedFd>) -> Result<Value> {
    let settings = settings.clone();
    let conn = Arc::new(Mutex::new(Conn::default()));
    let shared = conn.clone();
    let mut task =
        tokio::task::spawn_blocking(move || call_blocking(&settings, &req, &fds, &shared));
    loop {
        tokio::select! {
            r = &mut task => {
                return r.map_err(|e| Error::failed("daemon request task failed").with_source(e))?
            }
            _ = tokio::time::sleep(INTERRUPT_POLL) => {
                if let Err(e) = pipework_base::interrupt::check() {
                    conn.lock().unwrap_or_else(|e| e.into_inner()).cancel();
                    // Returns at once now: its read sees the shutdown.
                    let _ = task.await;
                    return Err(e.append_message(" while waiting for the pipework daemon"));
                }
            }
        }
    }
}

const INTERRUPT_POLL: Duration = Duration::from_millis(100);

/// The connection a request is on, for a signal to cut.
#[derive(Default)]
struct Conn {
    stream: Option<UnixStream>,
    cancelled: bool,
}

impl Conn {
    fn cancel(&mut self) {
        self.cancelled = true;
        if let Some(s) = self.stream.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Keeps a handle on `s` for [`Conn::cancel`]; false if cancelled already.
    fn keep(&mut self, s: &UnixStream) -> bool {
        if self.cancelled {
            return false;
        }
        self.stream = s.try_clone().ok();
        true
    }
}

fn call_blocking(
    settings: &Settings,
    req: &Request,
    fds: &[OwnedFd],
    conn: &Mutex<Conn>,
) -> Result<Value> {
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let mut last = None;
    // Twice: an on-demand daemon may exit for idleness just as we connect.
    for _ in 0..2 {
        let s = connect_or_start(settings)?;
        if !conn.lock().unwrap_or_else(|e| e.into_inner()).keep(&s) {
            return Err(Error::failed("interrupted"));
        }
        let r = proto::send_request(&s, req, &raw).and_then(|()| proto::read_response(&s));
        match r {
            Ok(resp) if resp.ok => return Ok(resp.result),
            Ok(resp) => {
                let kind = match resp.kind.as_deref() {
                    Some("usage") => ErrorKind::Usage,
                    Some("timeout") => ErrorKind::Timeout,
                    _ => ErrorKind::Failed,
                };
                return Err(Error::new(
                    kind,
                    resp.error.unwrap_or_else(|| "the daemon refused".into()),
                ));
            }
            Err(e)
                if e.kind() == io::ErrorKind::UnexpectedEof
                    || e.kind() == io::ErrorKind::BrokenPipe =>
            {
                debug!("daemon hung up: {e}");
                last = Some(e);
            }
            Err(e) => {
                return Err(Error::failed("cannot talk to the pipework daemon").with_source(e))
            }
        }
    }
    Err(Error::failed("the pipework daemon hung up").with_source(last.expect("a try failed")))
}

fn connect_or_start(settings: &Settings) -> Result<UnixStream> {
    let path = socket_path(settings);
    match UnixStream::connect(&path) {
        Ok(s) => return Ok(s),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) => {}
        Err(e) => {
            return Err(
                Error::failed(format!("cannot reach the daemon at {}", path.display()))
                    .with_source(e),
            )
        }
    }
    start(settings)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pause = Duration::from_millis(5);
    loop {
        match UnixStream::connect(&path) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => {
                return Err(Error::failed(format!(
                    "the pipework daemon did not come up (see {})",
                    settings.state_dir.join("daemon.log").display()
                ))
                .with_source(e))
            }
            Err(_) => std::thread::sleep(pause),
        }
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Starts `pipework daemon` detached: its own session, output to
/// `<state>/daemon.log`. If another one wins the race for the lock, ours
/// exits at once and the winner answers.
fn start(settings: &Settings) -> Result<()> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::failed("cannot find the pipework binary").with_source(e))?;
    let log = pipework_base::state::StateDir::open(&settings.state_dir)?
        .open_file("daemon.log", pipework_base::state::OpenHow::Append)?
        .ok_or_else(|| Error::failed("cannot open the daemon log"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("daemon")
        .arg("--state-dir")
        .arg(&settings.state_dir)
        .arg("--idle-exit")
        .arg(ON_DEMAND_IDLE.as_secs().to_string())
        // Test-only fault injection is for the attach that asked, not for a
        // daemon that outlives it.
        .env_remove("PIPEWORK_FAULT")
        .env_remove("PIPEWORK_FAULT_HOOK")
        // Started by the CNI plugin, the daemon must not think it is one.
        .env_remove("CNI_COMMAND")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    pipework_sys::process::new_session_on_exec(&mut cmd);
    cmd.spawn()
        .map_err(|e| Error::failed("cannot start the pipework daemon").with_source(e))?;
    Ok(())
}

/// The daemon's live view of its leases, or `None` when no daemon runs
/// (then the files on disk are the truth).
pub async fn leases_if_running(settings: &Settings) -> Option<Vec<LeaseFile>> {
    status(settings).await.map(|s| s.leases)
}

/// What the running daemon answers: its PID and its leases.
#[derive(Clone, Debug)]
pub struct DaemonStatus {
    /// The PID of the process that answered on the socket (the kernel's
    /// word for it, `SO_PEERCRED`, not a pid file).
    pub pid: Option<i32>,
    pub leases: Vec<LeaseFile>,
}

/// The daemon's PID and live leases; `None` when no daemon answers.
pub async fn status(settings: &Settings) -> Option<DaemonStatus> {
    let path = socket_path(settings);
    tokio::task::spawn_blocking(move || {
        let s = UnixStream::connect(&path).ok()?;
        let pid = nix::sys::socket::getsockopt(&s, nix::sys::socket::sockopt::PeerCredentials)
            .ok()
            .map(|c| c.pid());
        let req = Request {
            service: "dhcp".into(),
            op: "list".into(),
            args: Value::Null,
        };
        proto::send_request(&s, &req, &[]).ok()?;
        let r = proto::read_response(&s).ok().filter(|r| r.ok)?;
        let leases = serde_json::from_value(r.result).ok()?;
        Some(DaemonStatus { pid, leases })
    })
    .await
    .ok()
    .flatten()
}

/// Starts the daemon if none answers (a daemon carries on with every lease
/// saved in the state directory), then returns what it answers.
pub async fn ensure_running(settings: &Settings) -> Result<DaemonStatus> {
    call(
        settings,
        Request {
            service: "dhcp".into(),
            op: "list".into(),
            args: Value::Null,
        },
        Vec::new(),
    )
    .await?;
    status(settings)
        .await
        .ok_or_else(|| Error::failed("the pipework daemon started but does not answer"))
}

/// Asks the daemon to release a lease; nothing to do (and no daemon
/// started) when no such lease is on record.
pub async fn release(settings: &Settings, key: &str) -> Result<()> {
    if LeaseStore::new(&settings.state_dir).load(key).is_none() {
        return Ok(());
    }
    call(
        settings,
        Request {
            service: "dhcp".into(),
            op: "release".into(),
            args: serde_json::json!({ "key": key }),
        },
        Vec::new(),
    )
    .await
    .map(drop)
}
