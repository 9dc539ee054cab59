//! SR-IOV VF settings, read and written through the PF (`IFLA_VFINFO_LIST`).
//!
//! Each setting is its own request, shaped exactly as iproute2's
//! `ip link set <pf> vf <n> <setting>` sends it (`RTM_NEWLINK` on the PF's
//! index, one `IFLA_VF_INFO` holding one attribute), so the integration tests
//! can compare the bytes, and a driver that refuses one setting is named in
//! the error.

use netlink_packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkMessage, LinkVfInfo, VfInfo, VfInfoLinkState, VfInfoMac,
    VfInfoRate, VfInfoSpoofCheck, VfInfoTrust, VfInfoVlan, VfLinkState as NlVfLinkState,
};
use netlink_packet_route::RouteNetlinkMessage;
use serde::{Deserialize, Serialize};

use super::{LinkChange, Netlink, NlError};
use pipework_model::{MacAddr, VfLinkState};

/// One VF's settings as the PF reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfConfig {
    pub vf: u32,
    pub mac: Option<MacAddr>,
    pub vlan: u16,
    pub qos: u8,
    /// `None` when the PF's driver does not report it.
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
    pub link_state: Option<VfLinkState>,
    pub min_tx_rate: u32,
    pub max_tx_rate: u32,
}

/// One setting of one VF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "setting")]
pub enum VfSetting {
    Mac {
        mac: MacAddr,
    },
    /// VLAN 0 removes the VLAN.
    Vlan {
        vlan: u16,
        qos: u8,
    },
    SpoofCheck {
        on: bool,
    },
    Trust {
        on: bool,
    },
    LinkState {
        state: VfLinkState,
    },
    /// Mbit/s, 0 for no limit.
    Rate {
        min: u32,
        max: u32,
    },
}

impl VfSetting {
    /// Its name in messages ("spoof check").
    pub fn label(&self) -> &'static str {
        match self {
            VfSetting::Mac { .. } => "MAC",
            VfSetting::Vlan { .. } => "VLAN",
            VfSetting::SpoofCheck { .. } => "spoof check",
            VfSetting::Trust { .. } => "trust",
            VfSetting::LinkState { .. } => "link state",
            VfSetting::Rate { .. } => "tx rate",
        }
    }

    /// The value `config` has for this setting, to put back later. `None`
    /// when the PF does not report it (nothing can be restored).
    pub fn original(&self, config: &VfConfig) -> Option<VfSetting> {
        Some(match self {
            VfSetting::Mac { .. } => VfSetting::Mac {
                mac: config.mac.unwrap_or(MacAddr([0; 6])),
            },
            VfSetting::Vlan { .. } => VfSetting::Vlan {
                vlan: config.vlan,
                qos: config.qos,
            },
            VfSetting::SpoofCheck { .. } => VfSetting::SpoofCheck {
                on: config.spoofchk?,
            },
            VfSetting::Trust { .. } => VfSetting::Trust { on: config.trust? },
            VfSetting::LinkState { .. } => VfSetting::LinkState {
                state: config.link_state?,
            },
            VfSetting::Rate { .. } => VfSetting::Rate {
                min: config.min_tx_rate,
                max: config.max_tx_rate,
            },
        })
    }

    fn attribute(&self, vf: u32) -> VfInfo {
        match *self {
            VfSetting::Mac { mac } => VfInfo::Mac(VfInfoMac::new(vf, &mac.0)),
            VfSetting::Vlan { vlan, qos } => {
                VfInfo::Vlan(VfInfoVlan::new(vf, u32::from(vlan), u32::from(qos)))
            }
            VfSetting::SpoofCheck { on } => VfInfo::SpoofCheck(VfInfoSpoofCheck::new(vf, on)),
            VfSetting::Trust { on } => VfInfo::Trust(VfInfoTrust::new(vf, on)),
            VfSetting::LinkState { state } => VfInfo::LinkState(VfInfoLinkState::new(
                vf,
                NlVfLinkState::from(state.to_kernel()),
            )),
            VfSetting::Rate { min, max } => VfInfo::Rate(VfInfoRate::new(vf, min, max)),
        }
    }
}

