//! The attach request a configuration stands for: the same
//! `AttachRequest` the command line builds, so every driver works, labelled
//! with the network name, container ID and interface name.

use std::collections::BTreeMap;

use pipework_core::model::{AddressMode, AttachRequest, GuestRef, HostSelector, MacSpec, Tag};
use pipework_core::state::AttachmentRecord;

use crate::addressing::{native_dhcp, Plan};
use crate::config::{CniError, NetConf};
use crate::env::Env;
use crate::invalid;

pub(crate) const LABEL_NETWORK: &str = "cni.network";
pub(crate) const LABEL_CONTAINER: &str = "cni.container_id";
pub(crate) const LABEL_IFNAME: &str = "cni.ifname";

/// The labels the record carries, by which DEL, CHECK and GC find it.
fn labels_of(conf: &NetConf, env: &Env) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NETWORK.to_string(), conf.name.clone()),
        (LABEL_CONTAINER.to_string(), env.container_id.clone()),
        (LABEL_IFNAME.to_string(), env.ifname.to_string()),
    ])
}

/// Whether `r` is the attachment of this container and interface.
pub(crate) fn is_ours(r: &AttachmentRecord, container_id: &str, ifname: &str) -> bool {
    r.labels.get(LABEL_CONTAINER).map(String::as_str) == Some(container_id)
        && r.labels.get(LABEL_IFNAME).map(String::as_str) == Some(ifname)
}

/// The attach request for this configuration and environment, with the
/// addresses and routes of `plan`.
pub(crate) fn request(conf: &NetConf, env: &Env, plan: Plan) -> Result<AttachRequest, CniError> {
    let host: HostSelector = match (&conf.host, &conf.host_mac) {
        (Some(h), None) => h.parse().map_err(|e| invalid(format!("host: {e}")))?,
        (None, Some(m)) => format!("mac:{m}")
            .parse()
            .map_err(|e| invalid(format!("hostMac: {e}")))?,
        _ => {
            return Err(invalid(
                "the configuration needs exactly one of 'host' and 'hostMac'",
            ))
        }
    };
    let address = match native_dhcp(conf) {
        Some(d) => AddressMode::Dhcp(d),
        None if plan.statics.is_empty() => AddressMode::None,
        None => AddressMode::Static(plan.statics),
    };
    let mut req = AttachRequest::new(
        host,
        GuestRef::Path(env.netns.clone().unwrap_or_default().into()),
        address,
    );
    req.guest_ifname = Some(env.ifname.clone());
    req.direct_phys = conf.direct_phys;
    let mac = conf
        .runtime_config
        .as_ref()
        .and_then(|r| r.mac.clone())
        .or_else(|| env.args.get("MAC").cloned())
        .or_else(|| conf.mac.clone());
    if let Some(m) = mac {
        req.mac = MacSpec::parse(&m).map_err(|e| invalid(e.to_string()))?;
    }
    req.tag = match (&conf.vlan, &conf.pkey) {
        (Some(v), None) => Some(
            v.to_string()
                .parse::<Tag>()
                .map_err(|e| invalid(e.to_string()))?,
        ),
        (None, Some(p)) => Some(p.parse::<Tag>().map_err(|e| invalid(e.to_string()))?),
        (None, None) => None,
        _ => return Err(invalid("give 'vlan' or 'pkey', not both")),
    };
    if let Some(m) = &conf.mode {
        req.options.macvlan_mode = m
            .parse()
            .map_err(|e: pipework_core::model::ParseError| invalid(e.to_string()))?;
    }
    req.options.announce = conf.announce.unwrap_or(true);
    let bad = |e: pipework_core::model::ParseError| invalid(e.to_string());
    req.options.ovs.trunk = parse_opt(conf.trunk.as_deref())?;
    req.options.ovs.native_vlan = conf
        .native_vlan
        .map(|v| v.to_string().parse())
        .transpose()
        .map_err(bad)?;
    req.options.hw.vf = match &conf.vf {
        None => None,
        Some(serde_json::Value::Number(n)) => Some(n.to_string().parse().map_err(bad)?),
        Some(serde_json::Value::String(v)) => Some(v.parse().map_err(bad)?),
        Some(other) => return Err(invalid(format!("bad vf {other}: a VF index or \"auto\""))),
    };
    req.options.hw.vf_qos = match conf.vf_qos {
        Some(q) if q > 7 => return Err(invalid(format!("bad vfQos {q}: must be 0 to 7"))),
        q => q,
    };
    req.options.hw.spoofchk = conf.spoofchk;
    req.options.hw.trust = conf.trust;
    req.options.hw.link_state = parse_opt(conf.link_state.as_deref())?;
    req.options.hw.max_tx_rate = conf.max_tx_rate;
    req.options.hw.min_tx_rate = conf.min_tx_rate;
    req.options.hw.ipoib_mode = parse_opt(conf.ipoib_mode.as_deref())?;
    req.options.ovs.native_tagged = conf.native_tagged;
    req.options.ovs.port_security = conf.port_security;
    req.options.ovs.datapath_type = parse_opt(conf.datapath_type.as_deref())?;
    req.labels = labels_of(conf, env);
    // The attach adds them after the addresses, journaled: a failed ADD and
    // a DEL take them away with the rest.
    req.routes = plan.routes;
    Ok(req)
}

