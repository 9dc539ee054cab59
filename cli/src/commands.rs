//! Runs a parsed command and prints its result.

use crate::out::{errln, out, outln};
use pipework_core::detach;
use pipework_core::dhcp::lease::format_utc;
use pipework_core::dhcp::store::{LeaseFile, LeaseStore};
use pipework_core::drift::RepairScope;
use pipework_core::error::{Context, Result};
use pipework_core::guest::{Guest, ResolveOptions};
use pipework_core::inspect;
use pipework_core::model::GuestRef;
use pipework_core::model::{AddressMode, AttachRequest};
use pipework_core::netlink::Netlink;
use pipework_core::routing;
use pipework_core::settings::Settings;
use pipework_core::state::AttachmentRecord;
use pipework_core::wait::{self, Readiness};
use pipework_drivers::Drivers;

use crate::command::InspectFormat;
use crate::grammar::{Command, Invocation};

/// Runs the command; `Ok` carries the exit code (for `tc`, the tool's own).
pub async fn run(inv: Invocation, settings: &Settings) -> Result<u8> {
    let drivers = Drivers::new();
    let json = inv.global.json;
    match inv.command {
        Command::Help => out!("{}", crate::help::HELP),
        Command::Version => outln!("pipework {}", env!("CARGO_PKG_VERSION")),
        Command::Attach(req) => {
            let rec = pipework_core::attach::attach(&req, &drivers, settings).await?;
            if json {
                print_json(&rec);
            } else {
                print_dynamic(&req, &rec);
            }
        }
        Command::Daemon {
            idle_exit,
            reconcile,
            engine,
            key,
        } => {
            let reconcile = match (reconcile, engine) {
                (false, _) => None,
                (true, e) => Some(pipework_daemon::reconcile::ReconcileConfig {
                    endpoint: match e {
                        Some(e) => e,
                        None => pipework_core::docker::Endpoint::from_env()?,
                    },
                    key,
                    parse: crate::grammar::parse_attach,
                }),
            };
            let opts = pipework_daemon::DaemonOptions {
                idle_exit,
                reconcile,
            };
            pipework_daemon::run(std::sync::Arc::new(drivers), settings.clone(), opts).await?;
        }
        Command::Route { guest, cmd } => {
            let (g, nl) = guest_netlink(&guest).await?;
            let text = routing::run_route(&nl, cmd)
                .await
                .map_err(|e| e.context(format!("guest {}", g.name())))?;
            out!("{text}");
        }
        Command::Rule { guest, cmd } => {
            let (g, nl) = guest_netlink(&guest).await?;
            let text = routing::run_rule(&nl, cmd)
                .await
                .map_err(|e| e.context(format!("guest {}", g.name())))?;
            out!("{text}");
        }
        Command::Tc { guest, args } => {
            let g = resolve(&guest).await?;
            let code = routing::run_tc(&g.netns, &args)?;
            return Ok(code.clamp(0, 255) as u8);
        }
        Command::Wait {
            ifname,
            timeout,
            wait_for,
        } => {
            let nl = Netlink::connect_here("this").step("open netlink")?;
            wait::wait_ready(
                &nl,
                &Readiness {
                    ifname: ifname.to_string(),
                    wait_for,
                    timeout,
                },
            )
            .await?;
        }
        Command::Detach { guest, ifname } => {
            let done = detach::detach(&guest, ifname.as_ref(), &drivers, settings).await?;
            if json {
                print_json(&done);
            }
        }
        Command::Inspect { guest, format } => {
            let guests = match &guest {
                Some(g) => vec![inspect::inspect(g, settings).await?],
                None => inspect::inspect_all(settings).await?,
            };
            let mut guests = guests;
            port_security_live(&mut guests, guest.as_ref(), &drivers, settings).await;
            match format {
                InspectFormat::Json if guest.is_some() => print_json(&guests[0]),
                InspectFormat::Json => print_json(&guests),
                // network-wrapper printed one object per guest, one after
                // the other, never an array: its users' scripts read that.
                InspectFormat::NetworkWrapper => {
                    for v in guests.iter().flat_map(crate::nw_format::objects) {
                        print_json(&v);
                    }
                }
            }
        }
        Command::List => {
            let items = inspect::list(settings)?;
            let (leases, running) =
                match pipework_core::dhcp::daemon::client::leases_if_running(settings).await {
                    Some(l) => (l, true),
                    None => (LeaseStore::new(&settings.state_dir).all()?, false),
                };
            let live = inspect::list_live(&items).await;
            if json {
                print_json(&inspect::list_json(&items, &live, &leases, running));
            } else {
                print_table(&items, &live);
                print_leases(&leases, running);
            }
        }
        Command::Gc => {
            let done = pipework_core::gc::gc(&drivers, settings).await?;
            if json {
                print_json(&serde_json::json!({
                    "records": done.records,
                    "driver_objects": done.driver_objects,
                    "clients": done.clients,
                    "unfinished": done.unfinished,
                    "files": done.files,
                }));
            } else {
                for p in &done.unfinished {
                    outln!(
                        "undid the unfinished attach of {} on {}",
                        p.interface,
                        p.guest.name
                    );
                }
                for r in &done.records {
                    outln!("removed {} of {} (guest gone)", r.interface, r.guest.name);
                }
                for o in &done.driver_objects {
                    outln!("removed {o}");
                }
                for c in &done.clients {
                    outln!("ended {c}");
                }
                for f in &done.files {
                    outln!("removed {f} (state file nothing needs)");
                }
            }
        }
        Command::Check { guest, repair } => {
            let scope = if repair {
                RepairScope::All
            } else {
                RepairScope::None
            };
            let drifts =
                pipework_core::check::check(guest.as_ref(), &drivers, settings, scope).await?;
            for d in &drifts {
                if json {
                    match serde_json::to_string(&d.json()) {
                        Ok(s) => outln!("{s}"),
                        Err(e) => errln!("pipework: cannot encode JSON: {e}"),
                    }
                } else {
                    outln!("{}", d.line());
                }
            }
            // The exit code says whether the host differs from the records
            // now: after a repair, only what could not be put back counts.
            if drifts.iter().any(|d| d.finding.repair.remains()) {
                return Ok(1);
            }
        }
        Command::Apply { file, prune } => {
            return crate::apply::run(&file, prune, json, &drivers, settings).await
        }
        Command::Demo => crate::demo::run(settings, &drivers).await?,
    }
    Ok(0)
}

