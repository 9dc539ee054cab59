//! 802.1Q sub-interfaces `<if>.<VID>` shared by the macvlans of many
//! attachments.
//!
//! The kernel cannot say who uses a sub-interface: the macvlans stacked on it
//! live in guest namespaces, invisible from the host. So pipework keeps the
//! account in its state directory (`pipework_base::shared`: who made it,
//! one user per attachment on it, a lock). The last user to leave deletes a
//! sub-interface pipework created; one that was there before is never
//! deleted.

use pipework_base::driver::UndoContext;
use pipework_base::driver::{AttachContext, DriverKind};
use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::Journal;
use pipework_base::ops;
use pipework_base::shared::{user_key, Shared, SharedKind};
use pipework_model::{VlanId, MAX_IFNAME_LEN};
use pipework_sys::netlink::{Link, LinkChange, NewLink};
use serde::{Deserialize, Serialize};

/// One use of a shared sub-interface, a step of the journal of the driver
/// that stacks on it (`vlan_used`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VlanUse {
    pub name: String,
    pub user: String,
    /// The name a sub-interface is made under before it is marked as ours
    /// and renamed; undo deletes a link still carrying it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp: Option<String>,
}

/// `<parent>.<vid>`, the name `ip link add ... type vlan` users expect.
pub fn sub_name(parent: &str, vid: VlanId) -> Result<String> {
    let name = format!("{parent}.{vid}");
    if name.len() > MAX_IFNAME_LEN {
        return Err(Error::usage(format!(
            "the 802.1Q sub-interface name {name} would be longer than {MAX_IFNAME_LEN} characters"
        )));
    }
    Ok(name)
}

/// Checks that an existing link is the sub-interface we would make.
pub fn check_existing(l: &Link, parent: &Link, vid: VlanId) -> Result<()> {
    if l.is_kind("vlan") && l.parent == Some(parent.index) && l.vlan_id == Some(vid.get()) {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "{} exists but is not VLAN {vid} of {}",
            l.name, parent.name
        )))
    }
}

/// The sub-interface for VLAN `vid` on `parent`, created (up, with the
/// parent's MTU) if missing, and counted as used by this attachment. The use
/// is recorded as `driver`'s step `step(use)`, before anything changes.
pub async fn acquire<S: Serialize>(
    ctx: &AttachContext<'_>,
    driver: DriverKind,
    step: impl FnOnce(VlanUse) -> S,
    parent: &Link,
    vid: VlanId,
    journal: &mut Journal,
) -> Result<Link> {
    let name = sub_name(&parent.name, vid)?;
    let shared = ctx.state.shared(SharedKind::Vlan, &name);
    let _lock = shared.lock(true).await?;
    let user = user_key(ctx.guest.info.netns, ctx.guest_ifname.as_str());
    let existing = ctx.host.link_by_name(&name).await?;
    let temp = existing
        .is_none()
        .then(pipework_base::hostname::temp_guest_name);
    // Recorded first: a failure (or a kill) from here on releases the use
    // (and deletes the sub-interface if we made it and nobody else uses it).
    journal.record_driver(
        driver,
        &step(VlanUse {
            name: name.clone(),
            user: user.clone(),
            temp: temp.clone(),
        }),
    )?;
    shared.add_user(&user)?;
    let link = match (existing, temp) {
        (Some(l), _) => {
            check_existing(&l, parent, vid)?;
            ops::ensure_host_link_up(ctx.host, &l, journal)
                .await
                .step("set the 802.1Q sub-interface up")?;
            l
        }
        (None, temp) => {
            let temp = temp.expect("a temporary name when missing");
            ops::ensure_host_link_up(ctx.host, parent, journal)
                .await
                .step("set parent up")?;
            // Made under the temporary name, marked as ours by its index,
            // then renamed and set up in one request: ownership is on disk
            // before the name is.
            let new = NewLink::vlan(&temp, parent.index, vid.get()).mtu(parent.mtu);
            ctx.host
                .create_link(new)
                .await
                .step("create the 802.1Q sub-interface")?;
            let made = ctx
                .host
                .link_by_name(&temp)
                .await?
                .ok_or_else(|| Error::failed(format!("{temp} vanished after creation")))?;
            shared.mark_created(made.index)?;
            ctx.host
                .change_link(
                    LinkChange::new(made.index)
                        .name(&name)
                        .up()
                        .describe(format!("rename {temp} to {name} and set it up")),
                )
                .await
                .step("create the 802.1Q sub-interface")?;
            ctx.host
                .link_by_name(&name)
                .await?
                .ok_or_else(|| Error::failed(format!("{name} vanished after creation")))?
        }
    };
    Ok(link)
}

/// Undoes one [`acquire`]: drops the use, and deletes the sub-interface if
/// pipework created it and no attachment uses it any more.
pub async fn release(u: &VlanUse, ctx: &UndoContext<'_>) -> Result<()> {
    let shared = ctx.state.shared(SharedKind::Vlan, &u.name);
    let _lock = shared.lock(true).await?;
    if let Some(t) = &u.temp {
        if let Some(l) = ctx.host.link_by_name(t).await? {
            if l.is_kind("vlan") {
                delete(ctx, l.index, t).await?;
            }
        }
    }
    shared.remove_user(&u.user)?;
    release_if_unused(ctx.host, &shared).await.map(|_| ())
}

/// With the sub-interface's lock held: deletes it if pipework made it and
/// nobody uses it (users whose attachment is gone do not count), and drops
/// its account then. Returns whether it deleted it. `gc` calls it for every
/// account.
pub async fn release_if_unused(
    host: &pipework_sys::netlink::Netlink,
    shared: &Shared<'_>,
) -> Result<bool> {
    for u in shared.stale_users()? {
        shared.remove_user(&u)?;
    }
    if !shared.users()?.is_empty() {
        return Ok(false);
    }
    let mut deleted = false;
    if let Some(l) = host.link_by_name(shared.name()).await? {
        if l.is_kind("vlan") && shared.created().is_some() && shared.owns(l.index) {
            match host.delete_link(l.index, shared.name()).await {
                Ok(()) => deleted = true,
                Err(e) if e.is_gone() => {}
                Err(e) => return Err(e).step("undo: delete the 802.1Q sub-interface"),
            }
        }
    }
    shared.forget()?;
    Ok(deleted)
}

async fn delete(ctx: &UndoContext<'_>, index: u32, name: &str) -> Result<()> {
    match ctx.host.delete_link(index, name).await {
        Err(e) if !e.is_gone() => Err(e).step("undo: delete the 802.1Q sub-interface"),
        _ => Ok(()),
    }
}
