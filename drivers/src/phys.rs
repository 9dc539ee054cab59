//! `--direct-phys`: the host interface itself goes into the guest (a NIC, a
//! VF netdev, a bond...), or with `@VID` its 802.1Q sub-interface.
//!
//! The NIC keeps its own name in its alias (`IFLA_IFALIAS`) while it is away,
//! so that even when its guest dies and the kernel hands it back under another
//! name, `gc` finds it and renames it. Detach moves it back under its
//! original name and restores its MAC if one was given.

use async_trait::async_trait;
use pipework_base::driver::UndoContext;
use pipework_base::driver::{AttachContext, Driver, DriverKind, MacHandling, Plan, Plugged};
use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::{DriverData, Journal};
use pipework_base::ops;
use pipework_model::{MacSpec, VlanId};
use pipework_sys::netlink::{Link, LinkChange, NewLink};
use serde::{Deserialize, Serialize};

use crate::vlan::{self, VlanUse};

pub struct Phys;

/// What `validate` found for `create`.
struct PhysPlan {
    nic: Link,
    /// `@VID`: the sub-interface `<nic>.<VID>` goes in instead.
    vid: Option<VlanId>,
    /// The original sets a MAC only when one is given; a moved NIC keeps
    /// its own otherwise.
    mac: MacHandling,
}

/// The phys driver's journal steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum PhysStep {
    /// The MAC the moved link had before the attach set one. Undo: give it
    /// back while the link is still in the guest.
    RestoreMac {
        guest_ifindex: u32,
        mac: pipework_model::MacAddr,
    },
    /// A use of a shared 802.1Q sub-interface. Not recorded any more (a
    /// missing `<if>.<VID>` is created in the guest); still undone for
    /// records that have it.
    VlanUsed(VlanUse),
}

#[async_trait]
impl Driver for Phys {
    fn kind(&self) -> DriverKind {
        DriverKind::Phys
    }

    async fn validate(&self, ctx: &AttachContext<'_>) -> Result<Plan> {
        let nic = ctx.existing_host_link()?;
        if ctx.request.host_ifname.is_some() {
            return Err(Error::usage(
                "-l names a host-side veth; --direct-phys moves the interface itself",
            ));
        }
        let vid = ctx.request.tag.as_ref().map(|t| t.as_vlan()).transpose()?;
        if let Some(vid) = vid {
            let name = vlan::sub_name(&nic.name, vid)?;
            if let Some(l) = ctx.host.link_by_name(&name).await? {
                vlan::check_existing(&l, nic, vid)?;
            }
        } else if nic.master.is_some() {
            return Err(Error::usage(format!(
                "{} is a port of another interface (a bridge or bond): release it first",
                nic.name
            )));
        }
        let mac = if matches!(ctx.request.mac, MacSpec::Random) {
            MacHandling::KeepsOwn
        } else {
            MacHandling::SetByOrchestrator
        };
        Ok(Plan::new(PhysPlan {
            nic: nic.clone(),
            vid,
            mac,
        }))
    }

    async fn create(
        &self,
        ctx: &AttachContext<'_>,
        plan: Plan,
        journal: &mut Journal,
    ) -> Result<Plugged> {
        let PhysPlan { nic, vid, mac: how } = plan.take()?;
        let nic = &nic;
        let (link, moved) = match vid {
            Some(v) => self.sub_interface(ctx, nic, v, journal).await?,
            None => (self.move_nic(ctx, nic, journal).await?, true),
        };
        if moved && how == MacHandling::SetByOrchestrator {
            if let Some(mac) = link.mac {
                journal.record_driver(
                    DriverKind::Phys,
                    &PhysStep::RestoreMac {
                        guest_ifindex: link.index,
                        mac,
                    },
                )?;
            }
        }
        let mut details = serde_json::Map::new();
        details.insert("moved".into(), link_name_of(nic, vid).into());
        Ok(Plugged {
            guest_ifindex: link.index,
            mac: how,
            host_peer: None,
            bridge: None,
            vlan: vid.map(|v| v.get()),
            untagged_bridge: None,
            mtu: link.mtu,
            details,
        })
    }