/// `inspect` never claims a protection that is not in place: where the
/// record says port security but the flows are not all on the bridge now
/// (ovs-vswitchd restarted, and no daemon put them back), the interface's
/// `ovs_port_security` reads "missing".
async fn port_security_live(
    guests: &mut [serde_json::Value],
    guest: Option<&GuestRef>,
    drivers: &Drivers,
    settings: &Settings,
) {
    let claims = |i: &serde_json::Value| i["details"]["ovs_port_security"] == true;
    let claimed = guests
        .iter()
        .filter_map(|v| v["interfaces"].as_array())
        .flatten()
        .any(claims);
    if !claimed {
        return;
    }
    let drifts = pipework_core::check::check(guest, drivers, settings, RepairScope::None)
        .await
        .unwrap_or_default();
    for v in guests.iter_mut() {
        let name = v["guest"]["name"].clone();
        let Some(ifaces) = v["interfaces"].as_array_mut() else {
            continue;
        };
        for i in ifaces.iter_mut().filter(|i| claims(i)) {
            if let Some(d) = drifts.iter().find(|d| {
                d.finding.what == "ovs_flows"
                    && name == d.guest.as_str()
                    && i["interface"] == d.interface.as_str()
            }) {
                i["details"]["ovs_port_security"] = "missing".into();
                i["details"]["ovs_port_security_drift"] = d.finding.detail.clone().into();
            }
        }
    }
}

