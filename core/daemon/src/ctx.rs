//! What the daemon's services share.

use std::sync::Arc;

use tokio::sync::broadcast;

use pipework_base::driver::DriverSet;
use pipework_base::settings::Settings;
use pipework_base::state::StateDir;
use pipework_dhcp::store::LeaseStore;
use pipework_sys::netlink::Netlink;
use pipework_sys::netns::Netns;

/// What every service may use.
pub struct DaemonCtx {
    pub settings: Settings,
    pub state: StateDir,
    pub leases: LeaseStore,
    /// rtnetlink and the namespace of the host (for undo contexts).
    pub host: Netlink,
    pub host_ns: Netns,
    pub drivers: Arc<dyn DriverSet>,
    /// Removals under `/run/netns`, for guests that are named namespaces.
    pub netns_events: Option<broadcast::Sender<()>>,
    /// Held while a lease writes or gives up the guest's `resolv.conf`
    /// and saves that it did: the two leases of one interface share the
    /// file (see `pipework_dhcp::resolv_share`).
    pub resolv_lock: tokio::sync::Mutex<()>,
}
