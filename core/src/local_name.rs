//! `-l NAME` when a link of that name exists. The original deletes a *down*
//! link of that name and creates its veth in its place, and refuses an up
//! one ("Link NAME exists and is up"). So does pipework, for a down veth
//! (what an earlier `-l NAME` left), with two differences:
//!
//! - the old link is first renamed out of the way (`pwold` and 8 hex
//!   digits, still down), and deleted only once the attach has succeeded:
//!   a failed attach renames it back, so it changes nothing, where the
//!   original had already deleted it. The rename is journaled before it is
//!   made, so an attach killed in that window has it renamed back by
//!   whoever settles the attach (the next attach to the guest, `gc`, the
//!   daemon's start).
//! - only a veth is replaced. A down bridge, VLAN, physical NIC... of that
//!   name is refused: deleting one because its name was given to `-l` is
//!   not what anyone asks for.
//!
//! The replacement is said on stderr (a warning), naming the old link.

use tracing::warn;

use pipework_base::error::{Context, Error, Result};
use pipework_base::journal::{Journal, Step};
use pipework_model::IfName;
use pipework_sys::netlink::{Link, LinkChange, Netlink};

/// The old link, renamed out of the way for the attach.
pub struct SetAside {
    index: u32,
    name: String,
    aside: String,
}

/// Looks at the link `-l` names: none, or a down veth renamed aside
/// (refuses anything else, with nothing changed).
pub async fn set_aside(
    host: &Netlink,
    name: &IfName,
    host_if: &str,
    journal: &mut Journal,
) -> Result<Option<SetAside>> {
    let Some(link) = host.link_by_name(name.as_str()).await? else {
        return Ok(None);
    };
    refuse(&link, host_if)
        .map_err(|why| Error::usage(format!("host interface name {name} (-l) is taken: {why}")))?;
    let aside = format!("pwold{}", pipework_model::random::hex(8));
    journal.record(Step::HostLinkSetAside {
        ifindex: link.index,
        name: link.name.clone(),
        aside: aside.clone(),
    });
    host.change_link(
        LinkChange::new(link.index)
            .name(&aside)
            .describe(format!("rename {name} to {aside}")),
    )
    .await
    .step("set the old -l link aside")?;
    Ok(Some(SetAside {
        index: link.index,
        name: link.name,
        aside,
    }))
}

/// Why `link` may not be replaced, if it may not.
fn refuse(link: &Link, host_if: &str) -> std::result::Result<(), String> {
    if link.name == host_if {
        return Err("it is the host interface of this attach".into());
    }
    if link.up {
        return Err("it exists and is up (a down veth would be replaced)".into());
    }
    match link.kind.as_deref() {
        Some("veth") => Ok(()),
        Some(k) => Err(format!("it is a {k}, and only a down veth is replaced")),
        None => Err("it is a physical interface, and only a down veth is replaced".into()),
    }
}

impl SetAside {
    /// After the attach: deletes the old link if it succeeded (and says
    /// so), else gives it its name back.
    pub async fn settle(self, host: &Netlink, attached: bool) {
        let still =
            matches!(host.link_by_index(self.index).await, Ok(Some(l)) if l.name == self.aside);
        if !still {
            return;
        }
        let (name, aside) = (&self.name, &self.aside);
        if attached {
            match host.delete_link(self.index, aside).await {
                Ok(()) => warn!(
                    "replaced the down veth {name} (-l {name}), as the original pipework does"
                ),
                Err(e) => warn!("the old down veth {name} (-l) stays as {aside}: {e}"),
            }
        } else {
            let back = LinkChange::new(self.index)
                .name(name)
                .describe(format!("rename {aside} back to {name}"));
            if let Err(e) = host.change_link(back).await {
                warn!("the old down veth {name} (-l) stays as {aside}: {e}");
            }
        }
    }
}
