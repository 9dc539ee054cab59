//! The veth pair shared by the bridge drivers: host end a bridge port, guest
//! end created directly in the guest under its final name.
//!
//! Not under the temporary name other drivers use: renaming a link makes the
//! kernel register its per-interface sysctls (IPv4 and IPv6 `conf/<name>`)
//! again, the largest single item of the attach's kernel time. A kill right
//! after the creation then leaves a link with the guest's own name, which no
//! `gc` could tell from one of the guest's; so the host end is journaled
//! before the pair exists (write-ahead), and undoing it deletes both ends.

use pipework_base::driver::AttachContext;
use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::Journal;
use pipework_model::IfName;
use pipework_sys::netlink::{Link, NewLink};

use pipework_base::{hostname, ops};

/// The created pair.
pub struct VethPair {
    pub host: Link,
    /// The guest end's index in the guest namespace.
    pub guest_index: u32,
}

/// Creates the pair with `mtu`, the host end up and (if `master` is given) a
/// port of that bridge, in a single `RTM_NEWLINK`.
pub async fn create(
    ctx: &AttachContext<'_>,
    mtu: u32,
    master: Option<u32>,
    journal: &mut Journal,
) -> Result<VethPair> {
    let explicit = ctx.request.host_ifname.clone();
    // The generated name is not looked up first: the kernel refuses a taken
    // one (`NLM_F_EXCL`) and the loop below tries a random one, so the common
    // case costs one request. The write-ahead step of a refused request is
    // taken back at once; one a kill leaves in that moment deletes only a
    // veth whose peer is in another namespace under a name made for this
    // guest and interface (`v<if>pl<pid>` or `pw<hash>`, see `host_peer`).
    let mut name: IfName = match &explicit {
        Some(n) => n.clone(),
        None => hostname::host_peer(ctx.guest_ifname, &ctx.guest.info),
    };
    for attempt in 0..3 {
        let peer = NewLink::veth_peer(ctx.guest_ifname.as_str())
            .mtu(mtu)
            .mac(ctx.mac)
            .single_queue()
            .netns(std::os::fd::AsFd::as_fd(&ctx.guest.netns));
        let mut new = NewLink::veth(name.as_str(), peer)
            .mtu(mtu)
            .single_queue()
            .up();
        if let Some(m) = master {
            new = new.master(m);
        }
        match ops::create_host_link_ahead(ctx.host, name.as_str(), new, journal).await {
            Ok(host) => {
                // A veth's IFLA_LINK is its peer's index (in the peer's
                // namespace): no need to look the guest end up.
                let guest_index = match host.parent {
                    Some(i) if i != 0 => i,
                    _ => {
                        ctx.guest_nl
                            .link_by_name(ctx.guest_ifname.as_str())
                            .await?
                            .ok_or_else(|| {
                                Error::failed(format!(
                                    "{} did not appear in the guest",
                                    ctx.guest_ifname
                                ))
                            })
                            .step("create veth")?
                            .index
                    }
                };
                return Ok(VethPair { host, guest_index });
            }
            // Something in the guest made a link of that name since the
            // attach looked (the guest's lock keeps other attaches out).
            Err(e)
                if e.is(libc::EEXIST)
                    && ctx
                        .guest_nl
                        .link_by_name(ctx.guest_ifname.as_str())
                        .await?
                        .is_some() =>
            {
                return Err(Error::usage(format!(
                    "the guest already has an interface {} (choose another with -i)",
                    ctx.guest_ifname
                )));
            }
            // The generated name is taken (a link left by hand, or another
            // run's random name): a random one.
            Err(e) if e.is(libc::EEXIST) && explicit.is_none() && attempt < 2 => {
                name = hostname::random_host_peer();
            }
            Err(e) if e.is(libc::EEXIST) && explicit.is_some() => {
                return Err(Error::usage(format!(
                    "host interface name {name} (-l) is already taken"
                )));
            }
            Err(e) => return Err(e).step("create veth"),
        }
    }
    unreachable!("the loop returns on its last attempt")
}