impl std::fmt::Display for VfSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VfSetting::Mac { mac } => write!(f, "mac {mac}"),
            VfSetting::Vlan { vlan, qos } => write!(f, "vlan {vlan} qos {qos}"),
            VfSetting::SpoofCheck { on } => write!(f, "spoofchk {}", on_off(*on)),
            VfSetting::Trust { on } => write!(f, "trust {}", on_off(*on)),
            VfSetting::LinkState { state } => write!(f, "state {state}"),
            VfSetting::Rate { min, max } => write!(f, "min_tx_rate {min} max_tx_rate {max}"),
        }
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

impl LinkChange {
    /// Sets one setting of VF `vf` of the PF with index `pf_index`.
    pub fn vf(pf_index: u32, vf: u32, setting: &VfSetting) -> LinkChange {
        LinkChange::new(pf_index)
            .via_newlink()
            .attribute(LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![
                setting.attribute(vf)
            ])]))
            .describe(format!("set VF {vf} {setting}"))
    }
}

impl Netlink {
    /// The settings of every VF of a PF, from `IFLA_VFINFO_LIST`.
    pub async fn vf_configs(&self, pf_index: u32) -> Result<Vec<VfConfig>, NlError> {
        let mut m = LinkMessage::default();
        m.header.index = pf_index;
        m.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Vf]));
        let replies = self
            .request(RouteNetlinkMessage::GetLink(m), 0, || {
                format!("read the VF settings of link #{pf_index}")
            })
            .await?;
        let mut out = Vec::new();
        for r in &replies {
            let RouteNetlinkMessage::NewLink(l) = r else {
                continue;
            };
            for a in &l.attributes {
                if let LinkAttribute::VfInfoList(list) = a {
                    out.extend(list.iter().filter_map(parse_vf));
                }
            }
        }
        Ok(out)
    }
}

fn parse_vf(info: &LinkVfInfo) -> Option<VfConfig> {
    let mut c = VfConfig::default();
    let mut seen = false;
    for a in &info.0 {
        match a {
            VfInfo::Mac(m) => {
                c.vf = m.vf_id;
                seen = true;
                c.mac = MacAddr::from_slice(&m.mac[..6]);
            }
            VfInfo::Vlan(v) => {
                c.vlan = v.vlan_id as u16;
                c.qos = v.qos as u8;
            }
            VfInfo::SpoofCheck(s) => c.spoofchk = Some(s.enabled),
            VfInfo::Trust(t) => c.trust = Some(t.enabled),
            VfInfo::LinkState(s) => {
                c.link_state = VfLinkState::from_kernel(u32::from(s.state));
            }
            VfInfo::Rate(r) => {
                c.min_tx_rate = r.min_tx_rate;
                c.max_tx_rate = r.max_tx_rate;
            }
            _ => {}
        }
    }
    seen.then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_attribute_per_request() {
        let c = LinkChange::vf(3, 1, &VfSetting::Trust { on: true });
        let b = c.wire_bytes();
        // nlmsghdr: RTM_NEWLINK (16), NLM_F_REQUEST|NLM_F_ACK, no create flags.
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 16);
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), 0x5);
        // ifinfomsg index 3, then VFINFO_LIST > VF_INFO > VF_TRUST {vf 1, 1}.
        assert_eq!(u32::from_ne_bytes(b[20..24].try_into().unwrap()), 3);
        assert_eq!(
            &b[32..],
            &[20, 0, 22, 0, 16, 0, 1, 0, 12, 0, 9, 0, 1, 0, 0, 0, 1, 0, 0, 0]
        );
    }

    #[test]
    fn originals_are_what_the_pf_reported() {
        let cfg = VfConfig {
            vf: 2,
            mac: Some(MacAddr([2, 0, 0, 0, 0, 9])),
            vlan: 5,
            qos: 1,
            spoofchk: Some(true),
            trust: None,
            ..Default::default()
        };
        assert_eq!(
            VfSetting::Vlan { vlan: 10, qos: 0 }.original(&cfg),
            Some(VfSetting::Vlan { vlan: 5, qos: 1 })
        );
        assert_eq!(VfSetting::Trust { on: true }.original(&cfg), None);
        assert_eq!(
            VfSetting::SpoofCheck { on: false }.original(&cfg),
            Some(VfSetting::SpoofCheck { on: true })
        );
    }
}
