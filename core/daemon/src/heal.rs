//! The heal service: what pipework keeps on the host side of its
//! attachments (OVS port-security flows, port tags, bridge membership)
//! put back when it goes, without anyone running `pipework check
//! --repair`.
//!
//! ovs-vswitchd keeps flows in memory only: after a restart the bridges
//! forward everything again. The drivers say when that may have happened
//! (`DriverSet::changed`: an OpenFlow connection closing and answering
//! again, an OVSDB `monitor` update); then every record is checked and its
//! host side repaired, the same comparison as `pipework check`. A slow
//! periodic pass catches anything no event announced.
//!
//! Inside guests nothing is repaired: an address or a route someone
//! removed there is theirs to have removed; `check` reports it. The one
//! thing started again is a kept compatible-mode DHCP client that exited
//! (`udhcpc-f`, `dhclient-f`, `dhcpcd`): a process of ours, started from
//! the host, that changes in the guest only what the attach had it change.
//! A watch looks for such deaths every few seconds and starts each dead
//! one again on a task of its own (it waits for the lease, seconds), apart
//! from the passes, so that a flow is never left missing behind a DHCP
//! wait; a client that cannot be started again is logged once and retried
//! after the periodic pass's interval.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::ctx::DaemonCtx;
use crate::service::{Hangup, Service};
use pipework_base::drift::{Repair, RepairScope};
use pipework_base::error::{Error, Result};
use pipework_core::kept_client::{self, Restarted};

/// The pass that runs even when no event came.
const PERIOD: Duration = Duration::from_secs(30);

/// How often the watch looks for kept DHCP clients that exited (one scan
/// of `/proc` for all of them).
const CLIENT_WATCH: Duration = Duration::from_secs(3);

pub struct HealService {
    ctx: Arc<DaemonCtx>,
    /// The passes, and the watch of kept DHCP clients.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl HealService {
    pub fn new(ctx: Arc<DaemonCtx>) -> HealService {
        HealService {
            ctx,
            tasks: Mutex::new(Vec::new()),
        }
    }
}

/// One pass: check every record, repair the host side, log what changed.
/// `reported` holds what could not be repaired last time, so that a
/// difference that stays is logged once, not every pass.
async fn pass(ctx: &DaemonCtx, why: &str, reported: &mut BTreeSet<String>) {
    let drifts = match pipework_core::check::check(
        None,
        ctx.drivers.as_ref(),
        &ctx.settings,
        RepairScope::HostSide,
    )
    .await
    {
        Ok(d) => d,
        Err(e) => {
            warn!("heal: cannot check the attachments ({why}): {e}");
            return;
        }
    };
    let mut now = BTreeSet::new();
    for d in drifts {
        match &d.finding.repair {
            Repair::Repaired => info!("healed ({why}): {}", d.line()),
            _ => {
                let line = d.line();
                if !reported.contains(&line) {
                    warn!("heal: {line}");
                }
                now.insert(line);
            }
        }
    }
    *reported = now;
}

/// Starts kept DHCP clients that exited again, each on a task of its own,
/// for as long as the daemon runs.
async fn keep_clients(ctx: Arc<DaemonCtx>) {
    let mut running: HashMap<PathBuf, JoinHandle<Result<Restarted>>> = HashMap::new();
    // When a restart last failed: retried after `PERIOD`, logged once.
    let mut failed: HashMap<PathBuf, Instant> = HashMap::new();
    loop {
        tokio::time::sleep(CLIENT_WATCH).await;
        for (dir, h) in std::mem::take(&mut running) {
            if !h.is_finished() {
                running.insert(dir, h);
                continue;
            }
            match h.await {
                Ok(Ok(Restarted::Leased { guest, interface })) => {
                    failed.remove(&dir);
                    info!("healed: the kept DHCP client of {guest} {interface} exited; started again, it has its lease");
                }
                Ok(Ok(Restarted::NotNeeded)) => {
                    failed.remove(&dir);
                }
                Ok(Err(e)) => {
                    if failed.insert(dir.clone(), Instant::now()).is_none() {
                        warn!("heal: the kept DHCP client of {} exited and could not be started again: {e}", dir.display());
                    }
                }
                Err(e) => warn!(
                    "heal: restarting the kept DHCP client of {}: {e}",
                    dir.display()
                ),
            }
        }
        let s = ctx.settings.clone();
        let dead =
            tokio::task::spawn_blocking(move || pipework_dhcp::compat::dead_kept_clients(&s))
                .await
                .unwrap_or_default();
        for dir in dead {
            let retry_later = failed.get(&dir).is_some_and(|t| t.elapsed() < PERIOD);
            if running.contains_key(&dir) || retry_later {
                continue;
            }
            let ctx = ctx.clone();
            let d = dir.clone();
            let task =
                tokio::spawn(async move { kept_client::restart_dead(&ctx.settings, &d).await });
            running.insert(dir, task);
        }
    }
}

#[async_trait]
impl Service for HealService {
    fn name(&self) -> &'static str {
        "heal"
    }

    async fn start(&self) -> Result<()> {
        let ctx = self.ctx.clone();
        let passes = tokio::spawn(async move {
            let mut reported = BTreeSet::new();
            let mut why = "the daemon started".to_string();
            loop {
                pass(&ctx, &why, &mut reported).await;
                why = tokio::select! {
                    w = ctx.drivers.changed(&ctx.settings) => w,
                    _ = tokio::time::sleep(PERIOD) => "periodic check".to_string(),
                };
            }
        });
        let clients = tokio::spawn(keep_clients(self.ctx.clone()));
        if let Ok(mut t) = self.tasks.lock() {
            t.extend([passes, clients]);
        }
        Ok(())
    }

    /// `check`: one pass now, answered with what it found.
    async fn handle(
        &self,
        op: &str,
        _args: Value,
        _fds: Vec<OwnedFd>,
        _hangup: Hangup,
    ) -> Result<Value> {
        if op != "check" {
            return Err(Error::usage(format!("heal: no operation '{op}'")));
        }
        let drifts = pipework_core::check::check(
            None,
            self.ctx.drivers.as_ref(),
            &self.ctx.settings,
            RepairScope::HostSide,
        )
        .await?;
        Ok(json!(drifts.iter().map(|d| d.json()).collect::<Vec<_>>()))
    }

    /// Healing alone does not keep an on-demand daemon running.
    fn busy(&self) -> bool {
        false
    }

    async fn stop(&self) {
        let tasks = self.tasks.lock().map(|mut t| std::mem::take(&mut *t));
        for t in tasks.unwrap_or_default() {
            t.abort();
        }
    }
}
