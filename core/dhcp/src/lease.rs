//! The lease model shared by the client, the daemon and `list`: what a lease
//! is for ([`LeaseSpec`]), what the server gave ([`Lease`]) and where the
//! supervisor stands ([`Phase`]).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use pipework_base::guest::GuestInfo;
use pipework_base::journal::ResolvTarget;
use pipework_base::state::now_secs;
use pipework_model::MacAddr;

/// DHCPv4 or DHCPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    V4,
    V6,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::V4 => "dhcp4",
            Proto::V6 => "dhcp6",
        }
    }
}

/// What a lease is for; fixed for its whole life and saved with it, so a
/// restarted daemon asks the server exactly the same way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseSpec {
    /// `<netns inode>-<ifname>-<proto>`: one lease per interface and protocol.
    pub key: String,
    pub proto: Proto,
    pub guest: GuestInfo,
    pub ifname: String,
    pub ifindex: u32,
    pub mac: MacAddr,
    /// Sent as option 12 (v4) or in the FQDN option (v6).
    pub hostname: String,
    /// v4: the client identifier (option 61, type byte first); v6: the DUID.
    pub client_id: Vec<u8>,
    /// v6: the IA_NA identifier.
    #[serde(default)]
    pub iaid: u32,
    /// The guest link's MTU as the attach created it, before any lease:
    /// the largest MTU a lease may set (a larger one would send frames that
    /// the peer or bridge side drops; pipework creates both ends of a veth
    /// with one MTU, and a macvlan/ipvlan child cannot exceed its parent).
    /// `None` in specs saved before it was recorded: the daemon reads the
    /// link's MTU when it starts keeping the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_mtu: Option<u32>,
    /// Where the lease's name servers go; `None` leaves DNS alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolv: Option<ResolvTarget>,
}

impl LeaseSpec {
    pub fn key_for(netns: pipework_sys::netns::NetnsId, ifname: &str, proto: Proto) -> String {
        format!("{netns}-{ifname}-{}", proto.as_str())
    }
}

/// What the server granted. Times are seconds; `acquired_at` is Unix time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// v4: address and subnet prefix; v6: the IA_NA address as a /128.
    pub address: IpNet,
    /// v4: the server identifier; v6: the address the reply came from.
    pub server: IpAddr,
    /// v6: the server's DUID, echoed in Request/Renew/Release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_duid: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routers: Vec<IpAddr>,
    /// Classless static routes (option 121): destination and gateway, an
    /// unspecified gateway meaning on-link.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<(IpNet, IpAddr)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    pub acquired_at: u64,
    /// Valid lifetime; `u32::MAX` is infinite.
    pub lease_secs: u32,
    /// v6 preferred lifetime (v4: the lease time).
    pub preferred_secs: u32,
    pub t1: u32,
    pub t2: u32,
}

/// The native leases an attach obtained, as saved in its record.
pub fn leases_of(rec: &pipework_base::state::AttachmentRecord) -> Vec<Lease> {
    rec.details
        .get("dhcp")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// An infinite lease time (RFC 2131 section 3.3, RFC 8415 section 7.7).
pub const INFINITE: u32 = u32::MAX;

impl Lease {
    fn at(&self, secs: u32) -> u64 {
        if secs == INFINITE {
            u64::MAX
        } else {
            self.acquired_at.saturating_add(u64::from(secs))
        }
    }

    /// When to start renewing (T1), Unix time.
    pub fn renew_at(&self) -> u64 {
        self.at(self.t1)
    }

    /// When to start rebinding (T2), Unix time.
    pub fn rebind_at(&self) -> u64 {
        self.at(self.t2)
    }

    /// When the address must go, Unix time.
    pub fn expires_at(&self) -> u64 {
        self.at(self.lease_secs)
    }

    /// Seconds of validity left now (`u32::MAX` when infinite).
    pub fn valid_left(&self) -> u32 {
        remaining(self.expires_at())
    }

    /// Seconds of preference left now.
    pub fn preferred_left(&self) -> u32 {
        remaining(self.at(self.preferred_secs))
    }

    /// Whether two leases configure the guest the same way (times aside).
    pub fn same_config(&self, o: &Lease) -> bool {
        self.address == o.address
            && self.routers == o.routers
            && self.routes == o.routes
            && self.dns == o.dns
            && self.search == o.search
            && self.mtu == o.mtu
    }

    /// One line for the user: address, gateway, server, lifetime.
    pub fn summary(&self) -> String {
        let mut s = self.address.to_string();
        if let Some(r) = self.routers.first() {
            s.push_str(&format!(" via {r}"));
        }
        s.push_str(&format!(" from {}", self.server));
        if self.lease_secs == INFINITE {
            s.push_str(", lease infinite");
        } else {
            s.push_str(&format!(
                ", lease {}s (expires {})",
                self.lease_secs,
                format_utc(self.expires_at())
            ));
        }
        if !self.dns.is_empty() {
            let d: Vec<String> = self.dns.iter().map(|d| d.to_string()).collect();
            s.push_str(&format!(", dns {}", d.join(" ")));
        }
        s
    }
}

fn remaining(at: u64) -> u32 {
    if at == u64::MAX {
        return INFINITE;
    }
    u32::try_from(at.saturating_sub(now_secs())).unwrap_or(INFINITE - 1)
}

/// Where the supervisor stands (RFC 2131 figure 5, RFC 8415 section 18).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Looking for a server (no lease, or it was lost).
    Init,
    Bound,
    /// Past T1: asking the server that granted it.
    Renewing,
    /// Past T2: asking any server.
    Rebinding,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Init => "init",
            Phase::Bound => "bound",
            Phase::Renewing => "renewing",
            Phase::Rebinding => "rebinding",
        }
    }

    /// Where a lease stands at Unix time `now`; `None` once it expired.
    pub fn of(lease: &Lease, now: u64) -> Option<Phase> {
        if now >= lease.expires_at() {
            None
        } else if now >= lease.rebind_at() {
            Some(Phase::Rebinding)
        } else if now >= lease.renew_at() {
            Some(Phase::Renewing)
        } else {
            Some(Phase::Bound)
        }
    }
}

/// `2026-01-31T12:00:00Z` for Unix time `t` (no time-zone database needed).
pub fn format_utc(t: u64) -> String {
    if t == u64::MAX {
        return "never".into();
    }
    let days = (t / 86400) as i64;
    let rem = t % 86400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(t1: u32, t2: u32, life: u32) -> Lease {
        Lease {
            address: "10.0.0.5/24".parse().unwrap(),
            server: "10.0.0.1".parse().unwrap(),
            server_duid: vec![],
            routers: vec![],
            routes: vec![],
            dns: vec![],
            search: vec![],
            mtu: None,
            acquired_at: 1000,
            lease_secs: life,
            preferred_secs: life,
            t1,
            t2,
        }
    }

    #[test]
    fn phases_follow_t1_t2_and_expiry() {
        let l = lease(60, 105, 120);
        assert_eq!(Phase::of(&l, 1000), Some(Phase::Bound));
        assert_eq!(Phase::of(&l, 1060), Some(Phase::Renewing));
        assert_eq!(Phase::of(&l, 1105), Some(Phase::Rebinding));
        assert_eq!(Phase::of(&l, 1120), None);
        let inf = lease(INFINITE, INFINITE, INFINITE);
        assert_eq!(Phase::of(&inf, u64::MAX - 1), Some(Phase::Bound));
    }

    #[test]
    fn utc_format() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
