//! Host objects many attachments share and pipework may have created: a
//! Linux bridge, an 802.1Q sub-interface under macvlans, the host shim of
//! `--host-route`. One ownership model for all of them, so that a process
//! killed at any instant leaves something the next attach, `gc` or the
//! daemon's start can finish or undo:
//!
//! - **Ownership is written ahead.** [`Shared::mark_created`] is called
//!   before the object carries its final name (a bridge is created under a
//!   temporary name, marked, then renamed), and names the link's index, so
//!   an object of the same name made later by somebody else is never taken
//!   for ours. An empty marker (written by older versions) owns by name.
//! - **Uses are written ahead.** [`Shared::add_user`] comes before the use
//!   exists; a user whose attachment has neither a record nor a pending
//!   file is gone ([`Shared::stale_users`]), whatever killed it.
//! - **One lock per object**, [`Shared::lock`]: shared by whoever adds a
//!   use, exclusive by whoever creates or deletes the object.
//!
//! Drivers name the object; only this module knows where it is kept:
//! `bridges/<name>` (a marker file; a bridge's users are its ports, which
//! the kernel lists), `vlans/<name>/created` and `vlans/<name>/users/<user>`,
//! `shims/<name>/<user>` (a shim is pipework's by its kind and parent, so it
//! has no marker). The layouts are those of earlier versions, so an upgrade
//! under live attachments keeps their accounts.

use crate::error::Result;
use crate::state::{LockGuard, StateDir};
use pipework_sys::netns::NetnsId;

/// What kind of shared object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedKind {
    Bridge,
    Vlan,
    Shim,
}

impl SharedKind {
    fn dir(self) -> &'static str {
        match self {
            SharedKind::Bridge => "bridges",
            SharedKind::Vlan => "vlans",
            SharedKind::Shim => "shims",
        }
    }

    fn lock_prefix(self) -> &'static str {
        match self {
            SharedKind::Bridge => "bridge",
            SharedKind::Vlan => "vlan",
            SharedKind::Shim => "shim",
        }
    }
}

/// One shared object, by kind and name.
pub struct Shared<'a> {
    state: &'a StateDir,
    kind: SharedKind,
    name: String,
}

/// The user key of one attachment: `<netns>-<ifname>`.
pub fn user_key(netns: NetnsId, ifname: &str) -> String {
    format!("{netns}-{ifname}")
}

impl StateDir {
    pub fn shared(&self, kind: SharedKind, name: &str) -> Shared<'_> {
        Shared {
            state: self,
            kind,
            name: name.to_string(),
        }
    }

    /// A bridge's lock (of a Linux or an OVS bridge): shared while adding
    /// a port, exclusive while creating it or deciding to delete it.
    pub async fn lock_bridge(&self, name: &str, exclusive: bool) -> Result<LockGuard> {
        self.shared(SharedKind::Bridge, name).lock(exclusive).await
    }

    /// The names of every object of `kind` the state has an account of.
    pub fn shared_names(&self, kind: SharedKind) -> Result<Vec<String>> {
        Ok(self
            .list(kind.dir())?
            .into_iter()
            .filter(|n| !n.contains(".tmp."))
            .collect())
    }

    /// Whether the attachment a user key names still exists or is being
    /// made: a record, or a pending file (written before its first change).
    /// A state directory the rules refuse answers yes: nothing is released
    /// on its word.
    pub fn user_exists(&self, user: &str) -> bool {
        let Some((ns, ifname)) = user.split_once('-') else {
            return false;
        };
        let present = |rel: String| !matches!(self.read_file(&rel), Ok(None));
        present(format!("attachments/{ns}/{ifname}.json"))
            || present(format!("pending/{user}.json"))
    }
}

impl Shared<'_> {
    pub fn name(&self) -> &str {
        &self.name
    }

    fn base(&self) -> String {
        format!("{}/{}", self.kind.dir(), self.name)
    }

    fn marker(&self) -> String {
        match self.kind {
            SharedKind::Bridge => self.base(),
            _ => format!("{}/created", self.base()),
        }
    }

    fn users_dir(&self) -> String {
        match self.kind {
            SharedKind::Vlan => format!("{}/users", self.base()),
            _ => self.base(),
        }
    }

    /// The object's lock: shared to add a use, exclusive to create or
    /// delete the object.
    pub async fn lock(&self, exclusive: bool) -> Result<LockGuard> {
        self.state
            .lock_file(
                format!("{}-{}", self.kind.lock_prefix(), self.name),
                exclusive,
            )
            .await
    }

    /// Records that pipework made the object, as the link `ifindex`. Called
    /// (under the exclusive lock) before the object exists under its name.
    pub fn mark_created(&self, ifindex: u32) -> Result<()> {
        self.state
            .write_file(&self.marker(), ifindex.to_string().as_bytes())
    }

    /// Whether pipework made the object, and as which link: `Some(0)` for a
    /// marker of an older version (owned by name). A marker the state's
    /// rules refuse (a link, say) is nobody's word.
    pub fn created(&self) -> Option<u32> {
        let b = self.state.read_file(&self.marker()).ok()??;
        Some(std::str::from_utf8(&b).ok()?.trim().parse().unwrap_or(0))
    }

    /// Whether the link now carrying the name is the one pipework made.
    pub fn owns(&self, ifindex: u32) -> bool {
        matches!(self.created(), Some(i) if i == 0 || i == ifindex)
    }

    /// Drops the account of the object (marker and users).
    pub fn forget(&self) -> Result<()> {
        if self.kind == SharedKind::Bridge {
            self.state.remove_file(&self.base())
        } else {
            self.state.remove_tree(&self.base())
        }
    }

    /// Counts one attachment as a user (before its use exists).
    pub fn add_user(&self, user: &str) -> Result<()> {
        self.state
            .write_file(&format!("{}/{user}", self.users_dir()), b"")
    }

    pub fn remove_user(&self, user: &str) -> Result<()> {
        self.state
            .remove_file(&format!("{}/{user}", self.users_dir()))
    }

    /// The users; a directory the state's rules refuse is an error.
    pub fn users(&self) -> Result<Vec<String>> {
        if self.kind == SharedKind::Bridge {
            return Ok(Vec::new());
        }
        Ok(self
            .state
            .list(&self.users_dir())?
            .into_iter()
            .filter(|n| n != "created" && n != "users" && !n.contains(".tmp."))
            .collect())
    }

    /// Users whose attachment has neither a record nor a pending file: an
    /// attach killed before it wrote either, or a record lost. Call with
    /// the object's lock held.
    pub fn stale_users(&self) -> Result<Vec<String>> {
        Ok(self
            .users()?
            .into_iter()
            .filter(|u| !self.state.user_exists(u))
            .collect())
    }
}
