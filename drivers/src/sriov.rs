//! SR-IOV VF: `pipework <pf> --vf N|auto <guest> ...` takes a virtual
//! function of the physical function `<pf>`, sets it up through the PF (MAC,
//! VLAN and QoS, spoof check, trust, link state, tx rates) and moves its
//! netdev into the guest.
//!
//! Every VF setting is journaled with the value the PF reported before, and
//! the VF's netdev keeps its name in its alias while it is away; detach moves
//! it back under that name and puts every setting back. The choice of a VF
//! and its move happen under a per-PF lock, so two attaches never take the
//! same one; a VF whose netdev is not in the host namespace is in use.

use async_trait::async_trait;
use pipework_base::drift::{Finding, RepairScope};
use pipework_base::driver::UndoContext;
use pipework_base::driver::{AttachContext, Driver, DriverKind, MacHandling, Plan, Plugged};
use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::{DriverData, Journal};
use pipework_base::ops;
use pipework_base::settings::Settings;
use pipework_base::state::AttachmentRecord;
use pipework_model::{HwOptions, MacAddr, VfSelect, VlanId};
use pipework_sys::netlink::{Link, LinkChange, Netlink, VfConfig, VfSetting};
use pipework_sys::sysfs::Sysfs;
use serde::{Deserialize, Serialize};

pub struct SriovVf;

/// What `validate` found for `create`. The VF itself is chosen in `create`,
/// under the PF's lock, so that two attaches never take the same one.
struct SriovPlan {
    pf: Link,
    /// `@VID`: the VF's VLAN.
    vlan: Option<VlanId>,
}

/// The SR-IOV driver's journal steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum SriovStep {
    /// Put one VF setting back.
    VfSetting {
        pf: String,
        vf: u32,
        restore: VfSetting,
    },
    /// Give the VF's netdev its own MAC back once it is home. The VF driver
    /// refuses a MAC other than the one the PF pins, so the pin is lifted
    /// first; the PF's own record of the VF's MAC is restored after this (it
    /// was journaled before).
    VfNetdevMac {
        pf: String,
        vf: u32,
        name: String,
        mac: MacAddr,
    },
}

#[async_trait]
impl Driver for SriovVf {
    fn kind(&self) -> DriverKind {
        DriverKind::SriovVf
    }

    async fn validate(&self, ctx: &AttachContext<'_>) -> Result<Plan> {
        let pf = ctx.existing_host_link()?;
        let hw = &ctx.request.options.hw;
        if ctx.request.host_ifname.is_some() {
            return Err(Error::usage(
                "-l names a host-side veth; a VF has none".to_string(),
            ));
        }
        let vlan = ctx.request.tag.as_ref().map(|t| t.as_vlan()).transpose()?;
        if hw.vf_qos.is_some() && vlan.is_none() {
            return Err(Error::usage(
                "--vf-vlan-qos is the priority of the VF's VLAN: give the VLAN as @VID",
            ));
        }
        let sys = Sysfs::new(&ctx.settings.sysfs_root);
        let enabled = sys.sriov_numvfs(&pf.name);
        if enabled == 0 {
            return Err(Error::usage(format!(
                "{} supports {} VFs but none is enabled (echo N > /sys/class/net/{}/device/sriov_numvfs)",
                pf.name,
                sys.sriov_totalvfs(&pf.name),
                pf.name
            )));
        }
        if let Some(VfSelect::Index(n)) = hw.vf {
            if n >= enabled {
                return Err(Error::usage(format!(
                    "{} has no VF {n}: {enabled} VFs are enabled (0 to {})",
                    pf.name,
                    enabled - 1
                )));
            }
        }
        Ok(Plan::new(SriovPlan {
            pf: pf.clone(),
            vlan,
        }))
    }

