//! macvlan: a child of a physical interface, created directly in the guest.
//! Modes bridge (default), private, vepa, passthru. With `@VID` the child
//! sits on the 802.1Q sub-interface `<if>.<VID>`, shared with the other
//! attachments on that VLAN (see `vlan.rs`).

use async_trait::async_trait;
use pipework_base::driver::UndoContext;
use pipework_base::driver::{AttachContext, Driver, DriverKind, Plugged};
use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::Journal;
use pipework_base::ops;
use pipework_model::{MacSpec, MacvlanMode};
use pipework_sys::netlink::NewLink;

use crate::vlan;

pub struct Macvlan;

#[async_trait]
impl Driver for Macvlan {
    fn kind(&self) -> DriverKind {
        DriverKind::Macvlan
    }

    async fn validate(&self, ctx: &AttachContext<'_>) -> Result<()> {
        let parent = ctx.existing_host_link()?;
        if let Some(tag) = &ctx.request.tag {
            let vid = tag.as_vlan()?;
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
        Ok(())
    }

    async fn create(&self, ctx: &AttachContext<'_>, journal: &mut Journal) -> Result<Plugged> {
        let nic = ctx.host_link.expect("validated");
        let vid = ctx.request.tag.as_ref().map(|t| t.as_vlan()).transpose()?;
        let sub;
        let parent = match vid {
            Some(v) => {
                sub = vlan::acquire(ctx, DriverKind::Macvlan, nic, v, journal).await?;
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
        let mode = ctx.request.options.macvlan_mode;
        let mut new = NewLink::macvlan(ctx.temp_name, parent.index, mode).mtu(parent.mtu);
        // In passthru mode the macvlan takes over the parent's own address
        // unless the user asked for another.
        let set_mac = mode != MacvlanMode::Passthru || !matches!(ctx.request.mac, MacSpec::Random);
        if set_mac {
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
            needs_mac: false,
            own_mac: !set_mac,
            host_peer: None,
            bridge: None,
            vlan: vid.map(|v| v.get()),
            mtu: parent.mtu,
            details,
        })
    }

    async fn after_up(
        &self,
        ctx: &AttachContext<'_>,
        plugged: &mut Plugged,
        journal: &mut Journal,
    ) -> Result<()> {
        crate::shim::attach(ctx, plugged, journal).await
    }

    async fn undo(&self, data: &serde_json::Value, ctx: &UndoContext<'_>) -> Result<()> {
        if vlan::release(data, ctx).await? {
            return Ok(());
        }
        if data.get("shim").is_some() {
            return crate::shim::undo(data, ctx).await;
        }
        Err(Error::failed(format!(
            "unknown macvlan journal step {data}"
        )))
    }
}
