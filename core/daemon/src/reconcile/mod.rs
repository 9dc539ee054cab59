//! The reconciler: the daemon service that keeps containers' declared
//! attachments (see [`crate::declare`]) in step with the containers' lives.
//!
//! It follows the Engine API's event stream (Docker's, or Podman's
//! compatible one) and treats every relevant event as a reason to look at
//! that container again, not as an instruction: it inspects the container
//! and converges. A running container gets its declared attachments (made
//! idempotently, so a second look changes nothing); a container that is not
//! running, or gone, loses every attachment recorded for it; a container
//! running in a new namespace (it was restarted) loses those of the old one
//! first. Each time it (re)connects to the engine it looks at every running
//! container and every container it has records for, so an engine restart,
//! a daemon restart or a host reboot converges the same way.
//!
//! One container is handled by one task at a time (events that arrive
//! meanwhile mark it for another look); a few containers are handled at
//! once. A look that failed is tried again later, with back-off. A daemon killed at any point leaves its attaches in progress on
//! disk ([`pipework_core::pending`]); they are undone before anything else when the
//! reconciler starts.

mod converge;
pub mod events;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::ctx::DaemonCtx;
use crate::declare::{labels, AttachParser};
use crate::service::{Hangup, Service};
use pipework_base::docker::{DockerClient, Endpoint};
use pipework_base::error::{Error, Result};

/// How the daemon was asked to reconcile.
#[derive(Clone, Debug)]
pub struct ReconcileConfig {
    pub endpoint: Endpoint,
    /// dreamcat4's `pipework_key`: only containers carrying it are handled.
    pub key: Option<String>,
    pub parse: AttachParser,
}

/// Containers handled at once: attaches mostly wait on the kernel, but a
/// small machine should still answer its other work.
const PARALLEL: usize = 4;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_MAX: Duration = Duration::from_secs(60);

pub struct ReconcileService {
    shared: Arc<Shared>,
    main: Mutex<Option<JoinHandle<()>>>,
}

pub(crate) struct Shared {
    ctx: Arc<DaemonCtx>,
    cfg: ReconcileConfig,
    client: DockerClient,
    /// Containers being handled; `true` when another look was asked for.
    queue: Mutex<HashMap<String, bool>>,
    /// Failed looks in a row, per container.
    retries: Mutex<HashMap<String, u32>>,
    permits: Semaphore,
    workers: AtomicUsize,
    stopping: AtomicBool,
    connected: AtomicBool,
    idle: Notify,
}

impl ReconcileService {
    pub fn new(ctx: Arc<DaemonCtx>, cfg: ReconcileConfig) -> ReconcileService {
        ReconcileService {
            shared: Arc::new(Shared {
                ctx,
                client: DockerClient::new(cfg.endpoint.clone()),
                cfg,
                queue: Mutex::new(HashMap::new()),
                retries: Mutex::new(HashMap::new()),
                permits: Semaphore::new(PARALLEL),
                workers: AtomicUsize::new(0),
                stopping: AtomicBool::new(false),
                connected: AtomicBool::new(false),
                idle: Notify::new(),
            }),
            main: Mutex::new(None),
        }
    }
}

