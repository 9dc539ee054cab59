//! Whole route messages as plain values, for `pipework route <guest> ...`:
//! what `ip route add|del|show|get|flush` send and read, field for field
//! (header, attributes, multipath nexthops), without the journal's
//! [`super::RouteSpec`] simplifications.

use std::net::IpAddr;

use netlink_packet_core::NLM_F_DUMP;
pub use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteCacheInfo, RouteFlags, RouteHeader, RouteMessage,
    RouteMetric, RouteNextHop, RouteNextHopFlags, RoutePreference, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NlError};
use pipework_model::Family;

/// One nexthop of a multipath route (`struct rtnexthop`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NextHop {
    pub gateway: Option<IpAddr>,
    pub ifindex: u32,
    /// Weight minus one.
    pub hops: u8,
    /// `RTNH_F_*`.
    pub flags: u8,
}

/// A route message (`struct rtmsg` and its attributes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMsg {
    pub family: Family,
    pub dst_len: u8,
    pub src_len: u8,
    pub tos: u8,
    /// Full table id (RTA_TABLE when present, else the header's).
    pub table: u32,
    pub protocol: u8,
    pub scope: u8,
    pub kind: u8,
    /// `RTM_F_*`, `RTNH_F_*` and the cache flags in the high bits.
    pub flags: u32,
    pub dst: Option<IpAddr>,
    pub src: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub iif: Option<u32>,
    pub prefsrc: Option<IpAddr>,
    pub priority: Option<u32>,
    /// `RTAX_*` id and value (congctl is not kept).
    pub metrics: Vec<(u16, u32)>,
    pub pref: Option<u8>,
    pub uid: Option<u32>,
    pub mark: Option<u32>,
    /// From `RTA_CACHEINFO`: expires (clock ticks) and error.
    pub expires: Option<i32>,
    pub error: Option<u32>,
    pub multipath: Vec<NextHop>,
}

impl RouteMsg {
    pub fn new(family: Family) -> RouteMsg {
        RouteMsg {
            family,
            dst_len: 0,
            src_len: 0,
            tos: 0,
            table: 254,
            protocol: 0,
            scope: 0,
            kind: 0,
            flags: 0,
            dst: None,
            src: None,
            gateway: None,
            oif: None,
            iif: None,
            prefsrc: None,
            priority: None,
            metrics: Vec::new(),
            pref: None,
            uid: None,
            mark: None,
            expires: None,
            error: None,
            multipath: Vec::new(),
        }
    }

    pub fn is_cloned(&self) -> bool {
        self.flags & 0x200 != 0
    }

