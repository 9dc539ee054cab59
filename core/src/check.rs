//! `pipework check`: every attachment record compared with the host as it
//! is now (the guest's link, MAC, addresses and routes as the journal made
//! them, the host veth on its bridge, then whatever the driver keeps), one
//! [`Drift`] per difference, repaired when asked. The daemon's healing and
//! the CNI `CHECK` use the same comparison.

use ipnet::IpNet;
use serde_json::{json, Value};

use pipework_base::drift::{Finding, Repair, RepairScope};
use pipework_base::driver::DriverSet;
use pipework_base::error::{Context, Error, Result};
use pipework_base::guest::{reopen, Guest, ResolveOptions};
use pipework_base::journal::Step;
use pipework_base::settings::Settings;
use pipework_base::state::{AttachmentRecord, StateDir};
use pipework_model::GuestRef;
use pipework_sys::netlink::{LinkChange, Netlink, RouteSpec};
use pipework_sys::netns::Netns;

/// How long the daemon's healing waits for a guest's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// One difference between a record and the host.
#[derive(Clone, Debug, PartialEq)]
pub struct Drift {
    pub guest: String,
    pub interface: String,
    pub finding: Finding,
}

impl Drift {
    /// One line for people: what differs and what became of it.
    pub fn line(&self) -> String {
        let f = &self.finding;
        let outcome = match &f.repair {
            Repair::NotAsked => String::new(),
            Repair::Repaired => ": repaired".into(),
            Repair::Failed(why) => format!(": repair failed: {why}"),
            Repair::Impossible(why) => format!(": not repaired: {why}"),
        };
        format!("{} {}: {}{outcome}", self.guest, self.interface, f.detail)
    }

    /// One JSON object for scripts.
    pub fn json(&self) -> Value {
        let f = &self.finding;
        let (repair, why) = match &f.repair {
            Repair::NotAsked => (Value::Null, None),
            Repair::Repaired => ("repaired".into(), None),
            Repair::Failed(w) => ("failed".into(), Some(w.clone())),
            Repair::Impossible(w) => ("impossible".into(), Some(w.clone())),
        };
        let mut v = json!({
            "guest": self.guest,
            "interface": self.interface,
            "what": f.what,
            "detail": f.detail,
            "repair": repair,
        });
        if let Some(w) = why {
            v["why"] = w.into();
        }
        v
    }
}

/// Checks the records of one guest (`Some`) or of all, repairing within
/// `scope`. A guest that cannot be found and has no records is a usage
/// error.
pub async fn check(
    guest: Option<&GuestRef>,
    drivers: &dyn DriverSet,
    settings: &Settings,
    scope: RepairScope,
) -> Result<Vec<Drift>> {
    let state = if scope == RepairScope::None {
        let s = StateDir::open_read(&settings.state_dir);
        s.check()?;
        s
    } else {
        StateDir::open(&settings.state_dir)?
    };
    let recs: Vec<AttachmentRecord> = match guest {
        None => state.all()?,
        Some(r) => {
            let opts = ResolveOptions {
                wait_running: std::time::Duration::ZERO,
            };
            match Guest::resolve(r, &opts).await {
                Ok(g) => state.guest_records(g.info.netns)?,
                Err(e) => {
                    let recs: Vec<_> = state
                        .all()?
                        .into_iter()
                        .filter(|x| crate::detach::names_guest(&x.guest, r))
                        .collect();
                    if recs.is_empty() {
                        return Err(e.context(format!("guest {r}")));
                    }
                    recs
                }
            }
        }
    };
    if let (Some(r), true) = (guest, recs.is_empty()) {
        return Err(Error::usage(format!(
            "pipework has no attachment on guest {r}"
        )));
    }
    let host = Netlink::connect_here("host").step("open netlink")?;
    let mut out = Vec::new();
    for rec in recs {
        // Repairs happen under the guest's lock, on the record as it is
        // then: a detach running meanwhile must not see its flows or
        // addresses come back after it removed them.
        let _lock = match scope {
            RepairScope::None => None,
            RepairScope::All => Some(state.lock_guest(rec.guest.netns).await?),
            // The daemon does not wait behind an attach (a DHCP wait holds
            // the lock for seconds): the next pass gets the record.
            RepairScope::HostSide => {
                match tokio::time::timeout(LOCK_WAIT, state.lock_guest(rec.guest.netns)).await {
                    Ok(l) => Some(l?),
                    Err(_) => continue,
                }
            }
        };
        let rec = if scope == RepairScope::None {
            rec
        } else {
            match state.load(rec.guest.netns, &rec.interface)? {
                Some(now) if now == rec => now,
                _ => continue,
            }
        };
        let findings = check_record(&rec, &host, drivers, settings, scope).await;
        out.extend(findings.into_iter().map(|finding| Drift {
            guest: rec.guest.name.clone(),
            interface: rec.interface.clone(),
            finding,
        }));
    }
    Ok(out)
}

