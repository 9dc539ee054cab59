//! Making one intent hold on a guest, idempotently.

use std::collections::BTreeMap;

use super::{intent_labels, labels, Intent};
use pipework_base::driver::DriverSet;
use pipework_base::error::{Error, Result};
use pipework_base::guest::Guest;
use pipework_base::settings::Settings;
use pipework_base::state::AttachmentRecord;
use pipework_core::attach::{attach_with, HostSide};
use pipework_core::detach::detach_guest;
use pipework_model::IfName;
use pipework_sys::netlink::Netlink;

/// What [`ensure`] had to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The attachment was there, made from the same declarations.
    Unchanged,
    Attached,
    /// It was there, made from other declarations: detached, then attached.
    Replaced,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Attached => "attached",
            Outcome::Replaced => "replaced",
        }
    }
}

/// Makes `intent` hold on `guest`. `owner` are the labels saying who
/// declares (an attachment made by hand, or by another owner, is never
/// replaced). `host` is shared with the caller's other ensures on this
/// runtime ([`HostSide`]).
pub async fn ensure(
    host: &HostSide,
    guest: &Guest,
    intent: &Intent,
    owner: &BTreeMap<String, String>,
    drivers: &dyn DriverSet,
    settings: &Settings,
) -> Result<Outcome> {
    let state = host.state();
    let ifname: IfName = intent.ifname.parse()?;
    let mut outcome = Outcome::Attached;
    if let Some(rec) = state.load(guest.info.netns, &intent.ifname)? {
        // A record of an earlier guest whose namespace inode this one
        // reuses (a container stopped while no daemon ran), or of a link
        // deleted by hand, is not this guest's: the attach drops it,
        // undoing only its host side.
        let current = rec.guest.pid == guest.info.pid && link_intact(guest, &rec).await;
        if current {
            if rec.labels.get(labels::DIGEST) == Some(&intent.digest) {
                return Ok(Outcome::Unchanged);
            }
            if rec.labels.get(labels::OWNER) != owner.get(labels::OWNER) {
                return Err(Error::usage(format!(
                    "{} on {} was attached by hand or by another owner: not replacing it",
                    intent.ifname,
                    guest.name()
                )));
            }
            detach_guest(guest, Some(&ifname), drivers, settings).await?;
            outcome = Outcome::Replaced;
        }
    }
    let all = intent_labels(intent, owner);
    for (n, req) in intent.requests.iter().enumerate() {
        let mut req = req.clone();
        req.labels = all.clone();
        if let Err(e) = attach_with(host, &req, guest, drivers, settings).await {
            // All of an interface's declarations hold, or none.
            if n > 0 {
                let _ = detach_guest(guest, Some(&ifname), drivers, settings).await;
            }
            return Err(e.context(intent.sources[n].clone()));
        }
    }
    Ok(outcome)
}

/// Whether the record's link is still in the guest under its name.
async fn link_intact(guest: &Guest, rec: &AttachmentRecord) -> bool {
    let Ok(nl) = Netlink::connect_in(&guest.netns, guest.name()).await else {
        return false;
    };
    matches!(nl.link_by_index(rec.ifindex).await, Ok(Some(l)) if l.name == rec.interface)
}
