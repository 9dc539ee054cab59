//! Port security as OpenFlow flows: from the guest's port, only frames with
//! its own MAC and its own addresses reach the bridge's normal switching.
//!
//! Table 0, all flows under the attachment's cookie, matched on `in_port`:
//! - allow ARP whose sender MAC and address are the guest's;
//! - allow IPv4 and IPv6 from the guest's addresses (plus the EUI-64
//!   link-local address the kernel derives from its MAC), with its MAC;
//! - allow ICMPv6 from `::` for duplicate address detection (neighbour
//!   solicitations and the MLD reports that go with them);
//! - a neighbour advertisement must be for one of the guest's addresses and
//!   name the guest's MAC (or none), else it is dropped even from a valid
//!   source: that is the IPv6 form of ARP spoofing;
//! - everything else from the port is dropped.
//!
//! The priorities sit above the `priority=0 actions=NORMAL` flow of a
//! standalone bridge and below nothing pipework adds.

use std::net::{IpAddr, Ipv6Addr};

use pipework_model::MacAddr;

use super::openflow::{
    Flow, Match, Verdict, ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6, IPPROTO_ICMPV6,
};

const DROP_REST: u16 = 36000;
const ALLOW: u16 = 36100;
const DROP_FOREIGN_NA: u16 = 36150;
const ALLOW_OWN_NA: u16 = 36200;

const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const MLDV2_REPORT: u8 = 143;

/// The link-local address the kernel gives an interface with this MAC
/// (modified EUI-64, RFC 4291 appendix A).
pub fn eui64_link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

/// The flows that let only `mac` and `addrs` out of OpenFlow port `ofport`.
pub fn flows(cookie: u64, ofport: u32, mac: MacAddr, addrs: &[IpAddr]) -> Vec<Flow> {
    let flow = |priority, matches, verdict| Flow {
        cookie,
        priority,
        matches,
        verdict,
    };
    let mut out = vec![
        flow(DROP_REST, Match::new().in_port(ofport), Verdict::Drop),
        flow(DROP_FOREIGN_NA, advert(ofport), Verdict::Drop),
    ];
    for t in [ND_NEIGHBOR_SOLICIT, MLDV2_REPORT] {
        out.push(flow(
            ALLOW,
            Match::new()
                .in_port(ofport)
                .eth_src(mac)
                .eth_type(ETH_TYPE_IPV6)
                .ipv6_src(Ipv6Addr::UNSPECIFIED)
                .ip_proto(IPPROTO_ICMPV6)
                .icmpv6_type(t),
            Verdict::Normal,
        ));
    }
    let ll = IpAddr::V6(eui64_link_local(mac));
    let mut own = vec![ll];
    own.extend(addrs.iter().filter(|a| **a != ll));
    out.extend(address_flows(cookie, ofport, mac, &own));
    out
}

fn advert(ofport: u32) -> Match {
    Match::new()
        .in_port(ofport)
        .eth_type(ETH_TYPE_IPV6)
        .ip_proto(IPPROTO_ICMPV6)
        .icmpv6_type(ND_NEIGHBOR_ADVERT)
}

/// The flows that let `addrs` (and ARP and neighbour advertisements for
/// them) through, on top of the drops [`flows`] installs: what a second
/// address on the same port adds.
pub fn address_flows(cookie: u64, ofport: u32, mac: MacAddr, addrs: &[IpAddr]) -> Vec<Flow> {
    let flow = |priority, matches, verdict| Flow {
        cookie,
        priority,
        matches,
        verdict,
    };
    let from_guest = || Match::new().in_port(ofport).eth_src(mac);
    let mut out = Vec::new();
    for a in addrs {
        match a {
            IpAddr::V4(a) => {
                out.push(flow(
                    ALLOW,
                    from_guest().eth_type(ETH_TYPE_ARP).arp_spa(*a).arp_sha(mac),
                    Verdict::Normal,
                ));
                out.push(flow(
                    ALLOW,
                    from_guest().eth_type(ETH_TYPE_IPV4).ipv4_src(*a),
                    Verdict::Normal,
                ));
            }
            IpAddr::V6(a) => {
                out.push(flow(
                    ALLOW,
                    from_guest().eth_type(ETH_TYPE_IPV6).ipv6_src(*a),
                    Verdict::Normal,
                ));
                // An advertisement without a target link-layer option reads
                // as 00:00:00:00:00:00 to OVS.
                for tll in [mac, MacAddr([0; 6])] {
                    out.push(flow(
                        ALLOW_OWN_NA,
                        advert(ofport).eth_src(mac).nd_target(*a).nd_tll(tll),
                        Verdict::Normal,
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_from_mac() {
        let mac: MacAddr = "02:42:ac:11:00:02".parse().unwrap();
        assert_eq!(
            eui64_link_local(mac),
            "fe80::42:acff:fe11:2".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn one_flow_set_per_address() {
        let mac: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let f = flows(7, 3, mac, &["10.0.0.2".parse().unwrap()]);
        // drop, ARP + IPv4, link-local, DAD NS + MLD, NA drop, NA allow x2.
        assert_eq!(f.len(), 9);
        assert!(f.iter().all(|x| x.cookie == 7));
        assert_eq!(f.iter().filter(|x| x.verdict == Verdict::Drop).count(), 2);
        let dual = flows(
            7,
            3,
            mac,
            &["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
        );
        assert_eq!(dual.len(), 12);
        assert_eq!(
            address_flows(7, 3, mac, &["10.0.0.3".parse().unwrap()]).len(),
            2
        );
    }
}
