//! IPoIB: an `ipoib` child of an InfiniBand interface, created directly in
//! the guest (as `ib0` unless `-i` says otherwise), in the partition `@PKEY`.
//!
//! The partition key is hexadecimal (`@8001`, `@0x8001`, `@1`). Its top bit
//! is the membership type; the kernel sets it on every child it creates, so
//! `@0001` and `@8001` are the same partition and pipework always asks for
//! the full-member form. Without `@PKEY` the child shares the parent's
//! partition. When sysfs shows the port's partition table, a key the port
//! is not a member of is refused before anything is created (the child would
//! never come up).

use async_trait::async_trait;
use pipework_base::driver::{AttachContext, Driver, DriverKind, MacHandling, Plan, Plugged};
use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::Journal;
use pipework_base::ops;
use pipework_model::{AttachRequest, IpoibMode, MacSpec, Pkey};
use pipework_sys::netlink::{Link, NewLink};
use pipework_sys::sysfs::Sysfs;

pub struct Ipoib;

/// What `validate` found for `create`.
struct IpoibPlan {
    parent: Link,
    pkey: Option<Pkey>,
}

#[async_trait]
impl Driver for Ipoib {
    fn kind(&self) -> DriverKind {
        DriverKind::Ipoib
    }

    fn default_guest_ifname(&self) -> &'static str {
        "ib0"
    }

    /// `--ipoib-mode` is this driver's.
    fn refuse_options(&self, req: &AttachRequest, chosen: DriverKind, _host: &str) -> Result<()> {
        if req.options.hw.ipoib_mode.is_some() {
            return Err(Error::usage(format!(
                "--ipoib-mode needs an InfiniBand host interface (the {chosen} driver was chosen)"
            )));
        }
        Ok(())
    }

    async fn validate(&self, ctx: &AttachContext<'_>) -> Result<Plan> {
        let parent = ctx.existing_host_link()?;
        if ctx.request.host_ifname.is_some() {
            return Err(Error::usage(
                "-l names a host-side veth; an IPoIB child has none",
            ));
        }
        if !matches!(ctx.request.mac, MacSpec::Random) {
            return Err(Error::usage(
                "an IPoIB interface has a 20-byte hardware address from the HCA: it takes no MAC",
            ));
        }
        let pkey = ctx.request.tag.as_ref().map(|t| t.as_pkey()).transpose()?;
        if let Some(p) = pkey {
            check_pkey(&Sysfs::new(&ctx.settings.sysfs_root), &parent.name, p)?;
        }
        Ok(Plan::new(IpoibPlan {
            parent: parent.clone(),
            pkey,
        }))
    }

    async fn create(
        &self,
        ctx: &AttachContext<'_>,
        plan: Plan,
        journal: &mut Journal,
    ) -> Result<Plugged> {
        let IpoibPlan { parent, pkey } = plan.take()?;
        let mode = ctx.request.options.hw.ipoib_mode;
        let new = NewLink::ipoib(
            ctx.temp_name,
            parent.index,
            pkey.map(Pkey::get),
            mode.map(|m| m == IpoibMode::Connected),
        );
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
            if e.is(libc::EOPNOTSUPP) {
                Error::failed(format!(
                    "the kernel cannot create IPoIB children of {} (is ib_ipoib loaded?)",
                    parent.name
                ))
                .with_source(e)
            } else {
                e.into()
            }
        })
        .step("create the IPoIB child")?;
        let mut details = serde_json::Map::new();
        if let Some(p) = pkey {
            details.insert("pkey".into(), p.to_string().into());
        }
        if let Some(m) = mode {
            details.insert(
                "ipoib_mode".into(),
                serde_json::to_value(m).unwrap_or_default(),
            );
        }
        Ok(Plugged {
            guest_ifindex: link.index,
            mac: MacHandling::KeepsOwn,
            host_peer: None,
            bridge: None,
            vlan: None,
            untagged_bridge: None,
            mtu: link.mtu,
            details,
        })
    }
}

/// Refuses a partition the port is not a member of, when sysfs (or, with the
/// `rdma` feature, libibverbs) can say.
pub fn check_pkey(sys: &Sysfs<'_>, parent: &str, pkey: Pkey) -> Result<()> {
    let Some(dev) = sys.ib_device(parent) else {
        return Ok(());
    };
    let port = sys.ib_port(parent);
    let table = match sys.pkeys(&dev, port) {
        Some(t) => t,
        None => match pipework_sys::rdma::pkey_table(&dev, port) {
            Some(t) => t,
            None => return Ok(()),
        },
    };
    if table.iter().any(|k| k & 0x7fff == pkey.base()) {
        return Ok(());
    }
    let listed: Vec<String> = table.iter().map(|k| format!("{k:#06x}")).collect();
    Err(Error::usage(format!(
        "partition key {pkey} is not in the table of {dev} port {port} ({}): ask the subnet manager to add the port to it",
        if listed.is_empty() {
            "empty".to_string()
        } else {
            listed.join(", ")
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipework_model::{AddressMode, GuestRef, HostSelector};

    #[test]
    fn the_mode_is_refused_for_another_driver() {
        let mut req = AttachRequest::new(
            HostSelector::Name("eth0".parse().unwrap()),
            GuestRef::Auto("g".into()),
            AddressMode::None,
        );
        assert!(Ipoib
            .refuse_options(&req, DriverKind::Macvlan, "eth0")
            .is_ok());
        req.options.hw.ipoib_mode = Some(IpoibMode::Connected);
        let e = Ipoib
            .refuse_options(&req, DriverKind::Macvlan, "eth0")
            .unwrap_err();
        assert!(e.to_string().contains("--ipoib-mode"), "{e}");
    }
}
