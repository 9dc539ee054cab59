//! Where the attachment's addresses and routes come from: the built-in
//! `static` IPAM (with `runtimeConfig.ips` or `CNI_ARGS` `IP=` overriding),
//! pipework's own DHCP client, or a delegated IPAM plugin; and how an IPAM
//! result becomes the attach request's addresses and routes.

use std::net::IpAddr;

use ipnet::IpNet;
use pipework_core::model::{DhcpClient, DhcpSpec, GuestRoute, StaticAddress};

use crate::config::{CniError, CniResult, IpConfig, NetConf};
use crate::env::Env;
use crate::{invalid, Invocation};

/// The IPAM plugin to delegate to, if the configuration names one.
pub(crate) fn delegated(conf: &NetConf) -> Option<&str> {
    match conf.ipam.as_ref().map(|i| i.ipam_type.as_str()) {
        None | Some("") | Some("static") | Some("dhcp") => None,
        Some(t) => Some(t),
    }
}

/// `"ipam": {"type": "dhcp"}` is pipework's own client, supervised by
/// `pipework daemon` (started on demand): no separate daemon to run, unlike
/// the reference `dhcp` plugin. `"v6": true` adds DHCPv6, `"v4": false`
/// leaves DHCPv4 out.
pub(crate) fn native_dhcp(conf: &NetConf) -> Option<DhcpSpec> {
    let ipam = conf.ipam.as_ref().filter(|i| i.ipam_type == "dhcp")?;
    let flag = |k: &str, default: bool| {
        ipam.other
            .get(k)
            .and_then(|v| v.as_bool())
            .unwrap_or(default)
    };
    Some(DhcpSpec {
        client: DhcpClient::Native,
        foreground: false,
        options: String::new(),
        v4: flag("v4", true),
        v6: flag("v6", false),
    })
}

/// Addresses, routes and DNS for the attachment: built-in static IPAM (with
/// `runtimeConfig.ips`, `CNI_ARGS` `IP=` overriding) or a delegated plugin.
pub(crate) fn addressing(inv: &Invocation<'_>, env: &Env) -> Result<CniResult, CniError> {
    if inv.delegated().is_some() {
        return inv.delegate("ADD").map(Option::unwrap_or_default);
    }
    let conf = &inv.conf;
    let ipam = conf.ipam.clone().unwrap_or_default();
    let mut ips: Vec<IpConfig> = ipam
        .addresses
        .iter()
        .map(|a| IpConfig {
            version: None,
            address: a.address.clone(),
            gateway: a.gateway.clone(),
            interface: None,
        })
        .collect();
    let overrides: Option<Vec<String>> = conf
        .runtime_config
        .as_ref()
        .and_then(|r| r.ips.clone())
        .or_else(|| {
            env.args
                .get("IP")
                .map(|s| s.split(',').map(String::from).collect())
        });
    if let Some(list) = overrides {
        ips = list
            .into_iter()
            .map(|address| {
                let gateway = ips
                    .iter()
                    .find(|i| same_family(&i.address, &address))
                    .and_then(|i| i.gateway.clone());
                IpConfig {
                    version: None,
                    address,
                    gateway,
                    interface: None,
                }
            })
            .collect();
    }
    Ok(CniResult {
        cni_version: String::new(),
        interfaces: Vec::new(),
        ips,
        routes: ipam.routes.clone(),
        dns: ipam.dns.clone().unwrap_or_default(),
    })
}

fn same_family(a: &str, b: &str) -> bool {
    a.contains(':') == b.contains(':')
}

fn is_default(dst: &str) -> bool {
    dst == "0.0.0.0/0" || dst == "::/0"
}

/// What the attach is asked to configure.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Plan {
    pub statics: Vec<StaticAddress>,
    /// The routes other than the defaults that became gateways: the attach
    /// adds them, journaled.
    pub routes: Vec<GuestRoute>,
}

/// Turns the addressing into static addresses (a default route becomes the
/// gateway of its family's first address, so the core swaps it atomically)
/// and the remaining routes.
pub(crate) fn plan(a: &CniResult) -> Result<Plan, CniError> {
    let mut statics = Vec::new();
    for ip in &a.ips {
        let address: IpNet = ip
            .address
            .parse()
            .map_err(|_| invalid(format!("bad address '{}'", ip.address)))?;
        statics.push(StaticAddress {
            address,
            gateway: None,
        });
    }
    let mut routes = Vec::new();
    for r in &a.routes {
        let destination: IpNet = r
            .dst
            .parse()
            .map_err(|_| invalid(format!("bad route destination '{}'", r.dst)))?;
        let gateway: Option<IpAddr> = match &r.gw {
            Some(g) => Some(
                g.parse()
                    .map_err(|_| invalid(format!("bad route gateway '{g}'")))?,
            ),
            None => a
                .ips
                .iter()
                .find(|i| same_family(&i.address, &r.dst))
                .and_then(|i| i.gateway.as_deref())
                .and_then(|g| g.parse().ok()),
        };
        if is_default(&r.dst) {
            let Some(gw) = gateway else {
                return Err(invalid(format!("route {} has no gateway", r.dst)));
            };
            if let Some(s) = statics
                .iter_mut()
                .find(|s| s.address.addr().is_ipv4() == gw.is_ipv4() && s.gateway.is_none())
            {
                s.gateway = Some(gw);
                continue;
            }
        }
        routes.push(GuestRoute {
            destination,
            gateway,
        });
    }
    Ok(Plan { statics, routes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Route;

    fn result(ips: &[(&str, Option<&str>)], routes: &[(&str, Option<&str>)]) -> CniResult {
        CniResult {
            ips: ips
                .iter()
                .map(|(a, g)| IpConfig {
                    address: a.to_string(),
                    gateway: g.map(String::from),
                    ..IpConfig::default()
                })
                .collect(),
            routes: routes
                .iter()
                .map(|(d, g)| Route {
                    dst: d.to_string(),
                    gw: g.map(String::from),
                })
                .collect(),
            ..CniResult::default()
        }
    }

    #[test]
    fn defaults_become_gateways_and_the_rest_routes() {
        let p = plan(&result(
            &[("10.5.0.2/24", Some("10.5.0.1"))],
            &[
                ("0.0.0.0/0", None),
                ("10.9.0.0/16", Some("10.5.0.254")),
                ("10.10.0.0/16", None),
            ],
        ))
        .unwrap();
        assert_eq!(p.statics[0].gateway, Some("10.5.0.1".parse().unwrap()));
        assert_eq!(
            p.routes,
            vec![
                GuestRoute {
                    destination: "10.9.0.0/16".parse().unwrap(),
                    gateway: Some("10.5.0.254".parse().unwrap()),
                },
                // No gw: the address's gateway, as the spec says.
                GuestRoute {
                    destination: "10.10.0.0/16".parse().unwrap(),
                    gateway: Some("10.5.0.1".parse().unwrap()),
                },
            ]
        );
        assert!(plan(&result(&[("10.5.0.2/24", None)], &[("0.0.0.0/0", None)])).is_err());
        assert!(plan(&result(&[], &[("10.9.0.0/16", Some("x"))])).is_err());
        assert!(plan(&result(&[("10.5.0.2", None)], &[])).is_err());
    }
}
