//! What the OVS driver removes: an attachment's flows, a bridge pipework
//! made once its last port is gone, and (for `gc`) flows whose attachment
//! no longer exists.

use pipework_base::error::{Context, Error, Result};
use pipework_base::state::StateDir;

use pipework_base::settings::Settings;
use pipework_ovsdb_schemas::keys;
use pipework_sys::netlink::Netlink;

use super::ovsdb::OvsdbError;
use super::{
    cookie_text, db_error, openflow, parse_cookie, remote_of, Ovs, Remote, COOKIE_PREFIX,
    GENERATION_BITS,
};

impl Ovs {
    pub(super) async fn delete_flows(
        &self,
        rundir: &std::path::Path,
        bridge: &str,
        cookie: u64,
        mask: u64,
    ) -> Result<()> {
        let sock = rundir.join(format!("{bridge}.mgmt"));
        match openflow::Switch::connect(&sock).await {
            Ok(mut s) => s
                .delete_cookie(cookie, mask)
                .await
                .map_err(|e| Error::failed(format!("delete flows on {bridge}: {e}"))),
            // No bridge, no flows.
            Err(openflow::OfError::NoBridge(_)) => Ok(()),
            Err(e) => Err(Error::failed(format!("delete flows on {bridge}: {e}"))),
        }
    }

    pub(super) async fn release(
        &self,
        state: &StateDir,
        remote: &Remote,
        bridge: &str,
    ) -> Result<()> {
        let _lock = state.lock_bridge(bridge, true).await?;
        self.release_bridge(remote, bridge)
            .await
            .map_err(db_error)
            .step("delete empty OVS bridge")?;
        Ok(())
    }

    /// `DriverSet::gc`: ports pipework owns whose host interface is gone
    /// (the container died and took its veth along), their flows, and the
    /// bridges pipework created that this leaves empty.
    pub async fn gc(&self, settings: &Settings) -> Result<Vec<String>> {
        let remote = remote_of(settings)?;
        let owned = match self.owned_ports(&remote).await {
            Ok(p) => p,
            Err(OvsdbError::Unreachable { .. }) => {
                tracing::debug!("gc: no OVSDB at {remote}, nothing to collect there");
                return Ok(Vec::new());
            }
            Err(e) => return Err(db_error(e)),
        };
        let host = Netlink::connect_here("host").step("open netlink")?;
        let state = StateDir::open(&settings.state_dir)?;
        let mut removed = Vec::new();
        for p in owned {
            if host.link_by_name(&p.name).await?.is_some() {
                continue;
            }
            let bridge = p.external_ids.get(keys::BRIDGE);
            let cookie = p.external_ids.get(keys::COOKIE);
            if let (Some(b), Some(c)) = (bridge, cookie.and_then(|c| parse_cookie(c))) {
                self.delete_flows(&settings.ovs_rundir, b, c, !GENERATION_BITS)
                    .await?;
            }
            // Rows without a cookie (written by something older) are known
            // by their interface name alone.
            let mark = match cookie {
                Some(c) => (keys::COOKIE, c.as_str()),
                None => (keys::INTERFACE, p.name.as_str()),
            };
            let lock = match bridge {
                Some(b) => Some(state.lock_bridge(b, false).await?),
                None => None,
            };
            if self
                .remove_port(&remote, &p.name, mark)
                .await
                .map_err(db_error)?
            {
                removed.push(format!(
                    "OVS port {} of bridge {} (its interface is gone)",
                    p.name,
                    bridge.map_or("?", String::as_str)
                ));
            }
            drop(lock);
            if let Some(b) = bridge {
                self.release(&state, &remote, b).await?;
            }
        }
        removed.extend(self.gc_flows(&remote, &settings.ovs_rundir).await?);
        Ok(removed)
    }

    /// Flows with a pipework cookie that no Port row explains any more (the
    /// row went while its flows could not be deleted, and the record with
    /// it).
    pub(super) async fn gc_flows(
        &self,
        remote: &Remote,
        rundir: &std::path::Path,
    ) -> Result<Vec<String>> {
        let live: std::collections::BTreeSet<u64> = self
            .owned_ports(remote)
            .await
            .map_err(db_error)?
            .iter()
            .filter_map(|p| p.external_ids.get(keys::COOKIE))
            .filter_map(|c| parse_cookie(c))
            .map(|c| c & !GENERATION_BITS)
            .collect();
        let bridges = self
            .select(
                remote,
                pipework_ovsdb_schemas::bridge::TABLE,
                vec![],
                &[pipework_ovsdb_schemas::bridge::NAME.name],
            )
            .await
            .map_err(db_error)?;
        let mut removed = Vec::new();
        for b in bridges {
            let Some(name) = b[pipework_ovsdb_schemas::bridge::NAME.name].as_str() else {
                continue;
            };
            let sock = rundir.join(format!("{name}.mgmt"));
            let mut sw = match openflow::Switch::connect(&sock).await {
                Ok(s) => s,
                // A bridge ovs-vswitchd has not opened (yet): no flows.
                Err(openflow::OfError::NoBridge(_)) => continue,
                Err(e) => return Err(Error::failed(format!("{}: {e}", sock.display()))),
            };
            let mut orphans: Vec<u64> = sw
                .flow_cookies(COOKIE_PREFIX, !0u64 << 48)
                .await
                .map_err(|e| Error::failed(format!("{}: {e}", sock.display())))?
                .into_iter()
                .map(|c| c & !GENERATION_BITS)
                .filter(|c| !live.contains(c))
                .collect();
            orphans.sort();
            orphans.dedup();
            for c in orphans {
                sw.delete_cookie(c, !GENERATION_BITS)
                    .await
                    .map_err(|e| Error::failed(format!("{}: {e}", sock.display())))?;
                removed.push(format!(
                    "OpenFlow flows {} on bridge {name} (their port is gone)",
                    cookie_text(c)
                ));
            }
        }
        Ok(removed)
    }
}
