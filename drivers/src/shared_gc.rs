//! `gc` of the shared objects (`pipework_base::shared`): a bridge pipework
//! made that no port uses any more, an 802.1Q sub-interface or a shim whose
//! users are all gone, and accounts naming links that are not there. What
//! an attach killed after creating one of them, and before its journal
//! could say so, leaves behind; and what records lost along the way leave.

use pipework_base::error::{Context, Result};
use pipework_base::settings::Settings;
use pipework_base::shared::SharedKind;
use pipework_base::state::StateDir;
use pipework_sys::netlink::Netlink;
use tracing::warn;

use crate::{bridge, shim, vlan};

pub async fn gc(settings: &Settings) -> Result<Vec<String>> {
    let state = StateDir::open(&settings.state_dir)?;
    let mut kinds = Vec::new();
    for kind in [SharedKind::Bridge, SharedKind::Vlan, SharedKind::Shim] {
        let names = state.shared_names(kind)?;
        if !names.is_empty() {
            kinds.push((kind, names));
        }
    }
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let host = Netlink::connect_here("host").step("open netlink")?;
    let mut removed = Vec::new();
    for (kind, names) in kinds {
        for name in names {
            let shared = state.shared(kind, &name);
            let _lock = shared.lock(true).await?;
            let res = match kind {
                SharedKind::Bridge => bridge::release_if_empty(&host, &shared).await,
                SharedKind::Vlan => vlan::release_if_unused(&host, &shared).await,
                SharedKind::Shim => shim::release_if_unused(&host, &shared).await,
            };
            match res {
                Ok(true) => removed.push(match kind {
                    SharedKind::Bridge => format!("bridge {name} (pipework made it; no port left)"),
                    SharedKind::Vlan => {
                        format!("802.1Q sub-interface {name} (pipework made it; no user left)")
                    }
                    SharedKind::Shim => format!("host shim {name} (no user left)"),
                }),
                Ok(false) => {}
                Err(e) => warn!("gc: {name}: {e}"),
            }
        }
    }
    Ok(removed)
}
