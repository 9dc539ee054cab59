//! IPv6 stateless autoconfiguration on request (`--slaac`): the interface
//! accepts router advertisements even where forwarding is on, and the attach
//! waits for the address the kernel derives from an advertised prefix.

use std::io;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::error::{Context, Error, Result};
use pipework_sys::netlink::Netlink;
use pipework_sys::netns::Netns;

/// Sets `accept_ra` to 2 (accept even when forwarding) and `autoconf` to 1
/// for `ifname` inside `ns`. Done before the link comes up, so its first
/// router solicitation already counts. The settings belong to the link and
/// go with it.
pub async fn enable(ns: &Netns, ifname: &str) -> Result<()> {
    let name = ifname.to_string();
    ns.run_async(move || -> io::Result<()> {
        // /proc/sys/net shows the namespace of the thread that opens it.
        for (key, value) in [("accept_ra", "2"), ("autoconf", "1")] {
            std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/{key}"), value)?;
        }
        Ok(())
    })
    .await
    .and_then(|r| r)
    .step("enable router advertisements")
}

/// Waits for a global IPv6 address that is not one of `known` and has
/// finished duplicate address detection.
pub async fn wait(
    nl: &Netlink,
    ifindex: u32,
    known: &[IpNet],
    timeout: Duration,
) -> Result<Vec<IpNet>> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        let found: Vec<IpNet> = nl
            .addresses(ifindex)
            .await?
            .into_iter()
            .filter(|a| a.address.addr().is_ipv6() && !a.scope_link && !a.tentative)
            .map(|a| a.address)
            .filter(|a| !known.contains(a))
            .collect();
        if !found.is_empty() {
            return Ok(found);
        }
        if start.elapsed() >= timeout {
            return Err(Error::timeout(format!(
                "no router advertisement gave an IPv6 address within {:.0}s",
                timeout.as_secs_f64()
            ))
            .context("step SLAAC"));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}
