//! `check` of an SR-IOV VF attachment: the settings the attach made through
//! the PF (MAC, VLAN and QoS, spoof check, trust, link state, tx rates),
//! compared with what the PF reports now. Someone's `ip link set <pf> vf N
//! ...`, or a PF driver reset, changes them without touching the guest.

use pipework_base::drift::{Finding, Repair, RepairScope};
use pipework_base::state::AttachmentRecord;
use pipework_sys::netlink::{LinkChange, Netlink, VfSetting};
use serde_json::Value;

/// The differences between the record's VF settings and the PF's view;
/// with a repair scope (the PF is the host's), each is set again.
pub async fn vf_settings(rec: &AttachmentRecord, scope: RepairScope) -> Vec<Finding> {
    let d = &rec.details;
    let (Some(pf_name), Some(vf)) = (
        d.get("pf").and_then(Value::as_str),
        d.get("vf").and_then(Value::as_u64).map(|v| v as u32),
    ) else {
        return Vec::new();
    };
    // Records written before the settings were kept have nothing to compare.
    let Some(want) = d
        .get("vf_settings")
        .and_then(|v| serde_json::from_value::<Vec<VfSetting>>(v.clone()).ok())
    else {
        return Vec::new();
    };
    let finding = |detail: String, repair| Finding::new("vf", detail, repair);
    let host = match Netlink::connect_here("host") {
        Ok(h) => h,
        Err(e) => {
            return vec![finding(
                format!("cannot open netlink: {e}"),
                Repair::left(scope, "netlink failed"),
            )]
        }
    };
    let pf = match host.link_by_name(pf_name).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return vec![finding(
                format!("the PF {pf_name} of VF {vf} is gone"),
                Repair::left(scope, "detach and attach again"),
            )]
        }
        Err(e) => {
            return vec![finding(
                format!("cannot read {pf_name}: {e}"),
                Repair::left(scope, "netlink failed"),
            )]
        }
    };
    let now = match host.vf_configs(pf.index).await {
        Ok(c) => c.into_iter().find(|c| c.vf == vf),
        Err(e) => {
            return vec![finding(
                format!("cannot read the VF settings of {pf_name}: {e}"),
                Repair::left(scope, "netlink failed"),
            )]
        }
    };
    let Some(now) = now else {
        return vec![finding(
            format!("{pf_name} no longer reports VF {vf}"),
            Repair::left(scope, "its VFs were disabled: detach and attach again"),
        )];
    };
    let mut out = Vec::new();
    for s in want {
        let have = s.original(&now);
        if have == Some(s) {
            continue;
        }
        let text = |v: Option<VfSetting>| {
            v.map(|v| serde_json::to_string(&v).unwrap_or_default())
                .unwrap_or_else(|| "not reported".into())
        };
        let repair = if scope == RepairScope::None {
            Repair::NotAsked
        } else {
            Repair::of(host.change_link(LinkChange::vf(pf.index, vf, &s)).await)
        };
        out.push(finding(
            format!(
                "VF {vf} of {pf_name}: {} is {}, not {}",
                s.label(),
                text(have),
                text(Some(s))
            ),
            repair,
        ));
    }
    out
}