async fn resolve(r: &GuestRef) -> Result<Guest> {
    Guest::resolve(r, &ResolveOptions::default())
        .await
        .map_err(|e| e.context(format!("guest {r}")))
}

async fn guest_netlink(r: &GuestRef) -> Result<(Guest, Netlink)> {
    let g = resolve(r).await?;
    let nl = Netlink::connect_in(&g.netns, g.name())
        .await
        .step("open netlink in the guest")?;
    Ok((g, nl))
}

fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => outln!("{s}"),
        Err(e) => errln!("pipework: cannot encode JSON: {e}"),
    }
}

/// ADDRESSES: what the kernel has now (without link-local addresses),
/// the record's for a gone guest.
fn print_table(items: &[(AttachmentRecord, bool)], live: &[Option<serde_json::Value>]) {
    outln!(
        "{:<20} {:<10} {:<12} {:<12} {:<15} ADDRESSES",
        "GUEST",
        "INTERFACE",
        "DRIVER",
        "HOST",
        "PEER"
    );
    for (n, (r, alive)) in items.iter().enumerate() {
        let guest = if *alive {
            r.guest.name.clone()
        } else {
            format!("{} (gone)", r.guest.name)
        };
        let addrs: Vec<String> = match live.get(n).and_then(|l| l.as_ref()) {
            Some(l) => l["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str())
                .filter(|a| !a.starts_with("fe80:"))
                .map(String::from)
                .collect(),
            None => r.addresses.iter().map(|a| a.to_string()).collect(),
        };
        outln!(
            "{:<20} {:<10} {:<12} {:<12} {:<15} {}",
            guest,
            r.interface,
            r.driver.as_str(),
            r.host_interface,
            r.host_peer.as_deref().unwrap_or("-"),
            if addrs.is_empty() {
                "-".to_string()
            } else {
                addrs.join(",")
            }
        );
    }
}

/// What DHCP or SLAAC gave, one line per address: the lease when there is
/// one (the attach returns only once it is bound).
fn print_dynamic(req: &AttachRequest, rec: &AttachmentRecord) {
    let leases = pipework_core::dhcp::lease::leases_of(rec);
    for l in &leases {
        outln!("{} {}", rec.interface, l.summary());
    }
    if matches!(req.address, AddressMode::Dhcp(_)) || req.options.slaac {
        for a in &rec.addresses {
            if !leases.iter().any(|l| l.address == *a) {
                outln!("{} {a}", rec.interface);
            }
        }
    }
}

/// The leases, each with where it stands now: `expired` past its end and
/// `daemon not running` when no daemon answered (the lines are then the
/// files it last saved, and nothing renews them).
fn print_leases(leases: &[LeaseFile], daemon_running: bool) {
    if leases.is_empty() {
        return;
    }
    outln!();
    outln!(
        "{:<20} {:<10} {:<6} {:<28} {:<18} EXPIRES",
        "GUEST",
        "INTERFACE",
        "PROTO",
        "LEASE",
        "STATE"
    );
    let now = pipework_core::state::now_secs();
    for f in leases {
        let (addr, expires) = match &f.lease {
            Some(l) => {
                let at = l.expires_at();
                let left = if at == u64::MAX {
                    String::new()
                } else if at <= now {
                    format!(" ({}s ago)", now - at)
                } else {
                    format!(" (in {}s)", at - now)
                };
                (l.address.to_string(), format!("{}{left}", format_utc(at)))
            }
            None => ("-".to_string(), "-".to_string()),
        };
        outln!(
            "{:<20} {:<10} {:<6} {:<28} {:<18} {}",
            f.spec.guest.name,
            f.spec.ifname,
            f.spec.proto.as_str(),
            addr,
            inspect::lease_state(f, daemon_running, true, now),
            expires
        );
    }
}
