//! Waiting for an interface to be ready: up, with carrier, with its addresses
//! and no IPv6 address still doing duplicate address detection.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use pipework_sys::netlink::Netlink;

/// The interface alias an attach in progress gives the guest link, from
/// the request that brings it up until its last step: the link is up with
/// carrier before its addresses, routes and lease are there, and a guest
/// has no other way to see that pipework is still at work on it (its
/// `/run/pipework` is not the host's). Links moved in from the host
/// (`--direct-phys`, SR-IOV VFs) keep their host name in the alias and get
/// no marker.
pub const ATTACHING_ALIAS: &str = "pipework: attaching";

/// What `--wait` waits for, besides the link being there, up, with carrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// Nothing more (`--link-only`): the original's check.
    Carrier,
    /// The default: pipework's attach of it finished (so the addresses,
    /// routes and lease that attach configured are there, and nothing with
    /// `0/0`), and no address still in duplicate address detection.
    Configured,
    /// `--address`: [`WaitFor::Configured`] and an address that is not
    /// IPv6 link-local, whoever adds it (a DHCP client run in the guest).
    Address,
}

/// What "ready" means for `--wait`.
#[derive(Clone, Debug)]
pub struct Readiness {
    pub ifname: String,
    pub wait_for: WaitFor,
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
    if r.wait_for == WaitFor::Carrier {
        return Ok(None);
    }
    if l.alias.as_deref() == Some(ATTACHING_ALIAS) {
        return Ok(Some(format!("pipework is still attaching {}", r.ifname)));
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
    if r.wait_for == WaitFor::Address && !addrs.iter().any(|a| !a.scope_link) {
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