    async fn undo(&self, data: &DriverData, ctx: &UndoContext<'_>) -> Result<()> {
        match data.decode(DriverKind::Phys)? {
            PhysStep::RestoreMac { guest_ifindex, mac } => {
                // Only while it is still in the guest: a NIC handed back by
                // the kernel after its guest died is found by `gc` by alias.
                let Some(g) = ctx.guest else { return Ok(()) };
                match g
                    .change_link(
                        LinkChange::new(guest_ifindex)
                            .mac(mac)
                            .describe("restore the MAC"),
                    )
                    .await
                {
                    Err(e) if !e.is_gone() => Err(e).step("undo: restore MAC"),
                    _ => Ok(()),
                }
            }
            PhysStep::VlanUsed(u) => vlan::release(&u, ctx).await,
        }
    }
}

fn link_name_of(nic: &Link, vid: Option<VlanId>) -> String {
    match vid {
        Some(v) => format!("{}.{v}", nic.name),
        None => nic.name.clone(),
    }
}

impl Phys {
    /// Moves the NIC itself, its name kept in its alias.
    async fn move_nic(
        &self,
        ctx: &AttachContext<'_>,
        nic: &Link,
        journal: &mut Journal,
    ) -> Result<Link> {
        // A virtual link (veth, vlan...) dies with the guest's namespace
        // instead of coming back: an alias would not help it.
        if nic.kind.is_none() {
            ops::set_host_alias(ctx.host, nic, &nic.name, journal)
                .await
                .step("keep the name in the alias")?;
        }
        ops::move_link_to_guest(
            ctx.host,
            ctx.guest_nl,
            &ctx.guest.netns,
            nic,
            ctx.temp_name,
            journal,
        )
        .await
        .step("move the interface into the guest")
    }

    /// `--direct-phys <if> ... @VID`: the existing `<if>.<VID>` is moved in;
    /// a missing one is created directly in the guest (it never shows up on
    /// the host, and it dies with the guest). Returns whether it was moved.
    async fn sub_interface(
        &self,
        ctx: &AttachContext<'_>,
        nic: &Link,
        vid: VlanId,
        journal: &mut Journal,
    ) -> Result<(Link, bool)> {
        let name = vlan::sub_name(&nic.name, vid)?;
        if let Some(l) = ctx.host.link_by_name(&name).await? {
            vlan::check_existing(&l, nic, vid)?;
            let moved = ops::move_link_to_guest(
                ctx.host,
                ctx.guest_nl,
                &ctx.guest.netns,
                &l,
                ctx.temp_name,
                journal,
            )
            .await
            .step("move the 802.1Q sub-interface into the guest")?;
            return Ok((moved, true));
        }
        ops::ensure_host_link_up(ctx.host, nic, journal)
            .await
            .step("set parent up")?;
        let new = NewLink::vlan(ctx.temp_name, nic.index, vid.get()).mtu(nic.mtu);
        let created = ops::create_guest_link(
            ctx.host,
            ctx.guest_nl,
            &ctx.guest.netns,
            ctx.temp_name,
            new,
            journal,
        )
        .await
        .step("create the 802.1Q sub-interface in the guest")?;
        Ok((created, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipework_base::journal::Step;

    /// Records written before the steps were typed (copied from records).
    #[test]
    fn old_records_still_read() {
        let old = r#"{"op":"driver","driver":"phys","data":{"op":"restore_mac","guest_ifindex":12,"mac":"02:42:ac:11:00:02"}}"#;
        let Step::Driver { data, .. } = serde_json::from_str(old).unwrap() else {
            panic!("not a driver step")
        };
        assert_eq!(
            data.decode::<PhysStep>(DriverKind::Phys).unwrap(),
            PhysStep::RestoreMac {
                guest_ifindex: 12,
                mac: "02:42:ac:11:00:02".parse().unwrap()
            }
        );
        let again = Step::driver(
            DriverKind::Phys,
            &data.decode::<PhysStep>(DriverKind::Phys).unwrap(),
        );
        assert_eq!(
            serde_json::to_value(again.unwrap()).unwrap(),
            serde_json::from_str::<serde_json::Value>(old).unwrap()
        );
    }
}
