//! Stable identities for the client: the same guest and interface always ask
//! for (and so keep getting) the same lease, across restarts of the daemon and
//! of the guest.

use md5::{Digest, Md5};

use pipework_model::{MacAddr, MacSpec};

/// The DHCPv4 client identifier (option 61). With a `U:<string>` MAC the
/// MAC itself is the identity (type 1, Ethernet), as the original's users
/// expect; otherwise type 0 with the guest's name and interface, which
/// outlives the random MAC a re-created container gets.
pub fn client_id_v4(guest: &str, ifname: &str, mac_spec: &MacSpec, mac: MacAddr) -> Vec<u8> {
    match mac_spec {
        MacSpec::Unique(_) | MacSpec::Explicit(_) => {
            let mut v = vec![1];
            v.extend_from_slice(&mac.0);
            v
        }
        MacSpec::Random | MacSpec::NetworkWrapper => {
            let mut v = vec![0];
            v.extend_from_slice(format!("pipework:{guest}/{ifname}").as_bytes());
            v
        }
    }
}

/// The DHCPv6 DUID, by the same rule: DUID-LL (RFC 8415 section 11.4) from a
/// fixed MAC, else DUID-UUID (RFC 6355) derived from the guest and interface.
pub fn duid(guest: &str, ifname: &str, mac_spec: &MacSpec, mac: MacAddr) -> Vec<u8> {
    match mac_spec {
        MacSpec::Unique(_) | MacSpec::Explicit(_) => {
            let mut v = vec![0, 3, 0, 1];
            v.extend_from_slice(&mac.0);
            v
        }
        MacSpec::Random | MacSpec::NetworkWrapper => {
            let mut h = Md5::new();
            h.update(format!("pipework duid {guest}/{ifname}").as_bytes());
            let mut u: [u8; 16] = h.finalize().into();
            // A name-based (version 3) UUID, RFC 4122 variant.
            u[6] = (u[6] & 0x0f) | 0x30;
            u[8] = (u[8] & 0x3f) | 0x80;
            let mut v = vec![0, 4];
            v.extend_from_slice(&u);
            v
        }
    }
}

/// The IA_NA identifier: stable per interface name.
pub fn iaid(ifname: &str) -> u32 {
    ifname.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A host name servers accept (RFC 1123 label): letters, digits and
/// hyphens, at most 63, never empty.
pub fn hostname(guest: &str) -> String {
    let mut s: String = guest
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s = s.trim_matches('-').to_string();
    s.truncate(63);
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() {
        "guest".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_stable_and_distinct() {
        let m: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let a = client_id_v4("web1", "eth1", &MacSpec::Random, m);
        let b = client_id_v4("web1", "eth1", &MacSpec::Random, MacAddr::random_local());
        assert_eq!(a, b);
        assert_ne!(a, client_id_v4("web1", "eth2", &MacSpec::Random, m));
        let u = client_id_v4("web1", "eth1", &MacSpec::Unique("x".into()), m);
        assert_eq!(u, vec![1, 2, 0, 0, 0, 0, 1]);
        let d = duid("web1", "eth1", &MacSpec::Random, m);
        assert_eq!(d.len(), 18);
        assert_eq!(d, duid("web1", "eth1", &MacSpec::Random, m));
    }

    #[test]
    fn hostnames_are_sanitised() {
        assert_eq!(hostname("web_1.example"), "web-1-example");
        assert_eq!(hostname("pid 42"), "pid-42");
        assert_eq!(hostname("/run/netns/x"), "run-netns-x");
        assert_eq!(hostname("___"), "guest");
        assert_eq!(hostname(&"a".repeat(80)).len(), 63);
    }
}
