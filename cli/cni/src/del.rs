//! DEL and GC: the attachments go, found by their labels, whether their
//! namespace still exists or not; the journal each recorded undoes them.

use pipework_core::detach::detach_matching;

use crate::config::CniError;
use crate::env::Env;
use crate::request::{is_ours, LABEL_CONTAINER, LABEL_IFNAME, LABEL_NETWORK};
use crate::{from_core, Invocation};

/// DEL: idempotent; a second DEL, or one for an ADD that failed, succeeds.
pub(crate) async fn del(inv: &Invocation<'_>) -> Result<(), CniError> {
    let env = Env::parse(inv.env, false)?;
    let (cid, ifname) = (env.container_id.clone(), env.ifname.to_string());
    // Works with the namespace gone: the host side is found by the labels.
    detach_matching(|r| is_ours(r, &cid, &ifname), inv.drivers, inv.settings)
        .await
        .map_err(from_core)?;
    inv.delegate("DEL")?;
    Ok(())
}

/// GC: drops the attachments of this network that the runtime no longer
/// lists in `cni.dev/valid-attachments`.
pub(crate) async fn gc(inv: &Invocation<'_>) -> Result<(), CniError> {
    let valid = inv.conf.valid_attachments.as_deref().unwrap_or_default();
    let network = &inv.conf.name;
    detach_matching(
        |r| {
            r.labels.get(LABEL_NETWORK) == Some(network)
                && !valid.iter().any(|v| {
                    r.labels.get(LABEL_CONTAINER) == Some(&v.container_id)
                        && r.labels.get(LABEL_IFNAME) == Some(&v.ifname)
                })
        },
        inv.drivers,
        inv.settings,
    )
    .await
    .map_err(from_core)?;
    inv.delegate("GC")?;
    Ok(())
}
