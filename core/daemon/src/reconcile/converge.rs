//! Looking at one container and making its attachments match.

use std::collections::BTreeMap;

use tracing::{info, warn};

use super::Shared;
use crate::declare::container::{declarations, Facts};
use crate::declare::ensure::{ensure, Outcome};
use crate::declare::{labels, plan};
use pipework_base::docker::ContainerInfo;
use pipework_base::guest::Guest;
use pipework_base::state::AttachmentRecord;
use pipework_core::attach::HostSide;
use pipework_core::detach::detach_matching;
use pipework_model::GuestRef;

/// Looks at one container; false when something failed and another look
/// later may do better (a DHCP server that was down, a bridge not there yet).
#[tracing::instrument(name = "reconcile", skip(sh), fields(container = %id))]
pub(super) async fn one(sh: &Shared, id: &str) -> bool {
    match sh.client.inspect(id).await {
        Ok(Some(c)) if c.state.running && c.state.pid > 0 => converge(sh, &c).await,
        Ok(_) => teardown(sh, id, |_| true).await,
        // The engine went away: its next sweep looks again.
        Err(e) => {
            warn!(container = %id, "cannot inspect: {e}");
            true
        }
    }
}

async fn converge(sh: &Shared, c: &ContainerInfo) -> bool {
    let facts = Facts::of(c);
    let Some((decls, errors)) = declarations(&facts, sh.cfg.key.as_deref()) else {
        return teardown(sh, &c.id, |_| true).await;
    };
    for e in errors {
        warn!(container = %facts.name, "{e}");
    }
    if decls.is_empty() {
        // Not ours (or no longer: its declarations cannot be expanded).
        return teardown(sh, &c.id, |_| true).await;
    }
    let gref = GuestRef::Container(facts.name.clone());
    let guest =
        match Guest::from_container_pid(c.state.pid as u32, &c.id, &facts.name, gref.clone()) {
            Ok(g) => g,
            // It stopped since the inspect: its die event brings us back.
            Err(e) => {
                warn!(container = %facts.name, "{e}");
                return true;
            }
        };
    let (here, pid) = (guest.info.netns, guest.info.pid);
    // What an earlier run of the container had (it restarted; its new
    // namespace may even reuse the old one's inode number).
    let mut ok = teardown(sh, &c.id, |r| r.guest.netns != here || r.guest.pid != pid).await;
    let (intents, errors) = plan(&decls, sh.cfg.parse, Some(&gref), Some(&facts.name));
    for e in errors {
        warn!(container = %facts.name, "{e}");
    }
    let owner = BTreeMap::from([
        (labels::OWNER.to_string(), "reconciler".to_string()),
        (labels::CONTAINER.to_string(), c.id.clone()),
    ]);
    let drivers = sh.ctx.drivers.as_ref();
    // Opened once for the container's interfaces; if it cannot be, each
    // would have failed opening it: said once, and the teardown still runs.
    let host = if intents.is_empty() {
        None
    } else {
        match HostSide::open(&sh.ctx.settings) {
            Ok(h) => Some(h),
            Err(e) => {
                warn!(container = %facts.name, "{e}");
                ok = false;
                None
            }
        }
    };
    if let Some(host) = &host {
        for intent in &intents {
            match ensure(host, &guest, intent, &owner, drivers, &sh.ctx.settings).await {
                Ok(Outcome::Unchanged) => {}
                Ok(o) => {
                    info!(container = %facts.name, interface = %intent.ifname, "{}", o.as_str())
                }
                Err(e) => {
                    warn!(container = %facts.name, "{e}");
                    ok = false;
                }
            }
        }
    }
    // Interfaces no longer declared.
    ok &= teardown(sh, &c.id, |r| {
        r.guest.netns == here
            && r.guest.pid == pid
            && !intents.iter().any(|i| i.ifname == r.interface)
    })
    .await;
    ok
}

/// Detaches the container's records that `pick` selects.
async fn teardown(sh: &Shared, id: &str, pick: impl Fn(&AttachmentRecord) -> bool) -> bool {
    let select = |r: &AttachmentRecord| {
        r.labels.get(labels::CONTAINER).map(String::as_str) == Some(id) && pick(r)
    };
    match detach_matching(select, sh.ctx.drivers.as_ref(), &sh.ctx.settings).await {
        Ok(done) => {
            for r in done {
                info!(container = %r.guest.name, interface = %r.interface, "detached");
            }
            true
        }
        Err(e) => {
            warn!(container = %id, "{e}");
            false
        }
    }
}
