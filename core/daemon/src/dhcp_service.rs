//! The DHCP service: one supervised task per lease (see
//! [`crate::supervise`]).
//!
//! Requests:
//! - `acquire {spec, timeout_ms}` with fds `[netns, pidfd?]`: start keeping a
//!   lease for `spec`, answer with the lease once bound (or an error at the
//!   deadline, with nothing left behind);
//! - `release {key}`: give the lease back and undo its configuration;
//! - `list`: every lease file, as JSON.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::ctx::DaemonCtx;
use crate::service::{Hangup, Service};
use crate::supervise::{self, Command, FirstBind};
use pipework_base::error::{Error, Result};
use pipework_base::guest::{Guest, Process};
use pipework_base::state::now_secs;
use pipework_dhcp::lease::{LeaseSpec, Phase};
use pipework_dhcp::store::LeaseFile;
use pipework_dhcp::Drops;
use pipework_sys::netns::Netns;

struct Task {
    commands: mpsc::Sender<Command>,
    join: JoinHandle<()>,
    /// Live counts (the file has them as of its last save).
    drops: Arc<Drops>,
}

pub struct DhcpService {
    ctx: Arc<DaemonCtx>,
    tasks: Mutex<HashMap<String, Task>>,
}

#[derive(Deserialize)]
struct AcquireArgs {
    spec: LeaseSpec,
    timeout_ms: u64,
}

#[derive(Deserialize)]
struct ReleaseArgs {
    key: String,
}

impl DhcpService {
    pub fn new(ctx: Arc<DaemonCtx>) -> DhcpService {
        DhcpService {
            ctx,
            tasks: Mutex::new(HashMap::new()),
        }
    }

    fn spawn(&self, file: LeaseFile, guest: Guest, first: Option<FirstBind>) {
        let key = file.spec.key.clone();
        let (tx, rx) = mpsc::channel(4);
        let drops = Arc::new(Drops::restore(file.drops));
        let join = tokio::spawn(supervise::run(
            self.ctx.clone(),
            file,
            guest,
            first,
            rx,
            drops.clone(),
        ));
        let task = Task {
            commands: tx,
            join,
            drops,
        };
        let old = self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, task);
        if let Some(t) = old {
            t.join.abort();
        }
    }

    fn take(&self, key: &str) -> Option<Task> {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)
    }

    async fn release(&self, key: &str) -> Result<()> {
        match self.take(key) {
            Some(t) if !t.join.is_finished() => {
                let (tx, rx) = oneshot::channel();
                if t.commands.send(Command::Release(tx)).await.is_ok() {
                    if let Ok(r) = rx.await {
                        return r;
                    }
                }
                Ok(())
            }
            // No task: its guest died while no daemon ran (start() dropped
            // the file then), or it was never ours.
            _ => self.ctx.leases.remove(key),
        }
    }

    async fn acquire(&self, args: Value, mut fds: Vec<OwnedFd>, hangup: Hangup) -> Result<Value> {
        let a: AcquireArgs = serde_json::from_value(args)
            .map_err(|e| Error::usage(format!("bad acquire request: {e}")))?;
        if fds.is_empty() {
            return Err(Error::usage("acquire needs the guest's namespace fd"));
        }
        let pidfd = (fds.len() > 1).then(|| fds.remove(1));
        let netns = Netns::from_fd(fds.remove(0))
            .map_err(|e| Error::usage("the fd sent is not a network namespace").with_source(e))?;
        if netns.id() != a.spec.guest.netns {
            return Err(Error::usage("the namespace sent is not the guest's"));
        }
        let process = match (pidfd, a.spec.guest.pid) {
            (Some(fd), Some(pid)) => Some(Process::from_pidfd(pid, fd)),
            _ => None,
        };
        let guest = Guest::from_parts(a.spec.guest.clone(), netns, process);
        let key = a.spec.key.clone();
        // A lease left from an earlier attach of the same interface.
        self.release(&key).await?;
        let (tx, rx) = oneshot::channel();
        let file = LeaseFile {
            spec: a.spec,
            lease: None,
            phase: Phase::Init,
            applied: Default::default(),
            drops: Default::default(),
            updated_at: now_secs(),
        };
        let until = tokio::time::Instant::now() + Duration::from_millis(a.timeout_ms);
        self.spawn(file, guest, Some(FirstBind { until, reply: tx }));
        tokio::select! {
            r = rx => match r {
                Ok(Ok(lease)) => Ok(json!({ "key": key, "lease": lease })),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(Error::failed("the lease task ended without an answer")),
            },
            // Dropping `rx` tells the task that nobody waits: it cleans up.
            _ = hangup => Err(Error::failed("the client went away")),
        }
    }
}

#[async_trait]
impl Service for DhcpService {
    fn name(&self) -> &'static str {
        "dhcp"
    }

    async fn start(&self) -> Result<()> {
        for file in self.ctx.leases.all()? {
            let found = Guest::reopen(&file.spec.guest).or_else(|e| {
                // A daemon in another mount namespace than the guest's
                // bind mount finds it by its inode (see `liveness`).
                match file.spec.guest.pid {
                    None => crate::liveness::find_netns(file.spec.guest.netns)
                        .map(|ns| Guest::from_parts(file.spec.guest.clone(), ns, None))
                        .ok_or(e),
                    Some(_) => Err(e),
                }
            });
            match found {
                Ok(guest) => {
                    info!(key = %file.spec.key, "resuming lease");
                    self.spawn(file, guest, None);
                }
                Err(e) => {
                    // Its namespace died with it: nothing left to undo, and
                    // no way left to reach the server.
                    warn!(key = %file.spec.key, "dropping lease: {e}");
                    self.ctx.leases.remove(&file.spec.key)?;
                }
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        op: &str,
        args: Value,
        fds: Vec<OwnedFd>,
        hangup: Hangup,
    ) -> Result<Value> {
        match op {
            "acquire" => self.acquire(args, fds, hangup).await,
            "release" => {
                let a: ReleaseArgs = serde_json::from_value(args)
                    .map_err(|e| Error::usage(format!("bad release request: {e}")))?;
                self.release(&a.key).await?;
                Ok(Value::Null)
            }
            "list" => {
                let mut files = self.ctx.leases.all()?;
                let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
                for f in &mut files {
                    if let Some(t) = tasks.get(&f.spec.key) {
                        f.drops = t.drops.snapshot();
                    }
                }
                serde_json::to_value(files)
                    .map_err(|e| Error::failed("cannot encode leases").with_source(e))
            }
            other => Err(Error::usage(format!("the dhcp service has no '{other}'"))),
        }
    }

    fn busy(&self) -> bool {
        let mut t = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        t.retain(|_, task| !task.join.is_finished());
        !t.is_empty()
    }

    async fn stop(&self) {
        let tasks: Vec<Task> = self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, t)| t)
            .collect();
        for t in tasks {
            let _ = t.commands.send(Command::Stop).await;
            let _ = t.join.await;
        }
    }
}
