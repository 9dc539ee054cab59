//! STATUS: whether this plugin can serve ADD now.

use pipework_core::netlink::Netlink;
use pipework_core::state::StateDir;

use crate::config::{code, CniError};
use crate::{invalid, Invocation};

pub(crate) async fn status(inv: &Invocation<'_>) -> Result<(), CniError> {
    let unavailable = |m: String| CniError::new(code::NOT_AVAILABLE, m);
    StateDir::open(&inv.settings.state_dir).map_err(|e| unavailable(e.to_string()))?;
    Netlink::connect_here("host").map_err(|e| unavailable(format!("no netlink: {e}")))?;
    if inv.conf.host.is_none() && inv.conf.host_mac.is_none() {
        return Err(invalid("the configuration needs 'host' or 'hostMac'"));
    }
    inv.delegate("STATUS")?;
    Ok(())
}
