//! The DHCP part of an attach: checked before anything is created, run once
//! the link is up. Native leases are handed to the daemon, which keeps them;
//! the attach returns once each is bound.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use ipnet::IpNet;

use super::lease::{Lease, LeaseSpec, Proto};
use super::resolv::{self, ResolvTarget};
use super::{compat, ident};
use crate::daemon::client;
use crate::daemon::proto::Request;
use pipework_base::error::{Context, Error, Result};
use pipework_base::guest::Guest;
use pipework_base::journal::{Journal, Step};
use pipework_base::settings::Settings;
use pipework_base::wait;
use pipework_model::{AddressMode, AttachRequest, DhcpClient, MacAddr};
use pipework_sys::netlink::Netlink;

/// Refuses what cannot work, before the attach changes anything. Returns
/// where `--dns` will write.
pub fn validate(req: &AttachRequest, guest: &Guest) -> Result<Option<ResolvTarget>> {
    if !req.options.dns {
        return Ok(None);
    }
    match &req.address {
        AddressMode::Dhcp(d) if d.client == DhcpClient::Native => resolv::target_for(guest).map(Some),
        AddressMode::Dhcp(_) => Err(Error::usage(
            "--dns works with the native client (dhcp, dhcp6); the compatible modes keep their resolv.conf private",
        )),
        _ => Err(Error::usage("--dns needs a DHCP address (dhcp or dhcp6)")),
    }
}

/// Where the attach stands when DHCP runs.
pub struct Link<'a> {
    pub req: &'a AttachRequest,
    pub guest: &'a Guest,
    pub guest_nl: &'a Netlink,
    pub ifname: &'a str,
    pub ifindex: u32,
    pub mac: MacAddr,
    pub resolv: Option<ResolvTarget>,
    pub settings: &'a Settings,
}

/// Obtains the leases the request asks for. Returns them (native) and the
/// addresses now on the link.
pub async fn run(l: &Link<'_>, journal: &mut Journal) -> Result<(Vec<Lease>, Vec<IpNet>)> {
    let AddressMode::Dhcp(spec) = &l.req.address else {
        return Ok((Vec::new(), Vec::new()));
    };
    if spec.client != DhcpClient::Native {
        compat::run(
            spec,
            l.guest,
            l.ifname,
            l.settings,
            l.req.options.timeout,
            journal,
        )
        .map_err(|e| e.context(format!("step {:?} client", spec.client).to_lowercase()))?;
        let addrs = l
            .guest_nl
            .addresses(l.ifindex)
            .await?
            .into_iter()
            .filter(|a| !a.scope_link)
            .map(|a| a.address)
            .collect();
        return Ok((Vec::new(), addrs));
    }
    let mut leases = Vec::new();
    for proto in [Proto::V4, Proto::V6] {
        if (proto == Proto::V4 && !spec.v4) || (proto == Proto::V6 && !spec.v6) {
            continue;
        }
        let lease = native(l, proto, journal)
            .await
            .map_err(|e| e.context(format!("step {}", proto.as_str())))?;
        leases.push(lease);
    }
    let addrs = leases.iter().map(|x| x.address).collect();
    Ok((leases, addrs))
}

fn spec_for(l: &Link<'_>, proto: Proto, link_mtu: Option<u32>) -> LeaseSpec {
    let info = &l.guest.info;
    let name = l.guest.name();
    let mac_spec = &l.req.mac;
    LeaseSpec {
        key: LeaseSpec::key_for(info.netns, l.ifname, proto),
        proto,
        guest: info.clone(),
        ifname: l.ifname.to_string(),
        ifindex: l.ifindex,
        mac: l.mac,
        hostname: ident::hostname(name),
        client_id: match proto {
            Proto::V4 => ident::client_id_v4(name, l.ifname, mac_spec, l.mac),
            Proto::V6 => ident::duid(name, l.ifname, mac_spec, l.mac),
        },
        iaid: ident::iaid(l.ifname),
        link_mtu,
        // Both leases write the one file (see `resolv_share`).
        resolv: l.resolv.clone(),
    }
}

async fn native(l: &Link<'_>, proto: Proto, journal: &mut Journal) -> Result<Lease> {
    // The link as created, before any lease: the most a lease's MTU may be.
    let link_mtu = l.guest_nl.link_by_index(l.ifindex).await?.map(|k| k.mtu);
    let spec = spec_for(l, proto, link_mtu);
    // Journaled first: whatever happens next, undo asks for a release.
    journal.record(Step::DhcpLease {
        key: spec.key.clone(),
    });
    let mut fds: Vec<OwnedFd> = vec![l.guest.netns.as_fd().try_clone_to_owned()?];
    if let Some(p) = l.guest.process() {
        fds.push(p.pidfd().try_clone()?);
    }
    let timeout = l.req.options.timeout;
    let args = serde_json::json!({
        "spec": spec,
        "timeout_ms": timeout.as_millis() as u64,
    });
    let result = client::call(
        l.settings,
        Request {
            service: "dhcp".into(),
            op: "acquire".into(),
            args,
        },
        fds,
    )
    .await?;
    let lease: Lease = serde_json::from_value(result["lease"].clone())
        .map_err(|e| Error::failed("the daemon's answer has no lease").with_source(e))?;
    pipework_base::fault::point("dhcp-bound")?;
    if proto == Proto::V6 && !l.req.options.skip_dad {
        wait::wait_dad(
            l.guest_nl,
            l.ifindex,
            &[lease.address.addr()],
            Duration::from_secs(5),
        )
        .await
        .step("IPv6 duplicate address detection")?;
    }
    Ok(lease)
}
