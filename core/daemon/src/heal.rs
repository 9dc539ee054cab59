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
//! A watch looks for such deaths every few seconds and runs a pass when it
//! sees a new one; a client that cannot be started again is retried by the
//! periodic pass and logged once.

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::ctx::DaemonCtx;
use crate::service::{Hangup, Service};
use pipework_base::drift::{Repair, RepairScope};
use pipework_base::error::{Error, Result};

/// The pass that runs even when no event came.
const PERIOD: Duration = Duration::from_secs(30);

/// How often the watch looks for kept DHCP clients that exited (a scan of
/// `/proc` per client).
const CLIENT_WATCH: Duration = Duration::from_secs(3);

pub struct HealService {
    ctx: Arc<DaemonCtx>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl HealService {
    pub fn new(ctx: Arc<DaemonCtx>) -> HealService {
        HealService {
            ctx,
            task: Mutex::new(None),
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

/// Returns once a kept DHCP client not seen dead before has exited.
/// `known` holds the dead ones seen, so that one the pass could not start
/// again does not wake it every few seconds (the periodic pass retries).
async fn a_kept_client_died(
    settings: &pipework_base::settings::Settings,
    known: &mut BTreeSet<PathBuf>,
) -> String {
    loop {
        tokio::time::sleep(CLIENT_WATCH).await;
        let s = settings.clone();
        let dead: BTreeSet<PathBuf> =
            tokio::task::spawn_blocking(move || pipework_dhcp::compat::dead_kept_clients(&s))
                .await
                .unwrap_or_default()
                .into_iter()
                .collect();
        let new = dead.difference(known).next().cloned();
        *known = dead;
        if let Some(d) = new {
            return format!("the kept DHCP client of {} exited", d.display());
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
        let task = tokio::spawn(async move {
            let mut reported = BTreeSet::new();
            let mut why = "the daemon started".to_string();
            let mut dead_clients = BTreeSet::new();
            loop {
                pass(&ctx, &why, &mut reported).await;
                why = tokio::select! {
                    w = ctx.drivers.changed(&ctx.settings) => w,
                    w = a_kept_client_died(&ctx.settings, &mut dead_clients) => w,
                    _ = tokio::time::sleep(PERIOD) => "periodic check".to_string(),
                };
            }
        });
        if let Ok(mut t) = self.task.lock() {
            *t = Some(task);
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
        if let Some(t) = self.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }
}
