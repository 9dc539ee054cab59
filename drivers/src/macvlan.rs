//! macvlan: a child of a physical interface, created directly in the guest.
//! Modes bridge (default), private, vepa, passthru. With `@VID` the child
//! sits on the 802.1Q sub-interface `<if>.<VID>`, shared with the other
//! attachments on that VLAN (see `vlan.rs`).

use async_trait::async_trait;
use pipework_base::drift::{Finding, RepairScope};
use pipework_base::driver::UndoContext;
use pipework_base::driver::{AttachContext, Driver, DriverKind, MacHandling, Plan, Plugged};
use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::{DriverData, Journal, Step};
use pipework_base::ops;
use pipework_base::settings::Settings;
use pipework_base::state::AttachmentRecord;
use pipework_model::{AttachRequest, MacSpec, MacvlanMode, VlanId};
use pipework_sys::netlink::{Link, NewLink};
use serde::{Deserialize, Serialize};

use crate::shim::{self, ShimUse};
use crate::vlan::{self, VlanUse};

pub struct Macvlan;

/// What `validate` found for `create`.
struct MacvlanPlan {
    /// The host interface the macvlan (or its 802.1Q parent) sits on.
    nic: Link,
    /// `@VID`: the macvlan sits on the shared sub-interface `<nic>.<VID>`.
    vid: Option<VlanId>,
    mode: MacvlanMode,
    mac: MacHandling,
}

/// The macvlan driver's journal steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum MacvlanStep {
    /// A use of a shared 802.1Q sub-interface (`@VID`).
    VlanUsed(VlanUse),
    /// A use of the host shim (`--host-route`).
    ShimUsed(ShimUse),
}

/// The shim step as records before the typed steps have it:
/// `{"shim": {...}}`, with no `op`.
#[derive(Deserialize)]
struct LegacyShimStep {
    shim: ShimUse,
}

impl From<LegacyShimStep> for MacvlanStep {
    fn from(l: LegacyShimStep) -> MacvlanStep {
        MacvlanStep::ShimUsed(l.shim)
    }
}

#[async_trait]
impl Driver for Macvlan {
    fn kind(&self) -> DriverKind {
        DriverKind::Macvlan
    }

    /// `--host-route` is this driver's.
    fn refuse_options(&self, req: &AttachRequest, chosen: DriverKind, host: &str) -> Result<()> {
        if req.options.macvlan_mode != MacvlanMode::Bridge {
            let mode = serde_json::to_value(req.options.macvlan_mode).unwrap_or_default();
            return Err(Error::usage(format!(
                "--macvlan-mode {} is for macvlan attachments; {host} is a {chosen} attachment",
                mode.as_str().unwrap_or("?")
            )));
        }
        if req.options.host_route.is_some() {
            return Err(Error::usage(format!(
                "--host-route is for macvlan attachments; {host} is a {chosen} attachment"
            )));
        }
        Ok(())
    }

    async fn validate(&self, ctx: &AttachContext<'_>) -> Result<Plan> {
        let parent = ctx.existing_host_link()?;
        let vid = ctx.request.tag.as_ref().map(|t| t.as_vlan()).transpose()?;
        if let Some(vid) = vid {
            let name = vlan::sub_name(&parent.name, vid)?;
            if let Some(l) = ctx.host.link_by_name(&name).await? {
                vlan::check_existing(&l, parent, vid)?;
            }
        }
        if parent.is_kind("macvlan") || parent.is_kind("macvtap") {
            return Err(Error::usage(format!(
                "{} is itself a macvlan; attach to its parent instead",
                parent.name
            )));
        }
        crate::shim::validate(ctx)?;
        if ctx.request.host_ifname.is_some() {
            return Err(Error::usage(
                "-l names a host-side veth; macvlan has none".to_string(),
            ));
        }
        let mode = ctx.request.options.macvlan_mode;
        // In passthru mode the macvlan takes over the parent's own address
        // unless the user asked for another.
        let mac = if mode == MacvlanMode::Passthru && matches!(ctx.request.mac, MacSpec::Random) {
            MacHandling::KeepsOwn
        } else {
            MacHandling::SetAtCreation
        };
        Ok(Plan::new(MacvlanPlan {
            nic: parent.clone(),
            vid,
            mode,
            mac,
        }))
    }

