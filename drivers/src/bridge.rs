//! Linux bridge: a veth pair whose host end is a port of the bridge. A missing
//! `br*` bridge is created, safely when many attaches race to create it.
//! `@VID` puts the port in that VLAN (see `bridge_vlan.rs`).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use pipework_base::driver::UndoContext;
use pipework_base::driver::{AttachContext, Driver, DriverKind, MacHandling, Plan, Plugged};
use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::{DriverData, Journal};
use pipework_base::shared::{Shared, SharedKind};
use pipework_base::state::LockGuard;
use pipework_model::{MacAddr, VlanId};
use pipework_sys::netlink::{Link, LinkChange, Netlink, NewLink};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::{bridge_vlan, veth};

pub struct LinuxBridge;

/// What `validate` found for `create`.
struct BridgePlan {
    /// `@VID`: the port's VLAN.
    vid: Option<VlanId>,
}

/// The bridge driver's journal steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum BridgeStep {
    /// The bridge is about to get our port; `created` if this attach made
    /// it. Undo: once our port is gone, delete the bridge if pipework
    /// created it (this time or earlier) and it has no ports left. (Older
    /// records have it as a journal step of its own, `Step::BridgeUsed`,
    /// with the same fields; the journal hands those over here.)
    ///
    /// Recorded before the bridge is made, with `temp`: the name it is
    /// created under before it is marked as ours and renamed (undo deletes
    /// a link still carrying it).
    BridgeUsed {
        name: String,
        created: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        temp: Option<String>,
    },
    /// VLAN filtering was off and this attach turned it on. Undone on
    /// rollback only.
    VlanFilteringOn { bridge: String },
}

#[async_trait]
impl Driver for LinuxBridge {
    fn kind(&self) -> DriverKind {
        DriverKind::LinuxBridge
    }

    async fn validate(&self, ctx: &AttachContext<'_>) -> Result<Plan> {
        let vid = ctx.request.tag.as_ref().map(|t| t.as_vlan()).transpose()?;
        Ok(Plan::new(BridgePlan { vid }))
    }

    async fn create(
        &self,
        ctx: &AttachContext<'_>,
        plan: Plan,
        journal: &mut Journal,
    ) -> Result<Plugged> {
        let BridgePlan { vid } = plan.take()?;
        let name = ctx.host_ifname;
        // Shared: other attaches may add ports meanwhile; a detach deciding to
        // delete an empty bridge, or an attach creating it, takes it
        // exclusively (and keeps it until our port is in).
        let (bridge, _lock) = use_bridge(ctx, name, journal).await.step("create bridge")?;
        pipework_base::fault::point("bridge-ready")?;
        if vid.is_some() && bridge_vlan::ensure_filtering(ctx, &bridge).await? {
            journal.record_driver(
                DriverKind::LinuxBridge,
                &BridgeStep::VlanFilteringOn {
                    bridge: bridge.name.clone(),
                },
            )?;
        }
        let pair = veth::create(ctx, bridge.mtu, Some(bridge.index), journal).await?;
        if let Some(v) = vid {
            bridge_vlan::set_port_vlan(ctx, &pair.host, v).await?;
        }
        Ok(Plugged {
            guest_ifindex: pair.guest_index,
            mac: MacHandling::SetAtCreation,
            host_peer: Some(pair.host.name),
            bridge: Some(name.to_string()),
            vlan: vid.map(|v| v.get()),
            untagged_bridge: (vid.is_none() && bridge.vlan_filtering == Some(false))
                .then_some(bridge.index),
            mtu: bridge.mtu,
            details: Default::default(),
        })
    }

    async fn undo(&self, data: &DriverData, ctx: &UndoContext<'_>) -> Result<()> {
        match data.decode(DriverKind::LinuxBridge)? {
            BridgeStep::BridgeUsed { name, temp, .. } => release_bridge(ctx, &name, temp)
                .await
                .step("undo: release bridge"),
            BridgeStep::VlanFilteringOn { bridge } => bridge_vlan::undo(&bridge, ctx).await,
        }
    }

