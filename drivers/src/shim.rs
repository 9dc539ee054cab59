//! The host ↔ macvlan shim (`--host-route`).
//!
//! The kernel never passes frames between a macvlan child and its parent, so
//! a host cannot reach its own macvlan guests through the parent. A second
//! macvlan child in bridge mode, left in the host namespace, can: bridge-mode
//! siblings talk to each other inside the kernel. This module keeps one such
//! shim per parent, shared by every attachment that asked for it, with the
//! shim's address and a host route to each guest address through it (the
//! route wins over a connected route the parent may have for the same
//! subnet).
//!
//! Who uses a shim is kept in the state directory (`pipework_base::shared`,
//! one user per attachment), changed only under the shim's lock: the undo
//! that removes the last user deletes the shim, whose address and routes go
//! with it. The
//! journal step is recorded before anything is changed, and its undo is
//! idempotent, so a rollback or a crash at any point leaves nothing behind.

use std::net::IpAddr;

use ipnet::IpNet;
use pipework_base::drift::{Finding, Repair, RepairScope};
use pipework_base::driver::UndoContext;
use pipework_base::driver::{AttachContext, DriverKind, Plugged};
use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::Journal;
use pipework_base::shared::{user_key, Shared, SharedKind};
use pipework_model::{HostRoute, MacAddr, MacvlanMode, MAX_IFNAME_LEN};
use pipework_sys::netlink::{Link, Netlink, NewLink, RouteSpec};
use serde::{Deserialize, Serialize};

/// What the journal keeps of one attachment's use of a shim (a step of the
/// macvlan driver's journal).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShimUse {
    pub shim: String,
    pub parent: String,
    /// The marker file's name: the guest namespace and interface.
    pub owner: String,
    /// Host routes to the guest's addresses through the shim.
    pub routes: Vec<IpAddr>,
}

/// The shim's name for a parent: readable when it fits, hashed when not.
pub fn shim_name(parent: &str) -> String {
    let n = format!("pwh-{parent}");
    if n.len() <= MAX_IFNAME_LEN {
        n
    } else {
        format!(
            "pwh{:010x}",
            pipework_base::hostname::fnv1a(parent.as_bytes()) & 0xff_ffff_ffff
        )
    }
}

/// Checks a request for the shim before anything is changed.
pub fn validate(ctx: &AttachContext<'_>) -> Result<()> {
    if ctx.request.options.host_route.is_some()
        && ctx.request.options.macvlan_mode != MacvlanMode::Bridge
    {
        return Err(Error::usage(
            "--host-route needs --macvlan-mode bridge: only bridge-mode siblings reach each other",
        ));
    }
    Ok(())
}

/// Plugs the host into the guest's macvlan network, once the guest link has
/// its addresses (static or from DHCP). The use is recorded as the macvlan
/// driver's step `step(use)`.
pub async fn attach<S: Serialize>(
    ctx: &AttachContext<'_>,
    plugged: &Plugged,
    step: impl FnOnce(ShimUse) -> S,
    journal: &mut Journal,
) -> Result<()> {
    let Some(how) = &ctx.request.options.host_route else {
        return Ok(());
    };
    let nic = ctx.existing_host_link()?;
    // With @VID the guest's macvlan sits on the 802.1Q sub-interface: so
    // must the shim, to be on the same segment.
    let sub;
    let parent = match ctx.request.tag.as_ref().map(|t| t.as_vlan()).transpose()? {
        Some(vid) => {
            let name = crate::vlan::sub_name(&nic.name, vid)?;
            sub = ctx
                .host
                .link_by_name(&name)
                .await?
                .ok_or_else(|| Error::failed(format!("{name} vanished")))?;
            &sub
        }
        None => nic,
    };
    let guest_addrs: Vec<IpNet> = ctx
        .guest_nl
        .addresses(plugged.guest_ifindex)
        .await?
        .into_iter()
        .filter(|a| !a.scope_link)
        .map(|a| a.address)
        .collect();
    if guest_addrs.is_empty() {
        return Err(Error::usage(
            "--host-route: the interface has no address for the host to reach",
        ));
    }
    let own = match how {
        HostRoute::Address(a) => vec![*a],
        HostRoute::Auto => auto_addresses(&guest_addrs)?,
    };
    let shim = shim_name(&parent.name);
    let owner = user_key(ctx.guest.info.netns, ctx.guest_ifname.as_str());
    let shared = ctx.state.shared(SharedKind::Shim, &shim);
    let _lock = shared.lock(true).await?;
    let usage = ShimUse {
        shim: shim.clone(),
        parent: parent.name.clone(),
        owner: owner.clone(),
        routes: guest_addrs.iter().map(IpNet::addr).collect(),
    };
    let routes = usage.routes.clone();
    journal.record_driver(DriverKind::Macvlan, &step(usage))?;
    shared.add_user(&owner)?;
    let link = ensure_shim(ctx.host, &shim, parent).await?;
    let present: Vec<IpNet> = ctx
        .host
        .addresses(link.index)
        .await?
        .into_iter()
        .map(|a| a.address)
        .collect();
    for a in own {
        if !present.contains(&a) {
            match ctx.host.add_address(link.index, &a, true).await {
                Err(e) if !e.is(libc::EEXIST) => {
                    return Err(e).step(&format!("add {a} to the shim {shim}"))
                }
                _ => {}
            }
        }
    }
    for ip in &routes {
        ctx.host
            .add_route(&RouteSpec::host_on_link(*ip, link.index), true)
            .await
            .step(&format!("add the host route to {ip} through {shim}"))?;
    }
    Ok(())
}

