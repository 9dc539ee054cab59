//! network-wrapper's MAC scheme (`--mac-scheme network-wrapper`): the
//! guest's MAC carries the last three octets of the host's IPv4 address, so
//! that a MAC seen on the network names the host its container runs on.
//!
//! The host's address is the host interface's (the bridge or parent named
//! on the command line, as network-wrapper read its `br0`'s), else the
//! source of the host's default route (its preferred source, else the first
//! address of its interface): a bridge pipework is about to create has no
//! address yet.

use std::net::{IpAddr, Ipv4Addr};

use pipework_base::error::{Context, Error, Result};
use pipework_model::{Family, MacAddr};
use pipework_sys::netlink::{Link, Netlink};

/// How many candidates to draw before giving up on one no host link has.
const TRIES: usize = 16;

/// A MAC of the scheme that no link of the host namespace has
/// (network-wrapper drew again on a collision).
pub(super) async fn network_wrapper_mac(
    host: &Netlink,
    host_ifname: &str,
    host_link: Option<&Link>,
) -> Result<MacAddr> {
    let ip = host_ipv4(host, host_ifname, host_link).await?;
    let taken: Vec<MacAddr> = host
        .links()
        .await
        .step("list host links")?
        .iter()
        .filter_map(|l| l.mac)
        .collect();
    let mut mac = MacAddr::network_wrapper(ip);
    for _ in 0..TRIES {
        if !taken.contains(&mac) {
            break;
        }
        mac = MacAddr::network_wrapper(ip);
    }
    Ok(mac)
}

fn first_v4(addrs: &[pipework_sys::netlink::Address]) -> Option<Ipv4Addr> {
    addrs.iter().find_map(|a| match a.address.addr() {
        IpAddr::V4(v4) if !a.scope_link => Some(v4),
        _ => None,
    })
}

async fn host_ipv4(host: &Netlink, name: &str, host_link: Option<&Link>) -> Result<Ipv4Addr> {
    if let Some(l) = host_link {
        let addrs = host.addresses(l.index).await.step("read host addresses")?;
        if let Some(ip) = first_v4(&addrs) {
            return Ok(ip);
        }
    }
    for rt in host
        .default_routes(Family::V4)
        .await
        .step("read the host's default route")?
    {
        if let Some(IpAddr::V4(src)) = rt.source {
            return Ok(src);
        }
        if let Some(oif) = rt.oif {
            let addrs = host.addresses(oif).await.step("read host addresses")?;
            if let Some(ip) = first_v4(&addrs) {
                return Ok(ip);
            }
        }
    }
    Err(Error::usage(format!(
        "--mac-scheme network-wrapper needs the host's IPv4 address: {} and no \
         IPv4 default route with a source address (give the host interface an \
         IPv4 address, or a MAC)",
        match host_link {
            Some(_) => format!("{name} has no IPv4 address"),
            None => format!("{name} does not exist yet"),
        }
    )))
}