impl Shared {
    /// Asks for a look at one container.
    fn trigger(self: &Arc<Self>, id: String) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(again) = q.get_mut(&id) {
                *again = true;
                return;
            }
            q.insert(id.clone(), false);
        }
        self.workers.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(_permit) = me.permits.acquire().await {
                    if !me.stopping.load(Ordering::SeqCst) {
                        let ok = converge::one(&me, &id).await;
                        me.retry_later(&id, ok);
                    }
                }
                let mut q = me.queue.lock().unwrap_or_else(|e| e.into_inner());
                if q.get(&id) == Some(&true) && !me.stopping.load(Ordering::SeqCst) {
                    q.insert(id.clone(), false);
                    continue;
                }
                q.remove(&id);
                break;
            }
            if me.workers.fetch_sub(1, Ordering::SeqCst) == 1 {
                me.idle.notify_waiters();
            }
        });
    }

    /// After a failed look, another one later, each wait twice the last
    /// (up to a minute); a look that works resets it.
    fn retry_later(self: &Arc<Self>, id: &str, ok: bool) {
        let mut r = self.retries.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            r.remove(id);
            return;
        }
        let n = r.entry(id.to_string()).or_insert(0);
        *n = (*n + 1).min(6);
        let wait = Duration::from_secs(1 << *n).min(RETRY_MAX);
        drop(r);
        let me = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            me.trigger(id);
        });
    }

    /// Containers with records of ours.
    fn recorded(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .ctx
            .state
            .all()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.labels.get(labels::CONTAINER).cloned())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Follows the engine for as long as the daemon runs.
    async fn run(self: Arc<Self>) {
        match pipework_core::pending::settle_all(self.ctx.drivers.as_ref(), &self.ctx.settings)
            .await
        {
            Ok(undone) => {
                for p in undone {
                    info!(
                        guest = %p.guest.name,
                        interface = %p.interface,
                        "undid an attach the previous daemon left unfinished"
                    );
                }
            }
            Err(e) => warn!("cannot settle unfinished attaches: {e}"),
        }
        let mut backoff = BACKOFF_MIN;
        let mut said = false;
        loop {
            match self.follow().await {
                Ok(()) => {
                    warn!(engine = %self.cfg.endpoint, "the event stream ended: reconnecting");
                    backoff = BACKOFF_MIN;
                    said = false;
                }
                Err(e) => {
                    if !said {
                        warn!("{e}: retrying with back-off");
                        said = true;
                    }
                }
            }
            self.connected.store(false, Ordering::SeqCst);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One connection: subscribe first (so nothing that happens during the
    /// sweep is missed), sweep, then follow the events.
    async fn follow(self: &Arc<Self>) -> Result<()> {
        // An engine that accepts but never answers must not hold us forever.
        let mut stream =
            tokio::time::timeout(CONNECT_TIMEOUT, self.client.stream(events::EVENTS_PATH))
                .await
                .map_err(|_| {
                    Error::timeout(format!(
                        "{} did not answer the event stream request",
                        self.cfg.endpoint
                    ))
                })??;
        let running = self.client.running().await?;
        self.connected.store(true, Ordering::SeqCst);
        info!(
            engine = %self.cfg.endpoint,
            running = running.len(),
            "following the engine's events"
        );
        for id in running.into_iter().chain(self.recorded()) {
            self.trigger(id);
        }
        loop {
            match stream.next_line().await {
                Ok(Some(line)) => {
                    if let Some((id, action)) = events::relevant(&line) {
                        tracing::debug!(%id, %action, "event");
                        self.trigger(id);
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    return Err(Error::failed(format!(
                        "the event stream of {} broke",
                        self.cfg.endpoint
                    ))
                    .with_source(e))
                }
            }
        }
    }
}

#[async_trait]
impl Service for ReconcileService {
    fn name(&self) -> &'static str {
        "reconcile"
    }

    /// Returns at once: the sweep may release DHCP leases through the
    /// daemon's own socket, which is served only once every service started.
    async fn start(&self) -> Result<()> {
        let task = tokio::spawn(self.shared.clone().run());
        *self.main.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(())
    }

    async fn handle(
        &self,
        op: &str,
        _args: Value,
        _fds: Vec<OwnedFd>,
        _hangup: Hangup,
    ) -> Result<Value> {
        match op {
            "status" => Ok(json!({
                "engine": self.shared.cfg.endpoint.to_string(),
                "connected": self.shared.connected.load(Ordering::SeqCst),
                "key": self.shared.cfg.key.is_some(),
                "in_progress": self.shared.workers.load(Ordering::SeqCst),
            })),
            other => Err(Error::usage(format!(
                "the reconcile service has no '{other}'"
            ))),
        }
    }

    /// Always: it waits for containers that have not started yet.
    fn busy(&self) -> bool {
        true
    }

    async fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(t) = self.main.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
        // Let the attaches under way finish (anything cut short is still
        // undone from its pending file by the next start).
        let wait = async {
            while self.shared.workers.load(Ordering::SeqCst) > 0 {
                let notified = self.shared.idle.notified();
                if self.shared.workers.load(Ordering::SeqCst) == 0 {
                    break;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), wait).await;
    }
}