/// An optional string key of the configuration, parsed.
fn parse_opt<T>(v: Option<&str>) -> Result<Option<T>, CniError>
where
    T: std::str::FromStr<Err = pipework_core::model::ParseError>,
{
    v.map(str::parse)
        .transpose()
        .map_err(|e: pipework_core::model::ParseError| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::code;
    use std::collections::BTreeMap;

    fn env() -> Env {
        Env {
            container_id: "c1".into(),
            netns: Some("/run/netns/x".into()),
            ifname: "net1".parse().unwrap(),
            args: BTreeMap::new(),
        }
    }

    fn conf(v: serde_json::Value) -> NetConf {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_driver_option_reaches_the_request() {
        let c = conf(serde_json::json!({
            "cniVersion": "1.1.0", "name": "n", "type": "pipework", "host": "eth4",
            "vf": "auto", "vfQos": 3, "spoofchk": false, "trust": true, "linkState": "enable",
            "maxTxRate": 100, "minTxRate": 10, "vlan": 40
        }));
        let r = request(&c, &env(), Plan::default()).unwrap();
        assert_eq!(r.options.hw.vf, Some("auto".parse().unwrap()));
        assert_eq!(r.options.hw.vf_qos, Some(3));
        assert_eq!(
            (r.options.hw.spoofchk, r.options.hw.trust),
            (Some(false), Some(true))
        );
        assert_eq!(r.options.hw.max_tx_rate, Some(100));
        assert_eq!(r.tag.unwrap().as_str(), "40");
        let ib = conf(serde_json::json!({
            "cniVersion": "1.1.0", "name": "n", "type": "pipework", "host": "ib0",
            "pkey": "8001", "ipoibMode": "connected"
        }));
        let r = request(&ib, &env(), Plan::default()).unwrap();
        assert_eq!(r.tag.unwrap().as_pkey().unwrap().get(), 0x8001);
        assert_eq!(r.options.hw.ipoib_mode, Some("connected".parse().unwrap()));
        let ovs = conf(serde_json::json!({
            "cniVersion": "1.1.0", "name": "n", "type": "pipework", "host": "ovsbr0",
            "trunk": "10,20-22", "nativeVlan": 10, "portSecurity": true, "datapathType": "netdev"
        }));
        let r = request(&ovs, &env(), Plan::default()).unwrap();
        assert_eq!(r.options.ovs.trunk.unwrap().to_string(), "10,20-22");
        assert!(r.options.ovs.port_security);
        assert_eq!(r.guest_ifname.unwrap().as_str(), "net1");
        assert_eq!(r.labels[LABEL_CONTAINER], "c1");
        for bad in [
            serde_json::json!({"host": "eth4", "vf": true}),
            serde_json::json!({"host": "eth4", "vfQos": 8}),
            serde_json::json!({"host": "eth4", "linkState": "sideways"}),
            serde_json::json!({"host": "ib0", "ipoibMode": "fast"}),
            serde_json::json!({"host": "ovsbr0", "trunk": "10-x"}),
            serde_json::json!({"host": "eth4", "vlan": 10, "pkey": "8001"}),
            serde_json::json!({"host": "eth4", "hostMac": "02:00:00:00:00:01"}),
            serde_json::json!({"host": "eth4", "mac": "01:00:5e:00:00:01"}),
        ] {
            let e = request(&conf(bad.clone()), &env(), Plan::default()).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{bad}: {}", e.msg);
        }
    }
}
