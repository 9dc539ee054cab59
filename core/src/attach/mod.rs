//! The attach orchestrator: resolve, probe, validate, then build the
//! attachment step by step with every change journaled; on any failure the
//! journal is undone in reverse and the host is as it was.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{debug, warn};

use crate::pending::Pending;
use crate::{dhcp, fault, hostname, ops, slaac, wait};
use announce::Fresh;
use pipework_base::driver::UndoContext;
use pipework_base::driver::{
    AttachContext, Driver, DriverKind, DriverSet, MacHandling, Plan, Plugged,
};
use pipework_base::error::{Context, Error, ErrorKind, Result};
use pipework_base::guest::{Guest, ResolveOptions};
use pipework_base::journal::{Journal, UndoMode};
use pipework_base::probe::{self, ProbeFlags};
use pipework_base::settings::Settings;
use pipework_base::state::{AttachmentRecord, StateDir, RECORD_VERSION};
use pipework_base::undo::Replay;
use pipework_dhcp::resolv::ResolvTarget;
use pipework_model::{AttachRequest, Family, IfName, MacAddr, MacSpec, StaticAddress};
use pipework_sys::announce::Announcer;
use pipework_sys::bridge_arp::BridgeArp;
use pipework_sys::netlink::{Link, LinkChange, Netlink};
use pipework_sys::netns::Netns;

/// How long an attach waits for IPv6 duplicate address detection.
mod announce;
mod extend;
mod host_mac;
mod host_side;
mod routes;

pub use host_side::HostSide;

const DAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Which request flags steer the probe. Drivers that need more (a VF index)
/// extend [`ProbeFlags`].
pub fn probe_flags(req: &AttachRequest) -> ProbeFlags {
    ProbeFlags {
        direct_phys: req.direct_phys,
        vf: req.options.hw.vf.is_some(),
    }
}

/// Resolves the guest named in the request, then attaches.
pub async fn attach(
    req: &AttachRequest,
    drivers: &dyn DriverSet,
    settings: &Settings,
) -> Result<AttachmentRecord> {
    let guest = Guest::resolve(
        &req.guest,
        &ResolveOptions {
            wait_running: req.options.timeout,
        },
    )
    .await
    .map_err(|e| e.context(format!("guest {}", req.guest)))?;
    attach_to(req, &guest, drivers, settings).await
}

/// Attaches to an already resolved guest.
pub async fn attach_to(
    req: &AttachRequest,
    guest: &Guest,
    drivers: &dyn DriverSet,
    settings: &Settings,
) -> Result<AttachmentRecord> {
    let host_side = HostSide::open(settings)?;
    attach_with(&host_side, req, guest, drivers, settings).await
}