    fn to_message(&self) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = af(self.family);
        m.header.destination_prefix_length = self.dst_len;
        m.header.source_prefix_length = self.src_len;
        m.header.tos = self.tos;
        m.header.protocol = RouteProtocol::from(self.protocol);
        m.header.scope = RouteScope::from(self.scope);
        m.header.kind = RouteType::from(self.kind);
        m.header.flags = RouteFlags::from_bits_retain(self.flags);
        if self.table < 256 {
            m.header.table = self.table as u8;
        } else {
            m.header.table = RouteHeader::RT_TABLE_UNSPEC;
            m.attributes.push(RouteAttribute::Table(self.table));
        }
        let a = &mut m.attributes;
        if let Some(d) = self.dst {
            a.push(RouteAttribute::Destination(RouteAddress::from(d)));
        }
        if let Some(s) = self.src {
            a.push(RouteAttribute::Source(RouteAddress::from(s)));
        }
        if let Some(p) = self.prefsrc {
            a.push(RouteAttribute::PrefSource(RouteAddress::from(p)));
        }
        if let Some(g) = self.gateway {
            a.push(RouteAttribute::Gateway(RouteAddress::from(g)));
        }
        if let Some(p) = self.priority {
            a.push(RouteAttribute::Priority(p));
        }
        if let Some(o) = self.oif {
            a.push(RouteAttribute::Oif(o));
        }
        if let Some(i) = self.iif {
            a.push(RouteAttribute::Iif(i));
        }
        if let Some(p) = self.pref {
            a.push(RouteAttribute::Preference(RoutePreference::from(p)));
        }
        if let Some(u) = self.uid {
            a.push(RouteAttribute::Uid(u));
        }
        if let Some(v) = self.mark {
            a.push(RouteAttribute::Mark(v));
        }
        if !self.metrics.is_empty() {
            a.push(RouteAttribute::Metrics(
                self.metrics
                    .iter()
                    .filter_map(|&(k, v)| metric(k, v))
                    .collect(),
            ));
        }
        if !self.multipath.is_empty() {
            a.push(RouteAttribute::MultiPath(
                self.multipath
                    .iter()
                    .map(|n| {
                        let mut h = RouteNextHop::default();
                        h.flags = RouteNextHopFlags::from_bits_retain(n.flags);
                        h.hops = n.hops;
                        h.interface_index = n.ifindex;
                        if let Some(g) = n.gateway {
                            h.attributes
                                .push(RouteAttribute::Gateway(RouteAddress::from(g)));
                        }
                        h
                    })
                    .collect(),
            ));
        }
        m
    }

    fn from_message(m: &RouteMessage) -> Option<RouteMsg> {
        let family = match m.header.address_family {
            AddressFamily::Inet => Family::V4,
            AddressFamily::Inet6 => Family::V6,
            _ => return None,
        };
        let h = &m.header;
        let mut r = RouteMsg {
            dst_len: h.destination_prefix_length,
            src_len: h.source_prefix_length,
            tos: h.tos,
            table: u32::from(h.table),
            protocol: u8::from(h.protocol),
            scope: u8::from(h.scope),
            kind: u8::from(h.kind),
            flags: h.flags.bits(),
            ..RouteMsg::new(family)
        };
        for a in &m.attributes {
            match a {
                RouteAttribute::Table(t) => r.table = *t,
                RouteAttribute::Destination(d) => r.dst = ip(d),
                RouteAttribute::Source(d) => r.src = ip(d),
                RouteAttribute::Gateway(g) => r.gateway = ip(g),
                RouteAttribute::PrefSource(s) => r.prefsrc = ip(s),
                RouteAttribute::Oif(o) => r.oif = Some(*o),
                RouteAttribute::Iif(o) => r.iif = Some(*o),
                RouteAttribute::Priority(p) => r.priority = Some(*p),
                RouteAttribute::Preference(p) => r.pref = Some(u8::from(*p)),
                RouteAttribute::Uid(u) => r.uid = Some(*u),
                RouteAttribute::Mark(v) => r.mark = Some(*v),
                RouteAttribute::CacheInfo(c) => cache(&mut r, c),
                RouteAttribute::Metrics(ms) => {
                    r.metrics = ms.iter().filter_map(metric_pair).collect();
                }
                RouteAttribute::MultiPath(hs) => {
                    r.multipath = hs
                        .iter()
                        .map(|h| NextHop {
                            gateway: h.attributes.iter().find_map(|a| match a {
                                RouteAttribute::Gateway(g) => ip(g),
                                _ => None,
                            }),
                            ifindex: h.interface_index,
                            hops: h.hops,
                            flags: h.flags.bits(),
                        })
                        .collect();
                }
                _ => {}
            }
        }
        Some(r)
    }
}

fn cache(r: &mut RouteMsg, c: &RouteCacheInfo) {
    r.expires = Some(c.expires as i32);
    r.error = Some(c.error);
}

