//! macvlan: a child of a physical interface, created directly in the guest.
//! Modes bridge (default), private, vepa, passthru.

use async_trait::async_trait;
use pipework_core::driver::{AttachContext, Driver, DriverKind, Plugged};
use pipework_core::error::{Context, Error, Result};
use pipework_core::journal::Journal;
use pipework_core::model::{MacSpec, MacvlanMode};
use pipework_core::netlink::NewLink;
use pipework_core::ops;

pub struct Macvlan;

#[async_trait]
impl Driver for Macvlan {
    fn kind(&self) -> DriverKind {
        DriverKind::Macvlan
    }

    async fn validate(&self, ctx: &AttachContext<'_>) -> Result<()> {
        let parent = ctx
            .host_link
            .ok_or_else(|| Error::usage(format!("no host interface {}", ctx.host_ifname)))?;
        if let Some(tag) = &ctx.request.tag {
            tag.as_vlan()?;
            return Err(Error::usage(format!(
                "@{tag} on {}: 802.1Q sub-interfaces are not supported yet",
                parent.name
            )));
        }
        if parent.is_kind("macvlan") || parent.is_kind("macvtap") {
            return Err(Error::usage(format!(
                "{} is itself a macvlan; attach to its parent instead",
                parent.name
            )));
        }
        if ctx.request.host_ifname.is_some() {
            return Err(Error::usage(
                "-l names a host-side veth; macvlan has none".to_string(),
            ));
        }
        Ok(())
    }

    async fn create(&self, ctx: &AttachContext<'_>, journal: &mut Journal) -> Result<Plugged> {
        let parent = ctx.host_link.expect("validated");
        let mode = ctx.request.options.macvlan_mode;
        ops::ensure_host_link_up(ctx.host, parent, journal)
            .await
            .step("set parent up")?;
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
        Ok(Plugged {
            guest_ifindex: link.index,
            needs_mac: false,
            own_mac: !set_mac,
            host_peer: None,
            bridge: None,
            vlan: None,
            mtu: parent.mtu,
            details,
        })
    }
}
