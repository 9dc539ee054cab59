//! The attach orchestrator: resolve, probe, validate, then build the
//! attachment step by step with every change journaled; on any failure the
//! journal is undone in reverse and the host is as it was.

use std::net::IpAddr;
use std::time::Duration;

use tracing::{debug, warn};

use crate::driver::{AttachContext, Driver, DriverKind, DriverSet, Plugged};
use crate::error::{Context, Error, ErrorKind, Result};
use crate::guest::{Guest, ResolveOptions};
use crate::journal::{Journal, UndoContext, UndoMode};
use crate::model::{AddressMode, AttachRequest, Family, IfName, MacAddr, StaticAddress};
use crate::netlink::{Link, LinkChange, Netlink, RouteSpec};
use crate::netns::Netns;
use crate::probe::{self, ProbeFlags};
use crate::settings::Settings;
use crate::state::{now_secs, AttachmentRecord, StateDir, RECORD_VERSION};
use crate::{announce, fault, hostname, ops, wait};

/// How long an attach waits for IPv6 duplicate address detection.
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
    if let AddressMode::Dhcp(d) = &req.address {
        return Err(Error::usage(format!(
            "DHCP ({:?} client) is not supported yet: use a static address or 0/0",
            d.client
        )));
    }
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
    let state = StateDir::open(&settings.state_dir)?;
    let _guest_lock = state.lock_guest(guest.info.netns).await?;
    let host_ns = Netns::current().step("open host namespace")?;
    let host = Netlink::connect_here("host").step("open netlink")?;
    let guest_nl = Netlink::connect_in(&guest.netns, guest.name())
        .await
        .step("open netlink in the guest")?;

    let run = async {
        let facts = probe::gather(&host, &req.host, drivers, settings)
            .await
            .step("probe host interface")?;
        let kind = probe::decide(&facts, probe_flags(req)).map_err(Error::usage)?;
        req.options.hw.applies_to(kind).map_err(Error::usage)?;
        let driver = drivers.get(kind).ok_or_else(|| {
            Error::usage(format!("the {kind} driver is not available in this build"))
        })?;
        let ifname: IfName = match &req.guest_ifname {
            Some(n) => n.clone(),
            None => driver.default_guest_ifname().parse()?,
        };
        let job = Job {
            req,
            guest,
            host: &host,
            guest_nl: &guest_nl,
            host_ns: &host_ns,
            drivers,
            settings,
            state: &state,
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
    host: &'a Netlink,
    guest_nl: &'a Netlink,
    host_ns: &'a Netns,
    drivers: &'a dyn DriverSet,
    settings: &'a Settings,
    state: &'a StateDir,
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
        if let Some(l) = &self.req.host_ifname {
            if self.host.link_by_name(l.as_str()).await?.is_some() {
                return Err(Error::usage(format!(
                    "host interface name {l} (-l) is already taken"
                )));
            }
        }
        let temp_name = hostname::temp_guest_name();
        let mac = self.req.mac.resolve();
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
        driver.validate(&ctx).await.map_err(|e| {
            if e.kind() == ErrorKind::Failed {
                e
            } else {
                e.with_kind(ErrorKind::Usage)
            }
        })?;
        fault::point("validated")?;

        let mut journal = Journal::new();
        match self.build(driver, kind, &ctx, &mut journal).await {
            Ok(rec) => match self.state.save(&rec) {
                Ok(()) => Ok(rec),
                Err(e) => Err(self.rollback(e.context("step save state"), &journal).await),
            },
            Err(e) => Err(self.rollback(e, &journal).await),
        }
    }

    async fn build(
        &self,
        driver: &dyn Driver,
        kind: DriverKind,
        ctx: &AttachContext<'_>,
        journal: &mut Journal,
    ) -> Result<AttachmentRecord> {
        let mut plugged = driver.create(ctx, journal).await?;
        fault::point("link-created")?;

        // One RTM_SETLINK: final name (and MAC) while the link is still down.
        let mut change = LinkChange::new(plugged.guest_ifindex)
            .name(ctx.guest_ifname.as_str())
            .describe(format!("rename {} to {}", ctx.temp_name, ctx.guest_ifname));
        if plugged.needs_mac {
            change = change.mac(ctx.mac);
        }
        self.guest_nl
            .change_link(change)
            .await
            .step("rename guest link")?;
        fault::point("link-configured")?;

        let statics = self.req.address.statics();
        let mac = self
            .configure(plugged.guest_ifindex, statics, journal)
            .await?;
        let mac = if plugged.needs_mac { ctx.mac } else { mac };

        driver.after_up(ctx, &mut plugged, journal).await?;
        self.announce(plugged.guest_ifindex, mac, statics).await?;

        fault::point("before-commit")?;
        if !self.guest.is_alive() {
            return Err(Error::failed("the guest exited during the attach").context("step commit"));
        }
        Ok(self.record(kind, ctx, &plugged, mac, journal))
    }

    /// Addresses, link up, routes, DAD. Returns the link's MAC as the kernel has it.
    async fn configure(
        &self,
        ifindex: u32,
        statics: &[StaticAddress],
        journal: &mut Journal,
    ) -> Result<MacAddr> {
        let nodad = self.req.options.skip_dad;
        for a in statics {
            ops::add_guest_address(self.guest_nl, ifindex, &a.address, nodad, journal)
                .await
                .map_err(|e| e.context(format!("step add address {}", a.address)))?;
        }
        fault::point("address-added")?;
        self.guest_nl
            .change_link(LinkChange::new(ifindex).up().describe("set guest link up"))
            .await
            .step("set guest link up")?;
        fault::point("link-up")?;
        self.routes(ifindex, statics, journal).await?;
        fault::point("routes-added")?;
        let link = self
            .guest_nl
            .link_by_index(ifindex)
            .await?
            .ok_or_else(|| Error::failed("the guest link vanished").context("step set up"))?;
        let v6: Vec<IpAddr> = statics
            .iter()
            .map(|a| a.address.addr())
            .filter(IpAddr::is_ipv6)
            .collect();
        if !v6.is_empty() && !nodad {
            if link.carrier {
                wait::wait_dad(self.guest_nl, ifindex, &v6, DAD_TIMEOUT)
                    .await
                    .step("IPv6 duplicate address detection")?;
            } else {
                warn!("{} has no carrier yet: not waiting for IPv6 DAD", link.name);
            }
        }
        Ok(link.mac.unwrap_or(MacAddr([0; 6])))
    }

    async fn routes(
        &self,
        ifindex: u32,
        statics: &[StaticAddress],
        journal: &mut Journal,
    ) -> Result<()> {
        for a in statics {
            let Some(gw) = a.gateway else { continue };
            let link_local = matches!(gw, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
            if a.gateway_is_off_link() && !link_local {
                ops::add_guest_route(self.guest_nl, RouteSpec::host_on_link(gw, ifindex), journal)
                    .await
                    .map_err(|e| e.context(format!("step on-link route to {gw}")))?;
            }
            ops::replace_default_route(self.guest_nl, a.family(), gw, ifindex, journal)
                .await
                .map_err(|e| e.context(format!("step default route via {gw}")))?;
        }
        Ok(())
    }

    async fn announce(&self, ifindex: u32, mac: MacAddr, statics: &[StaticAddress]) -> Result<()> {
        if self.req.options.announce && !statics.is_empty() {
            let addrs: Vec<IpAddr> = statics.iter().map(|a| a.address.addr()).collect();
            if let Err(e) = announce::announce(&self.guest.netns, ifindex, mac, &addrs).await {
                // Neighbours learn the address on first use anyway.
                warn!("gratuitous ARP / unsolicited NA not sent: {e}");
            }
        }
        fault::point("announced")
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
            created_at: now_secs(),
            details: p.details.clone(),
            journal: journal.clone(),
        }
    }

    /// A second attach to an interface we already made: add the new addresses
    /// (and gateways) to it, journaled onto the existing record.
    async fn extend(&self, mut rec: AttachmentRecord, link: &Link) -> Result<AttachmentRecord> {
        let statics = self.req.address.statics();
        if statics.is_empty() {
            return Err(Error::usage(format!(
                "the guest already has {} from an earlier attach; give an address to add one",
                rec.interface
            )));
        }
        if let crate::model::MacSpec::Explicit(m) = &self.req.mac {
            if link.mac != Some(*m) {
                return Err(Error::usage(format!(
                    "{} already exists with MAC {}; a second attach cannot change it",
                    rec.interface,
                    link.mac.map(|m| m.to_string()).unwrap_or_default()
                )));
            }
        }
        for a in statics {
            if rec.addresses.iter().any(|x| x.addr() == a.address.addr()) {
                return Err(Error::usage(format!(
                    "{} already has address {}",
                    rec.interface, a.address
                )));
            }
            if a.gateway.is_some() && rec.gateways.iter().any(|g| Family::of(g) == a.family()) {
                return Err(Error::usage(format!(
                    "{} already has an {} gateway; give the extra address without @gateway",
                    rec.interface,
                    a.family()
                )));
            }
        }
        let mut journal = Journal::new();
        let res = async {
            let nodad = self.req.options.skip_dad;
            for a in statics {
                ops::add_guest_address(self.guest_nl, link.index, &a.address, nodad, &mut journal)
                    .await
                    .map_err(|e| e.context(format!("step add address {}", a.address)))?;
            }
            fault::point("address-added")?;
            self.routes(link.index, statics, &mut journal).await?;
            let v6: Vec<IpAddr> = statics
                .iter()
                .map(|a| a.address.addr())
                .filter(IpAddr::is_ipv6)
                .collect();
            if !v6.is_empty() && !nodad && link.carrier {
                wait::wait_dad(self.guest_nl, link.index, &v6, DAD_TIMEOUT).await?;
            }
            self.announce(link.index, rec.mac, statics).await?;
            fault::point("before-commit")?;
            rec.addresses.extend(statics.iter().map(|a| a.address));
            rec.gateways
                .extend(statics.iter().filter_map(|a| a.gateway));
            rec.journal.extend(journal.clone());
            self.state.save(&rec)?;
            Ok(rec)
        }
        .await;
        match res {
            Ok(r) => Ok(r),
            Err(e) => Err(self.rollback(e, &journal).await),
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

    fn undo_ctx(&self, mode: UndoMode, with_guest: bool) -> UndoContext<'_> {
        UndoContext {
            host: self.host,
            guest: with_guest.then_some(self.guest_nl),
            host_ns: self.host_ns,
            drivers: self.drivers,
            state: self.state,
            settings: self.settings,
            mode,
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
            let msg = failures
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            err.append_message(&format!(" (rollback incomplete: {msg})"))
        }
    }
}
