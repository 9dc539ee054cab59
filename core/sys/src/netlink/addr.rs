//! Interface addresses.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope, CacheInfo,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NlError};

/// An address as read back from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub address: IpNet,
    /// IPv6 duplicate address detection still running.
    pub tentative: bool,
    pub dad_failed: bool,
    pub scope_link: bool,
}

fn family(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn message(index: u32, net: &IpNet) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = family(&net.addr());
    m.header.prefix_len = net.prefix_len();
    m.header.index = index;
    m.attributes.push(AddressAttribute::Local(net.addr()));
    if let IpNet::V4(n) = net {
        m.attributes.push(AddressAttribute::Address(net.addr()));
        if n.prefix_len() < 31 {
            m.attributes
                .push(AddressAttribute::Broadcast(n.broadcast()));
        }
    } else {
        m.attributes.push(AddressAttribute::Address(net.addr()));
    }
    m
}

impl Netlink {
    /// Adds an address; with `nodad` an IPv6 address is usable at once.
    pub async fn add_address(&self, index: u32, net: &IpNet, nodad: bool) -> Result<(), NlError> {
        let mut m = message(index, net);
        if nodad && net.addr().is_ipv6() {
            m.header.flags |= AddressHeaderFlags::Nodad;
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("add address {net}"),
        )
        .await
        .map(drop)
    }

    /// Adds an address (or, with `replace`, updates the one already there)
    /// with finite lifetimes: the kernel removes it by itself when `valid`
    /// runs out, so a leased address cannot outlive its lease even if
    /// nobody is left to renew it. `u32::MAX` is forever.
    pub async fn set_address_lifetime(
        &self,
        index: u32,
        net: &IpNet,
        valid: u32,
        preferred: u32,
        replace: bool,
    ) -> Result<(), NlError> {
        let mut m = message(index, net);
        let mut ci = CacheInfo::default();
        ci.ifa_preferred = preferred.min(valid);
        ci.ifa_valid = valid;
        m.attributes.push(AddressAttribute::CacheInfo(ci));
        let flags = if replace {
            NLM_F_CREATE | NLM_F_REPLACE
        } else {
            NLM_F_CREATE | NLM_F_EXCL
        };
        self.request(RouteNetlinkMessage::NewAddress(m), flags, || {
            format!("set address {net} (valid {valid}s)")
        })
        .await
        .map(drop)
    }

    pub async fn delete_address(&self, index: u32, net: &IpNet) -> Result<(), NlError> {
        self.request(
            RouteNetlinkMessage::DelAddress(message(index, net)),
            0,
            || format!("delete address {net}"),
        )
        .await
        .map(drop)
    }

    /// The addresses of one link (all links when `index` is 0).
    pub async fn addresses(&self, index: u32) -> Result<Vec<Address>, NlError> {
        let mut m = AddressMessage::default();
        m.header.index = index;
        let v = self
            .request(RouteNetlinkMessage::GetAddress(m), NLM_F_DUMP, || {
                "list addresses".to_string()
            })
            .await?;
        let mut out = Vec::new();
        for r in v {
            let RouteNetlinkMessage::NewAddress(a) = r else {
                continue;
            };
            if index != 0 && a.header.index != index {
                continue;
            }
            let mut ip = None;
            let mut flags = AddressFlags::from_bits_retain(u32::from(a.header.flags.bits()));
            for at in &a.attributes {
                match at {
                    AddressAttribute::Local(x) => ip = Some(*x),
                    AddressAttribute::Address(x) if ip.is_none() => ip = Some(*x),
                    AddressAttribute::Flags(f) => flags = *f,
                    _ => {}
                }
            }
            let Some(ip) = ip else { continue };
            let Ok(address) = IpNet::new(ip, a.header.prefix_len) else {
                continue;
            };
            out.push(Address {
                index: a.header.index,
                address,
                tentative: flags.contains(AddressFlags::Tentative),
                dad_failed: flags.contains(AddressFlags::Dadfailed),
                scope_link: a.header.scope == AddressScope::Link,
            });
        }
        Ok(out)
    }
}
