//! dummy: an interface of its own inside the guest, attached to nothing (a
//! stable address for a service, a blackhole). `pipework dummy <guest> <ip>`.

use async_trait::async_trait;
use pipework_base::driver::{AttachContext, Driver, DriverKind, MacHandling, Plan, Plugged};
use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::Journal;
use pipework_base::ops;
use pipework_sys::netlink::NewLink;

pub struct Dummy;

#[async_trait]
impl Driver for Dummy {
    fn kind(&self) -> DriverKind {
        DriverKind::Dummy
    }

    async fn validate(&self, ctx: &AttachContext<'_>) -> Result<Plan> {
        if let Some(tag) = &ctx.request.tag {
            return Err(Error::usage(format!(
                "@{tag}: a dummy interface is attached to nothing, so it has no VLAN"
            )));
        }
        if ctx.request.host_ifname.is_some() {
            return Err(Error::usage(
                "-l names a host-side veth; a dummy interface has none",
            ));
        }
        Ok(Plan::empty())
    }

    async fn create(
        &self,
        ctx: &AttachContext<'_>,
        _plan: Plan,
        journal: &mut Journal,
    ) -> Result<Plugged> {
        let link = ops::create_guest_link(
            ctx.host,
            ctx.guest_nl,
            &ctx.guest.netns,
            ctx.temp_name,
            NewLink::dummy(ctx.temp_name),
            journal,
        )
        .await
        .step("create dummy")?;
        Ok(Plugged {
            guest_ifindex: link.index,
            mac: MacHandling::SetByOrchestrator,
            host_peer: None,
            bridge: None,
            vlan: None,
            untagged_bridge: None,
            mtu: link.mtu,
            details: Default::default(),
        })
    }
}
