//! 802.1Q sub-interfaces `<if>.<VID>` shared by the macvlans of many
//! attachments.
//!
//! The kernel cannot say who uses a sub-interface: the macvlans stacked on it
//! live in guest namespaces, invisible from the host. So pipework keeps the
//! account in its state directory, under a lock per sub-interface:
//! `vlans/<name>/created` when pipework made it, and one
//! `vlans/<name>/users/<netns>-<ifname>` per attachment on it. The last user
//! to leave deletes a sub-interface pipework created; one that was there
//! before is never deleted.

use pipework_base::driver::UndoContext;
use pipework_base::driver::{AttachContext, DriverKind};
use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::Journal;
use pipework_base::ops;
use pipework_model::{VlanId, MAX_IFNAME_LEN};
use pipework_sys::netlink::{Link, NewLink};
use serde::{Deserialize, Serialize};

/// One use of a shared sub-interface, a step of the journal of the driver
/// that stacks on it (`vlan_used`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VlanUse {
    pub name: String,
    pub user: String,
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

/// `vlans/<name>`, relative to the state root.
fn dir(name: &str) -> String {
    format!("vlans/{name}")
}

fn lock_name(name: &str) -> String {
    format!("vlan-{name}")
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
/// is recorded as `driver`'s step `step(use)`.
pub async fn acquire<S: Serialize>(
    ctx: &AttachContext<'_>,
    driver: DriverKind,
    step: impl FnOnce(VlanUse) -> S,
    parent: &Link,
    vid: VlanId,
    journal: &mut Journal,
) -> Result<Link> {
    let name = sub_name(&parent.name, vid)?;
    let _lock = ctx.state.lock_named(&lock_name(&name)).await?;
    let user = format!("{}-{}", ctx.guest.info.netns, ctx.guest_ifname);
    let d = dir(&name);
    ctx.state.dir(&format!("{d}/users"), true)?;
    // Recorded first: a failure from here on releases the use (and deletes
    // the sub-interface if we made it and nobody else uses it).
    journal.record_driver(
        driver,
        &step(VlanUse {
            name: name.clone(),
            user: user.clone(),
        }),
    )?;
    ctx.state.write_file(&format!("{d}/users/{user}"), b"")?;
    let link = match ctx.host.link_by_name(&name).await? {
        Some(l) => {
            check_existing(&l, parent, vid)?;
            ops::ensure_host_link_up(ctx.host, &l, journal)
                .await
                .step("set the 802.1Q sub-interface up")?;
            l
        }
        None => {
            ops::ensure_host_link_up(ctx.host, parent, journal)
                .await
                .step("set parent up")?;
            let new = NewLink::vlan(&name, parent.index, vid.get())
                .mtu(parent.mtu)
                .up();
            // Marked before it exists: a crash in between leaves a marker
            // for a link that is not there, which release ignores.
            ctx.state.write_file(&format!("{d}/created"), b"")?;
            match ctx.host.create_link(new).await {
                Ok(()) => {}
                Err(e) => {
                    let _ = ctx.state.remove_file(&format!("{d}/created"));
                    return Err(e).step("create the 802.1Q sub-interface");
                }
            }
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
    let _lock = ctx.state.lock_named(&lock_name(&u.name)).await?;
    let d = dir(&u.name);
    ctx.state
        .remove_file(&format!("{d}/users/{}", u.user))
        .map_err(|e| e.context(format!("cannot drop a use of {}", u.name)))?;
    let others = ctx.state.list(&format!("{d}/users"))?.len();
    if others > 0 {
        return Ok(());
    }
    if ctx.state.read_file(&format!("{d}/created"))?.is_some() {
        if let Some(l) = ctx.host.link_by_name(&u.name).await? {
            if l.is_kind("vlan") {
                match ctx.host.delete_link(l.index, &u.name).await {
                    Ok(()) => {}
                    Err(e) if e.is_gone() => {}
                    Err(e) => return Err(e).step("undo: delete the 802.1Q sub-interface"),
                }
            }
        }
    }
    let _ = ctx.state.remove_tree(&d);
    Ok(())
}
