//! What tells the daemon that Open vSwitch may have lost flows pipework
//! owns, so that it checks and puts them back.
//!
//! Two sources, because neither sees everything:
//! - an OpenFlow connection held open to each bridge that carries
//!   port-security flows: ovs-vswitchd keeps its flows in memory only, and
//!   a restart (an upgrade, a crash) changes nothing in OVSDB: the
//!   connection closing, then accepting again, is the restart. A bridge
//!   that does not answer is tried again every [`RETRY`].
//! - an OVSDB `monitor` of the rows pipework's ports depend on (the
//!   Open_vSwitch row's `cur_cfg`, bridges' ports, ports' tags,
//!   interfaces' OpenFlow numbers): a bridge deleted and made again, a tag
//!   someone changed, a reconfiguration.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use pipework_base::journal::Step;
use pipework_base::settings::Settings;
use pipework_base::state::StateDir;
use pipework_model::DriverKind;
use pipework_ovsdb_schemas::DATABASE;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::jsonrpc::Connection;
use super::openflow::Switch;
use super::ovsdb::CALL_TIMEOUT;
use super::steps::{read_step, OvsStep};
use super::{remote_of, Remote};

/// How often a bridge that does not answer OpenFlow is tried again.
const RETRY: Duration = Duration::from_millis(100);
/// How often the records are read again for the bridges to follow.
const RESCAN: Duration = Duration::from_secs(1);

/// The follower's connections, kept between calls.
pub(super) struct Follower {
    /// A task per bridge, holding its connection until the switch closes
    /// it, then sending the bridge's name on `closed`.
    switches: BTreeMap<String, JoinHandle<()>>,
    closed_tx: mpsc::UnboundedSender<String>,
    closed: mpsc::UnboundedReceiver<String>,
    /// Bridges whose switch stopped answering: the next answer is news.
    down: BTreeSet<String>,
    monitor: Option<Connection>,
    /// OVSDB was unreachable: the next monitor is news too.
    monitor_lost: bool,
}

impl Default for Follower {
    fn default() -> Follower {
        let (closed_tx, closed) = mpsc::unbounded_channel();
        Follower {
            switches: BTreeMap::new(),
            closed_tx,
            closed,
            down: BTreeSet::new(),
            monitor: None,
            monitor_lost: false,
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        for t in self.switches.values() {
            t.abort();
        }
    }
}

/// The management socket of every bridge that carries port-security flows
/// of a recorded attachment.
fn protected(state: &StateDir) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for rec in state.all().unwrap_or_default() {
        for s in rec.journal.steps() {
            if let Step::Driver {
                driver: DriverKind::Ovs,
                data,
            } = s
            {
                if let Ok(OvsStep::Flows { rundir, bridge, .. }) = read_step(data) {
                    let sock = rundir.join(format!("{bridge}.mgmt"));
                    out.insert(bridge, sock);
                }
            }
        }
    }
    out
}

async fn monitor(remote: &Remote) -> Option<Connection> {
    let mut c = Connection::connect(remote, CALL_TIMEOUT).await.ok()?;
    let cols = |c: &[&str]| json!({ "columns": c });
    let params = json!([
        DATABASE,
        "pipework-heal",
        {
            "Open_vSwitch": cols(&["cur_cfg"]),
            "Bridge": cols(&["name", "ports"]),
            "Port": cols(&["name", "tag", "interfaces"]),
            "Interface": cols(&["name", "ofport"]),
        }
    ]);
    c.call("monitor", params, CALL_TIMEOUT).await.ok()?;
    Some(c)
}

impl Follower {
    /// Returns, with what happened, once flows pipework owns may be gone.
    pub(super) async fn changed(&mut self, settings: &Settings) -> String {
        let state = StateDir::open_read(&settings.state_dir);
        let remote = remote_of(settings).ok();
        let mut scanned: Option<tokio::time::Instant> = None;
        let mut want = BTreeMap::new();
        loop {
            if scanned.is_none_or(|t| t.elapsed() >= RESCAN) {
                want = protected(&state);
                scanned = Some(tokio::time::Instant::now());
                self.switches.retain(|b, t| {
                    let keep = want.contains_key(b);
                    if !keep {
                        t.abort();
                    }
                    keep
                });
                self.down.retain(|b| want.contains_key(b));
            }
            for (bridge, sock) in &want {
                if self.switches.contains_key(bridge) {
                    continue;
                }
                match Switch::connect(sock).await {
                    Ok(mut sw) => {
                        let (b, tx) = (bridge.clone(), self.closed_tx.clone());
                        let task = tokio::spawn(async move {
                            sw.closed().await;
                            let _ = tx.send(b);
                        });
                        self.switches.insert(bridge.clone(), task);
                        if self.down.remove(bridge) {
                            return format!("bridge {bridge} answers OpenFlow again");
                        }
                    }
                    Err(_) => {
                        self.down.insert(bridge.clone());
                    }
                }
            }
            if self.monitor.is_none() {
                if let Some(r) = &remote {
                    self.monitor = monitor(r).await;
                    match (&self.monitor, self.monitor_lost) {
                        (Some(_), true) => {
                            self.monitor_lost = false;
                            return format!("OVSDB at {r} answers again");
                        }
                        (None, _) => self.monitor_lost = true,
                        _ => {}
                    }
                }
            }
            let wait = if self.down.is_empty() && !self.monitor_lost {
                RESCAN
            } else {
                RETRY
            };
            let update = async {
                match self.monitor.as_mut() {
                    Some(m) => m.notification().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(b) = self.closed.recv() => {
                    // A task of a bridge dropped since may still report.
                    if self.switches.remove(&b).is_some() {
                        self.down.insert(b);
                    }
                }
                ok = update => {
                    if ok {
                        return "OVSDB changed rows pipework's ports depend on".to_string();
                    }
                    self.monitor = None;
                    self.monitor_lost = true;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