/// Attaches to an already resolved guest with host-side handles the caller
/// shares between attaches (see [`HostSide`]).
#[tracing::instrument(
    name = "attach",
    skip_all,
    fields(guest = %guest.name(), host = ?req.host, interface, driver)
)]
pub async fn attach_with(
    host_side: &HostSide,
    req: &AttachRequest,
    guest: &Guest,
    drivers: &dyn DriverSet,
    settings: &Settings,
) -> Result<AttachmentRecord> {
    let HostSide {
        state,
        ns: host_ns,
        netlink: host,
        bridge_arp,
    } = host_side;
    let _guest_lock = state.lock_guest(guest.info.netns).await?;
    // The sockets that announce the addresses (packet for IPv4, ICMPv6 for
    // IPv6) are opened in the same trip into the guest as its netlink
    // socket: one setns.
    let statics = req.address.statics();
    let announce = req.options.announce && !statics.is_empty();
    let ipv6 = statics.iter().any(|a| a.address.addr().is_ipv6());
    // `apply` announces IPv4 addresses on Linux bridges from the host
    // (`bridge_arp`), or else through the kernel: no packet socket in each
    // guest for that.
    let ipv4 = bridge_arp.is_none() && statics.iter().any(|a| a.address.addr().is_ipv4());
    let (guest_nl, announcer) =
        Netlink::connect_in_with(&guest.netns, host_ns, guest.name(), move || {
            announce.then(|| Announcer::open(ipv4, ipv6))
        })
        .await
        .step("open netlink in the guest")?;
    let announcer = match announcer {
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            warn!("no gratuitous ARP / unsolicited NA: cannot open a socket: {e}");
            None
        }
        None => None,
    };

    let run = async {
        // An earlier attach to this guest killed half-way: undo it before
        // looking at the host (it may have made the bridge we would use).
        let undo = Replay {
            ctx: UndoContext {
                host,
                guest: Some(&guest_nl),
                host_ns,
                state,
                settings,
                mode: UndoMode::Rollback,
            },
            drivers,
            addressing: &pipework_dhcp::undo::DhcpUndo,
        };
        // And, in the same directory read, what attaches to other guests
        // left when they were killed.
        crate::pending::settle_before_attach(&undo, guest.info.netns).await?;
        let facts = probe::gather(host, &req.host, drivers, settings)
            .await
            .step("probe host interface")?;
        let kind = probe::decide(&facts, probe_flags(req)).map_err(Error::usage)?;
        // Each driver refuses the options it owns when another one was chosen.
        for other in DriverKind::ALL.into_iter().filter(|&k| k != kind) {
            if let Some(d) = drivers.get(other) {
                d.refuse_options(req, kind, &facts.name)
                    .map_err(|e| e.with_kind(ErrorKind::Usage))?;
            }
        }
        if let Some(r) = req.routes.iter().find(|r| {
            r.gateway
                .is_some_and(|g| g.is_ipv4() != r.destination.addr().is_ipv4())
        }) {
            return Err(Error::usage(format!(
                "route {r}: the gateway and the destination are of different families"
            )));
        }
        let driver = drivers.get(kind).ok_or_else(|| {
            Error::usage(format!("the {kind} driver is not available in this build"))
        })?;
        let ifname: IfName = match &req.guest_ifname {
            Some(n) => n.clone(),
            None => driver.default_guest_ifname().parse()?,
        };
        let span = tracing::Span::current();
        span.record("interface", ifname.as_str());
        span.record("driver", kind.as_str());
        let resolv = dhcp::attach::validate(req, guest)?;
        let job = Job {
            req,
            guest,
            resolv,
            host,
            guest_nl: &guest_nl,
            host_ns,
            drivers,
            settings,
            state,
            announcer: announcer.as_ref(),
            bridge_arp: bridge_arp.as_ref(),
            rollback_left_some: AtomicBool::new(false),
        };
        job.run(driver, kind, &facts.name, facts.link.as_ref(), &ifname)
            .await
            .map_err(|e| e.context(format!("interface {ifname}")))
    };
    run.await
        .map_err(|e| e.context(format!("guest {}", guest.name())))
}

/// One attach in progress.
struct Job<'a> {
    req: &'a AttachRequest,
    guest: &'a Guest,
    /// Where `--dns` writes the lease's name servers.
    resolv: Option<ResolvTarget>,
    host: &'a Netlink,
    guest_nl: &'a Netlink,
    host_ns: &'a Netns,
    drivers: &'a dyn DriverSet,
    settings: &'a Settings,
    state: &'a StateDir,
    announcer: Option<&'a Announcer>,
    bridge_arp: Option<&'a BridgeArp>,
    /// A rollback could not undo every step: the pending file stays, so the
    /// next attach to this guest, `gc` or the daemon finishes the undo (and
    /// sweeps the guest's temporary links, which it does only when a pending
    /// file is there).
    rollback_left_some: AtomicBool,
}