    /// Frames sent before the bridge forwards on our port are dropped, and
    /// the port only starts forwarding once the guest end is up (carrier) and
    /// the kernel's link watch has run: wait for that before the guest
    /// announces itself. Nothing to wait for when it does not (no static
    /// address, `--no-announce`, or `apply` sent the ARP from the host).
    async fn after_up(
        &self,
        ctx: &AttachContext<'_>,
        plugged: &mut Plugged,
        guest_announces: bool,
        _journal: &mut Journal,
    ) -> Result<()> {
        let Some(peer) = plugged.host_peer.as_deref() else {
            return Ok(());
        };
        if !guest_announces {
            return Ok(());
        }
        let deadline = Instant::now() + PORT_FORWARDING_WAIT;
        let mut pause = Duration::from_micros(200);
        loop {
            match ctx.host.link_by_name(peer).await? {
                Some(l) if l.carrier && l.bridge_port_state == Some(BR_STATE_FORWARDING) => {
                    return Ok(())
                }
                Some(l) if Instant::now() >= deadline => {
                    warn!(
                        "bridge port {peer} is not forwarding yet (state {:?}; STP?): announcing anyway",
                        l.bridge_port_state
                    );
                    return Ok(());
                }
                Some(_) => {}
                None => {
                    return Err(Error::failed(format!("host veth {peer} vanished"))
                        .context("step wait for bridge port"))
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// `BR_STATE_FORWARDING`.
const BR_STATE_FORWARDING: u8 = 3;
/// Long enough for link watch; shorter than an STP forward delay, which we do
/// not sit through (the announcement is then sent anyway, with a warning).
const PORT_FORWARDING_WAIT: Duration = Duration::from_secs(2);

/// Undoes [`BridgeStep::BridgeUsed`]: deletes the bridge once its last
/// port is gone, if pipework created it (its marker names this very link),
/// and a bridge still under its temporary name (an attach killed while
/// making it).
async fn release_bridge(ctx: &UndoContext<'_>, name: &str, temp: Option<String>) -> Result<()> {
    let shared = ctx.state.shared(SharedKind::Bridge, name);
    let _lock = shared.lock(true).await?;
    if let Some(t) = temp {
        if let Some(l) = ctx.host.link_by_name(&t).await? {
            delete_gone_ok(ctx.host, l.index, &t).await?;
        }
    }
    release_if_empty(ctx.host, &shared).await.map(|_| ())
}

/// With the bridge's exclusive lock held: deletes the bridge if pipework
/// made it and it has no port left, and drops a marker that no longer
/// names a bridge of ours. Returns whether it deleted one. `gc` calls it
/// for every marker.
pub async fn release_if_empty(host: &Netlink, shared: &Shared<'_>) -> Result<bool> {
    let Some(_) = shared.created() else {
        return Ok(false);
    };
    let name = shared.name();
    let Some(br) = host.link_by_name(name).await? else {
        shared.forget()?;
        return Ok(false);
    };
    if !shared.owns(br.index) || !br.is_kind("bridge") {
        // Somebody else's bridge under the name now: the marker is stale.
        shared.forget()?;
        return Ok(false);
    }
    if !host.ports_of(br.index).await?.is_empty() {
        return Ok(false);
    }
    delete_gone_ok(host, br.index, name).await?;
    shared.forget()?;
    Ok(true)
}

async fn delete_gone_ok(host: &Netlink, index: u32, name: &str) -> Result<()> {
    match host.delete_link(index, name).await {
        Err(e) if !e.is_gone() => Err(e.into()),
        _ => Ok(()),
    }
}

/// The bridge our port goes on, with its lock held, and its use journaled.
///
/// A bridge pipework made may be deleted by a detach between the probe and
/// this moment, so it is looked up again under the lock. A
/// missing one is made under the exclusive lock, ownership written ahead:
/// the journal step first (naming the temporary name), then the bridge
/// under that name, then its marker (naming its index), then the rename to
/// its name and up in one request. A kill at any point leaves either
/// nothing, a temporary-named bridge the journal's undo deletes, or a
/// marked bridge that undo and `gc` delete once empty.
async fn use_bridge(
    ctx: &AttachContext<'_>,
    name: &str,
    journal: &mut Journal,
) -> Result<(Link, LockGuard)> {
    let shared = ctx.state.shared(SharedKind::Bridge, name);
    let lock = shared.lock(false).await?;
    // Looked up again under the lock: what the probe saw may have been
    // deleted since by the detach of the bridge's last other port.
    if let Some(l) = ctx.host.link_by_name(name).await? {
        record_use(journal, name, false, None)?;
        return Ok((is_bridge(l)?, lock));
    }
    drop(lock);
    let lock = shared.lock(true).await?;
    if let Some(l) = ctx.host.link_by_name(name).await? {
        record_use(journal, name, false, None)?;
        return Ok((is_bridge(l)?, lock));
    }
    let temp = pipework_base::hostname::temp_guest_name();
    record_use(journal, name, true, Some(temp.clone()))?;
    // A fixed MAC stops the bridge from taking on (and changing with) the
    // lowest port MAC as containers come and go.
    ctx.host
        .create_link(NewLink::bridge(&temp).mac(MacAddr::random_local()))
        .await?;
    let made = ctx
        .host
        .link_by_name(&temp)
        .await?
        .ok_or_else(|| Error::failed(format!("bridge {temp} vanished")))?;
    pipework_base::fault::point("bridge-made")?;
    shared.mark_created(made.index)?;
    let rename = LinkChange::new(made.index)
        .name(name)
        .up()
        .describe(format!("rename {temp} to {name} and set it up"));
    match ctx.host.change_link(rename).await {
        Ok(()) => {}
        Err(e) if e.is(libc::EEXIST) => {
            // Made meanwhile by something other than pipework: use that one.
            delete_gone_ok(ctx.host, made.index, &temp).await?;
            shared.forget()?;
            let l = ctx
                .host
                .link_by_name(name)
                .await?
                .ok_or_else(|| Error::failed(format!("bridge {name} vanished")))?;
            return Ok((is_bridge(l)?, lock));
        }
        Err(e) => return Err(e.into()),
    }
    let l = ctx
        .host
        .link_by_name(name)
        .await?
        .ok_or_else(|| Error::failed(format!("bridge {name} vanished")))?;
    Ok((l, lock))
}

fn record_use(
    journal: &mut Journal,
    name: &str,
    created: bool,
    temp: Option<String>,
) -> Result<()> {
    journal.record_driver(
        DriverKind::LinuxBridge,
        &BridgeStep::BridgeUsed {
            name: name.to_string(),
            created,
            temp,
        },
    )
}

fn is_bridge(l: Link) -> Result<Link> {
    if !l.is_kind("bridge") {
        return Err(Error::usage(format!(
            "{} exists and is not a bridge",
            l.name
        )));
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipework_base::journal::Step;

    /// Records written before the steps were typed (copied from a record).
    #[test]
    fn old_records_still_read() {
        let old = r#"{"op":"driver","driver":"linux_bridge","data":{"op":"vlan_filtering_on","bridge":"br1"}}"#;
        let Step::Driver { data, .. } = serde_json::from_str(old).unwrap() else {
            panic!("not a driver step")
        };
        assert_eq!(
            data.decode::<BridgeStep>(DriverKind::LinuxBridge).unwrap(),
            BridgeStep::VlanFilteringOn {
                bridge: "br1".into()
            }
        );
        let old: Step =
            serde_json::from_str(r#"{"op":"bridge_used","name":"br1","created":true}"#).unwrap();
        let (driver, data) = old.as_legacy_driver_step().unwrap();
        assert_eq!(driver, DriverKind::LinuxBridge);
        assert_eq!(
            data.decode::<BridgeStep>(driver).unwrap(),
            BridgeStep::BridgeUsed {
                name: "br1".into(),
                created: true,
                temp: None
            }
        );
    }

    #[test]
    fn new_steps_keep_the_old_layout() {
        let s = Step::driver(
            DriverKind::LinuxBridge,
            &BridgeStep::BridgeUsed {
                name: "br1".into(),
                created: false,
                temp: None,
            },
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({"op": "driver", "driver": "linux_bridge",
                "data": {"op": "bridge_used", "name": "br1", "created": false}})
        );
    }
}