/// `pipework check` of one use of a shim: the shim link, and the host
/// route to each guest address through it (put back when repairing).
pub async fn check(u: &ShimUse, repair: RepairScope) -> Vec<Finding> {
    let mut out = Vec::new();
    let unrepaired = |why: &str| Repair::left(repair, why);
    let host = match Netlink::connect_here("host") {
        Ok(h) => h,
        Err(e) => {
            out.push(Finding::new(
                "shim",
                format!("cannot open netlink: {e}"),
                unrepaired("netlink failed"),
            ));
            return out;
        }
    };
    let link = match host.link_by_name(&u.shim).await {
        Ok(Some(l)) if l.is_kind("macvlan") => l,
        Ok(_) => {
            out.push(Finding::new(
                "shim",
                format!("the host shim {} on {} is gone", u.shim, u.parent),
                unrepaired("detach and attach again"),
            ));
            return out;
        }
        Err(e) => {
            out.push(Finding::new(
                "shim",
                format!("cannot read the host shim {}: {e}", u.shim),
                unrepaired("netlink failed"),
            ));
            return out;
        }
    };
    for ip in &u.routes {
        let want = RouteSpec::host_on_link(*ip, link.index);
        let have = host
            .routes(pipework_model::Family::of(ip), want.table)
            .await
            .unwrap_or_default();
        let present = have
            .iter()
            .any(|r| r.destination == want.destination && r.oif == Some(link.index));
        if present {
            continue;
        }
        let outcome = if repair.host_side() {
            Repair::of(host.add_route(&want, true).await)
        } else {
            Repair::NotAsked
        };
        out.push(Finding::new(
            "shim",
            format!("the host route to {ip} through the shim {} is gone", u.shim),
            outcome,
        ));
    }
    out
}

/// The shim, created (bridge mode, up, a MAC that stays the same across
/// re-creations so that neighbours' caches stay right) if missing.
async fn ensure_shim(host: &Netlink, name: &str, parent: &Link) -> Result<Link> {
    if let Some(l) = host.link_by_name(name).await? {
        if !l.is_kind("macvlan") || l.parent != Some(parent.index) {
            return Err(Error::usage(format!(
                "{name} exists and is not pipework's shim on {}",
                parent.name
            )));
        }
        return Ok(l);
    }
    let mac = MacAddr::from_unique_string(&format!("pipework shim {}", parent.name));
    let new = NewLink::macvlan(name, parent.index, MacvlanMode::Bridge)
        .mtu(parent.mtu)
        .mac(mac)
        .up();
    host.create_link(new)
        .await
        .step(&format!("create the shim {name}"))?;
    host.link_by_name(name)
        .await?
        .ok_or_else(|| Error::failed(format!("the shim {name} vanished")))
}