impl Job<'_> {
    async fn run(
        &self,
        driver: &dyn Driver,
        kind: DriverKind,
        host_ifname: &str,
        host_link: Option<&Link>,
        ifname: &IfName,
    ) -> Result<AttachmentRecord> {
        let existing = self.guest_nl.link_by_name(ifname.as_str()).await?;
        let record = self.state.load(self.guest.info.netns, ifname.as_str())?;
        match (existing, record) {
            (Some(link), Some(rec))
                if rec.ifindex == link.index && rec.host_interface == host_ifname =>
            {
                extend::refuse_changes(self.req, &rec, kind)?;
                return self.extend(rec, &link).await;
            }
            (Some(_), _) => {
                return Err(Error::usage(format!(
                    "the guest already has an interface {ifname} (choose another with -i)"
                )))
            }
            (None, Some(stale)) => self.forget_stale(stale).await?,
            (None, None) => {}
        }
        let temp_name = hostname::temp_guest_name();
        let mac = match self.req.mac {
            MacSpec::NetworkWrapper => {
                host_mac::network_wrapper_mac(self.host, host_ifname, host_link)
                    .await
                    .map_err(|e| e.context("step choose the MAC"))?
            }
            _ => self.req.mac.resolve(),
        };
        let ctx = AttachContext {
            request: self.req,
            guest: self.guest,
            host: self.host,
            guest_nl: self.guest_nl,
            host_ifname,
            host_link,
            guest_ifname: ifname,
            temp_name: &temp_name,
            mac,
            state: self.state,
            settings: self.settings,
        };
        let plan = driver.validate(&ctx).await.map_err(|e| {
            if e.kind() == ErrorKind::Failed {
                e
            } else {
                e.with_kind(ErrorKind::Usage)
            }
        })?;
        fault::point("validated")?;
        // Written before the first change, so that whatever kills us from
        // here on leaves a file naming the guest for the next attach, `gc`
        // or the daemon to settle.
        let (pending, sink) = Pending::start(self.state, &self.guest.info, ifname.as_str())?;
        let mut journal = Journal::with_sink(sink);
        let aside = match &self.req.host_ifname {
            Some(l) => {
                match crate::local_name::set_aside(self.host, l, host_ifname, &mut journal).await {
                    Ok(a) => a,
                    Err(e) => {
                        let e = self.rollback(e, &journal).await;
                        self.finish(&pending);
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let res = match self.build(driver, kind, &ctx, plan, &mut journal).await {
            Ok(rec) => match self.state.save(&rec) {
                Ok(()) => Ok(rec),
                Err(e) => Err(self.rollback(e.context("step save state"), &journal).await),
            },
            Err(e) => Err(self.rollback(e, &journal).await),
        };
        if let Some(a) = aside {
            a.settle(self.host, res.is_ok()).await;
        }
        self.finish(&pending);
        res
    }

    /// The attach is over: its pending file goes, unless a rollback left
    /// something to undo.
    fn finish(&self, pending: &Pending) {
        if self.rollback_left_some.load(Ordering::Relaxed) {
            warn!(
                "the rollback did not finish: the attach in progress stays recorded for the next attach, gc or the daemon to undo"
            );
        } else {
            pending.clear();
        }
    }

    async fn build(
        &self,
        driver: &dyn Driver,
        kind: DriverKind,
        ctx: &AttachContext<'_>,
        plan: Plan,
        journal: &mut Journal,
    ) -> Result<AttachmentRecord> {
        let mut plugged = driver.create(ctx, plan, journal).await?;
        fault::point("link-created")?;

        // One RTM_SETLINK: final name (and MAC), then up; the kernel applies
        // the name before the flags, so renaming a down link and bringing it
        // up is a single request (a veth's guest end has its final name
        // already: the same name again costs the kernel nothing).
        // With --slaac the link comes up only once it accepts router
        // advertisements (below), so that its first solicitation counts.
        let slaac = self.req.options.slaac;
        let mut change = LinkChange::new(plugged.guest_ifindex)
            .name(ctx.guest_ifname.as_str())
            .describe(format!("name {} and set it up", ctx.guest_ifname));
        if !slaac {
            change = change.up();
        }
        // `--wait` in the guest sees the link up from here on: the marker
        // tells it the attach is not done (cleared by `attach_done`). A link
        // moved in from the host keeps its host name in the alias instead.
        let marked = !matches!(kind, DriverKind::Phys | DriverKind::SriovVf);
        if marked {
            change = change.alias(wait::ATTACHING_ALIAS);
        }
        if plugged.mac == MacHandling::SetByOrchestrator {
            change = change.mac(ctx.mac);
        }
        // A link made for this attach gets `arp_notify` in the same request,
        // so announcing its IPv4 addresses later costs one request.
        let notify_on = self.announcer.is_some()
            && self
                .req
                .address
                .statics()
                .iter()
                .any(|a| a.address.addr().is_ipv4());
        if notify_on {
            change = pipework_sys::announce::fresh_link_notify(change);
        }
        self.guest_nl
            .change_link(change)
            .await
            .step("rename guest link")?;
        fault::point("link-configured")?;

        let statics = self.req.address.statics();
        if slaac {
            slaac::enable(&self.guest.netns, ctx.guest_ifname.as_str()).await?;
            self.guest_nl
                .change_link(
                    LinkChange::new(plugged.guest_ifindex)
                        .up()
                        .describe("set guest link up"),
                )
                .await
                .step("set guest link up")?;
        }
        let keeps_own = plugged.mac == MacHandling::KeepsOwn;
        let link = self
            .configure(plugged.guest_ifindex, statics, keeps_own, journal)
            .await?;
        let mac = match link.and_then(|l| l.mac) {
            Some(m) if keeps_own => m,
            _ => ctx.mac,
        };

        let link = dhcp::attach::Link {
            req: self.req,
            guest: self.guest,
            guest_nl: self.guest_nl,
            ifname: ctx.guest_ifname.as_str(),
            ifindex: plugged.guest_ifindex,
            mac,
            resolv: self.resolv.clone(),
            settings: self.settings,
        };
        let (leases, mut dynamic) = dhcp::attach::run(&link, journal).await?;
        if slaac {
            let known: Vec<_> = statics
                .iter()
                .map(|a| a.address)
                .chain(dynamic.clone())
                .collect();
            let auto = slaac::wait(
                self.guest_nl,
                plugged.guest_ifindex,
                &known,
                self.req.options.timeout,
            )
            .await?;
            dynamic.extend(auto);
        }
        self.extra_routes(plugged.guest_ifindex, journal).await?;

        // A host-sent announcement goes into the bridge, not through the
        // guest's port: it needs no wait for that port to forward.
        let host_sent = self.announce_from_host(plugged.untagged_bridge, mac, statics);
        let guest_announces = self.guest_announces(statics, host_sent);
        driver
            .after_up(ctx, &mut plugged, guest_announces, journal)
            .await?;
        // A gratuitous ARP of our own making needs an Ethernet link: the
        // veth and macvlan links this attach made are.
        let ethernet = notify_on
            && matches!(
                kind,
                DriverKind::LinuxBridge | DriverKind::Ovs | DriverKind::Macvlan
            );
        let cleared = self
            .announce(
                plugged.guest_ifindex,
                host_sent,
                mac,
                statics,
                Fresh {
                    notify_on,
                    ethernet,
                    marked,
                },
            )
            .await?;

        if marked && !cleared {
            self.guest_nl
                .change_link(
                    LinkChange::new(plugged.guest_ifindex)
                        .alias("")
                        .describe("clear the attaching marker"),
                )
                .await
                .step("mark the attach done")?;
        }
        fault::point("before-commit")?;
        if !self.guest.is_alive() {
            return Err(Error::failed("the guest exited during the attach").context("step commit"));
        }
        let mut rec = self.record(kind, ctx, &plugged, mac, journal);
        rec.addresses.extend(dynamic);
        if !leases.is_empty() {
            rec.details.insert(
                "dhcp".into(),
                serde_json::to_value(&leases).unwrap_or_default(),
            );
        }
        Ok(rec)
    }

    /// Addresses, routes, DAD. Reads the link back only when something
    /// depends on it (IPv6 DAD needs carrier; `read_back` for its own MAC).
    async fn configure(
        &self,
        ifindex: u32,
        statics: &[StaticAddress],
        read_back: bool,
        journal: &mut Journal,
    ) -> Result<Option<Link>> {
        let nodad = self.req.options.skip_dad;
        for a in statics {
            ops::add_guest_address(self.guest_nl, ifindex, &a.address, nodad, journal)
                .await
                .map_err(|e| e.context(format!("step add address {}", a.address)))?;
        }
        fault::point("address-added")?;
        fault::point("link-up")?;
        self.routes(ifindex, statics, journal).await?;
        fault::point("routes-added")?;
        let v6: Vec<IpAddr> = statics
            .iter()
            .map(|a| a.address.addr())
            .filter(IpAddr::is_ipv6)
            .collect();
        let dad = !v6.is_empty() && !nodad;
        if !dad && !read_back {
            return Ok(None);
        }
        let link = self
            .guest_nl
            .link_by_index(ifindex)
            .await?
            .ok_or_else(|| Error::failed("the guest link vanished").context("step set up"))?;
        if dad {
            if link.carrier {
                wait::wait_dad(self.guest_nl, ifindex, &v6, DAD_TIMEOUT)
                    .await
                    .step("IPv6 duplicate address detection")?;
            } else {
                warn!("{} has no carrier yet: not waiting for IPv6 DAD", link.name);
            }
        }
        Ok(Some(link))
    }

    fn record(
        &self,
        kind: DriverKind,
        ctx: &AttachContext<'_>,
        p: &Plugged,
        mac: MacAddr,
        journal: &Journal,
    ) -> AttachmentRecord {
        let statics = self.req.address.statics();
        let (created_at, created_at_nanos) = pipework_base::state::now();
        AttachmentRecord {
            version: RECORD_VERSION,
            guest: self.guest.info.clone(),
            interface: ctx.guest_ifname.to_string(),
            ifindex: p.guest_ifindex,
            mac,
            mtu: p.mtu,
            driver: kind,
            host_interface: ctx.host_ifname.to_string(),
            host_peer: p.host_peer.clone(),
            bridge: p.bridge.clone(),
            vlan: p.vlan,
            addresses: statics.iter().map(|a| a.address).collect(),
            gateways: statics.iter().filter_map(|a| a.gateway).collect(),
            created_at,
            created_at_nanos,
            details: p.details.clone(),
            labels: self.req.labels.clone(),
            journal: journal.clone(),
        }
    }

    /// A record whose guest link is gone (deleted by hand, or a recycled
    /// namespace inode): undo its host side only, and drop it.
    async fn forget_stale(&self, stale: AttachmentRecord) -> Result<()> {
        debug!(interface = %stale.interface, "dropping stale record");
        let ctx = self.undo_ctx(UndoMode::Detach, false);
        for e in stale.journal.undo_all(&ctx).await {
            warn!("cleaning up a stale attachment: {e}");
        }
        self.state.remove(stale.guest.netns, &stale.interface)
    }

    fn undo_ctx(&self, mode: UndoMode, with_guest: bool) -> Replay<'_> {
        Replay {
            ctx: UndoContext {
                host: self.host,
                guest: with_guest.then_some(self.guest_nl),
                host_ns: self.host_ns,
                state: self.state,
                settings: self.settings,
                mode,
            },
            drivers: self.drivers,
            addressing: &pipework_dhcp::undo::DhcpUndo,
        }
    }

    /// Undoes the journal after `err`, and says so in the error if anything
    /// could not be undone.
    async fn rollback(&self, err: Error, journal: &Journal) -> Error {
        debug!(steps = journal.len(), "rolling back: {err}");
        let failures = journal
            .undo_all(&self.undo_ctx(UndoMode::Rollback, true))
            .await;
        if failures.is_empty() {
            err
        } else {
            self.rollback_left_some.store(true, Ordering::Relaxed);
            let msg = failures
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            err.append_message(&format!(" (rollback incomplete: {msg})"))
        }
    }
}
