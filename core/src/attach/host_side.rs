//! What the attaches of one command share on the host: the state directory
//! (opened and verified once), the host's namespace and one netlink socket
//! in it. A single attach opens them for itself; `apply` opens them once per
//! worker thread and hands them to every attach that thread runs, so its
//! hundreds of attaches do not each open, verify and close them again.

use pipework_base::error::{Context, Result};
use pipework_base::settings::Settings;
use pipework_base::state::StateDir;
use pipework_sys::bridge_arp::BridgeArp;
use pipework_sys::netlink::Netlink;
use pipework_sys::netns::Netns;

pub struct HostSide {
    pub(crate) state: StateDir,
    pub(crate) ns: Netns,
    /// Requests of concurrent attaches share it, one at a time: each reads
    /// the replies to its own sequence number (the socket joins no
    /// multicast group, so nothing else arrives on it).
    pub(crate) netlink: Netlink,
    /// `apply` announces the IPv4 addresses of guests on untagged Linux
    /// bridge ports through it, outside the link-change lock (see
    /// [`pipework_sys::bridge_arp`]); `None`: every attach has the kernel
    /// announce them.
    pub(crate) bridge_arp: Option<BridgeArp>,
}

impl HostSide {
    /// Opens them in the calling thread's namespace, which must be the
    /// host's. The netlink socket is registered with the current tokio
    /// runtime: use the value on that runtime only.
    pub fn open(settings: &Settings) -> Result<HostSide> {
        let state = StateDir::open(&settings.state_dir)?;
        let ns = Netns::current().step("open host namespace")?;
        let netlink = Netlink::connect_here("host").step("open netlink")?;
        Ok(HostSide {
            state,
            ns,
            netlink,
            bridge_arp: None,
        })
    }

    /// For many attaches at once: opens the packet socket they announce
    /// through (closing it costs an RCU grace period, once). Without it
    /// (no `CAP_NET_RAW`...) they announce as a single attach does.
    pub fn with_bridge_arp(mut self) -> HostSide {
        match BridgeArp::open() {
            Ok(a) => self.bridge_arp = Some(a),
            Err(e) => tracing::debug!("no packet socket for gratuitous ARP: {e}"),
        }
        self
    }

    pub fn state(&self) -> &StateDir {
        &self.state
    }
}
