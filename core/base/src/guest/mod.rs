//! Guests: whatever owns the network namespace we plug into.
//!
//! A guest is resolved once into an open namespace fd (plus a pidfd when a
//! process owns it) and every later step works through that fd.

mod lxc;
mod process;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use process::Process;

use crate::docker::{DockerClient, Endpoint};
use crate::error::{Error, Result};
use pipework_model::GuestRef;
use pipework_sys::netns::{Netns, NetnsId};

/// Where the named network namespaces of `ip netns` live.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// What kind of thing the guest is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestKind {
    Process,
    Netns,
    Container,
    Lxc,
}

/// The serialisable description of a guest, kept in attachment records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestInfo {
    /// What to call it in messages: container name, netns name, `pid 1234`.
    pub name: String,
    pub kind: GuestKind,
    /// The reference the user typed, so a later `detach` can find it again.
    pub reference: GuestRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    pub netns: NetnsId,
}

/// A resolved guest: its namespace, held open.
#[derive(Debug)]
pub struct Guest {
    pub info: GuestInfo,
    pub netns: Netns,
    process: Option<Process>,
}

/// Settings for resolution.
#[derive(Clone, Debug)]
pub struct ResolveOptions {
    /// How long to wait for a container that exists but is not running yet.
    pub wait_running: Duration,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions {
            wait_running: Duration::from_secs(10),
        }
    }
}

impl Guest {
    /// Finds the guest and opens its namespace.
    pub async fn resolve(r: &GuestRef, opts: &ResolveOptions) -> Result<Guest> {
        let g = match r {
            GuestRef::Pid(pid) => {
                Guest::from_pid(*pid, r.clone(), format!("pid {pid}"), GuestKind::Process)
            }
            GuestRef::Path(p) => {
                Guest::from_path(p, r.clone(), p.display().to_string(), GuestKind::Netns)
            }
            GuestRef::Netns(n) => Guest::from_named_netns(n, r.clone()),
            GuestRef::Container(n) => Guest::from_container(n, r.clone(), opts)
                .await?
                .ok_or_else(|| Error::usage(format!("container {n} is unknown to the Docker API"))),
            GuestRef::Lxc(n) => Guest::from_lxc(n, r.clone()),
            GuestRef::Auto(n) => Guest::auto(n, r.clone(), opts).await,
        }?;
        // `/proc/self/ns/net`, `/proc/1/ns/net`, a process of the host: the
        // guest end would land beside the host's own interfaces.
        if Netns::current_id().is_ok_and(|h| h == g.info.netns) {
            return Err(Error::usage(format!(
                "guest {r} is in pipework's own network namespace (the host's): a guest needs its own"
            )));
        }
        Ok(g)
    }

    async fn auto(name: &str, r: GuestRef, opts: &ResolveOptions) -> Result<Guest> {
        if Path::new(NETNS_RUN_DIR).join(name).exists() {
            return Guest::from_named_netns(name, r);
        }
        let docker_err = match Guest::from_container(name, r.clone(), opts).await {
            Ok(Some(g)) => return Ok(g),
            Ok(None) => "not known to the Docker API".to_string(),
            Err(e) if e.kind() == crate::ErrorKind::Failed && e.errno().is_some() => {
                format!(
                    "Docker API unreachable ({})",
                    e.errno()
                        .map(std::io::Error::from_raw_os_error)
                        .map(|e| e.to_string())
                        .unwrap_or_default()
                )
            }
            Err(e) => return Err(e),
        };
        if let Some(pid) = lxc::init_pid(name)? {
            return Guest::from_pid(pid, r, name.to_string(), GuestKind::Lxc);
        }
        Err(Error::usage(format!(
            "no guest named '{name}': no {NETNS_RUN_DIR}/{name}, {docker_err}, no running LXC container"
        )))
    }

    fn from_named_netns(name: &str, r: GuestRef) -> Result<Guest> {
        let p = PathBuf::from(NETNS_RUN_DIR).join(name);
        Guest::from_path(&p, r, name.to_string(), GuestKind::Netns)
    }

    fn from_path(p: &Path, r: GuestRef, name: String, kind: GuestKind) -> Result<Guest> {
        let netns = Netns::open(p).map_err(|e| {
            Error::usage(format!("cannot open network namespace {}", p.display())).with_source(e)
        })?;
        // /proc/<pid>/ns/net keeps the owning process: hold it for liveness checks.
        let pid = proc_pid_of(p);
        Ok(Guest {
            info: GuestInfo {
                name,
                kind,
                reference: r,
                pid,
                container_id: None,
                container_name: None,
                netns: netns.id(),
            },
            netns,
            process: None,
        })
    }

    fn from_pid(pid: u32, r: GuestRef, name: String, kind: GuestKind) -> Result<Guest> {
        let (process, netns) = Process::open_with_netns(pid).map_err(|e| {
            Error::usage(format!(
                "cannot open the network namespace of process {pid}"
            ))
            .with_source(e)
        })?;
        Ok(Guest {
            info: GuestInfo {
                name,
                kind,
                reference: r,
                pid: Some(pid),
                container_id: None,
                container_name: None,
                netns: netns.id(),
            },
            netns,
            process: Some(process),
        })
    }

