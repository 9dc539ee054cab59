//! A second attach to an interface pipework already made: more addresses
//! (and what they need) on the same link.

use super::*;
use pipework_model::{HwOptions, MacvlanMode};

/// A second attach adds addresses (and their gateways and routes) and
/// nothing else: every option that would shape the link or its host side
/// differently from the first attach is refused (exit 2) with the option
/// named, instead of being dropped while the command reports success.
/// Giving the same value again is fine.
pub(super) fn refuse_changes(
    req: &AttachRequest,
    rec: &AttachmentRecord,
    kind: DriverKind,
) -> Result<()> {
    let ifname = &rec.interface;
    let refuse = |what: String| {
        Err(Error::usage(format!(
            "{what}: {ifname} exists from an earlier attach, which a second attach cannot change (detach it first)"
        )))
    };
    if kind != rec.driver {
        return refuse(format!(
            "the {kind} driver (the interface is a {} attachment)",
            rec.driver
        ));
    }
    if let Some(t) = &req.tag {
        let same = match rec.details.get("pkey").and_then(|p| p.as_str()) {
            Some(p) => t.as_pkey().is_ok_and(|k| k.to_string() == p),
            None => t.as_vlan().is_ok_and(|v| rec.vlan == Some(v.get())),
        };
        if !same {
            return refuse(format!("@{t}"));
        }
    }
    if let Some(l) = &req.host_ifname {
        if rec.host_peer.as_deref() != Some(l.as_str()) {
            return refuse(format!("-l {l}"));
        }
    }
    let mode = req.options.macvlan_mode;
    if mode != MacvlanMode::Bridge {
        let want = serde_json::to_value(mode).unwrap_or_default();
        if rec.details.get("macvlan_mode") != Some(&want) {
            return refuse(format!("--macvlan-mode {}", want.as_str().unwrap_or("?")));
        }
    }
    if req.options.hw != HwOptions::default() {
        return refuse("--vf/--spoofchk/--trust/--vf-* and --ipoib-mode options".into());
    }
    if req.direct_phys {
        return refuse("--direct-phys".into());
    }
    if req.options.host_route.is_some() {
        return refuse("--host-route".into());
    }
    if req.options.slaac {
        return refuse("--slaac".into());
    }
    if req.options.dns {
        return refuse("--dns".into());
    }
    Ok(())
}

impl Job<'_> {
    /// A second attach to an interface we already made: add the new addresses
    /// (and gateways) to it, journaled onto the existing record.
    pub(super) async fn extend(
        &self,
        mut rec: AttachmentRecord,
        link: &Link,
    ) -> Result<AttachmentRecord> {
        let statics = self.req.address.statics();
        if statics.is_empty() {
            return Err(Error::usage(format!(
                "the guest already has {} from an earlier attach; give an address to add one",
                rec.interface
            )));
        }
        if let pipework_model::MacSpec::Explicit(m) = &self.req.mac {
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
        let (pending, sink) = Pending::start(self.state, &self.guest.info, &rec.interface)?;
        let mut journal = Journal::with_sink(sink);
        let res = async {
            let nodad = self.req.options.skip_dad;
            for a in statics {
                ops::add_guest_address(self.guest_nl, link.index, &a.address, nodad, &mut journal)
                    .await
                    .map_err(|e| e.context(format!("step add address {}", a.address)))?;
            }
            fault::point("address-added")?;
            self.routes(link.index, statics, &mut journal).await?;
            self.extra_routes(link.index, &mut journal).await?;
            let v6: Vec<IpAddr> = statics
                .iter()
                .map(|a| a.address.addr())
                .filter(IpAddr::is_ipv6)
                .collect();
            if !v6.is_empty() && !nodad && link.carrier {
                wait::wait_dad(self.guest_nl, link.index, &v6, DAD_TIMEOUT).await?;
            }
            if let Some(d) = self.drivers.get(rec.driver) {
                d.extend(self.req, &rec, statics, self.settings, &mut journal)
                    .await?;
            }
            let fresh = super::announce::Fresh {
                notify_on: false,
                ethernet: false,
                marked: false,
            };
            self.announce(link.index, false, rec.mac, statics, fresh)
                .await?;
            fault::point("before-commit")?;
            rec.addresses.extend(statics.iter().map(|a| a.address));
            rec.gateways
                .extend(statics.iter().filter_map(|a| a.gateway));
            rec.journal.extend(journal.clone());
            self.state.save(&rec)?;
            Ok(rec)
        }
        .await;
        let res = match res {
            Ok(r) => Ok(r),
            Err(e) => Err(self.rollback(e, &journal).await),
        };
        self.finish(&pending);
        res
    }
}