/// The differences of one record.
pub async fn check_record(
    rec: &AttachmentRecord,
    host: &Netlink,
    drivers: &dyn DriverSet,
    settings: &Settings,
    scope: RepairScope,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(ns) = reopen(&rec.guest) else {
        out.push(Finding::new(
            "guest",
            "the guest is gone",
            Repair::left(scope, "`pipework gc` removes what is left of it"),
        ));
        return out;
    };
    match Netlink::connect_in(&ns, &rec.guest.name).await {
        Ok(nl) => {
            if let Err(e) = guest_side(rec, &nl, &ns, settings, scope, &mut out).await {
                out.push(Finding::new(
                    "link",
                    format!("cannot read the guest's links: {e}"),
                    Repair::left(scope, "netlink failed"),
                ));
            }
        }
        Err(e) => out.push(Finding::new(
            "link",
            format!("cannot open netlink in the guest: {e}"),
            Repair::left(scope, "netlink failed"),
        )),
    }
    if let Err(e) = host_side(rec, host, scope, &mut out).await {
        out.push(Finding::new(
            "host_peer",
            format!("cannot read the host's links: {e}"),
            Repair::left(scope, "netlink failed"),
        ));
    }
    if let Some(d) = drivers.get(rec.driver) {
        out.extend(d.check(rec, settings, scope).await);
    }
    out
}

/// A native lease nobody renews: no daemon runs, or the one that runs does
/// not hold it. `--repair` starts the daemon, which carries on from the
/// lease saved on disk (renewing it, or obtaining a new one once expired).
async fn lease_not_kept(
    settings: &Settings,
    scope: RepairScope,
    name: &str,
    key: &str,
) -> Option<Finding> {
    use pipework_dhcp::daemon::client;
    let holds = |s: &client::DaemonStatus| s.leases.iter().any(|f| f.spec.key == key);
    let why = match client::status(settings).await {
        Some(s) if holds(&s) => return None,
        Some(_) => "the pipework daemon does not hold it",
        None => "no pipework daemon runs to renew it",
    };
    let repair = match scope {
        RepairScope::None => Repair::NotAsked,
        _ => match client::ensure_running(settings).await {
            Ok(s) if holds(&s) => Repair::Repaired,
            Ok(_) => Repair::Impossible(
                "the daemon does not take it up again: detach and attach again".into(),
            ),
            Err(e) => Repair::Failed(e.to_string()),
        },
    };
    Some(Finding::new(
        "dhcp",
        format!("{name}: its DHCP lease {key} is not kept: {why}"),
        repair,
    ))
}

/// A repair inside the guest, when the scope allows one.
async fn guest_repair<F, E>(scope: RepairScope, f: F) -> Repair
where
    F: std::future::Future<Output = std::result::Result<(), E>>,
    E: std::fmt::Display,
{
    match scope {
        RepairScope::None => Repair::NotAsked,
        RepairScope::HostSide => {
            Repair::Impossible("inside the guest: `pipework check --repair` puts it back".into())
        }
        RepairScope::All => Repair::of(f.await),
    }
}

fn same_route(want: &RouteSpec, have: &RouteSpec) -> bool {
    let dst = |r: &RouteSpec| {
        r.destination
            .map(|d| d.trunc())
            .filter(|d| d.prefix_len() > 0)
    };
    dst(want) == dst(have)
        && want.gateway == have.gateway
        && want.oif.is_none_or(|o| have.oif == Some(o))
        && want.metric.is_none_or(|m| have.metric == Some(m))
}

fn route_text(r: &RouteSpec) -> String {
    let dst = r
        .destination
        .filter(|d| d.prefix_len() > 0)
        .map_or_else(|| "default".to_string(), |d| format!("to {}", d.trunc()));
    match r.gateway {
        Some(g) => format!("{dst} via {g}"),
        None => dst,
    }
}

