//! Policy routing rules (`ip rule`).

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use serde::{Deserialize, Serialize};

use super::{Netlink, NlError};
use pipework_model::Family;

/// A rule, as `pipework rule <guest> add ...` describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    pub family: Option<Family>,
    pub priority: Option<u32>,
    pub from: Option<IpNet>,
    pub to: Option<IpNet>,
    pub table: Option<u32>,
    pub fwmark: Option<u32>,
    pub fwmask: Option<u32>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    /// `RuleAction` other than lookup: blackhole, unreachable, prohibit.
    pub action: Option<u8>,
    /// `not`: FIB_RULE_INVERT.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invert: bool,
}

/// A rule as the kernel lists it, for `pipework rule <guest> show`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleEntry {
    pub family: Option<Family>,
    pub priority: Option<u32>,
    pub src: Option<IpAddr>,
    pub src_len: u8,
    pub dst: Option<IpAddr>,
    pub dst_len: u8,
    pub tos: u8,
    pub fwmark: Option<u32>,
    pub fwmask: Option<u32>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub table: u32,
    pub action: u8,
    /// `FIB_RULE_*`.
    pub flags: u32,
    pub goto: Option<u32>,
    pub suppress_prefixlen: Option<u32>,
    pub protocol: Option<u8>,
}

impl RuleEntry {
    fn from_message(m: &RuleMessage) -> RuleEntry {
        let h = &m.header;
        let mut r = RuleEntry {
            family: match h.family {
                AddressFamily::Inet => Some(Family::V4),
                AddressFamily::Inet6 => Some(Family::V6),
                _ => None,
            },
            src_len: h.src_len,
            dst_len: h.dst_len,
            tos: h.tos,
            table: u32::from(h.table),
            action: u8::from(h.action),
            flags: h.flags.bits(),
            ..RuleEntry::default()
        };
        for a in &m.attributes {
            match a {
                RuleAttribute::Priority(p) => r.priority = Some(*p),
                RuleAttribute::Source(s) => r.src = Some(*s),
                RuleAttribute::Destination(d) => r.dst = Some(*d),
                RuleAttribute::FwMark(v) => r.fwmark = Some(*v),
                RuleAttribute::FwMask(v) => r.fwmask = Some(*v),
                RuleAttribute::Iifname(v) => r.iif = Some(v.clone()),
                RuleAttribute::Oifname(v) => r.oif = Some(v.clone()),
                RuleAttribute::Table(t) => r.table = *t,
                RuleAttribute::Goto(t) => r.goto = Some(*t),
                RuleAttribute::SuppressPrefixLen(v) => r.suppress_prefixlen = Some(*v),
                RuleAttribute::Protocol(p) => r.protocol = Some(u8::from(*p)),
                _ => {}
            }
        }
        r
    }
}

impl RuleSpec {
    fn to_message(&self) -> RuleMessage {
        let mut m = RuleMessage::default();
        let fam = self
            .family
            .or_else(|| self.from.map(|n| Family::of(&n.addr())))
            .or_else(|| self.to.map(|n| Family::of(&n.addr())))
            .unwrap_or(Family::V4);
        m.header.family = match fam {
            Family::V4 => AddressFamily::Inet,
            Family::V6 => AddressFamily::Inet6,
        };
        m.header.action = match self.action {
            Some(a) => RuleAction::from(a),
            None => RuleAction::ToTable,
        };
        if self.invert {
            m.header.flags |= RuleFlags::Invert;
        }
        if let Some(p) = self.priority {
            m.attributes.push(RuleAttribute::Priority(p));
        }
        // As given, host bits included: the kernel keeps and lists them so.
        if let Some(f) = self.from {
            m.header.src_len = f.prefix_len();
            m.attributes.push(RuleAttribute::Source(f.addr()));
        }
        if let Some(t) = self.to {
            m.header.dst_len = t.prefix_len();
            m.attributes.push(RuleAttribute::Destination(t.addr()));
        }
        if let Some(t) = self.table {
            if t < 256 {
                m.header.table = t as u8;
            }
            m.attributes.push(RuleAttribute::Table(t));
        }
        if let Some(v) = self.fwmark {
            m.attributes.push(RuleAttribute::FwMark(v));
        }
        if let Some(v) = self.fwmask {
            m.attributes.push(RuleAttribute::FwMask(v));
        }
        if let Some(i) = &self.iif {
            m.attributes.push(RuleAttribute::Iifname(i.clone()));
        }
        if let Some(o) = &self.oif {
            m.attributes.push(RuleAttribute::Oifname(o.clone()));
        }
        m
    }
}

impl Netlink {
    /// The rules of one family, in the kernel's order.
    pub async fn dump_rules(&self, family: Family) -> Result<Vec<RuleEntry>, NlError> {
        let mut m = RuleMessage::default();
        m.header.family = match family {
            Family::V4 => AddressFamily::Inet,
            Family::V6 => AddressFamily::Inet6,
        };
        let v = self
            .request(RouteNetlinkMessage::GetRule(m), NLM_F_DUMP, || {
                "list rules".to_string()
            })
            .await?;
        Ok(v.iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRule(m) => Some(RuleEntry::from_message(m)),
                _ => None,
            })
            .collect())
    }

    pub async fn add_rule(&self, r: &RuleSpec) -> Result<(), NlError> {
        self.request(
            RouteNetlinkMessage::NewRule(r.to_message()),
            NLM_F_CREATE | NLM_F_EXCL,
            || "add rule".to_string(),
        )
        .await
        .map(drop)
    }

    pub async fn delete_rule(&self, r: &RuleSpec) -> Result<(), NlError> {
        let mut m = r.to_message();
        if r.action.is_none() && r.table.is_none() {
            m.header.action = RuleAction::Unspec;
        }
        self.request(RouteNetlinkMessage::DelRule(m), 0, || {
            "delete rule".to_string()
        })
        .await
        .map(drop)
    }
}