    async fn from_container(
        name: &str,
        r: GuestRef,
        opts: &ResolveOptions,
    ) -> Result<Option<Guest>> {
        let client = DockerClient::new(Endpoint::from_env()?);
        let deadline = Instant::now() + opts.wait_running;
        let mut backoff = Duration::from_millis(50);
        loop {
            let Some(info) = client.inspect(name).await? else {
                return Ok(None);
            };
            if info.state.pid > 0 {
                let cname = info.short_name().to_string();
                let mut g = Guest::from_pid(
                    info.state.pid as u32,
                    r,
                    cname.clone(),
                    GuestKind::Container,
                )
                .map_err(|e| e.context(format!("container {name}")))?;
                g.info.container_id = Some(info.id.clone());
                g.info.container_name = Some(cname);
                return Ok(Some(g));
            }
            if Instant::now() >= deadline {
                return Err(Error::failed(format!(
                    "container {name} is not running (the engine reports PID 0)"
                )));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    fn from_lxc(name: &str, r: GuestRef) -> Result<Guest> {
        match lxc::init_pid(name)? {
            Some(pid) => Guest::from_pid(pid, r, name.to_string(), GuestKind::Lxc),
            None => Err(Error::usage(format!(
                "no running LXC container named {name}"
            ))),
        }
    }

    /// A running container the caller has just inspected (the reconciler):
    /// its namespace through its PID, without asking the engine again.
    pub fn from_container_pid(pid: u32, id: &str, name: &str, r: GuestRef) -> Result<Guest> {
        let mut g = Guest::from_pid(pid, r, name.to_string(), GuestKind::Container)
            .map_err(|e| e.context(format!("container {name}")))?;
        g.info.container_id = Some(id.to_string());
        g.info.container_name = Some(name.to_string());
        Ok(g)
    }

    /// A guest for a namespace we already hold (the demo, tests).
    pub fn from_netns(netns: Netns, name: &str) -> Guest {
        Guest {
            info: GuestInfo {
                name: name.to_string(),
                kind: GuestKind::Netns,
                reference: GuestRef::Auto(name.to_string()),
                pid: None,
                container_id: None,
                container_name: None,
                netns: netns.id(),
            },
            netns,
            process: None,
        }
    }

    /// A guest from parts already held (the daemon receives the namespace
    /// and pidfd over its socket).
    pub fn from_parts(info: GuestInfo, netns: Netns, process: Option<Process>) -> Guest {
        Guest {
            info,
            netns,
            process,
        }
    }

    /// Opens a recorded guest again, if it is still the same one: same
    /// namespace inode, and for a process, that process still alive.
    pub fn reopen(info: &GuestInfo) -> Result<Guest> {
        let gone = |why: String| Error::failed(format!("guest {} is gone: {why}", info.name));
        let (netns, process) = match (&info.reference, info.pid) {
            (_, Some(pid)) => {
                let (p, ns) = Process::open_with_netns(pid).map_err(|e| gone(e.to_string()))?;
                (ns, Some(p))
            }
            (GuestRef::Path(p), None) => (Netns::open(p).map_err(|e| gone(e.to_string()))?, None),
            (GuestRef::Netns(n) | GuestRef::Auto(n), None) => (
                Netns::open(&Path::new(NETNS_RUN_DIR).join(n)).map_err(|e| gone(e.to_string()))?,
                None,
            ),
            _ => return Err(gone("no way to find it again".into())),
        };
        if netns.id() != info.netns {
            return Err(gone("its namespace was replaced".into()));
        }
        Ok(Guest {
            info: info.clone(),
            netns,
            process,
        })
    }

    pub fn process(&self) -> Option<&Process> {
        self.process.as_ref()
    }

    /// False once the guest's process has exited. Namespaces without a
    /// process (bind mounts) are alive while we hold them.
    pub fn is_alive(&self) -> bool {
        self.process.as_ref().is_none_or(Process::is_alive)
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The guest's root directory as seen from the host (for its resolv.conf).
    pub fn root_dir(&self) -> Option<PathBuf> {
        self.info
            .pid
            .map(|p| PathBuf::from(format!("/proc/{p}/root")))
    }
}

/// The PID in a `/proc/<pid>/ns/net` path.
fn proc_pid_of(p: &Path) -> Option<u32> {
    let s = p.to_str()?;
    let rest = s.strip_prefix("/proc/")?;
    let (pid, tail) = rest.split_once('/')?;
    (tail == "ns/net").then(|| pid.parse().ok()).flatten()
}

/// Whether the namespace a record describes still exists.
pub fn guest_alive(g: &GuestInfo) -> bool {
    reopen(g).is_some()
}

/// The namespace a record describes, if it still exists (same inode).
pub fn reopen(g: &GuestInfo) -> Option<Netns> {
    let path = match (&g.reference, g.pid) {
        (_, Some(pid)) => format!("/proc/{pid}/ns/net"),
        (GuestRef::Path(p), None) => p.display().to_string(),
        (GuestRef::Netns(n), None) | (GuestRef::Auto(n), None) => {
            format!("{}/{n}", NETNS_RUN_DIR)
        }
        _ => return None,
    };
    Netns::open(std::path::Path::new(&path))
        .ok()
        .filter(|ns| ns.id() == g.netns)
}
