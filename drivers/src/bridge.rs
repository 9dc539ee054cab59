//! Linux bridge: a veth pair whose host end is a port of the bridge. A missing
//! `br*` bridge is created, safely when many attaches race to create it.
//! `@VID` puts the port in that VLAN (see `bridge_vlan.rs`).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use pipework_base::driver::UndoContext;
use pipework_base::driver::{AttachContext, Driver, DriverKind, MacHandling, Plan, Plugged};
use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::{DriverData, Journal};
use pipework_base::state::StateDir;
use pipework_model::{MacAddr, VlanId};
use pipework_sys::netlink::{Link, Netlink, NewLink};
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
    BridgeUsed { name: String, created: bool },
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
        // delete an empty bridge takes it exclusively.
        let _lock = ctx.state.lock_bridge(name, false).await?;
        let (bridge, created) = ensure_bridge(ctx.host, ctx.state, name, ctx.host_link)
            .await
            .step("create bridge")?;
        journal.record_driver(
            DriverKind::LinuxBridge,
            &BridgeStep::BridgeUsed {
                name: name.to_string(),
                created,
            },
        )?;
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
            mtu: bridge.mtu,
            details: Default::default(),
        })
    }

    async fn undo(&self, data: &DriverData, ctx: &UndoContext<'_>) -> Result<()> {
        match data.decode(DriverKind::LinuxBridge)? {
            BridgeStep::BridgeUsed { name, created } => release_bridge(ctx, &name, created)
                .await
                .step("undo: release bridge"),
            BridgeStep::VlanFilteringOn { bridge } => bridge_vlan::undo(&bridge, ctx).await,
        }
    }

    /// Frames sent before the bridge forwards on our port are dropped, and
    /// the port only starts forwarding once the guest end is up (carrier) and
    /// the kernel's link watch has run: wait for that before the announcement.
    async fn after_up(
        &self,
        ctx: &AttachContext<'_>,
        plugged: &mut Plugged,
        _journal: &mut Journal,
    ) -> Result<()> {
        let Some(peer) = plugged.host_peer.as_deref() else {
            return Ok(());
        };
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
/// port is gone, if pipework created it.
async fn release_bridge(ctx: &UndoContext<'_>, name: &str, created: bool) -> Result<()> {
    let _lock = ctx.state.lock_bridge(name, true).await?;
    if !created && !ctx.state.bridge_is_owned(name) {
        return Ok(());
    }
    let Some(br) = ctx.host.link_by_name(name).await? else {
        ctx.state.forget_bridge(name)?;
        return Ok(());
    };
    if !ctx.host.ports_of(br.index).await?.is_empty() {
        return Ok(());
    }
    match ctx.host.delete_link(br.index, name).await {
        Err(e) if !e.is_gone() => return Err(e.into()),
        _ => {}
    }
    ctx.state.forget_bridge(name)?;
    Ok(())
}

/// The bridge, created if missing. Returns whether this call created it.
async fn ensure_bridge(
    host: &Netlink,
    state: &StateDir,
    name: &str,
    known: Option<&Link>,
) -> Result<(Link, bool)> {
    if let Some(l) = known {
        return Ok((l.clone(), false));
    }
    // A fixed MAC stops the bridge from taking on (and changing with) the
    // lowest port MAC as containers come and go.
    let new = NewLink::bridge(name).mac(MacAddr::random_local()).up();
    let created = match host.create_link(new).await {
        Ok(()) => {
            state.own_bridge(name)?;
            true
        }
        Err(e) if e.is(libc::EEXIST) => false,
        Err(e) => return Err(e.into()),
    };
    let l = host
        .link_by_name(name)
        .await?
        .ok_or_else(|| Error::failed(format!("bridge {name} vanished")))?;
    if !l.is_kind("bridge") {
        return Err(Error::usage(format!("{name} exists and is not a bridge")));
    }
    Ok((l, created))
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
                created: true
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
