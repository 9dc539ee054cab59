//! `inspect` and `list`: what pipework attached, with the live state read back
//! from the kernel.

use serde_json::{json, Value};

use pipework_base::error::{Context, Result};
use pipework_base::guest::guest_alive;
use pipework_base::guest::{Guest, ResolveOptions};
use pipework_base::settings::Settings;
use pipework_base::state::{AttachmentRecord, StateDir};
use pipework_dhcp::store::LeaseFile;
use pipework_model::GuestRef;
use pipework_sys::netlink::Netlink;

fn interface_json(r: &AttachmentRecord, live: Option<Value>) -> Value {
    let mut v = json!({
        "interface": r.interface,
        "mac": r.mac,
        "mtu": r.mtu,
        "driver": r.driver,
        "host_interface": r.host_interface,
        "host_peer": r.host_peer,
        "bridge": r.bridge,
        "vlan": r.vlan,
        "addresses": r.addresses,
        "gateways": r.gateways,
        "created_at": r.created_at,
    });
    if !r.details.is_empty() {
        v["details"] = Value::Object(r.details.clone());
    }
    if !r.labels.is_empty() {
        v["labels"] = serde_json::to_value(&r.labels).unwrap_or(Value::Null);
    }
    if let Some(l) = live {
        v["live"] = l;
    }
    v
}

/// The guest's attachments as JSON, each with what the kernel says now.
pub async fn inspect(guest_ref: &GuestRef, settings: &Settings) -> Result<Value> {
    let guest = Guest::resolve(
        guest_ref,
        &ResolveOptions {
            wait_running: std::time::Duration::ZERO,
        },
    )
    .await
    .map_err(|e| e.context(format!("guest {guest_ref}")))?;
    inspect_guest(&guest, settings).await
}

/// [`inspect`] for a guest already resolved.
pub async fn inspect_guest(guest: &Guest, settings: &Settings) -> Result<Value> {
    let state = StateDir::open_read(&settings.state_dir);
    state.check()?;
    let recs = state.guest_records(guest.info.netns)?;
    let nl = Netlink::connect_in(&guest.netns, guest.name())
        .await
        .step("open netlink in the guest")?;
    let mut ifaces = Vec::new();
    for r in &recs {
        let live = match nl.link_by_index(r.ifindex).await? {
            Some(l) if l.name == r.interface => {
                let addrs: Vec<String> = nl
                    .addresses(l.index)
                    .await?
                    .iter()
                    .map(|a| a.address.to_string())
                    .collect();
                json!({
                    "present": true,
                    "up": l.up,
                    "carrier": l.carrier,
                    "mac": l.mac,
                    "mtu": l.mtu,
                    "addresses": addrs,
                })
            }
            _ => json!({ "present": false }),
        };
        ifaces.push(interface_json(r, Some(live)));
    }
    Ok(json!({ "guest": guest.info, "interfaces": ifaces }))
}

/// Every record, for `list`, with whether its guest still exists.
pub fn list(settings: &Settings) -> Result<Vec<(AttachmentRecord, bool)>> {
    let state = StateDir::open_read(&settings.state_dir);
    state.check()?;
    Ok(state
        .all()?
        .into_iter()
        .map(|r| {
            let alive = guest_alive(&r.guest);
            (r, alive)
        })
        .collect())
}

/// The JSON form of `list`; each interface with the leases the daemon keeps
/// for it.
pub fn list_json(items: &[(AttachmentRecord, bool)], leases: &[LeaseFile]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|(r, alive)| {
                let mut v = interface_json(r, None);
                v["guest"] = serde_json::to_value(&r.guest).unwrap_or(Value::Null);
                v["guest_alive"] = Value::Bool(*alive);
                let mine: Vec<Value> = leases
                    .iter()
                    .filter(|f| f.spec.guest.netns == r.guest.netns && f.spec.ifname == r.interface)
                    .map(lease_json)
                    .collect();
                if !mine.is_empty() {
                    v["leases"] = Value::Array(mine);
                }
                v
            })
            .collect(),
    )
}

fn lease_json(f: &LeaseFile) -> Value {
    json!({
        "proto": f.spec.proto,
        "phase": f.phase,
        "address": f.lease.as_ref().map(|l| l.address),
        "server": f.lease.as_ref().map(|l| l.server),
        "expires_at": f.lease.as_ref().map(|l| l.expires_at()),
        "renew_at": f.lease.as_ref().map(|l| l.renew_at()),
        "dropped_packets": f.drops,
    })
}
