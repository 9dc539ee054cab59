//! The CNI side of the protocol: environment, network configuration, results
//! (CNI spec 1.1, with the older result shapes the runtime may ask for).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Spec versions we speak; results are shaped for the one the runtime chose.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Well-known CNI error codes.
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    /// Ours: the operation failed (and was undone).
    pub const FAILED: u32 = 100;
    /// Ours: CHECK found the attachment not as ADD left it.
    pub const CHECK_FAILED: u32 = 101;
}

/// A CNI error result.
#[derive(Debug, Serialize)]
pub struct CniError {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            cni_version: "1.1.0".into(),
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }
}

/// The plugin configuration object the runtime hands us on stdin.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    #[serde(default)]
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// The host interface, as in `pipework <host> ...`: a bridge (created if
    /// a missing `br*`), a NIC for macvlan, an OVS bridge, `dummy`...
    #[serde(default)]
    pub host: Option<String>,
    /// Or the host interface by MAC (`mac:` on the command line).
    #[serde(default)]
    pub host_mac: Option<String>,
    /// Move the host interface itself into the container.
    #[serde(default)]
    pub direct_phys: bool,
    /// macvlan mode: bridge, private, vepa, passthru.
    #[serde(default)]
    pub mode: Option<String>,
    /// VLAN id (OVS tag, 802.1Q sub-interface, bridge PVID).
    #[serde(default)]
    pub vlan: Option<u16>,
    /// InfiniBand partition key, hex.
    #[serde(default)]
    pub pkey: Option<String>,
    /// MAC address or `U:<string>`.
    #[serde(default)]
    pub mac: Option<String>,
    /// Gratuitous ARP / unsolicited NA after the attach (default true).
    #[serde(default)]
    pub announce: Option<bool>,
    /// Open vSwitch: a trunk port carrying these VLANs (`"10,20-30"`, `"all"`).
    #[serde(default)]
    pub trunk: Option<String>,
    /// Open vSwitch: untagged frames belong to this VLAN.
    #[serde(default)]
    pub native_vlan: Option<u16>,
    /// Open vSwitch: the native VLAN leaves the port tagged.
    #[serde(default)]
    pub native_tagged: bool,
    /// Open vSwitch: only the container's own MAC and addresses get in.
    #[serde(default)]
    pub port_security: bool,
    /// Open vSwitch: datapath of a bridge pipework creates (`system`, `netdev`).
    #[serde(default)]
    pub datapath_type: Option<String>,
    /// SR-IOV: a VF of the host interface, by index or `"auto"`.
    #[serde(default)]
    pub vf: Option<Value>,
    /// SR-IOV: 802.1p priority of the VF's VLAN.
    #[serde(default)]
    pub vf_qos: Option<u8>,
    #[serde(default)]
    pub spoofchk: Option<bool>,
    #[serde(default)]
    pub trust: Option<bool>,
    /// SR-IOV: `auto`, `enable`, `disable`.
    #[serde(default)]
    pub link_state: Option<String>,
    /// SR-IOV: Mbit/s.
    #[serde(default)]
    pub max_tx_rate: Option<u32>,
    #[serde(default)]
    pub min_tx_rate: Option<u32>,
    /// IPoIB: `datagram` or `connected`.
    #[serde(default)]
    pub ipoib_mode: Option<String>,
    #[serde(default)]
    pub ipam: Option<Ipam>,
    #[serde(default)]
    pub dns: Option<Dns>,
    #[serde(default)]
    pub runtime_config: Option<RuntimeConfig>,
    #[serde(default)]
    pub prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<ValidAttachment>>,
    /// Everything else, kept so a delegated plugin gets the config unchanged.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone)]
pub struct Ipam {
    #[serde(rename = "type", default)]
    pub ipam_type: String,
    /// The reference `static` IPAM schema, handled in-process.
    #[serde(default)]
    pub addresses: Vec<IpamAddress>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Option<Dns>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize, Serialize, Clone)]
pub struct IpamAddress {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// Capability arguments (`"capabilities": {"ips": true, "mac": true}`).
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub ips: Option<Vec<String>>,
    #[serde(default)]
    pub mac: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ValidAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// One entry of `interfaces` in a result.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// One entry of `ips` in a result.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
pub struct IpConfig {
    /// "4" or "6": in results before 1.0.0 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// An ADD success result (and what IPAM plugins return, without interfaces).
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    #[serde(default)]
    pub cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

/// `CNI_ARGS`: `K=V;K2=V2`.
pub fn parse_cni_args(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("CNI_ARGS entry '{part}' is not KEY=VALUE"))?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// CNI's rule for container IDs.
pub fn valid_container_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Whether `v` is older than 1.0.0 (results then carry `version` per IP).
pub fn before_1_0(v: &str) -> bool {
    v.starts_with("0.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_ids() {
        let a = parse_cni_args("IgnoreUnknown=1;IP=10.0.0.5/24;K8S_POD_NAME=web").unwrap();
        assert_eq!(a["IP"], "10.0.0.5/24");
        assert!(parse_cni_args("novalue").is_err());
        assert!(parse_cni_args("").unwrap().is_empty());
        assert!(valid_container_id("abc-1_2.3"));
        assert!(!valid_container_id("-abc"));
        assert!(!valid_container_id(""));
        assert!(!valid_container_id("a/b"));
    }

    #[test]
    fn config_round_trip_keeps_unknown_fields() {
        let c: NetConf = serde_json::from_str(
            r#"{"cniVersion":"1.1.0","name":"n","type":"pipework","host":"br0","custom":{"x":1},
                "ipam":{"type":"static","addresses":[{"address":"10.0.0.5/24","gateway":"10.0.0.1"}],"subnet":"10.0.0.0/24"}}"#,
        )
        .unwrap();
        assert_eq!(c.host.as_deref(), Some("br0"));
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["custom"]["x"], 1);
        assert_eq!(back["ipam"]["subnet"], "10.0.0.0/24");
    }
}