/// The last usable address of each family's first subnet, stepping past
/// the guest's own.
fn auto_addresses(guest: &[IpNet]) -> Result<Vec<IpNet>> {
    let mut out = Vec::new();
    for want_v4 in [true, false] {
        let Some(net) = guest.iter().find(|n| n.addr().is_ipv4() == want_v4) else {
            continue;
        };
        let max = if want_v4 { 30 } else { 126 };
        if net.prefix_len() > max {
            return Err(Error::usage(format!(
                "--host-route auto: {net} leaves no address for the shim; give one"
            )));
        }
        let last = match net {
            IpNet::V4(n) => u128::from(u32::from(n.broadcast())) - 1,
            IpNet::V6(n) => u128::from(n.broadcast()),
        };
        let mut pick = last;
        if to_ip(pick, want_v4) == net.addr() {
            pick -= 1;
        }
        let ip = to_ip(pick, want_v4);
        out.push(IpNet::new(ip, net.prefix_len()).expect("same prefix length"));
    }
    Ok(out)
}

fn to_ip(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4((v as u32).into())
    } else {
        IpAddr::V6(v.into())
    }
}

/// Undoes one attachment's use of a shim: its routes, its marker, and the
/// shim itself when nobody else uses it.
pub async fn undo(u: &ShimUse, ctx: &UndoContext<'_>) -> Result<()> {
    let shared = ctx.state.shared(SharedKind::Shim, &u.shim);
    let _lock = shared.lock(true).await?;
    shared.remove_user(&u.owner)?;
    if release_if_unused(ctx.host, &shared).await? {
        return Ok(());
    }
    let Some(link) = own_shim(ctx.host, &u.shim, &u.parent).await? else {
        return Ok(());
    };
    for ip in &u.routes {
        match ctx
            .host
            .delete_route(&RouteSpec::host_on_link(*ip, link.index))
            .await
        {
            Err(e) if !e.is_gone() && !e.is(libc::ESRCH) => {
                return Err(e).step(&format!("undo: delete the host route to {ip}"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The shim, if the link of that name is one (a macvlan of `parent`);
/// someone else's link under our name is not ours to touch.
async fn own_shim(host: &Netlink, shim: &str, parent: &str) -> Result<Option<Link>> {
    let Some(link) = host.link_by_name(shim).await? else {
        return Ok(None);
    };
    let parent = host.link_by_name(parent).await?;
    if !link.is_kind("macvlan") || parent.is_none_or(|p| link.parent != Some(p.index)) {
        return Ok(None);
    }
    Ok(Some(link))
}

/// With the shim's lock held: deletes the shim once no attachment uses it
/// (users whose attachment is gone do not count) and drops its account.
/// Returns whether it did. `gc` calls it for every account.
pub async fn release_if_unused(host: &Netlink, shared: &Shared<'_>) -> Result<bool> {
    for u in shared.stale_users()? {
        shared.remove_user(&u)?;
    }
    if !shared.users()?.is_empty() {
        return Ok(false);
    }
    let name = shared.name();
    if let Some(link) = host.link_by_name(name).await? {
        // Only a macvlan under our prefix: the parent is not recorded here.
        if link.is_kind("macvlan") && name.starts_with("pwh") {
            match host.delete_link(link.index, name).await {
                Err(e) if !e.is_gone() => return Err(e).step("undo: delete the shim"),
                _ => {}
            }
        }
    }
    shared.forget()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(shim_name("eth0"), "pwh-eth0");
        let long = shim_name("enp0s31f6verylong");
        assert!(long.starts_with("pwh") && long.len() <= MAX_IFNAME_LEN);
    }

    #[test]
    fn auto_picks_the_last_usable_address() {
        let a = auto_addresses(&["10.1.2.3/24".parse().unwrap()]).unwrap();
        assert_eq!(a, vec!["10.1.2.254/24".parse::<IpNet>().unwrap()]);
        let a = auto_addresses(&["10.1.2.254/24".parse().unwrap()]).unwrap();
        assert_eq!(a, vec!["10.1.2.253/24".parse::<IpNet>().unwrap()]);
        let a = auto_addresses(&[
            "fd00::5/64".parse().unwrap(),
            "192.168.0.9/16".parse().unwrap(),
        ])
        .unwrap();
        assert_eq!(
            a,
            vec![
                "192.168.255.254/16".parse::<IpNet>().unwrap(),
                "fd00::ffff:ffff:ffff:ffff/64".parse().unwrap()
            ]
        );
        assert!(auto_addresses(&["10.0.0.1/31".parse().unwrap()]).is_err());
    }
}
