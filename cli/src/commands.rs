//! Runs a parsed command and prints its result.

use crate::out::{errln, out, outln};
use pipework_core::detach;
use pipework_core::dhcp::lease::format_utc;
use pipework_core::dhcp::store::{LeaseFile, LeaseStore};
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
        Command::Inspect { guest } => {
            let v = inspect::inspect(&guest, settings).await?;
            print_json(&v);
        }
        Command::List => {
            let items = inspect::list(settings)?;
            let leases =
                match pipework_core::dhcp::daemon::client::leases_if_running(settings).await {
                    Some(l) => l,
                    None => LeaseStore::new(&settings.state_dir).all()?,
                };
            if json {
                print_json(&inspect::list_json(&items, &leases));
            } else {
                print_table(&items);
                print_leases(&leases);
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
        Command::Apply { file, prune } => {
            return crate::apply::run(&file, prune, json, &drivers, settings).await
        }
        Command::Demo => crate::demo::run(settings, &drivers).await?,
    }
    Ok(0)
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

fn print_table(items: &[(AttachmentRecord, bool)]) {
    outln!(
        "{:<20} {:<10} {:<12} {:<12} {:<15} ADDRESSES",
        "GUEST",
        "INTERFACE",
        "DRIVER",
        "HOST",
        "PEER"
    );
    for (r, alive) in items {
        let guest = if *alive {
            r.guest.name.clone()
        } else {
            format!("{} (gone)", r.guest.name)
        };
        let addrs: Vec<String> = r.addresses.iter().map(|a| a.to_string()).collect();
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

fn print_leases(leases: &[LeaseFile]) {
    if leases.is_empty() {
        return;
    }
    outln!();
    outln!(
        "{:<20} {:<10} {:<6} {:<28} {:<10} EXPIRES",
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
                } else {
                    format!(" (in {}s)", at.saturating_sub(now))
                };
                (l.address.to_string(), format!("{}{left}", format_utc(at)))
            }
            None => ("-".to_string(), "-".to_string()),
        };
        outln!(
            "{:<20} {:<10} {:<6} {:<28} {:<10} {}",
            f.spec.guest.name,
            f.spec.ifname,
            f.spec.proto.as_str(),
            addr,
            f.phase.as_str(),
            expires
        );
    }
}
