//! `inspect` and `list`: what pipework attached, next to what is true now
//! (read from the kernel, the daemon and the clients' processes; see
//! [`crate::live`]).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use pipework_base::error::{Context, Result};
use pipework_base::guest::{guest_alive, reopen};
use pipework_base::guest::{Guest, GuestInfo, ResolveOptions};
use pipework_base::settings::Settings;
use pipework_base::state::{now_secs, AttachmentRecord, StateDir};
use pipework_dhcp::daemon::client::{self, DaemonStatus};
use pipework_dhcp::store::LeaseFile;
use pipework_model::GuestRef;
use pipework_sys::netlink::Netlink;
use pipework_sys::netns::Netns;

pub use crate::live::lease_state;
use crate::live::{self, DaemonView};

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

/// The guest's attachments as JSON, each with what is true now. A guest
/// that is gone but still has records is printed from them, marked gone.
pub async fn inspect(guest_ref: &GuestRef, settings: &Settings) -> Result<Value> {
    let state = StateDir::open_read(&settings.state_dir);
    state.check()?;
    let daemon = client::status(settings).await;
    match Guest::resolve(
        guest_ref,
        &ResolveOptions {
            wait_running: std::time::Duration::ZERO,
        },
    )
    .await
    {
        Ok(guest) => {
            let recs = state.guest_records(guest.info.netns)?;
            guest_json(
                &guest.info,
                Some(&guest.netns),
                &recs,
                daemon.as_ref(),
                settings,
            )
            .await
        }
        Err(resolve_err) => {
            // Gone guests only: a live guest answers to its reference.
            let recs: Vec<AttachmentRecord> = state
                .all()?
                .into_iter()
                .filter(|r| crate::detach::names_guest(&r.guest, guest_ref))
                .filter(|r| !guest_alive(&r.guest))
                .collect();
            let Some(first) = recs.first() else {
                return Err(resolve_err.context(format!("guest {guest_ref}")));
            };
            let info = first.guest.clone();
            let recs: Vec<AttachmentRecord> = recs
                .into_iter()
                .filter(|r| r.guest.netns == info.netns)
                .collect();
            guest_json(&info, None, &recs, daemon.as_ref(), settings).await
        }
    }
}

/// [`inspect`] for a guest already resolved.
pub async fn inspect_guest(guest: &Guest, settings: &Settings) -> Result<Value> {
    let state = StateDir::open_read(&settings.state_dir);
    state.check()?;
    let recs = state.guest_records(guest.info.netns)?;
    let daemon = client::status(settings).await;
    guest_json(
        &guest.info,
        Some(&guest.netns),
        &recs,
        daemon.as_ref(),
        settings,
    )
    .await
}

/// `inspect --all`: every guest with records, alive or gone, by name.
pub async fn inspect_all(settings: &Settings) -> Result<Vec<Value>> {
    let state = StateDir::open_read(&settings.state_dir);
    state.check()?;
    let daemon = client::status(settings).await;
    let mut by_guest: BTreeMap<u64, Vec<AttachmentRecord>> = BTreeMap::new();
    for r in state.all()? {
        by_guest.entry(r.guest.netns.0).or_default().push(r);
    }
    let mut groups: Vec<Vec<AttachmentRecord>> = by_guest.into_values().collect();
    groups.sort_by(|a, b| a[0].guest.name.cmp(&b[0].guest.name));
    let mut out = Vec::new();
    for recs in groups {
        let info = recs[0].guest.clone();
        let ns = reopen(&info);
        out.push(guest_json(&info, ns.as_ref(), &recs, daemon.as_ref(), settings).await?);
    }
    Ok(out)
}

/// One guest's JSON; `netns` is `None` when the guest is gone.
async fn guest_json(
    info: &GuestInfo,
    netns: Option<&Netns>,
    recs: &[AttachmentRecord],
    daemon: Option<&DaemonStatus>,
    settings: &Settings,
) -> Result<Value> {
    let nl = match netns {
        Some(ns) => Some(
            Netlink::connect_in(ns, &info.name)
                .await
                .step("open netlink in the guest")
                .map_err(|e| e.context(format!("guest {}", info.name)))?,
        ),
        None => None,
    };
    let view = DaemonView { status: daemon };
    let mut ifaces = Vec::new();
    for r in recs {
        let live = match &nl {
            Some(nl) => live::link_state(nl, r)
                .await
                .map_err(|e| e.context(format!("guest {} interface {}", info.name, r.interface)))?,
            None => json!({ "present": false, "guest_gone": true }),
        };
        let mut v = interface_json(r, Some(live));
        if let Some(d) = live::dhcp_state(r, &view, settings) {
            v["dhcp"] = d;
        }
        ifaces.push(v);
    }
    Ok(json!({
        "guest": info,
        "guest_alive": netns.is_some(),
        "interfaces": ifaces,
    }))
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

/// What the kernel has now for each item of [`list`] (in its order): the
/// link, its addresses and gateways; `None` for a gone guest, or one whose
/// namespace could not be read (said on stderr).
pub async fn list_live(items: &[(AttachmentRecord, bool)]) -> Vec<Option<Value>> {
    let mut conns: BTreeMap<u64, Option<Netlink>> = BTreeMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (r, alive) in items {
        if !alive {
            out.push(None);
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(e) = conns.entry(r.guest.netns.0) {
            let nl = match reopen(&r.guest) {
                Some(ns) => Netlink::connect_in(&ns, &r.guest.name).await.ok(),
                None => None,
            };
            e.insert(nl);
        }
        let live = match conns.get(&r.guest.netns.0).and_then(Option::as_ref) {
            Some(nl) => match live::link_state(nl, r).await {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!("guest {} interface {}: {e}", r.guest.name, r.interface);
                    None
                }
            },
            None => None,
        };
        out.push(live);
    }
    out
}

/// The JSON form of `list`; each interface with the leases the daemon keeps
/// for it (`daemon_running`: whether those came from a daemon that
/// answered, or from the files it last saved).
pub fn list_json(
    items: &[(AttachmentRecord, bool)],
    live: &[Option<Value>],
    leases: &[LeaseFile],
    daemon_running: bool,
) -> Value {
    let now = now_secs();
    Value::Array(
        items
            .iter()
            .enumerate()
            .map(|(n, (r, alive))| {
                let mut v = interface_json(r, live.get(n).cloned().flatten());
                v["guest"] = serde_json::to_value(&r.guest).unwrap_or(Value::Null);
                v["guest_alive"] = Value::Bool(*alive);
                let mine: Vec<Value> = leases
                    .iter()
                    .filter(|f| f.spec.guest.netns == r.guest.netns && f.spec.ifname == r.interface)
                    .map(|f| live::lease_json(f, daemon_running, true, now))
                    .collect();
                if !mine.is_empty() {
                    v["leases"] = Value::Array(mine);
                }
                v
            })
            .collect(),
    )
}
