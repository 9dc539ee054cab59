//! Options for the hardware drivers: which SR-IOV VF to take and how to set it
//! up through its PF, and the IPoIB mode. Parsed once from the command line;
//! which driver the probe picks decides whether they make sense.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ParseError;

/// `--vf N|auto`: a VF of the PF named as the host interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VfSelect {
    Index(u32),
    /// The lowest-numbered VF whose netdev is free in the host namespace.
    Auto,
}

impl FromStr for VfSelect {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(VfSelect::Auto);
        }
        s.parse::<u32>()
            .ok()
            .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
            .map(VfSelect::Index)
            .ok_or_else(|| ParseError::new("VF", s, "must be a VF index (0, 1, ...) or auto"))
    }
}

/// `--vf-link-state`: what the VF sees as its carrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VfLinkState {
    /// Follows the PF's link.
    Auto,
    Enable,
    Disable,
}

impl VfLinkState {
    /// `IFLA_VF_LINK_STATE_*`.
    pub fn to_kernel(self) -> u32 {
        match self {
            VfLinkState::Auto => 0,
            VfLinkState::Enable => 1,
            VfLinkState::Disable => 2,
        }
    }
    pub fn from_kernel(v: u32) -> Option<VfLinkState> {
        match v {
            0 => Some(VfLinkState::Auto),
            1 => Some(VfLinkState::Enable),
            2 => Some(VfLinkState::Disable),
            _ => None,
        }
    }
}

impl FromStr for VfLinkState {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(VfLinkState::Auto),
            "enable" => Ok(VfLinkState::Enable),
            "disable" => Ok(VfLinkState::Disable),
            _ => Err(ParseError::new(
                "VF link state",
                s,
                "must be auto, enable or disable",
            )),
        }
    }
}

impl fmt::Display for VfLinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VfLinkState::Auto => "auto",
            VfLinkState::Enable => "enable",
            VfLinkState::Disable => "disable",
        })
    }
}

/// `--ipoib-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpoibMode {
    Datagram,
    Connected,
}

impl FromStr for IpoibMode {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "datagram" => Ok(IpoibMode::Datagram),
            "connected" => Ok(IpoibMode::Connected),
            _ => Err(ParseError::new(
                "IPoIB mode",
                s,
                "must be datagram or connected",
            )),
        }
    }
}

/// An on/off switch (`--spoofchk`, `--trust`).
pub fn parse_switch(what: &str, s: &str) -> Result<bool, ParseError> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(ParseError::new(what, s, "must be on or off")),
    }
}

/// A rate in Mbit/s (`--max-tx-rate`, `--min-tx-rate`); 0 means no limit.
pub fn parse_rate(what: &str, s: &str) -> Result<u32, ParseError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::new(
            what,
            s,
            "must be a whole number of Mbit/s (0 for no limit)",
        ));
    }
    s.parse()
        .map_err(|_| ParseError::new(what, s, "is too large"))
}

/// The hardware drivers' options. All unset by default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HwOptions {
    /// `--vf N|auto`: attach a VF of the host interface (an SR-IOV PF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vf: Option<VfSelect>,
    /// `--vf-vlan-qos 0-7`: 802.1p priority of the VF's VLAN (needs `@VID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vf_qos: Option<u8>,
    /// `--spoofchk on|off`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spoofchk: Option<bool>,
    /// `--trust on|off`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<bool>,
    /// `--vf-link-state auto|enable|disable`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_state: Option<VfLinkState>,
    /// `--max-tx-rate MBPS`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tx_rate: Option<u32>,
    /// `--min-tx-rate MBPS`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tx_rate: Option<u32>,
    /// `--ipoib-mode datagram|connected`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipoib_mode: Option<IpoibMode>,
}

impl HwOptions {
    /// Checks the options against each other (the CLI calls this once all
    /// flags are read). The message names the offending flag.
    pub fn check(&self) -> Result<(), String> {
        if self.vf.is_none() {
            if let Some(flag) = self.vf_settings_given().first() {
                return Err(format!(
                    "{flag} configures an SR-IOV VF: add --vf N or --vf auto"
                ));
            }
        }
        if let Some(q) = self.vf_qos {
            if q > 7 {
                return Err(format!("bad --vf-vlan-qos '{q}': must be 0 to 7"));
            }
        }
        if let (Some(min), Some(max)) = (self.min_tx_rate, self.max_tx_rate) {
            if max != 0 && min > max {
                return Err(format!("--min-tx-rate {min} is above --max-tx-rate {max}"));
            }
        }
        if self.vf.is_some() && self.ipoib_mode.is_some() {
            return Err("--ipoib-mode is for IPoIB children, not SR-IOV VFs".to_string());
        }
        Ok(())
    }

    /// The VF flags that were given, for messages.
    fn vf_settings_given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.vf_qos.is_some() {
            v.push("--vf-vlan-qos");
        }
        if self.spoofchk.is_some() {
            v.push("--spoofchk");
        }
        if self.trust.is_some() {
            v.push("--trust");
        }
        if self.link_state.is_some() {
            v.push("--vf-link-state");
        }
        if self.max_tx_rate.is_some() {
            v.push("--max-tx-rate");
        }
        if self.min_tx_rate.is_some() {
            v.push("--min-tx-rate");
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("3".parse::<VfSelect>().unwrap(), VfSelect::Index(3));
        assert_eq!("auto".parse::<VfSelect>().unwrap(), VfSelect::Auto);
        assert!("-1".parse::<VfSelect>().is_err());
        assert!("+1".parse::<VfSelect>().is_err());
        assert!("first".parse::<VfSelect>().is_err());
        assert_eq!(VfLinkState::from_kernel(2), Some(VfLinkState::Disable));
        assert!("up".parse::<VfLinkState>().is_err());
        assert!("cm".parse::<IpoibMode>().is_err());
        assert!(parse_switch("spoof check", "yes").is_err());
        assert!(parse_rate("rate", "10.5").is_err());
        assert!(parse_rate("rate", "99999999999").is_err());
        assert_eq!(parse_rate("rate", "0").unwrap(), 0);
    }

    #[test]
    fn cross_checks() {
        let o = HwOptions {
            trust: Some(true),
            ..Default::default()
        };
        assert!(o.check().unwrap_err().contains("--trust"));
        let o = HwOptions {
            vf: Some(VfSelect::Auto),
            vf_qos: Some(8),
            ..Default::default()
        };
        assert!(o.check().unwrap_err().contains("0 to 7"));
        let o = HwOptions {
            vf: Some(VfSelect::Auto),
            min_tx_rate: Some(100),
            max_tx_rate: Some(10),
            ..Default::default()
        };
        assert!(o.check().is_err());
        let o = HwOptions {
            ipoib_mode: Some(IpoibMode::Connected),
            ..Default::default()
        };
        assert!(o.check().is_ok());
    }
}
