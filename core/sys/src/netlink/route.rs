//! Routes, as plain serialisable values so the journal can record them and
//! put them back.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric,
    RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use serde::{Deserialize, Serialize};

use super::{Netlink, NlError};
use pipework_model::Family;

/// The main routing table.
pub const RT_TABLE_MAIN: u32 = 254;

/// A route table id (`main` is 254).
pub type RouteTable = u32;

/// A route, complete enough to add it, find it again and delete it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    pub family: Family,
    /// `None` is the default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Output interface index in the namespace the route lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oif: Option<u32>,
    pub table: RouteTable,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// `RT_SCOPE_*`: 0 universe, 253 link, 254 host.
    pub scope: u8,
    /// `RTPROT_*`: 3 boot (what `ip route add` uses), 4 static.
    pub protocol: u8,
    /// `RTN_*`: 1 unicast, 6 blackhole, 7 unreachable, 8 prohibit.
    pub kind: u8,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub onlink: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RTPROT_BOOT: u8 = 3;
pub const RTN_UNICAST: u8 = 1;

impl RouteSpec {
    /// A unicast route in the main table, protocol boot, universe scope.
    pub fn new(family: Family) -> RouteSpec {
        RouteSpec {
            family,
            destination: None,
            gateway: None,
            oif: None,
            table: RT_TABLE_MAIN,
            metric: None,
            scope: RT_SCOPE_UNIVERSE,
            protocol: RTPROT_BOOT,
            kind: RTN_UNICAST,
            onlink: false,
            source: None,
            mtu: None,
        }
    }

    /// The default route via `gw` out of `oif`.
    pub fn default_via(gw: IpAddr, oif: u32) -> RouteSpec {
        RouteSpec {
            gateway: Some(gw),
            oif: Some(oif),
            ..RouteSpec::new(Family::of(&gw))
        }
    }

    /// A host route (/32 or /128) to `ip` straight out of `oif`.
    pub fn host_on_link(ip: IpAddr, oif: u32) -> RouteSpec {
        let len = if ip.is_ipv4() { 32 } else { 128 };
        RouteSpec {
            destination: Some(IpNet::new(ip, len).expect("host prefix")),
            oif: Some(oif),
            scope: RT_SCOPE_LINK,
            ..RouteSpec::new(Family::of(&ip))
        }
    }

    pub fn is_default(&self) -> bool {
        self.destination.is_none_or(|d| d.prefix_len() == 0)
    }

    fn to_message(&self) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = match self.family {
            Family::V4 => AddressFamily::Inet,
            Family::V6 => AddressFamily::Inet6,
        };
        m.header.protocol = RouteProtocol::from(self.protocol);
        m.header.scope = RouteScope::from(self.scope);
        m.header.kind = RouteType::from(self.kind);
        if self.table < 256 {
            m.header.table = self.table as u8;
        } else {
            m.header.table = RouteHeader::RT_TABLE_UNSPEC;
        }
        m.attributes.push(RouteAttribute::Table(self.table));
        if let Some(d) = self.destination.filter(|d| d.prefix_len() > 0) {
            m.header.destination_prefix_length = d.prefix_len();
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(d.network())));
        }
        if let Some(g) = self.gateway {
            m.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(g)));
        }
        if let Some(o) = self.oif {
            m.attributes.push(RouteAttribute::Oif(o));
        }
        if let Some(p) = self.metric {
            m.attributes.push(RouteAttribute::Priority(p));
        }
        if let Some(s) = self.source {
            m.attributes
                .push(RouteAttribute::PrefSource(RouteAddress::from(s)));
        }
        if let Some(mtu) = self.mtu {
            m.attributes
                .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(mtu)]));
        }
        if self.onlink {
            m.header.flags |= RouteFlags::Onlink;
        }
        m
    }

    fn from_message(m: &RouteMessage) -> Option<RouteSpec> {
        let family = match m.header.address_family {
            AddressFamily::Inet => Family::V4,
            AddressFamily::Inet6 => Family::V6,
            _ => return None,
        };
        let mut r = RouteSpec {
            family,
            destination: None,
            gateway: None,
            oif: None,
            table: u32::from(m.header.table),
            metric: None,
            scope: u8::from(m.header.scope),
            protocol: u8::from(m.header.protocol),
            kind: u8::from(m.header.kind),
            onlink: m.header.flags.contains(RouteFlags::Onlink),
            source: None,
            mtu: None,
        };
        let ip = |a: &RouteAddress| match a {
            RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
            RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
            _ => None,
        };
        for a in &m.attributes {
            match a {
                RouteAttribute::Table(t) => r.table = *t,
                RouteAttribute::Destination(d) => {
                    r.destination =
                        ip(d).and_then(|d| IpNet::new(d, m.header.destination_prefix_length).ok())
                }
                RouteAttribute::Gateway(g) => r.gateway = ip(g),
                RouteAttribute::Oif(o) => r.oif = Some(*o),
                RouteAttribute::Priority(p) => r.metric = Some(*p),
                RouteAttribute::PrefSource(s) => r.source = ip(s),
                RouteAttribute::Metrics(ms) => {
                    for x in ms {
                        if let RouteMetric::Mtu(v) = x {
                            r.mtu = Some(*v);
                        }
                    }
                }
                _ => {}
            }
        }
        if r.destination.is_none() && m.header.destination_prefix_length == 0 {
            r.destination = None;
        }
        Some(r)
    }
}