fn af(f: Family) -> AddressFamily {
    match f {
        Family::V4 => AddressFamily::Inet,
        Family::V6 => AddressFamily::Inet6,
    }
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

fn metric(k: u16, v: u32) -> Option<RouteMetric> {
    Some(match k {
        1 => RouteMetric::Lock(v),
        2 => RouteMetric::Mtu(v),
        3 => RouteMetric::Window(v),
        4 => RouteMetric::Rtt(v),
        5 => RouteMetric::RttVar(v),
        6 => RouteMetric::SsThresh(v),
        7 => RouteMetric::Cwnd(v),
        8 => RouteMetric::Advmss(v),
        9 => RouteMetric::Reordering(v),
        10 => RouteMetric::Hoplimit(v),
        11 => RouteMetric::InitCwnd(v),
        12 => RouteMetric::Features(v),
        13 => RouteMetric::RtoMin(v),
        14 => RouteMetric::InitRwnd(v),
        15 => RouteMetric::QuickAck(v),
        17 => RouteMetric::FastopenNoCookie(v),
        _ => return None,
    })
}

fn metric_pair(m: &RouteMetric) -> Option<(u16, u32)> {
    Some(match m {
        RouteMetric::Lock(v) => (1, *v),
        RouteMetric::Mtu(v) => (2, *v),
        RouteMetric::Window(v) => (3, *v),
        RouteMetric::Rtt(v) => (4, *v),
        RouteMetric::RttVar(v) => (5, *v),
        RouteMetric::SsThresh(v) => (6, *v),
        RouteMetric::Cwnd(v) => (7, *v),
        RouteMetric::Advmss(v) => (8, *v),
        RouteMetric::Reordering(v) => (9, *v),
        RouteMetric::Hoplimit(v) => (10, *v),
        RouteMetric::InitCwnd(v) => (11, *v),
        RouteMetric::Features(v) => (12, *v),
        RouteMetric::RtoMin(v) => (13, *v),
        RouteMetric::InitRwnd(v) => (14, *v),
        RouteMetric::QuickAck(v) => (15, *v),
        RouteMetric::FastopenNoCookie(v) => (17, *v),
        _ => return None,
    })
}

impl Netlink {
    /// `RTM_NEWROUTE` with `flags` (`NLM_F_CREATE|NLM_F_EXCL` for add, ...).
    pub async fn new_route_msg(&self, r: &RouteMsg, flags: u16) -> Result<(), NlError> {
        self.request(RouteNetlinkMessage::NewRoute(r.to_message()), flags, || {
            "change route".to_string()
        })
        .await
        .map(drop)
    }

    /// `RTM_DELROUTE` of `r` as given (wildcards where fields are zero).
    pub async fn del_route_msg(&self, r: &RouteMsg) -> Result<(), NlError> {
        self.request(RouteNetlinkMessage::DelRoute(r.to_message()), 0, || {
            "delete route".to_string()
        })
        .await
        .map(drop)
    }

    /// Every route of `family` (both families with `None`), as dumped.
    pub async fn dump_routes(&self, family: Option<Family>) -> Result<Vec<RouteMsg>, NlError> {
        let mut m = RouteMessage::default();
        if let Some(f) = family {
            m.header.address_family = af(f);
        }
        let v = self
            .request(RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP, || {
                "list routes".to_string()
            })
            .await?;
        Ok(v.iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(m) => RouteMsg::from_message(m),
                _ => None,
            })
            .collect())
    }

    /// `RTM_GETROUTE` for one destination: the kernel's answer.
    pub async fn get_route(&self, q: &RouteMsg) -> Result<Option<RouteMsg>, NlError> {
        let mut m = q.to_message();
        // The query is not a route: no table, protocol or type.
        m.attributes
            .retain(|a| !matches!(a, RouteAttribute::Table(_)));
        m.header.table = 0;
        let v = self
            .request(RouteNetlinkMessage::GetRoute(m), 0, || {
                "get route".to_string()
            })
            .await?;
        Ok(v.iter().find_map(|r| match r {
            RouteNetlinkMessage::NewRoute(m) => RouteMsg::from_message(m),
            _ => None,
        }))
    }
}