    async fn create(
        &self,
        ctx: &AttachContext<'_>,
        plan: Plan,
        journal: &mut Journal,
    ) -> Result<Plugged> {
        let SriovPlan { pf, vlan } = plan.take()?;
        let pf = &pf;
        let hw = &ctx.request.options.hw;
        let _lock = ctx.state.lock_named(&format!("vf-{}", pf.name)).await?;
        let sys = Sysfs::new(&ctx.settings.sysfs_root);
        let (vf, netdev) = pick(ctx.host, &sys, pf, hw.vf.unwrap_or(VfSelect::Auto)).await?;
        let configs = ctx
            .host
            .vf_configs(pf.index)
            .await
            .step("read VF settings")?;
        let original = configs.into_iter().find(|c| c.vf == vf).ok_or_else(|| {
            Error::failed(format!(
                "{} does not report the settings of VF {vf}: they could not be restored, so none is changed",
                pf.name
            ))
        })?;
        let settings = wanted(ctx.mac, vlan, hw, &original);
        for s in &settings {
            apply(ctx.host, pf, vf, s, &original, journal).await?;
        }
        if let Some(mac) = netdev.mac {
            journal.record_driver(
                DriverKind::SriovVf,
                &SriovStep::VfNetdevMac {
                    pf: pf.name.clone(),
                    vf,
                    name: netdev.name.clone(),
                    mac,
                },
            )?;
        }
        pipework_base::fault::point("bridge-ready")?;
        ops::set_host_alias(ctx.host, &netdev, &netdev.name, journal)
            .await
            .step("keep the VF's name in its alias")?;
        let moved = ops::move_link_to_guest(
            ctx.host,
            ctx.guest_nl,
            &ctx.guest.netns,
            &netdev,
            ctx.temp_name,
            journal,
        )
        .await
        .step("move the VF into the guest")?;
        let mut details = serde_json::Map::new();
        details.insert("pf".into(), pf.name.clone().into());
        details.insert("vf".into(), vf.into());
        details.insert("vf_netdev".into(), netdev.name.clone().into());
        // What `check` compares the PF's view of the VF with.
        details.insert(
            "vf_settings".into(),
            serde_json::to_value(&settings).map_err(|e| Error::failed("encode").with_source(e))?,
        );
        if let Some(pci) = sys.vf_pci_address(&pf.name, vf) {
            details.insert("pci".into(), pci.into());
        }
        Ok(Plugged {
            guest_ifindex: moved.index,
            // The VF driver takes the MAC the PF pinned; the netdev is told
            // the same one.
            mac: MacHandling::SetByOrchestrator,
            host_peer: None,
            bridge: None,
            vlan: vlan.map(|v| v.get()),
            untagged_bridge: None,
            mtu: moved.mtu,
            details,
        })
    }

    /// The PF's view of the VF against the settings the attach made;
    /// `--repair` and the daemon set them again (the PF is the host's).
    async fn check(
        &self,
        rec: &AttachmentRecord,
        _settings: &Settings,
        scope: RepairScope,
    ) -> Vec<Finding> {
        crate::sriov_check::vf_settings(rec, scope).await
    }