async fn guest_side(
    rec: &AttachmentRecord,
    nl: &Netlink,
    ns: &Netns,
    settings: &Settings,
    scope: RepairScope,
    out: &mut Vec<Finding>,
) -> Result<()> {
    let name = &rec.interface;
    let Some(link) = nl.link_by_index(rec.ifindex).await? else {
        out.push(Finding::new(
            "link",
            format!("{name} (index {}) is gone from the guest", rec.ifindex),
            Repair::left(scope, "detach and attach again"),
        ));
        return Ok(());
    };
    if link.name != *name {
        out.push(Finding::new(
            "link",
            format!(
                "interface index {} is named {}, not {name}",
                rec.ifindex, link.name
            ),
            Repair::left(scope, "renamed by someone else"),
        ));
        return Ok(());
    }
    if link.mac != Some(rec.mac) {
        let have = link.mac.map_or_else(|| "none".into(), |m| m.to_string());
        let repair = guest_repair(
            scope,
            nl.change_link(LinkChange::new(link.index).mac(rec.mac)),
        )
        .await;
        out.push(Finding::new(
            "mac",
            format!("{name} has MAC {have}, not {}", rec.mac),
            repair,
        ));
    }
    let have: Vec<IpNet> = nl
        .addresses(link.index)
        .await?
        .into_iter()
        .map(|a| a.address)
        .collect();
    let mut routes: Vec<&RouteSpec> = Vec::new();
    for s in rec.journal.steps() {
        match s {
            Step::GuestAddressAdded { address, .. } if !have.contains(address) => {
                let repair = guest_repair(scope, nl.add_address(link.index, address, true)).await;
                out.push(Finding::new(
                    "address",
                    format!("{name} lacks address {address}"),
                    repair,
                ));
            }
            Step::CompatClient { dir } => {
                match pipework_dhcp::compat::dead_kept_client(settings, dir) {
                    Ok(Some(bin)) => {
                        // Started again as the attach started it, and
                        // repaired once it has a lease again. The daemon
                        // does this too: the client is a process of ours,
                        // started from the host, and changes in the guest
                        // only what the attach had it change.
                        let repair = match scope {
                            RepairScope::None => Repair::NotAsked,
                            // The daemon's watch starts it again on a task
                            // of its own (`kept_client::restart_dead`):
                            // waiting here for its lease, seconds, would
                            // hold back every other repair of the pass.
                            RepairScope::HostSide => Repair::NotAsked,
                            RepairScope::All => {
                                Repair::of(crate::kept_client::restart(settings, dir, ns).await)
                            }
                        };
                        out.push(Finding::new(
                            "dhcp",
                            format!(
                                "{name}: the {bin} client that keeps its lease is not running \
                                 (the address lasts until the lease ends)"
                            ),
                            repair,
                        ))
                    }
                    Ok(None) => {}
                    Err(e) => out.push(Finding::new(
                        "dhcp",
                        format!("{name}: cannot tell whether its DHCP client runs: {e}"),
                        Repair::left(scope, "the record is damaged"),
                    )),
                }
            }
            // The daemon's own heal pass does not ask itself.
            Step::DhcpLease { key } if scope != RepairScope::HostSide => {
                out.extend(lease_not_kept(settings, scope, name, key).await);
            }
            Step::GuestRouteAdded { route } => routes.push(route),
            Step::GuestDefaultRouteReplaced { ours, .. } => routes.push(ours),
            _ => {}
        }
    }
    // Addresses first: a route through a gateway needs its subnet back.
    for r in routes {
        let present = nl
            .routes(r.family, r.table)
            .await?
            .iter()
            .any(|h| same_route(r, h));
        if !present {
            let repair = guest_repair(scope, nl.add_route(r, false)).await;
            out.push(Finding::new(
                "route",
                format!("{name}: the route {} is gone", route_text(r)),
                repair,
            ));
        }
    }
    Ok(())
}

async fn host_side(
    rec: &AttachmentRecord,
    host: &Netlink,
    scope: RepairScope,
    out: &mut Vec<Finding>,
) -> Result<()> {
    let Some(peer) = &rec.host_peer else {
        return Ok(());
    };
    let Some(p) = host.link_by_name(peer).await? else {
        out.push(Finding::new(
            "host_peer",
            format!("host interface {peer} is gone"),
            Repair::left(scope, "detach and attach again"),
        ));
        return Ok(());
    };
    let Some(br) = &rec.bridge else {
        return Ok(());
    };
    // A Linux bridge shows its ports as IFLA_MASTER; OVS ports do not (the
    // driver checks those in OVSDB).
    match host.link_by_name(br).await? {
        Some(b) if b.is_kind("bridge") && p.master != Some(b.index) => {
            let repair = if scope.host_side() {
                Repair::of(
                    host.change_link(LinkChange::new(p.index).master(b.index))
                        .await,
                )
            } else {
                Repair::NotAsked
            };
            out.push(Finding::new(
                "bridge",
                format!("host veth {peer} is not a port of bridge {br}"),
                repair,
            ));
        }
        Some(_) => {}
        None if rec.driver == pipework_model::DriverKind::LinuxBridge => out.push(Finding::new(
            "bridge",
            format!("bridge {br} is gone"),
            Repair::left(scope, "detach and attach again"),
        )),
        None => {}
    }
    Ok(())
}
