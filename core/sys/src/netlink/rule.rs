//! Policy routing rules (`ip rule`).

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
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
        if let Some(p) = self.priority {
            m.attributes.push(RuleAttribute::Priority(p));
        }
        if let Some(f) = self.from {
            m.header.src_len = f.prefix_len();
            m.attributes.push(RuleAttribute::Source(f.network()));
        }
        if let Some(t) = self.to {
            m.header.dst_len = t.prefix_len();
            m.attributes.push(RuleAttribute::Destination(t.network()));
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
