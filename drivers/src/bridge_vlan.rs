//! `@VID` on a Linux bridge (the original refused it): the bridge filters
//! VLANs and the guest's port has `VID` as its PVID, untagged, so the guest
//! sees plain frames and only its VLAN.

use pipework_base::driver::AttachContext;
use pipework_base::driver::UndoContext;
use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::UndoMode;
use pipework_model::VlanId;
use pipework_sys::netlink::{Link, LinkChange};

/// The bridge's default PVID, which every new port gets.
const DEFAULT_PVID: u16 = 1;

/// Turns VLAN filtering on if it is off. Returns whether it did, for the
/// caller to record at once (a rollback turns it off again; a detach leaves
/// it, as other ports may rely on it by then).
/// `bridge` was looked up under the bridge's lock: its `vlan_filtering` is
/// current (absent when the kernel cannot filter, which the change below
/// then says).
pub async fn ensure_filtering(ctx: &AttachContext<'_>, bridge: &Link) -> Result<bool> {
    if bridge.vlan_filtering == Some(true) {
        return Ok(false);
    }
    ctx.host
        .change_link(LinkChange::bridge_vlan_filtering(bridge.index, true))
        .await
        .map_err(|e| {
            if e.is(libc::EOPNOTSUPP) {
                Error::failed(format!(
                    "this kernel cannot filter VLANs on bridge {} (CONFIG_BRIDGE_VLAN_FILTERING)",
                    bridge.name
                ))
                .with_source(e)
            } else {
                e.into()
            }
        })
        .step("turn on VLAN filtering")?;
    Ok(true)
}

/// Makes `vid` the port's only VLAN: PVID and untagged. The port is ours
/// (deleting it undoes this), so nothing is journaled.
pub async fn set_port_vlan(ctx: &AttachContext<'_>, port: &Link, vid: VlanId) -> Result<()> {
    ctx.host
        .bridge_port_set_pvid(port.index, vid.get())
        .await
        .step("set the port's VLAN")?;
    if vid.get() != DEFAULT_PVID {
        match ctx
            .host
            .bridge_port_del_vlan(port.index, DEFAULT_PVID)
            .await
        {
            Ok(()) => {}
            // Not a member (the bridge's default PVID is not 1, or none).
            Err(e) if e.is(libc::ENOENT) || e.is(libc::EINVAL) => {}
            Err(e) => return Err(e).step("remove the port from VLAN 1"),
        }
    }
    Ok(())
}

/// Undoes [`ensure_filtering`] on rollback.
pub async fn undo(bridge: &str, ctx: &UndoContext<'_>) -> Result<()> {
    if ctx.mode != UndoMode::Rollback {
        return Ok(());
    }
    if let Some(br) = ctx.host.link_by_name(bridge).await? {
        match ctx
            .host
            .change_link(LinkChange::bridge_vlan_filtering(br.index, false))
            .await
        {
            Err(e) if !e.is_gone() => return Err(e).step("undo: turn VLAN filtering off"),
            _ => {}
        }
    }
    Ok(())
}
