//! ADD: addressing, the attach (which adds the IPAM result's routes as
//! journaled steps of its own), and the result in the shape of the
//! configuration's spec version.

use pipework_core::attach::attach_to;
use pipework_core::guest::{Guest, ResolveOptions};
use pipework_core::netlink::Netlink;
use pipework_core::state::AttachmentRecord;

use crate::addressing::{addressing, native_dhcp, plan};
use crate::config::{self, code, CniError, CniResult, Interface, IpConfig, Route};
use crate::env::Env;
use crate::request::request;
use crate::{from_core, Invocation};

pub(crate) async fn add(inv: &Invocation<'_>) -> Result<CniResult, CniError> {
    let env = Env::parse(inv.env, true)?;
    let mut addressing = addressing(inv, &env)?;
    let res = add_with(inv, &env, &mut addressing).await;
    if res.is_err() {
        // The spec: a delegated plugin that gave us addresses hears DEL when we fail.
        let _ = inv.delegate("DEL");
    }
    res
}

async fn add_with(
    inv: &Invocation<'_>,
    env: &Env,
    addressing: &mut CniResult,
) -> Result<CniResult, CniError> {
    let (conf, version) = (&inv.conf, inv.version.as_str());
    let req = request(conf, env, plan(addressing)?)?;
    let netns = env.netns.clone().unwrap_or_default();
    let mut guest = Guest::resolve(&req.guest, &ResolveOptions::default())
        .await
        .map_err(|e| CniError::new(code::UNKNOWN_CONTAINER, e.to_string()))?;
    let short: String = env.container_id.chars().take(12).collect();
    guest.info.name = format!("{}/{short}", conf.name);
    guest.info.container_id = Some(env.container_id.clone());
    let rec = attach_to(&req, &guest, inv.drivers, inv.settings)
        .await
        .map_err(from_core)?;
    // `mtu` in interfaces is new in 1.1.0.
    let mtu = (version == "1.1.0").then_some(rec.mtu);
    let mut interfaces = Vec::new();
    if let Some(peer) = &rec.host_peer {
        let host =
            Netlink::connect_here("host").map_err(|e| CniError::new(code::IO, e.to_string()))?;
        let mac = host
            .link_by_name(peer)
            .await
            .ok()
            .flatten()
            .and_then(|l| l.mac)
            .map(|m| m.to_string());
        interfaces.push(Interface {
            name: peer.clone(),
            mac,
            mtu,
            sandbox: None,
        });
    }
    interfaces.push(Interface {
        name: rec.interface.clone(),
        mac: Some(rec.mac.to_string()),
        mtu,
        sandbox: Some(netns),
    });
    let ours = interfaces.len() - 1;
    if native_dhcp(conf).is_some() {
        from_leases(&rec, addressing);
    }
    let old = config::before_1_0(version);
    let ips = addressing
        .ips
        .iter()
        .map(|i| IpConfig {
            version: old.then(|| {
                if i.address.contains(':') {
                    "6".to_string()
                } else {
                    "4".to_string()
                }
            }),
            address: i.address.clone(),
            gateway: i.gateway.clone(),
            interface: Some(ours),
        })
        .collect();
    let dns = if addressing.dns.is_empty() {
        conf.dns.clone().unwrap_or_default()
    } else {
        addressing.dns.clone()
    };
    let mut result = CniResult {
        cni_version: version.to_string(),
        interfaces,
        ips,
        routes: std::mem::take(&mut addressing.routes),
        dns,
    };
    if let Some(prev) = &conf.prev_result {
        result = merge(prev, result)?;
    }
    Ok(result)
}

/// What the native DHCP client obtained, in result form.
fn from_leases(rec: &AttachmentRecord, a: &mut CniResult) {
    let leases = pipework_core::dhcp::lease::leases_of(rec);
    for l in &leases {
        a.ips.push(IpConfig {
            version: None,
            address: l.address.to_string(),
            gateway: l.routers.first().map(|g| g.to_string()),
            interface: None,
        });
        if let Some(g) = l.routers.first() {
            let dst = if g.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
            a.routes.push(Route {
                dst: dst.into(),
                gw: Some(g.to_string()),
            });
        }
        for (dst, gw) in &l.routes {
            a.routes.push(Route {
                dst: dst.to_string(),
                gw: (!gw.is_unspecified()).then(|| gw.to_string()),
            });
        }
        a.dns
            .nameservers
            .extend(l.dns.iter().map(|d| d.to_string()));
        a.dns.search.extend(l.search.iter().cloned());
    }
}

/// An interface plugin later in a chain keeps what came before it.
fn merge(prev: &serde_json::Value, ours: CniResult) -> Result<CniResult, CniError> {
    let mut p: CniResult = serde_json::from_value(prev.clone())
        .map_err(|e| CniError::new(code::DECODE, format!("bad prevResult: {e}")))?;
    let offset = p.interfaces.len();
    p.interfaces.extend(ours.interfaces);
    p.ips.extend(ours.ips.into_iter().map(|mut i| {
        i.interface = i.interface.map(|x| x + offset);
        i
    }));
    p.routes.extend(ours.routes);
    if p.dns.is_empty() {
        p.dns = ours.dns;
    }
    p.cni_version = ours.cni_version;
    Ok(p)
}