impl std::fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.destination {
            Some(d) if d.prefix_len() > 0 => write!(f, "{d}")?,
            _ => f.write_str("default")?,
        }
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(o) = self.oif {
            write!(f, " dev #{o}")?;
        }
        if self.table != RT_TABLE_MAIN {
            write!(f, " table {}", self.table)?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        Ok(())
    }
}

impl Netlink {
    /// Adds a route; with `replace` an existing route with the same key
    /// (destination, table, metric) is swapped atomically.
    pub async fn add_route(&self, r: &RouteSpec, replace: bool) -> Result<(), NlError> {
        let flags = if replace {
            NLM_F_CREATE | NLM_F_REPLACE
        } else {
            NLM_F_CREATE | NLM_F_EXCL
        };
        self.request(RouteNetlinkMessage::NewRoute(r.to_message()), flags, || {
            format!("{} route {r}", if replace { "replace" } else { "add" })
        })
        .await
        .map(drop)
    }

    pub async fn delete_route(&self, r: &RouteSpec) -> Result<(), NlError> {
        let mut m = r.to_message();
        // Any protocol and scope match on delete, as `ip route del` does.
        m.header.protocol = RouteProtocol::Unspec;
        m.header.scope = RouteScope::NoWhere;
        m.header.kind = RouteType::Unspec;
        self.request(RouteNetlinkMessage::DelRoute(m), 0, || {
            format!("delete route {r}")
        })
        .await
        .map(drop)
    }

    /// The unicast routes of one family in one table.
    pub async fn routes(
        &self,
        family: Family,
        table: RouteTable,
    ) -> Result<Vec<RouteSpec>, NlError> {
        let mut m = RouteMessage::default();
        m.header.address_family = match family {
            Family::V4 => AddressFamily::Inet,
            Family::V6 => AddressFamily::Inet6,
        };
        let v = self
            .request(RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP, || {
                "list routes".to_string()
            })
            .await?;
        Ok(v.iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(m) => RouteSpec::from_message(m),
                _ => None,
            })
            .filter(|r| r.table == table)
            .collect())
    }

    /// Default routes of the main table, lowest metric first.
    pub async fn default_routes(&self, family: Family) -> Result<Vec<RouteSpec>, NlError> {
        let mut v: Vec<RouteSpec> = self
            .routes(family, RT_TABLE_MAIN)
            .await?
            .into_iter()
            .filter(|r| r.is_default() && r.kind == RTN_UNICAST)
            .collect();
        v.sort_by_key(|r| r.metric.unwrap_or(0));
        Ok(v)
    }
}
