//! Kept compatible-mode DHCP clients (`udhcpc-f`, `dhclient-f`, `dhcpcd`)
//! started again once they exited: by `check --repair`, and by the daemon's
//! watch, which gives each its own task so that waiting for a lease never
//! holds back the healing of flows, tags or ports.

use std::path::Path;
use std::time::Duration;

use pipework_base::error::{Error, Result};
use pipework_base::guest::reopen;
use pipework_base::journal::Step;
use pipework_base::settings::Settings;
use pipework_base::state::StateDir;
use pipework_sys::netns::Netns;

/// How long a restarted client's lease is waited for (the attach's own
/// default wait).
const LEASE_WAIT: Duration = Duration::from_secs(30);

/// Starts the kept client of `dir` again, as the attach started it, and
/// waits for its lease: off the async threads, so a daemon keeps serving
/// meanwhile.
pub async fn restart(settings: &Settings, dir: &Path, ns: &Netns) -> Result<()> {
    let settings = settings.clone();
    let dir = dir.to_path_buf();
    let ns = ns.try_clone().map_err(Error::from)?;
    tokio::task::spawn_blocking(move || {
        pipework_dhcp::compat::restart_kept_client(&settings, &dir, &ns, LEASE_WAIT)
    })
    .await
    .map_err(|e| Error::failed("the client's start did not finish").with_source(e))?
}

/// What [`restart_dead`] did.
pub enum Restarted {
    /// Started again and leased: the guest and interface it serves.
    Leased { guest: String, interface: String },
    /// Nothing to do any more: running again, detached, or its guest gone.
    NotNeeded,
}

/// For the daemon: starts again the kept client of `dir` that the watch saw
/// dead, under its guest's lock (as every repair: a detach meanwhile must
/// not see the client come back), if a record still keeps it and it is
/// still dead then.
pub async fn restart_dead(settings: &Settings, dir: &Path) -> Result<Restarted> {
    let state = StateDir::open(&settings.state_dir)?;
    let keeps = |r: &pipework_base::state::AttachmentRecord| {
        r.journal
            .steps()
            .iter()
            .any(|s| matches!(s, Step::CompatClient { dir: d } if d == dir))
    };
    let Some(rec) = state.all()?.into_iter().find(keeps) else {
        return Ok(Restarted::NotNeeded);
    };
    let Some(ns) = reopen(&rec.guest) else {
        return Ok(Restarted::NotNeeded);
    };
    let _lock = state.lock_guest(rec.guest.netns).await?;
    let still = state.load(rec.guest.netns, &rec.interface)?;
    if !still.as_ref().is_some_and(keeps) {
        return Ok(Restarted::NotNeeded);
    }
    if pipework_dhcp::compat::dead_kept_client(settings, dir)?.is_none() {
        return Ok(Restarted::NotNeeded);
    }
    restart(settings, dir, &ns).await?;
    Ok(Restarted::Leased {
        guest: rec.guest.name,
        interface: rec.interface,
    })
}
