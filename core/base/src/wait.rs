//! Waiting for an interface to be ready: up, with carrier, with its addresses
//! and no IPv6 address still doing duplicate address detection.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use pipework_sys::netlink::Netlink;

/// What "ready" means for `--wait`.
#[derive(Clone, Debug)]
pub struct Readiness {
    pub ifname: String,
    /// Require at least one address that is not IPv6 link-local.
    pub need_address: bool,
    /// `None`: wait forever, like the original.
    pub timeout: Option<Duration>,
}

/// Why the interface is not ready yet, for the timeout message.
async fn not_ready(nl: &Netlink, r: &Readiness) -> Result<Option<String>> {
    let Some(l) = nl.link_by_name(&r.ifname).await? else {
        return Ok(Some(format!("{} does not exist", r.ifname)));
    };
    if !l.up {
        return Ok(Some(format!("{} is down", r.ifname)));
    }
    if !l.carrier {
        return Ok(Some(format!("{} has no carrier", r.ifname)));
    }
    let addrs = nl.addresses(l.index).await?;
    if let Some(a) = addrs.iter().find(|a| a.dad_failed) {
        return Err(Error::failed(format!(
            "{}: duplicate address detected for {}",
            r.ifname, a.address
        )));
    }
    if let Some(a) = addrs.iter().find(|a| a.tentative) {
        return Ok(Some(format!(
            "{} is still in duplicate address detection",
            a.address
        )));
    }
    if r.need_address && !addrs.iter().any(|a| !a.scope_link) {
        return Ok(Some(format!("{} has no address yet", r.ifname)));
    }
    Ok(None)
}

/// Blocks until ready, polling (cheap: two netlink requests per round).
pub async fn wait_ready(nl: &Netlink, r: &Readiness) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        crate::interrupt::check()?;
        let why = not_ready(nl, r).await?;
        let Some(why) = why else { return Ok(()) };
        if let Some(t) = r.timeout {
            if start.elapsed() >= t {
                return Err(Error::timeout(format!(
                    "{} not ready after {:.1}s: {why}",
                    r.ifname,
                    t.as_secs_f64()
                )));
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Waits until none of `addrs` on `ifindex` is tentative; fails on DAD failure.
pub async fn wait_dad(
    nl: &Netlink,
    ifindex: u32,
    addrs: &[IpAddr],
    timeout: Duration,
) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        crate::interrupt::check()?;
        let cur = nl.addresses(ifindex).await?;
        let ours: Vec<_> = cur
            .iter()
            .filter(|a| addrs.contains(&a.address.addr()))
            .collect();
        if let Some(a) = ours.iter().find(|a| a.dad_failed) {
            return Err(Error::failed(format!(
                "duplicate address detection failed for {}: another host uses it",
                a.address
            )));
        }
        if !ours.iter().any(|a| a.tentative) {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(Error::timeout(format!(
                "IPv6 duplicate address detection did not finish in {:.1}s",
                timeout.as_secs_f64()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