    async fn undo(&self, data: &DriverData, ctx: &UndoContext<'_>) -> Result<()> {
        match data.decode(DriverKind::SriovVf)? {
            SriovStep::VfSetting { pf, vf, restore } => {
                let Some(pf) = ctx.host.link_by_name(&pf).await? else {
                    return Ok(());
                };
                match ctx
                    .host
                    .change_link(LinkChange::vf(pf.index, vf, &restore))
                    .await
                {
                    // The setting never took (the driver cannot do it).
                    Err(e) if e.is(libc::EOPNOTSUPP) || e.is_gone() => Ok(()),
                    other => other.step(&format!("undo: restore VF {vf} {}", restore.label())),
                }
            }
            SriovStep::VfNetdevMac { pf, vf, name, mac } => {
                match ctx.host.link_by_name(&name).await? {
                    Some(l) if l.mac != Some(mac) => {
                        if let Some(pf) = ctx.host.link_by_name(&pf).await? {
                            let unpin = VfSetting::Mac {
                                mac: MacAddr([0; 6]),
                            };
                            match ctx
                                .host
                                .change_link(LinkChange::vf(pf.index, vf, &unpin))
                                .await
                            {
                                Err(e) if !e.is(libc::EOPNOTSUPP) && !e.is_gone() => {
                                    return Err(e).step("undo: unpin the VF's MAC");
                                }
                                _ => {}
                            }
                        }
                        match ctx
                            .host
                            .change_link(
                                LinkChange::new(l.index)
                                    .mac(mac)
                                    .describe(format!("restore the MAC of {name}")),
                            )
                            .await
                        {
                            Err(e) if !e.is_gone() => Err(e).step("undo: restore VF netdev MAC"),
                            _ => Ok(()),
                        }
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

/// The settings this attach makes, in the order iproute2 users expect.
fn wanted(mac: MacAddr, vlan: Option<VlanId>, hw: &HwOptions, orig: &VfConfig) -> Vec<VfSetting> {
    let mut v = vec![VfSetting::Mac { mac }];
    if let Some(vid) = vlan {
        v.push(VfSetting::Vlan {
            vlan: vid.get(),
            qos: hw.vf_qos.unwrap_or(0),
        });
    }
    if let Some(on) = hw.spoofchk {
        v.push(VfSetting::SpoofCheck { on });
    }
    if let Some(on) = hw.trust {
        v.push(VfSetting::Trust { on });
    }
    if let Some(state) = hw.link_state {
        v.push(VfSetting::LinkState { state });
    }
    if hw.min_tx_rate.is_some() || hw.max_tx_rate.is_some() {
        v.push(VfSetting::Rate {
            min: hw.min_tx_rate.unwrap_or(orig.min_tx_rate),
            max: hw.max_tx_rate.unwrap_or(orig.max_tx_rate),
        });
    }
    v
}

/// Makes a setting and records how to put it back.
async fn apply(
    host: &Netlink,
    pf: &Link,
    vf: u32,
    s: &VfSetting,
    orig: &VfConfig,
    journal: &mut Journal,
) -> Result<()> {
    let Some(back) = s.original(orig) else {
        return Err(Error::failed(format!(
            "{} does not report VF {vf}'s {}: it could not be restored, so it is not changed",
            pf.name,
            s.label()
        )));
    };
    if back == *s {
        return Ok(());
    }
    host.change_link(LinkChange::vf(pf.index, vf, s))
        .await
        .map_err(|e| {
            if e.is(libc::EOPNOTSUPP) {
                Error::failed(format!(
                    "the driver of {} cannot set a VF's {}",
                    pf.name,
                    s.label()
                ))
                .with_source(e)
            } else {
                e.into()
            }
        })
        .step(&format!("set VF {vf} {}", s.label()))?;
    // Recorded once made: the kernel applies one VF attribute or none, and
    // "restoring" a refused setting can fail the same way it did.
    journal.record_driver(
        DriverKind::SriovVf,
        &SriovStep::VfSetting {
            pf: pf.name.clone(),
            vf,
            restore: back,
        },
    )
}

/// The VF to take and its netdev in the host namespace.
async fn pick(host: &Netlink, sys: &Sysfs<'_>, pf: &Link, sel: VfSelect) -> Result<(u32, Link)> {
    let enabled = sys.sriov_numvfs(&pf.name);
    match sel {
        VfSelect::Index(n) => match free_netdev(host, sys, pf, n).await? {
            Ok(l) => Ok((n, l)),
            Err(why) => Err(Error::usage(format!(
                "VF {n} of {} is in use: {why}",
                pf.name
            ))),
        },
        VfSelect::Auto => {
            let mut reasons = Vec::new();
            for n in 0..enabled {
                match free_netdev(host, sys, pf, n).await? {
                    Ok(l) => return Ok((n, l)),
                    Err(why) => reasons.push(format!("VF {n}: {why}")),
                }
            }
            Err(Error::usage(format!(
                "no free VF on {} ({})",
                pf.name,
                reasons.join("; ")
            )))
        }
    }
}

/// The VF's netdev if it is free, else why not.
async fn free_netdev(
    host: &Netlink,
    sys: &Sysfs<'_>,
    pf: &Link,
    vf: u32,
) -> Result<std::result::Result<Link, String>> {
    if !sys.vf_exists(&pf.name, vf) {
        return Ok(Err("it does not exist".into()));
    }
    let names = sys.vf_netdevs(&pf.name, vf);
    let Some(name) = names.first() else {
        return Ok(Err(
            "its netdev is not in the host namespace (attached to a guest, or bound to a non-network driver)"
                .into(),
        ));
    };
    let Some(l) = host.link_by_name(name).await? else {
        return Ok(Err(format!("its netdev {name} just went away")));
    };
    if l.up {
        return Ok(Err(format!("its netdev {name} is up on the host")));
    }
    if l.master.is_some() {
        return Ok(Err(format!(
            "its netdev {name} is a port of another interface"
        )));
    }
    Ok(Ok(l))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipework_base::journal::Step;

    fn read(record: &str) -> SriovStep {
        let Step::Driver { data, .. } = serde_json::from_str(record).unwrap() else {
            panic!("not a driver step")
        };
        data.decode(DriverKind::SriovVf).unwrap()
    }

    /// Records written before the steps were typed (copied from records).
    #[test]
    fn old_records_still_read() {
        let old = r#"{"op":"driver","driver":"sriov_vf","data":{"op":"vf_setting","pf":"eth0","vf":1,"restore":{"setting":"vlan","vlan":0,"qos":0}}}"#;
        let step = read(old);
        assert_eq!(
            step,
            SriovStep::VfSetting {
                pf: "eth0".into(),
                vf: 1,
                restore: VfSetting::Vlan { vlan: 0, qos: 0 }
            }
        );
        let again = Step::driver(DriverKind::SriovVf, &step).unwrap();
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::from_str::<serde_json::Value>(old).unwrap()
        );
        let old = r#"{"op":"driver","driver":"sriov_vf","data":{"op":"vf_netdev_mac","pf":"eth0","vf":1,"name":"eth0v1","mac":"02:00:00:00:00:01"}}"#;
        let step = read(old);
        assert!(matches!(&step, SriovStep::VfNetdevMac { name, .. } if name == "eth0v1"));
        let again = Step::driver(DriverKind::SriovVf, &step).unwrap();
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::from_str::<serde_json::Value>(old).unwrap()
        );
    }
}
