//! A second attach to an interface pipework already made: more addresses
//! (and what they need) on the same link.

use super::*;

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
        let (pending, sink) = Pending::start(self.state, &self.guest.info, &rec.interface);
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
            self.announce(link.index, rec.mac, statics, false).await?;
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
        pending.clear();
        res
    }
}
