//! What is true now for a recorded attachment, read from its sources rather
//! than from the record: the link, its addresses and default routes from the
//! kernel; a native lease as the daemon holds it (or as last saved, said so,
//! when no daemon answers); a compatible-mode client by its processes.

use std::net::IpAddr;

use serde_json::{json, Value};

use pipework_base::error::Result;
use pipework_base::journal::Step;
use pipework_base::settings::Settings;
use pipework_base::state::{now_secs, AttachmentRecord};
use pipework_dhcp::compat;
use pipework_dhcp::daemon::client::DaemonStatus;
use pipework_dhcp::store::{LeaseFile, LeaseStore};
use pipework_model::Family;
use pipework_sys::netlink::Netlink;

/// The link as the kernel has it now: present (same index and name), its
/// addresses, and the gateways of the main table's default routes out of it.
pub async fn link_state(nl: &Netlink, r: &AttachmentRecord) -> Result<Value> {
    let Some(l) = nl
        .link_by_index(r.ifindex)
        .await?
        .filter(|l| l.name == r.interface)
    else {
        return Ok(json!({ "present": false }));
    };
    let addrs: Vec<String> = nl
        .addresses(l.index)
        .await?
        .iter()
        .map(|a| a.address.to_string())
        .collect();
    let mut gateways: Vec<IpAddr> = Vec::new();
    for fam in [Family::V4, Family::V6] {
        for rt in nl.default_routes(fam).await? {
            if rt.oif == Some(l.index) {
                if let Some(gw) = rt.gateway {
                    if !gateways.contains(&gw) {
                        gateways.push(gw);
                    }
                }
            }
        }
    }
    Ok(json!({
        "present": true,
        "up": l.up,
        "carrier": l.carrier,
        "mac": l.mac,
        "mtu": l.mtu,
        "addresses": addrs,
        "gateways": gateways,
    }))
}

/// The daemon as `inspect` and `list` found it: `None` when none answered.
pub struct DaemonView<'a> {
    pub status: Option<&'a DaemonStatus>,
}

impl DaemonView<'_> {
    fn running(&self) -> bool {
        self.status.is_some()
    }

    /// The lease `key` as the daemon holds it; as saved on disk when no
    /// daemon runs (or it does not hold it).
    fn lease(&self, key: &str, settings: &Settings) -> (Option<LeaseFile>, bool) {
        if let Some(s) = self.status {
            if let Some(f) = s.leases.iter().find(|f| f.spec.key == key) {
                return (Some(f.clone()), true);
            }
        }
        (LeaseStore::new(&settings.state_dir).load(key), false)
    }
}

/// One word for where a lease stands now. Past its end it is `expired`,
/// whatever the saved phase says; without a daemon nothing renews it.
pub fn lease_state(f: &LeaseFile, daemon_running: bool, held: bool, now: u64) -> &'static str {
    let expired = f
        .lease
        .as_ref()
        .is_some_and(|l| l.expires_at() != u64::MAX && l.expires_at() <= now);
    if expired {
        "expired"
    } else if !daemon_running {
        "daemon not running"
    } else if !held {
        "not held by the daemon"
    } else {
        f.phase.as_str()
    }
}

/// A lease for `inspect` and `list --json`.
pub fn lease_json(f: &LeaseFile, daemon_running: bool, held: bool, now: u64) -> Value {
    let l = f.lease.as_ref();
    let expires_at = l.map(|l| l.expires_at());
    json!({
        "proto": f.spec.proto,
        "phase": f.phase,
        "state": lease_state(f, daemon_running, held, now),
        "address": l.map(|l| l.address),
        "server": l.map(|l| l.server),
        "routers": l.map(|l| l.routers.clone()),
        "dns": l.map(|l| l.dns.clone()),
        "acquired_at": l.map(|l| l.acquired_at),
        "expires_at": expires_at,
        "expires_in": expires_at.filter(|e| *e != u64::MAX).map(|e| e.saturating_sub(now)),
        "renew_at": l.map(|l| l.renew_at()),
        "dropped_packets": f.drops,
    })
}

/// The DHCP side of an attachment, `None` when it has none: for the native
/// client its leases and the daemon's PID, for a compatible mode the client
/// and its PID.
pub fn dhcp_state(
    r: &AttachmentRecord,
    daemon: &DaemonView<'_>,
    settings: &Settings,
) -> Option<Value> {
    let now = now_secs();
    let mut leases = Vec::new();
    let mut clients = Vec::new();
    for step in r.journal.steps() {
        match step {
            Step::DhcpLease { key } => {
                let (f, held) = daemon.lease(key, settings);
                leases.push(match f {
                    Some(f) => lease_json(&f, daemon.running(), held, now),
                    None => json!({ "key": key, "state": "no lease on record" }),
                });
            }
            Step::CompatClient { dir } => {
                clients.push(match compat::client_status(settings, dir) {
                    Some((c, pids)) => json!({
                        "client": c.client,
                        "kept": c.foreground,
                        "running": !pids.is_empty(),
                        "pid": pids.first(),
                        "pids": pids,
                        "state": match (c.foreground, pids.is_empty()) {
                            (_, false) => "running",
                            (true, true) => "not running (it died)",
                            (false, true) => "exited after its lease (this mode keeps no client)",
                        },
                    }),
                    None => json!({ "state": "no client on record", "pid": Value::Null }),
                });
            }
            _ => {}
        }
    }
    if leases.is_empty() && clients.is_empty() {
        return None;
    }
    let mut v = json!({});
    if !leases.is_empty() {
        v["client"] = json!("native");
        v["daemon"] = json!({
            "running": daemon.running(),
            "pid": daemon.status.and_then(|s| s.pid),
        });
        v["pid"] = json!(daemon.status.and_then(|s| s.pid));
        v["leases"] = Value::Array(leases);
    }
    if let Some(c) = clients.into_iter().next() {
        if v.get("client").is_none() {
            v["client"] = c["client"].clone();
            v["pid"] = c["pid"].clone();
        }
        v["compat"] = c;
    }
    Some(v)
}