    async fn create(
        &self,
        ctx: &AttachContext<'_>,
        plan: Plan,
        journal: &mut Journal,
    ) -> Result<Plugged> {
        let MacvlanPlan {
            nic,
            vid,
            mode,
            mac,
        } = plan.take()?;
        let nic = &nic;
        let sub;
        let parent = match vid {
            Some(v) => {
                sub = vlan::acquire(
                    ctx,
                    DriverKind::Macvlan,
                    MacvlanStep::VlanUsed,
                    nic,
                    v,
                    journal,
                )
                .await?;
                pipework_base::fault::point("bridge-ready")?;
                &sub
            }
            None => {
                ops::ensure_host_link_up(ctx.host, nic, journal)
                    .await
                    .step("set parent up")?;
                nic
            }
        };
        let mut new = NewLink::macvlan(ctx.temp_name, parent.index, mode).mtu(parent.mtu);
        if mac == MacHandling::SetAtCreation {
            new = new.mac(ctx.mac);
        }
        let link = ops::create_guest_link(
            ctx.host,
            ctx.guest_nl,
            &ctx.guest.netns,
            ctx.temp_name,
            new,
            journal,
        )
        .await
        .map_err(|e| {
            if e.is(libc::EBUSY) || e.is(libc::EINVAL) && mode == MacvlanMode::Passthru {
                Error::usage(format!(
                    "{}: a passthru macvlan needs the parent to itself",
                    parent.name
                ))
                .with_source(e)
            } else {
                e.into()
            }
        })
        .step("create macvlan")?;
        let mut details = serde_json::Map::new();
        details.insert(
            "macvlan_mode".into(),
            serde_json::to_value(mode).unwrap_or_default(),
        );
        if vid.is_some() {
            details.insert("vlan_device".into(), parent.name.clone().into());
        }
        Ok(Plugged {
            guest_ifindex: link.index,
            mac,
            host_peer: None,
            bridge: None,
            vlan: vid.map(|v| v.get()),
            untagged_bridge: None,
            mtu: parent.mtu,
            details,
        })
    }

    async fn after_up(
        &self,
        ctx: &AttachContext<'_>,
        plugged: &mut Plugged,
        _guest_announces: bool,
        journal: &mut Journal,
    ) -> Result<()> {
        shim::attach(ctx, plugged, MacvlanStep::ShimUsed, journal).await
    }

    /// The host shim (`--host-route`): still there, with a host route to
    /// each of the guest's addresses.
    async fn check(
        &self,
        rec: &AttachmentRecord,
        _settings: &Settings,
        repair: RepairScope,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        for s in rec.journal.steps() {
            let Step::Driver {
                driver: DriverKind::Macvlan,
                data,
            } = s
            else {
                continue;
            };
            if let Ok(MacvlanStep::ShimUsed(u)) =
                data.decode_or_legacy::<MacvlanStep, LegacyShimStep>(DriverKind::Macvlan)
            {
                out.extend(shim::check(&u, repair).await);
            }
        }
        out
    }

    async fn undo(&self, data: &DriverData, ctx: &UndoContext<'_>) -> Result<()> {
        match data.decode_or_legacy::<MacvlanStep, LegacyShimStep>(DriverKind::Macvlan)? {
            MacvlanStep::VlanUsed(u) => vlan::release(&u, ctx).await,
            MacvlanStep::ShimUsed(u) => shim::undo(&u, ctx).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipework_base::journal::Step;

    fn read(record: &str) -> MacvlanStep {
        let Step::Driver { data, .. } = serde_json::from_str(record).unwrap() else {
            panic!("not a driver step")
        };
        data.decode_or_legacy::<MacvlanStep, LegacyShimStep>(DriverKind::Macvlan)
            .unwrap()
    }

    /// Records written before the steps were typed (copied from records).
    #[test]
    fn old_records_still_read() {
        assert_eq!(
            read(
                r#"{"op":"driver","driver":"macvlan","data":{"op":"vlan_used","name":"eth0.42","user":"4026532345-eth1"}}"#
            ),
            MacvlanStep::VlanUsed(VlanUse {
                name: "eth0.42".into(),
                user: "4026532345-eth1".into(),
                temp: None
            })
        );
        let shim = ShimUse {
            shim: "pwh-eth0".into(),
            parent: "eth0".into(),
            owner: "4026532345-eth1".into(),
            routes: vec!["10.1.2.3".parse().unwrap()],
        };
        assert_eq!(
            read(
                r#"{"op":"driver","driver":"macvlan","data":{"shim":{"shim":"pwh-eth0","parent":"eth0","owner":"4026532345-eth1","routes":["10.1.2.3"]}}}"#
            ),
            MacvlanStep::ShimUsed(shim.clone())
        );
        // Written the one way now, and read back.
        let s = Step::driver(DriverKind::Macvlan, &MacvlanStep::ShimUsed(shim.clone())).unwrap();
        let s = serde_json::to_string(&s).unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["data"]["op"], "shim_used", "{s}");
        assert_eq!(v["data"]["shim"], "pwh-eth0", "{s}");
        assert_eq!(read(&s), MacvlanStep::ShimUsed(shim));
    }
}
