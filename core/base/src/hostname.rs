//! Names of the links pipework creates on the host and, briefly, in the guest.
//! The one place that knows the naming rules; every name fits IFNAMSIZ.

use crate::guest::GuestInfo;
use pipework_model::{IfName, MAX_IFNAME_LEN};

/// The host end of a veth: the original's `v<if>pl<pid>` when it fits in 15
/// characters (scripts grep for it), else `pw` and 10 hex digits derived from
/// the guest namespace and interface, which stays unique and stable.
pub fn host_peer(guest_ifname: &IfName, guest: &GuestInfo) -> IfName {
    if let Some(pid) = guest.pid {
        let n = format!("v{guest_ifname}pl{pid}");
        if n.len() <= MAX_IFNAME_LEN {
            return IfName::new_unchecked(n);
        }
    }
    let key = format!("{}/{}", guest.netns, guest_ifname);
    IfName::new_unchecked(format!("pw{:010x}", fnv1a(key.as_bytes()) & 0xff_ffff_ffff))
}

/// FNV-1a: tiny, and the same on every build (unlike `DefaultHasher`).
pub fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A fallback host-side name when the preferred one is taken.
pub fn random_host_peer() -> IfName {
    IfName::new_unchecked(format!("pw{}", pipework_model::random::hex(10)))
}

/// The temporary name a link carries in the guest until it is renamed. Random,
/// so it cannot clash with the guest's own names or a concurrent attach.
pub fn temp_guest_name() -> String {
    format!("{TEMP_PREFIX}{}", pipework_model::random::hex(8))
}

const TEMP_PREFIX: &str = "pwtmp";

/// Whether a guest link still carries a name from [`temp_guest_name`].
pub fn is_temp_guest_name(name: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX)
        .is_some_and(|h| h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::GuestKind;
    use pipework_model::GuestRef;
    use pipework_sys::netns::NetnsId;

    fn guest(pid: Option<u32>, ns: u64) -> GuestInfo {
        GuestInfo {
            name: "g".into(),
            kind: GuestKind::Process,
            reference: GuestRef::Auto("g".into()),
            pid,
            container_id: None,
            container_name: None,
            netns: NetnsId(ns),
        }
    }

    #[test]
    fn names_fit_and_differ() {
        let eth1: IfName = "eth1".parse().unwrap();
        assert_eq!(
            host_peer(&eth1, &guest(Some(1234), 1)).as_str(),
            "veth1pl1234"
        );
        let long: IfName = "verylongname1".parse().unwrap();
        let a = host_peer(&long, &guest(Some(4194303), 1));
        let b = host_peer(&long, &guest(Some(4194303), 2));
        assert!(a.as_str().len() <= 15 && b.as_str().len() <= 15);
        assert_ne!(a, b);
        let c = host_peer(&eth1, &guest(None, 4026532001));
        assert!(c.as_str().starts_with("pw") && c.as_str().len() == 12);
        assert!(temp_guest_name().len() <= 15);
        assert!(is_temp_guest_name(&temp_guest_name()));
        assert!(!is_temp_guest_name("pwtmp") && !is_temp_guest_name("eth1"));
        assert!(random_host_peer().as_str().len() <= 15);
    }
}
