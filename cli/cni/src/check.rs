//! CHECK: compares the kernel with the result ADD returned, then with the
//! attachment's record through the comparison `pipework check` makes.

use std::net::IpAddr;

use ipnet::IpNet;
use pipework_core::drift::RepairScope;
use pipework_core::guest::{Guest, ResolveOptions};
use pipework_core::model::Family;
use pipework_core::model::GuestRef;
use pipework_core::netlink::{Netlink, RT_TABLE_MAIN};
use pipework_core::state::StateDir;

use crate::config::{code, CniError, CniResult};
use crate::env::Env;
use crate::request::is_ours;
use crate::{from_core, invalid, Invocation};

/// CHECK: the attachment is still as ADD left it (`prevResult`): the
/// interface in the right namespace with its MAC and addresses, the host
/// veth on its bridge; then the delegated IPAM plugin's own CHECK.
pub(crate) async fn check(inv: &Invocation<'_>) -> Result<(), CniError> {
    let env = Env::parse(inv.env, true)?;
    let (conf, settings) = (&inv.conf, inv.settings);
    let prev: CniResult = match &conf.prev_result {
        Some(p) => serde_json::from_value(p.clone())
            .map_err(|e| CniError::new(code::DECODE, format!("bad prevResult: {e}")))?,
        None => return Err(invalid("CHECK needs prevResult")),
    };
    let state = StateDir::open_read(&settings.state_dir);
    let rec = state
        .all()
        .map_err(from_core)?
        .into_iter()
        .find(|r| is_ours(r, &env.container_id, env.ifname.as_str()))
        .ok_or_else(|| {
            CniError::new(
                code::CHECK_FAILED,
                format!(
                    "no attachment {} for container {}",
                    env.ifname, env.container_id
                ),
            )
        })?;
    let failed = |m: String| CniError::new(code::CHECK_FAILED, m);
    let guest = Guest::resolve(
        &GuestRef::Path(env.netns.clone().unwrap_or_default().into()),
        &ResolveOptions::default(),
    )
    .await
    .map_err(|e| CniError::new(code::UNKNOWN_CONTAINER, e.to_string()))?;
    if guest.info.netns != rec.guest.netns {
        return Err(failed(format!(
            "{} is not the namespace {} was attached to",
            env.netns.unwrap_or_default(),
            env.ifname
        )));
    }
    let nl = Netlink::connect_in(&guest.netns, guest.name())
        .await
        .map_err(|e| CniError::new(code::IO, e.to_string()))?;
    let link = nl
        .link_by_name(env.ifname.as_str())
        .await
        .map_err(|e| from_core(e.into()))?
        .ok_or_else(|| failed(format!("{} is missing from the container", env.ifname)))?;
    let idx = prev
        .interfaces
        .iter()
        .position(|i| i.name == env.ifname.as_str() && i.sandbox.is_some());
    if let Some(i) = idx {
        if let Some(m) = &prev.interfaces[i].mac {
            if link.mac.map(|x| x.to_string()).as_deref() != Some(m.to_lowercase().as_str()) {
                let have = link
                    .mac
                    .map_or_else(|| "none".to_string(), |x| x.to_string());
                return Err(failed(format!(
                    "{} has MAC {have}, expected {m}",
                    env.ifname
                )));
            }
        }
    }
    let have: Vec<IpNet> = nl
        .addresses(link.index)
        .await
        .map_err(|e| from_core(e.into()))?
        .into_iter()
        .map(|a| a.address)
        .collect();
    for ip in prev
        .ips
        .iter()
        .filter(|ip| ip.interface.is_none() || ip.interface == idx)
    {
        let want: IpNet = ip
            .address
            .parse()
            .map_err(|_| failed(format!("bad address '{}' in prevResult", ip.address)))?;
        if !have.contains(&want) {
            return Err(failed(format!("{} lacks address {want}", env.ifname)));
        }
    }
    check_routes(&nl, &prev, &failed).await?;
    if let Some(peer) = &rec.host_peer {
        let host =
            Netlink::connect_here("host").map_err(|e| CniError::new(code::IO, e.to_string()))?;
        let p = host
            .link_by_name(peer)
            .await
            .map_err(|e| from_core(e.into()))?
            .ok_or_else(|| failed(format!("host veth {peer} is missing")))?;
        if let Some(br) = &rec.bridge {
            // A Linux bridge shows its ports as IFLA_MASTER; OVS ports do not.
            if let Some(b) = host
                .link_by_name(br)
                .await
                .map_err(|e| from_core(e.into()))?
            {
                if b.is_kind("bridge") && p.master != Some(b.index) {
                    return Err(failed(format!(
                        "host veth {peer} is no longer a port of {br}"
                    )));
                }
            } else {
                return Err(failed(format!("bridge {br} is gone")));
            }
        }
    }
    // Then what `pipework check` compares beyond prevResult: the routes
    // the attach made, an OVS port's row, tag and port-security flows.
    let drift = pipework_core::check::check_record(
        &rec,
        &Netlink::connect_here("host").map_err(|e| CniError::new(code::IO, e.to_string()))?,
        inv.drivers,
        settings,
        RepairScope::None,
    )
    .await;
    if let Some(f) = drift.first() {
        return Err(failed(f.detail.clone()));
    }
    inv.delegate("CHECK")?;
    Ok(())
}

/// Every route `prevResult` lists is in the container's main table (the
/// default route as `0.0.0.0/0` or `::/0`), through the gateway it names.
async fn check_routes(
    nl: &Netlink,
    prev: &CniResult,
    failed: &impl Fn(String) -> CniError,
) -> Result<(), CniError> {
    for r in &prev.routes {
        let dst: IpNet = r
            .dst
            .parse()
            .map_err(|_| failed(format!("bad route destination '{}' in prevResult", r.dst)))?;
        let dst = dst.trunc();
        let gw: Option<IpAddr> = match &r.gw {
            Some(g) => Some(
                g.parse()
                    .map_err(|_| failed(format!("bad route gateway '{g}' in prevResult")))?,
            ),
            None => None,
        };
        let family = if dst.addr().is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        let have = nl
            .routes(family, RT_TABLE_MAIN)
            .await
            .map_err(|e| from_core(e.into()))?;
        let found = have.iter().any(|x| {
            let same_dst = match x.destination {
                Some(d) => d.trunc() == dst,
                None => dst.prefix_len() == 0,
            };
            same_dst && (gw.is_none() || x.gateway == gw)
        });
        if !found {
            return Err(failed(match gw {
                Some(g) => format!("the container lacks the route to {dst} via {g}"),
                None => format!("the container lacks the route to {dst}"),
            }));
        }
    }
    Ok(())
}
